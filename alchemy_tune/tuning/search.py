"""The search: a Ray Tune ``Tuner`` over LinguAlchemy trials, with Optuna sampling and pruning.

Pieces, each in its own module: :mod:`alchemy_tune.tuning.searcher` (the study in ``RUN_DIR/study.journal``
and a Tune ``Searcher`` that asks/tells it), :mod:`alchemy_tune.tuning.pruning` (a Tune scheduler that feeds each
dev score to the study's pruner and stops the Ray trial), :mod:`alchemy_tune.tuning.trainable` (the function
trainable, checkpointed at every eval), :mod:`alchemy_tune.tuning.progress` (results tables and progress lines).

Multi-objective search (``objectives`` in the space, e.g. dev_seen and dev_unseen) gives a Pareto front and
gives up pruning by Optuna pruners (Optuna keeps no intermediate values for several objectives) and the
single "best" trial; ASHA still prunes on the first objective.

``ray submit clusters/gpu.yaml alchemy_tune/search.py -- --address auto --trials 64`` runs the thin entry
``alchemy_tune/search.py``, which calls the CLI's ``search`` command.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alchemy_tune.tuning.trial_fn import TRIAL_FN
from alchemy_tune.core import constants as C
from alchemy_tune.tuning.cluster import DEFAULT_STORAGE, check_resources, init_ray
from alchemy_tune.core.errors import UsageError
from alchemy_tune.results.run_dir import is_uri, local_path, run_name
from alchemy_tune.tuning.checks import validate

if TYPE_CHECKING:
    from alchemy_tune.tuning.searcher import StudyHandle
# Ray, Optuna and the modules built on them are imported where a search starts, not here: a bad flag or
# space is answered before their second of imports.

AVERAGES = C.AVERAGE_KEYS


@dataclass(frozen=True)
class SearchRequest:
    """Everything a search needs besides the space file's own settings."""

    space_path: str | None = None
    """Search-space YAML; None = the bundled ``search_spaces/default.yaml``."""
    settings: dict[str, Any] = field(default_factory=dict)
    """``search:`` settings given on the command line (trials, sampler, pruner, metric, seed, ...)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Parameters pinned on the command line (task, data_dir)."""
    storage: str = DEFAULT_STORAGE
    """Local folder, NFS path or a URI pyarrow/Ray accept (s3://...); the run is ``storage/name``."""
    name: str | None = None
    address: str | None = None
    """Ray cluster to join (``auto``, ``host:port``); None = start an embedded Ray on this machine."""
    num_cpus: int | None = None
    """CPUs of the embedded Ray (None = all of this machine's)."""
    max_failures: int = 2
    """Retries of a trial that crashed or lost its node (each continues from its last checkpoint)."""
    node_wait_s: float | None = None
    """On a cluster, how long to wait for the autoscaler to bring a node that fits one trial (None =
    $ALCHEMY_TUNE_NODE_WAIT_S, else 600 s)."""
    trial_fn: str = TRIAL_FN
    progress_interval_s: float = 30.0
    configs: tuple[dict, ...] | None = None
    """Run exactly these configurations, in order, instead of sampling (``confirm``; needs sampler grid)."""
    kind: str = "search"
    """The run's kind in alchemy_run.json (``confirm`` for confirmation runs)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Extra alchemy_run.json fields (a confirmation run's link to its source run)."""
    time_budget_s: float | None = None
    """Stop asking for new trials after this many wall-clock seconds (running trials finish)."""
    gpu_hours: float | None = None
    """Stop asking for new trials once the trials have used this many GPU-hours (running trials finish)."""
    enqueue: str | None = None
    """YAML/JSON list of configurations to try first (see :mod:`alchemy_tune.tuning.warm_start`)."""
    warm_start: str | None = None
    """An earlier search's run folder whose compatible completed trials are told to the new study."""


