"""Paired comparisons: each configuration against its matched baseline, language by language, seed by seed.

A *configuration* is every ``cfg_*`` value of a trial except the execution ones and the seeds
(``EXECUTION_KEYS``: roles execution and replicate in config.py); its trials are its replicates, pooled over
the runs given: one per training seed ``cfg_seed`` or, where the trials' data seeds differ
(``cfg_data_seed``: a search with ``replicate_data``, a confirmation on fresh subsets), one per (training
seed, data seed), so the replicate is the joint draw of initialisation and data (:func:`replicate_keys`). *Plain fine-tuning* is λ = 0 with a constant
schedule. A configuration's *matched baseline* is the plain fine-tuning configuration identical in everything
that changes what the encoder learns from the task (everything except λ, the λ schedule and the
URIEL/projection settings: ``URIEL_KEYS``, role uriel). The two are paired on the training seed and the
language: ``D[lang, seed] = score(config) − score(baseline)``, "seed" being the replicate.

For each configuration and language role (``unseen`` = the test languages, ``seen``): Δ, its 95% interval
and p-value from one model of the [language × seed] differences
(:func:`alchemy_tune.analysis.stats.paired_effect`: languages and seeds both sampled), and Holm-adjusted
p-values over the configurations of the table (one family per table and role). A language with no score
in any seed is left out of that comparison and named; a missing cell is filled by the model, never by
dropping the seed. Where no baseline matches, the row says so and has no Δ: an unpaired difference is never
shown as one. Per-language intervals come from the test examples themselves
(:func:`alchemy_tune.analysis.stats.item_interval`, in :mod:`alchemy_tune.analysis.language_gains`), so they
hold with one seed.

Every function takes plain DataFrames (the trials table and a long table of per-language scores), so the
way results are read can change under it.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd

from alchemy_tune.trial.config import EXECUTION, REPLICATE, URIEL, TrialConfig, applies, is_plain, params_with_role
from alchemy_tune.analysis.stats import exact, holm, paired_effect

EXECUTION_KEYS = frozenset(params_with_role(EXECUTION, REPLICATE))
"""Settings that do not change what a configuration is (seed and data_seed: the replicate)."""
URIEL_KEYS = frozenset(params_with_role(URIEL))
"""Settings that only shape the URIEL loss: a matched baseline may differ in them (it has no URIEL loss)."""
ROLES = ("unseen", "seen")
ROLE_ORDER = ("seen", "val", "unseen")
"""The protocol's order: trained on, chosen with, tested on."""
ROLE_NAMES = {"unseen": "test languages", "seen": "seen languages", "val": "validation languages"}
PLAIN = "plain fine-tuning (λ=0)"
NO_BASELINE = "none: no plain fine-tuning (λ=0) run with the same other settings"
NO_COMMON_SEED = "none: the matched baseline shares no training seed with it"


