"""Scaling curves (alchemy_tune/analysis/scaling.py) on synthetic runs with a known law: a power law with a
ceiling plus language, seed and residual noise, and a Δ that shrinks with size and changes sign."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alchemy_tune.analysis import scaling as S

SIZES = np.array([25, 50, 100, 200, 400, 800], float)
TRUE = (0.80, 1.5, 0.5)  # top, a, b: score(n) = 0.8 − 1.5·n^−0.5


def cube(law, *, n_lang=8, n_seed=3, seed=0, sd_lang=0.03, sd_seed=0.01, sd_res=0.01):
    rng = np.random.default_rng(seed)
    lang = rng.normal(0, sd_lang, n_lang)[None, :, None]
    seeds = rng.normal(0, sd_seed, n_seed)[None, None, :]
    res = rng.normal(0, sd_res, (len(SIZES), n_lang, n_seed))
    return law(SIZES)[:, None, None] + lang + seeds + res, (lang, seeds)


def test_the_fitted_power_law_recovers_the_truth_and_its_intervals_cover_it():
    y, _ = cube(lambda n: S.power(TRUE, n))
    c = S.curve(SIZES, y, n_boot=200)
    fit = c.fits["power law with a ceiling"]
    for value, (lo, hi), name in zip(TRUE, fit["intervals"], ("top", "a", "b")):
        assert lo <= value <= hi, (name, value, lo, hi)
    assert c.monotone and c.better == "power law with a ceiling"  # the law it is, not the log-linear
    assert c.extrapolation["consistent"] and abs(c.extrapolation["error"]) < 0.02


def test_a_profile_fit_finds_the_exact_law_from_any_scale():
    for true in ((0.8, 1.5, 0.5), (0.6, 0.2, 0.1), (0.95, 30.0, 1.2)):
        top, a, b = S.fit_power(SIZES, S.power(true, SIZES))
        assert (top, a, b) == pytest.approx(true, rel=1e-3)


def test_a_curve_that_falls_is_flagged_not_fitted():
    def bumpy(n):
        s = S.power(TRUE, n)
        s[3] -= 0.08  # 200 examples score well below 100
        return s

    y, _ = cube(bumpy)
    c = S.curve(SIZES, y, n_boot=200)
    assert not c.monotone and c.drops == ((100.0, 200.0),) and c.fits == {}
    assert "not monotone" in c.notes[0]


def test_an_extrapolation_that_misses_is_said_so():
    """A curve that rises again at the largest size breaks the law fitted on the others."""
    def late_jump(n):
        s = S.power(TRUE, n)
        s[-1] += 0.06
        return s

    y, _ = cube(late_jump)
    c = S.curve(SIZES, y, n_boot=200)
    assert c.extrapolation is not None and not c.extrapolation["consistent"]
    assert c.extrapolation["error"] < 0 and c.extrapolation["hi"] < 0  # predicted below what was observed


def test_delta_n_recovers_a_shrinking_effect_and_where_it_changes_sign():
    """Δ(n) = 0.04 − 0.015·ln(n/25): positive for little data, 0 at 25·e^(0.04/0.015) ≈ 360, negative after."""
    slope = -0.015
    crossing = 25 * math.exp(0.04 / 0.015)
    base, _ = cube(lambda n: S.power(TRUE, n), seed=1)
    rng = np.random.default_rng(2)
    delta = (0.04 + slope * np.log(SIZES / 25))[:, None, None]
    treated = base + delta + rng.normal(0, 0.008, base.shape)
    t = S.delta_trend(SIZES, treated, base, n_boot=300)
    assert t.effects[0].lo > 0 and t.effects[-1].hi < 0  # the sign change, each with its interval
    assert t.slope.lo <= slope <= t.slope.hi and t.slope.p < 0.05
    assert t.crossing == pytest.approx(crossing, rel=0.25)
    lo, hi = t.crossing_interval
    assert lo <= crossing <= hi
    assert "Δ falls" in t.words and "examples per language" in t.words


def test_no_trend_and_no_crossing_are_said_plainly():
    base, _ = cube(lambda n: S.power(TRUE, n), seed=3)
    rng = np.random.default_rng(4)
    treated = base - 0.02 + rng.normal(0, 0.008, base.shape)  # worse by the same amount everywhere
    t = S.delta_trend(SIZES, treated, base, n_boot=200)
    assert t.crossing is None and "no trend at the 95% level); so no size where Δ changes sign" in t.words
    assert t.slope.lo <= 0 <= t.slope.hi
    # Δ about 0 everywhere: a line through noise crosses 0 somewhere, but without a trend no crossing is read
    around = S.delta_trend(SIZES, base + rng.normal(0, 0.008, base.shape), base, n_boot=200)
    assert around.slope.p >= 0.05 and around.crossing is None
    flat = S.delta_trend(SIZES, base - 0.02, base, n_boot=50)  # exactly the same Δ at every size
    assert flat.crossing is None and flat.slope.delta == pytest.approx(0, abs=1e-12)


def test_the_size_a_curve_needs_to_reach_a_score():
    assert S.size_to_reach(("power law with a ceiling", TRUE), float(S.power(TRUE, [400])[0])) == pytest.approx(400)
    assert S.size_to_reach(("log-linear", (0.1, 0.05)), 0.1 + 0.05 * math.log(300)) == pytest.approx(300)
    assert S.size_to_reach(("power law with a ceiling", TRUE), 0.9) == math.inf  # above its ceiling


def test_data_efficiency_finds_the_size_a_better_curve_needs_to_match_the_baseline():
    better = (0.85, 1.5, 0.5)
    truth = (1.5 / (0.85 - float(S.power(TRUE, SIZES[-1:])[0]))) ** 2  # 212 examples per language
    base, _ = cube(lambda n: S.power(TRUE, n), seed=1)
    treated, _ = cube(lambda n: S.power(better, n), seed=2)
    m = S.size_to_match(S.curve(SIZES, treated, n_boot=200), S.curve(SIZES, base, n_boot=200))
    assert m["needs_lo"] <= truth <= m["needs_hi"] and m["needs"] < SIZES[-1] and "× the data" in m["reading"]
    worse = S.size_to_match(S.curve(SIZES, base - 0.1, n_boot=200), S.curve(SIZES, base, n_boot=200))
    assert worse["needs"] == math.inf and worse["reading"] == "its fitted curve never reaches the baseline's score"
