"""One LinguAlchemy trial: a plain PyTorch loop, handed a ``report`` callable (it never imports Ray).

Reads top to bottom in phases: prepare (task, URIEL targets, encoder, tokens), restore a checkpoint if
given, then per step: batch -> forward -> losses -> λ-combined loss -> divergence check -> backward, clip,
step -> every eval interval: evaluate dev and test per language, checkpoint, report.
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch

from . import constants as K
from . import optim
from .batching import Encoded, collate, concat, encode, epoch_batches, eval_batches
from .config import TrialConfig
from .encoder import load_encoder
from .errors import UsageError
from .lambdas import LambdaSchedule
from .metrics import notes as metric_notes
from .metrics import score
from .model import AlchemyModel, task_loss, uriel_loss
from .tasks import Task, TaskOptions, load_task
from .language_vectors import load_table

Report = Callable[[dict, Optional[str]], None]
CHECKPOINT_FILE = "trial.pt"
# Fields that may differ between a checkpoint and the run resuming it (they do not change the maths).
_EXECUTION_FIELDS = {"device", "threads", "data_dir"}


@dataclass
class TrialOutcome:
    status: str
    reason: str = ""
    metrics: dict = field(default_factory=dict)


@dataclass
class Prepared:
    """Everything built before the first step; ``prepare`` is also what the CLI's dry run and tests use."""

    config: TrialConfig
    task: Task
    languages: list[str]
    uriel_codes: list[str]
    uriel: torch.Tensor  # [n_languages, dim] targets, row = index in ``languages``
    model: AlchemyModel
    tokenizer: Any
    train: Encoded
    evals: dict[str, Encoded]  # "dev"/"test" -> all languages concatenated
    device: torch.device


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device: 'cuda' requested but torch sees no CUDA device; use --device cpu or auto")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def prepare(config: TrialConfig) -> Prepared:
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device)
    options = TaskOptions(
        train_size=config.train_size, dev_size=config.dev_size, test_size=config.test_size,
        seen=config.seen, unseen=config.unseen, val=config.val, data_dir=config.data_dir, variant=config.task_variant,
        seed=config.data_seed,
    )
    task = load_task(config.task, options)
    languages = list(task.languages)
    codes = [task.uriel_codes[lang] for lang in languages]
    table = load_table(config.uriel_source)
    uriel = torch.as_tensor(table.vectors(config.uriel_features, codes, missing=config.missing))

    encoder, tokenizer = load_encoder(config.model, num_layers=config.num_layers,
                                      freeze_embeddings=config.freeze_embeddings,
                                      pooler=config.pooling == "pooler")
    model = build_model(encoder, task.num_labels, uriel.shape[1], config).to(device)

    index = {lang: i for i, lang in enumerate(languages)}

    def encode_split(split: str, langs) -> Encoded:
        parts = [encode(tokenizer, task.split(split)[lang], index[lang], config.max_length, task.kind)
                 for lang in langs if task.split(split).get(lang)]
        return concat(parts)

    train = encode_split("train", task.seen)
    evals = {split: encode_split(split, languages) for split in K.SPLITS_EVALUATED}
    return Prepared(config, task, languages, codes, uriel.to(device), model, tokenizer, train, evals, device)


