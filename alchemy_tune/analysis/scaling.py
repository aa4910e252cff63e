"""Scaling curves: test score against training examples per language, fitted, checked, and Δ(n) against
plain fine-tuning at every size.

Input is a cube ``Y[size, language, seed]`` of one configuration's test-split scores (NaN = missing), sizes
as numbers. Every interval and test comes from the languages × seeds model of every comparison
(:func:`alchemy_tune.analysis.stats.paired_effect`), applied to the [language × seed] matrix of the quantity at
hand: a size's scores for its mean, the difference of two sizes for a drop, and, for what a fit derives from
the means (parameters, a prediction, a horizontal shift, a crossing), the delta method's matrix of
:mod:`alchemy_tune.analysis.scaling_fit`. Seed effects specific to each size (each size is its own training
run) sit in the model's seed term; a percentile bootstrap over 3 seeds (10 distinct multisets) gave
intervals 2–3× too narrow.

- **Two forms**, each fitted to the mean score per size: a power law with a ceiling,
  ``score(n) = top − a·n^(−b)`` (error = a·n^(−b) + floor, with a, b > 0), and a log-linear
  ``score(n) = p + q·ln n``. The power law is linear in (top, a) once b is fixed, so it is fitted by profiling b
  over a grid from 0.01 to 5 on a log scale and refining the best grid point (no start point to get wrong).
  A fit whose parameters the data do not pin down (:func:`alchemy_tune.analysis.scaling_fit.identified`:
  too few sizes, or an interval of a or b reaching 0 or spanning more than 10×) says so and shows none.
- **Which fits better**: each form's leave-one-size-out error (from 4 sizes for the power law's 3 parameters).
- **Extrapolation check** (Alabdulmohsin et al. 2022): fit without the largest size, predict it; the error
  (prediction − observed) through the model: it fails when p < 0.05, holds within ±m when its 90% interval
  lies inside ±m, and is inconclusive otherwise.
- **Monotonicity** (LCDB 1.1 finds about 14% of learning curves ill-behaved): a drop from one size to the next
  that is significant after Holm's adjustment over the curve's steps flags the curve; a flagged curve is
  reported, not fitted as if it were a law.
- **Data efficiency**: the horizontal shift between two fitted curves (one form) at the baseline's fitted
  score at its largest size, as a ratio of sizes with its interval.
- **Δ(n)**: the paired effect at each size, read as better, worse, equivalent within ±m or inconclusive; the
  trend is the slope of Δ against ln n, per language and seed, through the same model (the size × λ
  interaction), read by the change it implies over the sizes run against ±m; the size where the fitted line
  crosses 0, with its interval, only where the trend is significant and the crossing inside the range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from alchemy_tune.analysis import scaling_fit as F
from alchemy_tune.analysis.scaling_fit import size_means
from alchemy_tune.analysis.stats import (ALPHA, DEFAULT_MARGIN, EQUIVALENT, INCONCLUSIVE, LEVEL, Effect, holm,
                                         paired_effect, reading)

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


# ----------------------------------------------------------------------------- one curve
@dataclass
class Curve:
    """One configuration's scaling curve and what the data say about it."""

    sizes: tuple
    means: tuple
    mean_effects: tuple = ()
    """The model's :class:`Effect` of each size's mean score (its Δ is the mean)."""
    monotone: bool = True
    drops: tuple = ()
    """(from size, to size) pairs where the score fell significantly (Holm over the curve's steps)."""
    steps: tuple = ()
    """The Effect of each step's change (size k+1 − size k)."""
    fits: dict = field(default_factory=dict)
    """form -> {params, effects, intervals, identified, why, held_out_rmse}."""
    better: str | None = None
    extrapolation: dict | None = None
    """{form, size, predicted, observed, error, lo, hi, lo90, hi90, p, reading, consistent}: the largest size
    predicted from the others, by the better form, or by the first form whose check holds where it fails."""
    extrapolations: dict = field(default_factory=dict)
    """form -> the same check by each form, the better one first."""
    notes: tuple = ()
    cube: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)), repr=False)
    """The scores [size, language, seed], sizes in increasing order."""

    @property
    def mean_intervals(self) -> tuple:
        return tuple((e.lo, e.hi) for e in self.mean_effects)


