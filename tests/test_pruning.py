"""Pruning: every pruner by name, Wilcoxon over per-language scores, and real Ray trials stopped early."""

from __future__ import annotations

import json

import os
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from ray.tune.schedulers import TrialScheduler

from alchemy_tune.core import constants as C
from alchemy_tune.core.errors import UsageError
from alchemy_tune.tuning.searcher import StudyHandle
from alchemy_tune.tuning.pruning import OptunaPruningScheduler, build_pruner, objective_langs
from alchemy_tune.tuning.study_attrs import LANG_SCORES_ATTR, PRUNED_AT_ATTR
from alchemy_tune.tuning.journal import JOURNAL
from alchemy_tune.tuning.search import SearchRequest, run_search
from alchemy_tune.core.settings import PRUNERS
from alchemy_tune.tuning.space_file import load_space

TESTS = Path(__file__).resolve().parent
EXPECTED = {"none": "NopPruner", "asha": "NopPruner", "median": "MedianPruner", "percentile": "PercentilePruner",
            "successive-halving": "SuccessiveHalvingPruner", "hyperband": "HyperbandPruner",
            "threshold": "ThresholdPruner", "patient": "PatientPruner", "wilcoxon": "PerEvaluationWilcoxonPruner"}


@pytest.mark.parametrize("name", PRUNERS)
def test_every_pruner_name_builds_its_optuna_pruner(name):
    assert type(build_pruner(name)).__name__ == EXPECTED[name]


def test_unknown_pruner_and_bad_options_are_usage_errors():
    with pytest.raises(UsageError, match="'early'.*median"):
        build_pruner("early")
    with pytest.raises(UsageError, match="percentile"):
        build_pruner("percentile", options={"percentile": 150})


def _report(step, unseen: dict, seen: dict | None = None, **top):
    langs = {k: {"seen": False, "dev": {"accuracy": v}} for k, v in unseen.items()}
    langs.update({k: {"seen": True, "dev": {"accuracy": v}} for k, v in (seen or {}).items()})
    return {"step": step, "langs": langs, "primary_metric": "accuracy", "status": C.RUNNING, **top}


def test_objective_langs_pairs_the_objectives_group_in_a_stable_order():
    from ray.tune.utils import flatten_dict

    report = _report(3, {"spa": 0.4, "rus": 0.3}, {"eng": 0.9})
    # Trials send the languages through Tune as one JSON string; a nested dict and Tune's flattened form of
    # one ("langs/spa/dev/accuracy") are read too: every form gives the same pairs
    for form in (report, flatten_dict(report), {**report, "langs": json.dumps(report["langs"])}):
        assert objective_langs(form, "dev_unseen") == [("rus", 0.3), ("spa", 0.4)]
        assert objective_langs(form, "dev_seen") == [("eng", 0.9)]
        assert [lang for lang, _ in objective_langs(form, "dev_all")] == ["eng", "rus", "spa"]
    # roles: the Wilcoxon pruner pairs the selection metric's languages, never the test languages
    report["langs"]["rus"]["role"] = C.VAL
    assert objective_langs(report, C.SELECT) == [("eng", 0.9), ("rus", 0.3)]
    assert objective_langs(report, "dev_val") == [("rus", 0.3)]
    assert objective_langs(report, C.ORACLE_DEV_UNSEEN) == [("spa", 0.4)]


