"""Where the result tables live on storage (schema version 2): append-only Parquet parts, reading, compaction.

Layout under ``RUN_DIR/results/``::

    trials/<run_id>/<trial_id>.parquet             the trial's current row (replaced atomically when it changes)
    steps/<run_id>/<trial_id>/a<A>-p<P>.parquet    rows of the trial's attempt A written by its flush P
    metrics/<run_id>/<trial_id>/a<A>-p<P>.parquet  (new files only: a flush never rewrites earlier rows)
    <table>/compacted-<n>.parquet                  what ``compact`` merged (one file per table)

Why this shape: the cost of writing a trial's rows depends on that trial only, never on how many trials came
before (the version-1 layout rewrote one file per table at every flush, quadratic over a run); a trial's
files sit in its own folder, so a restart reads back one trial's rows, not the run's.

Visibility — the one rule every reader applies (this package's readers, and the README's duckdb / polars /
pandas one-liners):

* steps, metrics: a row counts iff its ``attempt`` is the highest ``attempt`` of its (run_id, trial_id).
  A trial restarted from a checkpoint at step s (node lost, retry, resumed driver) starts a new attempt whose
  first part carries the earlier attempt's rows before s, so the newest attempt alone is the trial's history.
  Within one attempt each row is written once: part names are chosen before writing, so a flush retried after
  a crash replaces the same file instead of adding a second copy.
* trials: the row with the highest ``version`` per (run_id, trial_id) (there is one unless a trial changed
  after a compaction).

Each file carries ``schema_version`` and ``table`` in its key-value metadata. Version-1 runs
(``results/<table>.parquet``) are read as they are; a writer opened on one converts them first.
A compacted file lists the files it merged (metadata key ``replaces``); if compaction dies before deleting
them, readers skip them and the next ``compact`` deletes them. Compact a run whose search is not running
(the search compacts by itself when it ends).
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import UsageError
from .run_dir import atomic_write, resolve

SCHEMA_VERSION = 2
RESULTS_DIR = "results"
TABLES = ("trials", "steps", "metrics")
ATTEMPT, VERSION = "attempt", "version"
META_KEY, REPLACES_KEY = b"schema_version", b"replaces"
_PART = re.compile(r"a(\d+)-p(\d+)\.parquet$")
_COMPACTED = "compacted-"
_ROW_GROUP = 512 * 1024


# ----------------------------------------------------------------------------- names
def safe_name(text: str) -> str:
    """A path segment for a run or trial id; never hidden ('.', '_' prefixes are skipped by readers)."""
    name = urllib.parse.quote(str(text), safe="-=+,@")
    return name if name[:1] not in (".", "_", "") else f"%{ord(name[0]):02X}{name[1:]}"


def part_name(attempt: int, part: int) -> str:
    return f"a{attempt:04d}-p{part:05d}.parquet"


def table_dir(root: str, table: str) -> str:
    return f"{root}/{RESULTS_DIR}/{table}"


def trial_dir(root: str, table: str, run_id: str, trial_id: str) -> str:
    return f"{table_dir(root, table)}/{safe_name(run_id)}/{safe_name(trial_id)}"


def trial_row_path(root: str, run_id: str, trial_id: str) -> str:
    return f"{table_dir(root, 'trials')}/{safe_name(run_id)}/{safe_name(trial_id)}.parquet"


def v1_path(root: str, table: str) -> str:
    return f"{root}/{RESULTS_DIR}/{table}.parquet"


def with_meta(table: pa.Table, name: str, extra: dict[bytes, bytes] | None = None) -> pa.Table:
    meta = dict(table.schema.metadata or {})
    meta.update({META_KEY: str(SCHEMA_VERSION).encode(), b"table": name.encode(), **(extra or {})})
    return table.replace_schema_metadata(meta)


def write_atomic(fs: pafs.FileSystem, path: str, table: pa.Table) -> int:
    """Write ``table`` to ``path`` so readers see all of it or none of it; returns the bytes written."""
    atomic_write(fs, path, lambda target: pq.write_table(table, target, filesystem=fs, compression="zstd"))
    return table.nbytes


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
    """The files of one table: compacted files and, per (run, trial) folder, its parts by attempt."""

    def __init__(self, fs: pafs.FileSystem, root: str, table: str):
        self.fs, self.table, base = fs, table, table_dir(root, table)
        paths = _files(fs, base)
        self.compacted = sorted(p for p in paths if p.rsplit("/", 1)[1].startswith(_COMPACTED)
                                and p.rsplit("/", 1)[0] == base)
        self.replaced: set[str] = set()
        for path in self.compacted:
            meta = pq.read_schema(path, filesystem=fs).metadata or {}
            _check_version(path, meta)
            self.replaced.update(f"{base}/{rel}" for rel in json.loads(meta.get(REPLACES_KEY, b"[]")))
        self.compacted = [p for p in self.compacted if p not in self.replaced]
        self.parts: dict[str, list[tuple[int, int, str]]] = {}  # trial folder -> [(attempt, part, path)]
        self.rows: list[str] = []  # trials: one file per trial
        for path in paths:
            if path in self.replaced or path in self.compacted:
                continue
            folder, name = path.rsplit("/", 1)
            match = _PART.match(name)
            if match:
                self.parts.setdefault(folder, []).append((int(match[1]), int(match[2]), path))
            elif table == "trials" and folder != base:
                self.rows.append(path)

    def latest_parts(self) -> list[str]:
        """Part files of each trial's highest attempt (older attempts are superseded)."""
        out = []
        for parts in self.parts.values():
            top = max(a for a, _, _ in parts)
            out += [p for a, _, p in sorted(parts) if a == top]
        return out

    def all_files(self) -> list[str]:
        return self.compacted + self.rows + [p for parts in self.parts.values() for _, _, p in parts]

    def empty(self) -> bool:
        return not (self.compacted or self.rows or self.parts)


