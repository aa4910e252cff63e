"""Writers of small files in the paper's benchmarks' exact release formats.

Each writer lays out a folder as the dataset's own release does (file names, field names, label
strings, quoting, sentence-pair layout) and returns the folder a user would pass as ``--data-dir``.
The contents are synthetic but learnable: the label is recoverable from the words.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path
from typing import Sequence

from alchemy_tune.tasks import TASKS, masakhanews

Sizes = int | tuple[int, int, int]

MASSIVE_INTENTS = {
    # real MASSIVE intent names -> words of a synthetic utterance
    "alarm_set": "wake me up at {n} tomorrow",
    "weather_query": "will it rain near {n} street today",
    "play_music": "play song number {n} from my list",
    "calendar_set": "remind me about meeting {n} next week",
    "datetime_query": "what time is it in zone {n}",
    "iot_hue_lightoff": "turn off light {n} in the kitchen",
}
NEWS_WORDS = {
    "business": "market shares bank trade profit",
    "entertainment": "film music star concert award",
    "health": "hospital doctor disease vaccine clinic",
    "politics": "election minister parliament vote party",
    "religion": "church prayer mosque faith bishop",
    "sports": "football match goal team league",
    "technology": "phone internet software computer digital",
}


def _sizes(n: Sizes) -> dict[str, int]:
    train, dev, test = (n, n, n) if isinstance(n, int) else n
    return {"train": train, "dev": dev, "test": test}


def _massive_record(locale: str, partition: str, slurp_id: int, intent: str, n: int) -> dict:
    utt = f"{MASSIVE_INTENTS[intent].format(n=n)} {locale.lower()}"
    record = {
        "id": str(slurp_id),
        "locale": locale,
        "partition": partition,
        "scenario": intent.split("_")[0],
        "intent": intent,
        "utt": utt,
        "annot_utt": utt.replace(str(n), f"[number : {n}]", 1),
        "worker_id": str(slurp_id % 7),
    }
    if locale != "en-US":  # as released: en-US lines carry no localization metadata
        record["slot_method"] = [{"slot": "number", "method": "translation"}]
        record["judgments"] = [
            {"worker_id": "3", "intent_score": 1, "slots_score": 1, "grammar_score": 4,
             "spelling_score": 2, "language_identification": "target"}
        ]
    return record


def write_massive(
    root: Path, locales: Sequence[str] | None = None, n_per_split: Sizes = (12, 6, 6),
    intents: Sequence[str] = tuple(MASSIVE_INTENTS),
) -> Path:
    """``root/amazon-massive-dataset-1.1/data/{locale}.jsonl``; returns the release folder."""
    release = Path(root) / "amazon-massive-dataset-1.1"
    data = release / "data"
    data.mkdir(parents=True, exist_ok=True)
    sizes = _sizes(n_per_split)
    for locale in locales or TASKS["massive"].languages:
        lines, slurp_id = [], 0
        for partition, count in sizes.items():
            for i in range(count):
                record = _massive_record(locale, partition, slurp_id, intents[i % len(intents)], i)
                lines.append(json.dumps(record, ensure_ascii=False))
                slurp_id += 1
        (data / f"{locale}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return release


def write_masakhanews(
    root: Path, langs: Sequence[str] | None = None, n_per_split: Sizes = (14, 7, 7),
    topics: Sequence[str] = masakhanews.TOPICS,
) -> Path:
    """``root/masakhane-news/data/{lang}/{train,dev,test}.tsv`` (+ labels.txt); returns the repo folder.

    Row i has topic ``topics[i % len(topics)]`` (repeat a topic to make it more frequent). As released,
    the test file is sorted by category (English's first 120 rows are all ``business``)."""
    repo = Path(root) / "masakhane-news"
    sizes = _sizes(n_per_split)
    for lang in langs or TASKS["masakhanews"].languages:
        folder = repo / "data" / lang
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "labels.txt").write_text("".join(f"{t}\n" for t in sorted(set(topics))), encoding="utf-8")
        for split, count in sizes.items():
            rows = []
            for i in range(count):
                topic = topics[i % len(topics)]
                words = NEWS_WORDS[topic].split()
                headline = f"{lang} {words[i % 5]} {words[(i + 2) % 5]} report {i}"
                # an embedded quote, tab and newline, as real article bodies have
                text = f'{" ".join(words)} "story" {i}\tcontinued\nsecond paragraph {lang}'
                rows.append([topic, headline, text, f"https://news.example/{lang}/{split}/{i}"])
            if split == "test":
                rows.sort(key=lambda row: row[0])
            with open(folder / f"{split}.tsv", "w", encoding="utf-8", newline="") as handle:
                # csv's minimal quoting is what pandas' to_csv(sep="\t") wrote for the release
                writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
                writer.writerow(["category", "headline", "text", "url"])
                writer.writerows(rows)
    return repo


def _pair(rng: random.Random) -> tuple[str, str, float]:
    vocab = "river stone house garden light music city road bread water forest market".split()
    first = rng.sample(vocab, 4)
    shared = rng.randint(0, 4)
    second = first[:shared] + rng.sample([w for w in vocab if w not in first], 4 - shared)
    return " ".join(first) + ".", " ".join(second) + ".", round(shared / 4, 2)


SEMREL_TRACK_C = ("afr", "amh", "arb", "arq", "ary", "eng", "esp", "hau", "hin", "ind", "kin", "mar", "pan", "tel")
"""The languages of the release's Track C folder (all fourteen; Track A holds the nine with training data)."""


