"""Scaling curves: test score against training examples per language, fitted, checked, and Δ(n) against
plain fine-tuning at every size.

Input is a cube ``Y[size, language, seed]`` of one configuration's test-split scores (NaN = missing), sizes
as numbers. Every interval comes from resampling the units the comparisons of :mod:`alchemy_tune.analysis.stats`
sample (languages and seeds, both with replacement, the same draw at every size so the curve keeps its
pairing), never from the scatter of points around a curve (Besiroglu et al. 2024: resampling the wrong unit
gives intervals far too narrow).

- **Two forms**, each fitted to the mean score per size: a power law with a ceiling,
  ``score(n) = top − a·n^(−b)`` (error = a·n^(−b) + floor, with a, b > 0), and a log-linear
  ``score(n) = p + q·ln n``. The power law is linear in (top, a) once b is fixed, so it is fitted by profiling b
  over a grid from 0.01 to 5 on a log scale and refining the best grid point (no start point to get wrong).
- **Which fits better**: each form's leave-one-size-out error (from 4 sizes for the power law's 3 parameters).
- **Extrapolation check** (Alabdulmohsin et al. 2022): fit without the largest size, predict it; the error, and
  whether the resampled difference (prediction − observed) has an interval that contains 0.
- **Monotonicity** (LCDB 1.1 finds about 14% of learning curves ill-behaved): a drop from one size to the next
  whose resampled interval lies below 0 flags the curve; a flagged curve is reported, not fitted as if it were
  a law.
- **Δ(n)**: the paired effect of :func:`alchemy_tune.analysis.stats.paired_effect` at each size; the trend is the
  slope of Δ against ln n, per language and seed, put through the same languages × seeds model (the size ×
  λ interaction); the size where the fitted line crosses 0, with its resampled interval, where the data put
  it inside the range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from alchemy_tune.analysis.stats import LEVEL, Effect, paired_effect

N_BOOT = 400
B_RANGE = (0.01, 5.0)
"""The power law's exponent is searched within this range; a fit at either edge is reported as such."""
BOUNDED = ("power law with a ceiling",)
_B_GRID = np.exp(np.linspace(math.log(B_RANGE[0]), math.log(B_RANGE[1]), 120))


# ----------------------------------------------------------------------------- the two forms
def fit_power(n, y) -> tuple[float, float, float] | None:
    """(top, a, b) of ``y ≈ top − a·n^(−b)`` by least squares, a > 0 and b in [0.01, 5]; None when fewer
    than 3 sizes or no increasing curve fits."""
    n, y = np.asarray(n, float), np.asarray(y, float)
    keep = np.isfinite(y)
    if len(np.unique(n[keep])) < 3:
        return None
    top, a, b = fit_power_rows(n[keep], y[keep][None, :])[0]
    return None if math.isnan(b) else (float(top), float(a), float(b))


def _profile(n: np.ndarray, Y: np.ndarray, B: np.ndarray):
    """For each row of ``Y`` [m, k] and each exponent of ``B`` ([g] or [m, g]): the least-squares (top, a) of
    ``Y ≈ top − a·n^(−b)`` in closed form (a simple regression on x = n^(−b)) and its sum of squares; the sum
    is inf where a ≤ 0 (a curve that does not rise)."""
    X = n ** -(B[..., None])  # [g, k] or [m, g, k]
    xm = X.mean(-1, keepdims=True)
    xc = X - xm
    sxx = (xc ** 2).sum(-1)
    yc = Y - Y.mean(1, keepdims=True)
    sxy = np.einsum("mk,gk->mg", yc, xc) if X.ndim == 2 else np.einsum("mk,mgk->mg", yc, xc)
    a = -sxy / sxx
    top = Y.mean(1, keepdims=True) + a * xm[..., 0]
    sse = (yc ** 2).sum(1, keepdims=True) - sxy ** 2 / sxx
    return top, a, np.where(a > 0, sse, np.inf)