# ----------------------------------------------------------------------------- reading
def _latest_attempt(table: pa.Table) -> pa.Table:
    """Rows whose attempt is their trial's highest: the visibility rule for steps and metrics."""
    if table.num_rows == 0 or ATTEMPT not in table.column_names:
        return table
    top = table.group_by(["run_id", "trial_id"]).aggregate([(ATTEMPT, "max")]).rename_columns(
        ["run_id", "trial_id", "_top"])
    joined = table.join(top, ["run_id", "trial_id"], join_type="inner")
    return joined.filter(pc.field(ATTEMPT) == pc.field("_top")).drop_columns(["_top"])


def _latest_version(table: pa.Table) -> pa.Table:
    """One row per (run_id, trial_id): the highest version (the trial's last write)."""
    if table.num_rows == 0 or VERSION not in table.column_names:
        return table
    order = pc.sort_indices(table, [("run_id", "ascending"), ("trial_id", "ascending"), (VERSION, "descending")])
    table = table.take(order)
    keys = [f"{r}\x00{t}" for r, t in zip(table.column("run_id").to_pylist(), table.column("trial_id").to_pylist())]
    keep = [i for i, k in enumerate(keys) if i == 0 or k != keys[i - 1]]
    return table.take(pa.array(keep, pa.int64()))


def _read_many(fs: pafs.FileSystem, paths: list[str]) -> pa.Table:
    """Small files with possibly different columns (trials' cfg_*), read in parallel, types promoted."""
    if not paths:
        return pa.table({})

    def one(path: str) -> pa.Table:
        table = pq.read_table(path, filesystem=fs)
        _check_version(path, table.schema.metadata)
        return table.replace_schema_metadata(None)

    with ThreadPoolExecutor(8) as pool:
        tables = list(pool.map(one, paths))
    return pa.concat_tables(tables, promote_options="permissive")


