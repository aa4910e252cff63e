"""Optuna pruners that really stop Ray Tune trials.

Ray's searchers cannot stop a running trial; only a Tune ``TrialScheduler`` can. So pruning lives in
:class:`OptunaPruningScheduler`: on every result it reports the trial's dev metric to its Optuna trial
(``Trial.report``), asks the study's pruner (``Trial.should_prune``) and answers ``STOP`` when it says so.
The Optuna trial is marked with the step it was pruned at; :class:`~alchemy_tune.optuna_searcher.OptunaSearcher`
then tells Optuna ``PRUNED``, and the results record ``pruned`` with that step.

Intermediate values are keyed by the evaluation index (1, 2, ...), not the optimiser step, so trials with
different batch sizes are compared at the same amount of data seen (evals happen at fixed fractions of
an epoch). Wilcoxon is different by design: it pairs *instances*, so each evaluation reports one value
per language of the objective's group (unseen languages for ``dev_unseen``) at step
``eval_index * WILCOXON_STRIDE + language_index``; a trial is then compared with the best trial language by
language at the same evaluation points.

``asha`` is Ray's own ``AsyncHyperBandScheduler`` with the same bookkeeping.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import optuna
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from . import constants as C
from .errors import UsageError

logger = logging.getLogger(__name__)

PRUNERS = ("none", "median", "percentile", "successive-halving", "hyperband", "threshold", "patient",
           "wilcoxon", "asha")
# Languages per evaluation are far fewer than this, so (eval, language) pairs never collide.
WILCOXON_STRIDE = 1000
PRUNED_AT_ATTR = "pruned_at_step"
PRUNED_BY_ATTR = "pruned_by"
EVAL_INDEX = "training_iteration"  # Ray counts reports per trial, checkpoint restores included


def build_pruner(name: str, *, mode: str = "max", n_startup_trials: int = 2, n_warmup_steps: int = 1,
                 options: Mapping[str, Any] | None = None) -> optuna.pruners.BasePruner:
    """The Optuna pruner called ``name`` (``asha`` and ``none`` give a ``NopPruner``).

    ``options`` are passed to the pruner's constructor (e.g. ``{"percentile": 25}``).
    """
    options = dict(options or {})
    if name not in PRUNERS:
        raise UsageError(f"pruner: {name!r} is not one of {', '.join(PRUNERS)}")
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
        return optuna.pruners.WilcoxonPruner(**{"p_threshold": 0.1, "n_startup_steps": 2, **options})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"pruner {name!r}: bad option(s) {options} ({exc})") from None


def objective_langs(report: Mapping[str, Any], metric: str) -> list[tuple[str, float]]:
    """Per-language dev scores of the objective's group, sorted by language code (stable pairing).

    ``dev_select`` is the seen and validation languages; ``oracle_dev_unseen`` the test languages."""
    split, _, group = C.report_key(metric).partition("_")
    roles = C.SELECT_ROLES if metric == C.SELECT else C.ROLES if group == "all" else (group,)
    primary = report.get(C.PRIMARY_METRIC)
    pairs = []
    for lang, info in sorted((report.get(C.LANGS) or {}).items()):
        if not isinstance(info, Mapping) or C.lang_role(info) not in roles:
            continue
        value = (info.get(split) or {}).get(primary)
        if isinstance(value, (int, float)):
            pairs.append((lang, float(value)))
    return pairs


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _PruningMixin:
    """Reports each result to Optuna, asks its pruner, and marks the Optuna trial when a trial is stopped."""

    def _setup(self, study_handle, metric: str, per_language: bool) -> None:
        self._handle = study_handle
        self._metric_name = metric
        self._per_language = per_language

    def _report_and_ask(self, trial_id: str, result: Mapping[str, Any]) -> bool:
        """Report ``result`` to the trial's Optuna trial; True if its pruner says stop."""
        if result.get(C.STATUS) == C.DIVERGED:
            return False  # it ends by itself and keeps its own status (and its NaN stays out of the curves)
        frozen = self._handle.frozen(trial_id)
        if frozen is None:
            return False
        if frozen.state.is_finished() or (self._handle.repeats > 1 and PRUNED_AT_ATTR in frozen.user_attrs):
            # Already told (a resumed driver re-running a trial Tune had not yet recorded as ended), or a
            # replicate of a pruned configuration: stop it; its status stays what the study says.
            return True
        if self._handle.multi_objective:
            return False  # Optuna has no intermediate values for multi-objective studies
        otrial = self._handle.optuna_trial(trial_id)
        eval_index = int(result.get(EVAL_INDEX) or 1)
        if self._per_language:
            values = {eval_index * WILCOXON_STRIDE + i: v
                      for i, (_, v) in enumerate(objective_langs(result, self._metric_name))}
        else:
            value = result.get(C.report_key(self._metric_name))
            # Median/Percentile/Threshold treat NaN as worse than anything
            values = {eval_index: float(value) if _finite(value) else float("nan")}
        if self._handle.repeats > 1:  # the configuration's mean over its replicates
            values = self._handle.aggregate(trial_id, eval_index, values)
            if values is None:
                return False  # waiting for the other replicates at this evaluation
        for step, value in values.items():
            if step not in frozen.intermediate_values:  # a trial restored from a checkpoint repeats steps
                otrial.report(value, step)
        # The final evaluation is reported (later trials are compared with it) but never pruned.
        ending = result.get(C.STATUS) == C.COMPLETED or result.get("done")
        return not ending and bool(otrial.should_prune())

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
                self._mark_pruned(trial.trial_id, result, self._pruner_name)
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
        if result.get(C.STATUS) == C.DIVERGED or not _finite(result.get(C.report_key(self._metric_name))):
            return TrialScheduler.CONTINUE  # ASHA cannot rank NaN; the trial ends as diverged by itself
        self._report_and_ask(trial.trial_id, result)  # the curves, for the dashboard; ASHA decides
        decision = AsyncHyperBandScheduler.on_trial_result(self, tune_controller, trial, result)
        if decision == TrialScheduler.STOP and not result.get("done"):
            self._mark_pruned(trial.trial_id, result, "asha")
        return decision
