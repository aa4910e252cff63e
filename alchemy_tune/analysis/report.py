"""The analysis of run(s) as tables, notes and a verdict (:func:`compute`), and as a report folder:
``report.md`` opening with the verdict, PNG plots and ``tables.json`` (:func:`write_report`). The
``analyze`` command prints the same tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from alchemy_tune.analysis import controls as CT
from alchemy_tune.analysis import design as D
from alchemy_tune.analysis import language_gains as G
from alchemy_tune.analysis import analyze as A
from alchemy_tune.analysis import paired as P
from alchemy_tune.analysis import verdict as V
from alchemy_tune.analysis import plots
from alchemy_tune.analysis import scaling_report as SR
from alchemy_tune.analysis.importance import disagreements, param_importance
from alchemy_tune.core.aligned import aligned_lines


def compute(runs: A.Runs, *, top: int, importance: str) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[str]]:
    """Every table of the analysis, per table a note when it is empty or approximate, and the verdict.

    The search's tables (leaderboard, comparisons, per-setting tables, scaling, importance, Pareto) hold
    search trials only; the confirmation's table, the verdict and the per-language detail hold confirmation
    trials only when there are any: their seeds are fresh, so the chosen configuration's score is not the
    maximum of the draws that chose it. Nothing pools the two."""
    tables, notes = {}, {}
    confirmed = bool(runs.confirm_runs)
    search = runs.part(confirm=False) if confirmed else runs
    tables["leaderboard"] = A.leaderboard(search, top)

    def put(name, result):
        table, note = result
        tables[name] = table
        if note:
            notes[name] = note

    u = A.units(search)
    put("comparisons", A.comparisons(u, runs.margin))
    controls, controls_note = CT.control_comparisons(u, margin=runs.margin)
    if not controls.empty:  # only runs that trained controls have this table
        put("controls", (controls, controls_note))
    by_setting, continuous = A.dimensions(u, runs.space, runs.margin)
    for dim, result in by_setting.items():
        put(f"by:{dim}", result)
    if continuous:
        notes["comparisons"] = (f"{', '.join(continuous)}: drawn from a range, so no per-value table (each "
                                "configuration has its own value); see the importance table")
    if confirmed:
        v_runs = runs.part(confirm=True)
        v_units = A.units(v_runs)
        v_table = A.comparisons(v_units, runs.margin)[0]
        declared = A.declared_label(v_units, v_runs)
        tables["confirmed"] = v_table
        family = f"the confirmation's configurations ({len(v_table)}, fresh seeds)"
    else:
        v_units, declared = u, None
        v_table, family = V.primary_family(tables["comparisons"], runs.primary, runs.margin)
    verdict = V.verdict(v_table, confirmed=confirmed, oracle=runs.oracle, declared=declared, margin=runs.margin,
                        margin_declared=not runs.margin_source.startswith("the default"))
    tables["design"] = D.design_table(v_table, V.focus(v_table, declared), runs, prior=(
        D.components_of(tables["comparisons"], "the search's comparisons (the pilot of this confirmation)")
        if confirmed else None))
    notes["design"] = D.NOTE
    put("sensitivity", D.sensitivity(runs.part(confirm=confirmed) if confirmed else search, v_table, runs,
                                     v_units, confirmed=confirmed))
    if "No verdict" not in verdict[0]:
        verdict.append(("[oracle: selection saw test-language dev data] " if runs.oracle else "")
                       + f"Headline family: {family}; every other table is exploratory, each its own Holm family.")
    for name in [n for n in tables if n == "comparisons" or n.startswith("by:")]:
        if not tables[name].empty:
            notes[name] = "; ".join(filter(None, [notes.get(name), f"exploratory: Holm over this table's "
                                                                   f"{len(tables[name])} rows, per role"]))
    best = V.focus(v_table, declared)
    key = A.config_key(v_units, best) if best is not None else None
    name = best["configuration"] if best is not None else ""
    tables["language_deltas"] = G.language_table(v_units, key) if key else pd.DataFrame()
    tables["family_deltas"] = G.grouped_language_deltas(v_units, key, "family") if key else pd.DataFrame()
    tables["script_deltas"] = G.grouped_language_deltas(v_units, key, "script") if key else pd.DataFrame()
    tables["per_language"] = A.per_language_scores(v_units, key, name)
    for table in ("language_deltas", "family_deltas", "script_deltas", "per_language"):
        notes[table] = (f"{name} vs its matched plain fine-tuning baseline (test split)" if key else
                        "no configuration with a matched baseline")
    if key and tables["language_deltas"]["delta_lo"].isna().all():
        notes["language_deltas"] += ("; these runs stored no test examples, so no per-language interval")
    distances, fit, distance_notes = CT.distance_tables(v_units, key, (v_runs if confirmed else search).langs,
                                                        tables["language_deltas"] if key else None)
    if not distances.empty:
        tables["distances"], tables["distance_fit"] = distances, fit
        notes["distances"] = "; ".join([f"{name}: each held-out language's Δ against its distance to the seen "
                                        "languages (docs/analysis.md, \"Gain vs typological distance\")",
                                        *distance_notes])
        notes["distance_fit"] = ("meta-regression over the test languages, one covariate at a time: slope of Δ "
                                 "per unit of the covariate, 95% interval, p and Holm p over the covariates; "
                                 "the prediction interval of a new language's Δ at the covariate's median "
                                 "(binary covariates: at 1)")
    scaling_tables, scaling_notes, scaling_verdict = SR.analyse(u, margin=runs.margin)
    tables.update(scaling_tables)
    notes.update(scaling_notes)
    verdict += scaling_verdict
    put("importance", param_importance(search.trials, search.score, importance, space=runs.space))
    clash = disagreements(tables["importance"], {n: t for n, t in tables.items() if n.startswith("by:")})
    if clash:  # importance near zero where a paired comparison of the setting is significant: say so
        notes["importance"] = " ".join([*clash, notes.get("importance", "")]).strip()
    tables["pareto_front"] = A.pareto_front(search)
    if not tables["pareto_front"].empty and runs.split == "dev":
        notes["pareto_front"] = ("NOT FOR CHOOSING: 'unseen' is the test languages' own dev split; the front is "
                                 "for reading the trade-off (choose with the selection metric)")
    tables = {name: P.public(table) for name, table in tables.items()}
    if runs.oracle:  # every table says so, in every format
        for table in tables.values():
            if not table.empty and "selection" not in table:
                table.insert(0, "selection", "oracle")
    return tables, notes, verdict


METHOD = ("Δ, its 95% and 90% intervals and p come from one model of the [language × seed] differences: a "
          "two-way random-effects model (languages and training seeds both sampled) read through its "
          "generalized pivotal quantity, so an interval excludes 0 exactly when p < 0.05 (docs/analysis.md, "
          "\"Statistics\"). n = languages × seeds. p_holm: Holm-corrected over the configurations of its table "
          "and role, each table its own family; the simultaneous intervals (sim) go with it. Readings: better "
          "or worse (Holm p < 0.05), equivalent (the 90% interval inside ±margin: two one-sided tests at 5%), "
          "else inconclusive. The verdict uses the confirmation's family when confirmation runs are "
          "given (fresh seeds); every other table is exploratory. Per-language intervals: a paired bootstrap "
          "over the language's test examples.")

TITLES = {
    "design": "Design: planned power (a priori) and achieved precision",
    "sensitivity": "Sensitivity: the headline comparisons with each trial scored at its own best step",
    "leaderboard": "Leaderboard (trials, by the selection metric)",
    "comparisons": "Paired comparisons: each configuration vs its matched plain fine-tuning baseline "
                   "(test split; unseen = test languages)",
    "confirmed": "Confirmation runs: the same comparisons on fresh seeds",
    "controls": "URIEL vs its control: each configuration on the real vectors vs the same on a control",
    "distances": "Gain vs typological distance: each held-out language",
    "distance_fit": "Gain vs typological distance: meta-regression over the test languages",
    "scaling": "Scaling: test-split score against training examples per language",
    "scaling_fits": "Scaling curves fitted: power law with a ceiling and log-linear",
    "scaling_delta": "Δ(n): each size's paired Δ vs plain fine-tuning at that size",
    "scaling_trend": "Does Δ change with data? (size × λ interaction, slope per e-fold of data)",
    "data_efficiency": "Data efficiency: examples per language to reach plain fine-tuning's fitted score at the largest size",
    "language_deltas": "Per-language gain of the best configuration",
    "family_deltas": "Gain by language family (test languages)", "script_deltas": "Gain by script (test languages)",
    "per_language": "Per-language test scores", "importance": "Parameter importance",
    "pareto_front": "Pareto front (seen vs unseen: test languages' dev scores, not for choosing)",
}


def title(name: str) -> str:
    if name.startswith("by:"):
        return f"{name[3:]}: each value vs the reference value, all else equal (paired by seed)"
    return TITLES[name]


def _cell(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.4f}" if abs(value) >= 1e-3 else f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


def text_table(table: pd.DataFrame) -> str:
    """Plain aligned text; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in table.itertuples(index=False)]
    numeric = {i for i, c in enumerate(table.columns) if pd.api.types.is_numeric_dtype(table[c])}
    return "\n".join(aligned_lines(table.columns, cells, right=numeric))