def test_wilcoxon_compares_each_evaluation_with_the_best_trials_same_evaluation(tmp_path):
    """A trial better than the best at evaluation 1 but worse on every language at evaluation 2 is pruned
    at 2; pooled over both evaluations (what Optuna's own pruner does with repeated languages) its early
    lead would hide that."""
    space = load_space(_space(tmp_path))
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner="wilcoxon", seed=0)
    scheduler = OptunaPruningScheduler(handle, "dev_unseen", "wilcoxon")
    langs = [f"l{i}" for i in range(8)]

    def run(name, levels):
        handle.ask(name, space)
        for it, level in enumerate(levels, start=1):
            scores = {lang: level + 0.01 * i for i, lang in enumerate(langs)}
            result = _report(it, scores, training_iteration=it, dev_unseen=sum(scores.values()) / 8,
                             status=C.COMPLETED if it == len(levels) else C.RUNNING)
            if scheduler.on_trial_result(None, SimpleNamespace(trial_id=name), result) == TrialScheduler.STOP:
                break
        handle.finish(name, result)
        return it

    assert run("best", [0.2, 0.6, 0.7]) == 3
    assert run("later", [0.5, 0.3, 0.9]) == 2  # far ahead at 1, behind on every language at 2
    assert handle.frozen("later").state == optuna.trial.TrialState.PRUNED
    assert handle.frozen("later").value == pytest.approx(0.3 + 0.035)  # the mean at 2, not one language


@pytest.mark.parametrize("pruner", ["median", "wilcoxon", "threshold", "percentile", "patient",
                                    "successive-halving", "hyperband"])
def test_scheduler_stops_a_clearly_bad_trial_and_marks_its_step(tmp_path, pruner):
    """The scheduler on a real journal study: two good trials complete, then a bad one is stopped."""
    space = load_space(_space(tmp_path))
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner=pruner, seed=0,
                         pruner_options={"lower": 0.5} if pruner == "threshold" else None)
    scheduler = OptunaPruningScheduler(handle, "dev_unseen", pruner)
    langs = [f"l{i}" for i in range(8)]
    decisions = {}
    for name, level in (("good1", 0.80), ("good2", 0.84), ("good3", 0.86), ("bad", 0.10)):
        handle.ask(name, space)
        trial = SimpleNamespace(trial_id=name)
        for it in range(1, 7):
            rise = 0.01 * it * (-1 if name == "bad" else 1)  # the bad one gets worse (what patient waits for)
            scores = {lang: level + 0.01 * i + rise for i, lang in enumerate(langs)}
            result = _report(it * 10, scores, training_iteration=it,
                             dev_unseen=sum(scores.values()) / len(scores))
            if it == 6:
                result["status"] = C.COMPLETED
            decision = scheduler.on_trial_result(None, trial, result)
            if decision == TrialScheduler.STOP:
                break
        decisions[name] = (decision, it)
        handle.finish(name, result)
    assert all(decisions[g][0] == TrialScheduler.CONTINUE for g in ("good1", "good2", "good3"))
    decision, stopped_at = decisions["bad"]
    assert decision == TrialScheduler.STOP and stopped_at < 6
    frozen = handle.frozen("bad")
    assert frozen.state == optuna.trial.TrialState.PRUNED
    assert frozen.user_attrs[PRUNED_AT_ATTR] == stopped_at * 10  # the trial's own step, not the eval index
    # one intermediate value per evaluation: the objective (so a pruned trial's value is the mean)
    assert set(frozen.intermediate_values) == set(range(1, stopped_at + 1))
    assert frozen.value == pytest.approx(result["dev_unseen"])
    if pruner == "wilcoxon":  # and the per-language scores of each evaluation in one attribute
        assert set(frozen.user_attrs[f"{LANG_SCORES_ATTR}{stopped_at}"]) == set(langs)


def test_a_diverged_report_is_not_pruned_and_stays_out_of_the_curves(tmp_path):
    space = load_space(_space(tmp_path))
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner="threshold", seed=0, pruner_options={"lower": 0.5})
    scheduler = OptunaPruningScheduler(handle, "dev_unseen", "threshold")
    handle.ask("t", space)
    result = {"step": 1, "training_iteration": 1, "dev_unseen": float("nan"), "status": C.DIVERGED,
              "reason": "nan"}
    assert scheduler.on_trial_result(None, SimpleNamespace(trial_id="t"), result) == TrialScheduler.CONTINUE
    assert handle.finish("t", result) == C.DIVERGED
    assert handle.frozen("t").intermediate_values == {}