@dataclass
class SearchOutcome:
    run_dir: str
    counts: dict[str, int]
    best: list[dict]
    """Best trial (single objective) or the Pareto front: {number, ray_trial_id, values, config}."""
    wall_seconds: float | None = None
    metrics: tuple[str, ...] = ()
    """The selection metric(s) the values are of."""
    repeats: int = 1
    oracle: bool = False
    """True when a selection metric used the test languages' dev data (every summary says so)."""
    baselines: dict[str, int] = field(default_factory=dict)
    """Matched baselines (twins the search added, on top of the sampled trials) by status."""
    not_started: int = 0
    """Queued trials a spent budget kept from starting."""
    interrupted: int | None = None
    """The exit code of an interrupted search (130: SIGINT, 143: SIGTERM); None when it ran to its end."""
    stop_reason: str | None = None
    """Set when a budget (--time-budget, --gpu-hours) stopped the search from asking for more trials."""
    nothing_to_resume: bool = False
    """A ``resume`` of a search that had already ended: no trial ran again and none was added."""


# ----------------------------------------------------------------------------- assembly
def expected_evals(space) -> int:
    """Evaluations of the longest trial (epochs x evals_per_epoch, searched values at their largest): ASHA's
    top rung. 100 when a continuous range leaves it open (trials then end by themselves, as completed)."""
    from alchemy_tune.trial.config import TrialConfig

    def largest(name: str) -> float | None:
        param = space.params.get(name)
        if param is None:
            return float(getattr(TrialConfig(), name))
        values = param.values()
        return max(values) if values else None

    epochs, per_epoch = largest("epochs"), largest("evals_per_epoch")
    return math.ceil(epochs * per_epoch) if epochs and per_epoch else 100


def build_components(space, settings, run_dir: str, run_id: str, request: SearchRequest, journal: str):
    """(searcher, scheduler, callbacks, handle) for one search: the study, the searcher with its budgets,
    the scheduler and the driver's callbacks. The one assembly of a search and of its extension (``resume
    --trials``); a resumed search gets these back from Tune's saved state, its study from the same
    :meth:`StudyHandle.for_settings`."""
    from alchemy_tune.tuning.budget import Budget
    from alchemy_tune.tuning.journal import JournalMirror
    from alchemy_tune.tuning.searcher import OptunaSearcher, StudyHandle
    from alchemy_tune.tuning.progress import ProgressCallback
    from alchemy_tune.tuning.trial_end import ResultsCallback
    from alchemy_tune.tuning.pruning import AshaPruningScheduler, OptunaPruningScheduler
    from alchemy_tune.tuning.retention import CheckpointRetention
    from alchemy_tune.tuning.samplers import sampler_kind

    handle = StudyHandle.for_settings(journal, settings, run_dir=run_dir, run_id=run_id)
    grid, exhaustive = None, None
    kind = sampler_kind(settings.sampler)
    if kind.fixed_order:
        grid = [dict(c) for c in request.configs] if request.configs else space.grid()
        if not grid:
            raise UsageError(f"sampler grid: space {space.path} has continuous parameters; give each "
                             "parameter choices or a step (or use bruteforce/tpe)")
    elif kind.enumerates:
        exhaustive = len(space.grid())  # load_space made sure every parameter is discrete
    budget = Budget.of(request.time_budget_s, request.gpu_hours, settings.gpus_per_trial)  # counts from now
    searcher = OptunaSearcher(handle, space, settings.trials, grid=grid, exhaustive=exhaustive, budget=budget,
                              max_concurrent=settings.max_concurrent)
    metric, mode = watched(settings)
    if settings.pruner == "asha":
        scheduler = AshaPruningScheduler(handle, metric, max_t=settings.max_evals or expected_evals(space))
    else:
        scheduler = OptunaPruningScheduler(handle, metric, settings.pruner)
    scheduler.budget = budget  # the same budget: once spent, queued trials never start
    results = ResultsCallback(run_dir, run_id, handle, metric, mode)
    if settings.max_concurrent == 1:
        # One trial at a time: settle every end before the sampler decides, so the same seed makes the same
        # choices. With several at once the order of ends is timing anyway, and the writer keeps batching.
        searcher.settle = results.settle
    progress = ProgressCallback(handle, settings.trials, interval_s=request.progress_interval_s)
    callbacks = [results, progress, CheckpointRetention(keep=2, finished=getattr(settings, "keep_checkpoints", "best"),
                                                        metric=C.report_key(metric), mode=mode)]
    if is_uri(run_dir):
        callbacks.append(JournalMirror(run_dir, run_id))
    return searcher, scheduler, callbacks, handle


