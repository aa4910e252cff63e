import math

import numpy as np
import pytest

from alchemy_tune.trial.metrics import accuracy, macro_f1, notes, pearson, score, spearman


def test_accuracy_and_macro_f1_by_hand():
    gold = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    assert accuracy(gold, pred) == pytest.approx(4 / 6)
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp1 fp0 fn1 -> 2/3
    assert macro_f1(gold, pred) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_correlations_match_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    y[:5] = y[5]  # ties
    assert pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y)[0])
    assert spearman(x, y) == pytest.approx(scipy_stats.spearmanr(x, y)[0])


def test_degenerate_inputs():
    assert math.isnan(accuracy(np.array([]), np.array([])))
    # a constant prediction has no defined correlation: NaN (a 0 would hide a collapsed regressor)
    gold, flat = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0])
    assert math.isnan(pearson(gold, flat)) and math.isnan(spearman(gold, flat))
    assert all(math.isnan(v) for v in score("pair_regression", gold, flat).values())
    assert "collapsed regressor" in notes("pair_regression", gold, flat)[0]
    assert "gold" in notes("pair_regression", flat, gold)[0]
    assert notes("pair_regression", gold, gold) == [] and notes("classification", gold, flat) == []
    assert set(score("pair_regression", np.arange(4.0), np.arange(4.0))) == {"pearson", "spearman"}
