"""λ schedules: how the task loss and the URIEL loss are combined at each step.

``constant``      L = L_task + λ·L_uriel (the paper; λ = 0 is plain fine-tuning)
``warmup``        λ rises linearly from 0 to λ over the first ``lambda_warmup`` fraction of steps
``linear_decay``  λ falls linearly from λ to 0 over training
``cosine_decay``  λ falls from λ to 0 along a half cosine
``alchemyscale``  the paper's AlchemyScale (``dynamicscale`` in the authors' code): weights w over
                  [L_task, L_uriel], w = mean(L)/L at the first step; every ``scale_interval`` steps
                  r = mean(L)/L, r_uriel = max(r_uriel, 1.1·w_uriel), w = 0.1·r + 0.9·w.
                  L = w_task·L_task + w_uriel·L_uriel with the weights as constants. λ is not used.
``alchemytune``   learnable weights by homoscedastic-uncertainty weighting (Kendall et al., 2018):
                  L = exp(-s_t)·L_task + s_t + exp(-s_u)·(L_uriel + floor) + s_u, s trained with the model
                  (in an optimiser group of their own: ``optim.py``). The +s terms stop the weights
                  collapsing to 0; the rule's optimum is w = exp(-s) = 1/L, so s starts at log L of the first
                  batch (at the optimum, instead of at w = 1 from where an lr-sized step takes thousands of
                  steps to get there). ``floor`` (``tune_floor``) caps the URIEL weight at 1/floor: the
                  projection can fit the few seen languages' vectors almost exactly, and 1/L_uriel would run
                  away as that loss nears 0. The floor is a constant, so the model's gradient is unchanged.
                  The authors' ``dynamiclearn`` trained its weights only toward summing to 1, so they never
                  learned from the losses. λ is not used.

``weights`` gives the effective weights (w_task, w_uriel) of the two losses; the reported λ is their ratio.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from alchemy_tune.trial.config import uses_uriel


class LambdaSchedule(nn.Module):
    """Combines the two losses; a Module so learnable weights train and everything checkpoints."""

    def __init__(self, name: str, lam: float, total_steps: int, warmup: float = 0.1, interval: int = 100,
                 floor: float = 0.01):
        super().__init__()
        self.name, self.lam, self.total_steps = name, float(lam), max(1, int(total_steps))
        self.warmup, self.interval, self.floor = warmup, interval, float(floor)
        # AlchemyScale weights are running statistics, not parameters: a buffer checkpoints them.
        self.register_buffer("scale_weights", torch.zeros(2))
        self.log_vars = nn.Parameter(torch.zeros(2)) if name == "alchemytune" else None
        # Whether log_vars were set from the first batch (a buffer, so a resumed trial does not redo it),
        # mirrored in a Python flag so a step does not read the buffer back from the GPU.
        self.register_buffer("tune_started", torch.zeros((), dtype=torch.bool))
        self._started_known = False
        self.register_load_state_dict_post_hook(lambda module, keys: setattr(module, "_started_known", False))

    def lambda_at(self, step: int) -> float:
        """λ of the static schedules at an optimiser step (0-based)."""
        progress = min(1.0, step / self.total_steps)
        if self.name == "warmup":
            span = self.warmup * self.total_steps
            return self.lam * (min(1.0, step / span) if span > 0 else 1.0)
        if self.name == "linear_decay":
            return self.lam * (1.0 - progress)
        if self.name == "cosine_decay":
            return self.lam * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lam

    def combine(self, l_task: torch.Tensor, l_uriel: torch.Tensor, step: int) -> torch.Tensor:
        if self.name == "alchemyscale":
            self._update_scale(l_task.detach(), l_uriel.detach(), step)
            return self.scale_weights[0] * l_task + self.scale_weights[1] * l_uriel
        if self.name == "alchemytune":
            l_floored = l_uriel + self.floor
            if not self._started_known:
                if not bool(self.tune_started):
                    with torch.no_grad():  # start at the rule's optimum for the first batch: s = log L
                        losses = torch.stack([l_task.float(), l_floored.float()])
                        self.log_vars.copy_(losses.clamp_min(1e-12).log())
                        self.tune_started.fill_(True)
                self._started_known = True
            s = self.log_vars
            return torch.exp(-s[0]) * l_task + s[0] + torch.exp(-s[1]) * l_floored + s[1]
        lam = self.lambda_at(step)
        # λ = 0 must not even touch L_uriel's graph: the baseline is plain fine-tuning.
        return l_task + lam * l_uriel if lam else l_task

    def _update_scale(self, l_task: torch.Tensor, l_uriel: torch.Tensor, step: int) -> None:
        losses = torch.stack([l_task.float(), l_uriel.float()]).clamp_min(1e-12)
        ratio = losses.mean() / losses
        # Decided on the device (torch.where), never by reading the weights back: no host sync per step.
        first = ~self.scale_weights.any()
        if step % self.interval == 0:
            floored = torch.stack([ratio[0], torch.maximum(ratio[1], 1.1 * self.scale_weights[1])])
            updated = 0.1 * floored + 0.9 * self.scale_weights
        else:
            updated = self.scale_weights
        self.scale_weights.copy_(torch.where(first, ratio, updated))

    def weights(self, step: int) -> tuple[float, float]:
        """Effective weights (w_task, w_uriel) of the two losses at ``step``."""
        if self.name == "alchemyscale":
            w_task, w_uriel = self.scale_weights.tolist()
            return w_task, w_uriel
        if self.name == "alchemytune":
            w_task, w_uriel = torch.exp(-self.log_vars.detach()).tolist()
            return w_task, w_uriel
        return 1.0, self.lambda_at(step)

    def effective_lambda(self, step: int) -> float:
        """w_uriel / w_task: the λ a constant schedule would need to weigh the losses alike."""
        w_task, w_uriel = self.weights(step)
        return w_uriel / w_task if w_task else 0.0

    @property
    def uses_uriel(self) -> bool:
        """Whether the URIEL loss is computed at all (not plain fine-tuning: :func:`config.uses_uriel`)."""
        return uses_uriel({"lambda": self.lam, "lambda_schedule": self.name})