def curve(sizes, cube, *, level: float = LEVEL, margin: float = DEFAULT_MARGIN) -> Curve:
    """Fit and check one configuration's curve (``cube``: [size, language, seed])."""
    sizes = np.asarray(sizes, float)
    order = np.argsort(sizes)
    sizes, cube = sizes[order], np.asarray(cube, float)[order]
    means = size_means(cube)
    steps = tuple(paired_effect(cube[k + 1] - cube[k], level=level) for k in range(len(sizes) - 1))
    adjusted = holm([e.p for e in steps]) if steps else []
    drops = tuple((sizes[k], sizes[k + 1]) for k, (e, p) in enumerate(zip(steps, adjusted))
                  if e.delta < 0 and p < ALPHA)
    out = Curve(tuple(sizes.tolist()), tuple(means.tolist()),
                tuple(paired_effect(cube[k], level=level) for k in range(len(sizes))),
                monotone=not drops, drops=drops, steps=steps, cube=cube)
    if drops:
        out.notes = (f"not monotone: the score falls from {', '.join(f'{a:g} to {b:g}' for a, b in drops)} "
                     "examples (p < 0.05 after Holm over the steps); no curve is fitted to it",)
        return out
    for form, (fit, _, _) in FORMS.items():
        params = fit(sizes, means)
        if params is None:
            continue
        effects = F.parameter_effects(form, params, sizes, cube, level=level)
        ok, why = F.identified(form, params, sizes, effects)
        if at_edge(form, params, sizes):
            ok, why = False, ("no ceiling shows within these sizes (b too close to 0, or a step): top and a are "
                              "not determined, and the log-linear form stands in for it")
        out.fits[form] = {"params": params, "effects": effects, "intervals": tuple((e.lo, e.hi) for e in effects),
                          "identified": ok, "why": why, "held_out_rmse": held_out_error(form, sizes, means)}
    # a power law whose exponent sits at the edge of its range has no ceiling in these sizes: it is the
    # log-linear form in disguise (or a step), with top and a undetermined, so it is never the better form
    scored = {f: v["held_out_rmse"] for f, v in out.fits.items()
              if np.isfinite(v["held_out_rmse"]) and not at_edge(f, v["params"], sizes)}
    out.better = min(scored, key=scored.get) if scored else None
    # each form with a ceiling or a slope is checked; the curve is off its law only when every form misses
    # the largest size (a power law read as log-linear by the held-out error, which picks the wrong form now
    # and then at 3 seeds, misses by the form's bias, not because the data left the law)
    for form in sorted(scored, key=scored.get) or ["log-linear"]:
        x = _extrapolate(sizes, cube, form, level, margin)
        if x is not None:
            out.extrapolations[form] = x
    held = [x for x in out.extrapolations.values() if x["consistent"]]
    out.extrapolation = held[0] if held else next(iter(out.extrapolations.values()), None)
    return out


def at_edge(form: str, params, sizes) -> bool:
    """Whether a power law shows no ceiling within ``sizes``: its exponent so small that n^(−b) is a straight
    line in ln n over them (b·ln(largest/smallest) < 0.1: the log-linear form, with top and a undetermined),
    or at the top of :data:`B_RANGE` (a step)."""
    if form not in BOUNDED:
        return False
    b = params[2]
    return b * math.log(max(sizes) / min(sizes)) < 0.1 or b >= B_RANGE[1] / 1.01


def _extrapolate(sizes, cube, form: str, level: float, margin: float) -> dict | None:
    fit, predict, least = FORMS[form]
    if len(sizes) < least:
        return None
    means = size_means(cube)
    params = fit(sizes[:-1], means[:-1])
    if params is None:
        return None
    e = F.prediction_effect(form, predict, params, sizes[:-1], cube[:-1], float(sizes[-1]), cube[-1], level=level)
    predicted = float(predict(params, sizes[-1:])[0])
    verdict = e.reading(margin)
    return {"form": form, "size": float(sizes[-1]), "predicted": predicted, "observed": float(means[-1]),
            "error": predicted - float(means[-1]), "lo": e.lo, "hi": e.hi, "lo90": e.lo90, "hi90": e.hi90,
            "p": e.p, "reading": "fails" if verdict in ("better", "worse") else verdict,
            "consistent": verdict not in ("better", "worse")}


