"""Parameter importance: only from enough configurations, with a bootstrap interval, diverged trials as
failures, and a sentence where it contradicts a significant paired comparison (analysis/importance.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from alchemy_tune.analysis import importance as I
from alchemy_tune.core import constants as C

SCORE = "best_dev_select"


def _trials(n_configs: int, *, seeds: int = 1, seed: int = 0) -> pd.DataFrame:
    """A random search: the learning rate drives the score (best at 10^-3.5), the schedule and the feature set
    do not; ``seeds`` replicates per configuration."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_configs):
        lr = float(10 ** rng.uniform(-5, -2))
        schedule, features = rng.choice(["constant", "warmup", "linear_decay"]), rng.choice(["syntax", "geo"])
        for s in range(seeds):
            rows.append({"cfg_lr": lr, "cfg_lambda_schedule": schedule, "cfg_uriel_features": features,
                         "cfg_seed": 42 + s, "status": C.COMPLETED,
                         SCORE: 0.6 - 0.1 * abs(np.log10(lr) + 3.5) + rng.normal(0, 0.005)})
    return pd.DataFrame(rows)


def test_fewer_than_twenty_configurations_give_no_numbers():
    """Configurations count, not trials: 19 configurations with 3 seeds each (57 trials) are still too few."""
    table, note = I.param_importance(_trials(19, seeds=3), SCORE)
    assert table.empty
    assert note == "importance needs ≥ 20 configurations (19 here)"
    table, note = I.param_importance(_trials(20, seeds=3), SCORE)
    assert len(table) == 3 and "over 20 configurations" in note


def test_importance_comes_with_a_bootstrap_interval_over_configurations():
    trials = _trials(60)
    table, note = I.param_importance(trials, SCORE)
    assert list(table.columns) == ["parameter", "importance", "importance_lo", "importance_hi"]
    assert "bootstrap over configurations, 200 resamples" in note
    rank = table.set_index("parameter")
    assert (rank["importance_lo"] <= rank["importance_hi"]).all()
    assert rank["importance"].sum() == pytest.approx(1.0)
    # the driving parameter is separated from the others by its interval, not only by its point
    assert rank.loc["lr", "importance_lo"] > rank.drop(index="lr")["importance_hi"].max()
    again, _ = I.param_importance(trials, SCORE)
    pd.testing.assert_frame_equal(table, again)  # one seed: one report
    other, _ = I.param_importance(trials, SCORE, seed=1)
    assert not np.allclose(other["importance_hi"], table["importance_hi"])
    # more configurations, a narrower interval for the same parameter
    wide = table.set_index("parameter")
    narrow = I.param_importance(_trials(600), SCORE)[0].set_index("parameter")
    assert (narrow.loc["lr", "importance_hi"] - narrow.loc["lr", "importance_lo"]
            < wide.loc["lr", "importance_hi"] - wide.loc["lr", "importance_lo"])


def test_the_fast_ped_anova_resamples_equal_optunas_own_on_each_resample():
    """The grid-count shortcut must be the evaluator itself, resample by resample, not an approximation."""
    import optuna

    configs = I.configurations(_trials(40), SCORE)
    params, _ = I.encode(configs)
    scores = configs[SCORE].to_numpy(dtype=float)
    draws = I._resamples(len(configs), 12, seed=3)
    fast = I._ped_anova_resamples(params, scores, draws)
    frozen = [optuna.trial.create_trial(params={k: v[i] for k, (_, v) in params.items()},
                                        distributions={k: d for k, (d, _) in params.items()}, value=float(x))
              for i, x in enumerate(scores)]
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        slow = I._optuna_resamples(frozen, I._evaluator("ped-anova"), list(params), draws)
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    # and the reported importance is Optuna's own over the configurations as they are
    table, _ = I.param_importance(_trials(40), SCORE)
    own = I._importances(frozen, I._evaluator("ped-anova"), list(params))
    np.testing.assert_allclose(table.set_index("parameter").loc[list(params), "importance"], own, atol=1e-12)


