"""Statistics of paired comparisons: one model for every Δ, its interval and its test; item intervals; Holm.

A paired comparison is a matrix ``D[language, seed]`` of differences (configuration − its matched baseline,
same language, same training seed). Both dimensions are samples: the languages scored stand for others
like them, and the seeds for other draws of the training randomness. :func:`paired_effect` fits

    D[l, s] = Δ + a_l + b_s + e_ls,   a ~ N(0, σ²_lang), b ~ N(0, σ²_seed), e ~ N(0, σ²_e)

(a two-way crossed random-effects model without replication: ``e`` holds the language × seed interaction
and the sampling of the test examples). Δ̂ is the mean of the cells (every language and seed weigh the
same) and ``Var(Δ̂) = σ²_lang/L + σ²_seed/S + σ²_e/(L·S)``, estimated from the ANOVA mean squares
(method of moments, each mean square scaled to be median-unbiased, components truncated at zero) with
Satterthwaite's degrees of freedom. The interval and the two-sided p-value are the t interval and t test of
that one estimate, so the interval excludes 0 exactly when p < 0.05. ``benchmarks/stats_calibration.py``
measures the false-positive rate and coverage by simulation; the median-unbiased scaling is what keeps
them at their nominal levels with 3 seeds (plain Satterthwaite rejects a true null about 6.4% of the time
when the seed effect dominates).

Differences are rounded to 12 decimals before anything else: scores are counts over a test set or
correlations, so a language with no change is exactly 0 and equal changes are exactly equal, whatever the
floating-point round-off of the means they came from.

References: F. E. Satterthwaite (1946), "An approximate distribution of estimates of variance components",
Biometrics Bulletin 2(6); S. R. Searle, G. Casella, C. E. McCulloch (1992), *Variance Components*, ch. 4
(balanced crossed classifications); F. Yates (1933) for the least-squares value of a missing cell.

Example:
    >>> import numpy as np
    >>> e = paired_effect(np.array([[0.02, 0.01, 0.03], [0.03, 0.00, 0.02], [0.01, 0.02, 0.02]]))
    >>> bool(e.lo <= e.delta <= e.hi) and e.languages == 3 and e.seeds == 3
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


def _special():
    import scipy.special  # on use: scipy.special is the heaviest import of `analyze`

    return scipy.special


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` (real) degrees of freedom."""
    return float(_special().stdtrit(df, q))


def t_two_sided_p(t: float, df: float) -> float:
    return float(2 * _special().stdtr(df, -abs(t)))


def _median_unbiased(f: float) -> float:
    """f / χ²_f's median: scales a mean square with f degrees of freedom to be median-unbiased."""
    return f / float(_special().chdtri(f, 0.5))


@dataclass(frozen=True)
class Effect:
    """Δ of one paired comparison, its interval, test and design, from one model (:func:`paired_effect`)."""

    delta: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    p: float = math.nan
    se: float = math.nan
    df: float = math.nan
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

    @property
    def mde(self) -> float:
        """The smallest |Δ| this design detects with 80% power at α = 0.05 (two-sided), given its fitted
        variance: (t_{0.975} + t_{0.8}) · SE with the comparison's degrees of freedom."""
        return min_detectable(self.se, self.df)

    def as_dict(self) -> dict:
        return {"delta": self.delta, "lo": self.lo, "hi": self.hi, "p": self.p, "se": self.se, "df": self.df,
                "languages": self.languages, "seeds": self.seeds, "missing": self.missing,
                "dropped": list(self.dropped), "mde": self.mde, "caveats": list(self.caveats),
                "sd_language": self.sd_language, "sd_seed": self.sd_seed, "sd_residual": self.sd_residual}


def min_detectable(se: float, df: float, *, alpha: float = ALPHA, power: float = POWER) -> float:
    if not (se > 0 and df > 0):
        return math.nan
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * se


