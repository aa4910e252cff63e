"""Result tables of a run: Parquet files with a documented, versioned schema.

Every run keeps three tables under ``RUN_DIR/results/``, readable by pandas, polars and duckdb without
this package. Each file carries ``schema_version`` (and ``table``) in its Parquet key-value metadata.

``trials.parquet`` — one row per trial, keyed by (run_id, trial_id):

=======================  =========  ==============================================================
column                   type       meaning
=======================  =========  ==============================================================
run_id, trial_id         string     the run (alchemy_run.json) and the trial within it
status                   string     running / completed / pruned / diverged / failed
config_id                string     the configuration (its Optuna trial number); replicates share it
replicate                int64      replicate index 0..k-1 (training seed = base seed + replicate)
selection_metric         string     what chose the best step and the search (alchemy_run.json metric)
oracle                   bool       true when that metric used the test languages' dev data
cfg_<name>               typed      every TrialConfig value (cfg_lambda, cfg_uriel_features, ...)
n_reports                int64      evaluations reported
final_step, final_epoch  int64/f64  the last evaluation
final_<split>_<group>    float64    averages at the last evaluation (dev/test × seen/val/unseen/all,
                                    and dev_select)
best_step                int64      the evaluation where the run's selection metric (alchemy_run.json
                                    ``metric``/``mode``, default dev_select/max) was best
best_<split>_<group>     float64    every average at ``best_step`` (test is never used to choose)
final_lambda             float64    λ at the last evaluation (schedules change it)
primary_metric           string     accuracy, pearson, ...
pruned_at_step           int64      step at which the search pruned it (null otherwise)
error                    string     failure text or divergence reason ("" when none)
wall_seconds             float64    wall-clock seconds of the trial (search-measured)
compute_seconds          float64    training seconds reported by the trial (resumes included)
cpus, gpus               float64    resources of the trial; ``resources`` holds them all as JSON
seed                     int64      the training seed (= cfg_seed)
versions                 string     JSON of package versions (from alchemy_run.json)
updated                  timestamp  when the table was last written (UTC)
=======================  =========  ==============================================================

``metrics.parquet`` — one tidy row per (run_id, trial_id, step, split, lang, metric):
run_id, trial_id (string); step (int64), epoch (float64); split (dev/test); lang (the dataset's own
code, e.g. ``sw-KE``); uriel_code (ISO 639-3 / lang2vec code, e.g. ``swh``); seen (bool); role (seen,
val or unseen: trained on, validation, test); metric
(accuracy, macro_f1, pearson, ...); value (float64); lambda, train_loss, task_loss, uriel_loss,
train_seconds (float64, the values at that step).

``steps.parquet`` — one row per (run_id, trial_id, step): epoch, examples_seen, lambda, the losses,
the averages (dev_seen ... test_all, dev_select), train_seconds, status: the learning curves.

Rows are keyed, and the last write wins: a trial that restarts from a checkpoint and reports step s
again replaces every row it had at steps >= s, so a resumed or retried trial's rows appear once.
Writes are atomic: on a local or mounted filesystem a temporary file beside the target is renamed over
it; on object stores (s3://, gs://, abfs://) a single PUT of the whole file is itself atomic.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from dataclasses import fields
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import constants as C
from .errors import UsageError
from .run_dir import RUN_FILE as RUN_META
from .run_dir import atomic_write, resolve
from .run_dir import read_metadata as read_run_meta

SCHEMA_VERSION = 1
RESULTS_DIR = "results"
STATUSES = (C.RUNNING, C.COMPLETED, C.PRUNED, C.DIVERGED, C.FAILED)
_META_KEY = b"schema_version"

METRICS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("trial_id", pa.string()), ("step", pa.int64()), ("epoch", pa.float64()),
    ("split", pa.string()), ("lang", pa.string()), ("uriel_code", pa.string()), ("seen", pa.bool_()),
    ("metric", pa.string()), ("value", pa.float64()), ("lambda", pa.float64()),
    ("train_loss", pa.float64()), ("task_loss", pa.float64()), ("uriel_loss", pa.float64()),
    ("train_seconds", pa.float64()), ("role", pa.string()),
])
_STEP_FLOATS = ("epoch", C.LAMBDA, C.TRAIN_LOSS, C.TASK_LOSS, C.URIEL_LOSS, *C.AVERAGE_KEYS, C.TRAIN_SECONDS)
STEPS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("trial_id", pa.string()), ("step", pa.int64()), ("examples_seen", pa.int64())]
    + [(name, pa.float64()) for name in _STEP_FLOATS] + [("status", pa.string())]
)


def _config_types() -> dict[str, pa.DataType]:
    """Arrow type of every TrialConfig value, so a column's type never depends on the values seen."""
    from .config import TrialConfig

    out = {}
    for f in fields(TrialConfig):
        base = str(f.type).split("|")[0].strip()
        kind = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}.get(base)
        out["lambda" if f.name == "lambda_" else f.name] = kind or pa.list_(pa.string())
    return out


