"""Statistics of paired comparisons: bootstrap CIs over languages and replicates, Wilcoxon, Holm.

Pure functions of numpy arrays. A paired comparison is a matrix ``D[language, replicate]`` of differences
(configuration − its matched baseline, same language, same training seed). Its effect is the mean of ``D``
(every language weighs the same); its uncertainty comes from both sampled dimensions: which languages were
scored and which seeds were drawn, so the bootstrap resamples rows and columns independently.

Example:
    >>> import numpy as np
    >>> d = np.array([[0.02, 0.01], [0.03, 0.00], [0.01, 0.02]])
    >>> lo, hi = bootstrap_ci(d, seed=0)
    >>> bool(lo <= d.mean() <= hi)
    True
"""

from __future__ import annotations

import math

import numpy as np

N_RESAMPLES = 4000
LEVEL = 0.95


def bootstrap_ci(deltas, *, n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of ``deltas.mean()`` resampling languages (rows) and replicates (columns).

    Rows and columns are drawn with replacement, independently (a two-way bootstrap); with one column it is
    the ordinary percentile bootstrap over languages. Seeded: the same input gives the same interval.
    NaN when there is no cell; the interval collapses to the value when nothing varies.
    """
    d = np.asarray(deltas, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2:
        raise ValueError(f"deltas: expected a [languages, replicates] matrix, got shape {d.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level: must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples: must be >= 1, got {n_resamples}")
    if d.size == 0 or np.isnan(d).any():
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    n_rows, n_cols = d.shape
    # A resample is given by how often each row and each column is drawn (multinomial counts); its mean is
    # then w·D·v / (rows·cols): one matrix product for all resamples instead of indexing B copies of D.
    w, v = _draw_counts(rng, n_resamples, n_rows), _draw_counts(rng, n_resamples, n_cols)
    means = ((w @ d) * v).sum(axis=1) / (n_rows * n_cols)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _draw_counts(rng: np.random.Generator, n_resamples: int, n: int) -> np.ndarray:
    """[resample, item] how often each of ``n`` items is drawn when drawing ``n`` with replacement."""
    draws = rng.integers(0, n, size=(n_resamples, n)) + (np.arange(n_resamples) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def wilcoxon_p(per_language) -> float:
    """Two-sided Wilcoxon signed-rank p-value of per-language differences (scipy; exact for small n).

    1.0 when every difference is zero (no evidence either way); NaN with no value.
    """
    d = np.asarray(per_language, dtype=float)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return math.nan
    if not np.any(d != 0):
        return 1.0
    from scipy.stats import wilcoxon  # imported on use: scipy.stats costs more than the rest of analyze

    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


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
