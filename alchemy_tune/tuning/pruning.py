"""Optuna pruners that really stop Ray Tune trials.

Ray's searchers cannot stop a running trial; only a Tune ``TrialScheduler`` can. So pruning lives in
:class:`OptunaPruningScheduler`: on every result it reports the trial's dev metric to its Optuna trial
(``Trial.report``), asks the study's pruner (``Trial.should_prune``) and answers ``STOP`` when it says so.
The Optuna trial is marked with the step it was pruned at; :class:`~alchemy_tune.tuning.searcher.OptunaSearcher`
then tells Optuna ``PRUNED``, and the results record ``pruned`` with that step.

Intermediate values are keyed by the evaluation index (1, 2, ...), not the optimiser step, so trials with
different batch sizes are compared at the same amount of data seen (evals happen at fixed fractions of
an epoch). Every pruner, Wilcoxon included, gets the objective (a mean over languages) as its intermediate
value, so a pruned trial's value for the sampler is that mean. Wilcoxon pairs *instances*: each evaluation
also stores the objective group's per-language dev scores in one user attribute (``lang_scores:<eval>``:
one journal write, however many languages), and :class:`PerEvaluationWilcoxonPruner` compares them with
the best trial's scores *at the same evaluation* — the same languages repeat across evaluations, so pooling
evaluations would count each language several times.

Trials send their per-language scores through Tune as one JSON string (:func:`alchemy_tune.tuning.trainable.langs_of`);
a nested dict, or Tune's *flattened* form of one (``langs/<lang>/<split>/<metric>`` keys), is read as well
(:func:`objective_langs`).

``asha`` is Ray's own ``AsyncHyperBandScheduler`` with the same bookkeeping; a trial that reaches ASHA's
top rung (``max_t`` = the trial's last evaluation) or its own end is completed, not pruned.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import optuna
from optuna.study import StudyDirection
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from alchemy_tune.tuning.study_attrs import (
    DROPPED_ATTR, LANG_SCORES_ATTR, PRUNED_AT_ATTR, PRUNED_BY_ATTR, STOPPED_ATTR
)
from alchemy_tune.core import constants as C
from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.numbers import exact, is_finite_number
from alchemy_tune.core.settings import check_name
from alchemy_tune.tuning import baselines
from alchemy_tune.tuning.baselines import is_twin
from alchemy_tune.tuning.trainable import langs_of

logger = logging.getLogger(__name__)

EVAL_INDEX = "training_iteration"  # Ray counts reports per trial, checkpoint restores included


def build_pruner(name: str, *, mode: str = "max", n_startup_trials: int = 2, n_warmup_steps: int = 1,
                 options: Mapping[str, Any] | None = None) -> optuna.pruners.BasePruner:
    """The Optuna pruner called ``name`` (``asha`` and ``none`` give a ``NopPruner``).

    ``options`` are passed to the pruner's constructor (e.g. ``{"percentile": 25}``).
    """
    options = dict(options or {})
    check_name("pruner", name)
    try:
        if name in ("none", "asha"):
            return optuna.pruners.NopPruner()
        if name == "median":
            return optuna.pruners.MedianPruner(**{"n_startup_trials": n_startup_trials,
                                                  "n_warmup_steps": n_warmup_steps, **options})
        if name == "percentile":
            return optuna.pruners.PercentilePruner(**{"percentile": 25.0, "n_startup_trials": n_startup_trials,
                                                      "n_warmup_steps": n_warmup_steps, **options})
        if name == "successive-halving":
            return optuna.pruners.SuccessiveHalvingPruner(**{"min_resource": 1, "reduction_factor": 3, **options})
        if name == "hyperband":
            return optuna.pruners.HyperbandPruner(**{"min_resource": 1, "reduction_factor": 3, **options})
        if name == "threshold":
            # Scores are means of accuracy/F1/Pearson; a trial at or below 0 (or NaN) has learnt nothing.
            bound = {"lower": 0.0} if mode == "max" else {"upper": 1e9}
            return optuna.pruners.ThresholdPruner(**{**bound, "n_warmup_steps": n_warmup_steps, **options})
        if name == "patient":
            # Stop a trial whose metric has not improved for `patience` evaluations, after the median rule.
            inner = optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)
            return optuna.pruners.PatientPruner(inner, **{"patience": 1, **options})
        return PerEvaluationWilcoxonPruner(**{"p_threshold": 0.1, "n_startup_steps": 1, **options})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"pruner {name!r}: bad option(s) {options} ({exc})") from None


def _nested_langs(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """``report["langs"]``, rebuilt from Tune's flattened ``langs/<lang>/<key>/...`` keys when needed."""
    nested = langs_of(report)
    if isinstance(nested, Mapping):
        return nested
    out: dict[str, Any] = {}
    prefix = C.LANGS + "/"
    for key, value in report.items():
        if isinstance(key, str) and key.startswith(prefix):
            node = out
            *path, leaf = key[len(prefix):].split("/")
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = value
    return out


