"""Search budgets: ``--time-budget`` (wall-clock seconds) and ``--gpu-hours``.

When a budget is spent the searcher stops asking for new trials; trials already running finish (they are
not cut short: a half-trained trial would only add a misleading row). The reason is stored in the study
(``stopped_asking``) and printed with the summary. GPU-hours are the trials' own running time (Tune's
``time_total_s``, restarts included) times the GPUs each holds, so idle cluster time does not count.
A resumed search counts its budgets again from the resume.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.numbers import is_finite_number


@dataclass
class Budget:
    time_s: float | None = None
    gpu_hours: float | None = None
    gpus_per_trial: float = 0.0
    started: float = field(default_factory=time.time)
    seconds: dict[str, float] = field(default_factory=dict)
    """Ray trial id -> its running seconds so far."""

    def __setstate__(self, state):
        # unpickled by a resumed search (Tune's saved searcher): the budgets count again from now
        self.__dict__.update(state)
        self.started, self.seconds = time.time(), {}

    def __post_init__(self):
        for flag, value in (("--time-budget", self.time_s), ("--gpu-hours", self.gpu_hours)):
            if value is not None and not (is_finite_number(value) and value > 0):
                raise UsageError(f"{flag}: must be a positive number, got {value!r}")
        if self.gpu_hours is not None and not self.gpus_per_trial:
            raise UsageError("--gpu-hours: trials use no GPU (--gpus-per-trial 0); use --time-budget, or give "
                             "trials GPUs")

    @classmethod
    def of(cls, time_s: float | None, gpu_hours: float | None, gpus_per_trial: float) -> "Budget | None":
        if time_s is None and gpu_hours is None:
            return None
        return cls(time_s=time_s, gpu_hours=gpu_hours, gpus_per_trial=float(gpus_per_trial or 0))

    def record(self, trial_id: str, result: Mapping[str, Any]) -> None:
        seconds = result.get("time_total_s")
        if is_finite_number(seconds):
            self.seconds[trial_id] = float(seconds)

    def gpu_hours_used(self) -> float:
        return self.gpus_per_trial * sum(self.seconds.values()) / 3600.0

    def spent(self, now: float | None = None) -> str | None:
        """Why no new trial may start, or None while the budget lasts."""
        elapsed = (time.time() if now is None else now) - self.started
        if self.time_s is not None and elapsed >= self.time_s:
            return f"time budget of {self.time_s:g} s reached after {elapsed:.0f} s"
        if self.gpu_hours is not None and self.gpu_hours_used() >= self.gpu_hours:
            return f"GPU budget of {self.gpu_hours:g} GPU-hours reached ({self.gpu_hours_used():.4f} used)"
        return None
