"""Statistics of paired comparisons: one model for every Δ, its interval, its test and its reading; item
intervals; Holm.

A paired comparison is a matrix ``D[language, replicate]`` of differences (configuration − its matched
baseline, same language, same training seed and data subset). Both dimensions are samples: the languages
scored stand for others like them, and the replicates for other draws of the training randomness (and of the
data subset, where the replicates vary it). :func:`paired_effect` fits

    D[l, s] = Δ + a_l + b_s + e_ls,   a ~ N(0, σ²_lang), b ~ N(0, σ²_seed), e ~ N(0, σ²_e)

(a two-way crossed random-effects model without replication: ``e`` holds the language × seed interaction
and the sampling of the test examples). Δ̂ is the mean of the cells and

    L·S·Var(Δ̂) = σ²_e + S·σ²_lang + L·σ²_seed = θ_lang + θ_seed − θ_e,

where θ_q is the expectation of the ANOVA mean square MS_q (f_q degrees of freedom, MS_q·f_q/θ_q ~ χ²_f_q,
the three independent). The interval and the test come from the **generalized pivotal quantity** of Δ
(Weerahandi 1993; its fiducial justification: Hannig, Iyer & Patterson 2006)

    R = Δ̂ − Z·√(V*/(L·S)),   V* = max(θ*_lang, θ*_e) + max(θ*_seed − θ*_e, 0),   θ*_q = MS_q·f_q / U_q,

with Z standard normal and U_q ~ χ²_f_q, every draw kept inside the parameter space (θ_lang, θ_seed ≥ θ_e).
Its distribution is a mixture of normals over the draws of (U_lang, U_seed, U_e): the interval is its
quantiles and the p-value twice its smaller tail at 0, both from the same mixture, so the 95% interval
excludes 0 exactly when p < 0.05, and the 90% interval is the pair of one-sided 5% tests of an equivalence
margin (TOST). The χ² draws are stratified (their quantiles at evenly spaced probabilities, each component
in its own fixed random order) so the result is the same on every run. With one seed (or one language) R is
Student's t over the languages (seeds) alone, and the result says so.

A simpler method of moments with Satterthwaite's degrees of freedom rejects a true null too often when the
seed component is large and the seeds are few (3 seeds: 6.4%; truncating a component at 0 breaks its
degrees of freedom); ``benchmarks/stats_calibration.py`` measures both side by side.

Differences are rounded to 12 decimals before anything else: scores are counts over a test set or
correlations, so a language with no change is exactly 0 and equal changes are exactly equal, whatever the
floating-point round-off of the means they came from.

References: S. Weerahandi (1993), "Generalized confidence intervals", JASA 88(423); J. Hannig, H. Iyer,
P. Patterson (2006), "Fiducial generalized confidence intervals", JASA 101(473); R. K. Burdick, F. A.
Graybill (1992), *Confidence Intervals on Variance Components*; S. R. Searle, G. Casella, C. E. McCulloch
(1992), *Variance Components*, ch. 4; D. Lakens (2017), "Equivalence tests", Soc. Psychol. Personal. Sci.
8(4); F. Yates (1933) for the least-squares value of a missing cell.

Example:
    >>> import numpy as np
    >>> e = paired_effect(np.array([[0.02, 0.01, 0.03], [0.03, 0.00, 0.02], [0.01, 0.02, 0.02]]))
    >>> bool(e.lo <= e.lo90 <= e.delta <= e.hi90 <= e.hi) and e.languages == 3 and e.seeds == 3
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from alchemy_tune.core.numbers import exact

LEVEL = 0.95
ALPHA = 0.05
POWER = 0.8
N_RESAMPLES = 4000
N_DRAWS = 2000
"""Draws of the generalized pivotal quantity per comparison (stratified: its tails are smooth at this size)."""

DEFAULT_MARGINS = {"accuracy": 0.01, "macro_f1": 0.01, "pearson": 0.01}
"""The equivalence margin of each primary metric when neither the space (``search.margin``) nor ``analyze
--margin`` declares one: one accuracy point (one F1 point; 0.01 of Pearson's r), the smallest change the
paper's tables report as a difference."""
DEFAULT_MARGIN = 0.01

BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, IDENTICAL = "better", "worse", "equivalent", "inconclusive", "identical"
READINGS = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, IDENTICAL)
"""How a comparison reads: significantly better or worse (two-sided, 5%), equivalent within ±margin (both
one-sided tests at 5%: the 90% interval inside ±margin), neither (inconclusive), or every paired score equal."""


