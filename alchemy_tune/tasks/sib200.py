"""SIB-200 topic classification (Adelani et al. 2023): 7 topics, 205 languages and dialects, parallel.

Every language has the same 701 train / 99 dev / 204 test FLORES-200 sentences, translated: one
``index_id`` is one sentence in every language. Subsets are keyed by that id, so a dev or test subset holds
the same sentences in every language, and a sentence is in one split in every language, so no translation
of a dev or test sentence is trained on (the loader checks it and drops any training row that breaks it).

Languages are the release's folder codes (``ace_Latn``, ``zho_Hant``); each maps to the ISO 639-3 code
URIEL knows through the macro-language policy of :mod:`alchemy_tune.languages.codes` (``arb`` -> ``ara``,
``zho``, ``swh`` -> ``swa``). The default roles and why: :mod:`alchemy_tune.tasks.flores200`.

Sources: ``--data-dir`` with the release (the repository folder, its ``data/`` or ``data/annotated/``:
``<lang>/{train,dev,test}.tsv``, columns ``index_id category text``; ``labels.txt`` is not needed, the
seven topics are fixed below; the stray ``nqo_Nkoo.zip`` is ignored), or the hub dataset ``Davlan/sib200``
(one config per language).
"""

from __future__ import annotations

from pathlib import Path

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import release, resolve_languages
from alchemy_tune.tasks.base import Task, TaskOptions
from alchemy_tune.tasks.flores200 import SIB200_LANGUAGES
from alchemy_tune.tasks.release import (build_task, check_fields, index_labels, load_hub, read_language_folders,
                                        require_rows)

HUB_REPO = "Davlan/sib200"
TOPICS = ("science/technology", "travel", "politics", "sports", "health", "entertainment", "geography")
"""The release's category strings, in the order of its ``labels.txt``."""
COLUMNS = ("index_id", "category", "text")
SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}


def load_sib200(options: TaskOptions) -> Task:
    """Load SIB-200 for the resolved seen and held-out languages (see the registry's ``sib200`` entry)."""
    seen, unseen = resolve_languages("sib200", options)
    rows = _rows_from_dir(options.data_dir, seen, unseen) if options.data_dir else _rows_from_hub(seen, unseen)
    notes: list[str] = []
    held_ids = {str(row.values["index_id"]).strip() for lang in seen + unseen for split in ("dev", "test")
                for row in rows[lang][split][1]}
    parsed: dict[str, dict[str, list]] = {"train": {}, "dev": {}, "test": {}}
    for split in parsed:
        for lang in (seen if split == "train" else seen + unseen):
            source, items = rows[lang][split]
            kept, leaked, empty = [], 0, 0
            for row in items:
                text, ident = str(row.values["text"] or "").strip(), str(row.values["index_id"]).strip()
                if not text:
                    empty += 1
                elif split == "train" and ident in held_ids:
                    leaked += 1  # a translation of a dev or test sentence: never trained on
                else:
                    kept.append((row, text, None, str(row.values["category"]).strip()))
            if empty:
                notes.append(f"{source}: dropped {empty} row(s) with an empty text")
            if leaked:
                notes.append(f"{source}: dropped {leaked} training row(s) whose index_id is a dev or test sentence")
            require_rows("sib200", lang, split, source, kept, "rows with index_id, category and text")
            parsed[split][lang] = kept
    examples = index_labels(parsed, TOPICS, options, seen, what="category", key=_sentence_id)
    left_out = [lang for lang in SIB200_LANGUAGES if lang not in seen + unseen]
    if left_out:
        notes.append(f"left out of this load: {', '.join(left_out)}")
    return build_task("sib200", "classification", TOPICS, seen, unseen, examples, notes)


def _sentence_id(item: tuple) -> str:
    return str(item[0].values["index_id"]).strip()


def find_data_dir(data_dir: str, langs: tuple[str, ...]) -> Path:
    """The folder holding the ``<lang>/`` folders: ``data_dir``, its ``data/annotated/`` or its ``annotated/``."""
    root = release.require_dir("SIB-200", data_dir)
    for folder in (root, root / "data" / "annotated", root / "annotated"):
        if any((folder / lang / "test.tsv").is_file() for lang in langs):
            return folder
    raise UsageError(f"data-dir: no SIB-200 language folders under {str(root)!r}; expected the release "
                     f"(data/annotated/<lang>/train.tsv, dev.tsv, test.tsv, e.g. {langs[0]}/test.tsv) or that "
                     "annotated/ folder itself")


def _rows_from_dir(data_dir: str, seen: tuple[str, ...], unseen: tuple[str, ...]) -> dict:
    return read_language_folders("SIB-200", find_data_dir(data_dir, seen + unseen), seen, unseen, SPLIT_FILES,
                                 COLUMNS, ' '.join(COLUMNS))


def _rows_from_hub(seen: tuple[str, ...], unseen: tuple[str, ...]) -> dict:
    out: dict = {}
    for lang in seen + unseen:
        source = f"hub {HUB_REPO}[{lang}]"
        out[lang] = {}
        for split, items in load_hub(HUB_REPO, lang, ("train", "dev", "test")).items():
            check_fields(items or [], COLUMNS, source)
            out[lang][split] = (f"{source}/{split}", items or [])
    return out