def _breakable(text: str) -> str:
    """A configuration label may wrap inside a '+'-joined feature set (a zero-width space after each '+'),
    so that long labels fit the page; numbers never break."""
    return text.replace("+", "+\u200b") if "=" in text or "_" in text else text


def markdown_table(table: pd.DataFrame) -> str:
    rows = [[_breakable(_cell(v)).replace("|", "\\|") for v in row] for row in table.itertuples(index=False)]
    # a header may wrap after each '_' (p_holm_unseen): the cells, not the names, set a column's width
    head = "| " + " | ".join(str(c).replace("_", "_\u200b") for c in table.columns) + " |"
    return "\n".join([head, "|" + "---|" * len(table.columns)] + ["| " + " | ".join(r) + " |" for r in rows])


def records(table: pd.DataFrame) -> list[dict]:
    return json.loads(table.to_json(orient="records", force_ascii=False, date_format="iso"))


SHOWN = ("design", "leaderboard", "comparisons", "controls", "confirmed", "sensitivity", "language_deltas",
         "family_deltas", "script_deltas", "distances", "distance_fit", *SR.TABLES, "importance", "pareto_front")


def shown(tables) -> list[str]:
    """Tables in reading order: the comparisons, one per searched setting, then the details."""
    names = [n for n in SHOWN if n in tables]
    dims = [n for n in tables if n.startswith("by:")]
    at = names.index("comparisons") + 1 if "comparisons" in names else len(names)
    return names[:at] + dims + names[at:]