def size_to_reach(params_form: tuple[str, tuple], target: float) -> float:
    """Examples per language at which a fitted curve reaches ``target`` (inf when it never does)."""
    return F.reach(*params_form, target)


def size_to_match(c: Curve, base: Curve, level: float = LEVEL) -> dict:
    """Data efficiency: the horizontal shift between ``c``'s and ``base``'s fitted curves (the same form) at
    the score ``base``'s fit gives its largest size. ``needs``: the examples per language ``c``'s fit needs
    to get there; ``ratio`` = needs / that largest size (base's fit reaches the target there by
    construction), with the model's interval; "less data" or "more data" when it excludes 1, otherwise
    inconclusive with the range it cannot rule out. Both cubes must hold the same languages and seeds."""
    largest = base.sizes[-1]
    row = {"target_at": largest}
    form = next((f for f in (c.better, base.better) if f and f in c.fits and f in base.fits), None)
    if not (c.monotone and base.monotone) or form is None:
        return {**row, "target": math.nan, "needs": math.nan,
                "reading": "no fitted curve for both (see scaling_fits)"}
    _, predict, _ = FORMS[form]
    target = float(predict(base.fits[form]["params"], [largest])[0])
    row.update(target=target, form=form)
    if c.cube.shape[1:] != base.cube.shape[1:]:
        return {**row, "needs": math.nan, "reading": "the two curves do not hold the same languages and seeds"}
    needs, e = F.shift_effect(form, predict, c.fits[form]["params"], np.asarray(c.sizes), c.cube,
                              base.fits[form]["params"], np.asarray(base.sizes), base.cube, largest, level=level)
    if not np.isfinite(needs):
        return {**row, "needs": math.inf, "ratio": math.inf, "reading": "its fitted curve never reaches the target"}
    # the interval inverts a test over 64× beyond the sizes run on each side: an end it never reached is
    # unbounded (0 or inf), which the words say
    lo, hi = (largest * math.exp(e.lo), largest * math.exp(e.hi)) if not math.isnan(e.lo) else (math.nan, math.nan)
    ratio = needs / largest

    def bound(x: float) -> str:
        return "any smaller amount" if x == 0 else "any larger amount" if x == math.inf else f"{x / largest:.2g}×"

    if np.isfinite(e.p) and e.p < ALPHA:
        reading = f"{'less' if ratio < 1 else 'more'} data: {ratio:.2g}× [{bound(lo)}, {bound(hi)}]"
    elif not math.isnan(lo):
        reading = (f"inconclusive: {ratio:.2g}×; the data cannot rule out from {bound(lo)} to {bound(hi)} "
                   "the data")
    else:
        reading = f"{ratio:.2g}× (no interval)"
    if needs > max(c.sizes):
        reading += "; beyond the sizes run: an extrapolation"
    if not c.fits[form]["identified"] or not base.fits[form]["identified"]:
        reading += "; read off a fit whose parameters the data do not identify"
    return {**row, "needs": needs, "needs_lo": lo, "needs_hi": hi, "ratio": ratio, "ratio_lo": lo / largest,
            "ratio_hi": hi / largest, "p": e.p, "reading": reading}


# ----------------------------------------------------------------------------- Δ(n)
@dataclass
class DeltaTrend:
    """Δ (configuration − matched baseline) at each size, and how it changes with size."""

    sizes: tuple
    effects: tuple
    """An :class:`~alchemy_tune.analysis.stats.Effect` per size."""
    slope: Effect
    """Change of Δ per unit of ln n (per e-fold of data): the size × λ interaction."""
    margin: float = DEFAULT_MARGIN
    crossing: float | None = None
    crossing_interval: tuple = (math.nan, math.nan)
    words: str = ""

    @property
    def span(self) -> float:
        """ln(largest / smallest size): the slope times this is Δ's change over the sizes run."""
        return math.log(self.sizes[-1] / self.sizes[0])

    @property
    def change(self) -> dict:
        """The change of Δ the trend implies over the sizes run, its intervals, and its reading against ±m."""
        s, r = self.slope, self.span
        out = {"change": s.delta * r, "change_lo": s.lo * r, "change_hi": s.hi * r, "change_lo90": s.lo90 * r,
               "change_hi90": s.hi90 * r}
        out["reading"] = reading(out["change"], out["change_lo90"], out["change_hi90"], s.p, self.margin,
                                 identical=s.identical)
        return out