def _semrel_id(lang: str, split: str, i: int) -> str:
    # the release's PairID spellings differ by language: ENG-test-0000, kin_test_00001, AFR-test-1
    if lang in ("kin", "hau"):
        return f"{lang}_{split}_{i + 1:05d}"
    return f"{lang.upper()}-{split}-{i + 1}" if lang == "afr" else f"{lang.upper()}-{split}-{i:04d}"


def _semrel_text(lang: str, split: str, first: str, second: str) -> str:
    if (lang, split) == ("afr", "test"):
        return f"{first}\t{second}"  # afr_test_with_labels.csv: a TAB between the sentences
    if split == "test" and lang in ("tel", "mar", "hin"):
        return f'"{first}"\n"{second}"'  # each sentence quoted inside the field
    if (lang, split) == ("arq", "test"):
        return f"{first}\n {second}"  # a space after the newline
    return f"{first}\n{second}"


def write_semrel(root: Path, langs: Sequence[str] | None = None, n_per_split: Sizes = (12, 6, 6)) -> Path:
    """The SemEval 2024 Task 1 repository as cloned, for ``langs`` (default: all fourteen).

    ``Track A/{lang}/`` (the nine languages with training data): ``{lang}_train.csv``,
    ``{lang}_dev.csv`` + ``{lang}_dev_with_labels.csv``, ``{lang}_test.csv`` + ``{lang}_test_with_labels.csv``;
    ``Track C/{lang}/`` (all fourteen): the dev and test files. The unlabelled files have columns
    ``PairID,Text``, the others ``PairID,Text,Score``. Release quirks kept: no ``esp_test_with_labels.csv``
    in either track (Spanish test scores were not released); ``ind`` has no dev files; the sentences of
    ``afr_test_with_labels.csv`` are TAB-separated; tel/mar/hin test files quote each sentence; arq's test
    has a space after the newline; afr's dev header says ``score``. Returns the repository folder."""
    repo = Path(root) / "Semantic_Relatedness_SemEval2024"
    sizes = _sizes(n_per_split)
    for lang in langs or TASKS["semrel"].languages:
        rows = {}
        for split in ("train", "dev", "test"):
            rng = random.Random(f"{lang}-{split}")
            rows[split] = [(_semrel_id(lang, split, i), *_pair(rng)) for i in range(sizes[split])]
        tracks = [("Track A", ("train", "dev", "test"))] if lang in TASKS["semrel"].seen else []
        if lang in SEMREL_TRACK_C:
            tracks.append(("Track C", ("test",) if lang == "ind" else ("dev", "test")))
        for track, splits in tracks:
            folder = repo / track / lang
            folder.mkdir(parents=True, exist_ok=True)
            for split in splits:
                files = [(f"{lang}_train.csv", True)] if split == "train" else [(f"{lang}_{split}.csv", False)]
                if split != "train" and (lang, split) != ("esp", "test"):
                    files.append((f"{lang}_{split}_with_labels.csv", True))
                for name, labelled in files:
                    header = ["PairID", "Text"] + (["score" if (lang, split) == ("afr", "dev") else "Score"]
                                                   if labelled else [])
                    with open(folder / name, "w", encoding="utf-8", newline="") as handle:
                        writer = csv.writer(handle, lineterminator="\n")
                        writer.writerow(header)
                        for pair_id, first, second, score in rows[split]:
                            text = _semrel_text(lang, split, first, second)
                            writer.writerow([pair_id, text] + ([score] if labelled else []))
    return repo


SIB_WORDS = {
    "science/technology": "atom robot laser", "travel": "hotel visa airport", "politics": "vote senate party",
    "sports": "goal match team", "health": "doctor fever vaccine", "entertainment": "film concert actor",
    "geography": "river mountain coast",
}
SIB_LANGS = ("eng_Latn", "fra_Latn", "yor_Latn", "zho_Hans", "zho_Hant", "arb_Arab", "arb_Latn")


def write_sib200(root: Path, langs: Sequence[str] = SIB_LANGS, n_per_split: Sizes = (21, 14, 14)) -> Path:
    """The SIB-200 release layout: ``data/annotated/<lang>/{train,dev,test}.tsv`` (``index_id category
    text``), ``labels.txt`` in each folder, a ``LICENSE`` and the stray ``nqo_Nkoo.zip``. Sentences are
    parallel (one ``index_id`` = one sentence, the same topic, in every language), ids are disjoint between
    splits, and every file is sorted by topic, as the release's are not guaranteed not to be."""
    from alchemy_tune.tasks.sib200 import TOPICS

    annotated = root / "data" / "annotated"
    sizes = _sizes(n_per_split)
    first_id = {"train": 0, "dev": 1000, "test": 2000}
    for lang in langs:
        folder = annotated / lang
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "labels.txt").write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
        for split, n in sizes.items():
            rows = [(first_id[split] + i, TOPICS[(i * 3) % len(TOPICS)]) for i in range(n)]
            rows.sort(key=lambda r: r[1])
            with open(folder / f"{split}.tsv", "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
                writer.writerow(["index_id", "category", "text"])
                for ident, topic in rows:
                    writer.writerow([ident, topic, f"{lang[:3]} {SIB_WORDS[topic]} {ident}"])
    (annotated / "nqo_Nkoo.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    (root / "LICENSE").write_text("Apache-2.0\n", encoding="utf-8")
    return root
