"""Small searches for tests: the tiny bundled-task trial, space files, and the replicate-mean check."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import optuna
import pytest

from alchemy_tune.core import constants as C
from alchemy_tune.results.schema import read_steps, read_trials
from alchemy_tune.tuning.journal import JOURNAL

TINY = dict(task="bible-genre", train_size=24, dev_size=12, test_size=12, seen=["eng", "fra", "deu"],
            unseen=["spa", "rus"], batch_size=8, epochs=1.0, evals_per_epoch=3, max_length=48, num_layers=None,
            device="cpu", threads=1)


def write_space(tmp_path: Path, search: dict, params: dict, fixed: dict | None = None, name="space.yaml") -> str:
    data = {"search": search, **(fixed or {}), **params}
    path = tmp_path / name
    path.write_text(json.dumps(data))  # JSON is YAML
    return str(path)


def load_study(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / JOURNAL))))


def check_configurations_see_replicate_means(run_dir: Path, repeats: int, base_seed: int = 42) -> None:
    """Every Optuna trial is one configuration whose intermediate values are the means over its replicates'
    ``dev_select`` at each evaluation, and whose final value is the mean of their values at their best steps
    (from the results tables); its replicates differ only in seed."""
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
            # the value at each replicate's best step (the value analyze and confirm rank by), averaged
            best = [steps[(steps["trial_id"] == tid) & (steps["step"] == step)][C.SELECT].iloc[0]
                    for tid, step in zip(reps["trial_id"], reps["best_step"])]
            assert t.value == pytest.approx(statistics.mean(best)) == pytest.approx(reps["best_dev_select"].mean())
        if t.state == optuna.trial.TrialState.PRUNED:
            assert C.PRUNED in set(reps["status"]) and set(reps["status"]) <= {C.PRUNED, C.COMPLETED}