def hashable(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(hashable(v) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def identity_columns(trials: pd.DataFrame) -> list[str]:
    return sorted(c for c in trials.columns if c.startswith("cfg_") and c[4:] not in EXECUTION_KEYS)


def replicate_keys(trials: pd.DataFrame) -> pd.Series:
    """Each trial's replicate: its training seed (``cfg_seed``) while every trial has one data seed, as in
    every run made before data seeds could vary (their analysis stays exactly what it was), else the text
    ``"seed/data_seed"``: a configuration and its baseline pair only where both trained with the same seed on
    the same subsets, and the model's seed factor is the joint replicate, a random effect like the seed."""
    seed = trials["cfg_seed"] if "cfg_seed" in trials else trials.get("seed", pd.Series(0, index=trials.index))
    data = trials.get("cfg_data_seed")
    if data is None or data.map(hashable).nunique(dropna=False) <= 1:
        return seed
    return pd.Series([f"{hashable(s)}/{hashable(d)}" for s, d in zip(seed, data)], index=trials.index,
                     dtype=object)


def searched_columns(trials: pd.DataFrame) -> list[str]:
    """Identity columns whose value differs between the trials (what the runs varied)."""
    return [c for c in identity_columns(trials) if trials[c].map(hashable).nunique(dropna=False) > 1]


def plain_rows(trials: pd.DataFrame) -> pd.Series:
    """Which trials are plain fine-tuning, by the one definition (:func:`alchemy_tune.trial.config.is_plain`)."""
    if "cfg_lambda" not in trials:
        return pd.Series(False, index=trials.index)
    schedules = (trials["cfg_lambda_schedule"] if "cfg_lambda_schedule" in trials
                 else pd.Series(None, index=trials.index, dtype=object))
    return pd.Series([is_plain({"lambda": lam, "lambda_schedule": sched if isinstance(sched, str) else "constant"})
                      for lam, sched in zip(trials["cfg_lambda"], schedules)], index=trials.index, dtype=bool)


def config_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One text key per row of the values in ``columns`` (text groups and compares simply in pandas)."""
    if not columns:
        return pd.Series("()", index=frame.index, dtype=object)
    # a list, not Series.map: map turns None back into NaN in a float column, and is slower
    return pd.Series([repr(k) for k in zip(*([hashable(v) for v in frame[c]] for c in columns))],
                     index=frame.index, dtype=object)


def record_key(record: dict, columns: list[str]) -> str:
    """:func:`config_keys` of one record (a dict), without building a frame for it."""
    return repr(tuple(hashable(record.get(c)) for c in columns)) if columns else "()"


def short(column: str) -> str:
    return column.removeprefix("cfg_")


def _value_text(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def label(row: pd.Series | dict, columns: list[str]) -> str:
    """``λ=1, uriel_features=geo``: a configuration by the values the runs varied."""
    if not columns:
        return "the only configuration"
    values = {short(k): hashable(v) for k, v in dict(row).items() if str(k).startswith("cfg_")}
    values = {k: v for k, v in values.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
    parts = []
    for c in columns:
        if not applies(short(c), values):  # a setting that changes nothing here is not part of its name
            continue
        name = "λ" if c == "cfg_lambda" else short(c)
        parts.append(f"{name}={_value_text(hashable(row[c]))}")
    return ", ".join(parts) or "the only configuration"


class Units:
    """Per-language scores of every finished trial, keyed by configuration, seed and language."""

    def __init__(self, trials: pd.DataFrame, scores: pd.DataFrame, score_col: str | None = None,
                 items: Callable[[pd.DataFrame], pd.DataFrame] | None = None, step_col: str | None = None):
        """``trials``: finished trials (cfg_* columns); ``scores``: run_id, trial_id, lang, role, value;
        ``score_col``: the trials column that ranks configurations (the selection metric, never test);
        ``items``: reads the test examples' answers of some trials (run_id, trial_id -> run_id, trial_id,
        lang, item, metric, value), for per-language intervals; read only for the configurations detailed;
        ``step_col``: the trials column of the step each trial is scored at (to check a pair shares it)."""
        self.trials = trials
        self.identity = identity_columns(trials)
        self.searched = searched_columns(trials)
        baseline_cols = [c for c in self.identity if short(c) not in URIEL_KEYS]
        t = trials.assign(_config=config_keys(trials, self.identity),
                          _base=config_keys(trials, baseline_cols), _plain=plain_rows(trials),
                          _seed=replicate_keys(trials))
        self._keyed = t
        self._read_items = items
        self.configs = t.drop_duplicates("_config").set_index("_config")
        # config -> its row as a dict: a search of thousands of configurations reads rows one by one, and
        # DataFrame.loc / iterrows per row cost most of `analyze` at that scale
        self.records: dict[str, dict] = self.configs.to_dict("index")
        merged = scores.merge(t[["run_id", "trial_id", "_config", "_base", "_plain", "_seed"]],
                              on=["run_id", "trial_id"])
        self.roles = sorted(set(merged["role"]))
        # the same configuration and seed in two runs is one unit: its scores are averaged
        self._treated = _wide(merged, "_config")
        self._baselines = _wide(merged[merged["_plain"]], "_base")
        self.base_of, self.plain = self.configs["_base"], self.configs["_plain"]
        self.score = (t.groupby("_config")[score_col].mean() if score_col and score_col in t
                      else pd.Series(math.nan, index=self.configs.index))
        self._item_cache: dict[tuple, pd.DataFrame] = {}
        self._steps = (t.groupby(["_config", "_seed"])[step_col].first() if step_col and step_col in t
                       else pd.Series(dtype=float))
        primary = trials["primary_metric"].dropna() if "primary_metric" in trials else pd.Series([], dtype=object)
        self.kind = "classification" if primary.empty or primary.iloc[0] in ("accuracy", "macro_f1") \
            else "regression"

    def answers(self, key: str, lang: str, seeds, *, baseline: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
        """([seed × item] predictions, [item] labels) of a configuration (``baseline``: of the plain
        fine-tuning with base key ``key``) on one language's test examples; None where not stored."""
        if self._read_items is None:
            return None
        t = self._keyed
        trials = t[(t["_base"] == key) & t["_plain"]] if baseline else t[t["_config"] == key]
        trials = trials[trials["_seed"].isin(list(seeds))].drop_duplicates("_seed")  # one run's trial per seed
        cache_key = tuple(zip(trials["run_id"], trials["trial_id"]))
        if cache_key not in self._item_cache:
            found = self._read_items(trials[["run_id", "trial_id"]])
            self._item_cache[cache_key] = (found.merge(trials[["run_id", "trial_id", "_seed"]],
                                                       on=["run_id", "trial_id"]) if len(found) else found)
        mine = self._item_cache[cache_key]
        if mine.empty:
            return None
        first = mine[mine["lang"] == lang]
        pred = first[first["metric"] == "prediction"].pivot(index="_seed", columns="item", values="value")
        labels = first[first["metric"] == "label"].groupby("item")["value"].first()
        if set(pred.index) != set(seeds) or pred.isna().any().any() or not pred.columns.equals(labels.index):
            return None
        return pred.loc[list(seeds)].to_numpy(), labels.to_numpy()

    def step_mismatch(self, config: str, partner: str) -> str:
        """A caveat when two configurations' trials of the same replicate were scored at different steps
        (e.g. each twin at its own best step); "" when every shared replicate has one step."""
        if self._steps.empty:
            return ""
        mine, theirs = self._steps.get(config), self._steps.get(partner)
        if mine is None or theirs is None:
            return ""
        common = mine.index.intersection(theirs.index)
        differ = int((mine[common].to_numpy() != theirs[common].to_numpy()).sum())
        return (f"the twins were scored at different steps in {differ} of {len(common)} replicate(s)"
                if differ else "")

    def trials_with_baselines(self, configs) -> pd.DataFrame:
        """The trials of ``configs`` (keys) and of their matched plain fine-tuning baselines."""
        t = self._keyed
        bases = {self.base_of[k] for k in configs}
        keep = t["_config"].isin(set(configs)) | (t["_base"].isin(bases) & t["_plain"])
        return self.trials[keep.to_numpy()]

    def plain_twin(self, config: str) -> str | None:
        """The plain fine-tuning configuration matched to ``config`` (None: none)."""
        base = self.base_of[config]
        twins = self.configs.index[(self.configs["_base"] == base) & self.plain]
        return twins[0] if len(twins) else None

    def of_config(self, config: str) -> dict[str, pd.DataFrame]:
        """role -> [language × seed] scores of one configuration."""
        return self._treated.get(config, {})

    def baseline_of(self, config: str) -> dict[str, pd.DataFrame]:
        """role -> [language × seed] scores of its matched plain fine-tuning (empty dict: none)."""
        return self._baselines.get(self.base_of[config], {})


def _wide(frame: pd.DataFrame, key: str) -> dict[str, dict[str, pd.DataFrame]]:
    """key -> role -> [language × seed] mean scores, built with one groupby (pivoting per pair is slow)."""
    if frame.empty:
        return {}
    # One unstack for all keys, then numpy slices per (key, role) of the sorted rows: a search of thousands
    # of configurations has tens of thousands of blocks, too many for a pandas groupby. Each block keeps
    # only the seeds it has.
    grouped = frame.groupby([key, "role", "lang", "_seed"], sort=True)["value"]
    wide = grouped.mean().unstack("_seed")
    ran = grouped.size().unstack("_seed").notna().to_numpy()  # a seed that ran, even where its score is NaN
    values, seeds = wide.to_numpy(dtype=float), wide.columns
    keys, roles = wide.index.get_level_values(0), wide.index.get_level_values(1)
    langs = wide.index.get_level_values(2)
    starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]) | (roles[1:] != roles[:-1])])
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for start, end in zip(starts, np.r_[starts[1:], len(values)]):
        block = values[start:end]
        has = ran[start:end].any(axis=0)
        out.setdefault(keys[start], {})[roles[start]] = pd.DataFrame(
            block[:, has], index=pd.Index(langs[start:end], name="lang"), columns=seeds[has])
    return out


