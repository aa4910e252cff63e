"""Replication, chosen once per search: each sampled configuration runs as one Ray trial (:class:`OneTrial`),
or as ``k`` replicates with training seeds seed, seed + 1, ... (:class:`Replicates`, whose bookkeeping is
:mod:`alchemy_tune.tuning.replicates`).

Everything that differs between the two is a method here, and :func:`replication` is the one place where the
number of replicates picks the behaviour: the searcher, the pruning scheduler, the trial-end protocol, resume
and the progress line ask the study handle's ``replication``.
"""

from __future__ import annotations

from typing import Any, Mapping

from optuna.trial import TrialState

from alchemy_tune.core import constants as C
from alchemy_tune.core.numbers import is_finite_number
from alchemy_tune.tuning import replicates
from alchemy_tune.tuning.study_attrs import ORPHAN_ATTR, PRUNED_AT_ATTR, PRUNED_BY_ATTR, REPLICATES_ATTR


class OneTrial:
    """One Ray trial per configuration: the Optuna trial is the Ray trial."""

    k = 1
    unit = "trials"
    """What the progress line counts."""
    counted_at_trial_end = True
    """A Ray trial's end is the configuration's end, so the progress line counts it at once."""

    # ------------------------------------------------------------------ the searcher
    def added(self, handle, attrs: dict, claimed: bool) -> None:
        """Complete the attributes of a trial the search adds itself (a matched twin): an unclaimed one is
        handed to the next Ray trial, like a dead driver's orphan."""
        if not claimed:
            attrs[ORPHAN_ATTR] = True
            handle.orphans_waiting()

    def suggest(self, searcher, ray_id: str) -> dict | None:
        """The config for a new Ray trial (an orphan's, else a new Optuna trial's); None: nothing left."""
        handle = searcher.handle
        config = handle.adopt_orphan(ray_id)
        if config is not None:
            return config
        n = handle.n_trials()
        if n >= searcher.n_trials:
            return None
        if searcher.exhaustive is not None and len(handle.this_runs_trials(warm=True)) >= searcher.exhaustive:
            return None  # every configuration tried (warm-started ones count: they were run)
        if searcher.grid is not None:
            handle.study.enqueue_trial(searcher.grid[n])
        return handle.ask(ray_id, searcher.space)

    # ------------------------------------------------------------------ trial ends
    def _decide(self, handle, ray_id: str, result: Mapping[str, Any] | None, error: str | bool):
        """(frozen, status, Optuna state, values to tell, reason) of the trial's end; None when unknown or
        already told."""
        frozen = handle.frozen(ray_id)
        if frozen is None or frozen.state.is_finished():
            return None
        if C.STEP not in (result or {}) and not error:
            return None  # removed before it ever ran (search stopped): a resumed search still runs it
        result = result or {}
        values = [result.get(C.report_key(m)) for m in handle.objective_metrics]
        if error:
            return frozen, C.FAILED, TrialState.FAIL, None, str(error) if isinstance(error, str) else "error"
        if frozen.user_attrs.get(PRUNED_BY_ATTR) is not None:
            return frozen, C.PRUNED, TrialState.PRUNED, None, ""
        if result.get(C.STATUS) == C.DIVERGED:
            # PRUNED, not FAIL: TPE ignores FAIL trials and would keep sampling where trials diverge; a
            # PRUNED trial counts with its last intermediate value (the last finite objective; NaNs are
            # never reported), or as worse than any trial with values when it had none.
            return frozen, C.DIVERGED, TrialState.PRUNED, None, str(result.get(C.REASON) or "diverged")
        if values and all(is_finite_number(v) for v in values):
            return frozen, C.COMPLETED, TrialState.COMPLETE, [float(v) for v in values], ""
        return frozen, C.FAILED, TrialState.FAIL, None, f"no finite {', '.join(handle.objective_metrics)} reported"

    def ending(self, handle, ray_id: str, result: Mapping[str, Any] | None,
               error: str | bool = False) -> tuple[str, str, int | None] | None:
        """(status, reason, pruned_at_step) the trial's end will be recorded with; records nothing."""
        decision = self._decide(handle, ray_id, result, error)
        if decision is None:
            return None
        frozen, status, _, _, reason = decision
        return status, reason, frozen.user_attrs.get(PRUNED_AT_ATTR) if status == C.PRUNED else None

    def finish(self, handle, ray_id: str, result: Mapping[str, Any] | None, error: str | bool = False) -> str | None:
        """Tell Optuna how the trial ended; its status, None when unknown or already told."""
        decision = self._decide(handle, ray_id, result, error)
        if decision is None:
            return None
        frozen, status, state, told, reason = decision
        handle.tell_end(frozen.number, status, state, told, reason)
        return status

    def forget_unknown(self, handle, known_ray_ids: set[str]) -> int:
        """After a driver died: what it asked for but Tune never recorded goes to the next new Ray trials."""
        return handle.mark_orphans(known_ray_ids)

    # ------------------------------------------------------------------ pruning
    def aggregate(self, handle, ray_id: str, eval_index: int, values: Mapping[int, float]) -> dict | None:
        """The intermediate values to report for the configuration; None while waiting for more."""
        return dict(values)

    def stops_with_its_configuration(self, frozen) -> bool:
        """Whether this running Ray trial must stop because its configuration was pruned already."""
        return False

    # ------------------------------------------------------------------ words
    def describe(self) -> str:
        """What the search's first line adds after the configuration count."""
        return ""

    def best_label(self, label: str, value: str, number: int, ray_id: str | None) -> str:
        return f"{label}={value} (trial {ray_id})"

    def best_line(self, label: str, best: Mapping[str, Any], values: str, metrics) -> str:
        return f"{label}: {best['ray_trial_id']} (optuna #{best['number']}) value(s) {values}"


