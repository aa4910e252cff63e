"""Fault tolerance on a real multi-node Ray cluster on 127.0.0.1, with the real trial loop (tiny encoder): a
worker node dies under a running trial, and the search driver is SIGKILLed and resumed."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from types import SimpleNamespace

from alchemy_tune.core import constants as C
from alchemy_tune.tuning.journal import JOURNAL

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
TESTS = Path(__file__).resolve().parent
LOOPBACK = {"node_ip_address": "127.0.0.1"}
N_EVALS = 6  # epochs x evals_per_epoch below
# Each evaluation comes after train_size / batch_size steps, about 7 ms each for the tiny encoder on one core.
NODE_LOSS_TRAIN_SIZE = 2400  # ~2 s between evaluations: time enough to kill the node between two of them
DRIVER_KILL_TRAIN_SIZE = 800  # ~0.7 s: five trials and a resume stay around a minute


def real_trial(model: str, train_size: int) -> dict:
    """Fixed parameters of a small real trial; ``threads: 1`` because each trial gets one CPU."""
    return dict(task="bible-genre", model=model, num_layers=None, train_size=train_size, dev_size=12,
                test_size=12, seen=["eng", "fra", "deu"], unseen=["spa", "rus"], batch_size=8, epochs=2,
                evals_per_epoch=N_EVALS // 2, max_length=48, device="cpu", threads=1)


@pytest.fixture
def cluster():
    """A head node with no CPUs (only the driver's bookkeeping) and one 1-CPU worker node."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **LOOPBACK})
    c.add_node(num_cpus=1, **LOOPBACK)
    yield c
    c.shutdown()


def space_file(tmp_path: Path, trials: int, concurrent: int, fixed: dict) -> str:
    """Random lr in a narrow range (the sampled config must reach the trial), everything else fixed."""
    path = tmp_path / "space.yaml"
    path.write_text(json.dumps({  # JSON is YAML
        "search": {"baselines": "none", "sampler": "random", "pruner": "none", "trials": trials, "max_concurrent": concurrent,
                   "seed": 0},
        **fixed, "lr": {"type": "float", "low": 5.0e-4, "high": 2.0e-3, "log": True}}))
    return str(path)


def start_driver(tmp_path: Path, address: str, name: str, space: str) -> subprocess.Popen:
    # The default trial function: alchemy_tune.trial.train:run_trial, the real trial loop.
    code = textwrap.dedent(f"""
        from alchemy_tune.tuning.search import SearchRequest, run_search
        run_search(SearchRequest(space_path={space!r}, storage={str(tmp_path / 'runs')!r}, name={name!r},
                   address={address!r}, max_failures=3, progress_interval_s=1000))
        """)
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def load_study(run_dir: Path) -> optuna.Study:
    return load_study_file(run_dir / JOURNAL)


def load_study_file(journal: Path) -> optuna.Study:
    return optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))


def study_if_created(journal: Path) -> optuna.Study | None:
    """The study while a driver runs: None until the journal holds it. Optuna creates the journal file
    before it appends the study's first record, so polling can see an existing file with no study."""
    if not journal.exists():
        return None
    try:
        return load_study_file(journal)
    except KeyError:
        return None


def uninterrupted(config: dict) -> list[dict]:
    """Every report of the same trial run start to end in this process, without Ray or any restart."""
    import torch

    from alchemy_tune.trial.train import run_trial

    reports: list[dict] = []
    threads = torch.get_num_threads()  # the trial sets torch's threads process-wide
    try:
        run_trial(config, lambda metrics, checkpoint_dir: reports.append(metrics))
    finally:
        torch.set_num_threads(threads)
    return reports


