"""Uncertainty of everything a scaling curve derives from its per-size means, from the languages × seeds model.

Every quantity read off a curve — a parameter of a fit, the fit's prediction at a held-out size, the size at
which a fitted curve reaches a score, where a fitted Δ(n) line crosses 0 — is a smooth function ``g`` of the
mean scores per size ``m_k`` (the mean over the languages × seeds cells of size ``k``). By the delta method
(first-order Taylor expansion; Oehlert 1992, "A note on the delta method", *Am. Stat.* 46(1); for the
parameters of a nonlinear least-squares fit, dθ/dm = (JᵀJ)⁻¹Jᵀ at the fit: Seber & Wild 1989, *Nonlinear
Regression*, ch. 2)

    g(m) ≈ g(m̂) + Σ_k w_k (m_k − m̂_k),   w = ∂g/∂m at m̂,

and Σ_k w_k m_k is the mean of the cell matrix ``C[l, s] = Σ_k w_k Y[k, l, s]``. So ``C`` shifted to mean
``g(m̂)`` is a [language × seed] matrix whose mean is the estimate, and :func:`alchemy_tune.analysis.stats.
paired_effect` — the two-way random-effects model with its generalized pivotal quantity, calibrated at 2–5
seeds — gives its interval and test. The model's seed term absorbs seed effects that differ from size to
size (each size is its own training run: the seed index ``s`` pairs runs only as the data are laid out), and
its language term the language effects (which cancel where the weights sum to 0, as in any between-size
contrast). A bootstrap over 3 seeds has only 10 distinct seed multisets and gave intervals 2–3× too narrow;
this is the same model, and the same calibration, as every other comparison of ``analyze``.

``benchmarks/scaling_calibration.py`` checks it by simulation with a seed effect drawn per size.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from alchemy_tune.analysis.stats import LEVEL, Effect, paired_effect

POSITIVE = {"power law with a ceiling": (1, 2), "log-linear": ()}
"""Indices of the parameters that must be positive (the power law's a and b): their interval tells
whether the data identify them."""
SPAN = 10.0
"""A positive parameter whose 95% interval spans more than this factor (or reaches 0) is not identified."""


def size_means(cube: np.ndarray) -> np.ndarray:
    """Mean score per size over the languages × seeds cells that have one."""
    cube = np.asarray(cube, float)
    with np.errstate(invalid="ignore"):
        return np.nanmean(cube.reshape(cube.shape[0], -1), axis=1)


def jacobian(form: str, params, n) -> np.ndarray:
    """[sizes, parameters]: the derivative of the fitted score at each size in ``n`` by each parameter."""
    n = np.asarray(n, float)
    if form == "log-linear":
        return np.column_stack([np.ones_like(n), np.log(n)])
    _, a, b = params
    x = n ** (-b)
    return np.column_stack([np.ones_like(n), -x, a * np.log(n) * x])


def influence(form: str, params, n) -> np.ndarray:
    """[parameters, sizes]: dθ/dm of a least-squares fit to the means at sizes ``n`` (Gauss–Newton; the
    pseudo-inverse keeps a flat direction finite, and :func:`identified` says when there is one)."""
    return np.linalg.pinv(jacobian(form, params, n))


def linear_effect(value: float, parts, *, level: float = LEVEL, index=None) -> Effect:
    """The model's :class:`Effect` of an estimate ``value`` whose first-order expansion in the per-size means
    is ``Σ_parts Σ_k w_k m_k`` (``parts``: (cube [size, language, seed], weights [size]) pairs on the same
    languages and seeds). NaN ``value`` or weights: an empty Effect."""
    if not np.isfinite(value):
        return Effect()
    total, shift = None, float(value)
    for cube, w in parts:
        w = np.asarray(w, float)
        if not np.isfinite(w).all():
            return Effect()
        cube = np.asarray(cube, float)
        cells = np.einsum("k,kls->ls", w, cube)
        shift -= float(w @ size_means(cube))
        total = cells if total is None else total + cells
    return paired_effect(total + shift, level=level, index=index)


def numeric_gradient(f, x) -> np.ndarray:
    """Central differences of a smooth scalar function (the closed forms below) at ``x``."""
    x = np.asarray(x, float)
    out = np.empty_like(x)
    for i in range(len(x)):
        h = 1e-6 * max(1.0, abs(x[i]))
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        out[i] = (f(up) - f(down)) / (2 * h)
    return out


def parameter_effects(form: str, params, sizes, cube, *, level: float = LEVEL) -> tuple[Effect, ...]:
    """One Effect per parameter of a fit to the means of ``cube`` at ``sizes``."""
    g = influence(form, params, sizes)
    return tuple(linear_effect(float(v), [(cube, g[j])], level=level) for j, v in enumerate(params))


def identified(form: str, params, sizes, effects) -> tuple[bool, str]:
    """Whether the data pin the fit's parameters down, and why not. A nonlinear form needs two sizes more
    than its parameters (one to spare beyond a residual degree of freedom); each positive parameter's
    interval must stay above 0 and within a factor :data:`SPAN` (a ∈ [0.44, 9307] is a shape the data do
    not determine, whatever the point estimate)."""
    k, p = len(sizes), len(params)
    least = p + 2 if POSITIVE[form] else p + 1
    if k < least:
        return False, f"{k} sizes for {p} parameters (needs {least})"
    for j in POSITIVE[form]:
        lo, hi = effects[j].lo, effects[j].hi
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 or hi / lo > SPAN:
            name = ("top", "a", "b")[j]
            return False, (f"{name}'s 95% interval [{lo:.3g}, {hi:.3g}] "
                           + ("reaches 0" if not lo > 0 else f"spans more than {SPAN:g}×"))
    return True, ""


def prediction_effect(form: str, predict, params, sizes, cube, at: float, observed_cube,
                      *, level: float = LEVEL) -> Effect:
    """(prediction at ``at`` of the fit to ``cube`` at ``sizes``) − (the mean of ``observed_cube``
    [language, seed] there), through the model: the extrapolation check's contrast."""
    w = jacobian(form, params, [at])[0] @ influence(form, params, sizes)
    value = float(predict(params, [at])[0]) - float(np.nanmean(observed_cube))
    return linear_effect(value, [(cube, w), (np.asarray(observed_cube, float)[None], [-1.0])], level=level)


def reach(form: str, params, target: float) -> float:
    """Examples per language at which a fitted curve reaches ``target`` (inf when it never does)."""
    if form == "log-linear":
        p, q = params
        return math.exp((target - p) / q) if q > 0 else math.inf
    top, a, b = params
    return (a / (top - target)) ** (1 / b) if top > target and a > 0 and b > 0 else math.inf


def shift_effect(form: str, predict, params, sizes, cube, base_params, base_sizes, base_cube, at: float,
                 *, level: float = LEVEL) -> tuple[float, Effect]:
    """Data efficiency: the horizontal shift between two fitted curves (one form) at the baseline's fitted
    score at ``at``: (the size the curve needs to reach it, the Effect of ln(that size / ``at``)).

    The interval inverts a test, as Fieller's interval for a ratio does (Fieller 1954, "Some problems in
    interval estimation", JRSS B 16(2)): a size n belongs to it when the contrast (the curve's fitted score
    at n) − (the baseline's fitted score at ``at``), put through the languages × seeds model, is not
    significant at 1 − ``level``. The contrast is linear in the per-size means (exactly for the log-linear
    form, at fixed exponent for the power law), so its test holds its level where a delta-method interval
    of the inverse function does not (a flat curve makes that derivative, and its interval, unreliable).
    The baseline's own fit reaches its target at ``at`` by construction, so the ratio is the shift, and the
    target's uncertainty (the baseline's fit) is part of every test; p is the test at n = ``at`` (no
    shift)."""
    p, bp = np.asarray(params, float), np.asarray(base_params, float)
    target = float(predict(bp, [at])[0])
    needs = reach(form, p, target)
    if not np.isfinite(needs):
        return needs, Effect()
    g = influence(form, p, sizes)
    wb = -(jacobian(form, bp, [at])[0] @ influence(form, bp, base_sizes))
    alpha = 1 - level

    def test(log_n: float) -> Effect:
        n = math.exp(log_n)
        w = jacobian(form, p, [n])[0] @ g
        return linear_effect(float(predict(p, [n])[0]) - target, [(cube, w), (base_cube, wb)], level=level)

    def accepted(log_n: float) -> bool:
        e = test(log_n)
        return not (np.isfinite(e.p) and e.p < alpha)

    centre = math.log(needs)
    span = (math.log(min(sizes)) - math.log(64), math.log(max(sizes)) + math.log(64))
    ends = []
    for edge in span:  # walk out from the estimate to the first rejected size, then bisect the boundary
        steps = np.linspace(centre, edge, 41)[1:]
        inside, outside = centre, None
        for x in steps:
            if not accepted(x):
                outside = x
                break
            inside = x
        if outside is None:  # never rejected within 64× the sizes run: unbounded on this side
            ends.append(-math.inf if edge < centre else math.inf)
            continue
        for _ in range(12):
            mid = (inside + outside) / 2
            inside, outside = (mid, outside) if accepted(mid) else (inside, mid)
        ends.append((inside + outside) / 2)
    at_ratio_one = test(math.log(at))
    lo, hi = sorted(ends)
    log_ratio = math.log(needs / at)
    return needs, dataclasses.replace(at_ratio_one, delta=log_ratio, lo=lo - math.log(at), hi=hi - math.log(at),
                                      lo90=math.nan, hi90=math.nan, pivot=None)


def crossing_effect(sizes, cube, *, level: float = LEVEL) -> tuple[float, Effect]:
    """Where the least-squares line of the mean Δ per size on ln n crosses 0: (that size, the Effect of its
    ln). ``cube``: Δ [size, language, seed]."""
    x = np.log(np.asarray(sizes, float))
    xc = x - x.mean()
    sxx = float(xc @ xc)
    m = size_means(cube)
    q, mean = float(xc @ m) / sxx, float(m.mean())
    if not (np.isfinite(q) and q != 0):
        return math.nan, Effect()
    ln_at = float(x.mean()) - mean / q
    # d ln_at / d m_k = −(1/K)/q + mean·xc_k/(q²·sxx)
    w = -np.full(len(x), 1 / len(x)) / q + mean * xc / (q * q * sxx)
    return math.exp(ln_at), linear_effect(ln_at, [(cube, w)], level=level)