def _space(tmp_path: Path, sampler="random") -> str:
    path = tmp_path / "space.yaml"
    path.write_text(f"search: {{sampler: {sampler}}}\nlr: {{type: categorical, choices: [1.0e-3, 1.0e-6]}}\n")
    return str(path)


@pytest.fixture(scope="module")
def scripted_ray():
    """One embedded Ray on 127.0.0.1 for this module's searches; its workers import tests/scripted_trials.py."""
    import ray

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), saved or ""])
    ray.init(address="local", num_cpus=1, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()
        os.environ.pop("PYTHONPATH") if saved is None else os.environ.update(PYTHONPATH=saved)


# median in the fast tier (an Optuna pruner stopping a real Ray trial); the other two in the slow tier
@pytest.mark.parametrize("pruner", ["median", pytest.param("asha", marks=pytest.mark.slow),
                                    pytest.param("wilcoxon", marks=pytest.mark.slow)])
def test_ray_trials_are_really_stopped(tmp_path, scripted_ray, pruner):
    """Grid order, one at a time: two good trials (the second better, so even ASHA keeps it) run to the end,
    then a clearly bad one (lr 1e-6: quality 0) is stopped early; Ray ran it for fewer evaluations.

    Through Tune, so schedulers see what Tune gives them (flattened results); ASHA's top rung is the trials'
    last evaluation (max_evals 6), where it says STOP to trials that ran to their end: still completed.
    """
    from alchemy_tune.results.schema import read_trials

    space = tmp_path / "space.yaml"
    space.write_text("search: {sampler: grid, max_concurrent: 1, seed: 0, max_evals: 6}\n"
                     "lr: {type: categorical, choices: [0.0011, 1.0e-3, 1.0e-6]}\n")
    outcome = run_search(SearchRequest(space_path=str(space), storage=str(tmp_path), name="p",
                                       settings={"trials": 3, "pruner": pruner},
                                       trial_fn="scripted_trials:quality_trial", progress_interval_s=1000))
    assert outcome.counts == {C.COMPLETED: 2, C.PRUNED: 1}
    rows = {r["cfg_lr"]: r for r in read_trials(str(tmp_path / "p")).to_pylist()}
    assert rows[1e-6]["status"] == C.PRUNED and rows[1e-6]["n_reports"] < rows[1e-3]["n_reports"] == 6
    assert rows[1e-6]["pruned_at_step"] == rows[1e-6]["final_step"]
    study = optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "p" / JOURNAL))))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]


def test_the_wilcoxon_pruners_p_is_its_formula_on_exact_differences():
    """zsplit and the normal approximation with the tie correction, by hand: zeros' ranks split between the
    signs, tied |d| share their mean rank; a difference of ±1e-17 (round-off) is a zero, equal changes tie.
    (scipy's own `method="auto"` changed how it treats zeros and ties between releases; the pruner names
    its method so this holds on every scipy the project allows.)"""
    import math

    import numpy as np
    from scipy.stats import norm, rankdata

    from alchemy_tune.tuning.pruning import wilcoxon_behind

    b = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    d_true = np.array([-3, -1, -1, 0, 2, -4, -2, -1]) / 120
    a = b + d_true
    a[3] = 0.5 + 1e-17  # a language with no change, stored with round-off
    ranks = rankdata(np.abs(d_true))
    t_plus = ranks[d_true > 0].sum() + ranks[d_true == 0].sum() / 2
    n = len(d_true)
    _, counts = np.unique(np.abs(d_true), return_counts=True)
    se = math.sqrt(n * (n + 1) * (2 * n + 1) / 24 - (counts**3 - counts).sum() / 48)
    expected = norm.cdf((t_plus - n * (n + 1) / 4) / se)
    assert wilcoxon_behind(a, b) == pytest.approx(expected, rel=1e-9)
    a[3] = 0.5 - 1e-17
    assert wilcoxon_behind(a, b) == pytest.approx(expected, rel=1e-9)
    assert wilcoxon_behind(b, a, maximize=False) == pytest.approx(expected, rel=1e-9)