class Replicates(OneTrial):
    """``k`` Ray trials per configuration that differ only in their training seed; the sampler and the
    pruners see the configuration's mean (see :mod:`alchemy_tune.tuning.replicates`)."""

    unit = "configurations"
    counted_at_trial_end = False  # known once the configuration's last replicate is told

    def __init__(self, k: int):
        self.k = int(k)

    def added(self, handle, attrs: dict, claimed: bool) -> None:
        attrs[REPLICATES_ATTR] = self.k  # its free replicate slots hand it out

    def suggest(self, searcher, ray_id: str) -> dict | None:
        return replicates.suggest(searcher.handle, ray_id, searcher.space, searcher.n_trials, searcher.grid)

    def ending(self, handle, ray_id, result, error=False):
        end = replicates.ending(handle, ray_id, result, error)
        return None if end is None else (end["status"], end["reason"], end["pruned_at_step"])

    def finish(self, handle, ray_id, result, error=False):
        """Record the replicate's end (its status is its own); Optuna is told when the last one ends."""
        status, outcome = replicates.finish(handle, ray_id, result, error)
        if outcome is not None:
            config_status, state, told, reason = outcome
            handle.tell_end(handle.number_of(ray_id), config_status, state, told, reason)
        return status

    def forget_unknown(self, handle, known_ray_ids):
        return replicates.release_unknown(handle, known_ray_ids)

    def aggregate(self, handle, ray_id, eval_index, values):
        return replicates.aggregate(handle, ray_id, eval_index, values)

    def stops_with_its_configuration(self, frozen) -> bool:
        return frozen.user_attrs.get(PRUNED_BY_ATTR) is not None

    def describe(self) -> str:
        return f" x {self.k} seeds"

    def best_label(self, label, value, number, ray_id):
        return f"{label}={value} (configuration {number}, mean of its replicates)"

    def best_line(self, label, best, values, metrics):
        return (f"{label}: configuration optuna #{best['number']}, mean over {self.k} replicates "
                f"of {', '.join(metrics)}: {values}")


def replication(repeats: int) -> OneTrial:
    """The replication of a search with ``repeats`` training seeds per configuration."""
    return Replicates(repeats) if repeats > 1 else OneTrial()
