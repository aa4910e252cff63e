"""Analysis of one or more runs: the tables behind ``alchemy-tune analyze``.

Every function takes the loaded :class:`Runs` and returns a pandas DataFrame (possibly empty) plus,
where something could not be computed, a note saying why. Scores are higher-is-better averages
(accuracy, Pearson) taken at each trial's selected evaluation (``best_step``: the best dev objective;
``--at final`` uses the last one). Plots live in ``plots.py``, the report and CLI in ``analyze_cli.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import constants as C
from . import langinfo
from .errors import UsageError
from .results import read_run_meta, read_trials, values_at_steps

# Settings that do not change what a λ=0 baseline trains (they only shape the URIEL loss or the run).
_NOT_BASELINE_KEYS = {"lambda", "lambda_schedule", "lambda_warmup", "scale_interval", "uriel_features",
                      "missing", "projection", "proj_depth", "proj_width", "proj_activation", "proj_dropout",
                      "proj_layernorm", "proj_sigmoid", "seed", "device", "threads", "bf16", "data_dir"}
NO_MATCH = "no baseline with matching settings (λ=0, same everything except λ, URIEL and seed)"


@dataclass
class Runs:
    """Trials of every run analysed together, and each trial's per-language scores."""

    dirs: list[str]
    metric: str
    at: str
    trials: pd.DataFrame
    langs: pd.DataFrame
    """run_id, trial_id, lang, uriel_code, seen, value (primary metric, the metric's split, selected step)."""
    notes: list[str] = field(default_factory=list)

    @property
    def split(self) -> str:
        return self.metric.split("_")[0]

    def col(self, key: str) -> str:
        """Trials column of an average at the selected evaluation: ``col("dev_unseen")``."""
        return f"{self.at}_{key}"

    @property
    def score(self) -> str:
        return self.col(self.metric)


# ----------------------------------------------------------------------------- loading
def load_runs(run_dirs: list[str], *, metric: str = "dev_unseen", at: str = "best") -> Runs:
    """Read every run; UsageError (one line) for a missing folder, a non-run, a newer schema, no trials."""
    if metric not in C.AVERAGE_KEYS:
        raise UsageError(f"--metric: {metric!r} is not one of {', '.join(C.AVERAGE_KEYS)}")
    if at not in ("best", "final"):
        raise UsageError(f"--at: {at!r} is not one of best, final")
    trials, langs, notes = [], [], []
    for run_dir in run_dirs:
        meta = read_run_meta(run_dir)
        table = read_trials(run_dir)
        if table.num_rows == 0:
            notes.append(f"{run_dir}: no trial has reported yet")
            continue
        frame = table.to_pandas()
        frame["run_dir"] = run_dir
        frame["run_id"] = frame["run_id"].fillna(meta.get("run_id", run_dir))
        trials.append(frame)
        langs.append(_lang_scores(run_dir, table, metric.split("_")[0], at))
    if not trials:
        raise UsageError(f"{', '.join(run_dirs)}: empty run(s): no trial results yet "
                         "(results/trials/)")
    frame = pd.concat(trials, ignore_index=True, sort=False)
    lang_frame = pd.concat(langs, ignore_index=True) if langs else pd.DataFrame()
    runs = Runs(list(run_dirs), metric, at, frame, lang_frame, notes)
    runs.notes += status_notes(runs)
    return runs


def _lang_scores(run_dir: str, trials: pa.Table, split: str, at: str) -> pd.DataFrame:
    """Per-language primary-metric values at each trial's selected step, streamed from the metrics files
    (only the split and the chosen rows are kept: memory follows trials × languages, not the table)."""
    picks = trials.select(["run_id", "trial_id", f"{at}_step", "primary_metric"]).rename_columns(
        ["run_id", "trial_id", "step", "metric"])
    picks = picks.filter(pc.field("step").is_valid() & pc.field("metric").is_valid())
    return values_at_steps(run_dir, picks, split).to_pandas()