def fit_power_rows(n, Y) -> np.ndarray:
    """:func:`fit_power` of every row of ``Y`` [m, sizes] at once (no NaN): [m, 3] of (top, a, b), NaN where
    no increasing curve fits. The exponent is profiled on a log grid, then on a finer grid between the best
    point's neighbours: closed-form algebra only, so a bootstrap of hundreds of curves stays cheap."""
    n, Y = np.asarray(n, float), np.atleast_2d(np.asarray(Y, float))
    m = len(Y)
    _, _, sse = _profile(n, Y, _B_GRID)
    i = np.argmin(sse, axis=1)
    lo = _B_GRID[np.maximum(i - 1, 0)]
    hi = _B_GRID[np.minimum(i + 1, len(_B_GRID) - 1)]
    fine = lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, 81)[None, :]  # [m, 81]
    top, a, sse_f = _profile(n, Y, fine)
    j = np.argmin(sse_f, axis=1)
    rows = np.arange(m)
    out = np.column_stack([top[rows, j], a[rows, j], fine[rows, j]])
    out[~np.isfinite(sse_f[rows, j])] = np.nan
    return out


def power(params, n) -> np.ndarray:
    top, a, b = params
    return top - a * np.asarray(n, float) ** (-b)


def fit_loglinear(n, y) -> tuple[float, float] | None:
    """(p, q) of ``y ≈ p + q·ln n``; None with fewer than 2 sizes."""
    n, y = np.asarray(n, float), np.asarray(y, float)
    keep = np.isfinite(y)
    if len(np.unique(n[keep])) < 2:
        return None
    q, p = np.polyfit(np.log(n[keep]), y[keep], 1)
    return float(p), float(q)


def loglinear(params, n) -> np.ndarray:
    p, q = params
    return p + q * np.log(np.asarray(n, float))


FORMS = {"power law with a ceiling": (fit_power, power, 4), "log-linear": (fit_loglinear, loglinear, 3)}
"""name -> (fit, predict, fewest sizes for a held-out error)."""


def held_out_error(form: str, n, y) -> float:
    """Root mean square error predicting each size from a fit on the others (NaN: too few sizes)."""
    fit, predict, least = FORMS[form]
    n, y = np.asarray(n, float), np.asarray(y, float)
    if len(n) < least:
        return math.nan
    errors = []
    for k in range(len(n)):
        rest = np.arange(len(n)) != k
        params = fit(n[rest], y[rest])
        if params is None:
            return math.nan
        errors.append(float(predict(params, n[k:k + 1])[0] - y[k]))
    return float(np.sqrt(np.mean(np.square(errors))))


# ----------------------------------------------------------------------------- resampling
def _draws(cube: np.ndarray, n_boot: int, seed: int):
    """Resampled cubes: languages and seeds drawn with replacement, the same draw at every size."""
    rng = np.random.default_rng(seed)
    _, n_lang, n_seed = cube.shape
    for _ in range(n_boot):
        langs = rng.integers(0, n_lang, n_lang)
        seeds = rng.integers(0, n_seed, n_seed)
        yield cube[:, langs][:, :, seeds]


def size_means(cube: np.ndarray) -> np.ndarray:
    """Mean score per size over the languages × seeds cells that have one."""
    with np.errstate(invalid="ignore"):
        return np.nanmean(cube.reshape(cube.shape[0], -1), axis=1)


def quantile_interval(values, level: float = LEVEL) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if len(v) < 10:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    return float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))


@dataclass
class Curve:
    """One configuration's scaling curve and what the data say about it."""

    sizes: tuple
    means: tuple
    mean_intervals: tuple
    monotone: bool = True
    drops: tuple = ()
    """(from size, to size) pairs where the score fell beyond its uncertainty."""
    fits: dict = field(default_factory=dict)
    """form -> {params, intervals (per parameter), held_out_rmse}."""
    better: str | None = None
    extrapolation: dict | None = None
    """{size, predicted, observed, error, lo, hi, consistent}: the largest size predicted from the others."""
    notes: tuple = ()
    boot_means: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """[draw, size] mean scores of the bootstrap draws (the same draws for every cube of one shape)."""


