"""``alchemy-tune analyze RUN_DIR [RUN_DIR ...]``: terminal tables, a Markdown report with PNG plots.

Tables go to stdout (``--format table`` aligned text, ``csv`` or ``json``); the report (``report.md``,
``*.png``, ``tables.json``) goes to ``--out`` (default ``RUN_DIR/report`` of the first run).
Several runs (e.g. one per seed) are pooled: confidence intervals then span them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

from alchemy_tune.analysis import analyze as A
from alchemy_tune.analysis.importance import EVALUATORS
from alchemy_tune.analysis.report import compact, compute, records, shown, text_table, title, write_report
from alchemy_tune.core.errors import UsageError
from alchemy_tune.results.run_dir import check_writable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folder(s) (local path or URI)")
    parser.add_argument("--out", default=None,
                        help="report folder (default: RUN_DIR/report of the first run)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="how the tables are printed")
    parser.add_argument("--metric", default=None,
                        help="dev average that ranks trials and chooses the detailed configuration "
                             "(default: the runs' selection metric, e.g. dev_select)")
    parser.add_argument("--at", choices=("final", "best"), default="final",
                        help="each trial's evaluation that scores it: final (the default: one step for both "
                             "twins of a comparison) or best (each trial's own best dev step; the report's "
                             "sensitivity table shows it either way)")
    parser.add_argument("--margin", type=float, default=None,
                        help="equivalence margin in the primary metric's units (0.01 = one accuracy point): "
                             "overrides the space's search.margin and the metric's default")
    parser.add_argument("--top", type=int, default=10, help="leaderboard rows")
    parser.add_argument("--importance", choices=EVALUATORS, default="ped-anova",
                        help="parameter-importance evaluator (fanova/mdi need scikit-learn)")
    parser.add_argument("--no-report", action="store_true", help="print the tables only")


def print_tables(tables, notes, general, verdict, fmt: str) -> None:
    if fmt == "json":
        payload = {"verdict": verdict, "notes": general, "table_notes": notes,
                   "tables": {k: records(v) for k, v in tables.items()}}
        print(json.dumps(payload, indent=1, ensure_ascii=False))
        return
    if fmt == "csv":
        for line in verdict + general:
            print(f"# note: {line}")
        for name, table in tables.items():
            buffer = io.StringIO()
            table.to_csv(buffer, index=False)
            print(f"# {name}\n{buffer.getvalue()}")
        return
    print("== Verdict ==")
    for line in verdict:
        print(line)
    print()
    for note in general:
        print(f"note: {note}")
    for name in shown(tables):
        print(f"\n== {title(name)} ==")
        if notes.get(name):
            print(f"({notes[name]})")
        print(text_table(compact(tables[name])) if not tables[name].empty else "(nothing to show)")


def run_space(record, run_dir: str):
    """The space a run's record stores, else (an older run) its space file read by the search layer."""
    from alchemy_tune.analysis.stored_space import stored_space
    from alchemy_tune.tuning.space_file import space_of_run

    return stored_space(record, run_dir) or space_of_run(record, run_dir)


REPORT_FILES = ("report.md", "report.html", "tables.json", "csv")
"""What a report folder holds besides its PNGs: a folder of only these (and PNGs) is a report to replace."""


def _report_only(folder: Path) -> bool:
    return all(p.name in REPORT_FILES or p.suffix == ".png" for p in folder.iterdir())


def publish_report(out: Path, write):
    """``write(folder)`` into a staging folder beside ``out``, then put it in ``out``'s place: a report that
    fails half-way (a full disk) leaves ``out`` as it was, never one analysis's report.md beside another's
    tables.json. An ``out`` that holds other files too gets the new files moved in one by one."""
    import shutil
    import uuid

    stage = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        result = write(stage)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        raise UsageError(f"--out {out}: the report could not be written ({exc.strerror or exc}); nothing in "
                         f"{out} changed") from None
    if not out.exists():
        os.replace(stage, out)
    elif _report_only(out):  # two renames: a crash between them leaves two whole reports, never a mix
        aside = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, aside)
        os.replace(stage, out)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        for item in stage.iterdir():
            target = out / item.name
            if target.is_dir() and item.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        shutil.rmtree(stage, ignore_errors=True)
    return [out / Path(p).name for p in result]


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError(f"--top: must be a positive integer, got {args.top}")
    out = None
    if not args.no_report:
        first = args.run_dirs[0]
        if args.out is None and "://" in first:
            raise UsageError(f"{first}: a remote run needs --out DIR for the report")
        out = Path(args.out or os.path.join(first, "report"))
        check_writable(str(out), "--out")  # before the work: a report that cannot be written fails first
    runs = A.load_runs(args.run_dirs, metric=args.metric, at=args.at, space_of=run_space, margin=args.margin)
    tables, notes, verdict = compute(runs, top=args.top, importance=args.importance)
    print_tables(tables, notes, runs.notes, verdict, args.format)
    if out is not None:
        pngs = publish_report(out, lambda folder: write_report(runs, tables, notes, verdict, folder,
                                                                 args.importance))
        if args.format == "table":
            print(f"\nreport: {out / 'report.md'} ({len(pngs)} plots)")
    return 0