def _dataset(fs: pafs.FileSystem, paths: list[str], schema: pa.Schema) -> ds.Dataset:
    """The files as one dataset with the table's stored schema (a column an older file lacks reads as null)."""
    stored = schema.append(pa.field(ATTEMPT, pa.int64())) if ATTEMPT not in schema.names else schema
    return ds.dataset(paths, schema=stored, format="parquet", filesystem=fs)


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
        out = _latest_version(_read_many(fs, listing.compacted + listing.rows))
        if filter is not None and out.num_rows:
            out = out.filter(filter)
        if columns is not None:
            out = out.select([c for c in columns if c in out.column_names])
        return out
    if listing.empty():
        empty = schema.empty_table()
        return empty.select([c for c in columns if c in empty.column_names]) if columns is not None else empty
    wanted = None if columns is None else list(dict.fromkeys([*columns, "run_id", "trial_id", ATTEMPT]))
    data = _dataset(fs, listing.compacted + listing.latest_parts(), schema)
    wanted = None if wanted is None else [c for c in wanted if c in data.schema.names]
    out = data.to_table(columns=wanted, filter=filter)
    if listing.compacted:  # parts alone are already one attempt per trial
        out = _latest_attempt(out)
    keep = [c for c in (columns or schema.names) if c in out.column_names]
    return out.select(keep).replace_schema_metadata(None)


def scan_values(run_dir: str, picks: pa.Table, split: str, schema: pa.Schema) -> pa.Table:
    """Per-language metric rows at chosen steps, streamed: what ``analyze`` needs from a metrics table.

    ``picks`` has columns run_id, trial_id, step, metric (one row per trial: its chosen step and primary
    metric). The metrics files are scanned batch by batch with the split pushed down, and only matching rows
    are kept, so memory follows the answer (trials × languages), not the table (trials × steps × languages ×
    splits × metrics). Returns run_id, trial_id, lang, uriel_code, seen, value.
    """
    out_cols = ["run_id", "trial_id", "lang", "uriel_code", "seen", "value"]
    fs, root = resolve(run_dir)
    old = v1_path(root, "metrics")
    if _exists(fs, old):
        data, latest = ds.dataset(old, format="parquet", filesystem=fs), False
    else:
        listing = Listing(fs, root, "metrics")
        if listing.empty():
            return schema.empty_table().select(out_cols)
        data, latest = _dataset(fs, listing.compacted + listing.latest_parts(), schema), bool(listing.compacted)
    picks = picks.select(["run_id", "trial_id", "step", "metric"]).cast(pa.schema(
        [("run_id", pa.string()), ("trial_id", pa.string()), ("step", pa.int64()), ("metric", pa.string())]))
    metrics = pc.unique(picks.column("metric")).to_pylist()
    cols = ["run_id", "trial_id", "step", "metric", *out_cols[2:]] + ([ATTEMPT] if latest else [])
    filt = (pc.field("split") == split) & pc.field("metric").isin(metrics)
    found = []
    for batch in data.to_batches(columns=cols, filter=filt, batch_size=1 << 18):
        if batch.num_rows:
            found.append(pa.Table.from_batches([batch]).join(picks, ["run_id", "trial_id", "step", "metric"], join_type="inner"))
    if not found:
        return schema.empty_table().select(out_cols)
    table = pa.concat_tables(found)
    if latest:
        table = _latest_attempt(table)
    return table.select(out_cols)


# ----------------------------------------------------------------------------- one trial's rows
def compacted_files(fs: pafs.FileSystem, root: str, table: str) -> list[str]:
    """The table's compacted files still in force (one listing of the table's folder, not of every trial)."""
    base = table_dir(root, table)
    if fs.get_file_info(base).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    files = sorted(i.path for i in infos if i.type == pafs.FileType.File and i.base_name.startswith(_COMPACTED)
                   and i.base_name.endswith(".parquet"))
    replaced = set()
    for path in files:
        replaced.update(f"{base}/{rel}" for rel in json.loads(
            (pq.read_schema(path, filesystem=fs).metadata or {}).get(REPLACES_KEY, b"[]")))
    return [p for p in files if p not in replaced]