def watched(settings) -> tuple[str, str]:
    """The (metric, mode) Tune and the pruners watch: the objective, or ``metric`` beside several objectives."""
    objectives = settings.objectives or ((settings.metric, settings.mode),)
    return tuple(objectives[0]) if len(objectives) == 1 else (settings.metric, settings.mode)


def make_tuner(trainable, searcher, scheduler, callbacks, settings, run_dir: str, max_failures: int):
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    # Tune's own per-trial progress.csv and result.json (what ExperimentAnalysis reads); not its TensorBoardX
    # logger (see init_ray): the trials write their own TensorBoard files.
    callbacks = [*callbacks, CSVLoggerCallback(), JsonLoggerCallback()]

    storage, name = os.path.split(run_dir.rstrip("/")) if not is_uri(run_dir) else run_dir.rstrip("/").rsplit("/", 1)
    metric, mode = watched(settings)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    # one Ray trial per replicate of every configuration
                                    # (and as many matched baselines at most: the searcher stops first)
                                    num_samples=settings.trials * getattr(settings, "repeats", 1)
                                    * (2 if getattr(settings, "baselines", None) == "matched" else 1),
                                    # max_concurrent: the searcher caps it (see OptunaSearcher._live)
                                    metric=C.report_key(metric), mode=mode,
                                    # a new worker process per trial costs seconds (torch imports); trials
                                    # of the same resources reuse one, its state reset by Tune
                                    reuse_actors=True),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, callbacks=callbacks, verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            # every checkpoint: CheckpointRetention (in callbacks) deletes old ones, never one a resume needs
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            sync_config=tune.SyncConfig(sync_artifacts=True),
        ),
    )


def pending_trials(cluster: dict, cpus: float, gpus: float) -> int:
    """How many trials Tune may keep waiting for resources when no --max-concurrent caps the search.

    Tune lets a custom searcher without a concurrency cap keep only ONE trial pending, so an autoscaling
    cluster would add one node at a time; every pending trial's resource request is what makes the
    autoscaler add nodes, all at once. At least 16, and at least what the cluster holds now.
    """
    fit = [cluster.get("CPU", 0) / cpus if cpus else math.inf, cluster.get("GPU", 0) / gpus if gpus else math.inf]
    now = min(fit)
    return max(16, int(now) if math.isfinite(now) else 0)


def allow_pending(settings) -> None:
    """Without --max-concurrent, let Tune keep :func:`pending_trials` trials waiting (unless the user set
    TUNE_MAX_PENDING_TRIALS_PG)."""
    import ray

    if settings.max_concurrent is None:
        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(pending_trials(
            ray.cluster_resources(), settings.cpus_per_trial, settings.gpus_per_trial or 0)))


def check_shared_storage(run_dir: str, hosts: set[str], mounts: str) -> None:
    """Trials on several machines need storage they all see (a restarted trial reads its checkpoint from
    it): an object store, or a network filesystem. ``mounts`` is /proc/mounts of this machine."""
    if is_uri(run_dir) or len(hosts) < 2:
        return
    path, best, fstype = os.path.realpath(local_path(run_dir)), "", ""
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) >= 3 and (path == parts[1] or path.startswith(parts[1].rstrip("/") + "/")) \
                and len(parts[1]) > len(best):
            best, fstype = parts[1], parts[2]
    shared = fstype.startswith(("nfs", "cifs", "smb", "lustre", "fuse", "gpfs", "ceph", "glusterfs", "beegfs",
                                "efs", "9p", "virtiofs"))
    if not shared:
        raise UsageError(f"--storage {run_dir}: a folder on this machine ({fstype or 'local'}), but the Ray "
                         f"cluster spans {len(hosts)} machines; a trial restarted elsewhere would not find its "
                         "checkpoints: use s3://... (or gs://...) or a shared mount (NFS, EFS, ...)")


def trial_resources(settings) -> dict[str, float]:
    return {"cpu": float(settings.cpus_per_trial), "gpu": float(settings.gpus_per_trial or 0)}


