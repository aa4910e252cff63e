"""Matched baselines on demand (alchemy_tune/tuning/baselines.py): the searcher adds each sampled URIEL
configuration's plain fine-tuning twin, once per distinct twin, outside the sampler; a real TPE search over
continuous lr and λ ends with a paired Δ for every completed configuration."""

from __future__ import annotations

from alchemy_tune.tuning.study_attrs import CONFIG_ATTR, TWIN_KEY_ATTR, TWIN_OF_ATTR
from alchemy_tune.trial.config import is_plain

import dataclasses

import optuna
import pytest
from optuna.trial import TrialState

from alchemy_tune.core import constants as C
from alchemy_tune.core.errors import UsageError
from alchemy_tune.tuning import baselines as B
from alchemy_tune.tuning.journal import JOURNAL
from alchemy_tune.tuning.searcher import OptunaSearcher, StudyHandle
from alchemy_tune.tuning.space_file import load_space
from testing.searches import TINY, write_space

LR = {"type": "float", "low": 1.0e-5, "high": 1.0e-3, "log": True}


def _searcher(tmp_path, params: dict, *, trials: int, repeats: int = 1, sampler: str = "random"):
    space = load_space(write_space(tmp_path, {"sampler": sampler, "seed": 0}, params, {"seed": 42}))
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_select", "max")], sampler=sampler,
                         pruner="none", seed=0, repeats=repeats, baselines=True)
    return OptunaSearcher(handle, space, n_trials=trials), handle


def _drain(searcher) -> dict[str, dict]:
    """Every Ray trial the searcher hands out until it says FINISHED: {ray id: config}."""
    out, i = {}, 0
    while (config := searcher.suggest(f"r{i}")) not in (None, searcher.FINISHED):
        out[f"r{i}"] = config
        i += 1
    return out


def test_every_sampled_uriel_configuration_gets_its_twin_on_top_of_the_trials(tmp_path):
    searcher, handle = _searcher(tmp_path, {"lr": LR, "lambda": {"type": "categorical", "choices": [0, 1, 10]}},
                                 trials=8)
    handed = _drain(searcher)
    trials = handle.study.get_trials(deepcopy=False)
    sampled = [t for t in trials if not B.is_twin(t)]
    twins = {t.number: t for t in trials if B.is_twin(t)}
    treated = [t for t in sampled if not is_plain(t.user_attrs[CONFIG_ATTR])]
    assert len(sampled) == 8 and handle.n_trials() == 8  # `trials` counts sampled configurations only
    assert treated and len(twins) == len(treated)  # a continuous lr never repeats: one twin each
    for t in treated:
        twin = twins[t.user_attrs[TWIN_OF_ATTR]]
        config, plain = t.user_attrs[CONFIG_ATTR], twin.user_attrs[CONFIG_ATTR]
        assert plain == {**config, "lambda": 0.0}  # identical but for λ: same lr, same seed
        assert twin.params == {}  # nothing for the sampler to learn parameters from
    # every twin was handed to a Ray trial, each once
    assert sorted(c["lr"] for c in handed.values() if c["lambda"] == 0.0 and c in
                  [tw.user_attrs[CONFIG_ATTR] for tw in twins.values()]) == \
        sorted(tw.user_attrs[CONFIG_ATTR]["lr"] for tw in twins.values())
    assert len(handed) == 8 + len(twins)
    assert all(t.state == TrialState.RUNNING for t in trials)


def test_twins_are_shared_and_a_sampled_plain_configuration_serves_as_one(tmp_path):
    """Configurations that differ only in URIEL settings share one twin; a λ = 0 draw with the same other
    settings is itself the baseline, so no twin is added for it."""
    params = {"lr": {"type": "categorical", "choices": [1.0e-4]},
              "lambda": {"type": "categorical", "choices": [0, 1, 10]},
              "uriel_features": {"type": "subset", "of": ["syntax_knn", "geo"], "min_size": 1}}
    searcher, handle = _searcher(tmp_path, params, trials=10)
    _drain(searcher)
    trials = handle.study.get_trials(deepcopy=False)
    first_plain_or_twin = min(n for n in (t.number for t in trials)
                              if B.is_twin(trials[n]) or is_plain(trials[n].user_attrs[CONFIG_ATTR]))
    assert sum(B.is_twin(t) for t in trials) <= 1
    for t in trials:
        if not B.is_twin(t) and not is_plain(t.user_attrs[CONFIG_ATTR]):
            assert t.user_attrs[TWIN_OF_ATTR] == first_plain_or_twin


def test_with_replicates_a_twin_runs_the_same_seeds(tmp_path):
    searcher, handle = _searcher(tmp_path, {"lr": LR, "lambda": {"type": "categorical", "choices": [1, 10]}},
                                 trials=2, repeats=3)
    handed = _drain(searcher)
    twins = [t for t in handle.study.get_trials(deepcopy=False) if B.is_twin(t)]
    assert len(twins) == 2 and len(handed) == 2 * 3 + 2 * 3
    for twin in twins:
        lr = twin.user_attrs[CONFIG_ATTR]["lr"]
        seeds = sorted(c["seed"] for c in handed.values() if c["lr"] == lr and c["lambda"] == 0.0)
        assert seeds == [42, 43, 44]
        assert sorted(c["seed"] for c in handed.values() if c["lr"] == lr and c["lambda"] > 0) == seeds


