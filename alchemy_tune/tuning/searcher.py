"""The Optuna side of the search: a study in a JournalStorage file, driven by a Ray Tune ``Searcher``.

We own the study rather than use Ray's ``OptunaSearch`` because pruning needs the same study from a Tune
scheduler (see :mod:`alchemy_tune.tuning.pruning`) and a restarted driver must find its trials again. The study is
the single source of truth: every Optuna trial carries its Ray trial id and its full config in
``user_attrs``, so a new driver process maps Ray trials back to Optuna trials by reading the journal, and
nothing of the study is pickled with Tune's own state.

Invariants: each Ray trial has exactly one Optuna trial; each Optuna trial is told exactly once
(``tell(skip_if_finished=True)`` plus a state check), and only after the results tables hold its end, so a
study never knows more than the tables (:class:`alchemy_tune.tuning.trial_end.ResultsCallback`). An Optuna trial that a killed driver asked for but Tune
never recorded (an "orphan") is handed to the next Ray trial instead of asking a new one. Ray's trial ids
are 8 random hex characters: a new id that the study already holds is refused (Tune then asks again with a
fresh id), so two Ray trials never share an Optuna trial.

How trials end in Optuna: completed -> COMPLETE with the objective(s); pruned -> PRUNED (its value is the
last reported objective); diverged (NaN/inf loss) -> PRUNED too, so samplers learn to avoid the region
(TPE ignores FAIL trials): its value is its last finite objective, if it had one; failed -> FAIL. The
alchemy status (``alchemy_status``) tells diverged from pruned.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import Searcher

from alchemy_tune.tuning.study_attrs import (
    CONFIG_ATTR, ORPHAN_ATTR, PREVIOUS_IDS_ATTR, PRUNED_AT_ATTR, PRUNED_BY_ATTR, RAY_ID_ATTR, REASON_ATTR,
    RETRY_OF_ATTR, STATUS_ATTR, STOPPED_ATTR, WARM_ATTR
)
from alchemy_tune.tuning import baselines, replicates
from alchemy_tune.tuning.replication import replication
from alchemy_tune.tuning.journal import (drop_dangling_lock, journal_location, relocated, repair_cut_tail,
                                         restored_unfinished)
from alchemy_tune.tuning.pruning import build_pruner
from alchemy_tune.tuning.samplers import build_sampler

logger = logging.getLogger(__name__)

STUDY_NAME = "alchemy-tune"


class StudyHandle:
    """Opens the study lazily (so it pickles as a few strings) and maps Ray trial ids to Optuna trials."""

    repeats = 1  # also what a handle pickled by an older version (a resumed run's Tune state) reads
    replicate_data = False  # likewise: runs made before the setting kept the data seed fixed
    matched_baselines = False

    @classmethod
    def for_settings(cls, journal_path: str, settings, *, run_dir: str | None = None,
                     run_id: str | None = None) -> "StudyHandle":
        """The study of a search with these :class:`~alchemy_tune.core.settings.SearchSettings`: the one way
        a search, its resume and its extension open it, so the three never disagree."""
        objectives = [tuple(o) for o in (settings.objectives or ((settings.metric, settings.mode),))]
        return cls(journal_path, objectives=objectives, sampler=settings.sampler, pruner=settings.pruner,
                   seed=settings.seed, concurrent=settings.max_concurrent or 0,  # 0 = unlimited
                   pruner_options=settings.pruner_options, n_startup_trials=settings.n_startup_trials,
                   run_dir=run_dir, repeats=settings.repeats, run_id=run_id,
                   replicate_data=getattr(settings, "replicate_data", False),
                   baselines=getattr(settings, "baselines", None) == "matched")

    def __init__(self, journal_path: str, *, objectives: Sequence[tuple[str, str]], sampler: str, pruner: str,
                 seed: int | None, concurrent: int = 1, pruner_options: Mapping[str, Any] | None = None,
                 n_startup_trials: int | None = None, run_dir: str | None = None, repeats: int = 1,
                 run_id: str | None = None, baselines: bool = False, replicate_data: bool = False):
        self.journal_path = str(journal_path)
        self.matched_baselines = bool(baselines)
        """Every sampled configuration with the URIEL loss gets its plain fine-tuning twin (baselines.py)."""
        self.repeats = int(repeats)
        """Ray trials (training seeds) per configuration."""
        self.replicate_data = bool(replicate_data)
        """Replicate r also trains on data seed data_seed + r (:func:`alchemy_tune.tuning.replicates.seeded`)."""
        self.replication = replication(self.repeats)
        """One Ray trial per configuration, or replicates: chosen here, once (:mod:`alchemy_tune.tuning.replication`)."""
        self.run_dir, self.run_id = run_dir, run_id
        self.objective_metrics = tuple(m for m, _ in objectives)
        self.directions = [("maximize" if d == "max" else "minimize") for _, d in objectives]
        self.metric = self.objective_metrics[0]
        self.sampler_name, self.pruner_name, self.seed = sampler, pruner, seed
        self.concurrent = concurrent
        self.pruner_options = dict(pruner_options or {})
        self.n_startup_trials = n_startup_trials
        self._reset()
        self.moved = False
        """Unpickled by a resumed Tune from a run folder that has moved since (see OptunaSearcher.suggest)."""

    def _reset(self) -> None:
        """Forget the opened study (it is reopened from the journal on first use)."""
        self._study: optuna.Study | None = None
        # Optuna keeps its storage and the study's id private, so the handle keeps its own references.
        self._store: JournalStorage | None = None
        self._study_id: int | None = None
        self._ids: dict[str, int] = {}  # ray trial id -> optuna trial number
        self._storage_ids: dict[int, int] = {}  # optuna trial number -> the storage's trial id (never changes)
        # One driver writes the study, and every Ray id it gives a trial it also binds here (ask, retry,
        # replicates, adopt_orphan): after one full scan of what earlier drivers left, nothing needs scanning
        # again, and the trial count follows this driver's asks. So the cost of a new trial stays flat.
        self._scanned = False
        self._n: int | None = None  # n_trials, once counted
        self._retried: set[int] = set()  # numbers of failed trials that were retried (they no longer count)
        self._retry_scanned = 0
        self._orphans = True  # orphans may exist (only mark_orphans makes them; unknown until one look)
        self._twins: dict[str, int] | None = None  # twin key -> trial number (baselines.known)
        self._served: dict[int, set[int]] | None = None  # twin number -> the configurations it serves

    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_study", "_store", "_study_id", "_ids", "_storage_ids", "_scanned", "_n", "_retried",
                    "_retry_scanned", "_orphans", "_twins", "_served"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self._reset()
        self.__dict__.update({k: v for k, v in state.items() if k not in ("_study", "_ids")})
        if "replication" not in state:  # pickled before the replication was an object of its own
            self.replication = replication(self.repeats)
        if self.run_dir:
            # A resumed search may run on another machine (an object store's journal mirror lives in this
            # machine's cache) or from a local run folder that was moved since the search began.
            now = relocated(getattr(self, "run_id", None), self.run_dir)
            self.moved = now != self.run_dir
            self.run_dir, self.journal_path = now, journal_location(now)

    @property
    def twins(self) -> dict[str, int]:
        """{twin key: trial number} of the study's matched baselines, read once, then kept by this driver."""
        if self._twins is None:
            self._twins, self._served = baselines.known(self)
        return self._twins

    @property
    def served(self) -> dict[int, set[int]]:
        """{twin number: the configurations it serves}, read with :attr:`twins`."""
        if self._served is None:
            self._twins, self._served = baselines.known(self)
        return self._served

    def orphans_waiting(self) -> None:
        """An unclaimed trial was added (a twin): the next new Ray trial looks for it."""
        self._orphans = True

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            Path(self.journal_path).parent.mkdir(parents=True, exist_ok=True)
            drop_dangling_lock(self.journal_path)
            repair_cut_tail(self.journal_path)  # else Optuna's next append glues onto the cut line
            storage = JournalStorage(JournalFileBackend(self.journal_path))
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            # TPE's `group`, BruteForce, Patient and Wilcoxon are "experimental" in Optuna; chosen knowingly.
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            sampler = build_sampler(self.sampler_name, seed=self.seed, n_objectives=len(self.directions),
                                    concurrent=self.concurrent, n_startup_trials=self.n_startup_trials)
            mode = "max" if self.directions[0] == "maximize" else "min"
            pruner = build_pruner(self.pruner_name, mode=mode, options=self.pruner_options)
            self._study = optuna.create_study(storage=storage, study_name=STUDY_NAME, directions=self.directions,
                                              sampler=sampler, pruner=pruner, load_if_exists=True)
            self._store, self._study_id = storage, storage.get_study_id_from_name(STUDY_NAME)
            n_existing = len(self._study.get_trials(deepcopy=False))
            if n_existing and self.seed is not None:
                # A re-opened study (a resumed search) must not replay the seeded draws it already made.
                self._study.sampler = build_sampler(
                    self.sampler_name, seed=self.seed + n_existing, n_objectives=len(self.directions),
                    concurrent=self.concurrent, n_startup_trials=self.n_startup_trials)
        return self._study

    # ------------------------------------------------------------------ lookup (by trial number)
    def _storage_id(self, number: int) -> int:
        """The storage's id of trial ``number``, through the storage's public lookup."""
        if number not in self._storage_ids:
            self.study  # opens the storage
            self._storage_ids[number] = self._store.get_trial_id_from_study_id_trial_number(self._study_id,
                                                                                            number)
        return self._storage_ids[number]

    def get_trial(self, number: int) -> optuna.trial.FrozenTrial:
        """Trial ``number`` as the journal holds it now (one trial, not the whole study)."""
        storage_id = self._storage_id(number)  # opens the study first
        return self._store.get_trial(storage_id)

    def set_user_attr(self, number: int, key: str, value: Any) -> None:
        """Set a user attribute of trial ``number``, running or not (``optuna.Trial`` only reaches running
        trials this process asked for)."""
        storage_id = self._storage_id(number)
        self._store.set_trial_user_attr(storage_id, key, value)

    def bind(self, ray_id: str, number: int) -> None:
        """Remember that the Ray trial ``ray_id`` runs (a replicate of) Optuna trial ``number``."""
        self._ids[ray_id] = number

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for t in self.study.get_trials(deepcopy=False):
            rid = t.user_attrs.get(RAY_ID_ATTR)
            if rid:
                self._ids[rid] = t.number
            for key, value in t.user_attrs.items():  # every replicate maps to its configuration
                if value and key.startswith(replicates.RAY_ID_PREFIX):
                    self._ids[value] = t.number

    def number_of(self, ray_id: str) -> int | None:
        """The Optuna trial number of a Ray trial (a replicate's: its configuration's); None if unknown."""
        if ray_id not in self._ids:
            self._scan()
        return self._ids.get(ray_id)

    def knows(self, ray_id: str) -> bool:
        """Whether a trial of the study (this run or an earlier driver's) carries this Ray id."""
        return self.number_of(ray_id) is not None

    def optuna_trial(self, ray_id: str) -> optuna.Trial | None:
        number = self.number_of(ray_id)
        return None if number is None else optuna.Trial(self.study, self._storage_id(number))

    def frozen(self, ray_id: str) -> optuna.trial.FrozenTrial | None:
        number = self.number_of(ray_id)
        return None if number is None else self.get_trial(number)

    def set_trial_attr(self, ray_id: str, key: str, value: Any) -> None:
        number = self.number_of(ray_id)
        if number is not None and not self.get_trial(number).state.is_finished():
            self.set_user_attr(number, key, value)

    # ------------------------------------------------------------------ trial life
    def n_trials(self) -> int:
        """Trials that count toward the search's ``trials``: asked by this search (enqueued ones once asked),
        not told from an earlier run (warm start) and not a failed attempt that was retried.

        Asked before every new trial, so it is counted once and then follows this driver's asks: each
        :meth:`ask` adds one (an enqueued trial counts once asked), a :meth:`retry` adds a trial and retires
        one. A fresh driver counts again (``this_runs_trials``)."""
        if self._n is None:  # twins come on top of the sampled configurations
            self._n = sum(not baselines.is_twin(t) for t in self.this_runs_trials())
        return self._n

    def mark_orphans(self, known_ray_ids: set[str]) -> int:
        """Flag unfinished Optuna trials that no Ray trial will ever continue; returns how many."""
        n = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            if t.user_attrs.get(RAY_ID_ATTR) not in known_ray_ids and t.state == TrialState.RUNNING:
                self.set_user_attr(t.number, ORPHAN_ATTR, True)
                n += 1
        self._orphans = self._orphans or n > 0
        return n

    def adopt_orphan(self, ray_id: str) -> dict | None:
        """Hand an orphan to the new Ray trial ``ray_id``; its config, or None if there is no orphan.

        The new Ray trial starts from scratch: a pruning decision the dead driver took is forgotten, and the
        old Ray id is kept in ``previous_ray_trial_ids`` so its rows in the results can be dropped.
        """
        if not self._orphans:  # none left at the last look, and only mark_orphans makes new ones
            return None
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get(ORPHAN_ATTR) and CONFIG_ATTR in t.user_attrs:
                self.set_user_attr(t.number, ORPHAN_ATTR, False)
                old = t.user_attrs.get(RAY_ID_ATTR)
                if old:
                    self.set_user_attr(t.number, PREVIOUS_IDS_ATTR, [*t.user_attrs.get(PREVIOUS_IDS_ATTR, []), old])
                    self._ids.pop(old, None)
                if t.user_attrs.get(PRUNED_BY_ATTR) is not None:
                    self.set_user_attr(t.number, PRUNED_BY_ATTR, None)
                    self.set_user_attr(t.number, PRUNED_AT_ATTR, None)
                self.set_user_attr(t.number, RAY_ID_ATTR, ray_id)
                self.bind(ray_id, t.number)
                return dict(t.user_attrs[CONFIG_ATTR])
        self._orphans = False
        return None

    def previous_ids(self, ray_id: str) -> list[str]:
        frozen = self.frozen(ray_id)
        return list(frozen.user_attrs.get(PREVIOUS_IDS_ATTR, [])) if frozen is not None else []

    def retry(self, ray_id: str, space) -> None:
        """A failed Ray trial is run again: give it a fresh Optuna trial with the same parameters (the old
        one stays FAIL, flagged ``retried_as``, and no longer counts)."""
        old = self.frozen(ray_id)
        if old is None or old.state != TrialState.FAIL:
            return
        if baselines.is_twin(old):  # it has no sampled parameters: the same twin again, nothing asked
            self._retried.add(old.number)
            self.bind(ray_id, baselines.retry_twin(self, old, ray_id))
            return
        self.study.enqueue_trial(old.params, skip_if_exists=False)
        trial = self.study.ask()
        space.suggest(trial)
        trial.set_user_attr(RAY_ID_ATTR, ray_id)
        trial.set_user_attr(CONFIG_ATTR, old.user_attrs.get(CONFIG_ATTR))
        trial.set_user_attr(RETRY_OF_ATTR, old.number)  # a finished trial's attributes are frozen
        self._retried.add(old.number)
        self.bind(ray_id, trial.number)

    def this_runs_trials(self, *, warm: bool = False) -> list[optuna.trial.FrozenTrial]:
        """The study's trials of this search: no retried failures, no waiting ones, and no warm-start trials
        unless ``warm``."""
        trials = self.study.get_trials(deepcopy=False)
        for t in trials[self._retry_scanned:]:  # retry links are set when a trial is created (see _scan)
            if RETRY_OF_ATTR in t.user_attrs:
                self._retried.add(t.user_attrs[RETRY_OF_ATTR])
        self._retry_scanned = len(trials)
        retried = self._retried
        return [t for t in trials if t.state != TrialState.WAITING and t.number not in retried
                and (warm or WARM_ATTR not in t.user_attrs)]

    def ask(self, ray_id: str, space) -> dict:
        trial = self.study.ask()
        if self._n is not None:
            self._n += 1
        config = space.suggest(trial)
        trial.set_user_attr(RAY_ID_ATTR, ray_id)
        trial.set_user_attr(CONFIG_ATTR, config)
        self.bind(ray_id, trial.number)
        if self.matched_baselines:
            baselines.add_twin(self, trial.number, config)
        return config

    def ending(self, ray_id: str, result: Mapping[str, Any] | None,
               error: str | bool = False) -> tuple[str, str, int | None] | None:
        """How :meth:`finish` would record the trial's end, without recording it: (status, reason,
        pruned_at_step); None when unknown or already told. The results tables record the end with this
        first, and Optuna hears of it only once they hold it (:mod:`alchemy_tune.tuning.trial_end`), so a
        study that knows a trial ended never has tables that miss its end, however the driver dies."""
        return self.replication.ending(self, ray_id, result, error)

    def finish(self, ray_id: str, result: Mapping[str, Any] | None, error: str | bool = False) -> str | None:
        """Tell Optuna how the trial ended (once); returns the alchemy status, None if unknown/already told.

        With replicates, the status is the replicate's own, and Optuna is told when the last one ends."""
        return self.replication.finish(self, ray_id, result, error)

    def tell_end(self, number: int, status: str, state: TrialState, told, reason: str) -> None:
        """Tell Optuna trial ``number``'s end (once: a finished trial is skipped), with its alchemy status."""
        if reason:
            self.set_user_attr(number, REASON_ATTR, reason)
        self.set_user_attr(number, STATUS_ATTR, status)
        self.study.tell(number, told, state=state, skip_if_finished=True)


