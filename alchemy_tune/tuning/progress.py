"""Driver-side Tune callbacks: the results tables and a one-line progress display.

A trial's end is recorded in the tables first and told to Optuna once they hold it (ResultsCallback), so
the study never knows more than the tables: a driver killed in between leaves a study trial still running,
which a resumed search continues or runs again, never a finished one whose last rows were lost. Until it is
told, a trial's final status (completed, pruned with the step, diverged with the reason, failed with the
error's last line) is what :meth:`StudyHandle.ending` says Optuna will be told; afterwards, the study's.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune import Callback

from alchemy_tune.core import constants as C
from alchemy_tune.tuning.journal import relocated
from alchemy_tune.core.numbers import is_finite_number
from alchemy_tune.tuning.searcher import RAY_ID_ATTR, REASON_ATTR, STATUS_ATTR, StudyHandle
from alchemy_tune.tuning.pruning import PRUNED_AT_ATTR, PRUNED_BY_ATTR
from alchemy_tune.tuning.replicates import ended, identity
from alchemy_tune.tuning.trainable import report_of


def _error_line(trial) -> str:
    try:
        text = trial.get_error() or ""
    except Exception:  # the error file may be on storage that is gone; the status still matters more
        text = ""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return (lines[-1] if lines else "trial failed")[:500]


def final_status(handle: StudyHandle, trial, *, error: bool = False) -> tuple[str, str, int | None]:
    """(status, reason, pruned_at_step) of a finished Ray trial, from its Optuna trial (or what it will be
    told)."""
    if error:
        return C.FAILED, _error_line(trial), None
    last = trial.last_result or {}
    untold = handle.ending(trial.trial_id, last) if handle is not None else None
    if untold is not None:
        return untold
    frozen = handle.frozen(trial.trial_id) if handle is not None else None
    attrs = frozen.user_attrs if frozen is not None else {}
    end = ended(frozen, trial.trial_id)
    if end:  # a replicate: its own ending, not its configuration's
        return end["status"], end["reason"], end["pruned_at_step"]
    status = attrs.get(STATUS_ATTR)
    if status is None:  # not told (e.g. a multi-driver race); fall back to what the trial itself said
        status = C.DIVERGED if last.get(C.STATUS) == C.DIVERGED else C.COMPLETED
    reason = str(attrs.get(REASON_ATTR) or last.get(C.REASON) or "")
    return status, reason, attrs.get(PRUNED_AT_ATTR)


class ResultsCallback(Callback):
    """Feeds :class:`alchemy_tune.results.writer.ResultsWriter`; the writer is opened lazily in the driver."""

    def __init__(self, run_dir: str, run_id: str, handle: StudyHandle, metric: str, mode: str):
        self.run_dir, self.run_id, self.handle = run_dir, run_id, handle
        self.metric, self.mode = metric, mode
        self._writer = None
        self._seen: set[str] = set()
        self._told_before: set[str] = set()
        self._untold: dict[str, tuple] = {}  # ended, recorded, Optuna not told until the tables hold it

    def __getstate__(self):
        return {**self.__dict__, "_writer": None, "_seen": set(), "_told_before": set(), "_untold": {}}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.run_dir = relocated(self.run_id, self.run_dir)  # a resumed run whose local folder moved

    @property
    def writer(self):
        if self._writer is None:
            from alchemy_tune.results.writer import ResultsWriter

            # background: Tune's event loop never waits for storage (see ResultsWriter)
            self._writer = ResultsWriter(self.run_dir, self.run_id, metric=self.metric, mode=self.mode,
                                         background=True, flush_interval_s=10.0)
        return self._writer

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if trial.trial_id not in self._seen:
            self._seen.add(trial.trial_id)
            frozen = self.handle.frozen(trial.trial_id) if self.handle is not None else None
            if frozen is not None and frozen.state.is_finished():
                # A resumed Tune re-running a trial whose end it had not saved: the study and the tables
                # already hold its whole run; the scheduler stops it at this first report.
                self._told_before.add(trial.trial_id)
            for old in self.handle.previous_ids(trial.trial_id) if self.handle is not None else ():
                # an orphan this trial took over
                self.writer.drop_trial(old)
        if trial.trial_id not in self._told_before:
            self.writer.set_identity(trial.trial_id, *identity(self.handle, trial.trial_id))
            self.writer.add_report(trial.trial_id, trial.config, report_of(result))

    def end(self, trial, *, error: bool = False) -> None:
        if trial.trial_id in self._told_before:
            return
        status, reason, step = final_status(self.handle, trial, error=error)
        last = trial.last_result or {}
        self.writer.set_identity(trial.trial_id, *identity(self.handle, trial.trial_id))
        self.writer.end_trial(trial.trial_id, status, error=reason, pruned_at_step=step,
                              resources=trial.placement_group_factory.required_resources,
                              wall_seconds=last.get("time_total_s"), config=trial.config)
        if self.handle is not None:
            # Optuna hears of the end once it is stored (the writer's thread, about a second from now): a
            # driver killed before then leaves the study trial running, never finished with rows missing.
            self._untold[trial.trial_id] = (trial.last_result, error)
            self.tell_stored()

    def tell_stored(self) -> None:
        """Tell Optuna the ends the tables now hold (Tune's event loop: every step, and at state saves)."""
        if self._untold and self._writer is not None:
            for trial_id in self._writer.stored_ends():
                told = self._untold.pop(trial_id, None)
                if told is not None:
                    self.handle.finish(trial_id, *told)

    def settle(self) -> None:
        """Store the ends recorded so far and tell Optuna now. A search that runs one trial at a time calls
        this before the sampler decides, so what it samples never depends on how far the writer's thread
        has got: it makes the same choices on every run."""
        if self._untold and self._writer is not None:
            self._writer.flush()
            self.tell_stored()

    def on_step_end(self, iteration, trials, **info):
        self.tell_stored()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.end(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.end(trial, error=True)

    def get_state(self):
        """Tune calls this whenever it saves its experiment state: every row reported so far is written first,
        so a resumed search never continues a trial from a checkpoint whose rows were not stored."""
        if self._writer is not None:
            self._writer.flush()
            self.tell_stored()
        return None  # nothing to restore: the tables themselves are the state

    def on_experiment_end(self, trials, **info):
        self.writer.close(compact_after=True)  # one file per table for readers; a resume adds parts again
        self.tell_stored()


def metric_label(metric: str) -> str:
    """How outputs name a selection metric: one computed on test-language data says ORACLE."""
    return f"{metric} [ORACLE: selects on test-language dev data]" if C.is_oracle(metric) else metric


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) and math.isfinite(value) else "-"


class ProgressCallback(Callback):
    """Prints a line when a trial ends and at most every ``interval_s`` seconds otherwise.

    The counts and the best trial come from one look at the study, then from each trial as it ends: a line
    per trial end must not cost more as the study grows (Optuna's ``best_trial`` reads every trial).
    """

    PARETO_EVERY_S = 10.0  # a multi-objective search's Pareto front is recounted at most this often

    def __init__(self, handle: StudyHandle, n_trials: int, interval_s: float = 30.0, stream=None):
        self.handle, self.n_trials, self.interval_s = handle, n_trials, interval_s
        self.stream = stream
        self._last = 0.0
        self._forget()

    def _forget(self) -> None:
        self._statuses: dict[int, str] | None = None  # Optuna trial number -> alchemy status (this search)
        self._counts: dict[str, int] = {}
        self._best_seen: tuple[float, int, str] | None = None  # (value, Optuna number, Ray id)
        self._unsettled: set[int] = set()  # configurations whose end Optuna has not been told yet
        self._pareto: tuple[float, str] | None = None  # (when, label)

    def __getstate__(self):
        state = {**self.__dict__, "stream": None}
        for key in ("_statuses", "_counts", "_best_seen", "_unsettled", "_pareto"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._forget()  # a resumed driver looks at the study again

    def _count(self, number: int, status: str) -> None:
        old = self._statuses.get(number)
        if old:
            self._counts[old] -= 1
        self._statuses[number] = status
        self._counts[status] = self._counts.get(status, 0) + 1

    def _offer(self, number: int, value: float, ray_id: str | None) -> None:
        best = self._best_seen
        maximize = self.handle.directions[0] == "maximize"
        if best is None or best[1] == number or (value > best[0] if maximize else value < best[0]):
            self._best_seen = (value, number, ray_id)

    def _note(self, frozen: optuna.trial.FrozenTrial | None, *, counted: bool = True) -> None:
        if frozen is None:
            return
        status = frozen.user_attrs.get(STATUS_ATTR)
        if counted and status:
            self._count(frozen.number, status)
        if frozen.state == TrialState.COMPLETE and not self.handle.multi_objective and frozen.value is not None:
            self._offer(frozen.number, frozen.value, frozen.user_attrs.get(RAY_ID_ATTR))

    def _note_end(self, trial, status: str, error: bool) -> None:
        """A Ray trial that just ended; Optuna may not be told yet (see ResultsCallback)."""
        frozen = self.handle.frozen(trial.trial_id)
        if frozen is None:
            return
        if self.handle.repeats > 1 or frozen.state.is_finished() or not (trial.last_result or error):
            # told already (noted at once below), a configuration (known once its last replicate is told), or
            # removed before it ran (never told: StudyHandle.ending)
            self._unsettled.add(frozen.number)
            return
        self._count(frozen.number, status)  # what Optuna will be told
        value = (trial.last_result or {}).get(C.report_key(self.handle.metric))
        if status == C.COMPLETED and not self.handle.multi_objective and is_finite_number(value):
            self._offer(frozen.number, float(value), trial.trial_id)

    def _look(self) -> None:
        if self._statuses is not None:
            return
        self._statuses = {}
        for t in self.handle.this_runs_trials():  # earlier drivers' trials too, not warm-start or retried ones
            self._note(t)
        for t in self.handle.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            self._note(t, counted=False)  # the best may be a warm-start trial, as Optuna's best_trial says

    def _print(self, trials, event: str = "", ending=None, status: str | None = None,
               error: bool = False) -> None:
        self._look()
        if ending is not None:
            self._note_end(ending, status, error)
        for number in list(self._unsettled):
            frozen = self.handle.get_trial(number)
            if frozen.state.is_finished():
                self._unsettled.discard(number)
                self._note(frozen)
        counts = self._counts
        running = sum(1 for t in trials if t.status == "RUNNING" and t is not ending)
        unit = "configurations" if self.handle.repeats > 1 else "trials"  # each runs `repeats` Ray trials
        line = (f"[{time.strftime('%H:%M:%S')}] {unit} {sum(counts.values())}/{self.n_trials} done "
                f"({counts.get(C.COMPLETED, 0)} completed, {counts.get(C.PRUNED, 0)} pruned, "
                f"{counts.get(C.DIVERGED, 0)} diverged, {counts.get(C.FAILED, 0)} failed), {running} running; "
                f"best {self._best()}")
        print(line + (f"  <- {event}" if event else ""), file=self.stream or sys.stdout, flush=True)
        self._last = time.monotonic()

    def _best(self) -> str:
        if self.handle.multi_objective:
            now = time.monotonic()
            if self._pareto is None or now - self._pareto[0] >= self.PARETO_EVERY_S:
                front = self.handle.study.best_trials
                self._pareto = (now, f"Pareto front of {len(front)} trial(s)" if front else "none yet")
            return self._pareto[1]
        if self._best_seen is None:
            return "none yet"
        value, number, ray_id = self._best_seen
        label = f"{metric_label(self.handle.metric)}"
        if self.handle.repeats > 1:
            return f"{label}={_fmt(value)} (configuration {number}, mean of its replicates)"
        return f"{label}={_fmt(value)} (trial {ray_id})"

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if time.monotonic() - self._last >= self.interval_s:
            self._print(trials)

    def _end(self, trials, trial, error: bool) -> None:
        status, reason, step = final_status(self.handle, trial, error=error)
        detail = f"{trial.trial_id} {status}"
        if status == C.PRUNED:
            frozen = self.handle.frozen(trial.trial_id)
            detail += f" at step {step}" + (f" by {frozen.user_attrs.get(PRUNED_BY_ATTR)}" if frozen else "")
        elif reason:
            detail += f": {reason[:120]}"
        else:
            value = (trial.last_result or {}).get(C.report_key(self.handle.metric))
            detail += f" {metric_label(self.handle.metric)}={_fmt(value)}"
        self._print(trials, detail, ending=trial, status=status, error=error)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trials, trial, error=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trials, trial, error=True)

