"""The paired-comparison model against its textbook formulas, exact arithmetic, missing scores, item
intervals, power, and Holm against closed testing."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from alchemy_tune.analysis.power import design_mde
from alchemy_tune.analysis.stats import exact, holm, item_interval, paired_effect

# The confirmed study's per-language changes, in test examples of 120 summed over 3 seeds: (+4, 0, 0, −1, −1,
# −1, −2, −2) / 360 as language means, laid out per seed.
COUNTS = np.array([[2, 1, 1], [1, -1, 0], [0, 0, 0], [-1, 0, 0], [0, -1, 0], [0, 0, -1], [-1, -1, 0], [0, -1, -1]])


def _by_formula(counts: np.ndarray, n: int = 120, draws: int = 400_000) -> tuple[float, float, float, float]:
    """(Δ, lo, hi, p) from exact fractions and scipy.stats, independently of the module: the mean squares,
    then the generalized pivotal quantity R = Δ̂ − Z·√(V*/(L·S)) by plain Monte Carlo (random χ² draws, not
    the module's stratified ones), its 2.5% and 97.5% quantiles and twice its smaller tail at 0."""
    d = [[Fraction(int(c), n) for c in row] for row in counts]
    n_l, n_s = len(d), len(d[0])
    m = sum(map(sum, d)) / (n_l * n_s)
    rows = [sum(r) / n_s for r in d]
    cols = [sum(d[i][j] for i in range(n_l)) / n_l for j in range(n_s)]
    f_l, f_s, f_e = n_l - 1, n_s - 1, (n_l - 1) * (n_s - 1)
    ms_l = float(n_s * sum((r - m) ** 2 for r in rows) / f_l)
    ms_s = float(n_l * sum((c - m) ** 2 for c in cols) / f_s)
    ms_e = float(sum((d[i][j] - rows[i] - cols[j] + m) ** 2 for i in range(n_l) for j in range(n_s)) / f_e)
    rng = np.random.default_rng(0)
    t_l, t_s, t_e = (ms * f / stats.chi2.rvs(f, size=draws, random_state=rng)
                     for ms, f in ((ms_l, f_l), (ms_s, f_s), (ms_e, f_e)))
    v = np.maximum(t_l, t_e) + np.maximum(t_s - t_e, 0)
    r = float(m) - stats.norm.rvs(size=draws, random_state=rng) * np.sqrt(v / (n_l * n_s))
    lo, hi = np.quantile(r, [0.025, 0.975])
    return float(m), float(lo), float(hi), 2 * min((r < 0).mean(), (r > 0).mean())


def test_the_quantized_example_gives_one_exact_answer_whatever_the_round_off():
    """Acceptance: per-cell Δ computed as float differences of scores out of 120 (round-off included), and
    a zero stored as +1e-17 or −1e-17, give the same Δ, interval and p, equal to the exact computation."""
    rng = np.random.default_rng(0)
    base = rng.integers(40, 80, size=COUNTS.shape)
    as_scores = (base + COUNTS) / 120 - base / 120  # what the tables hold: differences of two means
    exact_cells = COUNTS / 120
    assert not np.array_equal(as_scores, exact_cells)  # round-off is really there
    results = []
    for tiny in (+1e-17, -1e-17):
        d = as_scores.copy()
        d[2, 0] = tiny  # the language with no change, stored as ±1e-17
        results.append(paired_effect(d))
    results.append(paired_effect(exact_cells))
    first = results[0]
    for other in results[1:]:
        assert (other.delta, other.lo, other.hi, other.p) == (first.delta, first.lo, first.hi, first.p)
    delta, lo, hi, p = _by_formula(COUNTS)
    assert first.delta == pytest.approx(delta, abs=1e-12) and first.delta == pytest.approx(-3 / 2880, abs=1e-12)
    width = hi - lo  # the module's stratified draws against plain Monte Carlo: the same pivot
    assert (first.lo, first.hi) == pytest.approx((lo, hi), abs=0.01 * width) and first.p == pytest.approx(p, abs=0.01)
    assert (first.languages, first.seeds, first.missing) == (8, 3, 0)
    # equal changes are equal: a cell of +1/120 reached two ways weighs the same
    assert exact(0.3 - 0.2 - 0.1) == 0.0 and exact(61 / 120 - 60 / 120) == exact(1 / 120)
    assert str(exact(-1e-17)) == "0.0"  # never "-0.0000" in a table


@pytest.mark.parametrize("seed", range(3))
def test_the_interval_and_the_test_always_agree(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        shape = (int(rng.integers(2, 12)), int(rng.integers(1, 6)))
        d = np.round(rng.normal(rng.normal(0, 0.01), 0.02, size=shape) * 120) / 120
        e = paired_effect(d)
        if math.isnan(e.p):
            continue
        assert (e.p < 0.05) == (not e.lo <= 0 <= e.hi), (d.tolist(), e)


def test_a_missing_cell_keeps_every_other_seed_and_a_missing_language_is_named():
    d = COUNTS / 120
    holed = d.copy()
    holed[3, 1] = np.nan
    e = paired_effect(holed, index=[f"l{i}" for i in range(8)])
    assert (e.languages, e.seeds, e.missing, e.dropped) == (8, 3, 1, ())
    assert "1 missing language × seed score(s) filled by the additive model" in e.caveats
    # the fill is the additive model's least-squares value: refitting the completed matrix leaves it there
    full = np.array(holed)
    full[3, 1] = 0
    for _ in range(500):
        full[3, 1] = full[3].mean() + full[:, 1].mean() - full.mean() + full[3, 1] / 8 + full[3, 1] / 3 \
            - full[3, 1] / 24 - full[3, 1] * (1 / 8 + 1 / 3 - 1 / 24)
    assert e.delta == pytest.approx(float(np.round(full.mean(), 12)), abs=1e-12)
    gone = d.copy()
    gone[5, :] = np.nan
    e = paired_effect(gone, index=[f"l{i}" for i in range(8)])
    assert (e.languages, e.seeds, e.dropped) == (7, 3, ("l5",))
    assert e.delta == paired_effect(np.delete(d, 5, axis=0)).delta
    assert any("l5" in c for c in e.caveats)


def test_one_seed_is_the_t_test_over_languages_and_says_so():
    d = np.array([0.02, -0.01, 0.03, 0.01, 0.00, 0.02, 0.04, -0.02])
    e = paired_effect(d[:, None])
    t = stats.ttest_1samp(d, 0.0)
    assert e.p == pytest.approx(t.pvalue)  # one mean square: the pivot is Student's t exactly
    assert (e.lo, e.hi) == pytest.approx(tuple(t.confidence_interval(0.95)))
    assert e.df == pytest.approx(7) and any(c.startswith("one seed") for c in e.caveats)
    flat = paired_effect(np.full((4, 3), 0.25))
    assert (flat.lo, flat.hi) == (0.25, 0.25) and math.isnan(flat.p) and flat.identical
    assert flat.reading(0.01) == "identical" and any("identical paired scores" in c for c in flat.caveats)
    assert math.isnan(paired_effect(np.empty((0, 3))).delta)


def test_the_minimum_detectable_effect_has_its_power_in_simulation():
    """At the MDE of a design the model's test rejects about 80% of the time (2,000 simulated studies)."""
    sd = dict(sd_language=0.01, sd_seed=0.005, sd_residual=0.01)
    mde = design_mde(8, 3, **sd)
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(2000):
        d = mde + rng.normal(0, sd["sd_language"], (8, 1)) + rng.normal(0, sd["sd_seed"], (1, 3)) \
            + rng.normal(0, sd["sd_residual"], (8, 3))
        hits += paired_effect(d).p < 0.05
    assert 0.72 <= hits / 2000 <= 0.88  # a planning figure: close to 80% for the whole procedure
    assert design_mde(8, 6, **sd) < mde < design_mde(8, 2, **sd)  # more seeds, smaller effects


def test_item_interval_is_a_paired_bootstrap_over_the_examples():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 120)
    base = np.where(rng.random(120) < 0.5, labels, (labels + 1) % 4)[None, :]
    treated = np.where(rng.random(120) < 0.15, labels, base[0])[None, :]  # fixes some wrong answers
    delta, lo, hi = item_interval(treated, base, labels, "classification")
    x = (treated[0] == labels).astype(float) - (base[0] == labels)
    assert delta == pytest.approx(x.mean())
    ref = stats.bootstrap((x,), np.mean, method="percentile", n_resamples=20_000,
                          random_state=np.random.default_rng(0)).confidence_interval
    width = ref.high - ref.low
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=0.1 * width) and lo > 0
    same = item_interval(base, base, labels, "classification")
    assert same == (0.0, 0.0, 0.0)  # the same answers everywhere: no change, and none in any resample
    # correlations: Δ is the difference of Pearson's r, resampled with the examples kept in pairs
    y = rng.normal(size=120)
    a, b = (y + rng.normal(0, s, 120) for s in (0.5, 1.0))
    delta, lo, hi = item_interval(a[None, :], b[None, :], y, "regression")
    assert delta == pytest.approx(np.corrcoef(a, y)[0, 1] - np.corrcoef(b, y)[0, 1])
    assert lo < delta < hi and lo > 0
    flat = item_interval(np.zeros((1, 120)), b[None, :], y, "regression")  # a collapsed regressor
    assert all(math.isnan(v) for v in flat)


