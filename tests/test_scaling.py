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
    c = S.curve(SIZES, y)
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
    c = S.curve(SIZES, y)
    assert not c.monotone and c.drops == ((100.0, 200.0),) and c.fits == {}
    assert "not monotone" in c.notes[0]


def test_an_extrapolation_that_misses_is_said_so():
    """A curve that stops rising at the largest size breaks every law fitted on the others."""
    def plateau(n):
        s = S.power(TRUE, n)
        s[-1] = s[-2]  # 800 scores what 400 did: the power law predicts 0.02 more, the log-linear 0.07
        return s

    y, _ = cube(plateau)
    c = S.curve(SIZES, y)
    assert c.monotone and c.extrapolation is not None and not c.extrapolation["consistent"]
    assert c.extrapolation["error"] > 0 and c.extrapolation["lo"] > 0  # predicted above what was observed
    assert c.extrapolation["reading"] == "fails" and c.extrapolation["p"] < 0.05
    assert {x["reading"] for x in c.extrapolations.values()} == {"fails"}


def test_the_curve_is_off_its_law_only_when_every_form_misses():
    """A late jump of 0.06 misses the power law but lands where the log-linear form, fitted to the other
    sizes, puts it: one law the data follow, so the curve is not flagged (each form's check is kept)."""
    def late_jump(n):
        s = S.power(TRUE, n)
        s[-1] += 0.06
        return s

    y, _ = cube(late_jump)
    c = S.curve(SIZES, y)
    power = c.extrapolations["power law with a ceiling"]
    assert power["reading"] == "fails" and power["hi"] < 0  # predicted below what was observed
    assert c.extrapolations["log-linear"]["consistent"] and c.extrapolation["form"] == "log-linear"


def test_delta_n_recovers_a_shrinking_effect_and_where_it_changes_sign():
    """Δ(n) = 0.04 − 0.015·ln(n/25): positive for little data, 0 at 25·e^(0.04/0.015) ≈ 360, negative after."""
    slope = -0.015
    crossing = 25 * math.exp(0.04 / 0.015)
    base, _ = cube(lambda n: S.power(TRUE, n), seed=1)
    rng = np.random.default_rng(2)
    delta = (0.04 + slope * np.log(SIZES / 25))[:, None, None]
    treated = base + delta + rng.normal(0, 0.008, base.shape)
    t = S.delta_trend(SIZES, treated, base)
    assert t.effects[0].lo > 0 and t.effects[-1].hi < 0  # the sign change, each with its interval
    assert t.slope.lo <= slope <= t.slope.hi and t.slope.p < 0.05
    assert t.crossing == pytest.approx(crossing, rel=0.25)
    lo, hi = t.crossing_interval
    assert lo <= crossing <= hi
    assert t.change["reading"] == "worse" and t.change["change_hi"] < 0
    assert "Δ falls with data" in t.words and "the fitted Δ is 0 at about" in t.words


BANNED = ("did not help", "no effect", "did not change", "does not differ", "no trend", "does not change")


def test_a_trend_the_data_cannot_show_is_inconclusive_with_the_changes_it_leaves_open():
    base, _ = cube(lambda n: S.power(TRUE, n), seed=3)
    rng = np.random.default_rng(4)
    treated = base - 0.02 + rng.normal(0, 0.008, base.shape)  # worse by the same amount everywhere
    t = S.delta_trend(SIZES, treated, base, margin=0.01)
    c = t.change
    assert t.crossing is None and t.slope.lo <= 0 <= t.slope.hi
    assert c["change"] == pytest.approx(t.slope.delta * math.log(800 / 25))
    # the interval of the change over 25→800 reaches past ±0.01: neither a trend nor its absence is shown
    assert c["reading"] == "inconclusive" and (c["change_lo90"] < -0.01 or c["change_hi90"] > 0.01)
    assert t.words.startswith("the trend is inconclusive") and f"{c['change_hi']:+.3f}" in t.words
    assert not any(b in t.words for b in BANNED)
    # the same data against a margin its interval fits inside: equivalent to a constant Δ, said as such
    wide = S.delta_trend(SIZES, treated, base, margin=0.05)
    assert wide.change["reading"] == "equivalent" and "within ±0.05" in wide.words
    # Δ about 0 everywhere: a line through noise crosses 0 somewhere, but without a trend no crossing is read
    around = S.delta_trend(SIZES, base + rng.normal(0, 0.008, base.shape), base)
    assert around.slope.p >= 0.05 and around.crossing is None
    flat = S.delta_trend(SIZES, base - 0.02, base)  # exactly the same Δ at every size
    assert flat.crossing is None and flat.slope.delta == pytest.approx(0, abs=1e-12)
    assert flat.change["reading"] == "identical" and "the same at every size" in flat.words


