"""The search's progress line: counts by status and the best trial so far, one line per trial end and at
most every ``interval_s`` seconds otherwise. A trial's status comes from :func:`alchemy_tune.tuning.trial_end.final_status`.
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
from alchemy_tune.core.numbers import is_finite_number
from alchemy_tune.tuning.baselines import is_twin
from alchemy_tune.tuning.searcher import StudyHandle
from alchemy_tune.tuning.study_attrs import PRUNED_BY_ATTR, RAY_ID_ATTR, STATUS_ATTR
from alchemy_tune.tuning.trial_end import final_status


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
        self._twins: dict[int, str] = {}  # matched baselines (Optuna number -> status), counted apart
        self._best_seen: tuple[float, int, str] | None = None  # (value, Optuna number, Ray id)
        self._unsettled: set[int] = set()  # configurations whose end Optuna has not been told yet
        self._pareto: tuple[float, str] | None = None  # (when, label)
        self._started = time.monotonic()  # this driver's start: a resumed one counts from its own
        self._ended_here = 0  # trials this driver saw end, for the time left

    def __getstate__(self):
        state = {**self.__dict__, "stream": None}
        for key in ("_statuses", "_counts", "_twins", "_best_seen", "_unsettled", "_pareto", "_started",
                    "_ended_here"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._forget()  # a resumed driver looks at the study again

    def _count(self, number: int, status: str, twin: bool = False) -> None:
        if twin:  # on top of the sampled trials, never the best of the search
            self._twins[number] = status
            return
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
            self._count(frozen.number, status, is_twin(frozen))
        if is_twin(frozen):
            return
        if frozen.state == TrialState.COMPLETE and not self.handle.multi_objective and frozen.value is not None:
            self._offer(frozen.number, frozen.value, frozen.user_attrs.get(RAY_ID_ATTR))

    def _note_end(self, trial, status: str, error: bool) -> None:
        """A Ray trial that just ended; Optuna may not be told yet (see ResultsCallback)."""
        frozen = self.handle.frozen(trial.trial_id)
        if frozen is None:
            return
        if not self.handle.replication.counted_at_trial_end or frozen.state.is_finished() \
                or not (C.STEP in (trial.last_result or {}) or error):
            # told already (noted at once below), a configuration (known once its last replicate is told), or
            # removed before it ran (never told: StudyHandle.ending)
            self._unsettled.add(frozen.number)
            return
        self._count(frozen.number, status, is_twin(frozen))  # what Optuna will be told
        if is_twin(frozen):
            return
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
        unit = self.handle.replication.unit
        line = (f"[{time.strftime('%H:%M:%S')}] {unit} {sum(counts.values())}/{self.n_trials} done "
                f"({counts.get(C.COMPLETED, 0)} completed, {counts.get(C.PRUNED, 0)} pruned, "
                f"{counts.get(C.DIVERGED, 0)} diverged, {counts.get(C.FAILED, 0)} failed), {running} running; "
                f"{self._baselines()}best {self._best()}; {self._time_left(sum(counts.values()))}")
        print(line + (f"  <- {event}" if event else ""), file=self.stream or sys.stdout, flush=True)
        self._last = time.monotonic()

    def _time_left(self, done: int) -> str:
        """Elapsed, and the time left at the rate trials ended in this driver so far (said to be a guess
        until a few have ended: trials differ, and the last ones run with fewer beside them)."""
        elapsed = time.monotonic() - self._started
        text = f"{elapsed / 60:.1f} min elapsed"
        left = max(self.n_trials - done, 0)
        if not left:
            return text
        if not self._ended_here:
            return text + ", time left known once a trial ends"
        eta = elapsed / self._ended_here * left
        guess = " (a guess: few trials have ended)" if self._ended_here < 3 else ""
        return text + f", about {eta / 60:.1f} min left{guess}"

    def _baselines(self) -> str:
        if not self.handle.matched_baselines:
            return ""
        done = sum(1 for status in self._twins.values() if status)
        return f"matched baselines {done} done ({sum(s == C.COMPLETED for s in self._twins.values())} completed); "

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
        return self.handle.replication.best_label(metric_label(self.handle.metric), _fmt(value), number, ray_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if time.monotonic() - self._last >= self.interval_s:
            self._print(trials)

    def _end(self, trials, trial, error: bool) -> None:
        status, reason, step = final_status(self.handle, trial, error=error)
        frozen = self.handle.frozen(trial.trial_id)
        if not is_twin(frozen):
            self._ended_here += 1
        if status == C.PRUNED and frozen is not None and frozen.user_attrs.get(PRUNED_BY_ATTR) == "unneeded":
            self._print(trials, f"{trial.trial_id} (matched baseline) not needed: its configuration ended "
                                "without completing", ending=trial, status=status, error=error)
            return
        detail = f"{trial.trial_id}{' (matched baseline)' if is_twin(frozen) else ''} {status}"
        if not error and C.STEP not in (trial.last_result or {}):  # stopped before it began (a spent budget)
            self._print(trials, f"{trial.trial_id} not started", ending=trial, status=status, error=error)
            return
        if status == C.PRUNED:
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

