"""Peak host RSS of one bundled-task trial in this process (target: a bundled trial under 2 GB).

Usage: python benchmarks/bench_trial_memory.py [--steps 10]
Prints the trial's own peak RSS (VmHWM since the trial's start) at each evaluation and at the end.
"""

from __future__ import annotations

import argparse
import time

from alchemy_tune.core import constants as K
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.trial.train import run_trial


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    started = time.perf_counter()
    outcome = run_trial(TrialConfig(max_steps=args.steps, evals_per_epoch=1, threads=1),
                        lambda m, c: print(f"step {m[K.STEP]}: peak RSS {m.get(K.PEAK_RSS_MB, 0):.0f} MB", flush=True))
    print(f"{outcome.status}: peak RSS {outcome.metrics[K.PEAK_RSS_MB]:.0f} MB "
          f"(target < 2,000), {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