def test_inconclusive_deltas_never_read_as_no_effect():
    """Δ(n) whose per-size estimates change sign, each interval wide: every size and the trend read
    inconclusive, say the effects they cannot rule out, and note that the point estimates change sign."""
    base, _ = cube(lambda n: S.power(TRUE, n), n_lang=4, n_seed=2, seed=5, sd_res=0.03)
    rng = np.random.default_rng(6)
    for attempt in range(20):
        treated = base + rng.normal(0, 0.03, base.shape)
        t = S.delta_trend(SIZES, treated, base, margin=0.01)
        signs = {np.sign(e.delta) for e in t.effects}
        if t.slope.p > 0.05 and len(signs) > 1 and all(e.reading(0.01) == "inconclusive" for e in t.effects):
            break
    else:
        pytest.fail("no draw with an inconclusive trend and estimates of both signs")
    for e in t.effects:
        words = S.effect_words(e, 0.01)
        assert "inconclusive" in words and f"{e.hi:+.3f}" in words
        assert not any(b in words for b in BANNED)
    assert "the per-size estimates change sign" in t.words and not any(b in t.words for b in BANNED)


def test_the_effect_words_follow_the_four_readings():
    rng = np.random.default_rng(7)
    clear = S.paired_effect(0.05 + rng.normal(0, 0.005, (8, 3)))
    same = S.paired_effect(rng.normal(0, 0.002, (8, 3)))
    assert S.effect_words(clear, 0.01) == f"Δ {clear.delta:+.3f} [95% CI {clear.lo:+.3f}, {clear.hi:+.3f}], better"
    assert S.effect_words(S.paired_effect(-0.05 + rng.normal(0, 0.005, (8, 3))), 0.01).endswith(", worse")
    assert same.reading(0.01) == "equivalent" and ", equivalent within ±0.01 (90% CI" in S.effect_words(same, 0.01)


def test_the_size_a_curve_needs_to_reach_a_score():
    assert S.size_to_reach(("power law with a ceiling", TRUE), float(S.power(TRUE, [400])[0])) == pytest.approx(400)
    assert S.size_to_reach(("log-linear", (0.1, 0.05)), 0.1 + 0.05 * math.log(300)) == pytest.approx(300)
    assert S.size_to_reach(("power law with a ceiling", TRUE), 0.9) == math.inf  # above its ceiling


def test_data_efficiency_is_the_shift_between_the_two_fitted_curves():
    better = (0.85, 1.5, 0.5)
    truth = (1.5 / (0.85 - float(S.power(TRUE, SIZES[-1:])[0]))) ** 2  # 212 examples per language
    base, (lang, _) = cube(lambda n: S.power(TRUE, n), seed=1)
    treated, _ = cube(lambda n: S.power(better, n), seed=2)
    c, b = S.curve(SIZES, treated), S.curve(SIZES, base)
    m = S.size_to_match(c, b)
    form = m["form"]
    # the target is the baseline's *fitted* score at 800, not its observed mean there
    assert m["target"] == pytest.approx(float(S.FORMS[form][1](b.fits[form]["params"], [800])[0]))
    assert m["needs"] == pytest.approx(S.size_to_reach((form, c.fits[form]["params"]), m["target"]))
    assert m["needs_lo"] <= truth <= m["needs_hi"] and m["ratio_hi"] < 1 and m["p"] < 0.05
    assert m["reading"].startswith("less data")
    # the same curve against itself: a shift of exactly 1×, which no data can call a gain
    itself = S.size_to_match(b, b)
    assert itself["ratio"] == pytest.approx(1) and itself["ratio_lo"] < 1 < itself["ratio_hi"]
    assert itself["reading"].startswith("inconclusive")
    worse = S.size_to_match(S.curve(SIZES, base - 0.1), b)
    assert worse["needs"] == math.inf and worse["reading"] == "its fitted curve never reaches the target"


def test_a_power_law_fitted_to_too_few_or_too_flat_means_is_not_identified():
    """Five sizes over a short range, with a seed effect of each size's own: a and b are not pinned down."""
    sizes = SIZES[:5]
    rng = np.random.default_rng(8)
    y = S.power(TRUE, sizes)[:, None, None] + rng.normal(0, 0.03, (5, 8, 3)) + rng.normal(0, 0.02, (5, 1, 3))
    c = S.curve(sizes, y)
    fit = c.fits["power law with a ceiling"]
    assert not fit["identified"] and ("reaches 0" in fit["why"] or "spans more than" in fit["why"])
    three = S.curve(SIZES[:4], S.power(TRUE, SIZES[:4])[:, None, None] + rng.normal(0, 0.01, (4, 8, 3)))
    assert not three.fits["power law with a ceiling"]["identified"]
    assert "4 sizes for 3 parameters" in three.fits["power law with a ceiling"]["why"]
    good, _ = cube(lambda n: S.power(TRUE, n), sd_res=0.005)
    assert S.curve(SIZES, good).fits["power law with a ceiling"]["identified"]


def test_interval_of_the_mean_and_of_a_drop_come_from_the_model():
    """Seed effects drawn anew at each size: the per-size mean's interval is the model's Effect of that
    size's [language × seed] matrix, and a drop is judged on the difference of two sizes' matrices."""
    y, _ = cube(lambda n: S.power(TRUE, n), seed=9)
    y = y + np.random.default_rng(10).normal(0, 0.02, (len(SIZES), 1, 3))
    c = S.curve(SIZES, y)
    for k, e in enumerate(c.mean_effects):
        ref = S.paired_effect(y[k])
        assert (e.lo, e.hi) == pytest.approx((ref.lo, ref.hi)) and e.delta == pytest.approx(c.means[k])
    step = S.paired_effect(y[1] - y[0])
    assert (c.steps[0].lo, c.steps[0].hi) == pytest.approx((step.lo, step.hi))