def summarize(handle: StudyHandle, run_dir: str) -> SearchOutcome:
    """Counts by status and the best trial(s) of this search (warm-start trials and retried failures left
    out), and why it stopped asking if a budget ran out."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    from alchemy_tune.tuning.baselines import is_twin
    from alchemy_tune.tuning.study_attrs import DROPPED_ATTR
    from alchemy_tune.tuning.study_attrs import CONFIG_ATTR, RAY_ID_ATTR, STATUS_ATTR, STOPPED_ATTR

    counts: dict[str, int] = {}
    twins: dict[str, int] = {}
    trials = []
    for t in handle.this_runs_trials():
        status = t.user_attrs.get(STATUS_ATTR, "running" if not t.state.is_finished() else t.state.name.lower())
        tally = twins if is_twin(t) else counts
        tally[status] = tally.get(status, 0) + 1
        if not is_twin(t):
            trials.append(t)  # the best is among the sampled configurations
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    signs = [1 if d == StudyDirection.MAXIMIZE else -1 for d in handle.study.directions]
    scored = [(t, [s * v for s, v in zip(signs, t.values)]) for t in complete]
    # the Pareto front (one objective: the best trial; ties keep the first)
    chosen = [t for t, v in scored if not any(all(a >= b for a, b in zip(w, v)) and w != v for _, w in scored)]
    if not handle.multi_objective:
        chosen = chosen[:1]
    best = [{"number": t.number, "ray_trial_id": t.user_attrs.get(RAY_ID_ATTR), "values": t.values,
             "config": t.user_attrs.get(CONFIG_ATTR)} for t in chosen]
    metrics = tuple(handle.objective_metrics)
    return SearchOutcome(run_dir=run_dir, counts=counts, best=best, metrics=metrics, repeats=handle.repeats,
                         oracle=any(C.selects_on_test(m) for m in metrics), baselines=twins,
                         stop_reason=handle.study.user_attrs.get(STOPPED_ATTR),
                         not_started=int(handle.study.user_attrs.get(DROPPED_ATTR, 0)))


def run_search(request: SearchRequest) -> SearchOutcome:
    """Validate, start (or join) Ray, run the search to the end and return its summary. A failure before
    the first trial starts removes the run folder it made, so the name stays free."""
    from alchemy_tune.results.run_record import new_run_dir

    from alchemy_tune.tuning.driver_lock import DriverLock
    from alchemy_tune.tuning.run_folder import exists, forget_abandoned, remove

    space, settings, enqueued = validate(request)
    name = run_name(request.name) if request.name else f"search-{_timestamp()}"
    taken = "continue it with `alchemy-tune resume {run_dir}` or choose another --name"
    run_dir = new_run_dir(request.storage, name, taken)
    existed = exists(run_dir)
    lock = DriverLock(run_dir, f"alchemy-tune {request.kind}")
    try:
        lock.__enter__()  # before anything is written: a second driver with the same name stops here
    except BaseException:
        if not existed:
            remove(run_dir)
        raise
    try:
        try:
            forget_abandoned(run_dir)
            new_run_dir(request.storage, name, taken)  # again, under the lock: one that won the race ran it
            tuner, handle, journal = _start(request, space, settings, enqueued, run_dir)
        except BaseException:
            if not existed:
                remove(run_dir)
            raise
        return fit_and_summarize(tuner, handle, run_dir, journal)
    finally:
        lock.__exit__()


def _start(request: SearchRequest, space, settings, enqueued, run_dir: str):
    """Write the run's record, build the study, searcher and callbacks, and the Tuner: (tuner, handle,
    journal). Nothing here trains."""
    from alchemy_tune.results.run_record import RunRecord
    # what needs Optuna and Ray from here on: the checks above answer a bad flag before these imports
    from alchemy_tune.tuning.journal import journal_location
    from alchemy_tune.tuning.trainable import make_trainable
    from alchemy_tune.tuning.warm_start import enqueue, warm_start

    init_ray(request.address, request.num_cpus)
    check_resources(settings.cpus_per_trial, settings.gpus_per_trial or 0, local=request.address is None,
                    wait_s=request.node_wait_s)
    import ray

    check_shared_storage(run_dir, {n.get("NodeManagerAddress") for n in ray.nodes() if n.get("Alive")},
                         Path("/proc/mounts").read_text() if Path("/proc/mounts").exists() else "")
    allow_pending(settings)
    journal = journal_location(run_dir)
    if is_uri(run_dir) and os.path.exists(journal):
        # This machine's copy of the journal of an earlier run at the same address, whose folder has gone
        # (deleted, bucket emptied): not this run's study. Kept aside, never continued.
        stale = f"{journal}.stale-{_timestamp()}"
        os.replace(journal, stale)
        print(f"note: {run_dir} is a new run, but this machine kept the journal of an earlier run there; "
              f"moved it to {stale}", file=sys.stderr, flush=True)
    metric, mode = watched(settings)
    record = RunRecord.new(
        request.kind, **request.meta, settings=settings, task=space.fixed().get("task"), space=str(space.path) if space.path else None,
        params=dict(request.params or {}), trial_fn=request.trial_fn, max_failures=request.max_failures,
        space_params=space.summary(),  # what the analysis reads of the space, without the tuning layer
        time_budget_s=request.time_budget_s, gpu_hours=request.gpu_hours,
        path=run_dir,  # where it began: `resume` notices a local run folder that moved
    ).write(run_dir)
    searcher, scheduler, callbacks, handle = build_components(space, settings, run_dir, record.run_id, request,
                                                              journal)
    enqueue(handle, enqueued)
    if request.warm_start:
        told, skipped = warm_start(handle, space, request.warm_start)
        print(f"warm start: {told} completed trial(s) of {request.warm_start} told to the study"
              + (f", {skipped} skipped (not in this space)" if skipped else ""), flush=True)
    trainable = make_trainable(request.trial_fn, trial_resources(settings), selection=(metric, mode))
    tuner = make_tuner(trainable, searcher, scheduler, callbacks, settings, run_dir, request.max_failures)
    cluster = ray.cluster_resources()
    reps = handle.replication.describe() + (" and data seeds" if handle.repeats > 1 and handle.replicate_data else "")
    oracle = " [ORACLE: selects on test-language dev data]" if C.is_oracle(metric) else ""
    twins = " (+ a plain fine-tuning twin for each with the URIEL loss)" if handle.matched_baselines else ""
    from alchemy_tune.tuning.checks import grid_note
    from alchemy_tune.tuning.samplers import sampler_kind

    note = grid_note(space, settings) if sampler_kind(settings.sampler).fixed_order and not request.configs else None
    if note:  # said before anything trains: which part of the grid runs, and whether a verdict can follow
        print(f"note: {note}", flush=True)
    print(f"search {run_dir}: {settings.trials} configurations{reps}{twins}, selection {metric}{oracle}, "
          f"{settings.sampler} sampler, {settings.pruner} pruner, "
          f"{settings.cpus_per_trial:g} CPU + {settings.gpus_per_trial or 0:g} GPU per trial, at most "
          f"{settings.max_concurrent or 'as many as fit'} at once; Ray has {cluster.get('CPU', 0):g} CPU, "
          f"{cluster.get('GPU', 0):g} GPU", flush=True)
    return tuner, handle, journal


def fit_and_summarize(tuner, handle: StudyHandle, run_dir: str, journal: str) -> SearchOutcome:
    """Run the Tuner to the end, publish the study file, and summarise (shared by search and resume)."""
    from alchemy_tune.tuning.journal import upload

    started = time.perf_counter()
    from alchemy_tune.tuning.interrupts import Interrupts

    with Interrupts() as interrupts:
        tuner.fit()
    upload(run_dir, journal)
    outcome = summarize(handle, run_dir)
    outcome.wall_seconds = time.perf_counter() - started
    # Tune's own SIGINT handler ends the loop, saves its state and returns (marking the trials it stopped
    # terminated): trials the study still holds unfinished say the search did not run to its end
    unfinished = outcome.counts.get("running", 0) + outcome.baselines.get("running", 0)
    if unfinished and not outcome.stop_reason:
        outcome.interrupted = interrupts.code
    return outcome


def _timestamp() -> str:
    import datetime as _dt

    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
