"""How fast the command answers bad input: each CLI validation error, timed as a user runs it.

Run: ``python benchmarks/bench_cli.py [--repeats 5]``. Each command runs as a fresh
``python -m alchemy_tune.cli ...`` process (the installed ``alchemy-tune`` script does the same); the figure is
the median wall time of ``--repeats`` runs. Beside it, in the same run, the time of a bare ``import torch``
process, the cost the validation avoids paying first. Target: every line ≤ 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = [
    ["train", "--lambda", "-1"],
    ["train", "--model", "/nonexistent/model-dir"],
    ["train", "--task", "nope"],
    ["train", "--seen", "eng,xx-QQ"],
    ["--trials", "0"],
    ["--trials", "2", "--sampler", "annealing"],
    ["--trials", "1", "--name", "../x"],
    ["plan", "--space", "nope"],
    ["resume", "/nonexistent/run"],
    ["confirm", "/nonexistent/run"],
    ["analyze", "/nonexistent/run"],
    ["compact", "/nonexistent/run"],
]


def median_seconds(argv: list[str], repeats: int, expect: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode != expect:
            raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}, expected {expect}: {done.stderr[-500:]}")
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch_s = median_seconds([sys.executable, "-c", "import torch"], args.repeats, 0)
    width = max(len(" ".join(c)) for c in CASES) + 14
    print(f"{'command':<{width}} {'median s':>9} {'÷ import torch':>15}")
    worst = 0.0
    for case in CASES:
        seconds = median_seconds([sys.executable, "-m", "alchemy_tune.cli", *case], args.repeats, 2)
        worst = max(worst, seconds)
        print(f"{'alchemy-tune ' + ' '.join(case):<{width}} {seconds:>9.2f} {seconds / torch_s:>15.2f}")
    label = 'python -c "import torch"'
    print(f"{label:<{width}} {torch_s:>9.2f} {1:>15.2f}")
    print(f"slowest answer {worst:.2f} s (target <= 1 s): {'met' if worst <= 1.0 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