def _special():
    import scipy.special  # on use: scipy.special is the heaviest import of `analyze`

    return scipy.special


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` (real) degrees of freedom."""
    return float(_special().stdtrit(df, q))


def t_two_sided_p(t: float, df: float) -> float:
    return float(2 * _special().stdtr(df, -abs(t)))


@dataclass(frozen=True)
class Effect:
    """Δ of one paired comparison, its intervals, test and design, from one model (:func:`paired_effect`)."""

    delta: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    p: float = math.nan
    se: float = math.nan
    """The standard error at the fitted components (descriptive: the interval comes from the pivot)."""
    df: float = math.nan
    """Satterthwaite's degrees of freedom at the fitted components (descriptive)."""
    languages: int = 0
    seeds: int = 0
    missing: int = 0
    """Cells (language × seed) with no score, filled by the additive model (one residual df less each)."""
    dropped: tuple = ()
    """Languages with no score in any seed: left out of this comparison."""
    sd_language: float = math.nan
    sd_seed: float = math.nan
    sd_residual: float = math.nan
    caveats: tuple = field(default=())
    variances: tuple = (math.nan, math.nan, math.nan)
    """(σ²_lang, σ²_seed, σ²_e) by the method of moments, not truncated (unbiased, possibly negative): what
    a pilot pools over its comparisons to plan the next design (truncated sds averaged run low)."""
    lo90: float = math.nan
    hi90: float = math.nan
    """The 90% interval: inside ±m exactly when both one-sided tests of equivalence within m reject at 5%."""
    identical: bool = False
    """Every paired score equal: no interval or test is meaningful, and the reading says so."""
    pivot: object = field(default=None, repr=False, compare=False)
    """The pivot's draws (for intervals at other levels: :meth:`interval`); None without variation."""

    @property
    def halfwidth(self) -> float:
        """Half the width of the 95% interval: the precision this comparison achieved (not its power)."""
        return (self.hi - self.lo) / 2

    def interval(self, level: float) -> tuple[float, float]:
        """The interval at another level (e.g. 1 − 0.05/m for Bonferroni's simultaneous intervals)."""
        if self.pivot is None:
            return (self.delta, self.delta) if self.identical else (math.nan, math.nan)
        h = self.pivot.half((1 - level) / 2)
        return self.delta - h, self.delta + h

    def reading(self, margin: float | None, p: float | None = None) -> str:
        """:func:`reading` of this effect (``p``: an adjusted p-value to decide on, e.g. Holm's)."""
        return reading(self.delta, self.lo90, self.hi90, self.p if p is None else p, margin,
                       identical=self.identical)

    def as_dict(self) -> dict:
        return {"delta": self.delta, "lo": self.lo, "hi": self.hi, "p": self.p, "se": self.se, "df": self.df,
                "lo90": self.lo90, "hi90": self.hi90, "languages": self.languages, "seeds": self.seeds,
                "missing": self.missing, "dropped": list(self.dropped), "halfwidth": self.halfwidth,
                "identical": self.identical, "caveats": list(self.caveats),
                "sd_language": self.sd_language, "sd_seed": self.sd_seed, "sd_residual": self.sd_residual,
                "var_language": self.variances[0], "var_seed": self.variances[1], "var_residual": self.variances[2]}


def reading(delta: float, lo90: float, hi90: float, p: float, margin: float | None, *, identical: bool = False,
            alpha: float = ALPHA) -> str:
    """better / worse (p < alpha, on the side of Δ), equivalent (the 90% interval inside ±margin: both
    one-sided tests at 5%), inconclusive (neither), identical (every paired score equal); "" without a Δ."""
    if identical:
        return IDENTICAL
    if delta is None or math.isnan(delta):
        return ""
    if p is not None and p < alpha:
        return BETTER if delta > 0 else WORSE
    if margin is not None and margin > 0 and -margin < lo90 and hi90 < margin:
        return EQUIVALENT
    return INCONCLUSIVE


def min_detectable(se: float, df: float, *, alpha: float = ALPHA, power: float = POWER) -> float:
    if not (se > 0 and df > 0):
        return math.nan
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * se


class Pivot:
    """The generalized pivotal quantity R = Δ̂ − Z·s of one comparison, by its draws of s (module docstring).
    R is symmetric about Δ̂, so an interval is Δ̂ ± the half-width h with P(R < Δ̂ − h) = its tail."""

    def __init__(self, scales: np.ndarray, df: float | None = None):
        self.s = scales
        self.t_df = df  # one mean square: R is exactly Δ̂ − t_df · s

    def tail(self, h: float) -> float:
        """P(R < Δ̂ − h) for h ≥ 0."""
        if self.t_df is not None:
            return float(_special().stdtr(self.t_df, -h / self.s[0]))
        return float(_special().ndtr(-h / self.s).mean())

    def half(self, tail: float) -> float:
        """h with P(R < Δ̂ − h) = ``tail``: Newton's method on the mixture's tail (smooth and falling in h),
        kept inside a shrinking bracket."""
        if self.t_df is not None:
            return -t_quantile(tail, self.t_df) * float(self.s[0])
        sp = _special()
        s = self.s
        lo, hi = 0.0, float(s.max()) * 50
        h = -float(sp.ndtri(tail)) * float(np.median(s))
        for _ in range(100):
            z = h / s
            gap = float(sp.ndtr(-z).mean()) - tail
            if abs(gap) <= tail * 1e-10:
                break
            lo, hi = (h, hi) if gap > 0 else (lo, h)
            slope = float((np.exp(-0.5 * z * z) / s).mean()) / math.sqrt(2 * math.pi)
            step = h + gap / slope if slope > 0 else math.nan
            h = step if lo < step < hi else (lo + hi) / 2
        return h


_CHI2_CACHE: dict[tuple[float, int], np.ndarray] = {}


def _chi2_draws(f: float, k: int, n: int = N_DRAWS) -> np.ndarray:
    """Stratified draws of χ²_f: its quantiles at (i + ½)/n, in component ``k``'s fixed random order (the
    orders differ between components, so their joint draws are independent in effect)."""
    key = (float(f), k)
    if key not in _CHI2_CACHE:
        u = (np.arange(n) + 0.5) / n
        _CHI2_CACHE[key] = _special().chdtri(f, 1 - u)[np.random.default_rng(7919 + k).permutation(n)]
    return _CHI2_CACHE[key]


def paired_effect(deltas, *, level: float = LEVEL, index=None) -> Effect:
    """Δ, its ``level`` and 90% intervals and two-sided p from the two-way random-effects model (module
    docstring).

    ``deltas``: [languages × seeds] (NaN = no score); ``index``: the languages' names, for ``dropped``.
    A language without any score is dropped (and named); an isolated missing cell is filled by the additive
    model. With one seed the seed-to-seed variation cannot be estimated: the interval is over languages only
    and says so; with one language, over seeds only. Identical paired scores give no interval and no
    p-value, and ``identical``.
    """
    if not 0 < level < 1:
        raise ValueError(f"level: must be in (0, 1), got {level}")
    d = exact(deltas)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2:
        raise ValueError(f"deltas: expected a [languages, seeds] matrix, got shape {d.shape}")
    names = list(index) if index is not None else list(range(d.shape[0]))
    rows = ~np.isnan(d).all(axis=1) if d.size else np.zeros(d.shape[0], bool)
    dropped = tuple(n for n, keep in zip(names, rows) if not keep)
    d = d[rows]
    d = d[:, ~np.isnan(d).all(axis=0)] if d.size else d
    if d.size == 0:
        return Effect(dropped=dropped, caveats=("no language has a score",) if dropped else ())
    n_lang, n_seed = d.shape
    caveats = [f"{len(dropped)} language(s) with no score in any seed (a failed or collapsed prediction, e.g. "
               f"a constant regressor's NaN Pearson) left out: {', '.join(map(str, dropped))}"] if dropped else []
    missing = int(np.isnan(d).sum())
    if missing:
        d = _fill(d)
        caveats.append(f"{missing} missing language × seed score(s) filled by the additive model")
    delta = float(exact(d.mean()))
    sds, squares = _components(d, missing)
    variances = _unbiased(squares, n_lang, n_seed)
    if n_seed == 1:
        caveats.append("one seed: seed-to-seed variation is not measured (the interval is over languages only)")
    if n_lang == 1:
        caveats.append("one language: the interval is over seeds only")
    base = dict(languages=n_lang, seeds=n_seed, missing=missing, dropped=dropped, sd_language=sds[0],
                sd_seed=sds[1], sd_residual=sds[2], variances=variances)
    if not squares or all(ms == 0 for ms, _ in squares.values()):
        return Effect(delta, delta, delta, math.nan, 0.0, math.nan, lo90=delta, hi90=delta, identical=True,
                      caveats=tuple(caveats + ["identical paired scores: every difference is "
                                               f"{delta:+.4g}, so no interval or test applies"]), **base)
    pivot, se, df = _pivot(squares, n_lang * n_seed)
    h, h90 = pivot.half((1 - level) / 2), pivot.half(0.05)
    p = min(1.0, 2 * pivot.tail(abs(delta)))
    return Effect(delta, delta - h, delta + h, p, se, df, lo90=delta - h90, hi90=delta + h90, pivot=pivot,
                  caveats=tuple(caveats), **base)


def _pivot(squares: dict, cells: int) -> tuple[Pivot, float, float]:
    """The pivot of Δ̂ from the mean squares {name: (MS, f)}, and the descriptive SE and Satterthwaite df."""
    if len(squares) == 1:  # languages only or seeds only: Student's t, exactly
        (ms, f), = squares.values()
        return Pivot(np.array([math.sqrt(ms / cells)]), df=f), math.sqrt(ms / cells), f
    (ms_l, f_l), (ms_s, f_s), (ms_e, f_e) = squares["lang"], squares["seed"], squares["e"]
    theta = {name: ms * f / _chi2_draws(f, k) for k, (name, (ms, f)) in enumerate(
        (("lang", squares["lang"]), ("seed", squares["seed"]), ("e", squares["e"])))}
    v = np.maximum(theta["lang"], theta["e"]) + np.maximum(theta["seed"] - theta["e"], 0)
    terms = [(max(ms_l, ms_e), f_l if ms_l >= ms_e else f_e)] + ([(ms_s - ms_e, f_s)] if ms_s > ms_e else [])
    point = sum(a for a, _ in terms)
    df = point**2 / sum(a * a / f for a, f in terms) if point > 0 else math.nan
    return Pivot(np.sqrt(v / cells)), math.sqrt(point / cells), df


def _fill(d: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Missing cells set to their least-squares value under the additive model (Yates), by iteration."""
    hole = np.isnan(d)
    out = np.where(hole, np.nanmean(d), d)
    for _ in range(iterations):
        fit = out.mean(axis=1, keepdims=True) + out.mean(axis=0, keepdims=True) - out.mean()
        new = np.where(hole, fit, d)
        if np.allclose(new, out, rtol=0, atol=1e-15):
            break
        out = new
    return out


def _components(d: np.ndarray, missing: int) -> tuple[tuple[float, float, float], dict]:
    """((sd_language, sd_seed, sd_residual) by the method of moments truncated at 0, {name: (MS, df)})."""
    n_lang, n_seed = d.shape
    mean = d.mean()
    row, col = d.mean(axis=1), d.mean(axis=0)
    f_l, f_s = n_lang - 1, n_seed - 1
    f_e = f_l * f_s - missing
    if f_e < 1 and f_l >= 1 and f_s >= 1:  # too many holes for the two-way model: languages' means only
        return _components(d.mean(axis=1, keepdims=True), 0)
    ms_l = n_seed * float(((row - mean) ** 2).sum()) / f_l if f_l else math.nan
    ms_s = n_lang * float(((col - mean) ** 2).sum()) / f_s if f_s else math.nan
    if f_l and f_s:
        resid = d - row[:, None] - col[None, :] + mean
        ms_e = float((resid**2).sum()) / f_e
        sds = (math.sqrt(max(ms_l - ms_e, 0) / n_seed), math.sqrt(max(ms_s - ms_e, 0) / n_lang), math.sqrt(ms_e))
        return sds, {"lang": (ms_l, f_l), "seed": (ms_s, f_s), "e": (ms_e, f_e)}
    if f_l:  # one seed: languages only (their spread holds the residual; the seed effect is not seen)
        return (math.sqrt(ms_l / n_seed), math.nan, math.nan), {"lang": (ms_l, f_l)}
    if f_s:  # one language: seeds only
        return (math.nan, math.sqrt(ms_s / n_lang), math.nan), {"seed": (ms_s, f_s)}
    return (math.nan, math.nan, math.nan), {}


def _unbiased(squares: dict, n_lang: int, n_seed: int) -> tuple[float, float, float]:
    """The method-of-moments components, not truncated (two-way model only; NaN otherwise)."""
    if set(squares) != {"lang", "seed", "e"}:
        return (math.nan, math.nan, math.nan)
    ms_l, ms_s, ms_e = squares["lang"][0], squares["seed"][0], squares["e"][0]
    return ((ms_l - ms_e) / n_seed, (ms_s - ms_e) / n_lang, ms_e)


def item_interval(treated, baseline, labels, kind: str, *, level: float = LEVEL, n_resamples: int = N_RESAMPLES,
                  seed: int = 0) -> tuple[float, float, float]:
    """(Δ, lo, hi) of one language from its test examples: a paired bootstrap over the examples.

    ``treated`` and ``baseline``: [seeds × items] predictions on the same examples with the same seeds;
    ``labels``: [items]. Δ is the mean over seeds of (metric(treated) − metric(baseline)), the metric
    accuracy (``kind`` classification) or Pearson's r (pair regression); the interval resamples the
    examples, keeping each example's answers from every seed and both sides together, so it holds with one
    seed. It is about this language's test examples, not about other seeds.
    """
    a, b, y = (np.asarray(x, dtype=float) for x in (treated, baseline, labels))
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    n = y.size
    if n == 0 or a.shape != b.shape or a.shape[1] != n:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    counts = _draw_counts(rng, n_resamples, n)  # [resample, item]: how often each example is drawn
    if kind == "classification":
        x = ((a == y).astype(float) - (b == y).astype(float)).mean(axis=0)  # per example, seeds' mean
        delta = float(x.mean())
        means = counts @ x / n
    else:
        delta = float(np.mean([_pearson(a[s], y) - _pearson(b[s], y) for s in range(a.shape[0])]))
        means = np.mean([_weighted_pearson(counts, a[s], y) - _weighted_pearson(counts, b[s], y)
                         for s in range(a.shape[0])], axis=0)
    means = means[~np.isnan(means)]
    if not means.size or math.isnan(delta):
        return float(exact(delta)), math.nan, math.nan
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(exact(delta)), float(exact(lo)), float(exact(hi))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _weighted_pearson(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of (x, y) in every bootstrap resample given by the counts ``w`` [resample, item]."""
    total = w.sum(axis=1)
    mx, my = w @ x / total, w @ y / total
    cxy = w @ (x * y) / total - mx * my
    vx, vy = w @ (x * x) / total - mx**2, w @ (y * y) / total - my**2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((vx > 1e-15) & (vy > 1e-15), cxy / np.sqrt(vx * vy), np.nan)


def _draw_counts(rng: np.random.Generator, n_resamples: int, n: int) -> np.ndarray:
    """[resample, item] how often each of ``n`` items is drawn when drawing ``n`` with replacement."""
    draws = rng.integers(0, n, size=(n_resamples, n)) + (np.arange(n_resamples) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), in the input's order.

    ``adj_(i) = max_{j <= i} min(1, (m - j + 1) · p_(j))`` over the ascending p-values; NaN entries are left
    out of the family (m counts the others) and stay NaN.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if m == 0:
        return out
    order = present[np.argsort(p[present], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out