def test_a_resumed_driver_runs_the_twin_its_predecessor_added_but_never_started(tmp_path):
    searcher, handle = _searcher(tmp_path, {"lr": LR, "lambda": {"type": "categorical", "choices": [1]}},
                                 trials=1)
    assert searcher.suggest("a")["lambda"] == 1  # the driver dies before handing out the twin
    fresh = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_select", "max")], sampler="random",
                        pruner="none", seed=0, baselines=True)
    assert fresh.mark_orphans({"a"}) == 1
    config = OptunaSearcher(fresh, searcher.space, n_trials=1).suggest("b")
    assert config["lambda"] == 0.0 and B.is_twin(fresh.frozen("b"))


def test_the_tpe_start_up_counts_sampled_trials_only(tmp_path):
    """Twins carry no parameters: counted, they would start TPE's modelling on too few sampled trials."""
    from alchemy_tune.tuning.samplers import build_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = build_sampler("tpe", seed=0, n_startup_trials=3)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    for i in range(4):  # 4 finished twins, 2 finished sampled trials: still starting up
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=1.0,
                                                  user_attrs={TWIN_KEY_ATTR: str(i)}))
    for x in (0.1, 0.2):
        study.add_trial(optuna.trial.create_trial(params={"x": x}, value=x, distributions={
            "x": optuna.distributions.FloatDistribution(0, 1)}))
    assert sampler._starting(study)
    study.add_trial(optuna.trial.create_trial(params={"x": 0.3}, value=0.3, distributions={
        "x": optuna.distributions.FloatDistribution(0, 1)}))
    assert not sampler._starting(study)


def test_the_default_is_matched_where_a_sampler_can_run_twins(tmp_path):
    def settings(sampler, lam, baselines=None):
        space = load_space(write_space(tmp_path, {"sampler": sampler, "trials": 4}, {"lr": LR} if sampler not in (
            "grid", "bruteforce") else {"lr": {"type": "categorical", "choices": [1e-4]}}, {"lambda": lam}))
        return B.resolve(space, dataclasses.replace(space.settings, baselines=baselines))

    assert settings("tpe", 1).baselines == "matched"
    assert settings("random", 1).baselines == "matched"
    assert settings("tpe", 0).baselines == "none"  # nothing trains with the URIEL loss
    assert settings("grid", 1).baselines == "none"
    assert settings("gp", 1).baselines == "none"
    with pytest.raises(UsageError, match="sampler gp"):
        settings("gp", 1, "matched")
    with pytest.raises(UsageError, match="give 0 among lambda's choices"):
        settings("grid", 1, "matched")


def test_bad_baselines_setting_is_one_line():
    from testing.cli import one_line_error, run_cli

    assert "matched or none" in one_line_error(run_cli("--baselines", "twins", "--dry-run"), "--baselines")
    assert "sampler gp" in one_line_error(run_cli("--baselines", "matched", "--sampler", "gp", "--dry-run"))


# ----------------------------------------------------------------------------- a real search
@pytest.fixture
def local_ray():
    import ray

    ray.shutdown()
    ray.init(address="local", num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_a_tpe_search_over_continuous_lr_and_lambda_pairs_every_completed_configuration(
        tmp_path, tiny_encoder_dir, local_ray):
    """Acceptance: TPE over continuous lr and λ with baselines: matched; every completed λ > 0 configuration
    has a completed twin, marked in the tables, and `analyze` gives a paired Δ for each."""
    from alchemy_tune.analysis import analyze as A
    from alchemy_tune.analysis import paired as P
    from alchemy_tune.results.schema import read_trials
    from alchemy_tune.tuning.search import SearchRequest, run_search

    space = write_space(tmp_path, {"sampler": "tpe", "pruner": "median", "max_concurrent": 2, "seed": 3,
                                   "baselines": "matched"},
                        {"lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-3, "log": True},
                         "lambda": {"type": "float", "low": 0.1, "high": 10.0, "log": True}},
                        {**TINY, "model": tiny_encoder_dir, "evals_per_epoch": 2})
    outcome = run_search(SearchRequest(space_path=space, storage=str(tmp_path / "runs"), name="twins",
                                       settings={"trials": 3}, progress_interval_s=1000))
    assert sum(outcome.counts.values()) == 3 and sum(outcome.baselines.values()) == 3
    trials = read_trials(outcome.run_dir).to_pandas()
    twins, sampled = trials[trials["matched_baseline"]], trials[~trials["matched_baseline"]]
    assert (twins["cfg_lambda"] == 0).all() and (sampled["cfg_lambda"] > 0).all()
    completed = sampled[sampled["status"] == C.COMPLETED]
    for _, row in completed.iterrows():  # every completed configuration has its one completed twin
        twin = twins[twins["cfg_lr"] == row["cfg_lr"]]
        assert len(twin) == 1 and twin["status"].iloc[0] == C.COMPLETED
    for _, twin in twins[twins["status"] != C.COMPLETED].iterrows():
        # a twin stops early only as unneeded: every configuration it served ended without completing
        assert twin["status"] == C.PRUNED and twin["cfg_lr"] not in set(completed["cfg_lr"])
    rows = P.baseline_comparisons(A.units(A.load_runs([outcome.run_dir])))
    done = rows[rows["lambda"].isin(sampled.loc[sampled["status"] == C.COMPLETED, "cfg_lambda"])]
    assert len(done) == (sampled["status"] == C.COMPLETED).sum() >= 1
    assert (done["baseline"] == "matched").all() and done["Δunseen"].notna().all()
