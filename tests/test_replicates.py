"""Replicates (``repeats: k``): k training seeds per configuration; the sampler and the pruner see one value
per configuration (the mean over its replicates); pruning a configuration stops all its replicates.

Real searches through ``run_search`` with the real trial (tiny encoder) on Ray bound to 127.0.0.1. The TPE +
median-pruning case runs in ``test_search.py``'s scrambled-labels test, which checks the same invariants.
"""

from __future__ import annotations


import optuna
import pytest

from alchemy_tune.core import constants as C
from alchemy_tune.tuning.replicates import seeded
from alchemy_tune.results.schema import read_trials
from alchemy_tune.tuning.journal import JOURNAL
from alchemy_tune.tuning.search import SearchRequest, run_search
from testing.searches import TINY, check_configurations_see_replicate_means, load_study, write_space


@pytest.fixture
def ray_cleanup():
    yield
    import ray

    ray.shutdown()


def test_replicate_seeds_are_the_base_seed_plus_the_index():
    assert seeded({"lr": 1e-3, "seed": 7}, 2) == {"lr": 1e-3, "seed": 9}
    assert seeded({"lr": 1e-3}, 1)["seed"] == 43  # TrialConfig's default seed is the base
    # replicate_data: the data seed moves with the training seed (TrialConfig's default data seed, 0, is the base)
    assert seeded({"lr": 1e-3, "seed": 7, "data_seed": 5}, 2, data=True) == {"lr": 1e-3, "seed": 9, "data_seed": 7}
    assert seeded({"lr": 1e-3}, 1, data=True) == {"lr": 1e-3, "seed": 43, "data_seed": 1}
    assert seeded({"seed": 7, "data_seed": 5}, 2)["data_seed"] == 5  # off: every replicate on the same subsets


