"""Parameter importance with Optuna's evaluators, from the trials table (no journal needed), with an
interval from a bootstrap over configurations, and a check against the paired comparisons.

What it is computed over: finished search trials (never pruned, running, failed or confirmation trials),
one row per configuration (the mean of its replicates' scores: replicates are one configuration, not
several observations of the importance). A parameter that does not apply to a configuration (its space's
``when`` condition is false) is encoded as ``n/a``, not as the default value the trial kept; a parameter
that takes one value wherever it applies (AlchemyScale's fixed ``scale_interval``) is set by its condition
and gets no importance of its own. An in-memory study is rebuilt with ``optuna.trial.create_trial``:
numbers that always apply become float/int ranges (log scale when they span two decades), anything else
categorical.

Diverged trials count as failures: each is scored at the worst score of the completed trials, then
averaged into its configuration like any replicate. Leaving them out (as pruned trials are left out) would
show only the survivors of a setting that blows up, so the setting would look harmless exactly where it
does the most harm; their own ``best_*`` value is from a training cut short, so it is not comparable to a
completed trial's. The worst observed score, rather than a floor like 0 or -inf, keeps the scores on their
scale: PED-ANOVA only needs the trial out of the top quantile, while fANOVA decomposes variance, where one
extreme value would swamp every real effect. A setting that makes trials diverge therefore gets importance
for it. Failed trials (a crash, not the setting) stay out.

Uncertainty: the importances (shares summing to 1, as Optuna normalises them) come with a 95% percentile
interval from a bootstrap over configurations: the configurations are resampled with replacement
(:data:`RESAMPLES` times, a fixed seed, so a report is reproducible), each resample's importances are
recomputed with the same evaluator, and the 2.5% and 97.5% quantiles are the interval. A configuration is
the unit (the replicates of one are not independent draws of the space). For PED-ANOVA the resamples are
computed from grid counts (the estimator depends on the configurations only through them: see
:func:`_ped_anova_resamples`), which is what makes 5,000 trials take about a second; fANOVA and MDI refit
their forests per resample, so they get :data:`SLOW_RESAMPLES`. Below :data:`MIN_CONFIGURATIONS`
configurations there are no numbers at all: PED-ANOVA's top 10% would be one or two configurations, and
an importance read from those is noise with a decimal point.

Importance answers another question than a paired comparison: how much a setting separates the best
configurations from the rest (PED-ANOVA) or explains the scores' variance (fANOVA), not the mean effect of
one value, all else equal. So they can disagree (a value that is worse but never near the top, a setting
whose effect a larger one hides); :func:`disagreements` says so where an importance interval is near zero
while a paired comparison of that setting is significant.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd

from alchemy_tune.analysis.paired import ROLES
from alchemy_tune.analysis.stats import ALPHA
from alchemy_tune.core import constants as C
from alchemy_tune.core.errors import UsageError
from alchemy_tune.trial.config import EXECUTION, LANGUAGES, REPLICATE, params_with_role

EVALUATORS = ("ped-anova", "fanova", "mdi")
NAMES = {"ped-anova": "PED-ANOVA", "fanova": "fANOVA", "mdi": "mean decrease in impurity"}
NOT_APPLICABLE = "n/a"
# Values that vary between trials without being a searched setting (seed: a replicate).
_SKIP = {f"cfg_{name}" for name in params_with_role(EXECUTION, REPLICATE, LANGUAGES)}
MIN_CONFIGURATIONS = 20
"""Fewer configurations give no importance (see the module docstring)."""
RESAMPLES = 200
"""Bootstrap resamples for PED-ANOVA (enough for the 2.5% and 97.5% quantiles of a percentile interval)."""
SLOW_RESAMPLES = 50
"""Bootstrap resamples for fANOVA and MDI: each refits a random forest, so 200 would take minutes; the
interval's ends are rougher for it, and the note says how many."""
SEED = 0
NEAR_ZERO = 0.05
"""An importance whose interval's upper end is below this share is "near zero" for :func:`disagreements`."""


