"""TensorBoard event files for one trial: losses, λ, averages and per-language metrics.

Each trial writes under its own folder inside RUN_DIR, so ``tensorboard --logdir RUN_DIR`` lists every
trial as a separate run. Scalar tags:

- ``loss/train``, ``loss/task``, ``loss/uriel``, ``lambda``, ``weight/task``, ``weight/uriel`` (the
  effective weights of the two losses; λ is their ratio), ``epoch``
- ``<split>/<group>`` for the averages (``dev/unseen``, ``test/seen``, ...)
- ``<split>_<metric>/<seen|unseen>/<lang>`` per language (``dev_accuracy/unseen/sw-KE``), so
  TensorBoard's tag filter groups seen and unseen languages.
"""

from __future__ import annotations

import time
from typing import Mapping

from alchemy_tune.core import constants as C
from alchemy_tune.core.numbers import is_finite_number

_SCALARS = {C.TRAIN_LOSS: "loss/train", C.TASK_LOSS: "loss/task", C.URIEL_LOSS: "loss/uriel",
            C.LAMBDA: "lambda", C.TASK_WEIGHT: "weight/task", C.URIEL_WEIGHT: "weight/uriel", C.EPOCH: "epoch",
            C.TRAIN_SECONDS: "train_seconds"}


def scalars_of(report: Mapping) -> dict[str, float]:
    """Tag -> value for every finite number of a report dict (constants.py format)."""
    out: dict[str, float] = {}

    def put(tag, value):
        if is_finite_number(value):
            out[tag] = float(value)

    for key, tag in _SCALARS.items():
        put(tag, report.get(key))
    for split in C.SPLITS_EVALUATED:
        for group in C.GROUPS:
            put(f"{split}/{group}", report.get(C.average_key(split, group)))
    put("dev/select", report.get(C.SELECT))
    for lang, info in (report.get(C.LANGS) or {}).items():
        group = C.lang_role(info)
        for split in C.SPLITS_EVALUATED:
            for metric, value in (info.get(split) or {}).items():
                put(f"{split}_{metric}/{group}/{lang}", value)
    return out


class TensorBoardLogger:
    """Writes report dicts as scalars at ``report["step"]``; safe to reopen after a restart."""

    def __init__(self, log_dir: str):
        # TensorBoard's own event writer (the one torch's SummaryWriter wraps), not torch's: a trial that
        # does not train (scripted, simulated) would otherwise import torch, seconds of CPU per worker.
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.log_dir = str(log_dir)
        self._writer = EventFileWriter(self.log_dir, flush_secs=30)

    def log(self, metrics: Mapping) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        step = metrics.get(C.STEP)
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f"TensorBoard report: 'step' must be an int, got {step!r}")
        values = [Summary.Value(tag=tag, simple_value=value) for tag, value in scalars_of(metrics).items()]
        self._writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "TensorBoardLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
