"""Where a search's Optuna journal lives, and its mirror on object stores.

Optuna's ``JournalFileBackend`` appends to a local file under a file lock, which object stores cannot do.
A run on a local or mounted filesystem keeps ``RUN_DIR/study.journal`` itself. A run on ``s3://`` (or any
pyarrow object store) keeps the journal in this machine's cache and mirrors it to ``RUN_DIR/study.journal``
with :class:`JournalMirror`: on a timer (only when it grew), at every Tune experiment checkpoint (so the
mirror is never older than the trials Tune recorded) and at the end. ``resume`` fetches the mirror and keeps
whichever of the two copies is longer: the journal is append-only, so the longer one holds everything the
shorter one does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time

from ray.tune import Callback

from alchemy_tune.core.errors import UsageError
from alchemy_tune.results.run_dir import is_uri, join, local_path, resolve, write_bytes_atomic

JOURNAL = "study.journal"
logger = logging.getLogger(__name__)

_RELOCATED: dict[str, str] = {}  # run_id -> the run folder's path now (set by `resume`)
_UNFINISHED: dict[str, frozenset[str]] = {}  # run_id -> Ray trials the restored experiment will run on


def relocate(run_id: str, run_dir: str) -> None:
    """Objects of run ``run_id`` unpickled in this process (Tune's saved searcher and callbacks) use
    ``run_dir``: a local run folder may have moved since the search began."""
    _RELOCATED[run_id] = run_dir


def relocated(run_id: str | None, run_dir: str) -> str:
    return _RELOCATED.get(run_id, run_dir) if run_id else run_dir


def restoring(run_id: str, trial_ids) -> None:
    """The Ray trials a resumed Tune will run again (its saved experiment state's unfinished ones): the
    restored searcher counts them as running (see ``OptunaSearcher.restore``)."""
    _UNFINISHED[run_id] = frozenset(trial_ids)


def restored_unfinished(run_id: str | None) -> frozenset[str]:
    return _UNFINISHED.get(run_id, frozenset()) if run_id else frozenset()


def journal_location(run_dir: str) -> str:
    """The journal file this machine writes: in the run folder, or a local mirror for object stores."""
    if not is_uri(run_dir):
        return os.path.join(local_path(run_dir), JOURNAL)
    from alchemy_tune.core.cache import cache_dir

    safe = run_dir.replace("://", "_").replace("/", "_")
    return str(cache_dir() / "journals" / safe / JOURNAL)


def drop_dangling_lock(journal_path: str) -> bool:
    """Remove ``<journal>.lock`` when it is a symbolic link to a file that no longer exists.

    Optuna's file lock is a symlink to the journal's path at the time it was taken. A driver killed while
    holding it leaves the link behind; if the run folder then moves, the link dangles, and Optuna's stale-lock
    recovery (it stats the link, following it) never fires: every later open waits forever. A live writer's
    lock always points at an existing journal, so a dangling one has no owner."""
    lock = f"{journal_path}.lock"
    if os.path.islink(lock) and not os.path.exists(lock):
        logger.warning("removing %s: a lock left by a driver that died", lock)
        with contextlib.suppress(FileNotFoundError):  # another driver opening the run removed it first
            os.unlink(lock)
        return True
    return False


def upload(run_dir: str, journal: str) -> None:
    if is_uri(run_dir) and os.path.exists(journal):
        with open(journal, "rb") as handle:
            write_bytes_atomic(join(run_dir, JOURNAL), handle.read())


def repair_cut_tail(journal: str) -> int:
    """A journal whose last line a crash cut off (no newline at its end): move the cut piece aside to
    ``study.journal.cut-<time>`` and truncate the file after its last whole line; the number of bytes moved.

    Optuna skips a line it cannot parse when it reads, but its next append lands right after the cut piece,
    gluing the two into one corrupt line in the middle of the file that every later reader fails on. The cut
    piece was never a whole operation, so the study loses nothing it had recorded. Called under the driver
    lock (:mod:`alchemy_tune.tuning.driver_lock`), before the journal is opened."""
    try:
        with open(journal, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            if size == 0:
                return 0
            handle.seek(max(0, size - (1 << 20)))
            tail = handle.read()
    except FileNotFoundError:
        return 0
    if tail.endswith(b"\n"):
        return 0
    cut = len(tail) - (tail.rfind(b"\n") + 1)  # bytes after the last newline (all of it if there is none)
    keep = size - cut
    aside = f"{journal}.cut-{time.strftime('%Y%m%d-%H%M%S')}"
    with open(journal, "rb") as handle:
        handle.seek(keep)
        piece = handle.read()
    with open(aside, "wb") as out:
        out.write(piece)
    with open(journal, "r+b") as handle:
        handle.truncate(keep)
    print(f"note: {journal}: its last line was cut off by a crash ({cut} bytes, never a whole operation); "
          f"moved it to {aside}", file=sys.stderr, flush=True)
    return cut


def fetch(run_dir: str, missing: str) -> str:
    """The local path of a run's study journal, fetched from its object store first (see :func:`download`);
    when the run has none, a UsageError ``missing`` (formatted with ``run_dir`` and ``journal``, the file's
    name)."""
    journal = journal_location(run_dir)
    download(run_dir, journal)
    if not os.path.exists(journal):
        raise UsageError(missing.format(run_dir=run_dir, journal=JOURNAL))
    return journal


def download(run_dir: str, journal: str) -> None:
    """Fetch an object-store run's journal into ``journal``, keeping the longer of the two copies.

    If neither copy is a prefix of the other (two drivers wrote different histories), the shared copy wins
    and the local one is kept beside it as ``study.journal.local-<time>``.
    """
    if not is_uri(run_dir):
        return
    fs, root = resolve(run_dir)
    try:
        with fs.open_input_stream(f"{root}/{JOURNAL}") as src:
            remote = src.read()
    except FileNotFoundError:
        return
    os.makedirs(os.path.dirname(journal), exist_ok=True)
    if os.path.exists(journal):
        with open(journal, "rb") as handle:
            local = handle.read()
        if local.startswith(remote):
            return  # this machine's copy is newer (e.g. the driver died before its last upload)
        if not remote.startswith(local):
            backup = f"{journal}.local-{time.strftime('%Y%m%d-%H%M%S')}"
            os.replace(journal, backup)
            logger.warning("%s: the local journal and the run's copy differ; using the run's, local kept as %s",
                           run_dir, backup)
    tmp = f"{journal}.{os.getpid()}.tmp"
    with open(tmp, "wb") as dst:
        dst.write(remote)
    os.replace(tmp, journal)


class JournalMirror(Callback):
    """Uploads an object-store run's journal when it grew, at most every ``interval_s`` seconds, at each Tune
    experiment checkpoint and at the end: a whole-file PUT per interval, not per trial."""

    def __init__(self, run_dir: str, run_id: str, interval_s: float = 30.0):
        self.run_dir, self.run_id, self.interval_s = run_dir, run_id, float(interval_s)
        self._last, self._size = 0.0, -1

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._last, self._size = 0.0, -1  # a resumed driver: its own cache copy, never uploaded yet

    def sync(self, force: bool = False) -> None:
        journal = journal_location(relocated(self.run_id, self.run_dir))
        try:
            size = os.path.getsize(journal)
        except OSError:
            return
        if size == self._size or (not force and time.monotonic() - self._last < self.interval_s):
            return
        upload(self.run_dir, journal)
        self._last, self._size = time.monotonic(), size

    def on_step_end(self, iteration, trials, **info):
        self.sync()

    def get_state(self):
        # Tune calls this when it saves its experiment state (which trials exist, their checkpoints): the
        # mirror is then at least as new as what a resumed Tune will restore.
        self.sync(force=True)
        return None

    def on_experiment_end(self, trials, **info):
        self.sync(force=True)
