"""Fault tolerance on a real multi-node Ray cluster on 127.0.0.1: a worker node dies under a running trial,
and the search driver is SIGKILLed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest

from alchemy_tune import constants as C
from alchemy_tune.search import JOURNAL

TESTS = Path(__file__).resolve().parent
pytestmark = [pytest.mark.slow, pytest.mark.cluster]
LOOPBACK = {"node_ip_address": "127.0.0.1"}


@pytest.fixture
def cluster(monkeypatch):
    """A head node with no CPUs (only the driver's bookkeeping) and one 1-CPU worker node."""
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("SCRIPTED_SECONDS_PER_EVAL", "1.0")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **LOOPBACK})
    c.add_node(num_cpus=1, **LOOPBACK)
    yield c
    c.shutdown()


def space_file(tmp_path: Path, trials: int, concurrent: int) -> str:
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent(f"""\
        search: {{sampler: random, pruner: none, trials: {trials}, max_concurrent: {concurrent}, seed: 0}}
        lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
        """))
    return str(path)


def start_driver(tmp_path: Path, address: str, name: str, trials: int, concurrent: int) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        from alchemy_tune.search import SearchRequest, run_search
        run_search(SearchRequest(space_path={space_file(tmp_path, trials, concurrent)!r},
                   storage={str(tmp_path / 'runs')!r}, name={name!r}, address={address!r}, max_failures=3,
                   trial_fn="scripted_trials:quality_trial", progress_interval_s=1000))
        """)
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def load_study(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / JOURNAL))))


def test_trial_moves_to_another_node_from_its_last_checkpoint(tmp_path, cluster):
    from ray.tune import ExperimentAnalysis

    from alchemy_tune.results import read_steps, read_trials

    first = next(iter(cluster.worker_nodes))
    driver = start_driver(tmp_path, cluster.address, "node", trials=1, concurrent=1)
    run_dir = tmp_path / "runs" / "node"
    try:
        wait_for(lambda: list(run_dir.glob("*/checkpoint_000001")), 120, "the trial's second checkpoint")
        # A crash: the trial's worker process dies with its node, before the trial could finish there.
        cluster.remove_node(first, allow_graceful=False)
        cluster.add_node(num_cpus=1, **LOOPBACK)  # the only place left to continue
        assert driver.wait(timeout=180) == 0, (tmp_path / "node.log").read_text()[-3000:]
    finally:
        driver.kill()
    (trial,) = ExperimentAnalysis(str(run_dir)).trials
    assert trial.status == "TERMINATED" and trial.run_metadata.num_failures >= 1
    last = trial.last_result
    # 6 evaluations in all, but fewer since the restore: it went on from a checkpoint, not from scratch
    assert last["training_iteration"] == 6 and last["iterations_since_restore"] < 6
    (row,) = read_trials(str(run_dir)).to_pylist()
    assert row["status"] == C.COMPLETED and row["n_reports"] == 6
    assert sorted(read_steps(str(run_dir)).to_pydict()["step"]) == [1, 2, 3, 4, 5, 6]  # each step once
    assert [t.state.name for t in load_study(run_dir).trials] == ["COMPLETE"]


def test_driver_killed_mid_search_then_resumed(tmp_path, cluster):
    from alchemy_tune.optuna_searcher import RAY_ID_ATTR
    from alchemy_tune.results import read_trials

    cluster.add_node(num_cpus=1, **LOOPBACK)  # two trials at a time
    run_dir = tmp_path / "runs" / "kill"
    driver = start_driver(tmp_path, cluster.address, "kill", trials=5, concurrent=2)

    def finished_trials() -> int:
        if not (run_dir / JOURNAL).exists():
            return 0
        return sum(t.state.is_finished() for t in load_study(run_dir).trials)

    try:
        wait_for(lambda: finished_trials() >= 1 and list(run_dir.glob("*/checkpoint_000000")), 180,
                 "a finished trial")
        time.sleep(2.0)  # let the next trials start and checkpoint
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        driver.kill()
    before = finished_trials()
    assert before < 5, "the search ended before the driver was killed; nothing left to resume"

    resumed = subprocess.run([sys.executable, "-m", "alchemy_tune.cli", "resume", str(run_dir),
                              "--address", cluster.address], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "search finished" in resumed.stdout and "best trial" in resumed.stdout

    study = load_study(run_dir)
    assert len(study.trials) == 5 and all(t.state.is_finished() for t in study.trials)
    ray_ids = [t.user_attrs[RAY_ID_ATTR] for t in study.trials]
    assert len(set(ray_ids)) == 5
    rows = read_trials(str(run_dir)).to_pylist()
    assert sorted(r["trial_id"] for r in rows) == sorted(ray_ids)  # each trial once, the same trials
    assert all(r["status"] == C.COMPLETED for r in rows)
    meta = json.loads((run_dir / "alchemy_run.json").read_text())
    assert {r["run_id"] for r in rows} == {meta["run_id"]}
    from ray.tune import ExperimentAnalysis

    tune_trials = ExperimentAnalysis(str(run_dir)).trials  # Tune, too, ran each trial once
    assert sorted(t.trial_id for t in tune_trials) == sorted(ray_ids)
    assert all(t.status == "TERMINATED" for t in tune_trials)
