"""Scores per language: accuracy and macro-F1 for classification, Pearson and Spearman for regression; and
their averages over the language roles (``constants.AVERAGE_KEYS``)."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from alchemy_tune.core import constants as K


def accuracy(gold: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(gold == pred)) if len(gold) else math.nan


def macro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in gold or predictions (sklearn's default set)."""
    if not len(gold):
        return math.nan
    scores = []
    for c in np.union1d(gold, pred):
        tp = np.sum((pred == c) & (gold == c))
        fp = np.sum((pred == c) & (gold != c))
        fn = np.sum((pred != c) & (gold == c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return math.nan
    x, y = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    # Undefined for a constant input: NaN, not 0, which would hide a collapsed regressor in an average
    # (``notes`` says why in words).
    return float(np.dot(x, y) / denom) if denom > 0 else math.nan


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties given their average rank (as Spearman's rho requires)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(_ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64)))


def score(kind: str, gold: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """All metrics of a task kind for one language; the first is the primary metric."""
    if kind == "classification":
        return {"accuracy": accuracy(gold, pred), "macro_f1": macro_f1(gold, pred)}
    return {"pearson": pearson(gold, pred), "spearman": spearman(gold, pred)}


def notes(kind: str, gold: np.ndarray, pred: np.ndarray) -> list[str]:
    """Why a metric of :func:`score` is NaN although there are examples, in words."""
    if kind == "classification" or len(gold) < 2:
        return []
    if np.ptp(np.asarray(pred, dtype=np.float64)) == 0:
        return ["every prediction is the same value (a collapsed regressor): pearson and spearman are NaN"]
    if np.ptp(np.asarray(gold, dtype=np.float64)) == 0:
        return ["every gold score is the same value: pearson and spearman are NaN"]
    return []


def averages(langs: Mapping[str, Mapping], primary: str) -> dict[str, float]:
    """Every average of :data:`constants.AVERAGE_KEYS` from per-language scores (NaN for an empty group)."""
    out = {}
    for split in K.SPLITS_EVALUATED:
        for group in K.GROUPS:
            roles = K.ROLES if group == "all" else (group,)
            out[K.average_key(split, group)] = _mean(langs, split, primary, roles)
    out[K.SELECT] = _mean(langs, "dev", primary, K.SELECT_ROLES)
    return out


def _mean(langs: Mapping[str, Mapping], split: str, primary: str, roles) -> float:
    values = [info[split][primary] for info in langs.values()
              if split in info and K.lang_role(info) in roles]
    return float(np.mean(values)) if values else math.nan
