"""SIB-200 on this machine, measured side by side in one process (docs/performance.md, "SIB-200"):

(a) scoring ÷ bare forward: ``evaluate`` of the test split (collate, forward, per-language scores and
    item answers) against the encoder's forward pass alone over the same length-sorted batches, already
    collated, in inference mode; blocks alternate so that load from other processes hits both sides.
                                                                                         target ≤ 1.3
(b) one default ``sib200`` trial (the bundled encoder, the task's default sizes), its parts timed:
    preparing (data, tokens, encoder), training steps, dev evaluations, test passes.    target ≤ 12 min
(c) the cost model: training and scoring sentences per second, which ``plan`` uses
    (``alchemy_tune/trial/cost.py``).

Usage: python benchmarks/bench_sib200.py --data-dir DIR [--threads 2] [--repeats 3] [--skip-trial]
       [--max-steps N]   (DIR: the extracted release; a shorter trial with --max-steps for a quick look)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from alchemy_tune.core import constants as K
from alchemy_tune.trial import train as trial_train
from alchemy_tune.trial.batching import collate, eval_batches
from alchemy_tune.trial.config import TrialConfig


def bare_forward(p, data, batch_size: int) -> float:
    """Seconds for the encoder alone over ``data``'s evaluation batches, collated beforehand."""
    batches = [collate(data, indices, p.pad_id) for indices in eval_batches(data, batch_size)]
    p.model.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            p.model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    p.model.train()
    return time.perf_counter() - start


def scoring(p) -> float:
    start = time.perf_counter()
    trial_train.evaluate(p, ("test",))
    return time.perf_counter() - start


def timed_trial(config: TrialConfig) -> dict[str, float]:
    """A whole trial with its parts timed: ``evaluate`` is wrapped to add up dev and test seconds."""
    parts = {"dev evaluations": 0.0, "test passes": 0.0}
    counts = {"dev evaluations": 0, "test passes": 0}
    original = trial_train.evaluate

    def evaluate(p, splits=K.SPLITS_EVALUATED):
        start = time.perf_counter()
        out = original(p, splits)
        key = "test passes" if "test" in splits else "dev evaluations"
        parts[key] += time.perf_counter() - start
        counts[key] += 1
        return out

    started = time.perf_counter()
    p = trial_train.prepare(config)
    parts["prepare (data, tokens, encoder)"] = time.perf_counter() - started
    trial_train.evaluate = evaluate
    try:
        train_start = time.perf_counter()
        outcome = trial_train.train_prepared(p, lambda metrics, checkpoint: None)
        loop = time.perf_counter() - train_start
    finally:
        trial_train.evaluate = original
    parts["training steps"] = loop - parts["dev evaluations"] - parts["test passes"]
    parts["whole trial"] = time.perf_counter() - started
    print(f"  status {outcome.status}; {len(p.train)} training examples; {counts['dev evaluations']} dev "
          f"evaluations of {len(p.evals['dev'])} sentences; {counts['test passes']} test passes of "
          f"{len(p.evals['test'])} sentences")
    plan = trial_train.plan_steps(config, len(p.train))
    parts["_train_sentences"] = plan.total_steps * config.batch_size
    parts["_scored_sentences"] = (counts["dev evaluations"] * len(p.evals["dev"])
                                  + counts["test passes"] * len(p.evals["test"]))
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="alternating blocks of (a)")
    ap.add_argument("--skip-trial", action="store_true", help="only (a)")
    ap.add_argument("--skip-scoring", action="store_true", help="only (b) and (c)")
    ap.add_argument("--max-steps", type=int, default=None, help="shorten (b)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = {"task": "sib200", "data_dir": args.data_dir, "device": "cpu", "threads": args.threads}

    rate = math.nan
    if not args.skip_scoring:
        rate = scoring_ratio(TrialConfig.from_dict(base), args.repeats)
    if args.skip_trial:
        return
    config = TrialConfig.from_dict({**base, **({"max_steps": args.max_steps} if args.max_steps else {})})
    print(f"(b) one default sib200 trial: train_size {config.train_size} × 24 seen languages, {config.epochs:g} "
          f"epochs, dev_size {config.dev_size}, test_size {config.test_size}")
    parts = timed_trial(config)
    train_sentences = parts.pop("_train_sentences")
    scored = parts.pop("_scored_sentences")
    for name, seconds in parts.items():
        print(f"  {name:<32} {seconds:7.1f} s ({seconds / 60:.1f} min)")
    print(f"  target: whole trial ≤ 12 min: {'met' if parts['whole trial'] <= 720 else 'NOT met'}")
    print(f"(c) cost model: training {train_sentences / parts['training steps']:.1f} sentences/s "
          f"(forward, backward, step); scoring {scored / (parts['dev evaluations'] + parts['test passes']):.0f} "
          f"sentences/s within the trial" + (f", {rate:.0f} in (a)" if not math.isnan(rate) else ""))


def scoring_ratio(config: TrialConfig, repeats: int) -> float:
    """(a): prints the ratio; returns the scoring rate (sentences per second)."""
    p = trial_train.prepare(config)
    data, size = p.evals["test"], p.config.batch_size * 2
    lengths = data.lengths
    print(f"(a) scoring the test split: {len(data)} sentences of {len(p.task.languages)} languages, "
          f"{lengths.mean():.1f} tokens on average, batches of {size}, {torch.get_num_threads()} threads")
    bare, scored = [], []
    for r in range(repeats):
        for side in ((bare, scored) if r % 2 == 0 else (scored, bare)):
            side.append(bare_forward(p, data, size) if side is bare else scoring(p))
    b, s = statistics.median(bare), statistics.median(scored)
    print(f"  bare forward {b:.1f} s ({len(data) / b:.0f} sentences/s); scoring {s:.1f} s "
          f"({len(data) / s:.0f} sentences/s); ratio {s / b:.3f} (target ≤ 1.3)")
    return len(data) / s


if __name__ == "__main__":
    main()
