"""The trial-end protocol: the tables store a trial's end before Optuna is told of it."""

from __future__ import annotations

import io
from types import SimpleNamespace

from alchemy_tune.core import constants as C
from alchemy_tune.tuning.journal import JOURNAL
from alchemy_tune.tuning.progress import ProgressCallback
from alchemy_tune.tuning.searcher import StudyHandle
from alchemy_tune.tuning.space_file import load_space


def _one_trial(tmp_path, metric: str):
    """A study of one trial ("t0", suggested), its results callback, and the Tune trial as callbacks see it."""
    from alchemy_tune.tuning.searcher import OptunaSearcher
    from alchemy_tune.tuning.trial_end import ResultsCallback

    (tmp_path / "s.yaml").write_text("lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}\n")
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[(metric, "max")], sampler="random",
                         pruner="none", seed=0)
    searcher = OptunaSearcher(handle, load_space(str(tmp_path / "s.yaml")), n_trials=1)
    config = searcher.suggest("t0")
    results = ResultsCallback(str(tmp_path), "run-1", handle, metric, "max")
    trial = SimpleNamespace(trial_id="t0", config=config, status="RUNNING", last_result=None,
                            placement_group_factory=SimpleNamespace(required_resources={"CPU": 1}))
    return handle, searcher, results, trial


def test_optuna_hears_of_a_trial_end_only_once_the_tables_hold_it(tmp_path):
    """The study never knows more than the tables: a driver killed after Optuna was told but before the
    writer's thread stored the trial's end would leave a finished study trial (which a resumed search never
    runs again) whose last rows and end were lost. Tune's order at a trial end: searcher, then callbacks."""
    import time

    from alchemy_tune.results.schema import read_trials

    handle, searcher, results, trial = _one_trial(tmp_path, "dev_unseen")
    out = io.StringIO()
    progress = ProgressCallback(handle, 1, stream=out)
    for step in (1, 2):
        report = {C.STEP: step, "dev_unseen": 0.25 * step, C.STATUS: C.COMPLETED if step == 2 else C.RUNNING,
                  C.LANGS: {}}
        results.on_trial_result(0, [trial], trial, report)
    trial.last_result, trial.status = report, "TERMINATED"
    searcher.on_trial_complete("t0", report)
    for callback in (results, progress):
        callback.on_trial_complete(0, [trial], trial)
    # the end line already says how it ended and what it scored, before Optuna is told
    assert "trials 1/1 done (1 completed" in out.getvalue() and "best dev_unseen=0.5000 (trial t0)" in out.getvalue()

    def stored() -> list[str]:
        return [r["status"] for r in read_trials(str(tmp_path)).to_pylist()] if (tmp_path / "results").exists() else []

    told = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        results.on_step_end(0, [trial])  # Tune's event loop steps on
        finished = handle.frozen("t0").state.is_finished()
        told.append(finished)
        assert not finished or stored() == [C.COMPLETED], "Optuna was told before the tables held the end"
        if finished:
            break
        time.sleep(0.02)
    assert told[0] is False and told[-1] is True  # the writer's thread stores the end about a second later
    (study_trial,) = handle.study.trials
    assert study_trial.value == 0.5 and study_trial.user_attrs["alchemy_status"] == C.COMPLETED
    results.on_experiment_end([trial])


def test_the_sampler_is_told_the_value_at_the_best_step_as_analyze_and_confirm_rank(tmp_path):
    """A trial whose selection metric peaks before its last evaluation: Optuna is told the peak (the value at
    the step the tables call ``best``), the value `analyze` and `confirm` rank by, not the last one."""
    from alchemy_tune.results.schema import read_trials

    handle, _, results, trial = _one_trial(tmp_path, "dev_select")
    for step, value in ((1, 0.5), (2, 0.75), (3, 0.6)):
        report = {C.STEP: step, "dev_select": value, C.STATUS: C.COMPLETED if step == 3 else C.RUNNING,
                  C.LANGS: {}}
        results.on_trial_result(0, [trial], trial, report)
    trial.last_result, trial.status = report, "TERMINATED"
    results.on_trial_complete(0, [trial], trial)
    results.settle()
    (study_trial,) = handle.study.trials
    row = read_trials(str(tmp_path)).to_pylist()[0]
    assert study_trial.value == row["best_dev_select"] == 0.75 and row["best_step"] == 2
    assert row["final_dev_select"] == 0.6
    results.on_experiment_end([trial])
