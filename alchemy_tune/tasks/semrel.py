"""SemRel 2024 Track A semantic relatedness: a sentence pair in, a score in [0, 1] out.

Seen (with training data): amh arq ary eng esp hau kin mar tel; unseen (dev/test only, from Track C):
afr arb hin ind pan — the split of the paper's follow-up repository, declared in the task registry
(``alchemy_tune.tasks.TASKS``). Metrics: Pearson and Spearman.

Sources: ``--data-dir`` with a clone of the shared task's GitHub repository, or the hub dataset
``SemRel/SemRel2024`` (one config per language, columns sentence1, sentence2, label). The release as
cloned (``Track A/{lang}/`` for the nine training languages, ``Track C/{lang}/`` for all fourteen):

- ``{lang}_train.csv``, ``{lang}_dev_with_labels.csv``, ``{lang}_test_with_labels.csv``: columns
  ``PairID,Text,Score``, both sentences in ``Text``, separated by a newline; some test files quote each
  sentence (tel, mar, hin), arq's second sentence starts with a space after the newline, and
  ``afr_test_with_labels.csv`` separates the two with a TAB instead;
- ``{lang}_dev.csv`` / ``{lang}_test.csv``: the same pairs without the ``Score`` column (what participants
  got). Spanish (``esp``) has only these for test: no labelled test file in either track. Indonesian
  (``ind``) has a test split only.

A language without labelled data for dev or test is left out of that split (its other split is still
scored) with a note that ``plan`` prints; its dev set is not scored as test, because dev is what search
decisions see. A seen language needs its training file; every language needs labelled dev or test.
"""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path
from typing import NamedTuple

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import TASKS, resolve_languages
from alchemy_tune.tasks.base import Example, Task, TaskOptions
from alchemy_tune.tasks.release import (
    Row, build_task, check_fields, first_existing, load_hub, read_table, require_dir, require_rows,
    select_sizes,
)
from alchemy_tune.tasks.subsets import score_band

HUB_REPO = "SemRel/SemRel2024"
COLUMNS = ("PairID", "Text", "Score")
TRACKS = ("Track A", "Track C", "Track B")
LABELLED = {
    "train": "{lang}_train.csv",
    "dev": "{lang}_dev_with_labels.csv",
    "test": "{lang}_test_with_labels.csv",
}
# What participants got: the pairs without scores (early releases put scores in some of these).
PLAIN = {"dev": "{lang}_dev.csv", "test": "{lang}_test.csv"}


class Found(NamedTuple):
    """A split of one language: its pairs (None when the release has no labelled data) and why not."""

    source: str
    pairs: list[Example] | None
    dropped: int = 0
    why: str = ""


def load_semrel(options: TaskOptions) -> Task:
    """Load SemRel 2024 pair regression for the seen/unseen languages."""
    seen, unseen = resolve_languages("semrel", options)
    notes: list[str] = []
    if options.variant is not None:
        notes.append(f"semrel has no input variants; variant {options.variant!r} ignored")
    load = _pairs_from_dir if options.data_dir else _pairs_from_hub
    examples: dict[str, dict[str, list[Example]]] = {"train": {}, "dev": {}, "test": {}}
    for lang in seen + unseen:
        absent: dict[str, str] = {}
        for split in ("train", "dev", "test"):
            if split == "train" and lang not in seen:
                continue
            found = load(options.data_dir, lang, split)
            if found.pairs is None:
                absent[split] = found.why
                notes.append(f"semrel {lang}: {found.why}; {lang} is left out of {split} scores"
                             + ("" if split == "dev" else " (its dev set is not scored as test: dev is "
                                "what search decisions see)"))
                continue
            if found.dropped:
                notes.append(f"{found.source}: dropped {found.dropped} row(s) whose Text is not two "
                             "newline- or tab-separated sentences")
            require_rows("semrel", lang, split, found.source, found.pairs, "rows with two sentences and a score")
            examples[split][lang] = found.pairs
        if "dev" in absent and "test" in absent:
            raise UsageError(f"semrel {lang}: no labelled dev or test data (dev: {absent['dev']}; test: "
                             f"{absent['test']}); {lang} cannot be scored: drop it from --seen/--unseen")
    sized = select_sizes(examples, options, seen, _pair_key, lambda e: score_band(e.label))
    return build_task("semrel", "pair_regression", (), seen, unseen, sized, notes)


def _pair_key(example: Example) -> str:
    return f"{example.text}\x1f{example.text_pair}"


def split_pair(text: str) -> tuple[str, str] | None:
    """The two sentences of a release ``Text`` field, or None when it does not hold exactly two.

    Most files hold ``first\\nsecond``; some test files quote each sentence (``"first"\\n"second"``);
    ``afr_test_with_labels.csv`` holds ``first\\tsecond``. A TAB is a separator only in a one-line field.
    """
    lines = [part.strip() for part in text.replace("\r\n", "\n").split("\n") if part.strip()]
    parts = lines if len(lines) != 1 else [part.strip() for part in lines[0].split("\t") if part.strip()]
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


def _has_score_column(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return True  # let read_table report the file with its columns
    return any(name.strip().lower() == "score" for name in header)


def _pairs_from_dir(data_dir: str, lang: str, split: str) -> Found:
    root = require_dir("SemRel 2024", data_dir)
    dirs = candidate_dirs(root, lang)
    labelled = LABELLED[split].format(lang=lang)
    path = first_existing([d / labelled for d in dirs])
    if path is None and split in PLAIN:
        plain = first_existing([d / PLAIN[split].format(lang=lang) for d in dirs])
        if plain is not None and _has_score_column(plain):
            path = plain
        elif plain is not None:
            return Found(str(plain), None, why=f"the release has no {labelled}, only {plain} without a Score column")
    if path is None:
        track = "Track A" if lang in TASKS["semrel"].seen else "Track C"
        expected = root / track / lang / labelled
        if split == "train":
            raise UsageError(
                f"data-dir: {str(expected)!r} missing; expected the SemRel 2024 train file of {lang} "
                f"(columns {','.join(COLUMNS)}) under {str(root)!r}"
            )
        return Found("", None, why=f"no {split} file in the release ({str(expected)!r} missing)")
    pairs, dropped = [], 0
    for row in read_table(path, ",", COLUMNS, ignore_case=True):
        pair = split_pair(row.values["Text"])
        if pair is None:
            dropped += 1
            continue
        score = parse_score(row.values["Score"], row.where)
        pairs.append(Example(text=pair[0], text_pair=pair[1], label=score))
    return Found(str(path), pairs, dropped)


@functools.lru_cache(maxsize=32)
def _hub_config(lang: str) -> dict[str, list[Row] | None]:
    return load_hub(HUB_REPO, lang, ("train", "dev", "test"))


def _pairs_from_hub(_data_dir: None, lang: str, split: str) -> Found:
    rows = _hub_config(lang)[split]
    source = f"hub {HUB_REPO}[{lang}]/{split}"
    if rows is None or (rows and all(row.values.get("label") in (None, "") for row in rows)):
        if split == "train":
            raise UsageError(f"{source}: split missing on the hub; pass --data-dir with the release files")
        return Found(source, None, why=f"{source} is {'missing' if rows is None else 'without scores'}")
    check_fields(rows, ("sentence1", "sentence2", "label"), source)
    pairs, dropped = [], 0
    for row in rows:
        first, second = (str(row.values[k] or "").strip() for k in ("sentence1", "sentence2"))
        if not (first and second):
            dropped += 1
            continue
        pairs.append(Example(text=first, text_pair=second, label=parse_score(row.values["label"], row.where)))
    return Found(source, pairs, dropped)
