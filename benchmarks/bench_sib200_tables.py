"""Tables of a 40-trial ``sib200`` search: their size on disk and the time of `alchemy-tune analyze`.

    python benchmarks/bench_sib200_tables.py [--trials 40] [--items 60] [--evals 2] [--repeat 3]

The run has the task's default shape: 203 languages in their default roles (24 seen, 15 validation, 164
test), every language's dev and test scores at each evaluation, and each test example's answer (``--items``
per language: 60 is the task's default test subset, 204 the whole test split) at each evaluation (test is
scored at every new best and the last step; the first evaluation is always a new best, so a 2-evaluation
trial scores test twice). The reports are synthetic (testing/synthetic.py) but written by the real
ResultsWriter and compacted as a search's end compacts them; `analyze` runs in a fresh process pinned to 2
cores, with and without its report. Targets: ≤ 50 MB of tables, analyze ≤ 30 s.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_analyze import _CHILD, timed  # noqa: E402
from testing import synthetic  # noqa: E402
from alchemy_tune.core import constants as C  # noqa: E402
from alchemy_tune.results.writer import ResultsWriter  # noqa: E402
from alchemy_tune.tasks import declared_roles, TaskOptions  # noqa: E402
from alchemy_tune.tasks.flores200 import iso_of  # noqa: E402


def sib200_languages() -> tuple[tuple[str, str, bool, str], ...]:
    seen, val, test = declared_roles("sib200", TaskOptions())
    return tuple((lang, iso_of(lang), role == "seen", role)
                 for langs, role in ((seen, "seen"), (val, "val"), (test, "unseen")) for lang in langs)


def build(run_dir: str, trials: int, evals: int, items: int) -> float:
    synthetic.write_meta(run_dir, "sib200-bench")
    writer = ResultsWriter(run_dir, "sib200-bench", flush_interval_s=30.0)
    rng, langs = random.Random(0), sib200_languages()
    start = time.perf_counter()
    for i, cfg in enumerate(synthetic.grid(trials)):
        cfg = {**cfg, "task": "sib200", "dev_size": 40, "test_size": items}
        for step in range(1, evals + 1):
            writer.add_report(f"t{i:04d}", cfg, synthetic.report(cfg, step, evals, langs, rng, items))
        writer.end_trial(f"t{i:04d}", C.COMPLETED, wall_seconds=600.0)
    writer.close(compact_after=True)
    return time.perf_counter() - start


def size_mb(folder: str) -> float:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--items", type=int, default=60, help="test examples per language (204: the whole split)")
    ap.add_argument("--evals", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="bench-sib200-tables-")
    run_dir = os.path.join(root, "run")
    seconds = build(run_dir, args.trials, args.evals, args.items)
    n_langs = len(sib200_languages())
    print(f"{args.trials} trials × {args.evals} evaluations × {n_langs} languages, {args.items} test items per "
          f"language: written and compacted in {seconds:.0f} s")
    print(f"  tables: {size_mb(os.path.join(run_dir, 'results')):.1f} MB (target ≤ 50 MB)")
    pin = ["taskset", "-c", "0,1"] if (os.cpu_count() or 0) > 2 else []
    base = [*pin, sys.executable, "-c", _CHILD, "analyze", run_dir]
    for label, extra in (("tables only (--no-report)", ["--no-report"]),
                         ("tables + report", ["--out", os.path.join(root, "report")])):
        results = [timed(base + extra) for _ in range(args.repeat)]
        walls = sorted(r[0] for r in results)
        print(f"  analyze, {label}: wall median {walls[len(walls) // 2]:.1f} s (min {walls[0]:.1f}), peak RSS "
              f"{max(r[2] for r in results):.0f} MB (target ≤ 30 s)")
    subprocess.run(["rm", "-rf", root], check=False)


if __name__ == "__main__":
    main()