def test_trial_moves_to_another_node_from_its_last_checkpoint(tmp_path, cluster, tiny_encoder_dir):
    from ray.tune import ExperimentAnalysis

    from alchemy_tune.results.schema import read_steps, read_trials
    from alchemy_tune.tuning.trainable import report_of

    first = next(iter(cluster.worker_nodes))
    fixed = real_trial(tiny_encoder_dir, NODE_LOSS_TRAIN_SIZE)
    space = space_file(tmp_path, trials=1, concurrent=1, fixed=fixed)
    driver = start_driver(tmp_path, cluster.address, "node", space)
    run_dir = tmp_path / "runs" / "node"
    try:
        wait_for(lambda: list(run_dir.glob("*/checkpoint_000001")), 180, "the trial's second checkpoint")
        # A crash: the trial's worker process dies with its node, four evaluations before the trial's end.
        cluster.remove_node(first, allow_graceful=False)
        cluster.add_node(num_cpus=1, **LOOPBACK)  # the only place left to continue
        assert driver.wait(timeout=180) == 0, (tmp_path / "node.log").read_text()[-3000:]
    finally:
        driver.kill()
    (trial,) = ExperimentAnalysis(str(run_dir)).trials
    assert trial.status == "TERMINATED" and trial.run_metadata.num_failures >= 1
    last = trial.last_result
    # every evaluation in all, but fewer since the restore: it went on from a checkpoint, not from scratch
    assert last["training_iteration"] == N_EVALS and last["iterations_since_restore"] < N_EVALS
    (row,) = read_trials(str(run_dir)).to_pylist()
    assert row["status"] == C.COMPLETED and row["n_reports"] == N_EVALS
    steps = sorted(read_steps(str(run_dir)).to_pylist(), key=lambda s: s["step"])
    (study_trial,) = load_study(run_dir).trials
    assert study_trial.state.name == "COMPLETE"

    # The same config run start to end without a crash computes exactly what the moved trial reported.
    reference = uninterrupted(trial.config)
    assert len(reference) == N_EVALS and reference[-1][C.STATUS] == C.COMPLETED
    assert [s["step"] for s in steps] == [r[C.STEP] for r in reference]  # each step once, in order
    compared = C.AVERAGE_KEYS + (C.TRAIN_LOSS, C.TASK_LOSS, C.URIEL_LOSS, C.LAMBDA)
    for saved, expected in zip(steps, reference):
        for key in compared:
            assert saved[key] == pytest.approx(expected[key], abs=1e-6, nan_ok=True), (saved["step"], key)
    assert report_of(last)[C.LANGS] == reference[-1][C.LANGS]
    assert study_trial.value == pytest.approx(reference[-1]["dev_select"], abs=1e-6)


def test_driver_killed_mid_search_then_resumed(tmp_path, cluster, tiny_encoder_dir):
    from ray.tune import ExperimentAnalysis

    from alchemy_tune.tuning.study_attrs import RAY_ID_ATTR
    from alchemy_tune.results.schema import read_steps, read_trials

    cluster.add_node(num_cpus=1, **LOOPBACK)  # two trials at a time
    run_dir = tmp_path / "runs" / "kill"
    fixed = real_trial(tiny_encoder_dir, DRIVER_KILL_TRAIN_SIZE)
    space = space_file(tmp_path, trials=5, concurrent=2, fixed=fixed)
    driver = start_driver(tmp_path, cluster.address, "kill", space)

    def finished_trials() -> int:
        study = study_if_created(run_dir / JOURNAL)
        return 0 if study is None else sum(t.state.is_finished() for t in study.trials)

    def trial_mid_run() -> bool:
        """A trial has checkpointed but has at least two evaluations to go."""
        latest = {}
        for ckpt in run_dir.glob("*/checkpoint_*"):
            index = int(re.sub(r"\D", "", ckpt.name))
            latest[ckpt.parent] = max(latest.get(ckpt.parent, -1), index)
        return any(i <= N_EVALS - 3 for i in latest.values())

    try:
        wait_for(lambda: finished_trials() >= 1, 180, "a finished trial")
        # Killed while a trial runs; whether it resumes from its checkpoint or from scratch depends on
        # whether Tune's throttled experiment-state save (every >= 10 s) saw that checkpoint, so neither
        # is asserted, only that every trial ends once.
        wait_for(trial_mid_run, 60, "a trial part-way through")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        driver.kill()
    before = finished_trials()
    assert before < 5, "the search ended before the driver was killed; nothing left to resume"

    # The run folder moves before the resume (e.g. copied to another disk): everything follows it.
    moved = tmp_path / "moved" / "kill"
    moved.parent.mkdir()
    run_dir.rename(moved)
    old_dir, run_dir = run_dir, moved
    resumed = subprocess.run([sys.executable, "-m", "alchemy_tune.cli", "resume", str(run_dir),
                              "--address", cluster.address], capture_output=True, text=True, timeout=300)
    assert not old_dir.exists(), "the resumed search wrote to the run folder's old place"
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "search finished" in resumed.stdout and "best trial" in resumed.stdout

    study = load_study(run_dir)
    assert len(study.trials) == 5 and all(t.state.name == "COMPLETE" for t in study.trials)
    ray_ids = [t.user_attrs[RAY_ID_ATTR] for t in study.trials]
    assert len(set(ray_ids)) == 5
    rows = read_trials(str(run_dir)).to_pylist()
    assert sorted(r["trial_id"] for r in rows) == sorted(ray_ids)  # each trial once, the same trials
    assert all(r["status"] == C.COMPLETED and r["n_reports"] == N_EVALS for r in rows)
    meta = json.loads((run_dir / "alchemy_run.json").read_text())
    assert {r["run_id"] for r in rows} == {meta["run_id"]}
    steps: dict[str, list[int]] = {}
    for s in read_steps(str(run_dir)).to_pylist():
        steps.setdefault(s["trial_id"], []).append(s["step"])
    # each trial's evaluations once, however often it was restarted, and the same evaluations for all
    assert sorted(steps) == sorted(ray_ids)
    assert all(len(set(v)) == len(v) == N_EVALS for v in steps.values())
    assert len({tuple(sorted(v)) for v in steps.values()}) == 1

    # Tune, too, ran each trial once: one trial folder each. (The folder moved, so the trials left to start
    # ran as a second Tune experiment in it: each experiment state file holds its own trials.)
    # A dead driver's Ray trial whose Optuna trial another took over (an orphan) leaves its folder behind.
    folders = [p.name.split("_")[2] for p in run_dir.glob("alchemy_trial_*")]
    previous = {rid for t in study.trials for rid in t.user_attrs.get("previous_ray_trial_ids", [])}
    assert set(ray_ids) <= set(folders) and set(folders) - set(ray_ids) <= previous
    assert len(folders) == len(set(folders))
    assert all(t.status == "TERMINATED" for t in ExperimentAnalysis(str(run_dir)).trials)