@pytest.mark.parametrize("replicate_data, data_seeds", [(False, [3, 3, 3]), (True, [3, 4, 5])])
def test_a_search_hands_out_replicates_with_or_without_their_own_data_seeds(tmp_path, replicate_data, data_seeds):
    """The search setting reaches the replicates through the study handle (the one a resume opens too), and
    the configuration the sampler sees keeps its base seeds: replicates are not configurations."""
    from alchemy_tune.core.settings import SearchSettings
    from alchemy_tune.tuning.replicates import suggest
    from alchemy_tune.tuning.searcher import StudyHandle
    from alchemy_tune.tuning.space_file import load_space

    space = load_space(write_space(tmp_path, {}, {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
                                   {"seed": 10, "data_seed": 3}))
    settings = SearchSettings(sampler="random", repeats=3, replicate_data=replicate_data)
    handle = StudyHandle.for_settings(str(tmp_path / JOURNAL), settings)
    configs = [suggest(handle, f"r{i}", space, n_configs=1, grid=None) for i in range(3)]
    assert [(c["seed"], c["data_seed"]) for c in configs] == list(zip([10, 11, 12], data_seeds))
    assert len({c["lr"] for c in configs}) == 1 and handle.n_trials() == 1


@pytest.mark.slow
def test_grid_with_repeats_pruning_a_configuration_stops_all_its_replicates(tmp_path, tiny_encoder_dir,
                                                                            ray_cleanup):
    """Grid of 2 configurations x 2 replicates running side by side; a threshold no trial can reach prunes
    each configuration at its first evaluation, once both replicates have reported it: the study holds 2
    PRUNED trials fed the replicates' mean, and every replicate still running then stops (the one that
    reported last at once, the other at its next evaluation). A replicate that had already finished, as
    happens when the machine is busy and its sibling starts late, stays completed."""
    space = write_space(tmp_path, {"sampler": "grid", "pruner": "threshold", "max_concurrent": 2, "repeats": 2,
                                   "pruner_options": {"lower": 0.99, "n_warmup_steps": 1}},
                        {"lr": {"type": "categorical", "choices": [1e-3, 3e-4]}},
                        {**TINY, "model": tiny_encoder_dir, "seed": 42})
    outcome = run_search(SearchRequest(space_path=space, storage=str(tmp_path / "runs"), name="grid", num_cpus=2,
                                       settings={"trials": 5}, progress_interval_s=1000))
    run_dir = tmp_path / "runs" / "grid"
    assert outcome.counts == {C.PRUNED: 2} and outcome.repeats == 2  # configurations, not Ray trials
    study = load_study(run_dir)
    assert sorted(t.params["lr"] for t in study.trials) == [3e-4, 1e-3]
    assert all(list(t.intermediate_values) == [1] for t in study.trials)
    trials = read_trials(str(run_dir)).to_pandas()
    assert len(trials) == 4 and sorted(trials["config_id"].unique()) == ["0", "1"]
    assert set(trials["status"]) <= {C.PRUNED, C.COMPLETED}
    assert (trials.groupby("config_id")["status"].apply(lambda s: C.PRUNED in set(s))).all()
    # 3 evaluations per trial: a pruned replicate stopped after at most its second
    assert (trials[trials["status"] == C.PRUNED]["n_reports"] <= 2).all()
    assert (trials[trials["status"] == C.COMPLETED]["n_reports"] == 3).all()
    assert set(trials["cfg_data_seed"]) == {0}
    check_configurations_see_replicate_means(run_dir, repeats=2)


def test_the_study_sees_one_configuration_fed_its_replicates_mean(tmp_path):
    """Optuna side without Ray: replicates of one configuration are handed out in order; an evaluation is
    reported once every live replicate has it; a diverged replicate stops counting; the configuration is
    told once, with the mean of its completed replicates; a slot whose Ray trial was lost is handed out again."""
    from alchemy_tune.tuning.searcher import StudyHandle
    from alchemy_tune.tuning.replicates import aggregate, release_unknown, suggest
    from alchemy_tune.tuning.space_file import load_space

    space = load_space(write_space(tmp_path, {}, {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
                                   {"seed": 10}))
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[(C.SELECT, "max")], sampler="random",
                         pruner="median", seed=0, repeats=3)
    configs = [suggest(handle, f"r{i}", space, n_configs=1, grid=None) for i in range(3)]
    assert [c["seed"] for c in configs] == [10, 11, 12] and len({c["lr"] for c in configs}) == 1
    assert suggest(handle, "r3", space, n_configs=1, grid=None) is None  # one configuration, all handed out
    assert handle.n_trials() == 1

    def feed(ray_id, eval_index, values):  # what the pruning scheduler does with a replicate's report
        out = aggregate(handle, ray_id, eval_index, values)
        for step, value in (out or {}).items():
            handle.optuna_trial(ray_id).report(value, step)
        return out

    assert feed("r0", 1, {1: 0.2}) is None  # waiting for r1 and r2
    assert feed("r1", 1, {1: 0.4}) is None
    assert feed("r2", 1, {1: 0.6}) == {1: pytest.approx(0.4)}
    assert handle.finish("r2", {C.STEP: 1, C.STATUS: C.DIVERGED, C.REASON: "nan"}) == C.DIVERGED
    assert feed("r0", 2, {2: 0.3}) is None
    assert feed("r1", 2, {2: 0.5}) == {2: pytest.approx(0.4)}  # r2 ended: r0 and r1 only
    assert handle.study.trials[0].intermediate_values == {1: pytest.approx(0.4), 2: pytest.approx(0.4)}
    assert handle.finish("r0", {C.STEP: 2, C.SELECT: 0.3, C.STATUS: C.COMPLETED}) == C.COMPLETED
    assert handle.study.trials[0].state == optuna.trial.TrialState.RUNNING  # r1 still running
    assert handle.finish("r1", {C.STEP: 2, C.SELECT: 0.5, C.STATUS: C.COMPLETED}) == C.COMPLETED
    (trial,) = handle.study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == pytest.approx(0.4)
    assert handle.finish("r1", {C.STEP: 2, C.SELECT: 0.9, C.STATUS: C.COMPLETED}) is None  # told once

    # a driver killed after handing out a replicate Tune never recorded: the slot is freed and reused
    suggest(handle, "s0", space, n_configs=2, grid=None)
    suggest(handle, "s1", space, n_configs=2, grid=None)
    assert release_unknown(handle, {"r0", "r1", "r2", "s0"}) == 1
    again = StudyHandle(str(tmp_path / JOURNAL), objectives=[(C.SELECT, "max")], sampler="random",
                        pruner="median", seed=0, repeats=3)  # what `resume` opens
    assert suggest(again, "t1", space, n_configs=2, grid=None)["seed"] == 11
    assert again.frozen("t1").number == again.frozen("s0").number == 1
