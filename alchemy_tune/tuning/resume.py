"""``alchemy-tune resume RUN_DIR``: continue a search whose driver died, or extend a finished one.

Tune restores its trials from the experiment state in RUN_DIR (unfinished ones continue from their last
checkpoints); before that the Optuna study is reconciled with what Tune recorded, so each trial appears
once in the study and once in the results, however the driver died (see :func:`reconcile`).

``--retry-errored`` runs errored trials again from their last checkpoint (each gets a fresh Optuna trial
with the same parameters; the FAIL one stays in the study, flagged, and no longer counts). ``--trials N``
raises the search's trial count: once the restored trials are done, a new Tune experiment in the same run
folder asks the same study for the rest. A local run folder that moved since the search began is continued
the same way (Tune's restored experiment would create its new trials at the old place).
"""

from __future__ import annotations

import dataclasses

from alchemy_tune.tuning.trial_fn import TRIAL_FN
from alchemy_tune.tuning.cluster import init_ray
from alchemy_tune.tuning.driver_lock import DriverLock
from alchemy_tune.core import constants as C
from alchemy_tune.core.errors import UsageError
from alchemy_tune.tuning.journal import fetch, relocate, restored_unfinished, restoring
from alchemy_tune.tuning.searcher import StudyHandle
from alchemy_tune.results.run_dir import is_uri, local_path
from alchemy_tune.results.run_record import RunRecord
from alchemy_tune.tuning.search import SearchOutcome, fit_and_summarize
from alchemy_tune.tuning.trial_end import reconcile


def resume_search(run_dir: str, *, address: str | None = None, num_cpus: int | None = None,
                  progress_interval_s: float = 30.0, trials: int | None = None,
                  retry_errored: bool = False) -> SearchOutcome:
    """Continue a search whose driver died (and/or extend it to ``trials``): Tune restores its trials from
    their checkpoints and the study is reconciled first, so every trial ends up in the study and in the
    results exactly once. The study and every setting come from the run's record, as the search began."""
    record = RunRecord.read(run_dir)
    if record.kind != "search":
        raise UsageError(f"{run_dir}: a {record.kind!r} run, not a search; only searches can be resumed")
    if trials is not None and trials < (record.settings.trials or 0):
        raise UsageError(f"--trials {trials}: the search already has {record.settings.trials} trials; give "
                         "more to extend it")
    run_dir = run_dir.rstrip("/") if is_uri(run_dir) else local_path(run_dir)
    with DriverLock(run_dir, "alchemy-tune resume"):  # never beside a driver that still runs it
        return _resume(run_dir, record, address, num_cpus, progress_interval_s, trials, retry_errored)


def _resume(run_dir: str, record: RunRecord, address, num_cpus, progress_interval_s, trials, retry_errored
            ) -> SearchOutcome:
    from ray import tune

    from alchemy_tune.results.store import mistyped
    from alchemy_tune.tuning.trainable import make_trainable

    odd = mistyped(run_dir)  # an unreadable or foreign results file, named before any trial trains again
    if odd:
        raise UsageError(odd)
    journal = fetch(run_dir, "{run_dir}: no {journal} (the search stopped before its first trial); start a new "
                             "search with the same --name")
    if not tune.Tuner.can_restore(run_dir):
        raise UsageError(f"{run_dir}: no Ray Tune experiment state; start a new search instead")
    space = _space(record) if retry_errored or trials else None
    init_ray(address, num_cpus)
    relocate(record.run_id, run_dir)  # Tune's saved searcher and callbacks write here, wherever the run began
    handle = StudyHandle.for_settings(journal, record.settings, run_dir=run_dir, run_id=record.run_id)
    errored = reconcile(run_dir, record.run_id, handle)
    if retry_errored:
        for trial_id in errored:
            handle.retry(trial_id, space)
        restoring(record.run_id, restored_unfinished(record.run_id) | set(errored))  # they run again too
    trainable = make_trainable(record.trial_fn or TRIAL_FN, record.resources,
                               selection=(record.metric, record.mode))
    before = _trial_states(run_dir)
    unended = sum(status == C.RUNNING for status in before.values())
    extending = trials is not None and trials > (record.settings.trials or 0)
    print(f"resume {run_dir}: {len(before) - unended} trial(s) ended, {unended} unfinished (they continue from "
          f"their last checkpoints){f', {len(errored)} errored to run again' if retry_errored and errored else ''}"
          f"; the search asks for the rest of its {record.settings.trials} configuration(s)"
          + (f", extended to {trials}" if extending else ""), flush=True)
    tuner = tune.Tuner.restore(run_dir, trainable, resume_unfinished=True, resume_errored=retry_errored,
                               restart_errored=False)
    outcome = fit_and_summarize(tuner, handle, run_dir, journal)
    after = _trial_states(run_dir)
    outcome.nothing_to_resume = (not unended and not extending and not (retry_errored and errored)
                                 and set(after) == set(before))
    moved = not is_uri(run_dir) and record.path not in (None, run_dir)
    if moved or (trials is not None and trials > (record.settings.trials or 0)):
        # The rest of the trials in a new Tune experiment in the same folder (see OptunaSearcher.suggest)
        total = max(trials or 0, record.settings.trials or 0)
        outcome = _extend(record, run_dir, journal, space or _space(record), total, address, num_cpus,
                          progress_interval_s)
    return outcome


def _trial_states(run_dir: str) -> dict[str, str]:
    """trial id -> status, from the results' trials table (what the user's tables say ran)."""
    from alchemy_tune.results.schema import read_trials

    table = read_trials(run_dir)
    if table.num_rows == 0:
        return {}
    return dict(zip(table.column("trial_id").to_pylist(), table.column("status").to_pylist()))


def _space(record: RunRecord):
    from alchemy_tune.tuning.space_file import load_space

    if not record.space:
        raise UsageError("resume: this run does not name its search space; start a new search")
    return load_space(record.space, overrides=record.params or None)


def extended(record: RunRecord, trials: int, run_dir: str) -> RunRecord:
    """The record of a search extended to ``trials`` (at ``run_dir``, where it is now): nothing else changes."""
    return record.replace(settings=dataclasses.replace(record.settings, trials=trials), path=run_dir)


def _extend(record: RunRecord, run_dir: str, journal: str, space, trials: int, address, num_cpus,
            progress_interval_s: float) -> SearchOutcome:
    """A new Tune experiment in the same folder, asking the same study until it holds ``trials`` trials."""
    from alchemy_tune.tuning.search import SearchRequest, allow_pending, build_components, make_tuner
    from alchemy_tune.tuning.trainable import make_trainable

    record = extended(record, trials, run_dir).write(run_dir)
    settings = record.settings
    request = SearchRequest(space_path=record.space, address=address, num_cpus=num_cpus,
                            trial_fn=record.trial_fn or TRIAL_FN, progress_interval_s=progress_interval_s,
                            time_budget_s=record.time_budget_s, gpu_hours=record.gpu_hours,
                            max_failures=record.max_failures)
    allow_pending(settings)
    searcher, scheduler, callbacks, handle = build_components(space, settings, run_dir, record.run_id, request,
                                                              journal)
    trainable = make_trainable(request.trial_fn, record.resources, selection=(record.metric, record.mode))
    tuner = make_tuner(trainable, searcher, scheduler, callbacks, settings, run_dir, request.max_failures)
    print(f"continuing {run_dir} in a new Tune experiment: {trials} trials ({handle.n_trials()} so far)",
          flush=True)
    return fit_and_summarize(tuner, handle, run_dir, journal)
