"""MasakhaNEWS news-topic classification (7 topics, 16 languages), as in the LinguAlchemy paper.

Default seen: amh eng fra hau swa orm som; unseen: ibo lin lug pcm run sna tir xho yor (declared in the
task registry, ``alchemy_tune.tasks.TASKS``). The input is the
headline (the paper's setting, variant ``headline``) or headline and article (``headline+text``).

Sources: ``--data-dir`` with the GitHub release's per-language TSV splits
(``masakhane-news/data/{lang}/{train,dev,test}.tsv``, columns ``category headline text url``; the repo
folder or its ``data/``), or the hub dataset ``masakhane/masakhanews`` (one config per language).
Not every language has every topic, so the label set is the dataset's seven topics, not those found.
"""

from __future__ import annotations

from pathlib import Path

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import release, resolve_languages
from alchemy_tune.tasks.base import Task, TaskOptions
from alchemy_tune.tasks.release import (
    Row, build_task, check_fields, index_labels, load_hub, read_language_folders, require_rows,
)

HUB_REPO = "masakhane/masakhanews"
TOPICS = ("business", "entertainment", "health", "politics", "religion", "sports", "technology")
"""The release's category strings (the hub's class-label names, in the same order)."""
VARIANTS = ("headline", "headline+text")
COLUMNS = ("category", "headline", "text")
SPLIT_FILES = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}


def load_masakhanews(options: TaskOptions) -> Task:
    """Load MasakhaNEWS topic classification for the paper's seen/unseen languages."""
    variant = options.variant or "headline"
    if variant not in VARIANTS:
        raise UsageError(f"task-variant: {variant!r} is not one of {', '.join(VARIANTS)} for masakhanews")
    seen, unseen = resolve_languages("masakhanews", options)
    if options.data_dir:
        rows = _rows_from_dir(options.data_dir, seen, unseen)
    else:
        rows = _rows_from_hub(seen, unseen)

    notes = [f"masakhanews input: {variant}"]
    parsed: dict[str, dict[str, list]] = {"train": {}, "dev": {}, "test": {}}
    for split in parsed:
        for lang in (seen if split == "train" else seen + unseen):
            source, items = rows[lang][split]
            kept, dropped = [], 0
            for row in items:
                headline = str(row.values["headline"] or "").strip()
                body = str(row.values["text"] or "").strip()
                text = headline if variant == "headline" else "\n".join(p for p in (headline, body) if p)
                if not text:
                    dropped += 1
                    continue
                kept.append((row, text, None, str(row.values["category"]).strip()))
            if dropped:
                notes.append(f"{source}: dropped {dropped} row(s) with an empty {variant}")
            require_rows("masakhanews", lang, split, source, kept, f"rows with a non-empty {variant}")
            parsed[split][lang] = kept
    # keyed by the article (headline and body), not the input text: both variants score the same articles
    examples = index_labels(parsed, TOPICS, options, seen, what="category", key=_article_key)
    return build_task("masakhanews", "classification", TOPICS, seen, unseen, examples, notes)


def _article_key(item: tuple) -> str:
    return f"{item[0].values['headline']}\x1f{item[0].values['text']}"


def find_data_dir(data_dir: str, langs: tuple[str, ...]) -> Path:
    """The folder holding ``{lang}/`` split folders: ``data_dir`` itself or its ``data/``."""
    return release.find_data_dir(
        "MasakhaNEWS", data_dir, langs, lambda lang: f"{lang}/test.tsv", "language folders",
        f"{{lang}}/train.tsv, dev.tsv, test.tsv (e.g. {langs[0]}/test.tsv) in it or in its data/ folder")


def _rows_from_dir(data_dir: str, seen: tuple[str, ...], unseen: tuple[str, ...]) -> dict:
    return read_language_folders("MasakhaNEWS", find_data_dir(data_dir, seen + unseen), seen, unseen, SPLIT_FILES,
                                 COLUMNS, ' '.join(COLUMNS) + ' url')


def _rows_from_hub(seen: tuple[str, ...], unseen: tuple[str, ...]) -> dict:
    out: dict = {}
    for lang in seen + unseen:
        source = f"hub {HUB_REPO}[{lang}]"
        splits = load_hub(HUB_REPO, lang, ("train", "dev", "test"))
        out[lang] = {}
        for split, items in splits.items():
            # The hub names the topic column "label"; the release files call it "category".
            rows = []
            for row in items or []:
                topic = row.values.get("label", row.values.get("category"))
                rows.append(Row(row.where, {**row.values, "category": topic}))
            check_fields(rows, ("category", "headline", "text"), source)
            out[lang][split] = (f"{source}/{split}", rows)
    return out
