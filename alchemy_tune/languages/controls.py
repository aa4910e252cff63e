"""Controls for the URIEL targets: vectors that keep the loss and its scale but not the typology.

LinguAlchemy's claim is that URIEL's information about languages helps; "an auxiliary loss on a projection
of the pooled representation regularises" would help as well. A control trains with the same loss against
vectors that carry no such information (``uriel_control``):

- ``shuffled``: every language gets the vector of another language of the task, a derangement of the
  task's distinct vectors (seen and held-out languages alike), so no language keeps its own; two languages
  that share one vector (script twins, macro-language members) move together. Fixed by ``data_seed``.
- ``random``: every observed value is drawn, feature by feature, from that feature's observed values over
  the task's languages (a bootstrap per feature, independently per language), so each feature keeps its
  mean, spread and support (a binary feature stays binary) while no vector says which language it is. A
  language keeps its own missing cells, filled by the configured missing-value policy like a real vector's.

``none`` is the real vectors. Both controls are functions of (the task's languages, the feature set, the
policy, ``data_seed``), so replicates and matched twins see the same control.
"""

from __future__ import annotations

import hashlib
import random
from typing import Sequence

import numpy as np

from alchemy_tune.core.errors import UsageError

CONTROLS = ("none", "shuffled", "random")


def derangement(n: int, seed: object) -> list[int]:
    """A permutation of ``range(n)`` with no fixed point (Sattolo's algorithm: one cycle through all ``n``),
    a function of ``seed``; ``n`` >= 2."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    order = list(range(n))
    rng = random.Random(_seed_int("uriel-control/shuffled", seed, n))
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)  # j < i, never i itself: what makes every item move
        order[i], order[j] = order[j], order[i]
    return order


def apply(control: str, vectors: np.ndarray, observed: np.ndarray, codes: Sequence[str], seed: int) -> np.ndarray:
    """The targets a trial trains towards: ``vectors`` ([languages × dims], gaps already filled by the
    policy) as they are, shuffled among the distinct languages, or drawn at random (module docstring).
    ``observed`` marks the cells that hold a real value; ``codes`` are the languages' URIEL codes (equal
    codes share one vector)."""
    if control == "none":
        return vectors
    if control not in CONTROLS:
        raise UsageError(f"uriel_control: {control!r} is not one of {', '.join(CONTROLS)}")
    distinct = list(dict.fromkeys(codes))
    if control == "shuffled":
        if len(distinct) < 2:
            raise UsageError(f"uriel_control: shuffled needs at least two languages with different URIEL vectors; "
                             f"this task's languages all map to {distinct[0] if distinct else 'nothing'}")
        first = {code: codes.index(code) for code in distinct}  # a row holding each code's vector
        perm = derangement(len(distinct), seed)
        source = {code: first[distinct[perm[i]]] for i, code in enumerate(distinct)}
        return vectors[[source[code] for code in codes]].copy()
    rng = np.random.default_rng(_seed_int("uriel-control/random", seed))
    rows = [codes.index(code) for code in distinct]
    real, seen_cells = vectors[rows], observed[rows]
    drawn = real.copy()
    for j in range(real.shape[1]):
        pool = real[seen_cells[:, j], j]
        if pool.size:
            drawn[seen_cells[:, j], j] = rng.choice(pool, size=int(seen_cells[:, j].sum()))
    by_code = {code: drawn[i] for i, code in enumerate(distinct)}
    return np.stack([by_code[code] for code in codes]).astype(vectors.dtype)


def _seed_int(*parts: object) -> int:
    """A seed from values, the same in every process (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")
