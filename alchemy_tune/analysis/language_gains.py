"""Which languages gain: one configuration against its matched baseline, language by language (with an
interval over each language's test examples), and by language family or script (the languages × seeds
model over each group's languages)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from alchemy_tune.analysis.paired import ROLE_ORDER, Units, delta_matrix
from alchemy_tune.analysis.stats import exact, item_interval, paired_effect
from alchemy_tune.languages import langinfo


def language_table(units: Units, config) -> pd.DataFrame:
    """Per language: Δ vs the matched baseline (mean over the seeds both have), its interval over the
    language's test examples (a paired bootstrap; NaN where the run stored no examples), name, family,
    script."""
    reference = units.baseline_of(config)
    base_key = units.base_of[config]
    rows = []
    for role in units.roles:
        d = delta_matrix(units.of_config(config), reference, role)
        for lang, deltas in d.iterrows():
            seeds = [s for s, v in deltas.items() if not math.isnan(v)]
            if not seeds:
                continue
            lo = hi = math.nan
            mine, base = units.answers(config, lang, seeds), units.answers(base_key, lang, seeds, baseline=True)
            if mine is not None and base is not None and np.array_equal(mine[1], base[1]):
                _, lo, hi = item_interval(mine[0], base[0], mine[1], units.kind)
            rows.append({"lang": lang, "role": role, "delta": float(exact(deltas[seeds].mean())), "delta_lo": lo,
                         "delta_hi": hi, "seeds": len(seeds)})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    info = [langinfo.lookup(lang, lang) for lang in table["lang"]]
    table.insert(1, "language", [i.name for i in info])
    table["family"] = [i.family for i in info]
    table["script"] = [i.script for i in info]
    order = {role: i for i, role in enumerate(ROLE_ORDER)}
    return (table.assign(_order=table["role"].map(order)).sort_values(["_order", "delta"], ascending=[True, False])
            .drop(columns="_order").reset_index(drop=True))


def grouped_language_deltas(units: Units, config, by: str, role: str = "unseen") -> pd.DataFrame:
    """Δ per language family or script, every group from the same languages × seeds model (a group of one
    language: over its seeds only, and it says so), so no row mixes in the per-language intervals over test
    examples of :func:`language_table`."""
    per_lang = language_table(units, config)
    if per_lang.empty:
        return per_lang
    d = delta_matrix(units.of_config(config), units.baseline_of(config), role)
    mine = per_lang[per_lang["role"] == role].set_index("lang")
    groups = mine[by]
    rows = []
    for group, langs in groups.groupby(groups):
        e = paired_effect(d.loc[langs.index].to_numpy(), index=langs.index)
        how = "languages × seeds" if len(langs) > 1 else f"one language ({langs.index[0]}): over its seeds only"
        rows.append({by: group, "languages": len(langs), "delta": e.delta, "delta_lo": e.lo, "delta_hi": e.hi,
                     "interval": how})
    return pd.DataFrame(rows).sort_values("delta", ascending=False).reset_index(drop=True)