# ----------------------------------------------------------------------------- object storage
# the `s3` fixture (moto on 127.0.0.1) is in conftest.py: the fast tier's object-store search uses it too
@pytest.fixture
def s3_cluster(s3, monkeypatch):
    """Like ``cluster`` (0-CPU head, one 2-CPU worker), started after the S3 environment is set."""
    monkeypatch.setenv("SCRIPTED_SECONDS_PER_EVAL", "1.0")  # time enough to kill the driver between uploads
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **LOOPBACK})
    c.add_node(num_cpus=2, **LOOPBACK)
    yield c
    c.shutdown()


def test_object_store_run_killed_then_resumed_keeps_every_trial_and_row(tmp_path, s3, s3_cluster):
    """The journal lives in the local cache and is mirrored to S3 on a timer; a driver killed between two
    uploads leaves the S3 copy behind the local one. Resume keeps the longer copy: every Optuna trial the
    killed driver knew (asked, reported, finished) is still there, each once, and each trial's every
    evaluation is in the tables once."""
    from alchemy_tune.tuning.journal import journal_location
    from alchemy_tune.tuning.study_attrs import RAY_ID_ATTR
    from alchemy_tune.results.schema import read_steps, read_trials

    run_dir = f"{s3}/s3kill"
    space = tmp_path / "space.yaml"
    space.write_text(json.dumps({"search": {"baselines": "none", "sampler": "random", "pruner": "median", "trials": 5,
                                            "max_concurrent": 2, "seed": 0},
                                 "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}))
    code = textwrap.dedent(f"""
        from alchemy_tune.tuning.search import SearchRequest, run_search
        run_search(SearchRequest(space_path={str(space)!r}, storage={s3!r}, name="s3kill",
                   address={s3_cluster.address!r}, trial_fn="scripted_trials:quality_trial",
                   progress_interval_s=1000))
        """)
    log = open(tmp_path / "s3kill.log", "w")
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    local = Path(journal_location(run_dir))

    def study_now() -> optuna.Study | None:
        return study_if_created(local)

    def remote_size() -> int:
        import pyarrow.fs as pafs

        fs, root = pafs.FileSystem.from_uri(f"{run_dir}/study.journal")
        return max(fs.get_file_info(root).size or 0, 0)

    def finished_and_reporting() -> bool:
        trials = (study_now() or SimpleNamespace(trials=[])).trials
        return any(t.state.is_finished() for t in trials) and any(
            not t.state.is_finished() and len(t.intermediate_values) >= 2 for t in trials) \
            and remote_size() < local.stat().st_size  # the S3 copy is behind: what a kill now would lose

    try:
        wait_for(finished_and_reporting, 240, "a finished trial and one part-way through")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        driver.kill()
    before = study_now().trials
    assert sum(t.state.is_finished() for t in before) < 5, "the search ended before the kill; nothing to resume"

    resumed = subprocess.run([sys.executable, "-m", "alchemy_tune.cli", "resume", run_dir,
                              "--address", s3_cluster.address], capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]

    local.unlink()  # read back what the run's S3 folder holds, not this machine's copy
    from alchemy_tune.tuning.journal import download

    download(run_dir, str(local))
    study = study_now()
    assert len(study.trials) == 5 and all(t.state.is_finished() for t in study.trials)
    after = {t.user_attrs[RAY_ID_ATTR]: t for t in study.trials}
    assert len(after) == 5  # each Ray trial once
    numbers = {t.number: t for t in study.trials}
    for t in before:  # nothing the killed driver knew is lost: its trials, their reports, their ends
        kept = numbers[t.number]
        assert {s: v for s, v in kept.intermediate_values.items() if s in t.intermediate_values} \
            == t.intermediate_values, t.number
        if t.state.is_finished():
            assert kept.value == t.value and kept.user_attrs[RAY_ID_ATTR] == t.user_attrs[RAY_ID_ATTR]
    rows = read_trials(run_dir).to_pylist()
    assert sorted(r["trial_id"] for r in rows) == sorted(after)
    steps: dict[str, list[int]] = {}
    for s in read_steps(run_dir).to_pylist():
        steps.setdefault(s["trial_id"], []).append(s["step"])
    for row in rows:  # every evaluation a trial ran is in the tables, once
        got = steps.get(row["trial_id"], [])
        assert len(got) == len(set(got)) == row["n_reports"]
        assert sorted(got) == list(range(1, len(got) + 1))
        if row["status"] == C.COMPLETED:
            assert row["n_reports"] == 6


def test_a_new_object_store_run_never_continues_a_journal_left_by_an_earlier_run_there(tmp_path, s3, s3_cluster):
    """The bucket was emptied (or the run folder deleted) and a new search takes the same address: the
    journal this machine kept for the earlier run is moved aside, and the new study holds only its trials."""
    import ray

    from alchemy_tune.tuning.journal import journal_location
    from alchemy_tune.tuning.searcher import STUDY_NAME
    from alchemy_tune.tuning.study_attrs import RAY_ID_ATTR
    from alchemy_tune.results.schema import read_trials
    from alchemy_tune.tuning.search import SearchRequest, run_search

    run_dir = f"{s3}/again"
    local = Path(journal_location(run_dir))
    local.parent.mkdir(parents=True)
    old = optuna.create_study(study_name=STUDY_NAME, direction="maximize", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(local))))
    for value in (0.9, 0.8):
        old.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=value,
                                                user_attrs={RAY_ID_ATTR: f"old{value}"}))
    space = tmp_path / "space.yaml"
    space.write_text(json.dumps({"search": {"baselines": "none", "sampler": "random", "pruner": "none", "trials": 2,
                                            "max_concurrent": 2, "seed": 0},
                                 "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}))
    try:
        outcome = run_search(SearchRequest(space_path=str(space), storage=s3, name="again",
                                           address=s3_cluster.address, trial_fn="scripted_trials:quality_trial",
                                           progress_interval_s=1000))
    finally:
        ray.shutdown()  # this process joined the cluster; the fixture removes its nodes
    assert outcome.counts == {C.COMPLETED: 2}
    study = load_study_file(local)
    assert len(study.trials) == 2 and not any(t.user_attrs[RAY_ID_ATTR].startswith("old") for t in study.trials)
    assert sorted(r["trial_id"] for r in read_trials(run_dir).to_pylist()) == \
        sorted(t.user_attrs[RAY_ID_ATTR] for t in study.trials)
    (kept,) = local.parent.glob(f"{local.name}.stale-*")  # the earlier run's journal, kept
    assert len(load_study_file(kept).trials) == 2
