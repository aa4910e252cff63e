"""Trial benchmarks, measured side by side in one run on this machine:

(a) LinguAlchemy training-step time ÷ plain fine-tuning step time (same model, same batches)  target ≤ 1.03
(b) training throughput with dynamic padding + length grouping ÷ padding every input to 80 tokens,
    on MASSIVE-like utterances of 5–20 tokens                                                target ≥ 2.5

Usage: python benchmarks/bench_trial.py [--model e5-small] [--layers 6] [--steps 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from alchemy_tune.trial.batching import Encoded, collate, epoch_batches
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.trial.lambdas import LambdaSchedule
from alchemy_tune.trial.train import _to, compute_losses, prepare


def train_steps(p, batches, data, schedule, optimizer, pad_to=None) -> float:
    """Seconds for full optimiser steps (forward, both losses, backward, clip, step) over ``batches``."""
    pad_id = p.pad_id
    params = [x for x in p.model.parameters() if x.requires_grad]
    start = time.perf_counter()
    for step, indices in enumerate(batches):
        batch = _to(collate(data, indices, pad_id, pad_to), p.device)
        loss, _, _ = compute_losses(p, batch, schedule, step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="e5-small")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--steps", type=int, default=30, help="steps per timed block (a)")
    ap.add_argument("--examples", type=int, default=1024, help="utterances per timed pass (b)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    config = TrialConfig(model=args.model, num_layers=args.layers, train_size=200, dev_size=6, test_size=6,
                         batch_size=args.batch_size, device="cpu")
    p = prepare(config)
    optimizer = torch.optim.AdamW([x for x in p.model.parameters() if x.requires_grad], lr=1e-5)
    print(f"model {args.model}, {args.layers} layers, frozen word embeddings, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, device {p.device}")

    # (a) the same batch through both losses back to back, order alternating, so load from other
    # processes and drift hit both sides equally; the median of per-batch ratios is robust to outliers
    batches = epoch_batches(p.train, args.batch_size, seed=0, epoch=0, group_by_length=True)[: args.steps]
    alchemy = LambdaSchedule("constant", 10.0, 1000)
    plain = LambdaSchedule("constant", 0.0, 1000)
    train_steps(p, batches[:3], p.train, alchemy, optimizer)  # warm-up
    t = {"alchemy": [], "plain": []}
    for rep in range(3):
        for i, b in enumerate(batches):
            order = ("plain", "alchemy") if (i + rep) % 2 == 0 else ("alchemy", "plain")
            for name in order:
                t[name].append(train_steps(p, [b], p.train, alchemy if name == "alchemy" else plain, optimizer))
    ratios = np.array(t["alchemy"]) / np.array(t["plain"])
    ratio_a = float(np.median(ratios))
    print(f"(a) step time over {len(ratios)} batch pairs: LinguAlchemy {1000 * np.median(t['alchemy']):.1f} ms, "
          f"plain fine-tuning {1000 * np.median(t['plain']):.1f} ms (medians); median per-batch ratio "
          f"{ratio_a:.3f}, ratio of totals {sum(t['alchemy']) / sum(t['plain']):.3f} (target <= 1.03)")

    # (b) MASSIVE-like utterances: real verse token ids cut to 5–20 tokens (uniform), specials kept
    rng = random.Random(0)
    ids = []
    for seq in p.train.input_ids:
        if len(ids) == args.examples:
            break
        k = rng.randint(5, 20)
        if len(seq) >= k:
            ids.append(seq[: k - 1] + seq[-1:])
    data = Encoded(ids, None, p.train.labels[: len(ids)], p.train.lang_index[: len(ids)])
    print(f"(b) {len(ids)} utterances, mean {np.mean([len(s) for s in ids]):.1f} tokens")
    dyn = epoch_batches(data, args.batch_size, seed=0, epoch=0, group_by_length=True)
    fixed = epoch_batches(data, args.batch_size, seed=0, epoch=0, group_by_length=False)
    train_steps(p, dyn[:2], data, alchemy, optimizer)
    t_dyn = t_fixed = 0.0
    for _ in range(2):
        t_fixed += train_steps(p, fixed, data, alchemy, optimizer, pad_to=80)
        t_dyn += train_steps(p, dyn, data, alchemy, optimizer)
    ratio_b = t_fixed / t_dyn
    print(f"(b) throughput: dynamic padding + length grouping {2 * len(ids) / t_dyn:.0f} ex/s, "
          f"padding to 80 {2 * len(ids) / t_fixed:.0f} ex/s -> ratio {ratio_b:.2f} (target >= 2.5)")


if __name__ == "__main__":
    main()
