"""Divergence found on the device: the step's losses are summed and checked there, and the host looks only
every ``DIVERGENCE_CHECK_EVERY`` steps and at evaluations, so a healthy step never waits for the GPU."""

from __future__ import annotations

import math

import torch

# Steps between two host reads of the device-side divergence flag (and at every evaluation): a diverged
# trial wastes at most this many steps, a healthy one never waits for the GPU inside a step.
DIVERGENCE_CHECK_EVERY = 16


class StepLosses:
    """Loss sums and the first non-finite loss, kept on the device: adding never waits for the GPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.nan = torch.tensor(math.nan, device=device)
        self.sums = torch.zeros(3, device=device)
        self.count = 0
        self.bad_step = torch.tensor(-1, device=device)
        self.bad_values = torch.zeros(3, device=device)

    def add(self, step: int, loss, l_task, l_uriel) -> None:
        values = torch.stack([loss.detach().float(), l_task.detach().float(),
                              self.nan if l_uriel is None else l_uriel.detach().float()])
        self.sums += values
        self.count += 1
        first = ~torch.isfinite(values[0]) & (self.bad_step < 0)
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_values = torch.where(first, values, self.bad_values)

    def divergence(self) -> tuple[int, list[float]] | None:
        """(step, [loss, task, uriel]) of the first non-finite loss, or None. Reads the device once."""
        bad = int(self.bad_step)
        return None if bad < 0 else (bad, self.bad_values.tolist())

    def means(self) -> list[float]:
        out = (self.sums / max(1, self.count)).tolist()
        self.sums.zero_()
        self.count = 0
        return out
