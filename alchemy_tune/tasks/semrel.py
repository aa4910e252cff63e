"""SemRel 2024 Track A semantic relatedness: a sentence pair in, a score in [0, 1] out.

Seen (with training data): amh arq ary eng esp hau kin mar tel; unseen (dev/test only, from Track C):
afr arb hin ind pan — the split of the paper's follow-up repository. Metrics: Pearson and Spearman.

Sources: ``--data-dir`` with the shared task's GitHub release (``Track A/{lang}/{lang}_train.csv``,
``{lang}_dev_with_labels.csv``, ``{lang}_test_with_labels.csv``; unseen languages under ``Track C/``;
columns ``PairID,Text,Score`` with both sentences in ``Text`` separated by a newline), or the hub
dataset ``SemRel/SemRel2024`` (one config per language, columns sentence1, sentence2, label).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from ..errors import UsageError
from .base import Example, Task, TaskOptions
from .release import (
    Row, build_task, check_fields, first_existing, load_hub, read_table, require_dir, require_rows,
    resolve_languages, select_sizes,
)
from .subsets import score_band

HUB_REPO = "SemRel/SemRel2024"
SEEN = ("amh", "arq", "ary", "eng", "esp", "hau", "kin", "mar", "tel")
UNSEEN = ("afr", "arb", "hin", "ind", "pan")
COLUMNS = ("PairID", "Text", "Score")
TRACKS = ("Track A", "Track C", "Track B")
# Labelled files first: early releases shipped dev/test without scores under the plain names.
FILE_NAMES = {
    "train": ("{lang}_train.csv",),
    "dev": ("{lang}_dev_with_labels.csv", "{lang}_dev.csv"),
    "test": ("{lang}_test_with_labels.csv", "{lang}_test.csv"),
}


def load_semrel(options: TaskOptions) -> Task:
    """Load SemRel 2024 pair regression for the seen/unseen languages."""
    seen, unseen = resolve_languages("semrel", SEEN, UNSEEN, options)
    notes: list[str] = []
    if options.variant is not None:
        notes.append(f"semrel has no input variants; variant {options.variant!r} ignored")
    load = _pairs_from_dir if options.data_dir else _pairs_from_hub
    examples: dict[str, dict[str, list[Example]]] = {"train": {}, "dev": {}, "test": {}}
    for lang in seen + unseen:
        for split in ("train", "dev", "test"):
            if split == "train" and lang not in seen:
                continue
            found = load(options.data_dir, lang, split, seen)
            if found is None:
                if split == "dev":
                    # Some unseen languages (e.g. ind) were released with a test split only.
                    notes.append(f"semrel {lang}: no dev split in the release; not evaluated on dev")
                    continue
                raise UsageError(f"semrel {lang}: no {split} split found")
            source, pairs, dropped = found
            if dropped:
                notes.append(
                    f"{source}: dropped {dropped} row(s) whose Text is not two newline-separated sentences"
                )
            require_rows("semrel", lang, split, source, pairs, "rows with two sentences and a score")
            examples[split][lang] = pairs
    sized = select_sizes(examples, options, seen, _pair_key, lambda e: score_band(e.label))
    return build_task("semrel", "pair_regression", (), seen, unseen, sized, notes)


def _pair_key(example: Example) -> str:
    return f"{example.text}\x1f{example.text_pair}"


def split_pair(text: str) -> tuple[str, str] | None:
    """The two sentences of a release ``Text`` field, or None when it does not hold exactly two.

    Most files hold ``first\\nsecond``; some test files quote each sentence (``"first"\\n"second"``).
    """
    parts = [part.strip() for part in text.replace("\r\n", "\n").split("\n") if part.strip()]
    if len(parts) != 2:
        return None
    unquoted = [p[1:-1].strip() if len(p) >= 2 and p[0] == p[-1] == '"' else p for p in parts]
    if not all(unquoted):
        return None
    return unquoted[0], unquoted[1]


def parse_score(value: object, where: str) -> float:
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        score = math.nan
    if not (0.0 <= score <= 1.0):
        raise UsageError(f"{where}: Score {value!r} is not a number in [0, 1]")
    return score


def candidate_dirs(root: Path, lang: str) -> list[Path]:
    """Where a language's files may sit: the release root's track folders, or ``data_dir`` as a track."""
    bases = [root]
    if root.name.startswith("Track "):
        bases.append(root.parent)
    dirs = []
    for base in bases:
        dirs += [base / track / lang for track in TRACKS] + [base / lang]
    return dirs


def _pairs_from_dir(data_dir: str, lang: str, split: str, seen: tuple[str, ...]):
    root = require_dir("SemRel 2024", data_dir)
    dirs = candidate_dirs(root, lang)
    path = first_existing([d / name.format(lang=lang) for name in FILE_NAMES[split] for d in dirs])
    if path is None:
        if split == "dev" and lang not in seen:
            return None
        expected = FILE_NAMES[split][0].format(lang=lang)
        track = "Track A" if lang in SEEN else "Track C"
        raise UsageError(
            f"data-dir: {str(root / track / lang / expected)!r} missing; expected the SemRel 2024 {split} "
            f"file of {lang} (columns {','.join(COLUMNS)}) under {str(root)!r}"
        )
    pairs, dropped = [], 0
    for row in read_table(path, ",", COLUMNS, ignore_case=True):
        pair = split_pair(row.values["Text"])
        if pair is None:
            dropped += 1
            continue
        score = parse_score(row.values["Score"], row.where)
        pairs.append(Example(text=pair[0], text_pair=pair[1], label=score))
    return str(path), pairs, dropped


@functools.lru_cache(maxsize=32)
def _hub_config(lang: str) -> dict[str, list[Row] | None]:
    return load_hub(HUB_REPO, lang, ("train", "dev", "test"))


def _pairs_from_hub(_data_dir: None, lang: str, split: str, seen: tuple[str, ...]):
    rows = _hub_config(lang)[split]
    source = f"hub {HUB_REPO}[{lang}]/{split}"
    if rows is None:
        if split == "dev" and lang not in seen:
            return None
        raise UsageError(f"{source}: split missing on the hub; pass --data-dir with the release files")
    check_fields(rows, ("sentence1", "sentence2", "label"), source)
    pairs, dropped = [], 0
    for row in rows:
        first, second = (str(row.values[k] or "").strip() for k in ("sentence1", "sentence2"))
        if not (first and second):
            dropped += 1
            continue
        pairs.append(Example(text=first, text_pair=second, label=parse_score(row.values["label"], row.where)))
    return source, pairs, dropped