def status_notes(runs: Runs) -> list[str]:
    """What is missing: trials still running, failed (with their errors), pruned, without scores."""
    t, notes = runs.trials, []
    counts = t["status"].value_counts()
    notes.append("trials: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if counts.get(C.RUNNING, 0):
        notes.append(f"{counts[C.RUNNING]} trial(s) still running: their scores are provisional")
    for _, row in t[t["status"] == C.FAILED].iterrows():
        last_line = (str(row.get("error") or "").strip().splitlines() or ["no error text"])[-1]
        notes.append(f"failed {row['run_id']}/{row['trial_id']}: {last_line[:160]}")
    if runs.score in t:
        missing = int(t[runs.score].isna().sum())
        if missing:
            notes.append(f"{missing} trial(s) have no {runs.metric} value and are left out of the tables")
    unfinished = int((~t["status"].isin([C.COMPLETED, C.DIVERGED])).sum())
    if unfinished and unfinished < len(t):
        notes.append(f"summary tables use finished (completed/diverged) trials only; the leaderboard "
                     f"also lists the {unfinished} running, pruned or failed one(s)")
    return notes


# ----------------------------------------------------------------------------- statistics
# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: a series in 1/df);
# kept here because importing scipy.stats or scipy.special costs more than the whole analysis.
_T975 = (12.7062047, 4.3026527, 3.1824463, 2.7764451, 2.5705818, 2.4469119, 2.3646243, 2.3060041,
         2.2621572, 2.2281389, 2.2009852, 2.1788128, 2.1603687, 2.1447867, 2.1314495, 2.1199053, 2.1098156,
         2.1009220, 2.0930241, 2.0859634, 2.0796138, 2.0738731, 2.0686576, 2.0638986, 2.0595386, 2.0555294,
         2.0518305, 2.0484071, 2.0452296, 2.0422725)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (error < 1e-4)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963985
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2) + (
        3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)


def mean_ci(values) -> tuple[float, float, int]:
    """(mean, half-width of the t-based 95% confidence interval, n); the half-width is NaN when n < 2."""
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(arr)
    if n == 0:
        return math.nan, math.nan, 0
    if n < 2:
        return float(arr[0]), math.nan, 1
    return float(arr.mean()), float(t975(n - 1) * arr.std(ddof=1) / math.sqrt(n)), n


def _grouped(frame: pd.DataFrame, by: list[str], columns: dict[str, str]) -> pd.DataFrame:
    """mean, ±CI and n of each value column per group; ``columns`` maps source column -> output name."""
    rows = []
    for key, group in frame.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        for src, name in columns.items():
            mean, half, n = mean_ci(group[src])
            row.update({name: mean, f"{name}_ci": half})
        row["n"] = len(group)
        rows.append(row)
    return pd.DataFrame(rows)


def _scored(runs: Runs, *, finished: bool = True) -> pd.DataFrame:
    """Trials with a score; with ``finished``, only those that ran to the end (completed or diverged)
    when there are any, since a pruned, failed or running trial's score is from a shorter training."""
    t = runs.trials
    t = t[t[runs.score].notna()] if runs.score in t else t.iloc[0:0]
    done = t[t["status"].isin([C.COMPLETED, C.DIVERGED])]
    return done if finished and len(done) else t


def lambda_label(lam) -> str:
    if lam is None or (isinstance(lam, float) and math.isnan(lam)):
        return "λ=?"
    return "λ=0 (baseline)" if lam == 0 else f"λ={lam:g}"


# ----------------------------------------------------------------------------- tables
def leaderboard(runs: Runs, top: int = 10) -> pd.DataFrame:
    t = _scored(runs, finished=False).sort_values(runs.score, ascending=False).head(top)
    cols = {"run_id": "run", "trial_id": "trial", "status": "status", runs.score: runs.metric,
            runs.col(f"{runs.split}_seen"): f"{runs.split}_seen", runs.col(f"{runs.split}_unseen"):
            f"{runs.split}_unseen", f"{runs.at}_step": "step", "cfg_lambda": "lambda",
            "cfg_lambda_schedule": "schedule", "cfg_uriel_features": "uriel_features",
            "cfg_projection": "projection", "cfg_train_size": "train_size", "cfg_lr": "lr",
            "cfg_seed": "seed"}
    cols = {k: v for k, v in cols.items() if k in t}
    out = t[list(dict.fromkeys(cols))].rename(columns=cols).reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    return out


def _baseline_key_columns(t: pd.DataFrame) -> list[str]:
    return [c for c in t.columns if c.startswith("cfg_") and c[4:] not in _NOT_BASELINE_KEYS]