def delta_matrix(treated: dict, reference: dict, role: str) -> pd.DataFrame:
    """[language × seed] differences over the seeds both sides ran and every language either side scored;
    NaN where one side has no score (may be empty)."""
    a, b = treated.get(role), reference.get(role)
    if a is None or b is None:
        return pd.DataFrame()
    langs, seeds = a.index.union(b.index), a.columns.intersection(b.columns)
    if not len(seeds):
        return pd.DataFrame()
    return pd.DataFrame(exact(a.reindex(langs)[seeds].to_numpy() - b.reindex(langs)[seeds].to_numpy()),
                        index=langs, columns=seeds)


def summarize(d: pd.DataFrame) -> dict:
    """Δ, its intervals, p-value and design of one delta matrix (:func:`paired_effect`), with the effect."""
    if d.empty:
        e = paired_effect([])
        return e.as_dict() | {"languages": 0, "seeds": 0, "effect": e}
    e = paired_effect(d.to_numpy(), index=d.index)
    return e.as_dict() | {"effect": e}


def pooled_components(table: pd.DataFrame, role: str = "unseen") -> dict | None:
    """Variance components pooled over a table's comparisons, for planning the next design: the mean of each
    comparison's unbiased method-of-moments estimate, truncated at 0 once, after pooling (the median of
    sds already truncated per comparison runs low: most small seed components are estimated as 0). None
    where no comparison has all three (one seed or one language)."""
    keys = ("language", "seed", "residual")
    if table.empty or not all(f"var_{k}_{role}" in table for k in keys):
        return None
    pooled = {k: float(pd.to_numeric(table[f"var_{k}_{role}"], errors="coerce").mean()) for k in keys}
    if any(math.isnan(v) for v in pooled.values()):
        return None
    return {f"sd_{k}": math.sqrt(max(v, 0.0)) for k, v in pooled.items()}