def paired_effect(deltas, *, level: float = LEVEL, index=None, median_unbiased: bool = True) -> Effect:
    """Δ, its ``level`` interval and two-sided p from the two-way random-effects model (module docstring).

    ``deltas``: [languages × seeds] (NaN = no score); ``index``: the languages' names, for ``dropped``.
    A language without any score is dropped (and named); an isolated missing cell is filled by the additive
    model. With one seed the seed-to-seed variation cannot be estimated: the interval is over languages only
    and says so; with one language, over seeds only. No variation at all gives a zero-width interval and no
    p-value. ``median_unbiased=False`` leaves the mean squares unscaled (for the calibration's comparison).
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
    components, terms = _components(d, missing, median_unbiased)
    if n_seed == 1:
        caveats.append("one seed: seed-to-seed variation is not measured (the interval is over languages only)")
    if n_lang == 1:
        caveats.append("one language: the interval is over seeds only")
    if not terms:
        return Effect(delta, delta, delta, math.nan, 0.0, math.nan, n_lang, n_seed, missing, dropped,
                      *components, caveats=tuple(caveats))
    num = sum(a for a, _ in terms)
    var = num / (n_lang * n_seed)
    if var <= 0:
        return Effect(delta, delta, delta, math.nan, 0.0, math.nan, n_lang, n_seed, missing, dropped,
                      *components, caveats=tuple(caveats + ["no variation between the paired scores"]))
    df = num**2 / sum(a * a / f for a, f in terms)
    se = math.sqrt(var)
    half = t_quantile(1 - (1 - level) / 2, df) * se
    p = t_two_sided_p(delta / se, df)
    return Effect(delta, delta - half, delta + half, p, se, df, n_lang, n_seed, missing, dropped, *components,
                  caveats=tuple(caveats))


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


def _components(d: np.ndarray, missing: int, median_unbiased: bool = True
                ) -> tuple[tuple[float, float, float], list[tuple[float, float]]]:
    """((sd_language, sd_seed, sd_residual), the terms of L·S·Var(Δ̂) as (value, df))."""
    k = _median_unbiased if median_unbiased else (lambda f: 1.0)
    n_lang, n_seed = d.shape
    mean = d.mean()
    row, col = d.mean(axis=1), d.mean(axis=0)
    f_l, f_s = n_lang - 1, n_seed - 1
    f_e = f_l * f_s - missing
    if f_e < 1 and f_l >= 1 and f_s >= 1:  # too many holes for the two-way model: languages' means only
        d = np.nanmean(np.where(np.isnan(d), np.nan, d), axis=1, keepdims=True)
        return _components(d, 0, median_unbiased)
    ms_l = n_seed * float(((row - mean) ** 2).sum()) / f_l if f_l else math.nan
    ms_s = n_lang * float(((col - mean) ** 2).sum()) / f_s if f_s else math.nan
    if f_l and f_s:
        resid = d - row[:, None] - col[None, :] + mean
        ms_e = float((resid**2).sum()) / f_e
        ms_l, ms_s, ms_e = (ms * k(f) for ms, f in ((ms_l, f_l), (ms_s, f_s), (ms_e, f_e)))
        sds = (math.sqrt(max(ms_l - ms_e, 0) / n_seed), math.sqrt(max(ms_s - ms_e, 0) / n_lang), math.sqrt(ms_e))
        # L·S·Var(Δ̂) = σ²_e + S·σ²_lang + L·σ²_seed, each component truncated at zero
        terms = [(ms_l, f_l)] if ms_l >= ms_e else [(ms_e, f_e)]
        if ms_s > ms_e:
            terms += [(ms_s, f_s), (-ms_e, f_e)]
        return sds, terms
    if f_l:  # one seed: languages only (their spread holds the residual; the seed effect is not seen)
        ms_l *= k(f_l)
        return (math.sqrt(ms_l / n_seed), math.nan, math.nan), [(ms_l, f_l)]
    if f_s:  # one language: seeds only
        ms_s *= k(f_s)
        return (math.nan, math.sqrt(ms_s / n_lang), math.nan), [(ms_s, f_s)]
    return (math.nan, math.nan, math.nan), []


ASSUMED = {"sd_language": 0.01, "sd_seed": 0.005, "sd_residual": 0.01}
"""Variance components `plan` assumes without a prior run: one accuracy point between languages and for
the residual (interaction and test-example sampling), half a point between seeds."""


def design_mde(n_lang: int, n_seed: int, sd_language: float, sd_seed: float, sd_residual: float, *,
               alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest |Δ| a design of ``n_lang`` languages × ``n_seed`` seeds detects with ``power`` at
    ``alpha``, for given variance components: the standard error and Satterthwaite df :func:`paired_effect`
    would compute from mean squares at their expected values."""
    e = sd_residual**2
    ms_l, ms_s = e + n_seed * sd_language**2, e + n_lang * sd_seed**2
    f_l, f_s, f_e = n_lang - 1, n_seed - 1, (n_lang - 1) * (n_seed - 1)
    k = lambda f: _median_unbiased(f) if f >= 1 else math.nan  # noqa: E731  (as the test scales them)
    if n_seed == 1:
        terms = [((ms_l + n_lang * sd_seed**2) * k(f_l), f_l)]
    elif n_lang == 1:
        terms = [((ms_s + n_seed * sd_language**2) * k(f_s), f_s)]
    else:
        terms = [(ms_l * k(f_l), f_l), (ms_s * k(f_s), f_s), (-e * k(f_e), f_e)]
    num = sum(a for a, _ in terms)
    if num <= 0 or min(f for _, f in terms) < 1:
        return math.nan
    df = num**2 / sum(a * a / f for a, f in terms)
    return min_detectable(math.sqrt(num / (n_lang * n_seed)), df, alpha=alpha, power=power)


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
