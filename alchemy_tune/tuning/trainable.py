"""The Ray Tune function trainable: one LinguAlchemy trial, checkpointed at every evaluation.

It adapts ``alchemy_tune.trial.train.run_trial``'s ``report(metrics, checkpoint_dir)`` to ``ray.tune.report``:
the checkpoint folder exists only during the call, and ``tune.report`` persists it to the run's storage
before returning. A restarted trial (node lost, retry, resumed search) continues from the last persisted
checkpoint. Each report is also written as TensorBoard scalars into the trial's own folder, which Ray syncs
to storage, so ``tensorboard --logdir RUN_DIR`` shows every trial.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import time
from typing import Any, Callable, Mapping

from ray import tune

from alchemy_tune.tuning.trial_fn import TRIAL_FN
from alchemy_tune.core import constants as C
BUSY_SECONDS = "alchemy_busy_seconds"  # wall seconds inside the trial function so far in this attempt
TENSORBOARD_DIR = "tensorboard"



def _load(path: str) -> Callable:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def make_trainable(trial_fn: str = TRIAL_FN, resources: Mapping[str, float] | None = None,
                   selection: tuple[str, str] | None = None):
    """A Tune function trainable running ``trial_fn`` (``module:function``) with ``resources`` per trial.

    ``selection`` (the run's metric and mode) goes to trial functions that take ``select``, so the step a
    trial scores test at is the step the results tables will call its best.
    """

    def alchemy_trial(config: dict) -> None:
        from alchemy_tune.results.tensorboard import TensorBoardLogger

        run_trial = _load(trial_fn)
        if selection and "select" in inspect.signature(run_trial).parameters:
            run_trial = functools.partial(run_trial, select=tuple(selection))
        started = time.perf_counter()
        log_dir = os.path.join(tune.get_context().get_trial_dir(), TENSORBOARD_DIR)
        tb = TensorBoardLogger(log_dir, select=tuple(selection) if selection else (C.SELECT, "max"))
        tb.log_hparams(config, group=tune.get_context().get_trial_id() or "")

        def report(metrics: dict, checkpoint_dir: str | None = None) -> None:
            tb.log(metrics)
            if metrics.get(C.STATUS) in (C.COMPLETED, C.DIVERGED):  # its last report
                tb.end_session("success" if metrics[C.STATUS] == C.COMPLETED else "failure")
            tb.flush()
            out = dict(metrics)
            for key in (C.LANGS, C.ITEMS):
                if isinstance(out.get(key), Mapping):
                    # One string through Tune, not ~400 flattened keys (52 languages x 2 splits x 2 metrics)
                    # that the driver would track, log and store one by one; report_of decodes it.
                    out[key] = json.dumps(out[key])
            out[BUSY_SECONDS] = time.perf_counter() - started
            if checkpoint_dir is not None:
                tune.report(out, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))
            else:
                tune.report(out)

        checkpoint = tune.get_checkpoint()
        status = "failure"  # crashed (a trial stopped by Tune may not get here: it shows as unfinished)
        try:
            if checkpoint is not None:
                with checkpoint.as_directory() as resume_from:
                    run_trial(config, report, resume_from=resume_from)
            else:
                run_trial(config, report)
            status = "success"
        finally:
            tb.close(status)

    alchemy_trial.__name__ = "alchemy_trial"
    if resources:
        return tune.with_resources(alchemy_trial, {k: v for k, v in resources.items() if v})
    return alchemy_trial


RAY_KEYS = frozenset({
    "done", "training_iteration", "trial_id", "date", "timestamp", "time_this_iter_s", "time_total_s", "pid",
    "hostname", "node_ip", "config", "time_since_restore", "iterations_since_restore", "checkpoint_dir_name",
    "experiment_tag", "should_checkpoint", BUSY_SECONDS,
})


def langs_of(result: Mapping[str, Any], key: str = C.LANGS) -> Any:
    """A Tune result's per-language scores (or ``items``) as the trial reported them (a dict; JSON on the way
    through Tune)."""
    value = result.get(key)
    return json.loads(value) if isinstance(value, str) else value


def report_of(result: Mapping[str, Any]) -> dict:
    """The trial's own report dict from a Tune result (Ray's bookkeeping keys removed)."""
    out = {k: v for k, v in result.items() if k not in RAY_KEYS and not k.startswith("_")}
    for key in (C.LANGS, C.ITEMS):
        if key in out:
            out[key] = langs_of(out, key)
    return out


