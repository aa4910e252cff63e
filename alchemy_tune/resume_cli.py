"""``alchemy-tune resume RUN_DIR``: continue a search whose driver died."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the search's run folder (STORAGE/NAME)")
    parser.add_argument("--address", help="join this Ray cluster ('auto' on a cluster node); default: embedded Ray")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")


def run(args: argparse.Namespace) -> int:
    from .resume import resume_search
    from .search_cli import print_outcome

    print_outcome(resume_search(args.run_dir, address=args.address, num_cpus=args.num_cpus))
    return 0
