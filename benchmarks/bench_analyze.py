"""Time `alchemy-tune analyze` on a 1,000,000-row metrics table; target <= 3 s and <= 1.5 GB peak on 2 cores.

    python benchmarks/bench_analyze.py [--trials 200 --evals 25 --langs 50] [--keep DIR]

200 trials × 25 evaluations × 50 languages × 2 splits × 2 metrics = 1,000,000 metrics rows, written by
the real ResultsWriter (its add_report cost per call is printed too). The analysis runs in a fresh
subprocess pinned to 2 cores, so its wall time includes Python start-up and imports, and its peak
memory is the child's maximum resident set size.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testing import synthetic  # noqa: E402
from alchemy_tune.results.writer import ResultsWriter  # noqa: E402


def build(run_dir: str, trials: int, evals: int, langs: int) -> tuple[float, float]:
    """Write the run; return (seconds per add_report, seconds of the final flush)."""
    synthetic.write_meta(run_dir, "bench")
    writer = ResultsWriter(run_dir, "bench", flush_interval_s=float("inf"))
    import random

    rng, codes = random.Random(0), synthetic.languages(langs)
    add_time = 0.0
    for i, cfg in enumerate(synthetic.grid(trials)):
        for step in range(1, evals + 1):
            report = synthetic.report(cfg, step, evals, codes, rng)
            t0 = time.perf_counter()
            writer.add_report(f"t{i:04d}", cfg, report)
            add_time += time.perf_counter() - t0
        writer.end_trial(f"t{i:04d}", "completed", wall_seconds=1.0)
    t0 = time.perf_counter()
    writer.close(compact_after=True)  # as a search ends: one file per table
    return add_time / (trials * evals), time.perf_counter() - t0


# The child reports its own peak: RUSAGE_CHILDREN would be the maximum over every earlier child too.
_CHILD = ("import resource, sys; from alchemy_tune.cli import main; rc = main(sys.argv[1:]); "
          "r = resource.getrusage(resource.RUSAGE_SELF); "
          "print('MAXRSS_KB', r.ru_maxrss, 'CPU_S', r.ru_utime + r.ru_stime, file=sys.stderr); sys.exit(rc)")


def timed(cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one analysis in a fresh process."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    wall = time.perf_counter() - t0
    fields = done.stderr.split("MAXRSS_KB")[-1].split()
    return wall, float(fields[2]), int(fields[0]) / 1024


def compare(cmd: list[str], checkout: str, repeat: int) -> None:
    """CPU seconds of this checkout's analyze vs another's on the same run, alternating (load hits both)."""
    here = str(Path(__file__).resolve().parents[1])
    cpu = {"this": [], "other": []}
    for _ in range(repeat):
        for name, path in (("other", checkout), ("this", here)):
            os.environ["PYTHONPATH"], saved = path, os.environ.get("PYTHONPATH")
            try:
                cpu[name].append(timed(cmd)[1])
            finally:
                os.environ["PYTHONPATH"] = saved or ""
    ratios = [a / b for a, b in zip(cpu["this"], cpu["other"])]
    print(f"analyze tables only, CPU s: this {', '.join(f'{v:.2f}' for v in cpu['this'])}; {checkout} "
          f"{', '.join(f'{v:.2f}' for v in cpu['other'])}; ratios {', '.join(f'{r:.2f}' for r in ratios)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--evals", type=int, default=25)
    parser.add_argument("--langs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", default=None, help="write the run here and keep it")
    parser.add_argument("--compare", default=None, metavar="CHECKOUT",
                        help="also time another checkout's analyze (PYTHONPATH=CHECKOUT) on the same run, "
                             "alternating with this one, tables only; prints the CPU ratio")
    args = parser.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="bench-analyze-")
    run_dir = os.path.join(root, "run")
    per_add, flush_s = build(run_dir, args.trials, args.evals, args.langs)
    (metrics_file,) = glob.glob(os.path.join(run_dir, "results", "metrics", "*.parquet"))
    rows = pq.ParquetFile(metrics_file).metadata.num_rows
    size = os.path.getsize(metrics_file) / 2**20
    pin = ["taskset", "-c", "0,1"] if os.cpu_count() and os.cpu_count() > 2 else []
    base = [*pin, sys.executable, "-c", _CHILD, "analyze", run_dir]
    print(f"metrics rows: {rows:,} ({size:.1f} MB Parquet); trials: {args.trials}")
    print(f"ResultsWriter: add_report {per_add * 1e3:.2f} ms/call "
          f"({args.langs * 4} rows), final flush and compaction {flush_s:.2f} s")
    for label, extra in (("tables only (--no-report)", ["--no-report"]),
                         ("tables + report (8 PNGs)", ["--out", os.path.join(root, "report")])):
        results = [timed(base + extra) for _ in range(args.repeat)]
        walls, cpus = sorted(r[0] for r in results), sorted(r[1] for r in results)
        print(f"analyze, {label}: wall median {walls[len(walls) // 2]:.2f} s (min {walls[0]:.2f}), "
              f"CPU median {cpus[len(cpus) // 2]:.2f} s, peak RSS {max(r[2] for r in results):.0f} MB"
              "  [target <= 3 s, <= 1536 MB]")
    if args.compare:
        compare(base + ["--no-report"], args.compare, args.repeat)
    t0 = time.perf_counter()
    imports = "import alchemy_tune.cli.analyze, alchemy_tune.analysis.plots"
    subprocess.run([*pin, sys.executable, "-c", imports], check=True)
    print(f"(python start-up + imports alone: {time.perf_counter() - t0:.2f} s; "
          f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