def build_model(encoder, num_labels: int, uriel_dim: int, config: TrialConfig) -> AlchemyModel:
    """The heads seeded by ``seed`` on a forked RNG, then the training stream seeded by ``seed`` alone.

    Initialising the projection draws from the RNG in proportion to its size (URIEL dims, MLP or linear):
    without the fork, a λ = 0 baseline and a λ > 0 trial of the same seed would see different dropout
    masks, and the pair would be less matched than it looks.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = AlchemyModel(encoder, num_labels, uriel_dim, config)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    return model


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def predict(p: Prepared, data: Encoded, batch_size: int) -> np.ndarray:
    """Predicted class ids (classification) or scores (regression), in the order of ``data``."""
    p.model.eval()
    pad_id = p.tokenizer.pad_token_id
    out = np.zeros(len(data), dtype=np.float64)
    for indices in eval_batches(data, batch_size):
        batch = _to(collate(data, indices, pad_id), p.device)
        with _autocast(p.device, p.config.bf16):
            logits, _ = p.model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                                project=False)
        logits = logits.float()
        pred = logits.argmax(-1) if p.task.kind == "classification" else logits.squeeze(-1)
        out[np.asarray(indices)] = pred.cpu().numpy()
    p.model.train()
    return out


def evaluate(p: Prepared) -> dict:
    """Per-language metrics on dev and test, and the per-role averages of the primary metric.

    Averages: ``<split>_<group>`` for the seen / val / unseen (test) languages and all of them, and
    ``dev_select`` (mean dev over seen ∪ val languages), the default selection metric.
    """
    langs: dict[str, dict] = {
        lang: {"uriel": code, "seen": lang in p.task.seen, "role": p.task.role(lang)}
        for lang, code in zip(p.languages, p.uriel_codes)
    }
    result: dict[str, Any] = {}
    notes: list[str] = []
    primary = p.task.primary_metric
    for split, data in p.evals.items():
        if not len(data):
            continue
        pred = predict(p, data, p.config.batch_size * 2)
        for i, lang in enumerate(p.languages):
            mask = data.lang_index == i
            if mask.any():
                langs[lang][split] = score(p.task.kind, data.labels[mask], pred[mask])
                why = metric_notes(p.task.kind, data.labels[mask], pred[mask])
                notes += [f"{split} {lang}: {n}" for n in why]
    result.update(averages(langs, primary))
    result[K.LANGS] = langs
    result[K.PRIMARY_METRIC] = primary
    result[K.NOTES] = notes
    return result


def averages(langs: Mapping[str, Mapping], primary: str) -> dict[str, float]:
    """Every average of :data:`constants.AVERAGE_KEYS` from per-language scores (NaN for an empty group)."""
    out = {}
    for split in K.SPLITS_EVALUATED:
        for group in K.GROUPS:
            roles = K.ROLES if group == "all" else (group,)
            out[K.average_key(split, group)] = _mean(langs, split, primary, roles)
    out[K.SELECT] = _mean(langs, "dev", primary, K.SELECT_ROLES)
    return out


def _mean(langs: Mapping[str, Mapping], split: str, primary: str, roles) -> float:
    values = [info[split][primary] for info in langs.values()
              if split in info and K.lang_role(info) in roles]
    return float(np.mean(values)) if values else math.nan


def compute_losses(p: Prepared, batch: dict, schedule: LambdaSchedule, step: int):
    """(combined loss, task loss, URIEL loss or None when λ is 0) for one training batch."""
    with _autocast(p.device, p.config.bf16):
        # λ = 0: the projection is not even run (the baseline is plain fine-tuning)
        logits, projected = p.model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                                    project=schedule.uses_uriel, step=step)
    l_task = task_loss(p.task.kind, logits, batch["labels"])
    if projected is None:
        return l_task, l_task, None
    l_uriel = uriel_loss(projected, p.uriel[batch["lang_index"]])
    return schedule.combine(l_task, l_uriel, step), l_task, l_uriel


def _trainable_state(model: torch.nn.Module) -> dict:
    # Frozen parameters (the 96M-row word embeddings) are rebuilt from the base model: leave them out.
    frozen = {n for n, prm in model.named_parameters() if not prm.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k not in frozen}


def run_trial(config: TrialConfig | Mapping, report: Report, *, resume_from: str | None = None) -> TrialOutcome:
    """Train and evaluate one configuration, calling ``report(metrics, checkpoint_dir)`` at every eval."""
    if not isinstance(config, TrialConfig):
        config = TrialConfig.from_dict(config)
    started = time.perf_counter()
    p = prepare(config)
    model, device = p.model, p.device

    total_steps, steps_per_epoch = optim.total_steps(config, len(p.train))
    eval_every = optim.eval_interval(config, steps_per_epoch)

    schedule = LambdaSchedule(config.lambda_schedule, config.lambda_, total_steps,
                              config.lambda_warmup, config.scale_interval, config.tune_floor).to(device)
    params = [prm for prm in model.parameters() if prm.requires_grad]
    optimizer, lr_schedule = optim.build_optimizer(model, schedule, config, total_steps)

    step, prior_seconds = 0, 0.0
    if resume_from:
        state = torch.load(Path(resume_from) / CHECKPOINT_FILE, map_location=device, weights_only=True)
        saved = {k: v for k, v in state["config"].items() if k not in _EXECUTION_FIELDS}
        now = {k: v for k, v in config.to_dict().items() if k not in _EXECUTION_FIELDS}
        if saved != now:
            diff = sorted(k for k in now if saved.get(k) != now[k])
            raise UsageError(f"checkpoint {resume_from} was made with a different config (fields: {', '.join(diff)})")
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        frozen = {n for n, prm in model.named_parameters() if not prm.requires_grad}
        if unexpected or set(missing) - frozen:
            raise UsageError(f"checkpoint {resume_from} does not match the model (missing {missing}, unexpected {unexpected})")
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        schedule.load_state_dict(state["lambda"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"])
        step, prior_seconds = int(state["step"]), float(state["train_seconds"])

    pad_id = p.tokenizer.pad_token_id
    pad_to = config.max_length if config.pad_to_max_length else None
    sums = np.zeros(3)  # loss, task loss, uriel loss since the last report
    n_since = 0
    batches: list[list[int]] = []
    batches_epoch = -1
    last: dict = {}
    model.train()
    while step < total_steps:
        epoch, position = divmod(step, steps_per_epoch)
        if epoch != batches_epoch:
            batches = epoch_batches(p.train, config.batch_size, seed=config.seed, epoch=epoch,
                                    group_by_length=config.group_by_length)
            batches_epoch = epoch
        batch = _to(collate(p.train, batches[position], pad_id, pad_to), device)
        loss, l_task, l_uriel = compute_losses(p, batch, schedule, step)

        if not torch.isfinite(loss):
            reason = (f"non-finite loss at step {step}: loss={loss.item()}, task_loss={l_task.item()}, "
                      f"uriel_loss={l_uriel.item() if l_uriel is not None else 'n/a'}")
            metrics = {K.STEP: step, K.STATUS: K.DIVERGED, K.REASON: reason, K.LAMBDA: schedule.effective_lambda(step),
                       K.TRAIN_SECONDS: prior_seconds + time.perf_counter() - started,
                       **{key: math.nan for key in K.AVERAGE_KEYS}}
            report(metrics, None)
            return TrialOutcome(K.DIVERGED, reason, metrics)

        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        lr_schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        sums += (loss.item(), l_task.item(), l_uriel.item() if l_uriel is not None else math.nan)
        n_since += 1

        if step % eval_every == 0 or step == total_steps:
            metrics = evaluate(p)
            metrics.update({
                K.STEP: step, K.EPOCH: step / steps_per_epoch,
                K.EXAMPLES_SEEN: min(step * config.batch_size, int(config.epochs * len(p.train))),
                K.LAMBDA: schedule.effective_lambda(step - 1),
                **dict(zip((K.TASK_WEIGHT, K.URIEL_WEIGHT), schedule.weights(step - 1))),
                K.TRAIN_LOSS: sums[0] / n_since, K.TASK_LOSS: sums[1] / n_since, K.URIEL_LOSS: sums[2] / n_since,
                K.STATUS: K.COMPLETED if step == total_steps else K.RUNNING, K.REASON: "",
                K.TRAIN_SECONDS: prior_seconds + time.perf_counter() - started,
            })
            sums[:] = 0
            n_since = 0
            with tempfile.TemporaryDirectory(prefix="alchemy-ckpt-") as ckpt:
                state = {
                    "model": _trainable_state(model), "optimizer": optimizer.state_dict(),
                    "lr_schedule": lr_schedule.state_dict(), "lambda": schedule.state_dict(),
                    "rng_cpu": torch.get_rng_state(), "step": step,
                    "train_seconds": metrics[K.TRAIN_SECONDS], "config": config.to_dict(),
                }
                if device.type == "cuda":
                    state["rng_cuda"] = torch.cuda.get_rng_state()
                torch.save(state, Path(ckpt) / CHECKPOINT_FILE)
                report(metrics, ckpt)
            last = metrics
    return TrialOutcome(K.COMPLETED, "", last)
