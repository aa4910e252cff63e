"""The two instruments that separate "typology helps" from "an extra loss regularises".

- :func:`control_comparisons`: each configuration trained on the real URIEL vectors against the same
  configuration trained on a control (``uriel_control`` shuffled or random: the same loss and scale, no
  information about which language is which; :mod:`alchemy_tune.languages.controls`), paired by language
  and seed, with the languages × seeds model of every other comparison. This is the comparison the
  method's claim rests on: a configuration that beats plain fine-tuning but not its control helps as a
  regulariser, not through typology.
- :func:`distance_tables`: each held-out language's Δ against its typological distance to the seen
  languages, and the meta-regression across languages (:mod:`alchemy_tune.analysis.typology`).
"""

from __future__ import annotations

import math

import pandas as pd

from alchemy_tune.analysis import language_gains as G
from alchemy_tune.analysis import paired as P
from alchemy_tune.analysis import typology as T
from alchemy_tune.languages import langinfo

CONTROL = "cfg_uriel_control"
CONTROLS = ("shuffled", "random")


def _is_real(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == "none"


def control_comparisons(units: P.Units, roles=P.ROLES, margin: float | None = None
                        ) -> tuple[pd.DataFrame, str | None]:
    """One row per (configuration on the real vectors, control) that both ran: Δ = real − control per role,
    from the same model as the comparisons with plain fine-tuning, Holm over the table's rows per role."""
    if CONTROL not in units.identity or all(_is_real(r.get(CONTROL)) for r in units.records.values()):
        return pd.DataFrame(), None  # no configuration trained on a control: nothing to pair
    shown = [c for c in units.searched if c != CONTROL]
    rows = []
    for config, record in units.records.items():
        if units.plain[config] or not _is_real(record.get(CONTROL)):
            continue
        for control in CONTROLS:
            key = P.record_key({**record, CONTROL: control}, units.identity)
            if key not in units.records:
                continue
            row = {"configuration": P.label(record, shown), "control": control,
                   "selection_score": float(units.score.get(config, math.nan))}
            d_by_role = {role: P.delta_matrix(units.of_config(config), units.of_config(key), role) for role in roles}
            rows.append(P.fill_row(row, d_by_role, roles))
    if not rows:
        return pd.DataFrame(), None
    table = P.holm_columns(pd.DataFrame(rows), roles, margin)
    return table, ("URIEL vs its control: Δ = the configuration on the real vectors − the same configuration "
                   "on a control (shuffled: another language's vector; random: each feature drawn from its "
                   "values over the languages), paired by language and seed; Holm over this table's rows")


def distance_tables(units: P.Units, config: str | None, langs: pd.DataFrame, per_lang: pd.DataFrame | None = None
                    ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(per held-out language: Δ with its interval and the covariates; the meta-regression over the test
    languages; notes) for ``config`` against its matched baseline. ``langs``: the runs' per-language rows
    (lang, uriel_code, role), for the seen languages' codes; ``per_lang``: its per-language table when the
    caller has it (:func:`alchemy_tune.analysis.language_gains.language_table`, whose intervals cost a bootstrap)."""
    if config is None:
        return pd.DataFrame(), pd.DataFrame(), []
    per_lang = G.language_table(units, config) if per_lang is None else per_lang
    if per_lang.empty:
        return pd.DataFrame(), pd.DataFrame(), []
    record = units.records[config]
    spec = record.get("cfg_uriel_features")
    if not isinstance(spec, str):
        return pd.DataFrame(), pd.DataFrame(), ["no URIEL feature set recorded: no distances"]
    codes = langs.drop_duplicates("lang").set_index("lang")["uriel_code"].to_dict()
    roles = langs.drop_duplicates("lang").set_index("lang")["role"].to_dict()
    held = per_lang[per_lang["role"] != "seen"]
    held_codes = {lang: codes.get(lang, lang) for lang in held["lang"]}
    seen_codes = {lang: code for lang, code in codes.items() if roles.get(lang) == "seen"}
    every = {**held_codes, **seen_codes}
    scripts = {lang: _script(lang, code) for lang, code in every.items()}
    families = {lang: langinfo.lookup(lang, code).family for lang, code in every.items()}
    covariates, notes = T.distances(held_codes, seen_codes, spec, str(record.get("cfg_uriel_source") or "lang2vec"),
                                    str(record.get("cfg_missing") or "zero"), scripts, families)
    table = held[["lang", "role", "delta", "delta_lo", "delta_hi", "seeds"]].merge(covariates, on="lang")
    fit = T.meta_regression(table[table["role"] == "unseen"])
    return table.sort_values("uriel_nearest" if "uriel_nearest" in table else "lang").reset_index(drop=True), \
        fit, notes


def _script(lang: str, code: str) -> str:
    """A SIB-200 folder code names its script (``zho_Hant``); other codes take the report's table."""
    if "_" in lang and len(lang.split("_", 1)[1]) == 4:
        return lang.split("_", 1)[1]
    return langinfo.lookup(lang, code).script
