"""Replicates: every sampled configuration runs as ``k`` Ray trials with training seeds seed, seed + 1, ...

One Optuna trial is one *configuration*; its ``k`` replicates are Ray trials that differ only in ``seed``,
and under the search setting ``replicate_data`` in ``data_seed`` too (replicate r: seed + r, data_seed + r,
each replicate on its own training subsets); without it every replicate trains on the same subsets. The sampler
and the pruners see one value per configuration:

- at evaluation ``i`` the configuration's intermediate value is the mean over its replicates' values at
  ``i``, reported to Optuna once every replicate still running has reported ``i`` (a replicate that
  ended early, e.g. diverged, no longer counts); the pruner then decides for the configuration;
- a pruned configuration stops all its replicates: the one that reported last at once, the others at
  their next evaluation, and replicates not started yet never start;
- when every replicate has ended, the Optuna trial is told once: COMPLETE with the mean of the completed
  replicates' final values, else PRUNED, diverged or failed.

Everything lives in the Optuna trial's user attributes (the journal), so a resumed driver continues from
it: ``ray_trial_id:<r>`` (the Ray trial of replicate r), ``replicate_reports:<r>`` ({evaluation: {step:
value}}) and ``replicate_end:<r>`` (how replicate r ended). Ray trial ids of all replicates map to the
configuration's Optuna trial (:meth:`StudyHandle._scan`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from optuna.trial import FrozenTrial, TrialState

from alchemy_tune.core import constants as C
from alchemy_tune.core.numbers import is_finite_number
from alchemy_tune.tuning.study_attrs import (
    CONFIG_ATTR, END_PREFIX, PRUNED_AT_ATTR, RAY_ID_PREFIX, REPLICATES_ATTR, REPORTS_PREFIX
)



def seeded(config: Mapping[str, Any], replicate: int, data: bool = False) -> dict:
    """The configuration's replicate ``replicate``: its training seed shifted by the replicate index, and
    with ``data`` its data seed too (the two move together, so replicate r of every configuration, its
    matched twin included, trains on the same subsets with the same seed)."""
    from alchemy_tune.trial.config import TrialConfig

    out = {**config, "seed": int(config.get("seed", TrialConfig.seed)) + int(replicate)}
    if data:
        out["data_seed"] = int(config.get("data_seed", TrialConfig.data_seed)) + int(replicate)
    return out


def replicate_of(frozen: FrozenTrial | None, ray_id: str) -> int | None:
    """Replicate index of ``ray_id`` in the configuration ``frozen``; None when it is not a replicate."""
    if frozen is None:
        return None
    for key, value in frozen.user_attrs.items():
        if key.startswith(RAY_ID_PREFIX) and value == ray_id:
            return int(key[len(RAY_ID_PREFIX):])
    return None


def identity(handle, ray_id: str) -> tuple[str, int, bool]:
    """(config_id, replicate, matched baseline?) of a Ray trial: its Optuna trial number as text; (ray_id, 0,
    False) when unknown (or when no study is attached, e.g. results recorded without a searcher)."""
    from alchemy_tune.tuning.baselines import is_twin

    frozen = handle.frozen(ray_id) if handle is not None else None
    if frozen is None:
        return str(ray_id), 0, False
    return str(frozen.number), replicate_of(frozen, ray_id) or 0, is_twin(frozen)


def ended(frozen: FrozenTrial | None, ray_id: str) -> dict | None:
    """How the replicate ``ray_id`` ended ({status, reason, pruned_at_step, values}), None if running."""
    r = replicate_of(frozen, ray_id)
    return None if r is None else frozen.user_attrs.get(f"{END_PREFIX}{r}")


# ---------------------------------------------------------------------------------------- searcher side
def suggest(handle, ray_id: str, space, n_configs: int, grid: list[dict] | None):
    """The config for a new Ray trial: a free replicate of an open configuration, else a new configuration.

    Returns None when every configuration is asked and has all its replicates handed out (the searcher
    then says FINISHED).
    """
    k, study = handle.repeats, handle.study
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if PRUNED_AT_ATTR in t.user_attrs or REPLICATES_ATTR not in t.user_attrs:
            continue
        free = [r for r in range(k) if not t.user_attrs.get(f"{RAY_ID_PREFIX}{r}")]
        if free:
            handle.set_user_attr(t.number, f"{RAY_ID_PREFIX}{free[0]}", ray_id)
            handle.bind(ray_id, t.number)
            return seeded(t.user_attrs[CONFIG_ATTR], free[0], handle.replicate_data)
    n = handle.n_trials()
    if n >= n_configs or (grid is not None and n >= len(grid)):
        return None
    if grid is not None:
        study.enqueue_trial(grid[n])
    config = handle.ask(ray_id, space)
    number = handle.number_of(ray_id)
    handle.set_user_attr(number, REPLICATES_ATTR, k)
    handle.set_user_attr(number, f"{RAY_ID_PREFIX}0", ray_id)
    return seeded(config, 0, handle.replicate_data)


def release_unknown(handle, known_ray_ids: set[str]) -> int:
    """Free replicate slots handed to Ray trials that Tune never recorded (a driver killed in between);
    the next new Ray trials take them over. Returns how many were freed."""
    n = 0
    for t in handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        for key, value in t.user_attrs.items():
            r = key[len(RAY_ID_PREFIX):] if key.startswith(RAY_ID_PREFIX) else None
            if r is not None and value and value not in known_ray_ids and f"{END_PREFIX}{r}" not in t.user_attrs:
                # the journal cannot delete an attribute: an empty id marks the slot free
                handle.set_user_attr(t.number, key, "")
                n += 1
    return n


def ending(handle, ray_id: str, result: Mapping[str, Any] | None, error: str | bool = False) -> dict | None:
    """How replicate ``ray_id`` ended ({status, reason, pruned_at_step, values}), recording nothing; None
    when unknown, removed before it ran, or already recorded."""
    frozen = handle.frozen(ray_id)
    r = replicate_of(frozen, ray_id)
    if r is None or frozen.state.is_finished() or f"{END_PREFIX}{r}" in frozen.user_attrs:
        return None
    if C.STEP not in (result or {}) and not error:
        return None  # removed before it ever ran
    result = result or {}
    values = [result.get(C.report_key(m)) for m in handle.objective_metrics]
    step = result.get(C.STEP)
    end: dict[str, Any] = {"status": C.COMPLETED, "reason": "", "pruned_at_step": None, "values": None}
    if error:
        end.update(status=C.FAILED, reason=str(error) if isinstance(error, str) else "error")
    elif PRUNED_AT_ATTR in frozen.user_attrs and result.get(C.STATUS) != C.COMPLETED:
        end.update(status=C.PRUNED, pruned_at_step=int(step) if isinstance(step, int) else None)
    elif result.get(C.STATUS) == C.DIVERGED:
        end.update(status=C.DIVERGED, reason=str(result.get(C.REASON) or "diverged"))
    elif values and all(is_finite_number(v) for v in values):
        end["values"] = [float(v) for v in values]
    else:
        end.update(status=C.FAILED, reason=f"no finite {', '.join(handle.objective_metrics)} reported")
    return end


def finish(handle, ray_id: str, result: Mapping[str, Any] | None, error: str | bool = False):
    """Record how replicate ``ray_id`` ended: (its status, the configuration's outcome or None).

    The outcome, once every replicate of the configuration has ended, is (status, Optuna state, values to
    tell or None, reason): COMPLETE with the mean of the completed replicates' final values, PRUNED when
    the configuration was pruned, else diverged/failed. (None, None) when unknown or already recorded.
    """
    end = ending(handle, ray_id, result, error)
    if end is None:
        return None, None
    frozen = handle.frozen(ray_id)
    handle.set_user_attr(frozen.number, f"{END_PREFIX}{replicate_of(frozen, ray_id)}", end)
    return end["status"], _outcome(handle, handle.get_trial(frozen.number))


def _outcome(handle, frozen: FrozenTrial):
    k = int(frozen.user_attrs.get(REPLICATES_ATTR, handle.repeats))
    pruned = PRUNED_AT_ATTR in frozen.user_attrs
    ends = {r: frozen.user_attrs.get(f"{END_PREFIX}{r}") for r in range(k)}
    started = {r for r in range(k) if frozen.user_attrs.get(f"{RAY_ID_PREFIX}{r}")}
    # done: every replicate ended, except (after pruning) those never started, which never will be
    if any(ends[r] is None and (r in started or not pruned) for r in range(k)):
        return None
    done = [e for e in ends.values() if e]
    completed = [e["values"] for e in done if e["status"] == C.COMPLETED]
    if pruned:
        return C.PRUNED, TrialState.PRUNED, None, ""
    if completed:
        mean = [sum(v[i] for v in completed) / len(completed) for i in range(len(completed[0]))]
        return C.COMPLETED, TrialState.COMPLETE, mean, ""
    status = C.DIVERGED if any(e["status"] == C.DIVERGED for e in done) else C.FAILED
    return status, TrialState.FAIL, None, "; ".join(e["reason"] for e in done if e["reason"])


# ---------------------------------------------------------------------------------------- pruner side
def aggregate(handle, ray_id: str, eval_index: int, values: Mapping[int, float]) -> dict[int, float] | None:
    """Record one replicate's intermediate values at ``eval_index``; return the configuration's values
    (means over replicates, keyed by Optuna step) for every evaluation now complete and not yet reported.

    An evaluation is complete when every replicate that has not ended has reported it. None while waiting.
    """
    frozen = handle.frozen(ray_id)
    r = replicate_of(frozen, ray_id)
    if r is None:
        return dict(values)
    key = f"{REPORTS_PREFIX}{r}"
    reports = dict(frozen.user_attrs.get(key) or {})
    reports[str(eval_index)] = {str(s): v for s, v in values.items()}
    handle.set_user_attr(frozen.number, key, reports)
    frozen = handle.get_trial(frozen.number)
    k = int(frozen.user_attrs.get(REPLICATES_ATTR, handle.repeats))
    per_replicate = {q: frozen.user_attrs.get(f"{REPORTS_PREFIX}{q}") or {} for q in range(k)}
    live = [q for q in range(k) if f"{END_PREFIX}{q}" not in frozen.user_attrs]
    out: dict[int, float] = {}
    indices = sorted({int(i) for reps in per_replicate.values() for i in reps})
    for i in indices:
        if any(str(i) not in per_replicate[q] for q in live):
            break  # evaluations are reported in order: a later one waits for this one
        reporting = [per_replicate[q][str(i)] for q in range(k) if str(i) in per_replicate[q]]
        for step in sorted({s for rep in reporting for s in rep}, key=int):
            scores = [rep[step] for rep in reporting if step in rep and is_finite_number(rep[step])]
            if int(step) not in frozen.intermediate_values:
                out[int(step)] = sum(scores) / len(scores) if scores else math.nan
    return out or None