class OptunaSearcher(Searcher):
    """ask -> ``space.suggest`` -> Ray trial config; the results callback tells once the end is stored.

    At most ``n_trials`` trials of this search, and never more than ``grid`` holds (grid: served in
    order; bruteforce: its size caps the search). ``budget`` (a :class:`alchemy_tune.tuning.budget.Budget`) stops
    the asking when spent; trials already running finish.
    """

    def __init__(self, handle: StudyHandle, space, n_trials: int, grid: list[dict] | None = None,
                 exhaustive: int | None = None, budget=None, max_concurrent: int | None = None):
        super().__init__(metric=handle.metric, mode="max" if handle.directions[0] == "maximize" else "min")
        self.handle, self.space, self.n_trials = handle, space, int(n_trials)
        self.max_concurrent = max_concurrent or 0
        self._live: set[str] = set()
        """Ray trials suggested (or restored) and not yet complete. The searcher caps concurrency itself
        instead of Tune's ConcurrencyLimiter: the limiter's saved state can be newer than the experiment
        state a driver killed mid-upload leaves, and then names trials the restored Tune never runs, which
        hold their slots for ever (a resumed search that waits with nothing running)."""
        self.grid = grid
        self.exhaustive = exhaustive if grid is None else len(grid)
        self.budget = budget
        self.stop_reason: str | None = None
        self.settle = None
        """Called before each suggestion: the results callback's ``settle`` (every recorded end told)."""

    def __getstate__(self):
        # Tune pickles the searcher with its experiment state; the callback's writer is not to be pickled
        return {**self.__dict__, "settle": None}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # metric and mode come from the space's settings, fixed at construction

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.handle.knows(trial_id):
            # Ray's 8-hex-character id repeated one the study holds (likely at thousands of trials): None
            # makes Tune ask again under a fresh id instead of merging two trials.
            logger.warning("Ray trial id %s is already in the study; asking for another id", trial_id)
            return None
        if self.budget is not None and self.stop_reason is None:
            self.stop_reason = self.budget.spent()
            if self.stop_reason:
                self.handle.study.set_user_attr(STOPPED_ATTR, self.stop_reason)
        if self.settle is not None:
            self.settle()
        if self.stop_reason or self.handle.moved:
            # moved: Ray Tune's restored experiment would create new trials at the folder's old place (its
            # search generator keeps the storage path it began with); `resume` asks for them in a new one.
            return Searcher.FINISHED
        if self.max_concurrent and len(self._live) >= self.max_concurrent:
            return None  # Tune asks again once a trial completes
        config = self.handle.replication.suggest(self, trial_id)
        if config is None:
            return Searcher.FINISHED
        self._live.add(trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.budget is not None:
            self.budget.record(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        # Optuna is told by the results callback once the tables hold the trial's end (see trial_end.py)
        self._live.discard(trial_id)
        if self.budget is not None and result:
            self.budget.record(trial_id, result)

    # Tune saves searcher state periodically; ours is the journal, so there is nothing to write.
    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(self.handle.journal_path)

    def restore(self, checkpoint_path: str) -> None:
        # A resumed Tune runs its saved unfinished trials again without asking: they are the ones running.
        self._live = set(restored_unfinished(self.handle.run_id))
