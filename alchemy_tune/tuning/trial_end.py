"""The trial-end protocol: how a trial's end reaches the results tables and the Optuna study.

The rule: **the tables store a trial's end before Optuna is told of it.** :class:`ResultsCallback` records
the end in the tables with the status Optuna will be told (:meth:`StudyHandle.ending`, which writes nothing),
and tells Optuna (:meth:`StudyHandle.finish`) only once the results writer reports that end stored. So the
study never knows more than the tables: a driver killed in between leaves a study trial still running, which
a resumed search continues or runs again (:func:`reconcile`), never a finished one whose last rows were lost.

Until it is told, a trial's final status (completed, pruned with the step, diverged with the reason, failed
with the error's last line) is what :meth:`StudyHandle.ending` says Optuna will be told; afterwards, the
study's (:func:`final_status`). How an end maps to Optuna's states, and when a configuration with replicates
has ended, is the replication's (:mod:`alchemy_tune.tuning.replication`).
"""

from __future__ import annotations

from ray.tune import Callback

from alchemy_tune.core import constants as C
from alchemy_tune.core.errors import UsageError, storage_full
from alchemy_tune.tuning.journal import relocated, restoring
from alchemy_tune.tuning.study_attrs import PRUNED_AT_ATTR, REASON_ATTR, STATUS_ATTR
from alchemy_tune.tuning.replicates import ended, identity
from alchemy_tune.tuning.searcher import StudyHandle
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
        # The tables hold the test items now; Tune keeps each trial's last result in its experiment state,
        # which need not carry thousands of predictions per trial (Tune lets callbacks edit it in place).
        result.pop(C.ITEMS, None)

    def end(self, trial, *, error: bool = False) -> None:
        if trial.trial_id in self._told_before or not (error or C.STEP in (trial.last_result or {})):
            return  # told before, or stopped before it ever ran (no row: nothing of it ran)
        status, reason, step = final_status(self.handle, trial, error=error)
        last = trial.last_result or {}
        self.writer.set_identity(trial.trial_id, *identity(self.handle, trial.trial_id))
        self.writer.end_trial(trial.trial_id, status, error=reason, pruned_at_step=step,
                              resources=trial.placement_group_factory.required_resources,
                              wall_seconds=last.get("time_total_s"), config=trial.config)
        if self.handle is not None:
            # Optuna hears of the end once it is stored (the writer's thread, about a second from now): a
            # driver killed before then leaves the study trial running, never finished with rows missing.
            self._untold[trial.trial_id] = (at_best_step(self.writer, self.handle, trial), error)
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
        self._stop_if_full(self._writer.storage_error() if self._writer is not None else None)
        self.tell_stored()

    def _stop_if_full(self, error: BaseException | None) -> None:
        """A full storage ends the search with one line (raised through Tune's loop, which saves nothing
        more): the rows not yet written were never told to Optuna, so `resume` runs their trials again."""
        if storage_full(error):
            where = getattr(error, "filename", None) or self.run_dir
            raise UsageError(f"{where}: no space left on device while writing the results; every file written "
                             f"is whole. Free some space, then continue with `alchemy-tune resume {self.run_dir}`")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.end(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.end(trial, error=True)

    def get_state(self):
        """Tune calls this whenever it saves its experiment state: every row reported so far is written first,
        so a resumed search never continues a trial from a checkpoint whose rows were not stored."""
        if self._writer is not None:
            try:
                self._writer.flush()
            except OSError as exc:  # raised at the next step, not inside Tune's own save
                if not storage_full(exc):
                    raise
                self._writer.hold_error(exc)
            self.tell_stored()
        return None  # nothing to restore: the tables themselves are the state

    def on_experiment_end(self, trials, **info):
        try:
            self.writer.close(compact_after=True)  # one file per table for readers; a resume adds parts again
        except OSError as exc:
            self._stop_if_full(exc)
            raise
        self.tell_stored()


def at_best_step(writer, handle: StudyHandle, trial) -> dict | None:
    """The trial's last result with its objectives' values at its best step: the sampler is told the value
    ``analyze`` and ``confirm`` rank by (the selection metric at the step it chose), not the last one."""
    result = trial.last_result
    best = writer.at_best_step(trial.trial_id) if result else None
    if not best:
        return result
    keys = {C.report_key(m) for m in handle.objective_metrics}
    return {**result, **{k: best[k] for k in keys if best.get(k) is not None}}


def reconcile(run_dir: str, run_id: str, handle: StudyHandle) -> list[str]:
    """Make the study agree with what Tune recorded before the driver died; returns the errored trials.

    A trial Tune saw end but Optuna was never told about is told now (and recorded in the results); an
    Optuna trial Tune never recorded is flagged an orphan, and the next new Ray trial takes it over.
    """
    from ray.tune import ExperimentAnalysis

    from alchemy_tune.results.writer import ResultsWriter

    trials = ExperimentAnalysis(run_dir).trials
    writer = None
    for trial in trials:
        if trial.status not in ("TERMINATED", "ERROR"):
            continue
        error = trial.status == "ERROR"
        if handle.ending(trial.trial_id, trial.last_result, error=error) is None:
            continue  # told already: the tables hold its end (they are written before Optuna is told)
        writer = writer or ResultsWriter(run_dir, run_id)
        status, reason, step = final_status(handle, trial, error=error)
        writer.end_trial(trial.trial_id, status, error=reason, pruned_at_step=step,
                         wall_seconds=(trial.last_result or {}).get("time_total_s"), config=trial.config)
        handle.finish(trial.trial_id, at_best_step(writer, handle, trial), error=error)  # written: no thread
    handle.replication.forget_unknown(handle, {t.trial_id for t in trials})
    # what the restored Tune will run again: the restored searcher counts them as running
    restoring(run_id, [t.trial_id for t in trials if t.status not in ("TERMINATED", "ERROR")])
    return [t.trial_id for t in trials if t.status == "ERROR"]
