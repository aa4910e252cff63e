"""Which languages gain: each held-out language's Δ against its typological distance to the seen languages.

For the focus configuration (the one the per-language tables describe) and each held-out language:

- ``uriel_nearest``: the cosine distance ``1 − u·v / (|u| |v|)`` between the language's URIEL vector and the
  nearest seen language's, in the configuration's own feature set, source and missing-value policy (the
  vectors it trained towards); ``uriel_centroid``: the same to the mean vector of the seen languages;
- ``genetic`` and ``geographic``: the same cosine distance to the nearest seen language in lang2vec's
  ``fam`` and ``geo`` sets, the feature sets lang2vec's genetic and geographic distances are made of;
- ``script_seen`` and ``family_seen`` (1/0): whether a seen language has its script, its family
  (languages whose family the report does not know are left out of that covariate).

The meta-regression takes each test language's Δ (its mean over the seeds; with every language run on the
same seeds, the seed effect is common to all languages and falls into the intercept, so the slope's
uncertainty is the languages' own) and regresses it on one covariate at a time by least squares:
``Δ_l = a + b·x_l + e_l``, with the t interval and p of ``b`` on n − 2 degrees of freedom, Holm over the
covariates. The prediction interval for a new language at ``x`` is
``a + b·x ± t·s·sqrt(1 + 1/n + (x − x̄)² / Σ(x_l − x̄)²)``. A language without a vector in a set is left out
of that covariate and named.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st

from alchemy_tune.analysis.stats import holm

COVARIATES = ("uriel_nearest", "uriel_centroid", "genetic", "geographic", "script_seen", "family_seen")
LEVEL = 0.95


def nearest(d: np.ndarray) -> np.ndarray:
    """Each row's smallest distance; NaN for a row without any (no all-NaN warning)."""
    out = np.full(d.shape[0], np.nan)
    some = ~np.isnan(d).all(axis=1)
    out[some] = np.nanmin(d[some], axis=1)
    return out


def cosine_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[len(x) × len(y)] cosine distances; NaN where a vector is all zero (no direction)."""
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = (x @ y.T) / np.outer(nx, ny)
    sim[(nx == 0)[:, None] | (ny == 0)[None, :]] = np.nan
    return 1.0 - sim


def distances(held_out: dict[str, str], seen: dict[str, str], spec: str, source: str, missing: str,
              scripts: dict[str, str], families: dict[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """The covariates of each held-out language (``held_out``/``seen``: language -> URIEL code), and notes
    naming the languages left out of a covariate."""
    from alchemy_tune.languages.vectors import load_table

    notes = []
    langs, seen_langs = list(held_out), list(seen)
    out = pd.DataFrame({"lang": langs})
    table = load_table(source)
    codes, seen_codes = [held_out[lang] for lang in langs], [seen[lang] for lang in seen_langs]
    present = [c in table for c in codes]
    seen_ok = [c for c in seen_codes if c in table]
    v = np.full((len(langs), table.dim(spec)), np.nan)
    if any(present) and seen_ok:
        v[present] = table.vectors(spec, [c for c, ok in zip(codes, present) if ok], missing)
        s = table.vectors(spec, seen_ok, missing)
        out["uriel_nearest"] = nearest(cosine_distances(v, s))
        out["uriel_centroid"] = cosine_distances(v, s.mean(axis=0, keepdims=True))[:, 0]
    l2v = load_table("lang2vec")
    for name, fam in (("genetic", "fam"), ("geographic", "geo")):
        ok = [c in l2v for c in codes]
        ref = [c for c in seen_codes if c in l2v]
        values = np.full(len(langs), np.nan)
        if any(ok) and ref:
            d = cosine_distances(l2v.vectors(fam, [c for c, k in zip(codes, ok) if k], "zero"),
                                 l2v.vectors(fam, ref, "zero"))
            values[np.asarray(ok)] = nearest(d)
        out[name] = values
    seen_scripts = {scripts.get(lang) for lang in seen_langs} - {None, "unknown", ""}
    seen_families = {families.get(lang) for lang in seen_langs} - {None, "unknown", ""}
    out["script_seen"] = [float(scripts.get(lang) in seen_scripts) if scripts.get(lang) not in (None, "unknown", "")
                          else math.nan for lang in langs]
    out["family_seen"] = [float(families.get(lang) in seen_families)
                          if families.get(lang) not in (None, "unknown", "") else math.nan for lang in langs]
    for column in COVARIATES:
        if column in out:
            missing_langs = out.loc[out[column].isna(), "lang"].tolist()
            if missing_langs:
                notes.append(f"{column}: no value for {len(missing_langs)} language(s) "
                             f"({', '.join(missing_langs[:12])}{', ...' if len(missing_langs) > 12 else ''}), "
                             "left out of its regression")
    return out, notes


def fit(x: np.ndarray, y: np.ndarray, level: float = LEVEL) -> dict:
    """Least squares of ``y`` on ``x``: slope, its interval and p, and what :func:`predict` needs."""
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = len(x)
    out = {"n": n, "slope": math.nan, "slope_lo": math.nan, "slope_hi": math.nan, "p": math.nan}
    if n < 3 or np.ptp(x) == 0:
        return out
    xbar, ybar = x.mean(), y.mean()
    sxx = float(((x - xbar) ** 2).sum())
    b = float(((x - xbar) * (y - ybar)).sum() / sxx)
    a = ybar - b * xbar
    resid = y - (a + b * x)
    s = math.sqrt(float((resid ** 2).sum()) / (n - 2))
    se = s / math.sqrt(sxx)
    t = st.t.ppf(0.5 + level / 2, n - 2)
    p = float(2 * st.t.sf(abs(b / se), n - 2)) if se > 0 else (0.0 if b else 1.0)
    out.update(slope=b, slope_lo=b - t * se, slope_hi=b + t * se, p=p, intercept=a, s=s, xbar=xbar, sxx=sxx, t=t)
    return out


def predict(model: dict, x: float) -> tuple[float, float, float]:
    """(predicted Δ, prediction interval) of a new language at covariate value ``x``."""
    if math.isnan(model.get("slope", math.nan)):
        return math.nan, math.nan, math.nan
    y = model["intercept"] + model["slope"] * x
    half = model["t"] * model["s"] * math.sqrt(1 + 1 / model["n"] + (x - model["xbar"]) ** 2 / model["sxx"])
    return y, y - half, y + half


def meta_regression(per_language: pd.DataFrame) -> pd.DataFrame:
    """One row per covariate: slope of Δ on it over the languages, interval, p, Holm p, n, and the
    prediction interval of a new language's Δ at the covariate's median (for the binary covariates: at 1)."""
    rows = []
    for column in COVARIATES:
        if column not in per_language or per_language[column].notna().sum() < 3:
            continue
        x = per_language[column].to_numpy(float)
        model = fit(x, per_language["delta"].to_numpy(float))
        at = 1.0 if column.endswith("_seen") else float(np.nanmedian(x))
        y, lo, hi = predict(model, at)
        rows.append({"covariate": column, "n": model["n"], "slope": model["slope"], "slope_lo": model["slope_lo"],
                     "slope_hi": model["slope_hi"], "p": model["p"], "at": at, "prediction": y,
                     "prediction_lo": lo, "prediction_hi": hi})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["p_holm"] = holm(table["p"].to_numpy(float))
    return table
