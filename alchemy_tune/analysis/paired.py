"""Paired comparisons: each configuration against its matched baseline, language by language, seed by seed.

A *configuration* is every ``cfg_*`` value of a trial except the execution ones and the seed
(``EXECUTION_KEYS``: roles execution and replicate in config.py); its trials are its replicates (one per
training seed ``cfg_seed``), pooled over the runs given. *Plain fine-tuning* is λ = 0 with a constant
schedule. A configuration's *matched baseline* is the plain fine-tuning configuration identical in everything
that changes what the encoder learns from the task (everything except λ, the λ schedule and the
URIEL/projection settings: ``URIEL_KEYS``, role uriel). The two are paired on the training seed and the
language: ``D[lang, seed] = score(config) − score(baseline)``.

For each configuration and language role (``unseen`` = the test languages, ``seen``): the mean of ``D`` with a
two-way bootstrap CI (languages × seeds, :func:`alchemy_tune.analysis.stats.bootstrap_ci`), a Wilcoxon signed-rank
test across languages on the per-language means, and Holm-adjusted p-values over all configurations of the
table (one family per role). Where no baseline matches, the row says so and has no Δ: an unpaired difference
is never shown as one.

Every function takes plain DataFrames (the trials table and a long table of per-language scores), so the
way results are read can change under it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alchemy_tune.languages import langinfo
from alchemy_tune.trial.config import EXECUTION, REPLICATE, URIEL, TrialConfig, params_with_role
from alchemy_tune.analysis.stats import bootstrap_ci, holm, wilcoxon_p

EXECUTION_KEYS = frozenset(params_with_role(EXECUTION, REPLICATE))
"""Settings that do not change what a configuration is (seed: the replicate)."""
URIEL_KEYS = frozenset(params_with_role(URIEL))
"""Settings that only shape the URIEL loss: a matched baseline may differ in them (it has no URIEL loss)."""
ROLES = ("unseen", "seen")
ROLE_NAMES = {"unseen": "test languages", "seen": "seen languages", "val": "validation languages"}
PLAIN = "plain fine-tuning (λ=0)"
NO_BASELINE = "none: no plain fine-tuning (λ=0) run with the same other settings"
NO_COMMON_SEED = "none: the matched baseline shares no training seed with it"
ALPHA = 0.05


def hashable(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(hashable(v) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def identity_columns(trials: pd.DataFrame) -> list[str]:
    return sorted(c for c in trials.columns if c.startswith("cfg_") and c[4:] not in EXECUTION_KEYS)


def searched_columns(trials: pd.DataFrame) -> list[str]:
    """Identity columns whose value differs between the trials (what the runs varied)."""
    return [c for c in identity_columns(trials) if trials[c].map(hashable).nunique(dropna=False) > 1]


def is_plain(trials: pd.DataFrame) -> pd.Series:
    """λ = 0 with a constant schedule (a dynamic schedule sets its own weights and ignores λ)."""
    if "cfg_lambda" not in trials:
        return pd.Series(False, index=trials.index)
    plain = trials["cfg_lambda"] == 0
    if "cfg_lambda_schedule" in trials:
        plain &= trials["cfg_lambda_schedule"].fillna("constant") == "constant"
    return plain


def config_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One text key per row of the values in ``columns`` (text groups and compares simply in pandas)."""
    if not columns:
        return pd.Series("()", index=frame.index, dtype=object)
    return pd.Series([repr(k) for k in zip(*(frame[c].map(hashable) for c in columns))], index=frame.index,
                     dtype=object)


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
    parts = []
    for c in columns:
        name = "λ" if c == "cfg_lambda" else short(c)
        parts.append(f"{name}={_value_text(hashable(row[c]))}")
    return ", ".join(parts)


class Units:
    """Per-language scores of every finished trial, keyed by configuration, seed and language."""

    def __init__(self, trials: pd.DataFrame, scores: pd.DataFrame, score_col: str | None = None):
        """``trials``: finished trials (cfg_* columns); ``scores``: run_id, trial_id, lang, role, value;
        ``score_col``: the trials column that ranks configurations (the selection metric, never test)."""
        self.trials = trials
        self.identity = identity_columns(trials)
        self.searched = searched_columns(trials)
        baseline_cols = [c for c in self.identity if short(c) not in URIEL_KEYS]
        t = trials.assign(_config=config_keys(trials, self.identity),
                          _base=config_keys(trials, baseline_cols), _plain=is_plain(trials),
                          _seed=trials["cfg_seed"] if "cfg_seed" in trials else trials.get("seed", 0))
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
    wide = frame.groupby([key, "role", "lang", "_seed"], sort=True)["value"].mean().unstack("_seed")
    values, seeds = wide.to_numpy(dtype=float), wide.columns
    keys, roles = wide.index.get_level_values(0), wide.index.get_level_values(1)
    langs = wide.index.get_level_values(2)
    starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]) | (roles[1:] != roles[:-1])])
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for start, end in zip(starts, np.r_[starts[1:], len(values)]):
        block = values[start:end]
        has = ~np.isnan(block).all(axis=0)
        out.setdefault(keys[start], {})[roles[start]] = pd.DataFrame(
            block[:, has], index=pd.Index(langs[start:end], name="lang"), columns=seeds[has])
    return out


