"""Replicates (``repeats: k``): k training seeds per configuration; the sampler and the pruner see one value
per configuration (the mean over its replicates); pruning a configuration stops all its replicates.

Real searches through ``run_search`` with the real trial (tiny encoder) on Ray bound to 127.0.0.1. The TPE +
median-pruning case runs in ``test_search.py``'s scrambled-labels test, which checks the same invariants.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import optuna
import pytest

from alchemy_tune import constants as C
from alchemy_tune.replicates import seeded
from alchemy_tune.results import read_steps, read_trials
from alchemy_tune.search import JOURNAL, SearchRequest, run_search
from test_search import TINY, write_space


@pytest.fixture
def ray_cleanup():
    yield
    import ray

    ray.shutdown()


def load_study(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / JOURNAL))))


def check_configurations_see_replicate_means(run_dir: Path, repeats: int, base_seed: int = 42) -> None:
    """Every Optuna trial is one configuration whose intermediate values and final value are the means over
    its replicates' ``dev_select`` (from the results tables), and whose replicates differ only in seed."""
    trials = read_trials(str(run_dir)).to_pandas()
    steps = read_steps(str(run_dir)).to_pandas()
    study = load_study(run_dir)
    assert len(trials) <= len(study.trials) * repeats
    for t in study.trials:
        reps = trials[trials["config_id"] == str(t.number)].sort_values("replicate")
        assert reps["replicate"].tolist() == list(range(len(reps))) and len(reps) >= 1
        assert reps["cfg_seed"].tolist() == [base_seed + r for r in reps["replicate"]]
        others = [c for c in reps.columns if c.startswith("cfg_") and c != "cfg_seed"]
        assert len(reps[others].astype(str).drop_duplicates()) == 1  # the same configuration otherwise
        curves = {tid: steps[steps["trial_id"] == tid].sort_values("step")[C.SELECT].tolist()
                  for tid in reps["trial_id"]}
        for i, value in t.intermediate_values.items():
            at_i = [curve[i - 1] for curve in curves.values() if len(curve) >= i]
            assert value == pytest.approx(statistics.mean(at_i)), (t.number, i)
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert len(reps) == repeats and set(reps["status"]) == {C.COMPLETED}
            assert t.value == pytest.approx(statistics.mean(curve[-1] for curve in curves.values()))
        if t.state == optuna.trial.TrialState.PRUNED:
            assert C.PRUNED in set(reps["status"]) and set(reps["status"]) <= {C.PRUNED, C.COMPLETED}


def test_replicate_seeds_are_the_base_seed_plus_the_index():
    assert seeded({"lr": 1e-3, "seed": 7}, 2) == {"lr": 1e-3, "seed": 9}
    assert seeded({"lr": 1e-3}, 1)["seed"] == 43  # TrialConfig's default seed is the base


@pytest.mark.slow
def test_grid_with_repeats_pruning_a_configuration_stops_all_its_replicates(tmp_path, tiny_encoder_dir,
                                                                            ray_cleanup):
    """Grid of 2 configurations x 2 replicates running side by side; a threshold no trial can reach prunes
    each configuration at its first evaluation: both replicates stop (the later one at once, the other at
    its next evaluation), and the study holds 2 PRUNED trials fed the replicates' mean."""
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
    assert len(trials) == 4 and set(trials["status"]) == {C.PRUNED}
    assert sorted(trials["config_id"].unique()) == ["0", "1"]
    # 3 evaluations per trial: every replicate stopped after at most its second one
    assert trials["n_reports"].max() <= 2 and (trials.groupby("config_id")["n_reports"].min() == 1).all()
    assert set(trials["cfg_data_seed"]) == {0}
    check_configurations_see_replicate_means(run_dir, repeats=2)