def test_student_t_and_chi_square_come_out_as_tabulated():
    """The scipy.special functions the model uses, against printed tables (a scipy outside the pinned range
    that changed them would fail here)."""
    from alchemy_tune.analysis.stats import t_quantile, t_two_sided_p

    assert t_quantile(0.975, 2) == pytest.approx(4.302653, abs=1e-6)
    assert t_quantile(0.975, 7) == pytest.approx(2.364624, abs=1e-6)
    assert t_quantile(0.8, 14) == pytest.approx(0.868, abs=5e-4)
    assert t_two_sided_p(2.364624, 7) == pytest.approx(0.05, abs=1e-6)


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


def test_the_planned_margin_shows_equivalence_about_80_percent_of_the_time_at_no_effect():
    """At the margin design_margin plans for, a true Δ of 0 reads "equivalent" about 80% of the time
    (1,500 simulated studies), and at a true Δ equal to the margin at most 5% of the time (both one-sided
    tests at 5%)."""
    from alchemy_tune.analysis.power import design_margin

    sd = dict(sd_language=0.01, sd_seed=0.005, sd_residual=0.01)
    m = design_margin(30, 5, **sd)
    rng = np.random.default_rng(4)

    def rate(delta: float) -> float:
        hits = 0
        for _ in range(1500):
            d = delta + rng.normal(0, sd["sd_language"], (30, 1)) + rng.normal(0, sd["sd_seed"], (1, 5)) \
                + rng.normal(0, sd["sd_residual"], (30, 5))
            hits += paired_effect(d).reading(m) == "equivalent"
        return hits / 1500

    assert 0.72 <= rate(0.0) <= 0.9
    assert rate(m) <= 0.05
