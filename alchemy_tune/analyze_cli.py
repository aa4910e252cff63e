"""``alchemy-tune analyze RUN_DIR [RUN_DIR ...]``: terminal tables, a Markdown report with PNG plots.

Tables go to stdout (``--format table`` aligned text, ``csv`` or ``json``); the report (``report.md``,
``*.png``, ``tables.json``) goes to ``--out`` (default ``RUN_DIR/report`` of the first run).
Several runs (e.g. one per seed) are pooled: confidence intervals then span them.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
from pathlib import Path

import pandas as pd

from . import analyze as A
from . import constants as C
from . import plots
from .errors import UsageError
from .importance import EVALUATORS, param_importance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s) (local path or URI)")
    parser.add_argument("--out", default=None,
                        help="report folder (default: RUN_DIR/report of the first run)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="how the tables are printed")
    parser.add_argument("--metric", choices=C.AVERAGE_KEYS, default="dev_unseen",
                        help="score that ranks trials; its split (dev/test) is used for every table")
    parser.add_argument("--at", choices=("best", "final"), default="best",
                        help="each trial's evaluation to use: best dev objective, or the last one")
    parser.add_argument("--top", type=int, default=10, help="leaderboard rows")
    parser.add_argument("--importance", choices=EVALUATORS, default="ped-anova",
                        help="parameter-importance evaluator (fanova/mdi need scikit-learn)")
    parser.add_argument("--no-report", action="store_true", help="print the tables only")


def compute(runs: A.Runs, *, top: int, importance: str) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Every table of the analysis and, per table, a note when it is empty or approximate."""
    tables, notes = {"leaderboard": A.leaderboard(runs, top)}, {}

    def put(name, result):
        table, note = result
        tables[name] = table
        if note:
            notes[name] = note

    put("uriel_ablation", A.ablation(runs))
    put("lambda_schedules", A.compare(runs, "cfg_lambda_schedule"))
    put("projections", A.compare(runs, "cfg_projection"))
    put("scaling", A.scaling(runs))
    put("language_deltas", A.language_deltas(runs))
    tables["family_deltas"] = A.grouped_deltas(tables["language_deltas"], "family")
    tables["script_deltas"] = A.grouped_deltas(tables["language_deltas"], "script")
    tables["per_language"] = A.per_language_scores(runs)
    put("importance", param_importance(runs.trials, runs.score, importance))
    tables["pareto_front"] = A.pareto_front(runs)
    return tables, notes


TITLES = {
    "leaderboard": "Leaderboard",
    "uriel_ablation": "URIEL-subset ablation (λ>0; Δ = vs matched λ=0 baseline)",
    "lambda_schedules": "λ schedules", "projections": "Projections", "scaling": "Scaling (training size)",
    "language_deltas": "Per-language gain over the baseline", "family_deltas": "Gain by language family",
    "script_deltas": "Gain by script", "per_language": "Per-language scores",
    "importance": "Parameter importance", "pareto_front": "Pareto front (seen vs unseen)",
}


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
    header = [str(c) for c in table.columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]

    def line(row):
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(row, widths, numeric)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in cells])


def markdown_table(table: pd.DataFrame) -> str:
    rows = [[_cell(v).replace("|", "\\|") for v in row] for row in table.itertuples(index=False)]
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    return "\n".join([head, "|" + "---|" * len(table.columns)] + ["| " + " | ".join(r) + " |" for r in rows])


def _records(table: pd.DataFrame) -> list[dict]:
    return json.loads(table.to_json(orient="records", force_ascii=False, date_format="iso"))


SHOWN = ("leaderboard", "uriel_ablation", "lambda_schedules", "projections", "scaling", "family_deltas",
         "script_deltas", "importance", "pareto_front")


def print_tables(tables, notes, general, fmt: str) -> None:
    if fmt == "json":
        payload = {"notes": general, "table_notes": notes, "tables": {k: _records(v) for k, v in tables.items()}}
        print(json.dumps(payload, indent=1, ensure_ascii=False))
        return
    if fmt == "csv":
        for name, table in tables.items():
            buffer = io.StringIO()
            table.to_csv(buffer, index=False)
            print(f"# {name}\n{buffer.getvalue()}")
        return
    for note in general:
        print(f"note: {note}")
    for name in SHOWN:
        print(f"\n== {TITLES[name]} ==")
        if notes.get(name):
            print(f"({notes[name]})")
        print(text_table(tables[name]) if not tables[name].empty else "(nothing to show)")


def write_report(runs: A.Runs, tables, notes, out: Path, importance: str) -> list[Path]:
    """report.md + PNG plots + tables.json in ``out``; returns the PNG paths."""
    out.mkdir(parents=True, exist_ok=True)
    primary = runs.trials["primary_metric"].dropna() if "primary_metric" in runs.trials else pd.Series([])
    split = runs.split
    label = f"{split} {primary.iloc[0] if len(primary) else 'score'}"
    seen, unseen = runs.col(f"{split}_seen"), runs.col(f"{split}_unseen")
    made = {
        "per_language": plots.per_language(tables["per_language"], label, out / "per_language.png"),
        "uriel_ablation": plots.ablation(tables["uriel_ablation"], split, out / "uriel_ablation.png"),
        "lambda_schedules": plots.compare(tables["lambda_schedules"], "lambda_schedule", split,
                                          "λ-schedule comparison", out / "lambda_schedules.png"),
        "projections": plots.compare(tables["projections"], "projection", split, "Projection comparison",
                                     out / "projections.png"),
        "scaling": plots.scaling(tables["scaling"], split, out / "scaling.png"),
        "pareto_front": plots.pareto(A._scored(runs), seen, unseen, tables["pareto_front"], split,
                                     out / "pareto.png"),
        "language_deltas": plots.language_deltas(tables["language_deltas"], split,
                                                 out / "language_deltas.png"),
        "importance": plots.importance(tables["importance"], importance, out / "importance.png"),
    }
    lines = [f"# alchemy-tune analysis", "", f"Runs: {', '.join(runs.dirs)}  ",
             f"Metric: `{runs.metric}` at each trial's {runs.at} evaluation; CIs are t-based 95%.", ""]
    lines += [f"- {n}" for n in runs.notes] + [""]
    for name in ("leaderboard", "uriel_ablation", "lambda_schedules", "projections", "scaling",
                 "per_language", "language_deltas", "family_deltas", "script_deltas", "importance",
                 "pareto_front"):
        lines += [f"## {TITLES[name]}", ""]
        if notes.get(name):
            lines += [f"_{notes[name]}_", ""]
        if made.get(name):
            lines += [f"![{TITLES[name]}]({made[name].name})", ""]
        lines += [markdown_table(tables[name]) if not tables[name].empty else "_nothing to show_", ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
    (out / "tables.json").write_text(json.dumps({k: _records(v) for k, v in tables.items()}, indent=1,
                                                ensure_ascii=False), encoding="utf-8")
    return [p for p in made.values() if p is not None]


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError(f"--top: must be a positive integer, got {args.top}")
    runs = A.load_runs(args.run_dirs, metric=args.metric, at=args.at)
    tables, notes = compute(runs, top=args.top, importance=args.importance)
    print_tables(tables, notes, runs.notes, args.format)
    if not args.no_report:
        first = args.run_dirs[0]
        if args.out is None and "://" in first:
            raise UsageError(f"{first}: a remote run needs --out DIR for the report")
        out = Path(args.out or os.path.join(first, "report"))
        pngs = write_report(runs, tables, notes, out, args.importance)
        if args.format == "table":
            print(f"\nreport: {out / 'report.md'} ({len(pngs)} plots)")
    return 0
