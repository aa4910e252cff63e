"""The verdict: plain sentences on how the focus configuration compares with plain fine-tuning (better,
worse, equivalent within the declared margin, or inconclusive), and the headline family its Holm correction
runs over.

The focus is the configuration a confirmation chose before it ran (its first), else the search's best by
its selection metric (never test), within the space's declared primary comparison (``search.primary``)
when it has one. Other configurations that differ significantly are counted, never quoted: the largest of
many noisy estimates overstates its own effect.
"""

from __future__ import annotations

import math

import pandas as pd

from alchemy_tune.analysis.paired import ROLES, hashable, holm_columns
from alchemy_tune.analysis.stats import ALPHA, BETTER, EQUIVALENT, IDENTICAL, READINGS, WORSE, reading

VERDICT_NAMES = {"unseen": "the test languages (never fine-tuned on)", "seen": "the seen languages"}


def _fmt(x: float) -> str:
    return f"{x:+.3f}"


def _fmt4(x: float) -> str:
    """Four decimals where a limit is compared with the margin (three could round it onto the margin)."""
    return f"{x:+.4f}"


def _p(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else (f"{x:.2g}" if x >= 0.001 else f"{x:.1e}")


def direction(row: pd.Series | dict, role: str) -> int:
    """+1 significantly better than its baseline, −1 significantly worse, 0 neither: Holm-adjusted p below
    0.05 (its interval, from the same model, then excludes zero on the side of Δ)."""
    p = row.get(f"p_holm_{role}", math.nan)
    if p is None or not p < ALPHA:
        return 0
    return 1 if row.get(f"Δ{role}", 0) > 0 else -1


def row_reading(row: pd.Series | dict, role: str, margin: float | None) -> str:
    """The row's reading (:func:`alchemy_tune.analysis.stats.reading`) on its Holm-adjusted p."""
    stored = row.get(f"reading_{role}")
    if isinstance(stored, str) and stored:
        return stored
    return reading(row.get(f"Δ{role}", math.nan), row.get(f"Δ{role}_lo90", math.nan),
                   row.get(f"Δ{role}_hi90", math.nan), row.get(f"p_holm_{role}", math.nan), margin)


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


def _margin_text(margin: float | None) -> str:
    return f"±{margin:.3f}" if margin else "no margin (none declared)"


def sentence_for(reading_: str, where: str, name: str, row, role: str, margin: float | None,
                 stats_text: str) -> str:
    """One comparison in words: better, worse, equivalent within ±margin, inconclusive (with the effects it
    cannot rule out) or identical. Nothing here says "no effect" unless equivalence is shown."""
    lo90, hi90 = row.get(f"Δ{role}_lo90", math.nan), row.get(f"Δ{role}_hi90", math.nan)
    if reading_ == BETTER:
        return f"On {where}, {name} is better than plain fine-tuning: {stats_text}."
    if reading_ == WORSE:
        return f"On {where}, {name} is worse than plain fine-tuning: {stats_text}."
    if reading_ == EQUIVALENT:
        return (f"On {where}, {name} is equivalent to plain fine-tuning within {_margin_text(margin)} (both "
                f"one-sided tests at 5%: the 90% interval [{_fmt4(lo90)}, {_fmt4(hi90)}] lies inside the margin): "
                f"{stats_text}.")
    if reading_ == IDENTICAL:
        return (f"On {where}, {name} scored exactly as plain fine-tuning on every language and seed "
                f"(Δ = {_fmt(row.get(f'Δ{role}'))}): identical scores, no interval applies.")
    return (f"On {where}, the comparison of {name} with plain fine-tuning is inconclusive: {stats_text}. "
            f"Effects from {_fmt(row.get(f'Δ{role}_lo'))} to {_fmt(row.get(f'Δ{role}_hi'))} cannot be ruled "
            f"out, and equivalence within {_margin_text(margin)} is not shown (the 90% interval "
            f"[{_fmt4(lo90)}, {_fmt4(hi90)}] is not inside it).")


def stats_words(row, role: str, family: int) -> str:
    """Δ, its 95% interval, the simultaneous one that goes with the Holm correction, Holm's p, the design."""
    text = f"Δ = {_fmt(row[f'Δ{role}'])} [95% CI {_fmt(row[f'Δ{role}_lo'])}, {_fmt(row[f'Δ{role}_hi'])}]"
    lo_sim, hi_sim = row.get(f"Δ{role}_lo_sim", math.nan), row.get(f"Δ{role}_hi_sim", math.nan)
    if family > 1 and lo_sim == lo_sim:
        text += f" (simultaneous over {family}: [{_fmt(lo_sim)}, {_fmt(hi_sim)}])"
    return (text + f", Holm-corrected p = {_p(row[f'p_holm_{role}'])} over {family} configuration"
            f"{'s' * (family != 1)} ({_design(row, role)})")


def verdict(table: pd.DataFrame, *, confirmed: bool, oracle: bool = False, declared: str | None = None,
            margin: float | None = None, margin_declared: bool = True) -> list[str]:
    """Plain sentences, per role: the focus configuration (:func:`focus`; chosen by the selection score or
    declared by the confirmation, never by test) against plain fine-tuning, read as better, worse,
    equivalent within ±``margin`` or inconclusive, with its intervals, Holm-corrected p, design and caveats;
    then how the other configurations of the same family read, without quoting the largest (a maximum over
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
        name = f"the {which} configuration ({best['configuration']})"
        sentence = sentence_for(row_reading(best, role, margin), VERDICT_NAMES[role], name, best, role, margin,
                                stats_words(best, role, family))
        others = table[(table["configuration"] != best["configuration"]) & table[f"Δ{role}"].notna()]
        if len(others):
            counts = pd.Series([row_reading(r, role, margin) for _, r in others.iterrows()]).value_counts()
            parts = [f"{int(counts[k])} {k}" for k in READINGS if k in counts]
            sentence += (f" The {len(others)} other configuration(s) read: {', '.join(parts)}"
                         + ("." if confirmed else " (search seeds: exploratory until confirmed)."))
        caveats = best.get(f"caveats_{role}") or ""
        if caveats:
            sentence += f" Caveats: {caveats}."
        out.append(prefix + sentence)
    if out and margin and not margin_declared:
        out.append(prefix + f"The margin ±{margin:g} is the metric's default: the space declared none before the "
                            "run (search.margin), so an equivalence here is against a margin chosen afterwards.")
    return out


def primary_family(table: pd.DataFrame, primary: dict | None, margin: float | None = None
                   ) -> tuple[pd.DataFrame, str]:
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
    rows = holm_columns(rows, ROLES, margin)
    described = ", ".join(f"{k}={v}" for k, v in primary.items())
    return rows, f"the declared primary comparison ({described}: {len(rows)} configuration(s))"
