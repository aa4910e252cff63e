"""Parameter importance with Optuna's evaluators, from the trials table alone (no journal needed).

An in-memory study is rebuilt with ``optuna.trial.create_trial``: each configuration column that varies
becomes a parameter whose distribution is inferred from its values (numbers: float/int ranges, log
scale when they span two decades; anything else: categorical).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alchemy_tune.trial.config import EXECUTION, LANGUAGES, REPLICATE, params_with_role
from alchemy_tune.core.errors import UsageError

EVALUATORS = ("ped-anova", "fanova", "mdi")
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


def param_importance(trials: pd.DataFrame, score: str,
                     evaluator: str = "ped-anova") -> tuple[pd.DataFrame, str | None]:
    """(importance table, note); PED-ANOVA by default (fast), fANOVA/MDI need scikit-learn."""
    import optuna
    from optuna.importance import (FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator,
                                   PedAnovaImportanceEvaluator)

    if evaluator not in EVALUATORS:
        raise UsageError(f"--importance: {evaluator!r} is not one of {', '.join(EVALUATORS)}")
    t = trials[trials[score].notna()] if score in trials else trials.iloc[0:0]
    t = t[np.isfinite(t[score].astype(float))] if len(t) else t
    params = {}
    for col in (c for c in t.columns if c.startswith("cfg_") and c not in _SKIP):
        values = t[col].map(lambda v: ",".join(map(str, v)) if isinstance(v, (list, np.ndarray)) else v)
        if values.astype(str).nunique() > 1:
            params[col[4:]] = _distribution(values.reset_index(drop=True))
    if len(t) < 4 or not params:
        return pd.DataFrame(), (f"importance needs >= 4 scored trials and a varying parameter "
                                f"(have {len(t)} trials, {len(params)} parameters)")
    if evaluator != "ped-anova":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise UsageError(f"--importance {evaluator} needs scikit-learn (pip install scikit-learn); "
                             "use --importance ped-anova") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize")
    for i, value in enumerate(t[score].astype(float)):
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
    return table, None
