"""Dev and test subsets of the release files: stratified, parallel where the data is, blind to file order.

Taking the first n rows of a file makes a subset an accident of how the file was written: MasakhaNEWS's
test files are sorted by topic, so their first 120 rows of English are all ``business``. Instead, every
example gets a rank from a hash of its *key* (the dataset's id where it has one, else its content) and
a fixed evaluation seed, and a subset of n is the first n of an order that

- is **stratified**: the first pass takes one example of every stratum (class, or score band for pair
  regression), so a subset of n covers min(n, strata present) of them; after that each stratum's k-th
  example is placed at (k + 0.5) / its share (Webster's apportionment), so every prefix holds each
  stratum in proportion to its share of the file;
- is **nested**: a smaller subset is a prefix of a larger one;
- depends only on the keys, strata and seed, never on positions: a shuffled file gives the same subset,
  and a parallel dataset keyed by its shared ids (MASSIVE) gives the same ids in every language.

The seed is fixed (not the data seed of the training subsets), so every trial of a study, whatever its
data seed, is scored on the same examples.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Callable, Hashable, Sequence, TypeVar

T = TypeVar("T")

EVALUATION_SEED = 0
"""Seed of the evaluation order; fixed so that scores of different trials and data seeds compare."""


def _rank(seed: int, salt: str, key: str, memo: dict[str, int]) -> int:
    if key not in memo:
        digest = hashlib.blake2b(f"{seed}\x1f{salt}\x1f{key}".encode(), digest_size=8).digest()
        memo[key] = int.from_bytes(digest, "little")
    return memo[key]


def evaluation_order(
    items: Sequence[T], key: Callable[[T], str], stratum: Callable[[T], Hashable], *, salt: str = "",
    seed: int = EVALUATION_SEED, memo: dict[str, int] | None = None,
) -> list[int]:
    """Indices of ``items`` in the stratified, seeded, position-blind order described in the module.

    ``memo`` caches key hashes across calls (MASSIVE: the same ids in 52 locales). Ties between equal
    keys (duplicate rows) are broken by the key and stratum text, so equal rows are interchangeable.
    """
    memo = {} if memo is None else memo
    groups: dict[Hashable, list[tuple[int, str, int]]] = defaultdict(list)
    for i, item in enumerate(items):
        k = key(item)
        groups[stratum(item)].append((_rank(seed, salt, k, memo), k, i))
    total = len(items)
    placed = []
    for name, members in groups.items():
        members.sort()
        share = len(members) / total
        first_rank = _rank(seed, salt, f"stratum\x1f{name}", memo)
        for k, (rank, text, i) in enumerate(members):
            # pass 0: one of every stratum, in a seeded order of strata; then Webster's apportionment
            when = (0, first_rank, 0.0) if k == 0 else (1, 0, (k + 0.5) / share)
            placed.append((when, rank, text, repr(name), i))
    placed.sort()
    return [entry[-1] for entry in placed]


def take_evaluation(
    items: Sequence[T], n: int | None, key: Callable[[T], str], stratum: Callable[[T], Hashable], *,
    salt: str = "", memo: dict[str, int] | None = None,
) -> list[T]:
    """The first ``n`` (None: all) of ``items`` in :func:`evaluation_order`."""
    order = evaluation_order(items, key, stratum, salt=salt, memo=memo)
    return [items[i] for i in order[:n]]


def score_band(score: float, bands: int = 4) -> int:
    """Stratum of a relatedness score in [0, 1]: one of ``bands`` equal-width bands."""
    return min(int(score * bands), bands - 1)