def delta_trend(sizes, treated, baseline, *, level: float = LEVEL, languages=None,
                margin: float = DEFAULT_MARGIN) -> DeltaTrend:
    """``treated``, ``baseline``: [size, language, seed] cubes of test scores on the same languages and
    seeds (the pairing). Δ per size from the languages × seeds model; the trend from the per-cell slopes of
    Δ on ln n through the same model; where Δ = 0 by the fitted line, with the model's interval."""
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
    trend = DeltaTrend(tuple(sizes.tolist()), effects, slope, margin=margin)
    # where Δ changes sign is read off the fitted line only when the data show a trend: a flat line's
    # crossing is anywhere its noise puts it
    if np.isfinite(slope.p) and slope.p < ALPHA:
        at, e = F.crossing_effect(sizes, d, level=level)
        if np.isfinite(at) and sizes[0] <= at <= sizes[-1]:
            trend.crossing = at
            trend.crossing_interval = (math.exp(e.lo), math.exp(e.hi)) if np.isfinite(e.lo) else (math.nan,) * 2
    trend.words = _words(trend)
    return trend


def effect_words(e: Effect, margin: float, what: str = "Δ") -> str:
    """One comparison in the four readings: better / worse with its interval, equivalent within ±m (the 90%
    interval inside), or inconclusive with the effects it cannot rule out; never 'no effect'."""
    r = e.reading(margin)
    if not r:
        return f"{what}: no estimate"
    if r == "identical":
        return f"{what} {e.delta:+.3f} in every cell (identical)"
    text = f"{what} {e.delta:+.3f} [95% CI {e.lo:+.3f}, {e.hi:+.3f}]"
    if r == EQUIVALENT:
        return f"{text}, equivalent within ±{margin:.3g} (90% CI [{e.lo90:+.4f}, {e.hi90:+.4f}])"
    if r == INCONCLUSIVE:
        return f"{text}, inconclusive (neither a difference nor equivalence within ±{margin:.3g} is shown)"
    return f"{text}, {r}"


def _words(t: DeltaTrend) -> str:
    s = t.slope
    if not np.isfinite(s.delta):
        return "no trend can be estimated"
    c = t.change
    over = f"over {t.sizes[0]:g}→{t.sizes[-1]:g} examples per language"
    sig = c["reading"] in ("better", "worse")
    if sig:
        text = (f"Δ {'rises' if s.delta > 0 else 'falls'} with data: by {abs(c['change']):.3f} {over} "
                f"[95% CI {c['change_lo']:+.3f}, {c['change_hi']:+.3f}], p = {s.p:.2g}")
    elif c["reading"] == EQUIVALENT:
        text = (f"Δ's change {over} is within ±{t.margin:.3g} ({c['change']:+.3f}, 90% CI "
                f"[{c['change_lo90']:+.3f}, {c['change_hi90']:+.3f}]): equivalent to a constant Δ")
    elif c["reading"] == "identical":
        text = f"Δ is the same at every size and in every cell ({t.effects[0].delta:+.3f})"
    else:
        text = (f"the trend is inconclusive: Δ's change {over} is {c['change']:+.3f}, p = {s.p:.2g}; the data "
                f"cannot rule out changes from {c['change_lo']:+.3f} to {c['change_hi']:+.3f}")
    if t.crossing is not None:
        lo, hi = t.crossing_interval
        text += (f"; the fitted Δ is 0 at about {t.crossing:.0f} examples per language"
                 + (f" [{lo:.0f}, {hi:.0f}]" if np.isfinite(lo) else ""))
    elif sig:
        text += "; the fitted line keeps one sign over the sizes run"
    else:
        signs = {np.sign(e.delta) for e in t.effects if np.isfinite(e.delta) and e.delta != 0}
        text += ("; the per-size estimates change sign, but without a trend the data do not locate where Δ "
                 "crosses 0" if len(signs) > 1 else "")
    return text