def delta_matrix(treated: dict, reference: dict, role: str) -> pd.DataFrame:
    """[language × seed] differences over the languages and seeds both sides have (may be empty)."""
    a, b = treated.get(role), reference.get(role)
    if a is None or b is None:
        return pd.DataFrame()
    langs, seeds = a.index.intersection(b.index), a.columns.intersection(b.columns)
    return (a.loc[langs, seeds] - b.loc[langs, seeds]).dropna(axis=1, how="any")


def summarize(d: pd.DataFrame, seed: int = 0) -> dict:
    """Δ, its CI and the Wilcoxon p of one delta matrix."""
    if d.empty:
        return {"delta": math.nan, "lo": math.nan, "hi": math.nan, "p": math.nan, "languages": 0, "seeds": 0}
    lo, hi = bootstrap_ci(d.to_numpy(), seed=seed)
    return {"delta": float(d.to_numpy().mean()), "lo": lo, "hi": hi, "p": wilcoxon_p(d.mean(axis=1)),
            "languages": d.shape[0], "seeds": d.shape[1]}


def _holm_columns(table: pd.DataFrame, roles) -> pd.DataFrame:
    for role in roles:
        if f"p_{role}" in table:
            table[f"p_holm_{role}"] = holm(table[f"p_{role}"].to_numpy(dtype=float))
    return table


def _row(units: Units, config: str) -> dict:
    first = units.records[config]
    row = {short(c): hashable(first[c]) for c in units.searched}
    row["configuration"] = label(first, units.searched)
    row["selection_score"] = float(units.score.get(config, math.nan))
    return row


def _fill(row: dict, d_by_role: dict, roles) -> dict:
    for role in roles:
        s = summarize(d_by_role[role]) if role in d_by_role else summarize(pd.DataFrame())
        row.update({f"Δ{role}": s["delta"], f"Δ{role}_lo": s["lo"], f"Δ{role}_hi": s["hi"],
                    f"p_{role}": s["p"], f"languages_{role}": s["languages"]})
        row["seeds"] = max(row.get("seeds", 0), s["seeds"])
    return row


def baseline_comparisons(units: Units, roles=ROLES) -> pd.DataFrame:
    """One row per configuration that is not plain fine-tuning: Δ vs its matched baseline per role."""
    rows = []
    for config in units.configs.index:
        if units.plain[config]:
            continue
        row = _row(units, config)
        reference = units.baseline_of(config)
        if not reference:
            row["baseline"] = NO_BASELINE
            rows.append(_fill(row, {}, roles))
            continue
        treated = units.of_config(config)
        d_by_role = {role: delta_matrix(treated, reference, role) for role in roles}
        row["baseline"] = "matched" if any(not d.empty for d in d_by_role.values()) else NO_COMMON_SEED
        rows.append(_fill(row, d_by_role, roles))
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = _holm_columns(table, roles)
    return table.sort_values(["selection_score", "configuration"], ascending=[False, True],
                             na_position="last").reset_index(drop=True)


def _reference_value(values: list, column: str):
    default = TrialConfig().to_dict().get(short(column))
    default = hashable(default)
    return default if default in values else sorted(values, key=lambda v: (v is None, str(v)))[0]


def _follows(configs: pd.DataFrame, column: str, leader: str) -> bool:
    """Whether ``column`` varies only with ``leader``: one value per value of ``leader``, several in all (a
    setting of one choice, e.g. AlchemyScale's ``scale_interval`` given with ``lambda_schedule``). Such a
    setting belongs to the choice it follows, so it does not stop a comparison along ``leader``."""
    pairs = {(hashable(a), hashable(b)) for a, b in zip(configs[leader], configs[column])}
    leaders = {a for a, _ in pairs}
    # ...and values of ``leader`` repeat: when every configuration has its own (a continuous setting of a
    # random search), everything is trivially one value per value, and nothing follows it
    return len(leaders) == len(pairs) and len({b for _, b in pairs}) > 1 and len(configs) > len(leaders)


def dimension_comparisons(units: Units, column: str, roles=ROLES) -> tuple[pd.DataFrame, str | None]:
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
            rows.append(_fill(row, {}, roles))
            continue
        treated, reference = units.of_config(config), units.of_config(partner)
        d_by_role = {role: delta_matrix(treated, reference, role) for role in roles}
        row["paired"] = "yes" if any(not d.empty for d in d_by_role.values()) else "none: no common seed"
        rows.append(_fill(row, d_by_role, roles))
    table = _holm_columns(pd.DataFrame(rows), roles)
    return table.reset_index(drop=True), None


