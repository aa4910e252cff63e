"""One compaction of a run at a time: a lock file in the run's results folder.

Two compactions that read the same parts would each write a file that replaces them, and readers would see
both (every row twice). On a local or mounted filesystem the lock is created with ``O_CREAT | O_EXCL``, which
exactly one process wins; a lock whose process has died on this machine is taken over. On an object store
(s3://, gs://) no create is exclusive, so the lock there is written and read back (a check, not a guarantee):
run ``compact`` on an object-store run from one place at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Iterator

import pyarrow.fs as pafs

from alchemy_tune.core.errors import UsageError

LOCK_NAME = ".compact.lock"


def _alive(owner: dict) -> bool:
    """Whether the lock's process may still be running (only this machine's processes can be checked)."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner.get("pid", -1)), 0)
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _read(fs: pafs.FileSystem, path: str) -> dict | None:
    try:
        with fs.open_input_stream(path) as f:
            owner = json.loads(f.read().decode() or "{}")
        return owner if isinstance(owner, dict) else {}
    except (FileNotFoundError, OSError, ValueError):
        return None


def _try_local(path: str, owner: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(owner, f)
    return True


def _try_store(fs: pafs.FileSystem, path: str, owner: dict) -> bool:
    if _read(fs, path) is not None:
        return False
    with fs.open_output_stream(path) as f:
        f.write(json.dumps(owner).encode())
    return _read(fs, path) == owner


@contextlib.contextmanager
def compaction_lock(fs: pafs.FileSystem, results_dir: str, run_dir: str, wait_s: float = 600.0,
                    poll_s: float = 0.2) -> Iterator[None]:
    """Hold the run's compaction lock; waits up to ``wait_s`` for another compaction to finish (its result is
    then already in force, so the caller compacts what is left, usually nothing)."""
    local = isinstance(fs, pafs.LocalFileSystem)
    path = f"{results_dir}/{LOCK_NAME}"
    fs.create_dir(results_dir, recursive=True)
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    deadline = time.monotonic() + wait_s
    while not (_try_local(path, owner) if local else _try_store(fs, path, owner)):
        held = _read(fs, path)
        if held is not None and not _alive(held):
            with contextlib.suppress(FileNotFoundError, OSError):
                fs.delete_file(path)  # its compaction died: what it wrote is either in force or ignored
            continue
        if time.monotonic() > deadline:
            raise UsageError(f"{run_dir}: another compaction holds {path} (pid {(held or {}).get('pid')} on "
                             f"{(held or {}).get('host')}); wait for it, or delete the file if no compaction runs")
        time.sleep(poll_s)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError, OSError):
            fs.delete_file(path)
