"""A trial's checkpoint: only what resuming needs, and the check that it belongs to the trial resuming it.

It holds the trainable weights (not the frozen embedding matrix, rebuilt from the base model), the state of
every stateful part of the optimisation (optimiser, LR schedule, λ schedule), the RNG states, the progress
and the configuration. Everything loads on the CPU.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from alchemy_tune.trial.config import EXECUTION, TrialConfig, params_with_role
from alchemy_tune.core.errors import UsageError

CHECKPOINT_FILE = "trial.pt"


@dataclass
class Progress:
    """Where the run is; checkpointed, so a resumed run continues the same decisions."""

    step: int = 0
    train_seconds: float = 0.0  # before this attempt (resumes)
    evaluations: int = 0
    best: float | None = None  # best selection value so far


class Unreadable(Exception):
    """A checkpoint file that cannot be loaded (cut by a crash during its save, or gone)."""


def load(folder: str | Path) -> dict:
    # Everything is loaded on the CPU: set_rng_state accepts only a CPU ByteTensor (map_location=cuda moved
    # it and every resume on a GPU failed), and load_state_dict copies each tensor to its parameter's device.
    path = Path(folder) / CHECKPOINT_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise Unreadable(f"{path}: {first}") from None


def save(folder: str | Path, model: torch.nn.Module, parts: Mapping[str, Any], config: TrialConfig,
         device: torch.device, progress: Progress, train_seconds: float) -> None:
    """``parts``: name -> object with ``state_dict`` (the optimiser, the LR and λ schedules)."""
    state = {
        "model": _trainable_state(model), **{name: part.state_dict() for name, part in parts.items()},
        "rng_cpu": torch.get_rng_state(), "step": progress.step, "train_seconds": train_seconds,
        "evaluations": progress.evaluations, "best": progress.best, "config": config.to_dict(),
    }
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    torch.save(state, Path(folder) / CHECKPOINT_FILE)


def restore(folder: str | Path, model: torch.nn.Module, parts: Mapping[str, Any], config: TrialConfig,
            device: torch.device) -> Progress:
    """Load the checkpoint into ``model`` and ``parts``; UsageError if it was made for another trial."""
    state = load(folder)
    _check_config(folder, state["config"], config)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    frozen = {n for n, prm in model.named_parameters() if not prm.requires_grad}
    if unexpected or set(missing) - frozen:
        raise UsageError(f"checkpoint {folder} does not match the model "
                         f"(missing {missing}, unexpected {unexpected})")
    for name, part in parts.items():
        part.load_state_dict(state[name])
    torch.set_rng_state(state["rng_cpu"])
    if device.type == "cuda" and "rng_cuda" in state:
        torch.cuda.set_rng_state(state["rng_cuda"], device)
    best = state.get("best")
    return Progress(int(state["step"]), float(state["train_seconds"]), int(state.get("evaluations", 0)),
                    None if best is None else float(best))


def _check_config(folder: str | Path, saved: Mapping[str, Any], config: TrialConfig) -> None:
    # Execution fields (device, threads, checkpoint cadence, ...) may differ: they do not change the maths.
    free = set(params_with_role(EXECUTION))
    saved = {k: v for k, v in saved.items() if k not in free}
    now = {k: v for k, v in config.to_dict().items() if k not in free}
    if saved != now:
        diff = sorted(k for k in now if saved.get(k) != now[k])
        raise UsageError(f"checkpoint {folder} was made with a different config (fields: {', '.join(diff)})")


def _trainable_state(model: torch.nn.Module) -> dict:
    # Frozen parameters (the 96M-row word embeddings) are rebuilt from the base model: leave them out.
    frozen = {n for n, prm in model.named_parameters() if not prm.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k not in frozen}
