"""Bootstrap CIs against scipy's bootstrap, Wilcoxon through scipy, Holm against closed testing."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from alchemy_tune.analysis.stats import bootstrap_ci, holm, wilcoxon_p


def _scipy_percentile_ci(values, seed=1):
    res = stats.bootstrap((np.asarray(values),), np.mean, n_resamples=20_000, method="percentile",
                          confidence_level=0.95, random_state=np.random.default_rng(seed))
    return res.confidence_interval.low, res.confidence_interval.high


@pytest.mark.parametrize("shape", ["languages", "replicates"])
def test_one_way_bootstrap_matches_scipy(shape):
    rng = np.random.default_rng(3)
    values = rng.normal(0.01, 0.02, size=12)
    deltas = values[:, None] if shape == "languages" else values[None, :]  # 12 x 1 or 1 x 12
    lo, hi = bootstrap_ci(deltas, n_resamples=20_000, seed=0)
    s_lo, s_hi = _scipy_percentile_ci(values)
    width = s_hi - s_lo
    # different random draws: equal up to Monte-Carlo error (well under 5% of the width at 20k resamples)
    assert lo == pytest.approx(s_lo, abs=0.05 * width) and hi == pytest.approx(s_hi, abs=0.05 * width)


def test_two_way_bootstrap_is_seeded_and_counts_both_sources_of_noise():
    rng = np.random.default_rng(5)
    languages = rng.normal(0, 0.02, size=(10, 1))
    seeds = rng.normal(0, 0.02, size=(1, 4))
    d = 0.01 + languages + seeds
    assert bootstrap_ci(d, seed=7) == bootstrap_ci(d, seed=7)
    assert bootstrap_ci(d, seed=7) != bootstrap_ci(d, seed=8)
    lo, hi = bootstrap_ci(d)
    assert lo < d.mean() < hi
    # resampling seeds too gives a wider interval than pretending the seed effect was fixed
    lang_lo, lang_hi = bootstrap_ci(d.mean(axis=1))
    assert hi - lo > lang_hi - lang_lo


def test_bootstrap_edge_cases():
    assert bootstrap_ci(np.full((4, 3), 0.25)) == (0.25, 0.25)
    assert all(math.isnan(v) for v in bootstrap_ci(np.empty((0, 3))))
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([[0.1, np.nan]])))
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([0.1, 0.2], level=95)


def test_wilcoxon_is_scipys_exact_test():
    d = [0.02, -0.01, 0.03, 0.015, 0.04, -0.005, 0.025, 0.01]
    assert wilcoxon_p(d) == pytest.approx(stats.wilcoxon(d).pvalue)
    # exact two-sided p of 8 all-positive differences: 2 / 2**8
    assert wilcoxon_p([abs(x) + 0.001 for x in d]) == pytest.approx(2 / 2**8)
    assert wilcoxon_p([0.0, 0.0, 0.0]) == 1.0 and math.isnan(wilcoxon_p([]))


def _holm_by_closed_testing(p):
    """Holm = closed testing with Bonferroni local tests: adj_i = max over sets S ∋ i of min(1, |S|·min p_S)."""
    idx = range(len(p))
    out = []
    for i in idx:
        worst = 0.0
        for size in range(1, len(p) + 1):
            for subset in itertools.combinations(idx, size):
                if i in subset:
                    worst = max(worst, min(1.0, size * min(p[j] for j in subset)))
        out.append(worst)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_closed_testing(seed):
    p = np.random.default_rng(seed).uniform(0, 0.2, size=7)
    p[2] = p[4]  # a tie
    assert holm(p) == pytest.approx(_holm_by_closed_testing(list(p)))


def test_holm_by_hand_and_with_missing_values():
    # sorted 0.01, 0.02, 0.04 -> 3*0.01, 2*0.02, max(0.04, 1*0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    adjusted = holm([0.01, math.nan, 0.5])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.5)
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]
