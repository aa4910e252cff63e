"""``alchemy-tune confirm RUN_DIR --top K --repeats R``: re-run the best configurations on fresh seeds."""

from __future__ import annotations

import argparse
import json
import os
import shutil

from .errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="the search run whose best configurations to confirm")
    parser.add_argument("--top", type=int, default=1,
                        help="how many of the best configurations (by the run's selection metric, never "
                             "test) to re-run, each with its matched baseline")
    parser.add_argument("--repeats", type=int, default=3, help="fresh training seeds per configuration")
    parser.add_argument("--seed", type=int, help="first seed (default: one above the source run's largest)")
    parser.add_argument("--storage", help="results root (default: the folder holding RUN_DIR)")
    parser.add_argument("--name", help="run name (default: confirm-<source run name>)")
    parser.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default: the source run's)")
    parser.add_argument("--gpus-per-trial", type=float, help="GPUs per trial (default: the source run's)")
    parser.add_argument("--max-concurrent", type=int, help="most trials at once (default: the source run's)")
    parser.add_argument("--address", help="join this Ray cluster; default: embedded Ray")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")
    parser.add_argument("--max-failures", type=int, default=2, help="retries of a crashed trial")
    parser.add_argument("--dry-run", action="store_true", help="show what would run, run nothing")


def run(args: argparse.Namespace) -> int:
    from .confirm import SPACE_FILE, describe, plan, space_document, summary_lines
    from .run_dir import read_metadata, write_bytes_atomic
    from .search import SearchRequest, is_uri, local_path, run_search

    p = plan(args.run_dir, top=args.top, repeats=args.repeats, first_seed=args.seed)
    print("\n".join(describe(p)), flush=True)
    if args.dry_run:
        return 0
    source = read_metadata(args.run_dir)
    src = args.run_dir.rstrip("/")
    storage = args.storage or (src.rsplit("/", 1)[0] if is_uri(src) else os.path.dirname(local_path(src)))
    name = args.name or f"confirm-{src.rsplit('/', 1)[-1]}"
    run_dir = f"{storage.rstrip('/')}/{name}" if is_uri(storage) else os.path.join(local_path(storage), name)
    try:
        read_metadata(run_dir)
    except UsageError:
        pass
    else:
        raise UsageError(f"--name {name}: {run_dir} already holds a run; choose another --name")
    resources = source.get("resources") or {}
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else resources.get("gpu", 0)
    settings = {"cpus_per_trial": args.cpus_per_trial or resources.get("cpu") or 1, "gpus_per_trial": gpus,
                "max_concurrent": args.max_concurrent or source.get("max_concurrent")}
    settings = {k: v for k, v in settings.items() if v is not None}
    space_path = f"{run_dir}/{SPACE_FILE}"
    created = not is_uri(run_dir) and not os.path.exists(run_dir)
    write_bytes_atomic(space_path, json.dumps(space_document(p, settings), indent=1).encode())  # JSON is YAML
    link = {"source_run": p.source, "confirm": {"top": args.top, "repeats": args.repeats, "seeds": p.seeds,
                                                "configurations": [c["config"] for c in p.chosen],
                                                "baselines": p.baselines}}
    request = SearchRequest(space_path=space_path if not is_uri(space_path) else _local_copy(space_path, p),
                            storage=storage, name=name, address=args.address, num_cpus=args.num_cpus,
                            max_failures=args.max_failures, configs=tuple(p.configs), kind="confirm",
                            meta=link)
    try:
        outcome = run_search(request)
    except UsageError:
        if created:  # nothing half-written: the folder held only the space file
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.counts.items()))
    print(f"\nconfirmation finished: {counts}")
    print("\n".join(summary_lines(run_dir)))
    print(f"\nresults: {run_dir}  (`alchemy-tune analyze {run_dir}`)")
    return 0


def _local_copy(space_uri: str, p) -> str:
    """The search reads its space file locally: a remote run keeps a copy in the local cache."""
    from .cache import cache_dir

    path = cache_dir() / "confirm-spaces" / space_uri.replace("://", "_").replace("/", "_")
    path.parent.mkdir(parents=True, exist_ok=True)
    from .run_dir import resolve

    fs, root = resolve(space_uri)
    with fs.open_input_stream(root) as handle:
        path.write_bytes(handle.read())
    return str(path)