def objective_langs(report: Mapping[str, Any], metric: str) -> list[tuple[str, float]]:
    """Per-language dev scores of the objective's group, sorted by language code (stable pairing).

    ``dev_select`` is the seen and validation languages; ``oracle_dev_unseen`` the test languages.
    ``report`` is a trial's report, nested or flattened by Tune."""
    split, _, group = C.report_key(metric).partition("_")
    roles = C.SELECT_ROLES if metric == C.SELECT else C.ROLES if group == "all" else (group,)
    primary = report.get(C.PRIMARY_METRIC)
    pairs = []
    for lang, info in sorted(_nested_langs(report).items()):
        if not isinstance(info, Mapping) or C.lang_role(info) not in roles:
            continue
        value = (info.get(split) or {}).get(primary)
        if isinstance(value, (int, float)):
            pairs.append((lang, float(value)))
    return pairs


class PerEvaluationWilcoxonPruner(optuna.pruners.BasePruner):
    """Optuna's Wilcoxon rule, applied to one evaluation at a time.

    At the trial's latest evaluation e, its per-language scores (``lang_scores:<e>``) are paired with the
    best completed trial's scores at evaluation e; the trial is pruned when a one-sided Wilcoxon signed-rank
    test says it is worse (p < ``p_threshold``), unless its mean at e is at least the best trial's mean at e
    (the same safety rule as Optuna's, on like-for-like numbers). No pruning before evaluation
    ``n_startup_steps`` or with fewer than two paired languages.
    """

    def __init__(self, *, p_threshold: float = 0.1, n_startup_steps: int = 1):
        if not 0.0 < float(p_threshold) <= 1.0:
            raise ValueError(f"p_threshold must be in (0, 1], got {p_threshold}")
        if int(n_startup_steps) < 0:
            raise ValueError(f"n_startup_steps must be >= 0, got {n_startup_steps}")
        self._p_threshold, self._n_startup_steps = float(p_threshold), int(n_startup_steps)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        import numpy as np

        step = trial.last_step
        if step is None or step < self._n_startup_steps:
            return False
        mine = trial.user_attrs.get(f"{LANG_SCORES_ATTR}{step}")
        try:
            best = study.best_trial
        except ValueError:
            return False
        theirs = best.user_attrs.get(f"{LANG_SCORES_ATTR}{step}")
        if not isinstance(mine, Mapping) or not isinstance(theirs, Mapping):
            return False
        common = sorted(set(mine) & set(theirs))
        if len(common) < 2:
            return False
        a = np.array([mine[k] for k in common], dtype=float)
        b = np.array([theirs[k] for k in common], dtype=float)
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            return False
        maximize = study.direction == StudyDirection.MAXIMIZE
        if (a.mean() >= b.mean()) if maximize else (a.mean() <= b.mean()):
            return False
        return bool(wilcoxon_behind(a, b, maximize) < self._p_threshold)


