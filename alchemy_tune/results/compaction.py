"""Compaction: a run's result parts merged into one Parquet file per table, with the readers' rows unchanged.

A compacted file names the files it replaces in its metadata (:class:`alchemy_tune.results.store.Listing`
ignores them), and they are deleted last, so a compaction that dies half-way duplicates nothing. One
compaction of a run at a time (:mod:`alchemy_tune.results.lock`).
"""

from __future__ import annotations

import json
import time
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from alchemy_tune.core.errors import UsageError
from alchemy_tune.results.run_dir import atomic_write, resolve
from alchemy_tune.results.store import (ATTEMPT, Listing, REPLACES_KEY, RESULTS_DIR, TABLES, VERSION, _COMPACTED,
    _ROW_GROUP, _exists, _latest_version, _read_many, mistyped, stored_schema, table_dir, v1_path, with_meta,
    write_atomic)


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

    Readers see the same rows before and after: superseded rows are dropped, nothing else. Streams file by
    file, so memory stays at about one row group. Returns the number of files merged per table. One
    compaction of a run at a time (:mod:`alchemy_tune.results.lock`); parts a running search writes meanwhile
    are left for the next one.
    """
    from alchemy_tune.results.lock import compaction_lock

    fs, root = resolve(run_dir)
    with compaction_lock(fs, f"{root}/{RESULTS_DIR}", run_dir):
        odd = mistyped(run_dir, declared_only=True)  # named before any table is merged: nothing changes
        if odd:
            raise UsageError(odd)
        return _compact(fs, root, schemas)


STALE_TMP_S = 600
"""A temporary file (``.NAME.<uuid>.tmp``, :func:`alchemy_tune.results.run_dir.atomic_write`) older than
this is a killed writer's leftover: a part or a compacted file takes seconds to write."""


def sweep_stale_tmp(fs, base: str, now: float | None = None) -> int:
    """Delete the leftover temporary files of killed writers in one table folder; the number deleted. A
    fresh one may be a running search's part being written, and stays."""
    import pyarrow.fs as pafs

    now = time.time() if now is None else now
    gone = 0
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=False, allow_not_found=True))
    except OSError:
        return 0
    for info in infos:
        name = info.path.rsplit("/", 1)[-1]
        if (info.type == pafs.FileType.File and name.startswith(".") and name.endswith(".tmp")
                and info.mtime is not None and now - info.mtime.timestamp() > STALE_TMP_S):
            fs.delete_file(info.path)
            gone += 1
    return gone


def _compact(fs, root: str, schemas: dict[str, pa.Schema | None]) -> dict[str, int]:
    merged = {}
    for table in TABLES:
        sweep_stale_tmp(fs, table_dir(root, table))  # under the compaction lock: one sweeper at a time
        listing = Listing(fs, root, table)
        old = v1_path(root, table)
        has_old = _exists(fs, old)
        if not has_old and not listing.parts and len(listing.compacted) <= 1 and not listing.replaced:
            merged[table] = 0  # already one file (or none)
            continue
        base = table_dir(root, table)
        target = f"{base}/{_COMPACTED}{time.time_ns():020d}.parquet"
        sources = listing.files()
        replaces = sorted(p[len(base) + 1:] for p in sources + sorted(listing.replaced))
        meta = {REPLACES_KEY: json.dumps(replaces).encode()}
        if table == "trials":
            rows = _read_many(fs, sources)
            if has_old:
                first = _stamp(pq.read_table(old, filesystem=fs).replace_schema_metadata(None), None, 0)
                rows = pa.concat_tables([first, rows] if rows.num_rows else [first], promote_options="permissive")
            write_atomic(fs, target, with_meta(_latest_version(rows), table, meta))
        else:
            stored = with_meta(stored_schema(schemas[table]).empty_table(), table, meta).schema
            _compact_rows(fs, sources, old if has_old else None, schemas[table], target, stored)
        for path in sources + sorted(listing.replaced) + ([old] if has_old else []):
            if _exists(fs, path):
                fs.delete_file(path)
        _drop_empty_folders(fs, base)
        merged[table] = len(sources) + has_old
    return merged


