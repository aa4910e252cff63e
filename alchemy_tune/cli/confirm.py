"""``alchemy-tune confirm RUN_DIR --top K --repeats R``: re-run the best configurations on fresh seeds (training
seeds, and data seeds where the configurations train on a subset)."""

from __future__ import annotations

import argparse

from alchemy_tune.cli.ray_options import add_max_failures, add_ray_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="the search run whose best configurations to confirm")
    parser.add_argument("--top", type=int, default=1,
                        help="how many of the best configurations (by the run's selection metric, never "
                             "test) to re-run, each with its matched baseline")
    parser.add_argument("--repeats", type=int, default=3,
                        help="replicates per configuration, each with a fresh training seed and, where the "
                             "configurations train on a subset (train_size) or a control, a fresh data seed")
    parser.add_argument("--seed", type=int, help="first seed (default: one above the source run's largest)")
    parser.add_argument("--data-seed", type=int,
                        help="first data seed (default: one above the largest the source run and earlier "
                             "confirmations used)")
    parser.add_argument("--storage", help="results root (default: the folder holding RUN_DIR)")
    parser.add_argument("--name", help="run name (default: confirm-<source run name>)")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default: the source run's)")
    parser.add_argument("--gpus-per-trial", type=float, help="GPUs per trial (default: the source run's)")
    parser.add_argument("--max-concurrent", type=int, help="most trials at once (default: the source run's)")
    add_ray_arguments(parser)
    add_max_failures(parser)
    parser.add_argument("--dry-run", action="store_true", help="show what would run, run nothing")


def run(args: argparse.Namespace) -> int:
    import functools

    from alchemy_tune.analysis.confirm import describe, link, plan, space_document, summary_lines
    from alchemy_tune.tuning.confirmation import run_confirmation

    p = plan(args.run_dir, top=args.top, repeats=args.repeats, first_seed=args.seed, first_data_seed=args.data_seed)
    print("\n".join(describe(p)), flush=True)
    if args.dry_run:
        return 0
    run_dir, outcome = run_confirmation(
        args.run_dir, p.configs, functools.partial(space_document, p), link(p, args.top, args.repeats),
        storage=args.storage, name=args.name,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent,
        address=args.address, num_cpus=args.num_cpus, max_failures=args.max_failures)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.counts.items()))
    print(f"\nconfirmation finished: {counts}")
    print("\n".join(summary_lines(run_dir)))
    print(f"\nresults: {run_dir}  (`alchemy-tune analyze {run_dir}`)")
    return 0
