"""Where the result tables live on storage (schema version 2): append-only Parquet parts and reading them
(merging them is :mod:`alchemy_tune.results.compaction`).

Layout under ``RUN_DIR/results/``::

    <table>/<run_id>/<writer>-<n>.parquet   the rows one flush of one writer wrote (append-only: never rewritten)
    <table>/compacted-<n>.parquet           what ``compact`` merged (one file per table)

for the tables ``trials``, ``steps`` and ``metrics``. A flush writes at most one new file per table, whatever
the number of trials in the run or in the flush, so the cost of a report or a trial end does not depend on
how many trials came before (the version-1 layout rewrote one whole file per table at every flush).

Visibility — the one rule every reader applies (this package's readers, and the README's duckdb / polars /
pandas one-liners):

* steps, metrics: a row counts iff its ``attempt`` is the highest ``attempt`` of its (run_id, trial_id).
  A trial restarted from a checkpoint at step s (node lost, retry, resumed driver) starts a new attempt whose
  first rows are the earlier attempt's rows before s, so the newest attempt alone is the trial's history.
  Within one attempt each row is written once: a file's name is fixed before it is written, so a flush
  retried after a failure replaces the same file instead of adding a second copy.
* trials: the row with the highest ``version`` per (run_id, trial_id) (its last write).

Each file carries ``schema_version`` and ``table`` in its key-value metadata. Version-1 runs
(``results/<table>.parquet``) are read as they are; a writer opened on one converts them first.
A compacted file lists the files it merged (metadata key ``replaces``); if compaction dies before deleting
them, readers skip them and the next ``compact`` deletes them. One compaction of a run at a time; beside a
running search it leaves the parts written meanwhile for the next one (the search compacts when it ends).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from alchemy_tune.core.errors import UsageError
from alchemy_tune.results.run_dir import atomic_write, resolve

SCHEMA_VERSION = 2
RESULTS_DIR = "results"
TABLES = ("trials", "steps", "metrics")
ATTEMPT, VERSION = "attempt", "version"
META_KEY, REPLACES_KEY = b"schema_version", b"replaces"
_COMPACTED = "compacted-"
_ROW_GROUP = 256 * 1024


# ----------------------------------------------------------------------------- names
def safe_name(text: str) -> str:
    """A path segment for a run or trial id; never hidden ('.', '_' prefixes are skipped by readers)."""
    name = urllib.parse.quote(str(text), safe="-=+,@")
    return name if name[:1] not in (".", "_", "") else f"%{ord(name[0]):02X}{name[1:]}"


def table_dir(root: str, table: str) -> str:
    return f"{root}/{RESULTS_DIR}/{table}"


def v1_path(root: str, table: str) -> str:
    return f"{root}/{RESULTS_DIR}/{table}.parquet"


def with_meta(table: pa.Table, name: str, extra: dict[bytes, bytes] | None = None) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta.update({META_KEY: str(SCHEMA_VERSION).encode(), b"table": name.encode(), **(extra or {})})
    return table.replace_schema_metadata(meta)


def write_atomic(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    """Write ``table`` to ``path`` so readers see all of it or none of it."""
    atomic_write(fs, path, lambda target: pq.write_table(table, target, filesystem=fs, compression="zstd"))


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _files(fs: pafs.FileSystem, base: str) -> list[str]:
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return [i.path for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
            and not i.base_name.startswith((".", "_"))]


def _check_version(path: str, metadata: dict | None) -> None:
    version = int((metadata or {}).get(META_KEY, b"0") or 0)
    if version > SCHEMA_VERSION:
        raise UsageError(f"{path}: schema version {version} is newer than this alchemy-tune reads "
                         f"({SCHEMA_VERSION}); upgrade alchemy-tune")


# ----------------------------------------------------------------------------- listing
class Listing:
    """The files of one table: compacted files in force, and the parts written since."""

    def __init__(self, fs: pafs.FileSystem, root: str, table: str):
        self.table, base = table, table_dir(root, table)
        paths = _files(fs, base)
        compacted = sorted(p for p in paths if p.rsplit("/", 1)[1].startswith(_COMPACTED))
        self.replaced: set[str] = set()
        for path in compacted:
            meta = pq.read_schema(path, filesystem=fs).metadata or {}
            _check_version(path, meta)
            self.replaced.update(f"{base}/{rel}" for rel in json.loads(meta.get(REPLACES_KEY, b"[]")))
        self.replaced &= set(paths)  # merged but not yet deleted (compaction died half-way)
        self.compacted = [p for p in compacted if p not in self.replaced]
        self.parts = sorted(p for p in paths if p not in self.replaced and p not in compacted)

    def files(self) -> list[str]:
        return self.compacted + self.parts

    def empty(self) -> bool:
        return not (self.compacted or self.parts)


# ----------------------------------------------------------------------------- reading
def _newest(table: pa.Table, column: str, one: bool) -> pa.Table:
    """Rows whose ``column`` is the highest of their (run_id, trial_id); ``one``: a single row per trial.
    Joins only the keys and row numbers (Arrow joins cannot carry list columns such as cfg_seen)."""
    if table.num_rows == 0 or column not in table.column_names:
        return table
    keys = pa.table({"run_id": table.column("run_id"), "trial_id": table.column("trial_id"),
                     "_v": table.column(column), "_i": pa.array(range(table.num_rows), pa.int64())})
    top = keys.group_by(["run_id", "trial_id"]).aggregate([("_v", "max")])
    picked = keys.join(top, ["run_id", "trial_id"], join_type="inner").filter(pc.field("_v") == pc.field("_v_max"))
    if one:
        picked = picked.group_by(["run_id", "trial_id"]).aggregate([("_i", "max")]).rename_columns(
            ["run_id", "trial_id", "_i"])
        picked = picked.sort_by([("run_id", "ascending"), ("trial_id", "ascending")])
        return table.take(picked.column("_i"))
    return table.take(pc.take(picked.column("_i"), pc.sort_indices(picked.column("_i"))))


def _latest_attempt(table: pa.Table) -> pa.Table:
    """Rows whose attempt is their trial's highest: the visibility rule for steps and metrics. A dropped
    trial's newest attempt is one tombstone row at step -1, so nothing of it is left."""
    out = _newest(table, ATTEMPT, one=False)
    return out.filter(pc.field("step") >= 0) if "step" in out.column_names and out.num_rows else out