def curve(sizes, cube, *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> Curve:
    """Fit, check and bootstrap one configuration's curve (``cube``: [size, language, seed])."""
    sizes = np.asarray(sizes, float)
    order = np.argsort(sizes)
    sizes, cube = sizes[order], np.asarray(cube, float)[order]
    means = size_means(cube)
    boots = [size_means(c) for c in _draws(cube, n_boot, seed)]
    mean_iv = tuple(quantile_interval([b[k] for b in boots], level) for k in range(len(sizes)))
    drops = tuple((sizes[k], sizes[k + 1]) for k in range(len(sizes) - 1)
                  if quantile_interval([b[k + 1] - b[k] for b in boots], level)[1] < 0)
    out = Curve(tuple(sizes.tolist()), tuple(means.tolist()), mean_iv, monotone=not drops, drops=drops,
                boot_means=np.asarray(boots))
    if drops:
        out.notes = (f"not monotone: the score falls from {', '.join(f'{a:g} to {b:g}' for a, b in drops)} "
                     "examples beyond its uncertainty; no curve is fitted to it",)
        return out
    for form, (fit, predict, _) in FORMS.items():
        params = fit(sizes, means)
        if params is None:
            continue
        refits = _refits(form, sizes, boots)
        intervals = tuple(quantile_interval([r[i] if r is not None else None for r in refits], level)
                          for i in range(len(params)))
        out.fits[form] = {"params": params, "intervals": intervals,
                          "held_out_rmse": held_out_error(form, sizes, means), "boot": refits}
    # a power law whose exponent sits at the edge of its range has no ceiling in these sizes: it is the
    # log-linear form in disguise (or a step), with top and a undetermined, so it is never the better form
    scored = {f: v["held_out_rmse"] for f, v in out.fits.items()
              if np.isfinite(v["held_out_rmse"]) and not at_edge(f, v["params"], sizes)}
    out.better = min(scored, key=scored.get) if scored else None
    out.extrapolation = _extrapolate(sizes, means, boots, out.better or "log-linear", level)
    return out


def at_edge(form: str, params, sizes) -> bool:
    """Whether a power law shows no ceiling within ``sizes``: its exponent so small that n^(−b) is a straight
    line in ln n over them (b·ln(largest/smallest) < 0.1: the log-linear form, with top and a undetermined),
    or at the top of :data:`B_RANGE` (a step)."""
    if form not in BOUNDED:
        return False
    b = params[2]
    return b * math.log(max(sizes) / min(sizes)) < 0.1 or b >= B_RANGE[1] / 1.01


def _refits(form: str, sizes, boots) -> list:
    """The fit of each bootstrap draw (None where none fits); the power law's all at once where no draw has
    a missing size."""
    fit = FORMS[form][0]
    Y = np.asarray(boots, float)
    if form == "power law with a ceiling" and len(Y) and np.isfinite(Y).all() and len(np.unique(sizes)) >= 3:
        return [None if math.isnan(r[2]) else tuple(map(float, r)) for r in fit_power_rows(sizes, Y)]
    return [fit(sizes, b) for b in Y]


def _extrapolate(sizes, means, boots, form: str, level: float) -> dict | None:
    fit, predict, least = FORMS[form]
    if len(sizes) < least:
        return None
    params = fit(sizes[:-1], means[:-1])
    if params is None:
        return None
    predicted = float(predict(params, sizes[-1:])[0])
    refits = _refits(form, sizes[:-1], [b[:-1] for b in boots])
    differences = [None if p is None else float(predict(p, sizes[-1:])[0] - b[-1]) for p, b in zip(refits, boots)]
    lo, hi = quantile_interval(differences, level)
    return {"form": form, "size": float(sizes[-1]), "predicted": predicted, "observed": float(means[-1]),
            "error": predicted - float(means[-1]), "lo": lo, "hi": hi,
            "consistent": bool(np.isfinite(lo) and lo <= 0 <= hi)}


def size_to_reach(params_form: tuple[str, tuple], target: float) -> float:
    """Examples per language at which a fitted curve reaches ``target`` (inf when it never does)."""
    form, params = params_form
    if form == "log-linear":
        p, q = params
        return math.exp((target - p) / q) if q > 0 else math.inf
    top, a, b = params
    return (a / (top - target)) ** (1 / b) if top > target else math.inf


def size_to_match(c: Curve, base: Curve, level: float = LEVEL) -> dict:
    """Data efficiency: the examples per language ``c`` needs, by its better fit, to reach ``base``'s mean
    score at ``base``'s largest size. The interval comes from the bootstrap draws (the same languages and seeds
    for both curves when their cubes have one shape); a draw whose curve never reaches the target counts as
    infinitely many examples, so the interval can be open ("never")."""
    target, largest = base.means[-1], base.sizes[-1]
    row = {"target": target, "target_at": largest}
    if not c.monotone or c.better is None:
        return {**row, "needs": math.nan, "reading": "no fitted curve (see scaling_fits)"}
    fit = c.fits[c.better]
    needs = size_to_reach((c.better, fit["params"]), target)
    draws = np.asarray([size_to_reach((c.better, p), t) for p, t in zip(fit["boot"], base.boot_means[:, -1])
                        if p is not None], float)
    lo, hi = (np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], method="nearest").tolist()
              if len(draws) >= 10 else (math.nan, math.nan))
    if not np.isfinite(needs):
        reading = "its fitted curve never reaches the baseline's score"
    elif needs <= largest:
        reading = f"reaches it with {needs / largest:.2g}× the data"
    else:
        reading = "beyond the sizes run: an extrapolation"
    if not base.monotone or (base.extrapolation is not None and not base.extrapolation["consistent"]):
        reading += ("; the baseline's own curve is ill-behaved (not monotone, or its largest size off its fit): "
                    "a target to read with care")
    return {**row, "form": c.better, "needs": needs, "needs_lo": lo, "needs_hi": hi, "reading": reading}


