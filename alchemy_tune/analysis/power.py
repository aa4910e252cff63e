"""Power planned before a run: what a design of L languages × S seeds can detect, and the seeds or languages
an equivalence margin needs, under prior variance components (a pilot's, or stated defaults).

Every figure is the pivot of :mod:`alchemy_tune.analysis.stats` evaluated at the mean squares' expected
values, plus the normal spread of Δ̂ around the truth: a planning approximation, which ``tests/test_stats.py``
checks against the whole procedure by simulation. Nothing here reads a run's own sample: a "detectable
effect" from the sample's realised standard error only restates its p-value (Hoenig & Heisey 2001).
"""

from __future__ import annotations

import math

from alchemy_tune.analysis.stats import ALPHA, POWER, _pivot, _special


ASSUMED = {"sd_language": 0.01, "sd_seed": 0.005, "sd_residual": 0.01}
"""Variance components `plan` assumes without a prior run: one accuracy point between languages and for
the residual (interaction and test-example sampling), half a point between seeds."""


def _expected(n_lang: int, n_seed: int, sd_language: float, sd_seed: float, sd_residual: float):
    """(the mean squares at their expectations, the true SE of Δ̂) of a design."""
    e = sd_residual**2
    if n_seed == 1:  # one seed: the seed effect and the residual hide in the languages' spread
        squares = {"lang": (e + n_lang * sd_seed**2 + sd_language**2, n_lang - 1)}
    elif n_lang == 1:
        squares = {"seed": (e + n_seed * sd_language**2 + sd_seed**2, n_seed - 1)}
    else:
        squares = {"lang": (e + n_seed * sd_language**2, n_lang - 1), "seed": (e + n_lang * sd_seed**2, n_seed - 1),
                   "e": (e, (n_lang - 1) * (n_seed - 1))}
    se = math.sqrt(sd_language**2 / n_lang + sd_seed**2 / n_seed + e / (n_lang * n_seed))
    return squares, se


def design_mde(n_lang: int, n_seed: int, sd_language: float, sd_seed: float, sd_residual: float, *,
               alpha: float = ALPHA, power: float = POWER) -> float:
    """A priori: the smallest |Δ| a design of ``n_lang`` languages × ``n_seed`` seeds detects with ``power``
    at ``alpha`` (two-sided) under given variance components (a pilot's, or :data:`ASSUMED`): the interval's
    half-width at the expected mean squares plus z_power true standard errors (Δ̂ is normal about Δ). A
    planning figure, checked against the whole procedure by simulation in ``tests/test_stats.py``."""
    squares, se = _expected(n_lang, n_seed, sd_language, sd_seed, sd_residual)
    if min(f for _, f in squares.values()) < 1 or se <= 0:
        return math.nan
    pivot, _, _ = _pivot(squares, n_lang * n_seed)
    return pivot.half(alpha / 2) + float(_special().ndtri(power)) * se


def design_margin(n_lang: int, n_seed: int, sd_language: float, sd_seed: float, sd_residual: float, *,
                  power: float = POWER) -> float:
    """A priori: the smallest margin m within which a design shows equivalence (its 90% interval inside
    ±m) with ``power`` when the true Δ is 0: the 90% half-width at the expected mean squares plus
    z_{(1+power)/2} true standard errors."""
    squares, se = _expected(n_lang, n_seed, sd_language, sd_seed, sd_residual)
    if min(f for _, f in squares.values()) < 1 or se <= 0:
        return math.nan
    pivot, _, _ = _pivot(squares, n_lang * n_seed)
    return pivot.half(0.05) + float(_special().ndtri((1 + power) / 2)) * se


def seeds_for_margin(n_lang: int, margin: float, sd_language: float, sd_seed: float, sd_residual: float, *,
                     power: float = POWER, most: int = 50) -> int | None:
    """The fewest seeds (2 … ``most``) with which ``n_lang`` languages show equivalence within ``margin``
    with ``power`` when the true Δ is 0 (:func:`design_margin`); None when even ``most`` do not."""
    for n_seed in range(2, most + 1):
        if design_margin(n_lang, n_seed, sd_language, sd_seed, sd_residual, power=power) <= margin:
            return n_seed
    return None


def languages_for_margin(n_seed: int, margin: float, sd_language: float, sd_seed: float, sd_residual: float, *,
                         power: float = POWER, most: int = 5000) -> int | None:
    """The fewest test languages (2 … ``most``) with which ``n_seed`` seeds show equivalence within
    ``margin`` with ``power`` when the true Δ is 0 (:func:`design_margin` falls as languages are added);
    None when even ``most`` do not (the seed component alone keeps the interval wider)."""
    def enough(n_lang: int) -> bool:
        return design_margin(n_lang, n_seed, sd_language, sd_seed, sd_residual, power=power) <= margin

    if n_seed < 2 or not enough(most):
        return None
    lo, hi = 2, most
    while lo < hi:  # bisection on a quantity that falls with the number of languages
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
    return lo
