"""How a search ends when it does not run to its end: a spent budget stops the queue (no trial starts after
it), and SIGINT/SIGTERM stop it with the resume command and a non-zero exit, leaving a run `resume` finishes.
Scripted trials (tests/scripted_trials.py) under a real Ray on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alchemy_tune.core import constants as C
from testing.searches import load_study

TESTS = Path(__file__).resolve().parent
SCRIPTED = "scripted_trials:quality_trial"


def _space(tmp_path: Path, trials: int, concurrent: int | None = None) -> str:
    path = tmp_path / "space.yaml"
    search = {"sampler": "random", "pruner": "none", "trials": trials, "seed": 0, "baselines": "none"}
    if concurrent:
        search["max_concurrent"] = concurrent
    path.write_text(json.dumps({"search": search, "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2,
                                                        "log": True}}))
    return str(path)


@pytest.fixture
def scripted_ray(tmp_path, monkeypatch):
    """An embedded Ray (2 CPUs, 127.0.0.1) whose workers import tests/scripted_trials.py."""
    import ray

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("SCRIPTED_SECONDS_PER_EVAL", "0.5")
    monkeypatch.setenv("SCRIPTED_STARTS", str(tmp_path / "starts.txt"))
    monkeypatch.syspath_prepend(str(TESTS))
    ray.shutdown()
    ray.init(address="local", num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, logging_level="ERROR")
    yield tmp_path / "starts.txt"
    ray.shutdown()


def test_a_spent_budget_starts_no_queued_trial(tmp_path, scripted_ray):
    """Tune queues trials ahead of free CPUs; once the time budget is spent none of them starts (running ones
    finish), and the summary says how many were dropped."""
    from alchemy_tune.cli.search import print_outcome
    from alchemy_tune.results.schema import read_trials
    from alchemy_tune.tuning.search import SearchRequest, run_search

    budget = 8.0
    began = time.time()
    outcome = run_search(SearchRequest(space_path=_space(tmp_path, 12), storage=str(tmp_path / "runs"),
                                       name="budget", trial_fn=SCRIPTED, time_budget_s=budget,
                                       progress_interval_s=1000))
    starts = sorted(float(x) for x in scripted_ray.read_text().split())
    ran = read_trials(outcome.run_dir).to_pandas()
    assert 2 <= len(starts) < 12 and len(ran) == len(starts)
    # a trial chosen before the budget ran out may take a moment to reach its first line; none begins later
    assert starts[-1] - began <= budget + 2.5, [round(s - began, 1) for s in starts]
    assert outcome.not_started >= 1 and outcome.stop_reason
    assert (ran["status"] == C.COMPLETED).all()  # nothing was cut short, and no queued trial got a row
    study = load_study(Path(outcome.run_dir))
    not_started = [t for t in study.trials if t.user_attrs.get("alchemy_status") == "not started"]
    assert len(not_started) == outcome.not_started
    print_outcome(outcome)


def _driver(tmp_path: Path, name: str, space: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "SCRIPTED_SECONDS_PER_EVAL": "0.5", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "alchemy_tune.cli", "--space", space, "--name", name,
                             "--storage", str(tmp_path / "runs"), "--trial-fn", SCRIPTED, "--num-cpus", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_a_finished_trial(run_dir: Path, driver: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and driver.poll() is None:
        try:
            if any(t.state.is_finished() for t in load_study(run_dir).trials):
                return
        except (KeyError, FileNotFoundError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError("no trial finished before the deadline")


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_search_says_so_exits_non_zero_and_resume_finishes_it(tmp_path, sig, code):
    space = _space(tmp_path, 6, concurrent=2)
    run_dir = tmp_path / "runs" / "cut"
    driver = _driver(tmp_path, "cut", space)
    try:
        _wait_for_a_finished_trial(run_dir, driver)
        driver.send_signal(sig)
        out, err = driver.communicate(timeout=180)
    finally:
        driver.kill()
    assert driver.returncode == code, (out[-2000:], err[-3000:])
    assert "interrupted" in err and f"alchemy-tune resume {run_dir}" in err
    assert "Traceback" not in err
    # the summary says what happened: interrupted, never "finished"; the last line says how to go on
    summary = [line for line in out.splitlines() if line.startswith("search ")][-1]
    assert summary.startswith("search interrupted after ") and "search finished" not in out, out[-2000:]
    assert err.strip().splitlines()[-1] == (f"interrupted: the search stopped before its end; nothing is lost. "
                                            f"Continue it with `alchemy-tune resume {run_dir}`")
    finished = sum(t.state.is_finished() for t in load_study(run_dir).trials)
    assert finished < 6, "the search ended before the signal; nothing was interrupted"
    if sig == signal.SIGTERM:
        return  # one resume is enough to show the run continues
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "SCRIPTED_SECONDS_PER_EVAL": "0.5", "PYTHONWARNINGS": "ignore"}
    resumed = subprocess.run([sys.executable, "-m", "alchemy_tune.cli", "resume", str(run_dir), "--num-cpus", "2"],
                             capture_output=True, text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.startswith(f"resume {run_dir}: "), resumed.stdout[:500]  # a header first
    trials = load_study(run_dir).trials
    assert sum(t.state.name == "COMPLETE" for t in trials) == 6
    again = subprocess.run([sys.executable, "-m", "alchemy_tune.cli", "resume", str(run_dir), "--num-cpus", "2"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and f"nothing to resume: {run_dir} had already ended" in again.stdout, \
        again.stdout[-2000:]
    assert "search finished" not in again.stdout


def test_a_full_disk_stops_the_search_with_one_line_and_resume_finishes_it(tmp_path, scripted_ray, monkeypatch):
    """The results writer hits ENOSPC after a few files: the search ends with one line naming the file and
    the resume command; every file on storage is whole; once there is room, `resume` finishes the search,
    every trial once."""
    import errno

    import pyarrow.parquet as pq

    from alchemy_tune.core.errors import UsageError
    from alchemy_tune.results import store
    from alchemy_tune.results.schema import read_trials
    from alchemy_tune.tuning.resume import resume_search
    from alchemy_tune.tuning.search import SearchRequest, run_search

    real, written = store.write_atomic, []

    def filling(fs, path, table):
        if len(written) >= 4:  # the disk is full from the fifth file on
            raise OSError(errno.ENOSPC, "No space left on device", path)
        written.append(path)
        return real(fs, path, table)

    monkeypatch.setattr(store, "write_atomic", filling)
    with pytest.raises(UsageError) as info:
        run_search(SearchRequest(space_path=_space(tmp_path, 6, concurrent=2), storage=str(tmp_path / "runs"),
                                 name="full", trial_fn=SCRIPTED, progress_interval_s=1000))
    message = str(info.value)
    run_dir = tmp_path / "runs" / "full"
    assert "no space left on device" in message and f"alchemy-tune resume {run_dir}" in message
    assert "\n" not in message and str(run_dir / "results") in message
    for part in (run_dir / "results").rglob("*.parquet"):
        pq.read_metadata(part)  # whole files only: nothing half-written
    monkeypatch.setattr(store, "write_atomic", real)  # room again
    outcome = resume_search(str(run_dir))
    trials = read_trials(str(run_dir)).to_pandas()
    assert sorted(trials["status"]) == [C.COMPLETED] * 6 and trials["trial_id"].is_unique
    assert sum(t.state.name == "COMPLETE" for t in load_study(run_dir).trials) == 6
    assert outcome.interrupted is None