def _hashable(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def with_baseline_delta(runs: Runs, columns: list[str]) -> tuple[pd.DataFrame, str | None]:
    """λ>0 trials with ``delta_<col>`` against the mean of λ=0 trials sharing every other setting."""
    t = _scored(runs)
    if "cfg_lambda" not in t:
        return t.iloc[0:0], "no cfg_lambda column: cannot tell baselines apart"
    keys = _baseline_key_columns(t)
    key = t[keys].apply(lambda r: tuple(_hashable(v) for v in r), axis=1) if keys else pd.Series(
        [()] * len(t), index=t.index)
    t = t.assign(_key=key)
    base = t[t["cfg_lambda"] == 0].groupby("_key")[columns].mean()
    treated = t[t["cfg_lambda"] > 0]
    if base.empty:
        return treated, "no λ=0 baseline trial in these runs"
    matched, note = treated.join(base, on="_key", rsuffix="_base", how="inner"), None
    if matched.empty:  # e.g. a continuous lr: fall back to all baselines, and say so
        baselines = t[t["cfg_lambda"] == 0]
        matched = treated.assign(**{f"{c}_base": baselines[c].mean() for c in columns})
        note = (f"{NO_MATCH}; Δ is against the mean of all {len(baselines)} λ=0 trials (unpaired)")
    for c in columns:
        matched[f"delta_{c}"] = matched[c] - matched[f"{c}_base"]
    return matched, note


def ablation(runs: Runs) -> tuple[pd.DataFrame, str | None]:
    """Per URIEL subset (λ>0): mean ± CI of unseen and seen scores, and of their delta to the baseline."""
    unseen, seen = runs.col(f"{runs.split}_unseen"), runs.col(f"{runs.split}_seen")
    t = _scored(runs)
    if "cfg_uriel_features" not in t or "cfg_lambda" not in t:
        return pd.DataFrame(), "no URIEL-subset or λ column"
    treated = t[t["cfg_lambda"] > 0]
    if treated.empty:
        return pd.DataFrame(), "no trial with λ > 0"
    table = _grouped(treated, ["cfg_uriel_features"], {unseen: "unseen", seen: "seen"})
    matched, note = with_baseline_delta(runs, [unseen, seen])
    if f"delta_{unseen}" in matched:
        deltas = _grouped(matched, ["cfg_uriel_features"], {f"delta_{unseen}": "Δunseen",
                                                            f"delta_{seen}": "Δseen"}).drop(columns="n")
        table = table.merge(deltas, on="cfg_uriel_features", how="left")
    return table.rename(columns={"cfg_uriel_features": "uriel_features"}), note


def compare(runs: Runs, column: str, *, treated_only: bool = True) -> tuple[pd.DataFrame, str | None]:
    """mean ± CI of the score per value of a config column (λ schedules, projections), plus the baseline."""
    t = _scored(runs)
    if column not in t:
        return pd.DataFrame(), f"no {column} column"
    unseen, seen = runs.col(f"{runs.split}_unseen"), runs.col(f"{runs.split}_seen")
    t = t.assign(group=t[column].astype(str))
    if treated_only and "cfg_lambda" in t:
        t.loc[t["cfg_lambda"] == 0, "group"] = "λ=0 (baseline)"
    table = _grouped(t, ["group"], {unseen: "unseen", seen: "seen"})
    return table.rename(columns={"group": column.removeprefix("cfg_")}), None


def scaling(runs: Runs) -> tuple[pd.DataFrame, str | None]:
    """Unseen score against training size per language, one series per λ value (schedules pooled)."""
    t = _scored(runs)
    if "cfg_train_size" not in t or t["cfg_train_size"].nunique() < 1:
        return pd.DataFrame(), "no cfg_train_size column"
    lam = t["cfg_lambda"] if "cfg_lambda" in t else pd.Series(math.nan, index=t.index)
    t = t.assign(setting=lam.map(lambda_label), train_size=t["cfg_train_size"].fillna(-1).astype(int))
    table = _grouped(t, ["setting", "train_size"], {runs.col(f"{runs.split}_unseen"): "unseen"})
    note = None if t["train_size"].nunique() > 1 else "only one training size in these runs: no curve"
    return table, note


def language_deltas(runs: Runs) -> tuple[pd.DataFrame, str | None]:
    """Per language: score of λ>0 trials minus their matched λ=0 baselines (unpaired if none match)."""
    lv, t = runs.langs, _scored(runs)
    if lv.empty or "cfg_lambda" not in t:
        return pd.DataFrame(), "no per-language scores" if lv.empty else "no cfg_lambda column"
    keys = _baseline_key_columns(t)
    info = t[["run_id", "trial_id", "cfg_lambda"]].assign(
        _key=t[keys].apply(lambda r: tuple(_hashable(v) for v in r), axis=1) if keys else [()] * len(t))
    lv = lv.merge(info, on=["run_id", "trial_id"])
    base = lv[lv["cfg_lambda"] == 0].groupby(["_key", "lang"])["value"].mean().rename("base")
    treated = lv[lv["cfg_lambda"] > 0].join(base, on=["_key", "lang"], how="inner")
    note = None
    if treated.empty:
        if base.empty or lv[lv["cfg_lambda"] > 0].empty:
            return pd.DataFrame(), "needs both λ=0 and λ>0 trials"
        pooled = lv[lv["cfg_lambda"] == 0].groupby("lang")["value"].mean().rename("base")
        treated = lv[lv["cfg_lambda"] > 0].join(pooled, on="lang", how="inner")
        note = f"{NO_MATCH}; deltas are unpaired (all λ>0 vs all λ=0 trials)"
    treated = treated.assign(delta=treated["value"] - treated["base"])
    table = _grouped(treated, ["lang"], {"delta": "delta", "value": "score", "base": "baseline"})
    first = lv.drop_duplicates("lang").set_index("lang")
    table["seen"] = table["lang"].map(first["seen"])
    details = [langinfo.lookup(lang, first.loc[lang, "uriel_code"]) for lang in table["lang"]]
    table.insert(1, "language", [d.name for d in details])
    table["family"] = [d.family for d in details]
    table["script"] = [d.script for d in details]
    return table.sort_values("delta", ascending=False).reset_index(drop=True), note


def grouped_deltas(per_language: pd.DataFrame, by: str) -> pd.DataFrame:
    """Language deltas averaged per family or script (each language counts once)."""
    if per_language.empty:
        return pd.DataFrame()
    return _grouped(per_language, [by], {"delta": "delta"}).rename(columns={"n": "languages"}).sort_values(
        "delta", ascending=False).reset_index(drop=True)


def per_language_scores(runs: Runs) -> pd.DataFrame:
    """Mean score per language for the baseline (λ=0) and for URIEL trials (λ>0), with names."""
    lv, t = runs.langs, _scored(runs)
    if lv.empty:
        return pd.DataFrame()
    lam = t.set_index(["run_id", "trial_id"])["cfg_lambda"] if "cfg_lambda" in t else None
    lv = lv.merge(t[["run_id", "trial_id"]], on=["run_id", "trial_id"])
    if lam is not None:
        lv = lv.assign(setting=np.where(lv.set_index(["run_id", "trial_id"]).index.map(lam) > 0,
                                        "URIEL (λ>0)", "baseline (λ=0)"))
    else:
        lv = lv.assign(setting="all trials")
    table = lv.pivot_table(index=["lang", "uriel_code", "seen"], columns="setting", values="value",
                           aggfunc="mean").reset_index()
    table.columns.name = None
    names = [langinfo.label(lang, u) for lang, u in zip(table["lang"], table["uriel_code"])]
    table.insert(0, "language", names)
    return table.sort_values(["seen", "lang"], ascending=[False, True]).reset_index(drop=True)


def pareto_front(runs: Runs) -> pd.DataFrame:
    """Trials no other trial beats on both seen and unseen score."""
    seen, unseen = runs.col(f"{runs.split}_seen"), runs.col(f"{runs.split}_unseen")
    t = _scored(runs)
    t = t[t[seen].notna() & t[unseen].notna()]
    if t.empty:
        return pd.DataFrame()
    pts = t[[seen, unseen]].to_numpy()
    keep = [not np.any(np.all(pts >= p, axis=1) & np.any(pts > p, axis=1)) for p in pts]
    front = t[keep].sort_values(seen)
    cols = {"run_id": "run", "trial_id": "trial", seen: "seen", unseen: "unseen", "cfg_lambda": "lambda",
            "cfg_uriel_features": "uriel_features"}
    return front[[c for c in cols if c in front]].rename(columns=cols).reset_index(drop=True)