def trial_rows(fs: pafs.FileSystem, root: str, table: str, run_id: str, trial_id: str, schema: pa.Schema,
               compacted: list[str]) -> tuple[int | None, pa.Table]:
    """(highest attempt, its rows) of one trial in steps or metrics; (None, empty) if it has none.
    ``compacted``: the table's :func:`compacted_files`."""
    parts = _trial_parts(fs, root, table, run_id, trial_id)
    if parts:
        top = max(a for a, _ in parts)
        files = [p for a, p in parts if a == top]
        return top, _dataset(fs, files, schema).to_table()
    if not compacted:
        return None, _dataset(fs, [], schema).to_table()
    rows = _dataset(fs, compacted, schema).to_table(
        filter=(pc.field("run_id") == run_id) & (pc.field("trial_id") == trial_id))
    if rows.num_rows == 0:
        return None, rows
    top = pc.max(rows.column(ATTEMPT)).as_py()
    return top, rows.filter(pc.field(ATTEMPT) == top)


def _trial_parts(fs, root, table, run_id, trial_id) -> list[tuple[int, str]]:
    out = []
    for path in _files(fs, trial_dir(root, table, run_id, trial_id)):
        match = _PART.search(path)
        if match:
            out.append((int(match[1]), path))
    return out


def trial_row(fs: pafs.FileSystem, root: str, run_id: str, trial_id: str, compacted: list[str]) -> dict | None:
    """The trial's latest trials row, or None. ``compacted``: the trials table's :func:`compacted_files`."""
    path = trial_row_path(root, run_id, trial_id)
    if _exists(fs, path):
        return pq.read_table(path, filesystem=fs).to_pylist()[0]
    if not compacted:
        return None
    rows = _latest_version(_read_many(fs, compacted))
    rows = rows.filter((pc.field("run_id") == run_id) & (pc.field("trial_id") == trial_id)) if rows.num_rows else rows
    return rows.to_pylist()[0] if rows.num_rows else None


def has_rows(fs: pafs.FileSystem, root: str, run_id: str, compacted: dict[str, list[str]]) -> bool:
    """Whether anything of ``run_id`` may be stored (then a writer looks a trial up before writing it)."""
    return any(compacted.values()) or any(_exists(fs, f"{table_dir(root, t)}/{safe_name(run_id)}") for t in TABLES)


# ----------------------------------------------------------------------------- compaction
def _stamp(table: pa.Table, schema: pa.Schema | None, version: int) -> pa.Table:
    """A version-1 table in the version-2 shape: attempt 0 (steps, metrics) or a version (trials)."""
    if schema is None:
        if VERSION not in table.column_names:
            table = table.append_column(VERSION, pa.array([version] * table.num_rows, pa.int64()))
        if ATTEMPT not in table.column_names:
            table = table.append_column(ATTEMPT, pa.array([0] * table.num_rows, pa.int64()))
        return table
    if ATTEMPT not in table.column_names:
        table = table.append_column(ATTEMPT, pa.array([0] * table.num_rows, pa.int64()))
    return table


