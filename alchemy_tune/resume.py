"""``alchemy-tune resume RUN_DIR``: continue a search whose driver died.

Tune restores its trials from the experiment state in RUN_DIR (unfinished ones continue from their last
checkpoints); before that the Optuna study is reconciled with what Tune recorded, so each trial appears
once in the study and once in the results, however the driver died (see :func:`reconcile`).
"""

from __future__ import annotations

import os

from alchemy_tune.cluster import init_ray
from alchemy_tune.errors import UsageError
from alchemy_tune.optuna_searcher import StudyHandle
from alchemy_tune.search import (JOURNAL, SearchOutcome, download_journal, fit_and_summarize, is_uri,
                                 journal_location, local_path)


def resume_search(run_dir: str, *, address: str | None = None, num_cpus: int | None = None,
                  progress_interval_s: float | None = None) -> SearchOutcome:
    """Continue a search whose driver died: Tune restores its trials from their checkpoints and the study
    is reconciled first, so every trial ends up in the study and in the results exactly once."""
    from ray import tune

    from alchemy_tune.run_dir import read_metadata
    from alchemy_tune.trainable import make_trainable

    meta = read_metadata(run_dir)
    if meta.get("kind") != "search":
        raise UsageError(f"{run_dir}: a {meta.get('kind')!r} run, not a search; only searches can be resumed")
    run_dir = run_dir.rstrip("/") if is_uri(run_dir) else local_path(run_dir)
    journal = journal_location(run_dir)
    download_journal(run_dir, journal)
    if not os.path.exists(journal):
        raise UsageError(f"{run_dir}: no {JOURNAL} (the search died before its first trial); start a new search")
    if not tune.Tuner.can_restore(run_dir):
        raise UsageError(f"{run_dir}: no Ray Tune experiment state; start a new search instead")
    init_ray(address, num_cpus)
    handle = StudyHandle(journal, objectives=[tuple(o) for o in meta["objectives"]], sampler=meta["sampler"],
                         pruner=meta["pruner"], seed=meta.get("seed"), run_dir=run_dir,
                         repeats=meta.get("repeats") or 1)
    reconcile(run_dir, meta["run_id"], handle)
    trainable = make_trainable(meta.get("trial_fn") or "alchemy_tune.train:run_trial", meta.get("resources"))
    tuner = tune.Tuner.restore(run_dir, trainable, resume_unfinished=True, resume_errored=False,
                               restart_errored=False)
    return fit_and_summarize(tuner, handle, run_dir, journal)


def reconcile(run_dir: str, run_id: str, handle: StudyHandle) -> None:
    """Make the study agree with what Tune recorded before the driver died.

    A trial Tune saw end but Optuna was never told about is told now (and recorded in the results); an
    Optuna trial Tune never recorded is flagged an orphan, and the next new Ray trial takes it over.
    """
    from ray.tune import ExperimentAnalysis

    from alchemy_tune.progress import final_status
    from alchemy_tune.results import ResultsWriter

    trials = ExperimentAnalysis(run_dir).trials
    writer = None
    for trial in trials:
        if trial.status not in ("TERMINATED", "ERROR"):
            continue
        error = trial.status == "ERROR"
        if handle.finish(trial.trial_id, trial.last_result, error=error) is None:
            continue
        writer = writer or ResultsWriter(run_dir, run_id)
        status, reason, step = final_status(handle, trial, error=error)
        writer.end_trial(trial.trial_id, status, error=reason, pruned_at_step=step,
                         wall_seconds=(trial.last_result or {}).get("time_total_s"))
    if handle.repeats > 1:
        from alchemy_tune.replicates import release_unknown

        release_unknown(handle, {t.trial_id for t in trials})
    else:
        handle.mark_orphans({t.trial_id for t in trials})

