"""MASSIVE 1.1 intent classification (60 intents, 52 locales), as in the LinguAlchemy paper.

Train and dev come from the paper's 25 seen locales, test from all 52; dev is also kept for the 27
unseen locales, because a search may select on unseen dev (training only ever uses seen locales). The
default locales are declared in the task registry (``alchemy_tune.tasks.TASKS``).

Sources: ``--data-dir`` with the release's per-locale JSON-lines files
(``amazon-massive-dataset-1.1/data/{locale}.jsonl``; the folder of ``.jsonl`` files or its parent), or
the hub dataset ``AmazonScience/massive`` (one config per locale).
"""

from __future__ import annotations

from pathlib import Path

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import release, resolve_languages
from alchemy_tune.tasks.base import Task, TaskOptions
from alchemy_tune.tasks.release import (
    Row, build_task, check_fields, first_existing, index_labels, load_hub, read_jsonl,
    require_rows,
)

HUB_REPO = "AmazonScience/massive"

FIELDS = ("id", "locale", "partition", "intent", "utt")
"""Fields the loader reads from each JSON line (the release also has scenario, annot_utt, judgments...)."""
PARTITIONS = {"train": "train", "dev": "dev", "test": "test"}


def load_massive(options: TaskOptions) -> Task:
    """Load MASSIVE intent classification for the paper's seen/unseen locales."""
    seen, unseen = resolve_languages("massive", options)
    notes: list[str] = []
    if options.variant is not None:
        notes.append(f"massive has no input variants; variant {options.variant!r} ignored")
    if options.data_dir:
        rows = _rows_from_dir(options.data_dir, seen, unseen)
    else:
        rows = _rows_from_hub(seen, unseen)

    parsed: dict[str, dict[str, list]] = {"train": {}, "dev": {}, "test": {}}
    for split in parsed:
        for lang in (seen if split == "train" else seen + unseen):
            source, items = rows[lang][split]
            require_rows("massive", lang, split, source, items, f"lines with partition '{PARTITIONS[split]}'")
            parsed[split][lang] = [
                (row, str(row.values["utt"]), None, str(row.values["intent"])) for row in items
            ]

    labels = _label_set({lang: rows[lang]["train"] for lang in seen})
    # MASSIVE is parallel: a line's id is the same utterance in every locale, so dev/test subsets keyed by
    # it hold the same utterances in every locale (hub rows without an id fall back to their content)
    examples = index_labels(parsed, labels, options, seen, what="intent", key=_id_key)
    return build_task("massive", "classification", labels, seen, unseen, examples, notes)


def _id_key(item: tuple) -> str:
    row = item[0]
    return f"id:{row.values['id']}" if row.values.get("id") is not None else f"utt:{item[1]}"


def _label_set(train: dict[str, tuple[str, list[Row]]]) -> tuple[str, ...]:
    """The sorted intents of the seen locales' training data, which must agree across locales."""
    per_lang = {lang: {str(row.values["intent"]) for row in items} for lang, (_, items) in train.items()}
    union = set().union(*per_lang.values())
    for lang, found in per_lang.items():
        if found != union:
            missing = sorted(union - found)
            raise UsageError(
                f"{train[lang][0]}: training intents differ from the other seen locales "
                f"(missing {', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); "
                "expected the same intent set in every locale"
            )
    return tuple(sorted(union))


def find_data_dir(data_dir: str, locales: tuple[str, ...]) -> Path:
    """The folder of ``{locale}.jsonl`` files: ``data_dir`` itself, its ``data/``, or ``*/data/``."""
    return release.find_data_dir(
        "MASSIVE", data_dir, locales, lambda locale: f"{locale}.jsonl", "locale files",
        f"{{locale}}.jsonl files such as {locales[0]}.jsonl in it or in its data/ folder "
        "(amazon-massive-dataset-1.1/data/)", nested=True)


def _rows_from_dir(data_dir: str, seen: tuple[str, ...], unseen: tuple[str, ...]) -> dict:
    folder = find_data_dir(data_dir, seen + unseen)
    out = {}
    for locale in seen + unseen:
        path = first_existing([folder / f"{locale}.jsonl"])
        if path is None:
            raise UsageError(
                f"{folder / f'{locale}.jsonl'}: missing; expected the MASSIVE 1.1 file of locale {locale}"
            )
        rows = read_jsonl(path, FIELDS)
        for row in rows:
            if row.values["locale"] != locale:
                raise UsageError(f"{row.where}: locale {row.values['locale']!r} in the file of {locale}")
            if row.values["partition"] not in PARTITIONS.values():
                raise UsageError(
                    f"{row.where}: partition {row.values['partition']!r}; expected one of train, dev, test"
                )
        by_partition: dict[str, list[Row]] = {}
        for row in rows:
            by_partition.setdefault(row.values["partition"], []).append(row)
        out[locale] = {split: (str(path), by_partition.get(part, [])) for split, part in PARTITIONS.items()}
    return out


def _rows_from_hub(seen: tuple[str, ...], unseen: tuple[str, ...]) -> dict:
    out = {}
    for locale in seen + unseen:
        splits = load_hub(HUB_REPO, locale, ("train", "dev", "test"))
        source = f"hub {HUB_REPO}[{locale}]"
        for items in splits.values():
            check_fields(items or [], ("intent", "utt"), source)
            if items and not isinstance(items[0].values["intent"], str):
                # Ids without class names would silently become labels "0".."59" in another order.
                raise UsageError(f"{source}: intent ids come without their names; pass --data-dir instead")
        out[locale] = {split: (source, items or []) for split, items in splits.items()}
    return out