def _distribution(values: pd.Series):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    present = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and len(present) == len(values):
        lo, hi = float(present.min()), float(present.max())
        log = lo > 0 and hi / lo >= 100
        if pd.api.types.is_integer_dtype(values):
            return IntDistribution(int(lo), int(hi), log=log), [int(v) for v in values]
        return FloatDistribution(lo, hi, log=log), [float(v) for v in values]
    text = ["none" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    return CategoricalDistribution(sorted(set(text))), text


def _text(value):
    return ",".join(map(str, value)) if isinstance(value, (list, tuple, np.ndarray)) else value


def configurations(trials: pd.DataFrame, score: str) -> pd.DataFrame:
    """Completed and diverged trials, one row per configuration: the mean score of its replicates, a diverged
    one scored at the worst completed score (module docstring); ``replicates`` and ``diverged`` count them."""
    if score not in trials:
        return trials.iloc[0:0]
    status = trials["status"] if "status" in trials else pd.Series(C.COMPLETED, index=trials.index)
    values = pd.to_numeric(trials[score], errors="coerce").astype(float)
    completed = (status == C.COMPLETED) & np.isfinite(values)
    diverged = status == C.DIVERGED
    if not completed.any():
        return trials.iloc[0:0]
    kept = completed | diverged
    t = trials[kept].copy()
    t[score] = np.where(diverged[kept], float(values[completed].min()), values[kept])
    t["_diverged"] = diverged[kept].astype(int).to_numpy()
    columns = sorted(c for c in t.columns if c.startswith("cfg_") and c not in _SKIP)
    if not columns:
        return t.iloc[0:0]
    keys = [repr(tuple(_text(v) for v in row)) for row in t[columns].itertuples(index=False)]
    grouped = t.assign(_key=keys).groupby("_key", sort=True)
    first = grouped[columns].first()
    first[score] = grouped[score].mean().astype(float)
    first["replicates"] = grouped.size()
    first["diverged"] = grouped["_diverged"].sum()
    return first.reset_index(drop=True)


def encode(configs: pd.DataFrame, space=None) -> tuple[dict[str, tuple], list[str]]:
    """(parameter -> (distribution, values)) for the parameters that vary, and notes on those left out."""
    params, notes = {}, []
    for col in (c for c in configs.columns if c.startswith("cfg_") and c not in _SKIP):
        name = col[4:]
        values = configs[col].map(_text)
        spec = getattr(space, "params", {}).get(name) if space is not None else None
        if spec is not None and spec.when:
            active = [spec.is_active({k[4:]: r[k] for k in configs.columns if k.startswith("cfg_")})
                      for _, r in configs.iterrows()]
            if not any(active):
                continue
            applied = values[active]
            if applied.astype(str).nunique() <= 1 and not all(active):
                notes.append(f"{name}: one value wherever it applies (set by its condition), no importance of "
                             "its own")
                continue
            values = pd.Series([v if a else NOT_APPLICABLE for v, a in zip(values, active)], dtype=object)
        if values.astype(str).nunique() > 1:
            params[name] = _distribution(values.reset_index(drop=True))
    return params, notes


def _evaluator(evaluator: str):
    from optuna.importance import (FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator,
                                   PedAnovaImportanceEvaluator)

    return {"ped-anova": PedAnovaImportanceEvaluator, "fanova": lambda: FanovaImportanceEvaluator(seed=0),
            "mdi": lambda: MeanDecreaseImpurityImportanceEvaluator(seed=0)}[evaluator]


def _importances(frozen: list, make, names: list[str]) -> np.ndarray:
    """Optuna's normalised importances of ``names`` over the trials ``frozen`` (duplicates allowed)."""
    import optuna

    study = optuna.create_study(direction="maximize")
    study.add_trials(frozen)
    result = optuna.importance.get_param_importances(study, evaluator=make())
    return np.array([float(result.get(name, 0.0)) for name in names])


def _resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) indices of configurations drawn with replacement; one seed, so one report."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _optuna_resamples(frozen: list, make, names: list[str], draws: np.ndarray) -> np.ndarray:
    """Each resample's importances, recomputed by Optuna on the resampled trials (any evaluator); a resample
    the evaluator cannot compute (a forest on a degenerate draw) is NaN and left out of the quantiles."""
    out = np.full((len(draws), len(names)), np.nan)
    for b, draw in enumerate(draws):
        try:
            out[b] = _importances([frozen[j] for j in draw], make, names)
        except (RuntimeError, ValueError):
            continue
    return out