def _latest_version(table: pa.Table) -> pa.Table:
    """One row per (run_id, trial_id): the highest version (the trial's last write), sorted by trial;
    trials dropped by a resumed driver (status ``dropped``) are left out."""
    out = _newest(table, VERSION, one=True)
    return out.filter(pc.field("status") != DROPPED) if "status" in out.column_names and out.num_rows else out


def _read_many(fs: pafs.FileSystem, paths: list[str]) -> pa.Table:
    """Files with possibly different columns (trials' cfg_*), read in parallel, types promoted."""
    if not paths:
        return pa.table({})

    def one(path: str) -> pa.Table:
        try:
            table = pq.read_table(path, filesystem=fs)
        except pa.ArrowInvalid as exc:
            raise UsageError(unreadable(path, exc)) from None
        _check_version(path, table.schema.metadata)
        return table.replace_schema_metadata(None)

    with ThreadPoolExecutor(4) as pool:
        tables = list(pool.map(one, paths))
    return pa.concat_tables(tables, promote_options="permissive")


def _dataset(fs: pafs.FileSystem, paths: list[str], schema: pa.Schema) -> ds.Dataset:
    """The files as one dataset with the table's stored schema (a column an older file lacks reads as null)."""
    return ds.dataset(paths, schema=stored_schema(schema), format="parquet", filesystem=fs)


DROPPED = "dropped"  # trials-row status of a tombstone (see ResultsWriter.drop_trial)


def stored_schema(schema: pa.Schema) -> pa.Schema:
    return schema if ATTEMPT in schema.names else schema.append(pa.field(ATTEMPT, pa.int64()))