def public(table: pd.DataFrame) -> pd.DataFrame:
    """The table without the effect objects :func:`fill_row` keeps for a later family (``_effect_*``)."""
    return table.drop(columns=[c for c in table.columns if str(c).startswith("_effect_")])


def holm_columns(table: pd.DataFrame, roles, margin: float | None = None) -> pd.DataFrame:
    """Holm-adjusted p-values over the table's rows (one family per role), the simultaneous 95% intervals
    that go with them (Bonferroni over the same family: an interval that excludes 0 is significant after
    the correction; Holm can be a little more powerful, never less, so a Holm p below 0.05 with a
    simultaneous interval touching 0 is possible and the two are labelled), and each row's reading (better,
    worse, equivalent within ±``margin``, inconclusive, identical) decided on the Holm p."""
    for role in roles:
        if f"p_{role}" not in table:
            continue
        table[f"p_holm_{role}"] = holm(table[f"p_{role}"].to_numpy(dtype=float))
        if f"_effect_{role}" not in table:
            continue
        effects = table[f"_effect_{role}"]
        family = int(table[f"p_{role}"].notna().sum())
        level = 1 - 0.05 / max(family, 1)
        sim = [e.interval(level) for e in effects]
        table[f"Δ{role}_lo_sim"] = [lo for lo, _ in sim]
        table[f"Δ{role}_hi_sim"] = [hi for _, hi in sim]
        table[f"reading_{role}"] = [e.reading(margin, p) for e, p in zip(effects, table[f"p_holm_{role}"])]
    if margin is not None and len(table):
        table["margin"] = margin
    return table


def _row(units: Units, config: str) -> dict:
    first = units.records[config]
    row = {short(c): hashable(first[c]) for c in units.searched}
    row["configuration"] = label(first, units.searched)
    row["selection_score"] = float(units.score.get(config, math.nan))
    return row


def fill_row(row: dict, d_by_role: dict, roles) -> dict:
    for role in roles:
        s = summarize(d_by_role[role]) if role in d_by_role else summarize(pd.DataFrame())
        row.update({f"Δ{role}": s["delta"], f"Δ{role}_lo": s["lo"], f"Δ{role}_hi": s["hi"],
                    f"Δ{role}_lo90": s["lo90"], f"Δ{role}_hi90": s["hi90"],
                    f"p_{role}": s["p"], f"languages_{role}": s["languages"], f"seeds_{role}": s["seeds"],
                    f"halfwidth_{role}": s["halfwidth"], f"caveats_{role}": "; ".join(s["caveats"]),
                    f"_effect_{role}": s["effect"],
                    **{f"{k}_{role}": s[k] for k in ("sd_language", "sd_seed", "sd_residual", "var_language",
                                                     "var_seed", "var_residual")}})
    return row


def _with_caveat(row: dict, roles, caveat: str) -> dict:
    for role in roles:
        if caveat and not math.isnan(row.get(f"Δ{role}", math.nan)):
            row[f"caveats_{role}"] = "; ".join(filter(None, [row.get(f"caveats_{role}"), caveat]))
    return row