def compact(run_dir: str, schemas: dict[str, pa.Schema | None]) -> dict[str, int]:
    """Merge every table's parts (and earlier compacted files, and a version-1 file) into one file each.

    Readers see the same rows before and after. Streams: memory stays at about one row group. Returns the
    number of files merged per table.
    """
    fs, root = resolve(run_dir)
    merged = {}
    for table in TABLES:
        listing = Listing(fs, root, table)
        old = v1_path(root, table)
        has_old = _exists(fs, old)
        sources = listing.all_files() + ([old] if has_old else [])
        if not has_old and not listing.rows and not listing.parts and len(listing.compacted) <= 1 \
                and not listing.replaced:
            merged[table] = 0  # already one file (or none)
            continue
        base = table_dir(root, table)
        version = time.time_ns()
        target = f"{base}/{_COMPACTED}{version:020d}.parquet"
        replaces = sorted({p[len(base) + 1:] for p in listing.all_files() + sorted(listing.replaced)
                           if p.startswith(base + "/")})
        meta = {REPLACES_KEY: json.dumps(replaces).encode()}
        if table == "trials":
            rows = _read_many(fs, listing.compacted + listing.rows)
            if has_old:
                first = _stamp(pq.read_table(old, filesystem=fs).replace_schema_metadata(None), None, 0)
                rows = pa.concat_tables([first, rows] if rows.num_rows else [first], promote_options="permissive")
            rows = _latest_version(rows)
            write_atomic(fs, target, with_meta(rows, table, meta))
        else:
            _compact_rows(fs, root, listing, old if has_old else None, schemas[table], target,
                          with_meta(schemas[table].append(pa.field(ATTEMPT, pa.int64())).empty_table(), table,
                                    meta).schema)
        for path in sources:
            if _exists(fs, path):
                fs.delete_file(path)
        for path in sorted(listing.replaced):
            if _exists(fs, path):
                fs.delete_file(path)
        _drop_empty_folders(fs, base)
        merged[table] = len(sources)
    return merged


def _compact_rows(fs, root, listing: Listing, old: str | None, schema: pa.Schema, target: str,
                  stored: pa.Schema) -> None:
    """Stream the visible rows into ``target``: earlier compacted rows not superseded, then each trial's
    newest attempt, in (run, trial) order so filters on a trial skip most row groups."""
    superseded = {}  # (run, trial) -> highest attempt in parts, which beat compacted rows of that trial
    for folder, parts in listing.parts.items():
        run, trial = (urllib.parse.unquote(x) for x in folder.rsplit("/", 2)[1:])
        superseded[(run, trial)] = max(a for a, _, _ in parts)

    def batches() -> Iterator[pa.Table]:
        if old is not None:
            yield _stamp(pq.read_table(old, filesystem=fs).replace_schema_metadata(None), schema, 0)
        if listing.compacted:
            for batch in _dataset(fs, listing.compacted, schema).to_batches(batch_size=1 << 18):
                t = pa.Table.from_batches([batch])
                if superseded:
                    key = pc.binary_join_element_wise(t.column("run_id"), t.column("trial_id"), "\x00")
                    same = [f"{r}\x00{tr}" for (r, tr), top in superseded.items()]
                    t = t.filter(pc.invert(pc.is_in(key, pa.array(same))))
                yield t
        for folder in sorted(listing.parts):
            parts = listing.parts[folder]
            top = max(a for a, _, _ in parts)
            yield _dataset(fs, [p for a, _, p in sorted(parts) if a == top], schema).to_table()

    def write(target_path: str) -> None:
        with pq.ParquetWriter(target_path, stored, filesystem=fs, compression="zstd") as out:
            buffer, size = [], 0
            for t in batches():
                t = _conform(t, stored)
                buffer.append(t)
                size += t.num_rows
                if size >= _ROW_GROUP:
                    out.write_table(pa.concat_tables(buffer).replace_schema_metadata(stored.metadata),
                                    row_group_size=_ROW_GROUP)
                    buffer, size = [], 0
            if buffer:
                out.write_table(pa.concat_tables(buffer).replace_schema_metadata(stored.metadata),
                                row_group_size=_ROW_GROUP)

    atomic_write(fs, target, write)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns (missing ones null: files from older versions)."""
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema.remove_metadata())


def _drop_empty_folders(fs: pafs.FileSystem, base: str) -> None:
    if fs.type_name != "local" or fs.get_file_info(base).type != pafs.FileType.Directory:
        return  # object stores have no folders to leave behind
    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    dirs = sorted((i.path for i in infos if i.type == pafs.FileType.Directory), key=len, reverse=True)
    for d in dirs:
        if not fs.get_file_info(pafs.FileSelector(d)):
            fs.delete_dir(d)

