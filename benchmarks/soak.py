"""Soak: a 40-trial search on a 3-node loopback Ray cluster with its storage on an S3 API (moto's server on
127.0.0.1), a worker node killed about every 60 s and the driver killed once (then resumed); at the end every
trial must appear exactly once in the study and in every table, with no step missing or duplicated.

    python benchmarks/soak.py [--trials 40] [--kill-every 60] [--driver-kill-at 90] [--trial-seconds 20]

Trials (``soak_trial``) sleep ``--trial-seconds`` in all over 10 evaluations, checkpoint at every one and
continue from their checkpoint when restarted; reports have the real shape (8 languages to keep the run
light). Nodes: a head with no CPUs (the driver's bookkeeping) and two workers with 2 CPUs each (4 trials at a
time); each killed worker is replaced by a fresh one. Prints what it killed and what it found; exit code 1
when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
N_EVALS = 10
N_LANGS = 8
BUCKET = "alchemy-soak"


def soak_trial(config, report, *, resume_from=None):
    """Sleeps between evaluations; checkpoints its step; a restart continues from the checkpoint."""
    from testing import synthetic

    seconds = float(os.environ.get("ALCHEMY_SOAK_TRIAL_SECONDS", "20"))
    step = json.loads(Path(resume_from, "state.json").read_text())["step"] if resume_from else 0
    langs, cfg = synthetic.languages(N_LANGS), {"lambda": 10.0, "uriel_features": "geo", "train_size": 100,
                                                "batch_size": 16}
    while step < N_EVALS:
        time.sleep(seconds / N_EVALS)
        step += 1
        metrics = synthetic.report(cfg, step, N_EVALS, langs, random.Random(f"{config['lr']}-{step}"))
        metrics["status"] = "completed" if step == N_EVALS else "running"
        with tempfile.TemporaryDirectory() as ckpt:
            Path(ckpt, "state.json").write_text(json.dumps({"step": step}))
            report(metrics, ckpt)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3(log_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=open(log_dir / "moto.log", "w"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    # Credentials and endpoint for everything started from here on (pyarrow, boto3, Ray's nodes and workers).
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint})
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return server, endpoint


def driver(address: str, space: str, storage: str, log: Path, resume_dir: str | None = None,
           retry: bool = False) -> subprocess.Popen:
    if resume_dir:
        cmd = [sys.executable, "-m", "alchemy_tune.cli", "resume", resume_dir, "--address", address,
               *(["--retry-errored"] if retry else [])]
    else:
        cmd = [sys.executable, "-c", (
            "from alchemy_tune.tuning.search import SearchRequest, run_search; "
            f"run_search(SearchRequest(space_path={space!r}, storage={storage!r}, name='soak', address={address!r}, "
            "max_failures=20, trial_fn='soak:soak_trial', progress_interval_s=30))")]
    return subprocess.Popen(cmd, stdout=open(log, "a"), stderr=subprocess.STDOUT)


def stored_trials(run_dir: str) -> list:
    """The trials of the run's study as its object-store copy holds them, without failed attempts that
    ``resume --retry-errored`` ran again (those are kept, flagged, and no longer count)."""
    import optuna

    from alchemy_tune.tuning.searcher import STUDY_NAME
    from alchemy_tune.tuning.study_attrs import RETRY_OF_ATTR
    from alchemy_tune.tuning.journal import JOURNAL
    from alchemy_tune.results.run_dir import resolve

    fs, root = resolve(run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, JOURNAL)
        with fs.open_input_stream(f"{root}/{JOURNAL}") as src, open(local, "wb") as dst:
            dst.write(src.read())
        study = optuna.load_study(study_name=STUDY_NAME, storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(local)))
        trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs[RETRY_OF_ATTR] for t in trials if RETRY_OF_ATTR in t.user_attrs}
    return [t for t in trials if t.number not in retried]


def errored_trials(run_dir: str) -> int:
    return sum(t.state.name == "FAIL" for t in stored_trials(run_dir))


def journal_stored(run_dir: str) -> bool:
    """The study journal reached the object store (the driver mirrors it there as trials end): before that a
    killed driver leaves nothing to resume from."""
    from alchemy_tune.results.run_dir import resolve
    from alchemy_tune.tuning.journal import JOURNAL

    fs, root = resolve(run_dir)
    return fs.get_file_info(f"{root}/{JOURNAL}").type.name == "File"


def check(run_dir: str, trials: int, partial: bool = False) -> list[str]:
    """Every problem found: each trial once in the study and in every table, each step once. ``partial``: a
    search still running (or stopped): the trials completed so far must be whole, nothing may be duplicated."""
    import pyarrow.compute as pc

    from alchemy_tune.tuning.study_attrs import RAY_ID_ATTR
    from alchemy_tune.results.schema import read_metrics, read_steps, read_trials

    problems = []
    otrials = stored_trials(run_dir)
    ray_ids = [t.user_attrs.get(RAY_ID_ATTR) for t in otrials]
    states = {}
    for t in otrials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    print(f"study: {len(otrials)} trials {states}, {len(set(ray_ids))} distinct Ray trial ids")
    if len(set(ray_ids)) != len(ray_ids) or None in ray_ids or (not partial and len(otrials) != trials):
        problems.append(f"study: {len(otrials)} trials with {len(set(ray_ids))} distinct Ray ids, expected {trials}")
    if not partial and states.get("COMPLETE", 0) != trials:
        problems.append(f"study: states {states}, expected {trials} COMPLETE")
    rows = read_trials(run_dir).to_pylist()
    if partial:  # judge the trials that completed; the others are still being written
        done = {t.user_attrs.get(RAY_ID_ATTR) for t in otrials if t.state.name == "COMPLETE"}
        if len({r["trial_id"] for r in rows}) != len(rows):
            problems.append("trials table: a trial appears twice")
        rows = [r for r in rows if r["trial_id"] in done]
        ray_ids = sorted(done)
        trials = len(done)
    ids = [r["trial_id"] for r in rows]
    print(f"trials table: {len(rows)} rows, {len(set(ids))} distinct; statuses "
          f"{sorted({r['status'] for r in rows})}; n_reports {sorted({r['n_reports'] for r in rows})}")
    if sorted(ids) != sorted(i for i in ray_ids if i):
        missing = sorted(set(i for i in ray_ids if i) - set(ids))
        problems.append(f"trials table: trial ids differ from the study's (missing {missing}, extra "
                        f"{sorted(set(ids) - set(ray_ids))})")
    if any(r["status"] != "completed" or r["n_reports"] != N_EVALS for r in rows):
        problems.append("trials table: a trial not completed with every evaluation")
    steps = read_steps(run_dir)
    if partial:
        steps = steps.filter(pc.field("trial_id").isin(ray_ids))
    per_trial: dict[str, list[int]] = {}
    for tid, step in zip(steps.column("trial_id").to_pylist(), steps.column("step").to_pylist()):
        per_trial.setdefault(tid, []).append(step)
    bad = {t: s for t, s in per_trial.items() if sorted(s) != list(range(1, N_EVALS + 1))}
    print(f"steps table: {steps.num_rows} rows for {len(per_trial)} trials; trials with a step missing or "
          f"twice: {len(bad)}")
    if bad or sorted(per_trial) != sorted(ids):
        problems.append(f"steps table: {len(bad)} trial(s) with steps missing or duplicated, "
                        f"{len(per_trial)} trials present")
    metrics = read_metrics(run_dir, columns=["trial_id", "step", "split", "lang", "metric"])
    if partial:
        metrics = metrics.filter(pc.field("trial_id").isin(ray_ids))
    keys = metrics.group_by(["trial_id", "step", "split", "lang", "metric"]).aggregate([([], "count_all")])
    dup = keys.filter(pc.field("count_all") > 1).num_rows
    expected = trials * N_EVALS * N_LANGS * 2 * 2
    print(f"metrics table: {metrics.num_rows} rows (expected {expected}), {dup} keys more than once, "
          f"{len(set(metrics.column('trial_id').to_pylist()))} trials")
    if dup or metrics.num_rows != expected:
        problems.append(f"metrics table: {metrics.num_rows} rows, {dup} duplicated keys, expected {expected}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--kill-every", type=float, default=60.0)
    parser.add_argument("--driver-kill-at", type=float, default=90.0)
    parser.add_argument("--trial-seconds", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--check", metavar="RUN_DIR", help="only check RUN_DIR (AWS_ENDPOINT_URL set), as far "
                        "as its trials have completed")
    args = parser.parse_args()
    if args.check:
        problems = check(args.check, args.trials, partial=True)
        print("soak check: " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))
        return 1 if problems else 0
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])
    os.environ["ALCHEMY_SOAK_TRIAL_SECONDS"] = str(args.trial_seconds)
    from loopback import LOOPBACK, start_cluster

    work = Path(tempfile.mkdtemp(prefix="soak-"))
    server, endpoint = start_s3(work)
    try:
        return run(args, work, endpoint, start_cluster, LOOPBACK)
    finally:
        server.terminate()
        server.wait()


def run(args, work: Path, endpoint: str, start_cluster, loopback: dict) -> int:
    storage = f"s3://{BUCKET}/runs"
    run_dir = f"{storage}/soak"
    space = work / "space.yaml"
    space.write_text(json.dumps({"search": {"sampler": "random", "pruner": "none", "trials": args.trials,
                                            "max_concurrent": 4, "seed": 0, "cpus_per_trial": 1, "baselines": "none"},
                                 "lr": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}}))
    cluster, workers = start_cluster({"num_cpus": 0}, [{"num_cpus": 2}, {"num_cpus": 2}])
    log = work / "driver.log"
    print(f"S3 API (moto) at {endpoint}; run {run_dir}; cluster {cluster.address}: head + 2 workers; logs {work}",
          flush=True)
    events, started = [], time.monotonic()
    proc = driver(cluster.address, str(space), storage, log)
    resumed, retried, next_kill, rng = False, False, args.kill_every, random.Random(0)
    try:
        while True:
            elapsed = time.monotonic() - started
            if proc.poll() is not None:
                errored = errored_trials(run_dir) if proc.returncode == 0 and not retried else 0
                if not errored:
                    break
                # Tune gave up on a trial whose node was killed (it errored it although max_failures
                # allowed a retry): the documented way back is `resume --retry-errored`, nodes still dying.
                events.append(f"{elapsed:5.0f} s: the search ended with {errored} errored trial(s); started "
                              f"`alchemy-tune resume {run_dir} --retry-errored`")
                print(events[-1], flush=True)
                proc = driver(cluster.address, str(space), storage, log, resume_dir=run_dir, retry=True)
                retried = True
            if not resumed and elapsed >= args.driver_kill_at and journal_stored(run_dir):
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                events.append(f"{elapsed:5.0f} s: killed the driver (SIGKILL)")
                print(events[-1], flush=True)
                time.sleep(2)
                proc = driver(cluster.address, str(space), storage, log, resume_dir=run_dir)
                resumed = True
                events.append(f"{time.monotonic() - started:5.0f} s: started `alchemy-tune resume {run_dir}`")
                print(events[-1], flush=True)
            if elapsed >= next_kill:
                victim = workers.pop(rng.randrange(len(workers)))
                cluster.remove_node(victim, allow_graceful=False)
                workers.append(cluster.add_node(num_cpus=2, **loopback))
                events.append(f"{elapsed:5.0f} s: killed a worker node (and added a fresh one)")
                print(events[-1], flush=True)
                next_kill += args.kill_every
            if elapsed > args.timeout:
                proc.kill()
                events.append(f"{elapsed:5.0f} s: gave up waiting (timeout)")
                break
            time.sleep(1)
        wall = time.monotonic() - started
        print(f"driver exited with {proc.returncode} after {wall:.0f} s; tail of its log:")
        print("\n".join(log.read_text().splitlines()[-4:]))
        problems = check(run_dir, args.trials) if proc.returncode == 0 else ["the driver did not finish"]
        if problems:  # keep the evidence: the S3 API's data lives in its process
            import pyarrow.fs as pafs

            from alchemy_tune.results.run_dir import resolve

            fs, root = resolve(run_dir)
            pafs.copy_files(root, str(work / "run"), source_filesystem=fs,
                            destination_filesystem=pafs.LocalFileSystem())
            print(f"the run's files are copied to {work / 'run'}")
    finally:
        proc.kill()
        cluster.shutdown()
    print("killed: " + "; ".join(events))
    print("soak: " + ("PASS: every trial once in the study and in every table, no step missing or duplicated"
                      if not problems else "FAIL: " + "; ".join(problems)))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
