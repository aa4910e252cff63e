"""A search's run folder before its first trial: whether it was there, removing one a failed start made, and
freeing the name of a search that stopped before it ran anything."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from alchemy_tune.results.run_dir import is_uri


def exists(run_dir: str) -> bool:
    from alchemy_tune.results.run_dir import resolve
    import pyarrow.fs as pafs

    fs, path = resolve(run_dir)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def remove(run_dir: str) -> None:
    """Delete a run folder this search made and never ran a trial in (and its journal's local mirror)."""
    import contextlib

    from alchemy_tune.results.run_dir import resolve
    from alchemy_tune.tuning.journal import journal_location

    fs, path = resolve(run_dir)
    with contextlib.suppress(OSError):
        fs.delete_dir(path)
    if is_uri(run_dir):
        with contextlib.suppress(OSError):
            os.remove(journal_location(run_dir))


def forget_abandoned(run_dir: str) -> None:
    """A search killed in its first seconds leaves a record and nothing else: no study journal, no Tune
    state, no result. Nothing can resume it, so the same name starts afresh there (and says so) instead of
    refusing the folder for a run that never ran. Local folders only; called under the driver lock."""
    from alchemy_tune.results.run_record import RUN_FILE
    from alchemy_tune.tuning.journal import journal_location

    if is_uri(run_dir):
        return
    folder = Path(run_dir)
    record = folder / RUN_FILE
    ran = (Path(journal_location(run_dir)).exists() or any(folder.glob("experiment_state-*.json"))
           or any((folder / "results").glob("**/*.parquet")))
    if record.exists() and not ran:
        record.unlink()
        print(f"note: {run_dir} held the record of a search that stopped before its first trial (nothing to "
              "resume); starting this search there", file=sys.stderr, flush=True)
