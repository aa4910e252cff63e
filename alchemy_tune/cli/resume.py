"""``alchemy-tune resume RUN_DIR``: continue a search whose driver died, or extend a finished one."""

from __future__ import annotations

import argparse

from alchemy_tune.cli.ray_options import add_ray_arguments
from alchemy_tune.core.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the search's run folder (STORAGE/NAME)")
    add_ray_arguments(parser)
    parser.add_argument("--trials", type=int, help="raise the search's trial count to N (extend a finished search)")
    parser.add_argument("--retry-errored", action="store_true",
                        help="run errored trials again from their last checkpoint")


def run(args: argparse.Namespace) -> int:
    from alchemy_tune.results.run_record import RunRecord

    if args.trials is not None and args.trials < 1:
        raise UsageError(f"--trials: must be at least 1, got {args.trials}")
    RunRecord.read(args.run_dir)  # not a run folder: said before Ray's and Optuna's imports
    from alchemy_tune.tuning.resume import resume_search
    from alchemy_tune.cli.search import finish

    return finish(resume_search(args.run_dir, address=args.address, num_cpus=args.num_cpus, trials=args.trials,
                                retry_errored=args.retry_errored))
