"""Driver cost of the results writer and the study journal at 500 and 5,000 trials, side by side in one run.

    python benchmarks/bench_results.py [--sizes 500 5000] [--evals 20] [--langs 52] [--pruner median] [--keep]

For each N, a fresh process plays the search driver for N synthetic trials, one after another, with no
training: per trial the searcher asks the study for a configuration (``OptunaSearcher.suggest``), then
``--evals`` reports of the real size (``--langs`` languages × dev/test × 2 metrics: 4,160 metric rows per
trial at the defaults) go through the pruning scheduler (``OptunaPruningScheduler.on_trial_result``: the
journal write and the pruner's decision) and the results writer (``ResultsWriter.add_report``, built as the
search's ResultsCallback builds it: background writing thread), then the trial end goes through the writer
(``end_trial``) and the journal's tell (``StudyHandle.finish``; the search tells once the writer's thread has
stored the end, on the same event loop). The search's end is the writer's
``close(compact_after=True)``. Whatever the searcher and writer do after later changes is what is measured.

Printed per N: mean driver milliseconds per report and per trial end on the event loop, the writing thread's
milliseconds per trial, driver peak RSS, bytes on storage (parts, after compaction, journal), and the
compaction time. Then ``alchemy-tune analyze`` of the largest run in a fresh process (tables, no plots): wall
seconds and peak RSS. Per-trial cost = event-loop time + writing-thread time, per trial, over the last 10%
of the trials (the cost at that size, not averaged with the first trials). Targets: ratio <= 1.5, peak RSS
<= 1.5 GB at 5,000, analyze <= 30 s and <= 3 GB. Last line:
``per_trial_cost_ratio_5000_vs_500=<float> peak_rss_mb_5000=<int> analyze_s_5000=<float>``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def drive(run_dir: str, n: int, evals: int, langs: int, pruner: str) -> dict:
    """One driver process: N trials through the real searcher, scheduler, journal and results writer."""
    from alchemy_tune.core import constants as C
    from alchemy_tune.tuning.searcher import OptunaSearcher, StudyHandle
    from alchemy_tune.tuning.pruning import EVAL_INDEX, OptunaPruningScheduler
    from testing import synthetic
    from alchemy_tune.results.writer import ResultsWriter
    from alchemy_tune.tuning.journal import JOURNAL
    from alchemy_tune.tuning.space_file import load_space

    synthetic.write_meta(run_dir, "bench")
    space = load_space(ROOT / "search_spaces" / "default.yaml")
    handle = StudyHandle(os.path.join(run_dir, JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner=pruner, seed=0, concurrent=0, run_dir=run_dir)
    searcher = OptunaSearcher(handle, space, n)
    scheduler = OptunaPruningScheduler(handle, "dev_unseen", pruner)
    writer = ResultsWriter(run_dir, "bench", metric="dev_unseen", mode="max", background=True)
    codes, rng = synthetic.languages(langs), random.Random(0)
    configs = list(synthetic.grid(36))  # scores differ between trials, as in a search
    # The trials' side, made once and reused (not timed): 36 configurations × evals reports.
    made = [[synthetic.report(c, step, evals, codes, rng) for step in range(1, evals + 1)] for c in configs]
    clock = {k: [0.0, 0.0] for k in ("journal_report", "writer_report", "journal_end", "writer_end")}
    tail_from = n - max(1, n // 10)
    tail = [0.0, 0.0]
    flush_at_tail = (0.0, 0.0)
    reported: dict[str, list[int]] = {}
    pruned = 0

    def timed(key, fn, *a, **k):
        w, c = time.perf_counter(), time.thread_time()
        out = fn(*a, **k)
        dw, dc = time.perf_counter() - w, time.thread_time() - c
        clock[key][0] += dw
        clock[key][1] += dc
        if in_tail:
            tail[0] += dw
            tail[1] += dc
        return out

    for i in range(n):
        tid = f"t{i:05d}"
        in_tail = i >= tail_from
        if i == tail_from:
            flush_at_tail = (writer.flush_seconds, writer.flush_cpu_seconds)
        config = timed("journal_end", searcher.suggest, tid)
        result, decision = None, "CONTINUE"
        for step in range(1, evals + 1):
            report = dict(made[i % len(configs)][step - 1])
            if step == evals:
                report[C.STATUS] = C.COMPLETED
            result = {**report, EVAL_INDEX: step, "trial_id": tid, "config": config}
            decision = timed("journal_report", scheduler.on_trial_result, None, SimpleNamespace(trial_id=tid), result)
            timed("writer_report", writer.add_report, tid, config, report)
            reported.setdefault(tid, []).append(step)
            if decision == "STOP":
                pruned += 1
                break
        status = C.PRUNED if decision == "STOP" else C.COMPLETED
        timed("writer_end", writer.end_trial, tid, status,
              pruned_at_step=result[C.STEP] if status == C.PRUNED else None,
              resources={"CPU": 1, "GPU": 0.25}, wall_seconds=2.0)
        timed("journal_end", searcher.handle.finish, tid, result)
    t0 = time.perf_counter()
    writer.close()
    close_s = time.perf_counter() - t0
    results = Path(run_dir) / "results"
    parts_bytes = _size(results)
    n_files = sum(1 for f in results.rglob("*.parquet"))
    rss_before_compact = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tail_flush = (writer.flush_seconds - flush_at_tail[0], writer.flush_cpu_seconds - flush_at_tail[1])
    t0 = time.perf_counter()
    from alchemy_tune.results.schema import compact

    compact(run_dir)
    compact_s = time.perf_counter() - t0
    n_reports = sum(len(steps) for steps in reported.values())
    n_tail = n - tail_from
    return {
        "n": n, "reports": n_reports, "pruned": pruned,
        **{f"{k}_ms": [1e3 * v / (n_reports if k.endswith("report") else n) for v in vals]
           for k, vals in clock.items()},
        "flush_ms_per_trial": [1e3 * writer.flush_seconds / n, 1e3 * writer.flush_cpu_seconds / n],
        "tail_ms_per_trial": [1e3 * (tail[0] + tail_flush[0]) / n_tail, 1e3 * (tail[1] + tail_flush[1]) / n_tail],
        "close_s": close_s, "peak_rss_before_compact_mb": rss_before_compact, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parts_files": n_files, "parts_mb": parts_bytes / 2**20, "compacted_mb": _size(results) / 2**20,
        "journal_mb": os.path.getsize(os.path.join(run_dir, JOURNAL)) / 2**20, "compact_s": compact_s,
    }


_ANALYZE = ("import resource, sys, time; t = time.perf_counter(); from alchemy_tune.cli import main; "
            "rc = main(sys.argv[1:]); r = resource.getrusage(resource.RUSAGE_SELF); "
            "print(json.dumps({'wall': time.perf_counter() - t, 'rss': r.ru_maxrss / 1024, 'cpu': r.ru_utime + r.ru_stime}), "
            "file=sys.stderr); "
            "sys.exit(rc)")


def analyze(run_dir: str) -> tuple[float, float, float]:
    """(wall seconds including start-up and imports, peak RSS MB, CPU seconds) of `alchemy-tune analyze` in a
    fresh process."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "import json; " + _ANALYZE, "analyze", run_dir, "--no-report",
                           "--format", "csv"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    wall = time.perf_counter() - t0
    stats = json.loads(done.stderr.strip().splitlines()[-1])
    return wall, stats["rss"], stats["cpu"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--evals", type=int, default=20)
    parser.add_argument("--langs", type=int, default=52)
    parser.add_argument("--pruner", default="none",
                        help="the study's pruner; with a pruner, trials stop early and send fewer reports")
    parser.add_argument("--tmp", default=None,
                        help="folder for the runs (e.g. /dev/shm: the journal's fsync then costs no disk wait)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the runs (printed) instead of deleting them, e.g. to re-time analyze on a quiet machine")
    parser.add_argument("--one", nargs=2, metavar=("N", "RUN_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(drive(args.one[1], int(args.one[0]), args.evals, args.langs, args.pruner)))
        return 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = {}
    holder = (contextlib.nullcontext(tempfile.mkdtemp(prefix="bench-results-", dir=args.tmp)) if args.keep
              else tempfile.TemporaryDirectory(prefix="bench-results-", dir=args.tmp))
    with holder as tmp:
        if args.keep:
            print(f"runs kept in {tmp}", flush=True)
        # Both sizes at once (one run, and the small one is done long before the large one); the ratio uses
        # each process's own CPU time, which other work on the machine does not inflate.
        procs = {n: subprocess.Popen([sys.executable, __file__, "--one", str(n), os.path.join(tmp, f"run{n}"),
                                      "--evals", str(args.evals), "--langs", str(args.langs), "--pruner",
                                      args.pruner], stdout=subprocess.PIPE, text=True, env=env)
                 for n in args.sizes}
        for n, proc in procs.items():
            stdout, _ = proc.communicate()
            if proc.returncode:
                raise SystemExit(f"N={n}: driver process failed ({proc.returncode})")
            r = out[n] = json.loads(stdout.strip().splitlines()[-1])

            def ms(key):
                return f"{r[key][1]:.3f} CPU / {r[key][0]:.3f} wall"

            print(f"N={n}: {r['reports']} reports ({r['pruned']} trials pruned, {args.pruner} pruner), event-loop ms "
                  f"per report: writer {ms('writer_report_ms')}, scheduler+journal {ms('journal_report_ms')}; per "
                  f"trial end: writer {ms('writer_end_ms')}, searcher+journal {ms('journal_end_ms')}; writing "
                  f"thread per trial {ms('flush_ms_per_trial')}; all of it per trial over the last 10% of trials "
                  f"{ms('tail_ms_per_trial')}; peak RSS {r['peak_rss_before_compact_mb']:.0f} MB until the search's end, "
                  f"{r['peak_rss_mb']:.0f} MB with the compaction; {r['parts_files']} part files "
                  f"{r['parts_mb']:.1f} MB -> compacted {r['compacted_mb']:.1f} MB in {r['compact_s']:.1f} s; "
                  f"journal {r['journal_mb']:.1f} MB; closing the writer {r['close_s']:.2f} s", flush=True)
        big, small = max(args.sizes), min(args.sizes)
        wall, rss, cpu = analyze(os.path.join(tmp, f"run{big}"))
        print(f"analyze N={big} (compacted, tables only, fresh process): {wall:.1f} s wall ({cpu:.1f} s CPU), "
              f"peak RSS {rss:.0f} MB (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    ratio = out[big]["tail_ms_per_trial"][1] / out[small]["tail_ms_per_trial"][1]
    wall_ratio = out[big]["tail_ms_per_trial"][0] / out[small]["tail_ms_per_trial"][0]
    print(f"per-trial driver cost {big} vs {small}: {ratio:.3f} in CPU time ({wall_ratio:.3f} in wall time, which "
          "a shared machine makes noisy) (target <= 1.5)")
    print(f"per_trial_cost_ratio_{big}_vs_{small}={ratio:.3f} peak_rss_mb_{big}={int(out[big]['peak_rss_mb'])} "
          f"analyze_s_{big}={wall:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