def _relisting(read):
    """``read`` again on a fresh listing when a file it listed is gone: a compaction deleted what it merged,
    and the new listing has the merged file in its place. A file whose columns have other types than the
    run's others (not written by this package) is a one-line error naming it."""
    import functools

    @functools.wraps(read)
    def again(run_dir, *args, **kwargs):
        for attempt in range(4):
            try:
                return read(run_dir, *args, **kwargs)
            except FileNotFoundError:
                if attempt == 3:
                    raise
                time.sleep(0.1 * (attempt + 1))
            except (pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise UsageError(mistyped(run_dir) or f"{run_dir}/{RESULTS_DIR}: {exc}") from None
    return again


DECLARED: dict[str, dict[str, str]] = {}
"""Table -> column -> its declared Arrow type, as text (registered by :mod:`alchemy_tune.results.schema`)."""


def _which_unreadable(fs, paths, exc: Exception) -> str:
    for path in paths:
        try:
            pq.read_metadata(path, filesystem=fs)
        except (pa.ArrowInvalid, OSError) as bad:
            return unreadable(path, bad)
    return f"results: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__}"


def unreadable(path: str, exc: Exception) -> str:
    """A results file Parquet cannot read (cut by a crash mid-write, or not one this package wrote), named,
    with what to do."""
    first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
    return (f"{path}: not a readable Parquet file ({first}); a crash may have cut it: move it out of the "
            "results folder to go on (the rows it held are lost)")


def mistyped(run_dir: str, declared_only: bool = False) -> str | None:
    """Which results file cannot be read, or has a column of another type than declared (or, for columns
    declared nowhere such as ``cfg_*``, than most of its table's files have), in words; None when every
    file reads and every column agrees."""
    fs, root = resolve(run_dir)
    for table in TABLES:
        kinds: dict[str, dict[str, list[str]]] = {}
        for path in _files(fs, table_dir(root, table)):
            try:
                schema = pq.read_schema(path, filesystem=fs)
            except pa.ArrowInvalid as exc:
                return unreadable(path, exc)
            for field in schema:
                kinds.setdefault(field.name, {}).setdefault(str(field.type), []).append(path)
        for column, by_type in kinds.items():
            usual = DECLARED.get(table, {}).get(column)
            if usual is None and len(by_type) > 1 and not declared_only:
                usual = max(by_type, key=lambda t: len(by_type[t]))
            odd = next((t for t in by_type if usual is not None and t != usual and t != "null"), None)
            if odd is not None:
                return (f"{by_type[odd][0]}: column {column} is {odd} where the {table} table has {usual}; not a "
                        f"file this package wrote: move it out of {run_dir}/{RESULTS_DIR}")
    return None


@_relisting
def read_table(run_dir: str, table: str, schema: pa.Schema | None, columns: list[str] | None = None,
               filter: pc.Expression | None = None) -> pa.Table:
    """One logical table of a run (version 1 or 2), superseded rows removed; empty if nothing was written."""
    fs, root = resolve(run_dir)
    old = v1_path(root, table)
    if _exists(fs, old):
        pf = pq.ParquetFile(old, filesystem=fs)
        _check_version(f"{run_dir}/{RESULTS_DIR}/{table}.parquet", pf.schema_arrow.metadata)
        out = pf.read(columns=None if columns is None else [c for c in columns if c in pf.schema_arrow.names])
        return out.filter(filter) if filter is not None else out
    listing = Listing(fs, root, table)
    if table == "trials":
        out = _latest_version(_read_many(fs, listing.files()))
        if filter is not None and out.num_rows:
            out = out.filter(filter)
        if columns is not None:
            out = out.select([c for c in columns if c in out.column_names])
        return out
    if listing.empty():
        empty = schema.empty_table()
        return empty.select([c for c in columns if c in empty.column_names]) if columns is not None else empty
    data = _dataset(fs, listing.files(), schema)
    wanted = None if columns is None else [c for c in dict.fromkeys([*columns, "run_id", "trial_id", ATTEMPT, "step"])
                                           if c in data.schema.names]
    out = _latest_attempt(data.to_table(columns=wanted, filter=filter))
    keep = [c for c in (columns or schema.names) if c in out.column_names]
    return out.select(keep).replace_schema_metadata(None)


@_relisting
def scan_values(run_dir: str, picks: pa.Table, split: str, schema: pa.Schema, extra: tuple = ()) -> pa.Table:
    """Per-language metric rows at chosen steps, streamed: what ``analyze`` needs from a metrics table.

    ``picks`` has columns run_id, trial_id, step, metric (one row per trial: its chosen step and primary
    metric). The metrics files are scanned batch by batch with the split and metrics pushed down, and only
    matching rows are kept, so memory follows the answer (trials × languages), not the table (trials × steps
    × languages × splits × metrics). Of a trial's matching rows, those of its newest attempt count (the chosen
    step comes from that attempt, so the newest attempt holding that step is the trial's newest).
    Returns run_id, trial_id, lang, uriel_code, seen, value, role (derived from seen for runs written
    before language roles), and the ``extra`` columns.
    """
    out_cols = ["run_id", "trial_id", "lang", "uriel_code", "seen", "value", "role", *extra]
    fs, root = resolve(run_dir)
    old = v1_path(root, "metrics")
    if _exists(fs, old):
        data = ds.dataset(old, format="parquet", filesystem=fs)
    else:
        listing = Listing(fs, root, "metrics")
        if listing.empty():
            return schema.empty_table().select(out_cols)
        data = _dataset(fs, listing.files(), schema)
    picks = picks.select(["run_id", "trial_id", "step", "metric"]).cast(pa.schema(
        [("run_id", pa.string()), ("trial_id", pa.string()), ("step", pa.int64()), ("metric", pa.string())]))
    metrics = pc.unique(picks.column("metric")).to_pylist()
    if not metrics:
        return schema.empty_table().select(out_cols)
    latest = ATTEMPT in data.schema.names
    has_role = "role" in data.schema.names
    if any(c not in data.schema.names for c in extra):  # a run written before these columns existed
        return schema.empty_table().select(out_cols)
    cols = ["run_id", "trial_id", "step", "metric", "lang", "uriel_code", "seen", "value"] \
        + [c for c in extra if c not in ("metric", "step")] + (["role"] if has_role else []) + ([ATTEMPT] if latest else [])
    filt = (pc.field("split") == split) & pc.field("metric").isin(metrics)
    found = []
    try:
        for batch in data.to_batches(columns=cols, filter=filt, batch_size=1 << 18):
            if batch.num_rows:
                found.append(pa.Table.from_batches([batch]).join(picks, ["run_id", "trial_id", "step", "metric"],
                                                                 join_type="inner"))
    except pa.ArrowInvalid as exc:  # Arrow's message names no file: find the one that cannot be read
        raise UsageError(_which_unreadable(fs, data.files, exc)) from None
    if not found:
        return schema.empty_table().select(out_cols)
    table = pa.concat_tables(found)
    table = with_roles(_latest_attempt(table) if latest else table)
    return table.select(out_cols)


def with_roles(table: pa.Table) -> pa.Table:
    """Metric rows written before language roles existed get theirs from ``seen`` (seen or unseen)."""
    if "role" in table.column_names or "seen" not in table.column_names:
        return table
    return table.append_column("role", pc.if_else(table["seen"], "seen", "unseen"))


def write_part(fs: pafs.FileSystem, root: str, table: str, run_id: str, name: str, rows: pa.Table) -> str:
    """Write one flush's rows of ``table`` as the part ``name``; returns its path."""
    path = f"{table_dir(root, table)}/{safe_name(run_id)}/{name}.parquet"
    write_atomic(fs, path, with_meta(rows, table))
    return path


def index_trials(fs: pafs.FileSystem, root: str, table: str, run_id: str) -> dict:
    """trial_id -> (highest attempt, files holding rows of it) for ``run_id`` in steps or metrics: what a
    writer continuing a run (a resumed driver) needs to carry a trial's rows into its next attempt."""
    out: dict[str, tuple[int, list[str]]] = {}
    listing = Listing(fs, root, table)
    for path in listing.files():
        part = pq.read_table(path, filesystem=fs, columns=["run_id", "trial_id", ATTEMPT],
                             filters=[("run_id", "==", run_id)])
        if part.num_rows == 0:
            continue
        for row in part.group_by(["trial_id", ATTEMPT]).aggregate([]).to_pylist():
            tid, attempt = row["trial_id"], row[ATTEMPT]
            top, files = out.get(tid, (-1, []))
            if attempt > top:
                out[tid] = (attempt, [path])
            elif attempt == top:
                files.append(path)
    return out


def trial_rows(fs: pafs.FileSystem, files: list[str], schema: pa.Schema, run_id: str, trial_id: str,
               attempt: int) -> pa.Table:
    """One trial's rows of one attempt from the files that hold them."""
    if not files:
        return stored_schema(schema).empty_table()
    return _dataset(fs, files, schema).to_table(
        filter=(pc.field("run_id") == run_id) & (pc.field("trial_id") == trial_id) & (pc.field(ATTEMPT) == attempt))


def has_rows(fs: pafs.FileSystem, root: str) -> bool:
    """Whether the run has stored rows (then a writer indexes them before continuing it)."""
    return any(_exists(fs, table_dir(root, t)) or _exists(fs, v1_path(root, t)) for t in TABLES)


# ----------------------------------------------------------------------------- compaction
