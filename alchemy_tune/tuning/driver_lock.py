"""One driver per run folder: a search, its ``resume`` and a confirmation hold the folder's lock while they run.

Two drivers on one run folder corrupt it: two searches given the same ``--name`` at once both pass the
"already holds a run" check (the record is written seconds later, after Ray starts), and a ``resume`` while
the first driver lives re-trains its running trials, each writing rows the other also writes. The lock is
an advisory ``flock`` on ``RUN_DIR/.driver.lock``, taken before anything is written and held until the
driver returns; the kernel releases it when the process dies, however it dies, so a crash never leaves a
stale lock. The file keeps the holder's pid, host, command and start time, which the refusal quotes.

Object stores (``s3://``, ``gs://``) have no such lock: a run folder there is the user's to keep to one
driver (docs/fault-tolerance.md). A network file system passes ``flock`` to its server where it supports
it (NFSv4 does).
"""

from __future__ import annotations

import json
import os
import socket
import time

from alchemy_tune.core.errors import UsageError
from alchemy_tune.results.run_dir import is_uri, local_path

LOCK_FILE = ".driver.lock"


class DriverLock:
    """``with DriverLock(run_dir, "search"):`` holds the run folder's lock or raises a one-line UsageError
    naming the driver that holds it. Creates the folder if it is missing (the caller knows whether it did)."""

    def __init__(self, run_dir: str, doing: str):
        self.run_dir, self.doing, self._fd = run_dir, doing, None

    def __enter__(self) -> "DriverLock":
        if is_uri(self.run_dir):
            return self
        import fcntl

        folder = local_path(self.run_dir)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise UsageError(f"{self.run_dir}: another driver is running it ({holder}); wait for it to end, or "
                             f"stop it and then `alchemy-tune resume {self.run_dir}`") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "doing": self.doing,
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:  # closing releases the lock; the file stays (deleting it would race)
            os.close(self._fd)
            self._fd = None


def _describe(raw: bytes) -> str:
    try:
        info = json.loads(raw.decode() or "{}")
        return f"{info['doing']}, pid {info['pid']} on {info['host']}, since {info['since']}"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "a process that left no details"