SIZES = ("sign_change_at", "needs")
"""Columns that are examples per language: whole numbers, inf = never."""
LEVELS = ("score", "top", "a", "b", "intercept", "at", "importance", "ratio")
"""Columns that are levels, not differences: no sign (every other interval is a difference, signed)."""


def _number(value, column: str) -> str:
    if column in SIZES:
        return "never" if value == math.inf else "" if value != value else f"{value:.0f}"
    return f"{value:.4f}" if column in LEVELS else f"{value:+.4f}"


def _interval(mean, lo, hi, column: str = "Δ") -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    return f"{_number(mean, column)} [{_number(lo, column)}, {_number(hi, column)}]"


def compact(table: pd.DataFrame) -> pd.DataFrame:
    """Human view of a table: ``Δ [lo, hi]`` in one cell, p-values beside it (JSON/CSV keep the numbers)."""
    if table.empty:
        return table
    out = table.copy()
    for mean in [c for c in table.columns if f"{c}_lo" in table and f"{c}_hi" in table]:
        out[mean] = [_interval(m, lo, hi, mean) for m, lo, hi in zip(table[mean], table[f"{mean}_lo"],
                                                                      table[f"{mean}_hi"])]
        out = out.drop(columns=[f"{mean}_lo", f"{mean}_hi"])
    pairs = [(f"ci90_{role}", f"Δ{role}_lo90", f"Δ{role}_hi90") for role in P.ROLES]
    pairs += [(f"ci_sim_{role}", f"Δ{role}_lo_sim", f"Δ{role}_hi_sim") for role in P.ROLES]
    pairs += [(f"{c[:-5]}_90", c, f"{c[:-5]}_hi90") for c in table.columns
              if str(c).endswith("_lo90") and not str(c).startswith(("Δunseen", "Δseen"))]
    for name, lo, hi in pairs:
        if lo in out and hi in out:  # the 90% (equivalence) and simultaneous (Holm) intervals, one cell each
            out[name] = ["" if a is None or a != a else f"[{_number(a, name)}, {_number(b, name)}]"
                         for a, b in zip(out[lo], out[hi])]
            out = out.drop(columns=[lo, hi])
    for role in P.ROLES:
        if f"p_holm_{role}" in out:  # next to its Δ, and the reading next to it
            follow = [f"p_holm_{role}"] + ([f"reading_{role}"] if f"reading_{role}" in out else [])
            cols = [c for c in out.columns if c not in follow]
            anchor = f"p_{role}" if f"p_{role}" in cols else f"Δ{role}"
            at = cols.index(anchor) + 1 if anchor in cols else len(cols)
            out = out[cols[:at] + follow + cols[at:]]
    for role in P.ROLES:  # the design in one cell: languages × seeds
        if f"languages_{role}" in out and f"seeds_{role}" in out:
            design = [f"{int(n)}×{int(k)}" if n == n and n else "" for n, k in
                      zip(out[f"languages_{role}"], out[f"seeds_{role}"])]
            out.insert(list(out.columns).index(f"languages_{role}"), f"n_{role}", design)
        if f"caveats_{role}" in out and not out[f"caveats_{role}"].fillna("").astype(bool).any():
            out = out.drop(columns=f"caveats_{role}")
    if "configuration" in out:  # the searched settings come first; the label says the same in one cell
        keep = ["selection"] if "selection" in out else []
        out = out[keep + list(out.columns[list(out.columns).index("configuration"):])]
    return out.drop(columns=[c for c in out.columns if c.startswith(("languages_", "seeds_", "mde_", "sd_", "var_"))])