def language_table(units: Units, config) -> pd.DataFrame:
    """Per language: Δ vs the matched baseline (mean over seeds, CI over seeds), name, family, script."""
    reference = units.baseline_of(config)
    rows = []
    for role in units.roles:
        d = delta_matrix(units.of_config(config), reference, role)
        for lang, deltas in d.iterrows():
            lo, hi = bootstrap_ci(deltas.to_numpy()[None, :])
            rows.append({"lang": lang, "role": role, "delta": float(deltas.mean()), "delta_lo": lo,
                         "delta_hi": hi, "seeds": len(deltas)})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    info = [langinfo.lookup(lang, lang) for lang in table["lang"]]
    table.insert(1, "language", [i.name for i in info])
    table["family"] = [i.family for i in info]
    table["script"] = [i.script for i in info]
    return table.sort_values(["role", "delta"], ascending=[True, False]).reset_index(drop=True)


def grouped_language_deltas(units: Units, config, by: str, role: str = "unseen") -> pd.DataFrame:
    """Δ per language family or script with a CI resampling its languages and seeds."""
    per_lang = language_table(units, config)
    if per_lang.empty:
        return per_lang
    d = delta_matrix(units.of_config(config), units.baseline_of(config), role)
    groups = per_lang[per_lang["role"] == role].set_index("lang")[by]
    rows = []
    for group, langs in groups.groupby(groups):
        block = d.loc[langs.index]
        lo, hi = bootstrap_ci(block.to_numpy())
        rows.append({by: group, "languages": len(block), "delta": float(block.to_numpy().mean()),
                     "delta_lo": lo, "delta_hi": hi})
    return pd.DataFrame(rows).sort_values("delta", ascending=False).reset_index(drop=True)


# ----------------------------------------------------------------------------- verdict
def _fmt(x: float) -> str:
    return f"{x:+.3f}"


def _p(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else (f"{x:.2g}" if x >= 0.001 else f"{x:.1e}")


def beats(row: pd.Series, role: str) -> bool:
    """Significantly better than its baseline: Holm-adjusted p below 0.05 and the CI above zero."""
    return (row.get(f"p_holm_{role}", math.nan) < ALPHA and row.get(f"Δ{role}_lo", math.nan) > 0)


def focus(table: pd.DataFrame) -> pd.Series | None:
    """The configuration a report details: the best by the selection score among those with a Δ."""
    if table.empty or "Δunseen" not in table:
        return None
    rows = table[table["Δunseen"].notna()]
    if rows.empty:
        return None
    if rows["selection_score"].notna().any():
        return rows.loc[rows["selection_score"].idxmax()]
    return rows.iloc[0]


def verdict(table: pd.DataFrame, *, confirmed: bool, oracle: bool = False) -> list[str]:
    """Plain sentences: per role, the best configuration (by the selection score, never test) against
    plain fine-tuning, with its CI and Holm-corrected p, or that none beats it at the 95% level."""
    which = "confirmed" if confirmed else "searched (not yet confirmed: `alchemy-tune confirm`)"
    prefix = "[oracle: selection saw test-language dev data] " if oracle else ""
    if table.empty or "Δunseen" not in table or table["Δunseen"].notna().sum() == 0:
        return [prefix + "No verdict: no configuration has a matched plain fine-tuning baseline "
                "(λ=0, same other settings, same seeds) in these runs."]
    best = focus(table)
    out = []
    for role in ROLES:
        if f"Δ{role}" not in table or math.isnan(best[f"Δ{role}"]):
            continue
        where = ROLE_NAMES[role]
        stats_text = (f"Δ = {_fmt(best[f'Δ{role}'])} [95% CI {_fmt(best[f'Δ{role}_lo'])}, "
                      f"{_fmt(best[f'Δ{role}_hi'])}], Holm-corrected Wilcoxon "
                      f"p = {_p(best[f'p_holm_{role}'])} ({int(best[f'languages_{role}'])} languages × "
                      f"{int(best['seeds'])} seeds)")
        winners = table[table.apply(lambda r: beats(r, role), axis=1)]
        if beats(best, role):
            sentence = (f"On {where}, the best {which} configuration ({best['configuration']}) beats plain "
                        f"fine-tuning: {stats_text}.")
        else:
            sentence = (f"On {where}, no configuration beats plain fine-tuning at the 95% level"
                        if winners.empty else f"On {where}, the best {which} configuration does not beat "
                                              "plain fine-tuning at the 95% level")
            sentence += f": the best {which} configuration ({best['configuration']}) has {stats_text}."
            if not winners.empty:
                top = winners.loc[winners[f"Δ{role}"].idxmax()]
                sentence += (f" {len(winners)} other configuration(s) do, the largest being "
                             f"{top['configuration']} (Δ = {_fmt(top[f'Δ{role}'])} [{_fmt(top[f'Δ{role}_lo'])}, "
                             f"{_fmt(top[f'Δ{role}_hi'])}], p = {_p(top[f'p_holm_{role}'])}).")
        out.append(prefix + sentence)
    return out
