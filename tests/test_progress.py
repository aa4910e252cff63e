"""The driver's progress line: counts and best trial, kept up to date trial by trial."""

from __future__ import annotations

import io
from types import SimpleNamespace

from alchemy_tune.core import constants as C
from alchemy_tune.tuning.journal import JOURNAL
from alchemy_tune.tuning.searcher import StudyHandle
from alchemy_tune.tuning.progress import ProgressCallback
from alchemy_tune.tuning.space_file import load_space


def test_each_trial_end_is_counted_without_reading_the_whole_study_again(tmp_path, monkeypatch):
    (tmp_path / "s.yaml").write_text("lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}\n")
    space = load_space(str(tmp_path / "s.yaml"))
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner="none", seed=0)
    trials = []
    for i in range(4):
        handle.ask(f"t{i}", space)
        trials.append(SimpleNamespace(trial_id=f"t{i}", status="RUNNING", last_result=None,
                                      get_error=lambda: "RuntimeError: boom"))
    out = io.StringIO()
    progress = ProgressCallback(handle, 4, stream=out)
    looks = []
    get_trials = handle.study.get_trials
    monkeypatch.setattr(handle.study, "get_trials", lambda *a, **k: looks.append(1) or get_trials(*a, **k))

    def end(i, value=None):
        trial = trials[i]
        trial.last_result = {} if value is None else {C.STEP: 4, "dev_unseen": value, C.STATUS: C.COMPLETED}
        trial.status = "ERROR" if value is None else "TERMINATED"
        (progress.on_trial_error if value is None else progress.on_trial_complete)(0, trials, trial)
        # Optuna is told after the line: once the tables hold the end (ResultsCallback.tell_stored)
        handle.finish(trial.trial_id, trial.last_result, error=value is None)
        return out.getvalue().splitlines()[-1]

    assert "trials 1/4 done (1 completed, 0 pruned, 0 diverged, 0 failed), 3 running; best dev_unseen=0.3000 " \
           "(trial t0)" in end(0, 0.3)
    assert "best dev_unseen=0.5000 (trial t1)" in end(1, 0.5)
    line = end(2)
    assert "3/4 done (2 completed, 0 pruned, 0 diverged, 1 failed), 1 running" in line and "t2 failed: " \
           "RuntimeError: boom" in line
    line = end(3, 0.4)
    assert "4/4 done (3 completed, 0 pruned, 0 diverged, 1 failed), 0 running; best dev_unseen=0.5000 " \
           "(trial t1)" in line
    assert len(looks) == 2  # one look at the study (this search's trials, the completed ones), then none
    # elapsed time on every line; the time left once a trial has ended, a guess while few have
    lines = out.getvalue().splitlines()
    assert all("min elapsed" in x for x in lines)
    assert "min left (a guess: few trials have ended)" in lines[0] and "min left" not in lines[-1]
    # a resumed driver (Tune unpickles the callback) looks again and agrees
    import pickle

    again = pickle.loads(pickle.dumps(progress))
    again.stream = out
    again.on_trial_result(0, trials, trials[3], {})
    assert "4/4 done (3 completed, 0 pruned, 0 diverged, 1 failed), 0 running; best dev_unseen=0.5000 " \
           "(trial t1)" in out.getvalue().splitlines()[-1]