PAGE_STYLE = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;"
              "line-height:1.45}table{border-collapse:collapse;font-size:.85rem;margin:1rem 0;display:block;"
              "overflow-x:auto}th,td{border:1px solid #ccc;padding:.2rem .5rem;text-align:left;"
              "overflow-wrap:break-word}img{max-width:100%;height:auto}code{background:#f4f4f4}")

MAX_COLUMNS = 9
"""A table shows at most this many columns (what a reader needs to decide); the rest are in its CSV."""
DECIDING = ("configuration", "control", "reference", "rank", "status", "lang", "language", "role", "covariate",
            "family", "script", "setting", "parameter", "importance", "n", "slope", "prediction", "rule", "form",
            "monotone", "identified", "extrapolation", "intercept", "per_e_fold", "reading", "change", "examples",
            "ratio", "needs", "target")
"""Columns a shown table keeps first, before the Δ columns and the others in their order."""
MOVED_FIRST = ("run", "trial", "step", "config", "replicate", "selection_score", "baseline", "paired", "seeds",
               "p_unseen", "p_seen", "p_val", "ci_sim_unseen", "ci_sim_seen", "ci90_unseen", "ci90_seen",
               "halfwidth_unseen", "halfwidth_seen", "margin", "caveats_unseen", "caveats_seen", "uriel_centroid",
               "at", "better", "held_out_rmse", "note", "extrapolated_to", "predicted", "observed", "extrapolation_ok",
               "words", "halfwidth", "target_at", "p", "sign_change_at", "n_unseen", "n_seen")
"""Columns a table too wide to read moves to its CSV first."""


def fitted(table: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """(the columns shown, whether any moved to the table's CSV): at most :data:`MAX_COLUMNS`, the settings
    of a leaderboard row joined into one ``configuration`` cell."""
    if len(table.columns) <= MAX_COLUMNS:
        return table, False
    view = table.drop(columns=[c for c in MOVED_FIRST if c in table])
    settings = [c for c in view.columns if c not in DECIDING and not c.startswith(("Δ", "p_", "n_", "dev_", "test_",
                                                                                     "delta", "prediction"))]
    if "configuration" not in view and len(settings) > 2:  # a leaderboard: one cell names the configuration
        joined = [", ".join(f"{c}={v}" for c, v in zip(settings, row)) for row in view[settings].itertuples(index=False)]
        view = view.drop(columns=settings)
        view.insert(min(2, len(view.columns)), "configuration", joined)
    return view[list(view.columns[:MAX_COLUMNS])], True


def write_html(out: Path, markdown_text: str) -> Path:
    """``report.html`` beside ``report.md``: the same report as one standalone page, its figures inlined
    (base64 PNG), so it opens in a browser from anywhere, with no server and no folder beside it."""
    import base64
    import re

    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")

    def inline(match: re.Match) -> str:
        image = out / match.group(1)
        if not image.is_file():
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(image.read_bytes()).decode()}"'

    body = re.sub(r'src="([^"/:]+\.png)"', inline, body)
    page = (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>alchemy-tune analysis</title>"
            f"<style>{PAGE_STYLE}</style></head><body>\n{body}\n</body></html>\n")
    path = out / "report.html"
    _put(path, page)
    return path


def _put(path: Path, text: str) -> None:
    """Write ``text`` so that a reader (or a full disk) never leaves a half-written file in its place."""
    from alchemy_tune.results.run_dir import write_bytes_atomic

    write_bytes_atomic(str(path), text.encode("utf-8"))


def _empty_reason(name: str, notes: dict) -> str:
    note = notes.get(name, "")
    return f"{title(name).lower()}" + (f" ({note})" if note and len(note) < 160 else "")


