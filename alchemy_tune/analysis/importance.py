"""Parameter importance with Optuna's evaluators, from the trials table (no journal needed).

What it is computed over: completed search trials only (never pruned, running, failed or confirmation
trials), one row per configuration (the mean of its replicates' scores: replicates are one configuration,
not several observations of the importance). A parameter that does not apply to a configuration (its
space's ``when`` condition is false) is encoded as ``n/a``, not as the default value the trial kept; a
parameter that takes one value wherever it applies (AlchemyScale's fixed ``scale_interval``) is set by its
condition and gets no importance of its own. An in-memory study is rebuilt with
``optuna.trial.create_trial``: numbers that always apply become float/int ranges (log scale when they span
two decades), anything else categorical.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alchemy_tune.core import constants as C
from alchemy_tune.core.errors import UsageError
from alchemy_tune.trial.config import EXECUTION, LANGUAGES, REPLICATE, params_with_role

EVALUATORS = ("ped-anova", "fanova", "mdi")
NAMES = {"ped-anova": "PED-ANOVA", "fanova": "fANOVA", "mdi": "mean decrease in impurity"}
NOT_APPLICABLE = "n/a"
# Values that vary between trials without being a searched setting (seed: a replicate).
_SKIP = {f"cfg_{name}" for name in params_with_role(EXECUTION, REPLICATE, LANGUAGES)}


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
    """Completed trials with a finite score, one row per configuration (the mean score of its replicates)."""
    t = trials[trials[score].notna()] if score in trials else trials.iloc[0:0]
    if "status" in t:
        t = t[t["status"] == C.COMPLETED]
    t = t[np.isfinite(t[score].astype(float))] if len(t) else t
    columns = sorted(c for c in t.columns if c.startswith("cfg_") and c not in _SKIP)
    if t.empty or not columns:
        return t
    keys = [repr(tuple(_text(v) for v in row)) for row in t[columns].itertuples(index=False)]
    grouped = t.assign(_key=keys).groupby("_key", sort=True)
    first = grouped[columns].first()
    first[score] = grouped[score].mean().astype(float)
    first["replicates"] = grouped.size()
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


def param_importance(trials: pd.DataFrame, score: str, evaluator: str = "ped-anova",
                     space=None) -> tuple[pd.DataFrame, str | None]:
    """(importance table, note); PED-ANOVA by default (fast), fANOVA/MDI need scikit-learn. ``space``: the
    search's space (anything with ``params``, each answering ``when``, ``is_active`` and ``values()``), for
    which parameters apply where."""
    import optuna
    from optuna.importance import (FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator,
                                   PedAnovaImportanceEvaluator)

    if evaluator not in EVALUATORS:
        raise UsageError(f"--importance: {evaluator!r} is not one of {', '.join(EVALUATORS)}")
    configs = configurations(trials, score)
    params, notes = encode(configs, space) if len(configs) else ({}, [])
    if len(configs) < 4 or not params:
        return pd.DataFrame(), (f"importance needs >= 4 completed configurations and a varying parameter "
                                f"(have {len(configs)} configurations, {len(params)} parameters)")
    if evaluator != "ped-anova":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise UsageError(f"--importance {evaluator} needs scikit-learn (pip install scikit-learn); "
                             "use --importance ped-anova") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    for i, value in enumerate(configs[score].astype(float)):
        study.add_trial(optuna.trial.create_trial(
            params={name: vals[i] for name, (_, vals) in params.items()},
            distributions={name: dist for name, (dist, _) in params.items()}, value=value))
    make = {"ped-anova": PedAnovaImportanceEvaluator, "fanova": lambda: FanovaImportanceEvaluator(seed=0),
            "mdi": lambda: MeanDecreaseImpurityImportanceEvaluator(seed=0)}[evaluator]
    try:
        result = optuna.importance.get_param_importances(study, evaluator=make())
    except (RuntimeError, ValueError) as exc:
        return pd.DataFrame(), f"importance could not be computed: {exc}"
    table = pd.DataFrame({"parameter": list(result), "importance": list(result.values())})
    note = (f"{NAMES[evaluator]} (Optuna) over {len(configs)} configurations (completed search trials, the "
            f"mean of each one's replicates); a parameter is '{NOT_APPLICABLE}' where its condition is false"
            + ("" if space is not None else " (the space file was not found: conditions unknown)"))
    return table, "; ".join([note, *notes])