def wilcoxon_behind(a, b, maximize: bool = True) -> float:
    """One-sided Wilcoxon signed-rank p that ``a`` is behind ``b`` (paired by language), on exact
    differences (so round-off neither creates a sign nor breaks a tie). Zeros split between the signs
    (``zsplit``: all-equal pairs give p near 1 instead of an error); the normal approximation with the tie
    correction, asked for by name: scipy's ``method="auto"`` changed its handling of zeros and ties
    between releases, so the pruner's decisions would depend on the scipy installed."""
    import numpy as np
    from scipy import stats

    d = exact(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))
    return float(stats.wilcoxon(d, alternative="less" if maximize else "greater", zero_method="zsplit",
                                method="approx").pvalue)


def ending(result: Mapping[str, Any]) -> bool:
    """The trial's own last report (it ran to its end), or Tune's final result."""
    return result.get(C.STATUS) == C.COMPLETED or bool(result.get("done"))


NOT_STARTED = "not started"
"""The alchemy status of a trial queued when a budget ran out: it never starts (Optuna: FAIL)."""


class _PruningMixin:
    """Reports each result to Optuna, asks its pruner, and marks the Optuna trial when a trial is stopped.
    With a ``budget``, once it is spent no queued trial starts (see :meth:`choose_trial_to_run`)."""

    budget = None
    _pruned_by = None

    def _setup(self, study_handle, metric: str, per_language: bool) -> None:
        self._handle = study_handle
        self._metric_name = metric
        self._per_language = per_language

    def choose_trial_to_run(self, tune_controller):
        """Tune asks before it starts a queued trial: once the budget is spent, every queued trial is
        stopped instead (Tune queues trials ahead of free resources, and they would all run past it)."""
        if self.budget is None or not self.budget.spent():
            return super().choose_trial_to_run(tune_controller)
        from ray.tune.experiment import Trial

        queued = [t for t in tune_controller.get_trials() if t.status == Trial.PENDING]
        for trial in queued:
            tune_controller.stop_trial(trial)
            frozen = self._handle.frozen(trial.trial_id)
            if frozen is not None and not frozen.state.is_finished() and self._handle.repeats == 1:
                self._handle.tell_end(frozen.number, NOT_STARTED, optuna.trial.TrialState.FAIL, None,
                                      f"queued when the budget was spent: {self.budget.spent()}")
        if queued:
            study = self._handle.study
            if study.user_attrs.get(STOPPED_ATTR) is None:
                study.set_user_attr(STOPPED_ATTR, self.budget.spent())
            study.set_user_attr(DROPPED_ATTR, int(study.user_attrs.get(DROPPED_ATTR, 0)) + len(queued))
            logger.info("budget spent: %d queued trial(s) not started", len(queued))
        return None

    def _report_and_ask(self, trial_id: str, result: Mapping[str, Any]) -> bool:
        """Report ``result`` to the trial's Optuna trial; True if its pruner says stop."""
        self._pruned_by = None  # who stops it, when not the pruner
        if result.get(C.STATUS) == C.DIVERGED:
            return False  # it ends by itself and keeps its own status (and its NaN stays out of the curves)
        frozen = self._handle.frozen(trial_id)
        if frozen is None:
            return False
        if frozen.state.is_finished() or self._handle.replication.stops_with_its_configuration(frozen):
            # Already told (a resumed driver re-running a trial Tune had not yet recorded as ended), or a
            # replicate of a pruned configuration: stop it; its status stays what the study says.
            return True
        if self._handle.multi_objective:
            return False  # Optuna has no intermediate values for multi-objective studies
        otrial = self._handle.optuna_trial(trial_id)
        eval_index = int(result.get(EVAL_INDEX) or 1)
        value = result.get(C.report_key(self._metric_name))
        # Median/Percentile/Threshold treat NaN as worse than anything
        values = {eval_index: float(value) if is_finite_number(value) else float("nan")}
        # with replicates: the configuration's mean over them, once each has reported this evaluation
        values = self._handle.replication.aggregate(self._handle, trial_id, eval_index, values)
        if values is None:
            return False  # waiting for the other replicates at this evaluation
        if eval_index not in frozen.intermediate_values:  # a trial restored from a checkpoint repeats steps
            if self._per_language:  # (under repeats: the scores of the replicate that completed the mean)
                scores = dict(objective_langs(result, self._metric_name))
                otrial.set_user_attr(f"{LANG_SCORES_ATTR}{eval_index}", scores)
            otrial.report(values[eval_index], eval_index)
        # The final evaluation is reported (later trials are compared with it) but never pruned; nor is a
        # matched baseline while a configuration it serves may complete (baselines.py).
        if is_twin(frozen):
            if not ending(result) and baselines.unneeded(self._handle, frozen):
                baselines.stop(self._handle, frozen)
                self._pruned_by = baselines.UNNEEDED
                return True
            return False
        return not ending(result) and bool(otrial.should_prune())

    def _mark_pruned(self, trial_id: str, result: Mapping[str, Any], by: str) -> None:
        step = result.get(C.STEP)
        self._handle.set_trial_attr(trial_id, PRUNED_AT_ATTR, int(step) if isinstance(step, int) else None)
        self._handle.set_trial_attr(trial_id, PRUNED_BY_ATTR, by)
        logger.info("trial %s pruned by %s at step %s", trial_id, by, step)


