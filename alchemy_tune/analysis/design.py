"""The report's design section and sensitivity table: what the design could detect, planned before the
run, next to what it achieved; and the headline comparisons under the other checkpoint rule.

Power is planned, never computed from the sample it describes: a "detectable effect" from a run's own
standard error restates its p-value and is badly biased when a variance component is truncated at 0
(Hoenig & Heisey 2001, "The abuse of power", Am. Stat. 55(1)). The a-priori figures here use variance
components that did not come from the comparisons they size: a confirmation's from the search that chose it
(its pilot), a search's from the stated defaults ``plan`` uses (:data:`alchemy_tune.analysis.power.ASSUMED`),
the same figures ``alchemy-tune plan`` prints. The achieved 95% half-width is shown beside them, labelled:
it is the precision the run reached, not a power.
"""

from __future__ import annotations

import math

import pandas as pd

from alchemy_tune.analysis import analyze as A
from alchemy_tune.core.errors import UsageError
from alchemy_tune.analysis import paired as P
from alchemy_tune.analysis.power import ASSUMED, design_mde, seeds_for_margin

NOTE = ("a priori: planned from variance components that are not this run's own comparisons (power is never "
        "computed from the sample it describes); achieved: this run's interval, a precision, not a power")


def components_of(table: pd.DataFrame, source: str) -> tuple[dict, str] | None:
    """The variance components on test languages pooled over a comparisons table
    (:func:`alchemy_tune.analysis.paired.pooled_components`), and their source; None where they are not all
    estimable (one seed or one language)."""
    fitted = P.pooled_components(table)
    return None if fitted is None else (fitted, f"{source}: pooled over {len(table)} comparison(s)")


def design_table(table: pd.DataFrame, focus, runs: A.Runs, prior: tuple[dict, str] | None = None) -> pd.DataFrame:
    """quantity -> value rows: the headline's design, the a-priori smallest detectable Δ (alone and under
    Holm over its family), the margin and the seeds equivalence within it needs, the achieved half-width."""
    if focus is None or table.empty:
        return pd.DataFrame()
    n_lang, n_seed = int(focus.get("languages_unseen", 0) or 0), int(focus.get("seeds_unseen", 0) or 0)
    if n_lang < 1 or n_seed < 1:
        return pd.DataFrame()
    components, source = prior or (ASSUMED, "the stated defaults `alchemy-tune plan` uses without --prior")
    family = int(table["Δunseen"].notna().sum()) if "Δunseen" in table else 1
    mde = design_mde(n_lang, n_seed, **components)
    mde_family = design_mde(n_lang, n_seed, **components, alpha=0.05 / max(family, 1))
    seeds = seeds_for_margin(n_lang, runs.margin, **components)
    data_varies = "cfg_data_seed" in runs.trials and runs.trials["cfg_data_seed"].nunique(dropna=True) > 1
    rows = [
        ("headline design", f"{n_lang} test language(s) × {n_seed} replicate(s) "
                            f"({'training seed and data subset' if data_varies else 'training seeds; one data subset'})"),
        ("variance components (a priori)", ", ".join(f"{k} {v:.4f}" for k, v in components.items()) + f" — {source}"),
        ("smallest Δ detectable with 80% power (a priori, α = 0.05 two-sided)", f"{mde:.4f}"),
        (f"the same under Holm over the headline family of {family}", f"{mde_family:.4f}"),
        ("equivalence margin", f"±{runs.margin:g} ({runs.margin_source})"),
        ("replicates equivalence within the margin needs (a priori, 80% power at Δ = 0)",
         f"{seeds}" if seeds else "more than 50: the margin is too tight for these components"),
        ("achieved 95% half-width of the headline Δ (after the run: precision, not power)",
         f"{float(focus.get('halfwidth_unseen', math.nan)):.4f}"),
    ]
    return pd.DataFrame(rows, columns=["quantity", "value"])


def sensitivity(part: A.Runs, table: pd.DataFrame, runs: A.Runs, units: P.Units, *, confirmed: bool
                ) -> tuple[pd.DataFrame, str | None]:
    """The headline family's comparisons under both checkpoint rules side by side: the report's rule
    (``runs.at``) and the other (each trial's own best dev step when the rule is the final step), Holm over
    the family under each rule. Only the family's trials and their baselines' are read again (``units``:
    the family's own, keyed), so a search of thousands of configurations pays for its headline only."""
    if table.empty or "configuration" not in table or part.other_langs.empty:
        return pd.DataFrame(), None
    other = "best" if runs.at == "final" else "final"
    labels = set(table["configuration"])
    keys = {k for k, r in units.records.items() if P.label(r, units.searched) in labels}
    theirs, _ = A.comparisons(A.units(part, other_rule=True, trials=units.trials_with_baselines(keys)),
                              runs.margin)
    if theirs.empty:
        return pd.DataFrame(), None
    theirs = theirs[theirs["configuration"].isin(set(table["configuration"]))].copy()
    theirs = P.public(P.holm_columns(theirs, P.ROLES, runs.margin))
    keep = ["configuration", "Δunseen", "Δunseen_lo", "Δunseen_hi", "p_holm_unseen", "reading_unseen",
            "caveats_unseen"]
    rule_names = {"final": "final step (both twins)", "best": "each trial's own best step"}
    both = pd.concat([P.public(table).assign(rule=rule_names[runs.at]), theirs.assign(rule=rule_names[other])],
                     ignore_index=True)
    both = both[[keep[0], "rule", *[c for c in keep[1:] if c in both]]]
    both = both.sort_values(["configuration", "rule"], kind="stable").reset_index(drop=True)
    return both, (f"the {'confirmation' if confirmed else 'headline'} family under both checkpoint rules; the "
                  f"report's rule is the {rule_names[runs.at]}")


def variance_components(run_dir: str) -> tuple[dict, str]:
    """The variance components of a run's comparisons on test languages, pooled over its configurations
    (:func:`alchemy_tune.analysis.paired.pooled_components`), and where they come from: what `plan --prior`
    sizes a design with."""
    table, _ = A.comparisons(A.units(A.load_runs([run_dir])))
    if table.empty:
        raise UsageError(f"--prior {run_dir}: no paired comparison to fit variance components from")
    fitted = P.pooled_components(table)
    if fitted is None:
        raise UsageError(f"--prior {run_dir}: its comparisons have one seed or one language: the components are "
                         "not all estimable")
    return fitted, f"fitted on {run_dir} (pooled over its {len(table)} comparisons)"
