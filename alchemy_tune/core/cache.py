"""Where derived artefacts live (converted encoder, URIEL table) and how they are written safely.

Several Ray trials on one node may ask for the same artefact at once, so every artefact is built in a
private temporary folder/file and moved into place with one ``os.replace``/``os.rename``: readers see
either nothing or the complete artefact, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


def cache_dir() -> Path:
    """``$ALCHEMY_TUNE_CACHE``, else ``$XDG_CACHE_HOME/alchemy-tune``, else ``~/.cache/alchemy-tune``."""
    root = os.environ.get("ALCHEMY_TUNE_CACHE")
    if root:
        path = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = Path(xdg) / "alchemy-tune" if xdg else Path.home() / ".cache" / "alchemy-tune"
    path.mkdir(parents=True, exist_ok=True)
    return path


class ProcessMemo(Generic[T]):
    """One value per process (a table read from the cache), built on first use.

    Threads asking at once build it once (a URIEL+ build takes minutes). ``forget`` drops the value, so the
    next ``get`` reads the artefact cache again (after ``$ALCHEMY_TUNE_CACHE`` changed, say).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self, build: Callable[[], T]) -> T:
        with self._lock:
            if self._value is None:
                self._value = build()
            return self._value

    def forget(self) -> None:
        with self._lock:
            self._value = None


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success rename it to ``final``.

    If another process finished first, its folder wins and ours is discarded (both are equivalent).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(final: Path, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``final`` for writing; on success ``os.replace`` it into place."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", dir=final.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