class OptunaPruningScheduler(_PruningMixin, FIFOScheduler):
    """FIFO order; stops a trial when the study's Optuna pruner says so."""

    def __init__(self, study_handle, metric: str, pruner_name: str):
        super().__init__()
        self._setup(study_handle, metric, per_language=pruner_name == "wilcoxon")
        self._pruner_name = pruner_name

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self._report_and_ask(trial.trial_id, result):
            frozen = self._handle.frozen(trial.trial_id)
            if not frozen.state.is_finished() and PRUNED_AT_ATTR not in frozen.user_attrs:
                self._mark_pruned(trial.trial_id, result, self._pruned_by or self._pruner_name)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


class AshaPruningScheduler(_PruningMixin, AsyncHyperBandScheduler):
    """Ray's ASHA deciding; Optuna still gets the curves and the PRUNED state."""

    def __init__(self, study_handle, metric: str, max_t: int, grace_period: int = 1, reduction_factor: float = 3):
        # metric and mode reach ASHA from TuneConfig (Tune refuses them twice)
        AsyncHyperBandScheduler.__init__(self, time_attr=EVAL_INDEX, max_t=max(max_t, grace_period),
                                         grace_period=grace_period,
                                         reduction_factor=reduction_factor)
        self._setup(study_handle, metric, per_language=False)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(C.STATUS) == C.DIVERGED or not is_finite_number(result.get(C.report_key(self._metric_name))):
            return TrialScheduler.CONTINUE  # ASHA cannot rank NaN; the trial ends as diverged by itself
        stop = self._report_and_ask(trial.trial_id, result)  # the curves, for the dashboard; ASHA decides
        if is_twin(self._handle.frozen(trial.trial_id)):  # a matched baseline: ASHA never stops it
            if stop and self._pruned_by:
                self._mark_pruned(trial.trial_id, result, self._pruned_by)
                return TrialScheduler.STOP
            return TrialScheduler.CONTINUE
        decision = AsyncHyperBandScheduler.on_trial_result(self, tune_controller, trial, result)
        # ASHA also says STOP at its top rung (max_t); a trial stopped there ran its whole budget.
        at_top = int(result.get(EVAL_INDEX) or 0) >= self._max_t
        if decision == TrialScheduler.STOP and not ending(result) and not at_top:
            self._mark_pruned(trial.trial_id, result, "asha")
        return decision