def _compact_rows(fs, sources: list[str], old: str | None, schema: pa.Schema, target: str,
                  stored: pa.Schema) -> None:
    """Stream the rows of each trial's newest attempt into ``target``, file by file."""
    low: dict[tuple[str, str], int] = {}
    top: dict[tuple[str, str], int] = {}
    # first pass: each trial's oldest and newest attempt, from three columns
    for batch in _file_batches(fs, sources, ["run_id", "trial_id", ATTEMPT], 1 << 18):
        part = pa.Table.from_batches([batch])
        if ATTEMPT not in part.column_names:
            part = part.append_column(ATTEMPT, pa.repeat(pa.scalar(0, pa.int64()), part.num_rows))
        part = part.group_by(["run_id", "trial_id"]).aggregate([(ATTEMPT, "min"), (ATTEMPT, "max")])
        for run, trial, lo, hi in zip(*(part.column(c).to_pylist() for c in part.column_names)):
            low[(run, trial)] = min(low.get((run, trial), hi), lo)
            top[(run, trial)] = max(top.get((run, trial), -1), hi)
    if old is not None:  # a version-1 table is attempt 0 of its trials; any part is newer
        rows = _stamp(pq.read_table(old, filesystem=fs).replace_schema_metadata(None), schema, 0)
        for key in set(zip(rows.column("run_id").to_pylist(), rows.column("trial_id").to_pylist())):
            low[key] = 0
            top.setdefault(key, 0)
    # Only restarted trials have superseded rows; everything else is copied as it is.
    restarted = {k: v for k, v in top.items() if low.get(k, v) != v}
    stale = None
    for (run, trial), newest in restarted.items():
        cond = (pc.field("run_id") == run) & (pc.field("trial_id") == trial) & (pc.field(ATTEMPT) < newest)
        stale = cond if stale is None else stale | cond

    def tables() -> Iterator[pa.Table]:
        if old is not None:
            yield _stamp(pq.read_table(old, filesystem=fs).replace_schema_metadata(None), schema, 0)
        for batch in _file_batches(fs, sources, None, 1 << 16):
            yield pa.Table.from_batches([batch])

    # Row groups hold one (split, metric) each, so a reader that wants one split and metric (analyze) skips
    # the others by their statistics instead of decoding them.
    cluster = [c for c in ("split", "metric") if c in stored.names]

    def write(target_path: str) -> None:
        with pq.ParquetWriter(target_path, stored, filesystem=fs, compression="zstd") as out:
            buffers: dict[tuple, list[pa.Table]] = {}
            sizes: dict[tuple, int] = {}
            for t in tables():
                t = _conform(t if stale is None else t.filter(~stale), stored)
                for key, group in _groups(t, cluster):
                    buffers.setdefault(key, []).append(group)
                    sizes[key] = sizes.get(key, 0) + group.num_rows
                    if sizes[key] >= _ROW_GROUP:
                        out.write_table(pa.concat_tables(buffers.pop(key)), row_group_size=_ROW_GROUP)
                        sizes[key] = 0
            for key in sorted(buffers, key=str):
                out.write_table(pa.concat_tables(buffers[key]), row_group_size=_ROW_GROUP)

    atomic_write(fs, target, write)


def _file_batches(fs: pafs.FileSystem, paths: list[str], columns: list[str] | None,
                  batch_size: int) -> Iterator[pa.RecordBatch]:
    """The files' record batches, one file after another (columns a file lacks are left out).

    Not a dataset scanner: it reads ahead of a consumer that itself keeps Arrow's threads busy, and held
    1.2 GB of decoded batches while compacting 20.8 M metric rows; one file at a time holds about a batch."""
    for path in paths:
        pf = pq.ParquetFile(path, filesystem=fs)
        names = pf.schema_arrow.names
        yield from pf.iter_batches(batch_size=batch_size,
                                   columns=None if columns is None else [c for c in columns if c in names])


def _groups(table: pa.Table, columns: list[str]) -> Iterator[tuple[tuple, pa.Table]]:
    """``table`` split by the values of ``columns`` (a handful: splits × metrics)."""
    if not columns or table.num_rows == 0:
        yield (), table
        return
    keys = table.select(columns).group_by(columns).aggregate([]).to_pylist()
    for key in keys:
        cond = None
        for c in columns:
            term = pc.field(c).is_null() if key[c] is None else pc.field(c) == key[c]
            cond = term if cond is None else cond & term
        yield tuple(key[c] for c in columns), table.filter(cond)


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