# ----------------------------------------------------------------------------- Δ(n)
@dataclass
class DeltaTrend:
    """Δ (configuration − matched baseline) at each size, and how it changes with size."""

    sizes: tuple
    effects: tuple
    """An :class:`~alchemy_tune.analysis.stats.Effect` per size."""
    slope: Effect
    """Change of Δ per unit of ln n (per e-fold of data): the size × λ interaction."""
    crossing: float | None = None
    crossing_interval: tuple = (math.nan, math.nan)
    words: str = ""


def delta_trend(sizes, treated, baseline, *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL,
                languages=None) -> DeltaTrend:
    """``treated``, ``baseline``: [size, language, seed] cubes of test scores on the same languages and
    seeds (the pairing). Δ per size from the languages × seeds model; the trend from the per-cell slopes of
    Δ on ln n through the same model; where Δ = 0 by the fitted line, with a resampled interval."""
    sizes = np.asarray(sizes, float)
    order = np.argsort(sizes)
    sizes = sizes[order]
    d = (np.asarray(treated, float) - np.asarray(baseline, float))[order]
    effects = tuple(paired_effect(d[k], level=level, index=languages) for k in range(len(sizes)))
    x = np.log(sizes)
    xc = x - x.mean()
    with np.errstate(invalid="ignore"):
        slopes = np.nansum(xc[:, None, None] * (d - np.nanmean(d, axis=0)), axis=0) / (xc ** 2).sum()
    slopes[np.isnan(d).any(axis=0)] = np.nan  # a cell missing at a size has no slope of its own
    slope = paired_effect(slopes, level=level, index=languages)
    trend = DeltaTrend(tuple(sizes.tolist()), effects, slope)

    def crossing(cube) -> float | None:
        m = np.nanmean(cube.reshape(len(sizes), -1), axis=1)
        q, p = np.polyfit(x, m, 1)
        if not (np.isfinite(q) and np.isfinite(p)) or q == 0:
            return None
        ln_at = -p / q  # compared on the log scale: a flat line crosses 0 far outside any size
        return math.exp(ln_at) if x[0] <= ln_at <= x[-1] else None

    # where Δ changes sign is read off the fitted line only when the data show a trend: a flat line's
    # crossing is anywhere its noise puts it
    trend.crossing = crossing(d) if np.isfinite(slope.p) and slope.p < 1 - level else None
    if trend.crossing is not None:
        trend.crossing_interval = quantile_interval([crossing(c) for c in _draws(d, n_boot, seed)], level)
    trend.words = _words(trend)
    return trend


def _words(t: DeltaTrend) -> str:
    s = t.slope
    if not np.isfinite(s.delta):
        return "no trend can be estimated"
    direction = "falls" if s.delta < 0 else "rises"  # signed: a negative Δ that falls grows in size
    sig = np.isfinite(s.p) and s.p < 1 - LEVEL
    text = (f"Δ {direction} by {abs(s.delta):.3f} per e-fold of data [95% CI {s.lo:+.3f}, {s.hi:+.3f}], "
            f"p = {s.p:.2g}" + ("" if sig else " (no trend at the 95% level)"))
    if t.crossing is not None:
        lo, hi = t.crossing_interval
        text += (f"; the fitted Δ is 0 at about {t.crossing:.0f} examples per language "
                 f"[{lo:.0f}, {hi:.0f}]" if np.isfinite(lo) else f"; the fitted Δ is 0 at about {t.crossing:.0f}")
    elif sig:
        text += "; Δ does not change sign within the sizes run"
    else:
        text += "; so no size where Δ changes sign"
    return text