def _diverging(seed: int = 0) -> pd.DataFrame:
    """The learning rate does nothing to a completed trial's score, but above 10^-3 half the trials diverge
    (NaN score); the schedule moves the score a little."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(60):
        lr = float(10 ** rng.uniform(-5, -2))
        schedule = ["constant", "warmup", "linear_decay"][i % 3]
        for s in range(2):
            diverged = lr > 1e-3 and s == 0
            rows.append({"cfg_lr": lr, "cfg_lambda_schedule": schedule, "cfg_seed": s,
                         "status": C.DIVERGED if diverged else C.COMPLETED,
                         SCORE: np.nan if diverged else 0.6 + 0.01 * (schedule == "warmup") + rng.normal(0, 0.01)})
    return pd.DataFrame(rows)


def test_diverged_trials_count_as_failures_at_the_worst_completed_score():
    trials = _diverging()
    failed = trials.iloc[[1]].assign(status=C.FAILED, cfg_lr=5e-4, **{SCORE: np.nan})  # a crash: not counted
    configs = I.configurations(pd.concat([trials, failed], ignore_index=True), SCORE)
    assert len(configs) == 60 and configs["replicates"].sum() == len(trials)
    n_diverged = int((trials["status"] == C.DIVERGED).sum())
    assert configs["diverged"].sum() == n_diverged > 0
    worst = trials.loc[trials["status"] == C.COMPLETED, SCORE].min()
    hit = configs[configs["diverged"] > 0]
    second = trials[(trials["status"] == C.COMPLETED) & (trials["cfg_lr"] > 1e-3)].set_index("cfg_lr")[SCORE]
    np.testing.assert_allclose(hit[SCORE], (worst + second.loc[hit["cfg_lr"]].to_numpy()) / 2)

    table, note = I.param_importance(trials, SCORE)
    assert f"{n_diverged} diverged trial(s) count as failures" in note
    counted = table.set_index("parameter")["importance"]
    survivors, _ = I.param_importance(trials[trials["status"] == C.COMPLETED], SCORE)
    left_out = survivors.set_index("parameter")["importance"]
    # counted as failures the learning rate is what matters; among the survivors alone it looks far less so
    assert counted["lr"] > counted["lambda_schedule"] and counted["lr"] > left_out["lr"] + 0.2


def _dimension(p_holm: float, delta: float = -0.046) -> pd.DataFrame:
    """A per-setting table as paired.dimension_comparisons writes it (the columns the check reads)."""
    return pd.DataFrame({"lambda_schedule": ["alchemyscale", "alchemytune"], "configuration": ["a", "b"],
                         "reference": ["lambda_schedule=constant"] * 2, "Δunseen": [delta, -0.001],
                         "p_unseen": [p_holm / 2, 0.9], "p_holm_unseen": [p_holm, 0.9],
                         "Δseen": [0.0, 0.0], "p_seen": [0.8, 0.8], "p_holm_seen": [0.9, 0.9]})


IMPORTANCE = pd.DataFrame({"parameter": ["lr", "lambda_schedule"], "importance": [0.996, 0.004],
                           "importance_lo": [0.98, 0.001], "importance_hi": [0.999, 0.012]})


def test_importance_near_zero_against_a_significant_paired_comparison_is_called_a_disagreement():
    sentences = I.disagreements(IMPORTANCE, {"by:lambda_schedule": _dimension(0.036)})
    assert len(sentences) == 1
    s = sentences[0]
    assert s.startswith("Importance and the paired comparison disagree on lambda_schedule")
    assert "0.004 (95% interval 0.001–0.012" in s
    assert "lambda_schedule=alchemyscale different from lambda_schedule=constant (Δunseen -0.046, Holm p 0.036)" in s
    assert "alchemytune" not in s  # not significant: not named
    # analyze.dimensions' shape ({setting: (table, note)}) reads the same
    assert I.disagreements(IMPORTANCE, {"lambda_schedule": (_dimension(0.036), None)}) == sentences


@pytest.mark.parametrize("importance_hi, p_holm", [(0.012, 0.2),   # the paired comparison finds nothing
                                                   (0.30, 0.036),  # importance is not near zero
                                                   (0.012, float("nan"))])
def test_agreeing_importance_and_paired_comparisons_say_nothing(importance_hi, p_holm):
    table = IMPORTANCE.assign(importance_hi=[0.999, importance_hi])
    assert I.disagreements(table, {"by:lambda_schedule": _dimension(p_holm)}) == []


def test_no_disagreement_without_numbers_or_without_the_settings_table():
    assert I.disagreements(pd.DataFrame(), {"by:lambda_schedule": _dimension(0.01)}) == []
    assert I.disagreements(IMPORTANCE, {"by:uriel_features": _dimension(0.01)}) == []
    assert I.disagreements(IMPORTANCE, {"by:lambda_schedule": pd.DataFrame()}) == []


def test_without_the_grid_shortcut_optuna_computes_every_resample_and_agrees(monkeypatch):
    """Where Optuna's internals differ, the shortcut steps aside and each resample is Optuna's evaluator."""
    trials = _trials(30)
    fast, _ = I.param_importance(trials, SCORE, resamples=20)
    monkeypatch.setattr(I, "_ped_anova_resamples", lambda *a: None)
    slow, _ = I.param_importance(trials, SCORE, resamples=20)
    pd.testing.assert_frame_equal(fast, slow, atol=1e-12)


def test_the_report_opens_its_importance_note_with_the_disagreement(tmp_path, monkeypatch):
    """Wiring: compute hands its per-setting tables to the check. The synthetic search's feature sets differ
    significantly from the reference; with "near zero" widened to every share, that must be called out."""
    from functools import partial

    from alchemy_tune.analysis import analyze as A
    from alchemy_tune.analysis import report as R
    from testing.synthetic import make_run

    runs = A.load_runs([make_run(str(tmp_path / "run"), n_trials=144, metric="dev_seen")])
    tables, notes, _ = R.compute(runs, top=5, importance="ped-anova")
    assert not tables["importance"].empty and (tables["by:uriel_features"]["p_holm_unseen"] < 0.05).any()
    assert "disagree" not in notes["importance"]  # no importance interval here lies below 0.05
    monkeypatch.setattr(R, "disagreements", partial(I.disagreements, near_zero=1.01))
    tables, notes, _ = R.compute(runs, top=5, importance="ped-anova")
    assert notes["importance"].startswith("Importance and the paired comparison disagree on ")
    assert "disagree on uriel_features: its importance is" in notes["importance"]
    assert notes["importance"].endswith("(the space file was not found: conditions unknown)")