def write_report(runs: A.Runs, tables, notes, verdict, out: Path, importance: str) -> list[Path]:
    """report.md (opening with the verdict), the same as a standalone report.html, PNG plots and tables.json in
    ``out``; returns the PNG paths."""
    out.mkdir(parents=True, exist_ok=True)
    primary = runs.trials["primary_metric"].dropna() if "primary_metric" in runs.trials else pd.Series([])
    split = runs.split
    label = f"test {primary.iloc[0] if len(primary) else 'score'}"
    seen, unseen = runs.rank_col(f"{split}_seen"), runs.rank_col(f"{split}_unseen")
    tag = "ORACLE selection (saw test-language dev data)" if runs.oracle else ""
    scaling_settings = list(dict.fromkeys(tables["scaling"]["setting"])) if "setting" in tables["scaling"] else []
    made = {
        "per_language": plots.per_language(tables["per_language"], label, out / "per_language.png", tag=tag),
        "comparisons": plots.deltas(tables["comparisons"], "configuration", "Δ vs plain fine-tuning",
                                    out / "comparisons.png", tag=tag),
        "confirmed": plots.deltas(tables.get("confirmed", pd.DataFrame()), "configuration",
                                  "Confirmed: Δ vs plain fine-tuning (fresh seeds)", out / "confirmed.png", tag=tag),
        "scaling": plots.scaling(tables["scaling"], out / "scaling.png", tag=tag),
        "scaling_delta": plots.delta_curves(tables.get("scaling_delta", pd.DataFrame()), out / "scaling_delta.png",
                                            tag=tag, settings=scaling_settings),
        "pareto_front": plots.pareto(A._scored(runs), seen, unseen, tables["pareto_front"], split,
                                     out / "pareto.png", tag=tag),
        "language_deltas": plots.language_deltas(tables["language_deltas"], out / "language_deltas.png", tag=tag),
        "distances": plots.distance(tables.get("distances", pd.DataFrame()), tables.get("distance_fit", pd.DataFrame()),
                                    out / "distances.png", tag=tag),
        "importance": plots.importance(tables["importance"], importance, out / "importance.png", tag=tag),
    }
    for name in (n for n in tables if n.startswith("by:")):
        dim = name[3:]
        made[name] = plots.deltas(tables[name], "configuration", f"{dim}: Δ vs {dim} at its reference value",
                                  out / f"by_{dim}.png", tag=tag)
    lines = ["# alchemy-tune analysis" + (" — ORACLE selection" if runs.oracle else ""), "", "## Verdict", ""]
    for sentence in verdict:  # a paragraph each: one sentence per line in the HTML too
        lines += [f"{sentence}", ""]
    headline = made.get("confirmed") or made.get("comparisons")  # the verdict's own comparisons, first
    if headline is not None:
        lines += [f"![{title('confirmed' if made.get('confirmed') else 'comparisons')}]({headline.name})", ""]
    lines += [f"Runs: {', '.join(runs.dirs)}  ",
              f"Ranking: `{runs.metric}` at each trial's best step, as the search and `confirm` rank (never test "
              f"data); every comparison scores each trial at its {runs.at} evaluation. Margin: ±{runs.margin:g}, {runs.margin_source}. Δ = configuration "
              "− matched plain fine-tuning (λ=0, same other settings), paired by training seed and language on "
              "the test split. " + METHOD, ""]
    names = shown(tables) + ["per_language"]
    empty = [name for name in names if tables[name].empty]
    lines += [f"- {n}" for n in runs.notes]
    if empty:  # one line for every section that has nothing, instead of a section each
        lines.append(f"- Nothing to show for: {'; '.join(_empty_reason(name, notes) for name in empty)}")
    lines.append("")
    for name in (n for n in names if n not in empty):
        lines += [f"## {title(name)}", ""]
        if notes.get(name):
            lines += [f"_{notes[name]}_", ""]
        if made.get(name) and made[name] != headline:  # every figure once: the headline one is above
            lines += [f"![{title(name)}]({made[name].name})", ""]
        view, moved = fitted(compact(tables[name]))
        lines += [markdown_table(view), ""]
        if moved:
            csv = out / "csv" / f"{name.replace(':', '_')}.csv"
            csv.parent.mkdir(parents=True, exist_ok=True)
            _put(csv, compact(tables[name]).to_csv(index=False))
            lines += [f"_Every column: [{csv.parent.name}/{csv.name}]({csv.parent.name}/{csv.name})_", ""]
    _put(out / "report.md", "\n".join(lines))
    write_html(out, "\n".join(lines))
    _put(out / "tables.json", json.dumps({"verdict": verdict, "oracle": runs.oracle,
                                          "tables": {k: records(v) for k, v in tables.items()}},
                                         indent=1, ensure_ascii=False))
    return [p for p in made.values() if p is not None]
