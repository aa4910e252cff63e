"""The optimiser and the learning-rate schedule of a trial: parameter groups, warm-up and decay.

Groups (AdamW):
- model weights with ``weight_decay``;
- biases and LayerNorm weights without decay (as Hugging Face's Trainer: decay on a LayerNorm's scale
  pulls it toward 0, i.e. toward switching the layer off);
- AlchemyTune's log-variances with their own ``tune_lr``, no decay and a constant LR: inside the model's
  group they moved by at most about lr (1e-4) per step and then decayed to 0, so they never learned.

The LR of the model groups rises linearly from 0 over ``warmup_ratio`` of the steps, then falls linearly
to 0 at the last step (Hugging Face's ``get_linear_schedule_with_warmup``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from alchemy_tune.trial.config import TrialConfig


def total_steps(config: TrialConfig, n_train: int) -> tuple[int, int]:
    """(optimiser steps of the trial, steps per epoch) for ``n_train`` training examples."""
    per_epoch = max(1, math.ceil(n_train / config.batch_size))
    steps = max(1, math.ceil(config.epochs * per_epoch))
    if config.max_steps:
        steps = min(steps, config.max_steps)
    return steps, per_epoch


def eval_interval(config: TrialConfig, steps_per_epoch: int) -> int:
    """Optimiser steps between evaluations: ``eval_every``, else ``evals_per_epoch`` per epoch."""
    if config.eval_every:
        return config.eval_every
    return max(1, math.ceil(steps_per_epoch / config.evals_per_epoch))


def no_decay_names(model: nn.Module) -> set[str]:
    """Parameter names that take no weight decay: biases and the weights of normalisation layers."""
    names = set()
    for module_name, module in model.named_modules():
        kind = type(module).__name__.lower()
        is_norm = isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "layernorm" in kind
        for name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if is_norm or name == "bias":
                names.add(full)
    return names


def param_groups(model: nn.Module, schedule: nn.Module, config: TrialConfig) -> list[dict]:
    """AdamW groups: decayed weights, undecayed biases/norms, then the λ schedule's own parameters."""
    skip = no_decay_names(model)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if n not in skip], "weight_decay": config.weight_decay,
         "lr": config.lr},
        {"params": [p for n, p in trainable if n in skip], "weight_decay": 0.0, "lr": config.lr},
    ]
    own = list(schedule.parameters())
    if own:
        groups.append({"params": own, "weight_decay": 0.0, "lr": config.tune_lr, "constant_lr": True})
    return [g for g in groups if g["params"]]


def lr_factor(step: int, warmup_steps: int, total: int) -> float:
    """LR multiplier for the update made at optimiser step ``step`` (0-based): 0 at step 0 of a warm-up."""
    if step < warmup_steps:
        return step / warmup_steps
    return max(0.0, (total - step) / max(1, total - warmup_steps))


def build_optimizer(model: nn.Module, schedule: nn.Module, config: TrialConfig, total: int):
    """(AdamW, LambdaLR) for a trial of ``total`` optimiser steps."""
    groups = param_groups(model, schedule, config)
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    warmup = int(config.warmup_ratio * total)

    def model_factor(step: int) -> float:
        return lr_factor(step, warmup, total)

    def constant(step: int) -> float:
        return 1.0

    factors = [constant if g.get("constant_lr") else model_factor for g in groups]
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
