"""A confirmation run: the search that re-runs chosen configurations and their matched baselines on fresh
seeds, beside the run it confirms. What to confirm (the plan, its space document, the record's link to the
source) is decided by :mod:`alchemy_tune.analysis.confirm`; this module only runs it, so the analysis layer
never starts a search (``alchemy-tune confirm`` composes the two).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Callable, Mapping, Sequence

from alchemy_tune.core.errors import UsageError

SPACE_FILE = "confirm-space.yaml"


def run_confirmation(source_dir: str, configs: Sequence[Mapping[str, Any]],
                     space_document: Callable[[dict], dict], link: dict, *, storage: str | None = None,
                     name: str | None = None, cpus_per_trial: float | None = None,
                     gpus_per_trial: float | None = None, max_concurrent: int | None = None,
                     address: str | None = None, num_cpus: int | None = None, max_failures: int = 2):
    """Run ``configs`` as a confirmation run beside its source (``STORAGE/confirm-<source name>`` by default),
    its resources the source run's unless given; ``space_document(settings)`` is the run's space file and
    ``link`` goes into its record. Returns (run folder, the search's outcome). On a bad input found once the
    search starts, a run folder this made is removed again: nothing half-written."""
    from alchemy_tune.results.run_dir import is_uri, local_path, run_name
    from alchemy_tune.results.run_record import RunRecord, new_run_dir
    from alchemy_tune.results.run_dir import write_bytes_atomic
    from alchemy_tune.tuning.search import SearchRequest, run_search

    source = RunRecord.read(source_dir)
    src = source_dir.rstrip("/")
    storage = storage or (src.rsplit("/", 1)[0] if is_uri(src) else os.path.dirname(local_path(src)))
    name = run_name(name) if name else f"confirm-{src.rsplit('/', 1)[-1]}"
    run_dir = new_run_dir(storage, name, "choose another --name")
    gpus = gpus_per_trial if gpus_per_trial is not None else source.settings.gpus_per_trial
    settings = {"cpus_per_trial": cpus_per_trial or source.settings.cpus_per_trial or 1, "gpus_per_trial": gpus,
                "max_concurrent": max_concurrent or source.settings.max_concurrent,
                "margin": source.settings.margin}  # declared before the search: the confirmation keeps it
    settings = {k: v for k, v in settings.items() if v is not None}
    space_path = f"{run_dir}/{SPACE_FILE}"
    created = not is_uri(run_dir) and not os.path.exists(run_dir)
    write_bytes_atomic(space_path, json.dumps(space_document(settings), indent=1).encode())  # JSON is YAML
    request = SearchRequest(space_path=space_path if not is_uri(space_path) else _local_copy(space_path),
                            storage=storage, name=name, address=address, num_cpus=num_cpus,
                            max_failures=max_failures, configs=tuple(configs), kind="confirm", meta=link)
    try:
        return run_dir, run_search(request)
    except UsageError:
        if created:  # nothing half-written: the folder held only the space file
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _local_copy(space_uri: str) -> str:
    """The search reads its space file locally: a remote run keeps a copy in the local cache."""
    from alchemy_tune.core.cache import cache_dir
    from alchemy_tune.results.run_dir import resolve

    path = cache_dir() / "confirm-spaces" / space_uri.replace("://", "_").replace("/", "_")
    path.parent.mkdir(parents=True, exist_ok=True)
    fs, root = resolve(space_uri)
    with fs.open_input_stream(root) as handle:
        path.write_bytes(handle.read())
    return str(path)

