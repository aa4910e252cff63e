"""Paths of run folders, local or any URI pyarrow understands (s3://, gs://, ...), atomic writes, and run
names. The run's record, ``alchemy_run.json``, is :mod:`alchemy_tune.results.run_record`.
"""

from __future__ import annotations

import os
import uuid
from typing import Callable

import pyarrow as pa
import pyarrow.fs as pafs

from alchemy_tune.core.errors import UsageError


_OBJECT_STORES = ("s3", "gcs", "abfs")


def resolve(run_dir: str) -> tuple[pafs.FileSystem, str]:
    """``scheme://...`` through pyarrow's filesystems (s3, gs, hdfs, file, ...); anything else is local."""
    if "://" in str(run_dir):
        try:
            return pafs.FileSystem.from_uri(str(run_dir))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise UsageError(f"{run_dir}: cannot open this storage URI ({exc})") from None
    return pafs.LocalFileSystem(), os.path.abspath(os.fspath(run_dir))


def is_uri(path: str) -> bool:
    """An object-store or remote URI (s3://, gs://, ...); ``file://`` and plain paths are local."""
    return "://" in str(path) and not str(path).startswith("file://")


def local_path(path: str) -> str:
    return str(path)[len("file://"):] if str(path).startswith("file://") else os.path.abspath(os.path.expanduser(path))


def join(run_dir: str, *parts: str) -> str:
    return "/".join([str(run_dir).rstrip("/"), *parts])


def atomic_write(fs: pafs.FileSystem, path: str, write: Callable[[str], None]) -> None:
    """Call ``write(target)`` so that readers see the old file or the new one, never a half-written one.

    Local and mounted filesystems: write a temporary file beside ``path``, then rename it over ``path``.
    Object stores: one PUT of the whole object, which is atomic there.
    """
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    if fs.type_name in _OBJECT_STORES:
        write(path)
        return
    tmp = f"{parent}/.{path.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
    try:
        write(tmp)
        fs.move(tmp, path)
    except BaseException:
        if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
            fs.delete_file(tmp)
        raise


def write_bytes_atomic(path: str, data: bytes) -> None:
    fs, p = resolve(path)

    def put(target: str) -> None:
        with fs.open_output_stream(target) as out:
            out.write(data)

    atomic_write(fs, p, put)


def run_name(name: str) -> str:
    """A run name is one path component (the run folder is STORAGE/NAME): nothing is ever written outside
    the storage folder because of it."""
    text = str(name)
    if not text.strip() or text in (".", "..") or "/" in text or "\\" in text or text != text.strip() \
            or text.startswith("~") or "\x00" in text:
        raise UsageError(f"--name: {name!r} is not a run name; give one folder name such as lambda-sweep "
                         "(no '/', not '.', '..' or '~'): the run folder is STORAGE/NAME")
    return text


def check_writable(path: str, flag: str) -> None:
    """A one-line error now if the local folder ``path`` could not be made and written into: its nearest
    existing ancestor must be a writable folder. URIs are checked when written (their stores say why)."""
    if is_uri(path):
        return
    here = os.path.abspath(os.path.expanduser(path))
    while not os.path.exists(here) and os.path.dirname(here) != here:
        here = os.path.dirname(here)
    if not os.path.isdir(here):
        raise UsageError(f"{flag} {path}: {here} is a file, not a folder")
    if not os.access(here, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {here} is not writable")
