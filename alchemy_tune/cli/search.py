"""``alchemy-tune [search] --trials N ...``: flags -> :func:`alchemy_tune.tuning.search.run_search`, then a summary."""

from __future__ import annotations

import argparse
import os
import json
import sys

from alchemy_tune.cli.ray_options import add_max_failures, add_ray_arguments
from alchemy_tune.core.errors import UsageError

# flag -> the search-space setting it overrides (None = leave the space file's value)
SETTING_FLAGS = ("trials", "sampler", "pruner", "metric", "seed", "cpus_per_trial", "gpus_per_trial",
                 "max_concurrent", "repeats", "replicate_data", "baselines", "keep_checkpoints")
PARAM_FLAGS = ("task", "data_dir", "model")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from alchemy_tune.tuning.trial_fn import TRIAL_FN
    from alchemy_tune.core.settings import PRUNERS, SAMPLERS

    g = parser.add_argument_group("what to search")
    g.add_argument("--trials", type=int, help="number of trials (default: the space file's `trials`)")
    g.add_argument("--space", help="search-space YAML file, or the name of a shipped space (paper-grid, lambda, ...; "
                   "default: default)")
    g.add_argument("--task", help="task to tune on (overrides the space's fixed task)")
    g.add_argument("--data-dir", help="folder of the task's release files (paper tasks)")
    g.add_argument("--model", help="encoder for every trial (overrides the space): e5-small, a folder, a hub id")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="pin any trial parameter for every trial, e.g. --set epochs=1 --set train_size=100")
    g.add_argument("--metric", help="selection metric: dev_select (seen + validation languages' dev, the "
                   "default), dev_seen, dev_val, or oracle_dev_unseen (test languages' dev: marked ORACLE)")
    g.add_argument("--repeats", type=int, help="training seeds per configuration (seed, seed+1, ...); the "
                   "sampler and pruner see their mean (default: the space's, 1)")
    g.add_argument("--replicate-data", action=argparse.BooleanOptionalAction, default=None,
                   help="replicate r also trains on data seed data_seed + r, its own training subsets "
                        "(--no-replicate-data: every replicate on the same subsets; default: the space's, off)")
    g.add_argument("--baselines", metavar="{matched,none}",
                   help="matched: each sampled configuration with the URIEL loss also runs its plain fine-tuning "
                        "twin (λ = 0, same other settings and seeds), on top of --trials (default: matched for "
                        "tpe and random wherever λ can be > 0)")
    g.add_argument("--sampler", help=f"Optuna sampler: {', '.join(SAMPLERS)}")
    g.add_argument("--pruner", help=f"pruner: {', '.join(PRUNERS)}")
    g.add_argument("--seed", type=int, help="sampler seed")
    g.add_argument("--enqueue", metavar="FILE", help="YAML/JSON list of configurations to try first")
    g.add_argument("--warm-start", metavar="RUN_DIR",
                   help="tell the study an earlier search's completed trials that fit this space")
    b = parser.add_argument_group("budgets (the search stops asking for trials; running trials finish)")
    b.add_argument("--time-budget", type=float, metavar="SECONDS", help="wall-clock seconds")
    b.add_argument("--gpu-hours", type=float, help="GPU-hours used by trials (GPUs x their running time)")
    r = parser.add_argument_group("where it runs")
    r.add_argument("--cpus-per-trial", type=float, help="CPUs reserved per trial")
    r.add_argument("--gpus-per-trial", type=float, help="GPUs per trial; fractions share a GPU (e.g. 0.5)")
    r.add_argument("--max-concurrent", type=int, help="most trials running at once")
    add_ray_arguments(r)
    r.add_argument("--storage",
                   help="results root: a folder, an NFS path or a URI such as s3://bucket/prefix "
                        "(default: $ALCHEMY_TUNE_STORAGE, else ./alchemy-runs; ~/alchemy-runs in a Ray job)")
    r.add_argument("--name", help="run name; the run folder is STORAGE/NAME (default: search-<time>)")
    r.add_argument("--node-wait", type=float, metavar="SECONDS",
                   help="on a cluster, how long to wait for the autoscaler to start a node that fits one trial "
                        "before giving up (default: $ALCHEMY_TUNE_NODE_WAIT_S, else 600)")
    add_max_failures(r)
    r.add_argument("--keep-checkpoints", metavar="{best,none,all}",
                   help="what a finished trial keeps on storage: its best checkpoint, none, or all (default: "
                        "the space's, best)")
    r.add_argument("--trial-fn", default=TRIAL_FN, metavar="MODULE:FUNCTION",
                   help="the trial function (advanced: any function with run_trial's contract, importable on "
                        "every node)")
    parser.add_argument("--dry-run", action="store_true", help="validate and show the plan without running")