def baseline_comparisons(units: Units, roles=ROLES, margin: float | None = None) -> pd.DataFrame:
    """One row per configuration that is not plain fine-tuning: Δ vs its matched baseline per role."""
    rows = []
    for config in units.configs.index:
        if units.plain[config]:
            continue
        row = _row(units, config)
        reference = units.baseline_of(config)
        if not reference:
            row["baseline"] = NO_BASELINE
            rows.append(fill_row(row, {}, roles))
            continue
        treated = units.of_config(config)
        d_by_role = {role: delta_matrix(treated, reference, role) for role in roles}
        row["baseline"] = "matched" if any(not d.empty for d in d_by_role.values()) else NO_COMMON_SEED
        rows.append(_with_caveat(fill_row(row, d_by_role, roles), roles,
                                 units.step_mismatch(config, units.plain_twin(config) or "")))
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = holm_columns(table, roles, margin)
    return table.sort_values(["selection_score", "configuration"], ascending=[False, True],
                             na_position="last").reset_index(drop=True)


def _reference_value(values: list, column: str):
    """The value the others are compared with: for the training size the largest (None, all the data, is
    the largest of all), else the setting's default when present, else the first in numeric (or text) order."""
    if column == "cfg_train_size":
        return None if None in values else max(values)
    default = hashable(TrialConfig().to_dict().get(short(column)))
    if default in values:
        return default
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)
    return sorted(values, key=lambda v: (v is None, v if numeric else str(v)))[0]


def _follows(configs: pd.DataFrame, column: str, leader: str) -> bool:
    """Whether ``column`` varies only with ``leader``: one value per value of ``leader``, several in all (a
    setting of one choice, e.g. AlchemyScale's ``scale_interval`` given with ``lambda_schedule``). Such a
    setting belongs to the choice it follows, so it does not stop a comparison along ``leader``."""
    pairs = {(hashable(a), hashable(b)) for a, b in zip(configs[leader], configs[column])}
    leaders = {a for a, _ in pairs}
    # ...and values of ``leader`` repeat: when every configuration has its own (a continuous setting of a
    # random search), everything is trivially one value per value, and nothing follows it
    return len(leaders) == len(pairs) and len({b for _, b in pairs}) > 1 and len(configs) > len(leaders)


def dimension_comparisons(units: Units, column: str, roles=ROLES, margin: float | None = None
                          ) -> tuple[pd.DataFrame, str | None]:
    """Configurations against the same configuration with ``column`` at its reference value (TrialConfig's
    default when present, e.g. constant schedule, linear projection), paired by seed and language.
    Settings of the URIEL loss are compared among λ > 0 configurations only (plain fine-tuning ignores them).
    """
    if column not in units.searched:
        return pd.DataFrame(), f"{short(column)} was not varied"
    configs = units.configs
    candidates = configs[~units.plain] if short(column) in URIEL_KEYS else configs
    values = sorted({hashable(v) for v in candidates[column]}, key=lambda v: (v is None, str(v)))
    if len(values) < 2:
        return pd.DataFrame(), f"{short(column)} takes one value among the configurations it applies to"
    ref = _reference_value(values, column)
    others = [c for c in units.identity if c != column and not _follows(candidates, c, column)]
    by_rest = {}
    records = [(config, units.records[config]) for config in candidates.index]
    for config, first in records:
        if hashable(first[column]) == ref:
            by_rest[tuple(hashable(first[c]) for c in others)] = config
    rows = []
    for config, first in records:
        if hashable(first[column]) == ref:
            continue
        row = _row(units, config)
        row["reference"] = f"{short(column)}={_value_text(ref)}"
        partner = by_rest.get(tuple(hashable(first[c]) for c in others))
        if partner is None:
            row["paired"] = "none: no run of the same configuration at the reference value"
            rows.append(fill_row(row, {}, roles))
            continue
        treated, reference = units.of_config(config), units.of_config(partner)
        d_by_role = {role: delta_matrix(treated, reference, role) for role in roles}
        row["paired"] = "yes" if any(not d.empty for d in d_by_role.values()) else "none: no common seed"
        rows.append(_with_caveat(fill_row(row, d_by_role, roles), roles, units.step_mismatch(config, partner)))
    table = holm_columns(pd.DataFrame(rows), roles, margin)
    return table.reset_index(drop=True), None
