"""The verdict: plain sentences on whether the focus configuration beats plain fine-tuning, and the
headline family its Holm correction runs over.

The focus is the configuration a confirmation chose before it ran (its first), else the search's best by
its selection metric (never test), within the space's declared primary comparison (``search.primary``)
when it has one. Other configurations that differ significantly are counted, never quoted: the largest of
many noisy estimates overstates its own effect.
"""

from __future__ import annotations

import math

import pandas as pd

from alchemy_tune.analysis.paired import ROLE_NAMES, ROLES, hashable
from alchemy_tune.analysis.stats import ALPHA, holm


def _fmt(x: float) -> str:
    return f"{x:+.3f}"


def _p(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else (f"{x:.2g}" if x >= 0.001 else f"{x:.1e}")


def direction(row: pd.Series | dict, role: str) -> int:
    """+1 significantly better than its baseline, −1 significantly worse, 0 neither: Holm-adjusted p below
    0.05 (its interval, from the same model, then excludes zero on the side of Δ)."""
    p = row.get(f"p_holm_{role}", math.nan)
    if p is None or not p < ALPHA:
        return 0
    return 1 if row.get(f"Δ{role}", 0) > 0 else -1


def beats(row: pd.Series | dict, role: str) -> bool:
    return direction(row, role) > 0


def focus(table: pd.DataFrame, declared: str | None = None) -> pd.Series | None:
    """The configuration a report details: the ``declared`` one (a confirmation's first choice, fixed before
    its seeds ran) when it has a Δ, else the best by the selection score among those with a Δ."""
    if table.empty or "Δunseen" not in table:
        return None
    rows = table[table["Δunseen"].notna()]
    if rows.empty:
        return None
    if declared is not None and (rows["configuration"] == declared).any():
        return rows[rows["configuration"] == declared].iloc[0]
    if rows["selection_score"].notna().any():
        return rows.loc[rows["selection_score"].idxmax()]
    return rows.iloc[0]


def _design(row, role: str) -> str:
    languages, seeds = int(row.get(f"languages_{role}", 0) or 0), int(row.get(f"seeds_{role}", 0) or 0)
    return f"{languages} language{'s' * (languages != 1)} × {seeds} seed{'s' * (seeds != 1)}"


def verdict(table: pd.DataFrame, *, confirmed: bool, oracle: bool = False, declared: str | None = None) -> list[str]:
    """Plain sentences, per role: the focus configuration (:func:`focus`; chosen by the selection score or
    declared by the confirmation, never by test) against plain fine-tuning — better, worse, or no difference
    larger than the design could detect — with its interval, Holm-corrected p, design and caveats; then how
    many other configurations of the same family differ, without quoting the largest (a maximum over
    many noisy estimates overstates its own effect)."""
    which = "confirmed" if confirmed else "searched (not yet confirmed: `alchemy-tune confirm`)"
    prefix = "[oracle: selection saw test-language dev data] " if oracle else ""
    if table.empty or "Δunseen" not in table or table["Δunseen"].notna().sum() == 0:
        matched = not table.empty and "baseline" in table and (table["baseline"] == "matched").any()
        if matched:
            return [prefix + "No verdict: the configurations with a matched plain fine-tuning baseline have no "
                    "test-language score in common with it (see the caveats column)."]
        return [prefix + "No verdict: no configuration has a matched plain fine-tuning baseline "
                "(λ=0, same other settings, same seeds) in these runs."]
    best = focus(table, declared)
    family = int(table["Δunseen"].notna().sum())
    out = []
    for role in ROLES:
        if f"Δ{role}" not in table or math.isnan(best[f"Δ{role}"]):
            continue
        where = ROLE_NAMES[role]
        stats_text = (f"Δ = {_fmt(best[f'Δ{role}'])} [95% CI {_fmt(best[f'Δ{role}_lo'])}, "
                      f"{_fmt(best[f'Δ{role}_hi'])}], Holm-corrected p = {_p(best[f'p_holm_{role}'])} over "
                      f"{family} configuration{'s' * (family != 1)} ({_design(best, role)})")
        name = f"the {which} configuration ({best['configuration']})"
        sign = direction(best, role)
        if sign > 0:
            sentence = f"On {where}, {name} beats plain fine-tuning: {stats_text}."
        elif sign < 0:
            sentence = f"On {where}, {name} is significantly worse than plain fine-tuning: {stats_text}."
        else:
            sentence = f"On {where}, {name} does not differ from plain fine-tuning at the 95% level: {stats_text}"
            mde = best.get(f"mde_{role}", math.nan)
            sentence += (f"; this design detects |Δ| ≥ {abs(mde):.3f} with 80% power." if mde == mde else ".")
        others = table[(table["configuration"] != best["configuration"]) & table[f"Δ{role}"].notna()]
        signs = [direction(r, role) for _, r in others.iterrows()]
        better, worse = signs.count(1), signs.count(-1)
        if better or worse:
            sentence += (f" Of the {len(others)} other configuration(s): {better} significantly better, "
                         f"{worse} significantly worse than plain fine-tuning"
                         + ("." if confirmed else " (search seeds: exploratory until confirmed)."))
        caveats = best.get(f"caveats_{role}") or ""
        if caveats:
            sentence += f" Caveats: {caveats}."
        out.append(prefix + sentence)
    return out


def primary_family(table: pd.DataFrame, primary: dict | None) -> tuple[pd.DataFrame, str]:
    """The rows of a comparisons table in the declared headline family, Holm-adjusted among themselves, and
    its name. ``primary``: {parameter: value or [values]}; None or nothing matching: every row."""
    everything = f"every configuration vs plain fine-tuning ({len(table)})"
    if not primary or table.empty:
        return table, everything
    keep = pd.Series(True, index=table.index)
    for key, allowed in primary.items():
        allowed = [hashable(v) for v in (allowed if isinstance(allowed, list) else [allowed])]
        name = "lambda" if key in ("lambda", "lambda_") else key
        if name in table:
            keep &= table[name].map(lambda v: any(hashable(v) == a or (isinstance(v, float) and isinstance(
                a, (int, float)) and math.isclose(v, a)) for a in allowed))
    rows = table[keep].copy()
    if rows.empty:
        return table, everything + f"; the declared primary {primary} matched none"
    for role in ROLES:
        if f"p_{role}" in rows:
            rows[f"p_holm_{role}"] = holm(rows[f"p_{role}"].to_numpy(dtype=float))
    described = ", ".join(f"{k}={v}" for k, v in primary.items())
    return rows, f"the declared primary comparison ({described}: {len(rows)} configuration(s))"
