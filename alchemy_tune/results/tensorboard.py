"""TensorBoard event files for one trial: losses, λ, averages and per-language metrics.

Each trial writes under its own folder inside RUN_DIR, so ``tensorboard --logdir RUN_DIR`` lists every
trial as a separate run. Scalar tags:

- ``loss/train``, ``loss/task``, ``loss/uriel``, ``lambda``, ``weight/task``, ``weight/uriel`` (the
  effective weights of the two losses; λ is their ratio), ``epoch``
- ``<split>/<group>`` for the averages (``dev/unseen``, ``test/seen``, ...)
- ``<split>_<metric>/<seen|unseen>/<lang>`` per language (``dev_accuracy/unseen/sw-KE``), so
  TensorBoard's tag filter groups seen and unseen languages.

:meth:`TensorBoardLogger.log_hparams` adds the trial's configuration in the HParams plugin's format (an
experiment summary naming the averages as metrics, a session start, and a session end at the trial's last
report: success, or failure when it diverged or crashed; a trial a pruner stopped shows as unfinished), so
TensorBoard's HParams dashboard compares every trial's settings against its scores. The plugin's protocol
buffers come from the tensorboard package itself (no TensorFlow, no torch).
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from alchemy_tune.core import constants as C
from alchemy_tune.core.numbers import is_finite_number

AVERAGES = ("dev/select", "dev/seen", "dev/val", "dev/unseen", "test/seen", "test/val", "test/unseen")
HPARAM_METRICS = tuple(f"best/{tag}" for tag in AVERAGES)
"""What the HParams dashboard shows beside each trial's settings: the averages at the trial's best step so far
by the selection metric (``best/dev/unseen``, ...; test only where it was scored), the step the results
tables and ``analyze`` read, logged at every report (the dashboard shows a tag's latest value)."""

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

    def __init__(self, log_dir: str, select: tuple[str, str] = (C.SELECT, "max")):
        # TensorBoard's own event writer (the one torch's SummaryWriter wraps), not torch's: a trial that
        # does not train (scripted, simulated) would otherwise import torch, seconds of CPU per worker.
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self.log_dir = str(log_dir)
        self._writer = EventFileWriter(self.log_dir, flush_secs=30)
        self._select = (C.report_key(select[0]), 1.0 if select[1] == "max" else -1.0)
        self._best: tuple[float, dict[str, float]] | None = None  # (signed selection value, its averages)

    def log(self, metrics: Mapping) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        step = metrics.get(C.STEP)
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f"TensorBoard report: 'step' must be an int, got {step!r}")
        scalars = scalars_of(metrics)
        key, sign = self._select
        if is_finite_number(metrics.get(key)) and (self._best is None or sign * metrics[key] >= self._best[0]):
            self._best = (sign * float(metrics[key]), {f"best/{t}": scalars[t] for t in AVERAGES if t in scalars})
        if self._best is not None:  # the later of equal ones, as the tables choose
            scalars.update(self._best[1])
        values = [Summary.Value(tag=tag, simple_value=value) for tag, value in scalars.items()]
        self._writer.add_event(Event(wall_time=time.time(), step=step, summary=Summary(value=values)))

    def log_hparams(self, config: Mapping[str, Any], group: str = "") -> None:
        """The trial's settings for the HParams dashboard (numbers, text, flags; lists joined by commas)."""
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        start = plugin_data_pb2.SessionStartInfo(group_name=group, start_time_secs=time.time())
        experiment = api_pb2.Experiment(metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag))
                                                      for tag in HPARAM_METRICS])
        for name, value in sorted(config.items()):
            if isinstance(value, (list, tuple)):
                value = ",".join(map(str, value))
            if isinstance(value, bool):
                start.hparams[name].bool_value = value
            elif is_finite_number(value):
                start.hparams[name].number_value = float(value)
            elif isinstance(value, str):
                start.hparams[name].string_value = value
            else:
                continue
            experiment.hparam_infos.add(name=name)
        self._plugin_event(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment))
        self._plugin_event(metadata.SESSION_START_INFO_TAG,
                           plugin_data_pb2.HParamsPluginData(session_start_info=start))
        self._hparams = True

    def _plugin_event(self, tag: str, data) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import metadata

        value = Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data),
                              tensor=metadata.NULL_TENSOR)
        self._writer.add_event(Event(wall_time=time.time(), summary=Summary(value=[value])))

    def flush(self) -> None:
        self._writer.flush()

    def end_session(self, status: str) -> None:
        """How the trial's HParams session ended (``success`` or ``failure``), once, written at once: a
        trial's last report is the last moment its worker surely runs."""
        if not getattr(self, "_hparams", False):
            return
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(f"STATUS_{status.upper()}"),
                                             end_time_secs=time.time())
        self._plugin_event(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end))
        self._hparams = False
        self._writer.flush()

    def close(self, status: str | None = None) -> None:
        if status is not None:
            self.end_session(status)
        self._writer.close()

    def __enter__(self) -> "TensorBoardLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