def _given(args: argparse.Namespace, names) -> dict:
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def print_outcome(outcome) -> None:
    from alchemy_tune.tuning.replication import replication

    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.counts.items()))
    if outcome.nothing_to_resume:
        print(f"\nnothing to resume: {outcome.run_dir} had already ended ({counts or 'no trials'}); "
              f"`alchemy-tune resume {outcome.run_dir} --trials N` extends it")
        return
    took = f" after {outcome.wall_seconds / 60:.1f} min" if outcome.wall_seconds else ""
    ended = "interrupted" if outcome.interrupted else "finished"  # an interrupted search never says finished
    print(f"\nsearch {ended}{took}: {counts or 'no trials'}")
    if outcome.baselines:
        twins = ", ".join(f"{n} {status}" for status, n in sorted(outcome.baselines.items()))
        print(f"matched plain fine-tuning baselines (λ = 0 twins, on top of the sampled trials): {twins}")
    if outcome.stop_reason:
        print(f"stopped asking for trials: {outcome.stop_reason}")
    if outcome.not_started:
        print(f"{outcome.not_started} queued trial(s) were not started: the budget was spent")
    if not outcome.best:
        print("no trial completed, so there is no best configuration")
    if outcome.oracle:
        print("ORACLE: this search selected on the test languages' own dev data (oracle_dev_unseen); its "
              "test-language scores are not zero-shot")
    for best in outcome.best:
        label = "best trial" if len(outcome.best) == 1 else "Pareto-optimal trial"
        values = ", ".join(f"{v:.4f}" for v in best["values"] or [])
        print(replication(outcome.repeats).best_line(label, best, values, outcome.metrics))
        print(json.dumps(best["config"], indent=2, sort_keys=True))
    print(f"results: {outcome.run_dir}  (results/, study.journal; "
          f"`alchemy-tune analyze {outcome.run_dir}`, `optuna-dashboard {outcome.run_dir}/study.journal`)")


def dry_run(request) -> int:
    from alchemy_tune.cli.plan import print_plan
    from alchemy_tune.tuning.checks import validate

    space, settings, _ = validate(request)  # every check a search makes before it writes anything
    local = request.address is None and not os.environ.get("RAY_ADDRESS")
    if local and settings.gpus_per_trial:  # the real run's check needs Ray; a dry run asks torch directly
        import torch

        found = torch.cuda.device_count()
        if found < settings.gpus_per_trial:
            raise UsageError(f"--gpus-per-trial {settings.gpus_per_trial:g}: this machine has {found} GPU(s) that "
                             "torch can use; use 0, or --address of a Ray cluster with GPUs")
    return print_plan(space, settings.trials, settings=settings)


def pinned_params(args: argparse.Namespace) -> dict:
    """--task/--data-dir/--model and every --set KEY=VALUE (VALUE read as YAML: 1, 1e-4, true, [a, b])."""
    import yaml

    params = _given(args, PARAM_FLAGS)
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            params[key.strip().replace("-", "_")] = yaml.safe_load(text) if text.strip() else None
        except (yaml.YAMLError, RecursionError):
            raise UsageError(f"--set {item!r}: the value is not valid YAML") from None
    return params


def run(args: argparse.Namespace) -> int:
    from alchemy_tune.tuning.cluster import node_wait_s, storage_root
    from alchemy_tune.tuning.search import SearchRequest, run_search

    storage, why = storage_root(args.storage)
    request = SearchRequest(space_path=args.space, settings=_given(args, SETTING_FLAGS),
                            params=pinned_params(args), storage=storage,
                            name=args.name, address=args.address, num_cpus=args.num_cpus,
                            max_failures=args.max_failures, node_wait_s=node_wait_s(args.node_wait),
                            trial_fn=args.trial_fn, time_budget_s=args.time_budget, gpu_hours=args.gpu_hours,
                            enqueue=args.enqueue, warm_start=args.warm_start)
    if args.max_failures < 0:
        raise UsageError(f"--max-failures: must be >= 0, got {args.max_failures}")
    # First line, before Ray prints anything: where the results go and why (a Ray job's working
    # directory is a copy Ray deletes, so that case gets a stable default).
    print(f"storage: {storage} ({why})", flush=True)
    if args.dry_run:
        return dry_run(request)
    return finish(run_search(request))


def finish(outcome) -> int:
    """Print the summary; the exit code (non-zero when the search was interrupted)."""
    print_outcome(outcome)
    if outcome.interrupted:
        print(f"interrupted: the search stopped before its end; nothing is lost. Continue it with "
              f"`alchemy-tune resume {outcome.run_dir}`", file=sys.stderr)
        return outcome.interrupted
    return 0
