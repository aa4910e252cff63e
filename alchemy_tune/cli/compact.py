"""``alchemy-tune compact RUN_DIR``: merge a run's result parts into one Parquet file per table."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder (local path or URI) whose search is not running")


def run(args: argparse.Namespace) -> int:
    from alchemy_tune.results.schema import compact
    from alchemy_tune.results.run_record import RunRecord

    RunRecord.read(args.run_dir)  # a one-line error for a folder that is not a run
    for table, n in compact(args.run_dir).items():
        print(f"{table}: {n} files -> 1" if n else f"{table}: already one file")
    return 0
