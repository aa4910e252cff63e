"""Search benchmarks, measured side by side in one run.

(a) Orchestration efficiency: Σ trial busy time ÷ (search wall time × concurrent slots), for 16 short real
    trials (the real trial loop, tiny encoder, bundled corpus) on an embedded Ray, 2 slots of 1 CPU, at two
    trial lengths (the fixed costs, mostly starting the first worker processes, weigh more on shorter ones).
    Busy time is what each trial function spends running (prepare, train, evaluate, checkpoint); wall time
    is ``Tuner.fit`` (Ray's start-up excluded). Target >= 0.90.
(b) Pruning: compute spent until the best final dev score is reached, with the median pruner ÷ without,
    same sampler (TPE) and seed, trials one at a time (so both runs are deterministic). "Reached" = the
    first trial whose final score attains the lower of the two runs' best scores (the level both reach);
    compute = Σ train_seconds reported by the trials finished by then. Target <= 0.40.
    Real CPU trials here are ~40 s and score near chance, which would make this ratio noise; by default (b)
    uses scripted learning curves (``curve_trial`` below: a known landscape over lr and λ, curves saturating
    towards it, evaluation noise), i.e. it measures the pruner and the search machinery, not the encoder.
    ``--real-b`` runs (b) on real tiny-encoder trials instead.

    python benchmarks/bench_search.py [--trials-b 30] [--real-b] [--pruners-b median percentile ...]

(c) ``--simulate``: orchestration efficiency at cluster scale, by simulation on this machine. A loopback Ray
    cluster of 4 nodes that each declare 8 CPUs and 2 GPUs (bookkeeping only: no GPU is used) runs 1,000
    trials at 1 CPU + 0.25 GPU each (32 slots) through the real searcher (random sampler), scheduler
    (``--sim-pruner``, default none), results writer and study journal. Each trial (``sim_trial``) sleeps
    ~2 s in all and sends ``--sim-evals`` reports of the real size (52 languages x dev/test x 2 metrics).
    Prints Σ slept ÷ (Tuner.fit wall × slots) over the whole run and in the steady state (every trial
    process started, before the last evaluation), then the same for the same load through Ray Tune alone
    (``bare_trial``: Tune's random search, FIFO, no alchemy-tune code), measured after it in the same run.

    python benchmarks/bench_search.py --simulate [--sim-trials 1000] [--sim-seconds 2] [--storage /dev/shm]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from alchemy_tune.tuning.trial_fn import TRIAL_FN

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # testing/ (the tiny encoder, synthetic reports)
N_EVALS = 8
SECONDS_PER_EVAL = 0.05  # wall seconds per scripted evaluation; "compute" counts 10 s each


def curve_trial(config, report, *, resume_from=None):
    """A learning curve towards a known optimum (lr 3e-4, λ 10), with seeded evaluation noise."""
    lr, lam = config.get("lr", 1e-3), config.get("lambda", 0)
    final = 0.75 - 0.18 * (math.log10(lr) - math.log10(3e-4)) ** 2 - 0.004 * abs(lam - 10)
    rng = random.Random(json.dumps(config, sort_keys=True))
    step = 0
    if resume_from:
        step = json.loads(Path(resume_from, "s.json").read_text())["step"]
    while step < N_EVALS:
        time.sleep(SECONDS_PER_EVAL)
        step += 1
        value = final * (1 - math.exp(-1.2 * step)) + rng.gauss(0, 0.01)
        metrics = {"step": step * 10, "epoch": step / 4, "dev_unseen": value, "dev_seen": value + 0.1,
                   "dev_all": value + 0.05, "status": "completed" if step == N_EVALS else "running", "reason": "",
                   "train_seconds": 10.0 * step, "primary_metric": "accuracy", "langs": {}}
        with tempfile.TemporaryDirectory() as ckpt:
            Path(ckpt, "s.json").write_text(json.dumps({"step": step}))
            report(metrics, ckpt)


def sim_reports(config):
    """The simulated trial's work: sleeps ``sim_seconds`` in all and yields ``sim_evals`` reports of the real size.

    Its scores keep a per-trial level (the synthetic model's seed noise, seeded by the sampled lr), so the
    median pruner stops the trials that trail from their first reports, as in a real search, not ~all of them
    on one evaluation's noise. Every sleep is appended to ``<intervals>/<pid>`` as "start end" (wall clock):
    the trial's useful work, which excludes any time it waits for the driver to take a report.
    """
    import random as _random

    from testing import synthetic

    seconds, evals, n_langs, folder = os.environ["ALCHEMY_BENCH_SIM"].split(",", 3)  # set before the nodes start
    seconds, evals = float(seconds), int(evals)
    rng, langs = _random.Random(config["lr"]), synthetic.languages(int(n_langs))
    cfg = {"lambda": 10.0, "uriel_features": "syntax_knn", "train_size": 100, "batch_size": 16,
           "seed": config["lr"]}
    for step in range(1, evals + 1):
        start = time.time()
        time.sleep(seconds / evals)
        with open(os.path.join(folder, str(os.getpid())), "a") as log:
            log.write(f"{start} {time.time()}\n")
        metrics = synthetic.report(cfg, step, evals, langs, rng)
        metrics["status"] = "completed" if step == evals else "running"
        yield metrics


def sim_trial(config, report, *, resume_from=None):
    """The simulated trial, through alchemy-tune's trainable (its TensorBoard files, its report to Tune)."""
    for metrics in sim_reports(config):
        report(metrics, None)


def merged(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of ``intervals`` as sorted, disjoint intervals."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) jiffies of the whole machine so far, from /proc/stat (Linux)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle, idle


def busy_in(intervals: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds of ``intervals`` that fall inside [lo, hi]."""
    return sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in intervals)


def bare_trial(config):
    """Ray Tune alone (the baseline of --simulate): the same sleeps and the same reports as ``sim_trial`` sends
    to Tune through alchemy_trial (languages as one JSON value), without alchemy-tune's TensorBoard files."""
    from ray import tune

    for metrics in sim_reports(config):
        tune.report({**metrics, "langs": json.dumps(metrics["langs"])})


def _bare_search(storage: str, trials: int, slots: int) -> tuple[dict, float]:
    """Tune's own random search (BasicVariantGenerator, FIFO scheduler), its CSV and JSON loggers only."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    tuner = tune.Tuner(
        tune.with_resources(bare_trial, {"cpu": 1, "gpu": 0.25}),
        param_space={"lr": tune.loguniform(1e-5, 1e-3)},
        tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=slots, reuse_actors=True),
        run_config=tune.RunConfig(name="bare", storage_path=storage, verbose=0,
                                  callbacks=[CSVLoggerCallback(), JsonLoggerCallback()]))
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    return {"completed": sum(r.error is None for r in grid), "errored": grid.num_errors}, wall


def simulate(storage: str, trials: int, seconds: float, evals: int, langs: int, pruner: str,
             bare: bool = False) -> tuple[float, float]:
    """(c): 1,000 sleeping trials on a 4-node loopback cluster with 32 GPU-fraction slots; ``bare``: the same
    load through Ray Tune alone. Returns the (whole-run, steady-state) efficiency."""
    import ray
    from loopback import start_cluster

    from alchemy_tune.tuning.cluster import init_ray
    from alchemy_tune.tuning.search import SearchRequest, run_search

    slots = 32
    folder = Path(storage) / "intervals"
    folder.mkdir()
    os.environ["ALCHEMY_BENCH_SIM"] = f"{seconds},{evals},{langs},{folder}"  # the nodes' workers inherit it
    cluster, _ = start_cluster({"num_cpus": 8, "num_gpus": 2}, [{"num_cpus": 8, "num_gpus": 2}] * 3)
    space = write_space(Path(storage) / "sim.yaml", f"""
search: {{sampler: random, pruner: {pruner}, max_concurrent: {slots}, cpus_per_trial: 1, gpus_per_trial: 0.25, seed: 0, baselines: none}}
lr: {{type: float, low: 1.0e-5, high: 1.0e-3, log: true}}
""")
    try:
        init_ray(cluster.address)  # the same driver settings for both (loggers, log lines)
        start, machine = time.perf_counter(), machine_cpu()
        driver = resource.getrusage(resource.RUSAGE_SELF)
        if bare:
            counts, fit = _bare_search(storage, trials, slots)
        else:
            outcome = run_search(SearchRequest(space_path=space, storage=storage, name="simulate",
                                               address=cluster.address, settings={"trials": trials},
                                               trial_fn="bench_search:sim_trial", progress_interval_s=30))
            counts, fit = outcome.counts, outcome.wall_seconds
        wall = time.perf_counter() - start
        used = resource.getrusage(resource.RUSAGE_SELF)
        driver_cpu = used.ru_utime + used.ru_stime - driver.ru_utime - driver.ru_stime
        machine = [b - a for a, b in zip(machine, machine_cpu())]
    finally:
        ray.shutdown()
        cluster.shutdown()
    fit = fit or wall
    # One actor runs its trials one after another (Tune reuses actors); a stopped trial's last sleep may still
    # overlap the next trial's first, so each actor's sleeps are merged: a slot counts once at any moment.
    per_actor = [merged([tuple(map(float, line.split())) for line in f.read_text().splitlines()])
                 for f in folder.iterdir()]
    n_sleeps = sum(len(f.read_text().splitlines()) for f in folder.iterdir())
    sleeps = sorted(iv for actor in per_actor for iv in actor)
    busy = sum(b - a for a, b in sleeps)
    who = "Ray Tune alone (baseline)" if bare else "alchemy-tune"
    print(f"(c) simulated cluster, {who}: {counts}; {n_sleeps} evaluations ({n_sleeps * seconds / evals:.0f} s of "
          f"trial work planned), slept {busy:.0f} s; Tuner.fit wall {fit:.0f} s x {slots} slots; {len(per_actor)} "
          "trial actors")
    print(f"    whole run, from Tuner.fit's start: {busy / (fit * slots):.3f} (the {len(per_actor)} actors' start-up "
          "-- Python and Ray imported by 32 processes on this machine's cores -- counts against it)")
    # Steady state: from the moment every trial process had started working (Tune may run the load on fewer
    # than 32, reusing them) to the start of the last evaluation (after that the slots drain).
    first = sorted(actor[0][0] for actor in per_actor if actor)
    lo, hi = first[min(slots, len(first)) - 1], sleeps[-1][0]
    steady = busy_in(sleeps, lo, hi) / ((hi - lo) * slots) if hi > lo else float("nan")
    print(f"    steady state, {hi - lo:.0f} s from the first work of the last of the {len(first)} trial processes to "
          f"start to the last evaluation's start: {steady:.3f}")
    print(f"    the driver process used {driver_cpu:.0f} s of CPU over {wall:.0f} s ({driver_cpu / wall:.2f} of one "
          f"core); the machine's {os.cpu_count()} cores were busy {machine[0] / max(sum(machine), 1e-9):.0%} of the "
          "time (/proc/stat): the driver, 4 raylets and their agents, and 32 trial processes share them", flush=True)
    return busy / (fit * slots), steady


def write_space(path: Path, body: str) -> str:
    path.write_text(body)
    return str(path)


def search(space: str, storage: str, name: str, trials: int, pruner: str, trial_fn: str, cpus: int):
    import ray

    from alchemy_tune.tuning.cluster import init_ray
    from alchemy_tune.tuning.search import SearchRequest, run_search

    init_ray(None, cpus)
    start = time.perf_counter()
    try:
        outcome = run_search(SearchRequest(space_path=space, storage=storage, name=name, num_cpus=cpus,
                                           settings={"trials": trials, "pruner": pruner}, trial_fn=trial_fn,
                                           progress_interval_s=1e9))
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    return outcome, wall


def efficiency(tmp: Path, epochs: int) -> None:
    from ray.tune import ExperimentAnalysis

    from testing.tiny_encoder import make_tiny_encoder
    from alchemy_tune.tuning.trainable import BUSY_SECONDS

    tiny = tmp / "tiny"
    if not tiny.exists():
        make_tiny_encoder(tiny)
    space = write_space(tmp / f"a{epochs}.yaml", f"""
search: {{sampler: random, max_concurrent: 2, cpus_per_trial: 1, seed: 0, baselines: none}}
model: {tiny}
task: bible-genre
train_size: 120
dev_size: 12
test_size: 12
seen: [eng, fra, deu]
unseen: [spa, rus]
batch_size: 8
epochs: {epochs}
evals_per_epoch: 1
max_length: 48
num_layers: null
threads: 1
device: cpu
lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}
lambda: {{type: categorical, choices: [0, 1, 10]}}
""")
    outcome, wall = search(space, str(tmp / "runs"), f"efficiency-{epochs}", 16, "none",
                           TRIAL_FN, 2)
    trials = ExperimentAnalysis(outcome.run_dir).trials
    busy = sum(t.last_result.get(BUSY_SECONDS, 0.0) for t in trials)
    starts = sorted(t.last_result["timestamp"] - t.last_result["time_total_s"] for t in trials)
    tune_time = sum(t.last_result.get("time_total_s", 0.0) for t in trials)
    print(f"    Tune-measured trial time {tune_time:.1f} s; first trial started {starts[0] - starts[0]:.0f} s, "
          f"last {starts[-1] - starts[0]:.1f} s after it")
    print(f"(a) orchestration efficiency, {epochs} epochs: {len(trials)} real trials, busy {busy:.1f} s over wall {wall:.1f} s "
          f"x 2 slots = {busy / (wall * 2):.3f}  (target >= 0.90; mean trial {busy / len(trials):.1f} s, "
          f"overhead {(wall * 2 - busy) / len(trials):.2f} slot-seconds per trial)")


def compute_to_reach(run_dir: str, target: float) -> float:
    """Σ compute of the trials up to the first one finishing at >= target, in the study's order."""
    import optuna

    from alchemy_tune.tuning.searcher import STUDY_NAME
    from alchemy_tune.tuning.study_attrs import RAY_ID_ATTR
    from alchemy_tune.results.schema import read_trials
    from alchemy_tune.tuning.journal import JOURNAL

    rows = {r["trial_id"]: r for r in read_trials(run_dir).to_pylist()}
    study = optuna.load_study(study_name=STUDY_NAME, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(f"{run_dir}/{JOURNAL}")))
    spent = 0.0
    for t in sorted(study.trials, key=lambda t: t.number):  # one trial at a time: the order they ran
        r = rows[t.user_attrs[RAY_ID_ATTR]]
        spent += r["compute_seconds"] or 0.0
        if r["status"] == "completed" and (r["final_dev_unseen"] or -1) >= target - 1e-12:
            return spent
    return math.inf


def pruning(tmp: Path, trials: int, real: bool, pruners: list[str]) -> None:
    from alchemy_tune.results.schema import read_trials

    if real:
        from testing.tiny_encoder import make_tiny_encoder

        model = make_tiny_encoder(tmp / "tiny-b")
        fixed = (f"model: {model}\ntask: bible-genre\ntrain_size: 24\ndev_size: 12\ntest_size: 12\n"
                 "seen: [eng, fra, deu]\nunseen: [spa, rus]\nbatch_size: 8\nepochs: 2\nevals_per_epoch: 4\n"
                 "max_length: 48\nnum_layers: null\nthreads: 1\ndevice: cpu\n")
        trial_fn = TRIAL_FN
    else:
        fixed, trial_fn = "", "bench_search:curve_trial"
    space = write_space(tmp / "b.yaml", f"""
search: {{sampler: tpe, max_concurrent: 1, cpus_per_trial: 1, seed: 7, baselines: none}}
{fixed}lr: {{type: float, low: 1.0e-6, high: 1.0e-1, log: true}}
lambda: {{type: categorical, choices: [0, 1, 10, 25]}}
""")
    runs = {}
    for pruner in ("none", *pruners):
        outcome, wall = search(space, str(tmp / "runs"), f"prune-{pruner}", trials, pruner, trial_fn, 1)
        table = read_trials(outcome.run_dir).to_pylist()
        best = max(r["final_dev_unseen"] for r in table if r["status"] == "completed")
        runs[pruner] = (outcome.run_dir, best, wall, sum(r["status"] == "pruned" for r in table),
                        sum(r["compute_seconds"] or 0 for r in table))
    kind = "real tiny-encoder" if real else "scripted-curve"
    for pruner in pruners:
        target = min(runs[pruner][1], runs["none"][1])
        spent = {p: compute_to_reach(runs[p][0], target) for p in (pruner, "none")}
        for p in (pruner, "none"):
            _, best, wall, n_pruned, total = runs[p]
            print(f"    {p:>10}: best final dev_unseen {best:.4f}, {n_pruned} pruned, total compute {total:.0f} s, "
                  f"compute to reach {target:.4f}: {spent[p]:.0f} s (wall {wall:.0f} s)")
        print(f"(b) compute until the best final dev score, {pruner} pruner / no pruner ({trials} {kind} trials, "
              f"TPE seed 7): {spent[pruner] / spent['none']:.3f}  (target <= 0.40)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-b", type=int, default=30)
    parser.add_argument("--real-b", action="store_true")
    parser.add_argument("--pruners-b", nargs="+", default=["successive-halving", "median", "percentile"],
                        help="pruners compared with no pruning in (b); median is the shipped default")
    parser.add_argument("--only", choices=("a", "b"))
    parser.add_argument("--simulate", action="store_true", help="run (c) only: 1,000 trials on a simulated cluster")
    parser.add_argument("--sim-trials", type=int, default=1000)
    parser.add_argument("--sim-seconds", type=float, default=2.0)
    parser.add_argument("--sim-evals", type=int, default=4)
    parser.add_argument("--sim-langs", type=int, default=52)
    parser.add_argument("--sim-no-baseline", action="store_true",
                        help="(c): skip the same load through Ray Tune alone (run after ours, for comparison)")
    parser.add_argument("--sim-pruner", default="none",
                        help="(c): the study's pruner. With none every trial runs its ~2 s; the scheduler still "
                             "records every report in the journal. Optuna's median pruner compares with completed "
                             "trials only, so it ends most of these trials at their first report (~0.5 s)")
    parser.add_argument("--storage", default=None, help="(c): folder for the run (default: a temporary one)")
    parser.add_argument("--epochs-a", type=int, nargs="+", default=[4, 16],
                        help="trial lengths for (a): 4 epochs ~ 2 s per trial here, 16 ~ 9 s")
    args = parser.parse_args()
    # Ray workers import this file's curve_trial by module name, and sim_trial imports testing/.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    if args.simulate:
        with tempfile.TemporaryDirectory(prefix="bench-sim-", dir=args.storage) as tmp:
            ours = simulate(tmp, args.sim_trials, args.sim_seconds, args.sim_evals, args.sim_langs,
                            args.sim_pruner)
        bare = (float("nan"),) * 2
        if not args.sim_no_baseline:
            with tempfile.TemporaryDirectory(prefix="bench-sim-bare-", dir=args.storage) as tmp:
                bare = simulate(tmp, args.sim_trials, args.sim_seconds, args.sim_evals, args.sim_langs,
                                args.sim_pruner, bare=True)
        print(f"alchemy-tune / Ray Tune alone: {ours[0] / bare[0]:.3f} whole run, {ours[1] / bare[1]:.3f} steady state")
        print(f"orchestration_efficiency_32_slots={ours[0]:.3f} steady_state={ours[1]:.3f} ray_tune_alone={bare[0]:.3f} "
              f"ray_tune_alone_steady={bare[1]:.3f} (target >= 0.85; {args.sim_seconds:g} s trials of "
              f"{args.sim_evals} reports of {args.sim_langs} languages, pruner {args.sim_pruner})")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        if args.only in (None, "a"):
            for epochs in args.epochs_a:
                efficiency(Path(tmp), epochs)
        if args.only in (None, "b"):
            pruning(Path(tmp), args.trials_b, args.real_b, args.pruners_b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