def _grid_index(dist, values: list) -> tuple[np.ndarray, object]:
    """Each configuration's cell of PED-ANOVA's grid for one parameter, and the grid's distribution: what
    ``optuna.importance._ped_anova.scott_parzen_estimator`` counts (categories; or 50 steps over a number's
    range, fewer for an integer, log-spaced for a log range)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(dist, CategoricalDistribution):
        return np.array([dist.choices.index(v) for v in values]), dist
    steps = 50
    if isinstance(dist, IntDistribution) and dist.log:
        steps = min(int(np.ceil(np.log(dist.high - dist.low + 1) / np.log(2))) + 1, steps)
    elif dist.step is not None:
        steps = min(round((dist.high - dist.low) / dist.step) + 1, steps)
    low, high = (math.log(dist.low), math.log(dist.high)) if dist.log else (dist.low, dist.high)
    x = np.log(values) if dist.log else np.asarray(values, dtype=float)
    cells = np.clip(np.ceil((x - low) / ((high - low) / (steps - 1)) - 0.5).astype(int), 0, steps - 1)
    return cells, IntDistribution(0, steps - 1)


def _ped_anova_resamples(params: dict[str, tuple], scores: np.ndarray, draws: np.ndarray) -> np.ndarray | None:
    """Each resample's PED-ANOVA importances without rebuilding a study per resample: the evaluator sees the
    configurations only through each parameter's grid counts over all of them and over the top 10% (every
    parameter here has one distribution, so one regime, and the region is all configurations), so the
    counts of every resample are taken at once and fed to Optuna's own Parzen estimator. Equal to
    :func:`_optuna_resamples` with PED-ANOVA (tested); None when this Optuna's internals differ, and the
    caller falls back to that."""
    try:
        from optuna.importance import PedAnovaImportanceEvaluator
        from optuna.importance._ped_anova.scott_parzen_estimator import ScottParzenEstimator

        evaluator = PedAnovaImportanceEvaluator()
        quantile, steps, prior = evaluator._target_quantile, evaluator._n_steps, evaluator._prior_weight
    except (ImportError, AttributeError):
        return None
    if steps != 50 or evaluator._region_quantile != 1.0 or not evaluator._evaluate_on_local:
        return None
    b, n = draws.shape
    loss = -scores[draws]  # maximised: Optuna keeps the lowest losses
    k = int(math.ceil(quantile * n)) - 1
    top = loss <= np.partition(loss, k, axis=1)[:, k][:, None]
    share = top.sum(axis=1) / n
    out = np.zeros((b, len(params)))
    rows = np.arange(b)[:, None]
    for p, (dist, values) in enumerate(params.values()):
        cells, grid = _grid_index(dist, values)
        size = len(grid.choices) if hasattr(grid, "choices") else grid.high + 1
        drawn = cells[draws] + rows * size
        region = np.bincount(drawn.ravel(), minlength=b * size).reshape(b, size)
        best = np.bincount(drawn[top], minlength=b * size).reshape(b, size)
        at, known = np.arange(size), {}

        def density(counts: np.ndarray) -> np.ndarray:
            # resamples often repeat a count vector (the top 10% of a small search, a setting of few
            # values), and the estimator is a function of it alone
            key = counts.tobytes()
            if key not in known:
                seen = np.flatnonzero(counts)
                estimator = ScottParzenEstimator(observations=seen, search_space=grid,
                                                 predetermined_weights=counts[seen], prior_weight=prior)
                known[key] = estimator.pdf(at) + 1e-12  # Optuna's floor against 0/0
            return known[key]

        for r in range(b):
            top_pdf, region_pdf = density(best[r]), density(region[r])
            out[r, p] = share[r] ** 2 * float(region_pdf @ ((top_pdf / region_pdf - 1) ** 2))
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1), 1.0 / len(params))


def param_importance(trials: pd.DataFrame, score: str, evaluator: str = "ped-anova", space=None, *,
                     resamples: int | None = None, seed: int = SEED) -> tuple[pd.DataFrame, str | None]:
    """(importance table, note); PED-ANOVA by default (fast), fANOVA/MDI need scikit-learn. ``space``: the
    search's space (anything with ``params``, each answering ``when``, ``is_active`` and ``values()``), for
    which parameters apply where. The table: ``parameter``, ``importance`` (a share; they sum to 1),
    ``importance_lo``/``importance_hi`` (its 95% bootstrap interval over configurations), most important
    first; empty below :data:`MIN_CONFIGURATIONS` configurations, the note saying why."""
    import optuna

    if evaluator not in EVALUATORS:
        raise UsageError(f"--importance: {evaluator!r} is not one of {', '.join(EVALUATORS)}")
    if evaluator != "ped-anova":  # a usage error whatever the data
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise UsageError(f"--importance {evaluator} needs scikit-learn (pip install scikit-learn); "
                             "use --importance ped-anova") from None
    configs = configurations(trials, score)
    if len(configs) < MIN_CONFIGURATIONS:
        return pd.DataFrame(), f"importance needs ≥ {MIN_CONFIGURATIONS} configurations ({len(configs)} here)"
    params, notes = encode(configs, space)
    if not params:
        return pd.DataFrame(), f"importance needs a parameter that varies ({len(configs)} configurations)"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    names, make = list(params), _evaluator(evaluator)
    scores = configs[score].to_numpy(dtype=float)
    count = resamples or (RESAMPLES if evaluator == "ped-anova" else SLOW_RESAMPLES)
    draws = _resamples(len(scores), count, seed)
    import warnings

    with warnings.catch_warnings():  # Optuna warns on every resample of a small study; the note says enough
        warnings.simplefilter("ignore")
        # PED-ANOVA from grid counts: the configurations as they are (one "resample" of each), then the
        # resamples; None where this Optuna differs, and then Optuna's own evaluator on a study per resample
        fast = (_ped_anova_resamples(params, scores, np.vstack([np.arange(len(scores)), draws]))
                if evaluator == "ped-anova" else None)
        if fast is not None:
            point, boot = fast[0], fast[1:]
        else:
            distributions = {name: dist for name, (dist, _) in params.items()}
            frozen = [optuna.trial.create_trial(params={name: vals[i] for name, (_, vals) in params.items()},
                                                distributions=distributions, value=value)
                      for i, value in enumerate(scores)]
            try:
                point = _importances(frozen, make, names)
            except (RuntimeError, ValueError) as exc:
                return pd.DataFrame(), f"importance could not be computed: {exc}"
            boot = _optuna_resamples(frozen, make, names, draws)
    lo, hi = (np.nanpercentile(boot, q, axis=0) if np.isfinite(boot).any() else np.full(len(names), np.nan)
              for q in (2.5, 97.5))
    table = pd.DataFrame({"parameter": names, "importance": point, "importance_lo": lo, "importance_hi": hi})
    table = table.sort_values(["importance", "parameter"], ascending=[False, True]).reset_index(drop=True)
    diverged = int(configs["diverged"].sum())
    note = (f"{NAMES[evaluator]} (Optuna) over {len(configs)} configurations (finished search trials, the "
            f"mean of each one's replicates"
            + (f"; {diverged} diverged trial(s) count as failures, at the worst completed score" if diverged else "")
            + f"); 95% interval: bootstrap over configurations, {count} resamples; a parameter is "
            f"'{NOT_APPLICABLE}' where its condition is false"
            + ("" if space is not None else " (the space file was not found: conditions unknown)"))
    return table, "; ".join([note, *notes])


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def disagreements(importance: pd.DataFrame, dimensions: Mapping[str, object], *, near_zero: float = NEAR_ZERO,
                  alpha: float = ALPHA) -> list[str]:
    """One sentence per parameter whose importance interval lies near zero (its upper end below
    ``near_zero``) while some value of it differs significantly (Holm p < ``alpha``, any role) from its
    reference in its per-setting comparison table. ``importance``: :func:`param_importance`'s table;
    ``dimensions``: the per-setting tables by setting, keyed ``"by:<setting>"`` (``compute``'s tables) or
    ``"<setting>"``, each a table or ``analyze.dimensions``' (table, note). Empty when they agree."""
    if importance.empty or "importance_hi" not in importance:
        return []
    tables = {str(name).removeprefix("by:"): (t[0] if isinstance(t, tuple) else t) for name, t in dimensions.items()}
    sentences = []
    for row in importance.itertuples(index=False):
        table = tables.get(row.parameter)
        if not row.importance_hi < near_zero or table is None or table.empty or row.parameter not in table:
            continue
        found = {}  # value -> [Holm p, role, Δ, reference, how many of its comparisons are significant]
        for role in ROLES:
            if f"p_holm_{role}" not in table:
                continue
            for r in table[table[f"p_holm_{role}"] < alpha].to_dict("records"):
                entry = [float(r[f"p_holm_{role}"]), role, float(r.get(f"Δ{role}", math.nan)),
                         r.get("reference") or "its reference", 1]
                value = _value(r[row.parameter])
                if value in found:  # the smallest p speaks for the value; the count says how often
                    entry[4] += found[value][4]
                    entry = entry if entry[0] < found[value][0] else [*found[value][:4], entry[4]]
                found[value] = entry
        if not found:
            continue
        parts = [f"{row.parameter}={value} different from {ref} (Δ{role} {delta:+.3f}, Holm p {p:.3g}"
                 + (f", in {n} comparisons" if n > 1 else "") + ")"
                 for value, (p, role, delta, ref, n) in sorted(found.items(), key=lambda kv: kv[1][0])]
        sentences.append(f"Importance and the paired comparison disagree on {row.parameter}: its importance is "
                         f"{row.importance:.3f} (95% interval {row.importance_lo:.3f}–{row.importance_hi:.3f}, "
                         f"below {near_zero:g}), yet the paired comparison finds "
                         f"{' and '.join(parts)}.")
    return sentences