_TRIAL_COLUMNS: list[tuple[str, pa.DataType]] = (
    [("run_id", pa.string()), ("trial_id", pa.string()), ("status", pa.string()), ("config_id", pa.string()),
     ("replicate", pa.int64()), ("selection_metric", pa.string()), ("oracle", pa.bool_()),
     ("n_reports", pa.int64()), ("final_step", pa.int64()), ("final_epoch", pa.float64())]
    + [(f"final_{k}", pa.float64()) for k in C.AVERAGE_KEYS]
    + [("best_step", pa.int64())] + [(f"best_{k}", pa.float64()) for k in C.AVERAGE_KEYS]
    + [("final_lambda", pa.float64()), ("primary_metric", pa.string()), ("pruned_at_step", pa.int64()),
       ("error", pa.string()), ("wall_seconds", pa.float64()), ("compute_seconds", pa.float64()),
       ("cpus", pa.float64()), ("gpus", pa.float64()), ("resources", pa.string()), ("seed", pa.int64()),
       ("versions", pa.string()), ("updated", pa.timestamp("ms", tz="UTC"))]
)


# ----------------------------------------------------------------------------- storage
def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def write_table_atomic(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    """Readers see the old file or the new one, never a half-written one."""
    atomic_write(fs, path, lambda target: pq.write_table(table, target, filesystem=fs, compression="zstd"))


def _read(run_dir: str, name: str, schema: pa.Schema | None, columns: list[str] | None) -> pa.Table:
    fs, root = resolve(run_dir)
    path = f"{root}/{RESULTS_DIR}/{name}.parquet"
    if not _exists(fs, path):
        return schema.empty_table() if schema is not None else pa.table({})
    pf = pq.ParquetFile(path, filesystem=fs)
    version = int((pf.schema_arrow.metadata or {}).get(_META_KEY, b"0") or 0)
    if version > SCHEMA_VERSION:
        raise UsageError(
            f"{run_dir}/{RESULTS_DIR}/{name}.parquet: schema version {version} is newer than this "
            f"alchemy-tune reads ({SCHEMA_VERSION}); upgrade alchemy-tune"
        )
    if columns is not None:
        columns = [c for c in columns if c in pf.schema_arrow.names]
    return pf.read(columns=columns)


def read_trials(run_dir: str, columns: list[str] | None = None) -> pa.Table:
    """The trials table (empty if nothing was written yet)."""
    return _read(run_dir, "trials", None, columns)


def read_metrics(run_dir: str, columns: list[str] | None = None) -> pa.Table:
    """The per-language metrics table (empty if nothing was written yet)."""
    return _read(run_dir, "metrics", METRICS_SCHEMA, columns)


def read_steps(run_dir: str, columns: list[str] | None = None) -> pa.Table:
    """The per-evaluation averages table (empty if nothing was written yet)."""
    return _read(run_dir, "steps", STEPS_SCHEMA, columns)


def _with_meta(table: pa.Table, name: str) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta.update({_META_KEY: str(SCHEMA_VERSION).encode(), b"table": name.encode()})
    return table.replace_schema_metadata(meta)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _config_column(kind: pa.DataType | None, values: list) -> tuple[pa.DataType, list]:
    """Values coerced to the declared type; a value that does not fit turns the column into JSON text."""
    if kind is not None and pa.types.is_list(kind):
        values = [list(v) if isinstance(v, (list, tuple)) else v for v in values]
    elif kind is not None and pa.types.is_integer(kind):
        values = [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
    try:
        if kind is None:
            kind = pa.infer_type(values)
        pa.array(values, kind)
        return kind, values
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.string(), [None if v is None else json.dumps(v, default=str) for v in values]


# ----------------------------------------------------------------------------- writer
def _full_config(config: Mapping) -> dict:
    """The trial's config with TrialConfig's defaults filled in, so every value gets its column.

    A search space names only what it fixes or samples; the trial runs the rest at their defaults, and the
    tables must say what ran. Configs that are not TrialConfigs (other trial functions) stay as given.
    """
    from .config import TrialConfig

    try:
        return {**TrialConfig.from_dict(config).to_dict(), **dict(config)}
    except (UsageError, TypeError):
        return dict(config)


class ResultsWriter:
    """Collects trial reports in memory and (re)writes the run's tables atomically on ``flush``.

    ``add_report`` only builds one small Arrow table (a few hundred rows); it flushes by itself at most
    every ``flush_interval_s`` seconds, and ``end_trial`` flushes too (``math.inf``: only explicit
    ``flush``). A new writer on an existing run reads its tables first, so a resumed driver keeps the
    earlier rows.
    """

    def __init__(self, run_dir: str, run_id: str, *, metric: str | None = None, mode: str | None = None,
                 flush_interval_s: float = 30.0):
        if not run_id or not isinstance(run_id, str):
            raise UsageError(f"run_id: expected a non-empty string, got {run_id!r}")
        self.run_dir, self.run_id = str(run_dir), run_id
        self._fs, self._root = resolve(self.run_dir)
        meta = self._meta()
        self.metric = metric or meta.get("metric") or C.SELECT
        self.mode = mode or meta.get("mode") or "max"
        if self.metric not in C.SELECTION_METRICS and self.metric not in C.AVERAGE_KEYS:  # older runs too
            raise UsageError(f"metric: {self.metric!r} is not one of {', '.join(C.SELECTION_METRICS)}")
        if self.mode not in ("max", "min"):
            raise UsageError(f"mode: {self.mode!r} is not one of max, min")
        self._versions = json.dumps(meta.get("versions") or {}, sort_keys=True)
        self.flush_interval_s = float(flush_interval_s)
        self._cfg_types = _config_types()
        self._trials: dict[str, dict[str, Any]] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._steps: dict[str, dict[int, dict[str, Any]]] = {}  # trial -> step -> averages row
        self._pending: dict[tuple[str, int], pa.Table] = {}  # new metric rows by (trial, step)
        self._truncate: dict[str, int] = {}  # trial -> drop stored metric rows with step >= this
        self._dirty = False
        self._last_flush = time.monotonic()
        self._load()

    def _meta(self) -> dict:
        try:
            return read_run_meta(self.run_dir)
        except UsageError:
            return {}  # a writer may start before the run's metadata exists

    def _load(self) -> None:
        trials = read_trials(self.run_dir)
        self._stored_metrics = read_metrics(self.run_dir)
        steps = read_steps(self.run_dir)
        for row in trials.to_pylist():
            if row.get("run_id") != self.run_id:
                continue
            tid = row["trial_id"]
            self._configs[tid] = {k[4:]: v for k, v in row.items() if k.startswith("cfg_")}
            self._trials[tid] = {k: v for k, v in row.items() if not k.startswith("cfg_")}
        for row in steps.to_pylist():
            if row.get("run_id") == self.run_id:
                self._steps.setdefault(row["trial_id"], {})[row["step"]] = row
        self._other_trials = trials.filter(pc.field("run_id") != self.run_id) if trials.num_rows else None
        self._other_steps = steps.filter(pc.field("run_id") != self.run_id) if steps.num_rows else None

    # ------------------------------------------------------------------ recording
    def set_identity(self, trial_id: str, config_id: str, replicate: int) -> None:
        """The configuration ``trial_id`` runs and its replicate index (default: its own id, 0)."""
        trial = self._trials.setdefault(str(trial_id), {})
        trial["config_id"], trial["replicate"] = str(config_id), int(replicate)

    def add_report(self, trial_id: str, config: Mapping, metrics: Mapping) -> None:
        """Record one evaluation of ``trial_id`` (a report dict in the constants.py format)."""
        step = metrics.get(C.STEP)
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f"report of trial {trial_id}: 'step' must be an int, got {step!r}")
        trial_id = str(trial_id)
        history = self._steps.setdefault(trial_id, {})
        if history and step <= max(history):  # a restart from an earlier checkpoint: its history wins
            for old in [s for s in history if s >= step]:
                del history[old]
            for key in [k for k in self._pending if k[0] == trial_id and k[1] >= step]:
                del self._pending[key]
            self._truncate[trial_id] = min(step, self._truncate.get(trial_id, step))
        self._configs[trial_id] = _full_config(config)
        shared = tuple(_float(metrics.get(k)) for k in (C.LAMBDA, C.TRAIN_LOSS, C.TASK_LOSS, C.URIEL_LOSS,
                                                        C.TRAIN_SECONDS))
        epoch = _float(metrics.get(C.EPOCH))
        split_c, lang_c, uriel_c, seen_c, metric_c, value_c, role_c = [], [], [], [], [], [], []
        for lang, info in (metrics.get(C.LANGS) or {}).items():
            uriel, seen, role = info.get("uriel"), bool(info.get("seen")), C.lang_role(info)
            for split in C.SPLITS_EVALUATED:
                for name, value in (info.get(split) or {}).items():
                    split_c.append(split), lang_c.append(lang), uriel_c.append(uriel), seen_c.append(seen)
                    metric_c.append(name), value_c.append(_float(value)), role_c.append(role)
        n = len(value_c)
        # One small Arrow table per report: flush then only concatenates, whatever the run's size.
        self._pending[(trial_id, step)] = pa.Table.from_arrays(
            [pa.array([v] * n, f.type) for v, f in zip((self.run_id, trial_id, step, epoch), METRICS_SCHEMA)]
            + [pa.array(c, f.type) for c, f in zip((split_c, lang_c, uriel_c, seen_c, metric_c, value_c),
                                                     list(METRICS_SCHEMA)[4:10])]
            + [pa.array([v] * n, pa.float64()) for v in shared] + [pa.array(role_c, pa.string())],
            schema=METRICS_SCHEMA)
        examples = metrics.get(C.EXAMPLES_SEEN)
        history[step] = {"run_id": self.run_id, "trial_id": trial_id, "step": step,
                         "examples_seen": examples if isinstance(examples, int) else None,
                         **{k: _float(metrics.get(k)) for k in _STEP_FLOATS},
                         "status": str(metrics.get(C.STATUS, C.RUNNING))}
        trial = self._trials.setdefault(trial_id, {})
        status = metrics.get(C.STATUS, C.RUNNING)
        trial["status"] = status if status in STATUSES else C.RUNNING  # a retried trial runs again
        if metrics.get(C.REASON):
            trial["error"] = str(metrics[C.REASON])
        trial["primary_metric"] = metrics.get(C.PRIMARY_METRIC)
        self._dirty = True
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def drop_trial(self, trial_id: str) -> None:
        """Remove every row of ``trial_id`` (a dead driver's Ray trial whose Optuna trial another took over)."""
        trial_id = str(trial_id)
        if trial_id not in self._trials and trial_id not in self._steps:
            return
        for table in (self._trials, self._configs, self._steps):
            table.pop(trial_id, None)
        for key in [k for k in self._pending if k[0] == trial_id]:
            del self._pending[key]
        self._truncate[trial_id] = -1  # every stored metric row of it (steps are >= 0)
        self._dirty = True

    def end_trial(self, trial_id: str, status: str, *, error: str = "", pruned_at_step: int | None = None,
                  resources: Mapping | None = None, wall_seconds: float | None = None,
                  config: Mapping | None = None) -> None:
        """Record how ``trial_id`` ended, then flush. ``config`` fills the cfg_ columns of a trial that
        never reported (e.g. it crashed at start)."""
        if status not in STATUSES:
            raise ValueError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        if config is not None and str(trial_id) not in self._configs:
            self._configs[str(trial_id)] = _full_config(config)
        trial = self._trials.setdefault(str(trial_id), {})
        trial["status"] = status
        if error:
            trial["error"] = str(error).strip()
        if pruned_at_step is not None:
            trial["pruned_at_step"] = int(pruned_at_step)
        if resources is not None:
            res = {str(k): v for k, v in resources.items()}
            trial["resources"] = json.dumps(res, sort_keys=True, default=str)
            trial["cpus"] = _float(res.get("CPU", res.get("cpu")))
            trial["gpus"] = _float(res.get("GPU", res.get("gpu")))
        if wall_seconds is not None:
            trial["wall_seconds"] = float(wall_seconds)
        self._dirty = True
        if math.isfinite(self.flush_interval_s):
            self.flush()

    # ------------------------------------------------------------------ writing
    def flush(self) -> None:
        """Atomically rewrite the three tables if anything changed since the last flush."""
        if not self._dirty:
            return
        base = f"{self._root}/{RESULTS_DIR}"
        write_table_atomic(self._fs, f"{base}/metrics.parquet", _with_meta(self._metrics_table(), "metrics"))
        write_table_atomic(self._fs, f"{base}/steps.parquet", _with_meta(self._steps_table(), "steps"))
        write_table_atomic(self._fs, f"{base}/trials.parquet", _with_meta(self._trials_table(), "trials"))
        self._dirty = False
        self._last_flush = time.monotonic()

    def _metrics_table(self) -> pa.Table:
        stored = self._stored_metrics
        if self._truncate and stored.num_rows:
            drop = None
            for tid, step in self._truncate.items():
                cond = ((pc.field("run_id") == self.run_id) & (pc.field("trial_id") == tid)
                        & (pc.field("step") >= step))
                drop = cond if drop is None else drop | cond
            stored = stored.filter(~drop)
        if "role" not in stored.column_names:  # written before language roles: seen or unseen
            stored = stored.append_column("role", pc.if_else(stored["seen"], "seen", "unseen"))
        stored = stored.cast(METRICS_SCHEMA) if stored.schema != METRICS_SCHEMA else stored
        stored = pa.concat_tables([stored, *self._pending.values()])
        self._stored_metrics, self._pending, self._truncate = stored.combine_chunks(), {}, {}
        return self._stored_metrics

    def _steps_table(self) -> pa.Table:
        rows = [row for tid in sorted(self._steps) for _, row in sorted(self._steps[tid].items())]
        table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in STEPS_SCHEMA} for r in rows],
                                     schema=STEPS_SCHEMA)
        if self._other_steps is not None:
            table = pa.concat_tables([self._other_steps.cast(STEPS_SCHEMA), table])
        return table

    def _trial_row(self, tid: str) -> dict[str, Any]:
        row = {name: None for name, _ in _TRIAL_COLUMNS}
        row.update({k: v for k, v in self._trials.get(tid, {}).items() if k in row})
        row.update(run_id=self.run_id, trial_id=tid, versions=self._versions)
        row["status"] = row["status"] or C.RUNNING
        row["error"] = row["error"] or ""
        row["config_id"] = row["config_id"] or tid
        row["replicate"] = row["replicate"] or 0
        row["selection_metric"], row["oracle"] = self.metric, C.selects_on_test(self.metric)
        history = self._steps.get(tid, {})
        if history:
            steps = sorted(history)
            last = history[steps[-1]]
            row.update(n_reports=len(steps), final_step=steps[-1], final_epoch=last.get("epoch"),
                       final_lambda=last.get(C.LAMBDA), compute_seconds=last.get(C.TRAIN_SECONDS))
            sign = 1.0 if self.mode == "max" else -1.0
            key = C.report_key(self.metric)
            scored = [(sign * v, s) for s in steps if (v := history[s].get(key)) is not None
                      and not math.isnan(v)]
            best = max(scored)[1] if scored else steps[-1]
            row["best_step"] = best
            for key in C.AVERAGE_KEYS:
                row[f"final_{key}"] = last.get(key)
                row[f"best_{key}"] = history[best].get(key)
        seed = self._configs.get(tid, {}).get("seed")
        row["seed"] = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        return row

    def _trials_table(self) -> pa.Table:
        tids = sorted(set(self._trials) | set(self._steps))
        rows = [self._trial_row(t) for t in tids]
        now = _dt.datetime.now(_dt.timezone.utc)
        for row in rows:
            row["updated"] = now
        cfg_names = sorted({k for t in tids for k in self._configs.get(t, {})})
        schema = list(_TRIAL_COLUMNS)
        columns = {name: [r[name] for r in rows] for name, _ in _TRIAL_COLUMNS}
        for name in cfg_names:
            values = [self._configs.get(t, {}).get(name) for t in tids]
            kind, values = _config_column(self._cfg_types.get(name), values)
            schema.append((f"cfg_{name}", kind))
            columns[f"cfg_{name}"] = values
        table = pa.Table.from_pydict(columns, schema=pa.schema(schema))
        if self._other_trials is not None:
            table = pa.concat_tables([self._other_trials, table], promote_options="permissive")
        return table
