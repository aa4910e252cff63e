"""The results writer: trial reports in, new Parquet parts of the three result tables out.

What the tables hold (their schema): :mod:`alchemy_tune.results.schema`. How parts are laid out, superseded and
compacted: :mod:`alchemy_tune.results.store`. The search driver feeds one writer from Ray Tune's callbacks
(:class:`alchemy_tune.tuning.trial_end.ResultsCallback`); ``alchemy-tune train`` and the tests feed it directly.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from alchemy_tune.core import constants as C
from alchemy_tune.results import store as store
from alchemy_tune.core.errors import UsageError
from alchemy_tune.results.schema import (ITEM_METRICS, METRICS_SCHEMA, STATUSES, STEP_FLOATS, STEPS_SCHEMA,
                                         compact, read_steps, read_trials)
from alchemy_tune.results.run_record import RunRecord
from alchemy_tune.results.run_dir import resolve
from alchemy_tune.results.trials_table import best_step, config_types, full_config, summary_row, trials_table

logger = logging.getLogger(__name__)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _test_scored(metrics: Mapping) -> bool:
    """The report's own flag; reports without it (older trial functions) had test when a test value is."""
    if C.TEST_SCORED in metrics:
        return bool(metrics[C.TEST_SCORED])
    return any((v := _float(metrics.get(k))) is not None and not math.isnan(v)
               for k in C.AVERAGE_KEYS if k.startswith("test_"))


def _repeated(runs: list[tuple[int, int]]) -> pa.Array:
    """An int64 column: each (value, count) of ``runs`` as ``count`` copies of ``value``, in order."""
    return pa.concat_arrays([pa.array([], pa.int64())]
                            + [pa.repeat(pa.scalar(value, pa.int64()), count) for value, count in runs])


@dataclass
class _Trial:
    """What the writer holds for one trial it has seen in this process: its unwritten rows and its curve."""

    attempt: int = 0
    on_disk: bool = False  # rows of this attempt are stored (a restart starts a new attempt)
    files: list[str] = field(default_factory=list)  # metrics parts holding rows of this attempt
    restart: bool = False  # the next report starts a new attempt (a stored trial continued by this writer)
    last_step: int | None = None
    history: dict[int, dict] = field(default_factory=dict)  # step -> steps row, this attempt (for best/final)
    metrics: list[pa.Table] = field(default_factory=list)  # unwritten metric rows
    steps: list[int] = field(default_factory=list)  # steps whose rows are unwritten
    row: dict[str, Any] = field(default_factory=dict)  # status, error, resources, ...
    config: dict[str, Any] | None = None
    dirty: bool = False  # the trials row changed
    ended: bool = False


class ResultsWriter:
    """Records trial reports and writes them as new Parquet parts (see :mod:`alchemy_tune.results.store`).

    ``add_report`` builds one small Arrow table per report and keeps it until it is written; a flush writes
    everything unwritten as one new file per table, and a trial that has ended and been written is forgotten,
    so memory and the cost of a report or a trial end do not grow with the number of trials before it.
    Flushes happen explicitly, at most every ``flush_interval_s`` seconds, and at each trial end
    (``math.inf``: only explicit ones). With ``background=True`` (the search driver) a thread writes, so Ray
    Tune's event loop never waits for storage, and trial ends arriving while it writes go out together in
    its next file; ``close`` writes what is left and stops it. A writer opened on a run with stored rows (a
    resumed driver) indexes them first, so a trial it continues starts a new attempt with its kept rows.
    """

    def __init__(self, run_dir: str, run_id: str, *, metric: str | None = None, mode: str | None = None,
                 flush_interval_s: float = 30.0, background: bool = False):
        if not run_id or not isinstance(run_id, str):
            raise UsageError(f"run_id: expected a non-empty string, got {run_id!r}")
        self.run_dir, self.run_id = str(run_dir), run_id
        self._fs, self._root = resolve(self.run_dir)
        record = self._run_record()
        self.metric = metric or (record.metric if record else C.SELECT)
        self.mode = mode or (record.mode if record else "max")
        if self.metric not in C.SELECTION_METRICS and self.metric not in C.AVERAGE_KEYS:  # older runs too
            raise UsageError(f"metric: {self.metric!r} is not one of {', '.join(C.SELECTION_METRICS)}")
        if self.mode not in ("max", "min"):
            raise UsageError(f"mode: {self.mode!r} is not one of max, min")
        self._versions = json.dumps(record.versions if record else {}, sort_keys=True)
        self.flush_interval_s = float(flush_interval_s)
        self.min_gap_s = 1.0  # background: a trial end is on storage within about a second
        self._cfg_types = config_types()
        self._trials: dict[str, _Trial] = {}
        self._lock = threading.RLock()  # the in-memory state
        self._io = threading.Lock()  # one flush at a time; a restart waits for the write in flight
        self._ended: set[str] = set()  # ended trials not yet written
        self._stored_ends: list[str] = []  # ended trials whose end is now stored (see stored_ends)
        self._token, self._seq = f"{time.time_ns():x}", 0  # part names: <writer>-<n>, fixed before writing
        self._last_flush = time.monotonic()
        self._last_version = 0
        self.flush_seconds = 0.0  # wall and CPU time spent writing (the benchmark reports them)
        self.flush_cpu_seconds = 0.0
        self._forgotten: dict[str, tuple[int, list[str]]] = {}  # ended and written: (attempt, metrics parts)
        self._index: dict[str, tuple[int, list[str]]] | None = None
        if store.has_rows(self._fs, self._root):
            if any(self._fs.get_file_info(store.v1_path(self._root, t)).type.name == "File" for t in store.TABLES):
                compact(self.run_dir)  # a version-1 run continued by this version: convert it once
            self._index = store.index_trials(self._fs, self._root, "metrics", run_id)
            stored = read_trials(self.run_dir, columns=["run_id", "trial_id"])
            for rid, tid in zip(stored.column("run_id").to_pylist(), stored.column("trial_id").to_pylist()):
                if rid == run_id:
                    self._index.setdefault(tid, (None, []))
        self._error: BaseException | None = None
        self._stop = False
        self._wake = threading.Event()
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._flush_loop, name="alchemy-results", daemon=True)
            self._thread.start()

    def _run_record(self) -> RunRecord | None:
        try:
            return RunRecord.read(self.run_dir)
        except UsageError:
            return None  # a writer may start before the run's record exists

    # ------------------------------------------------------------------ state
    def _state(self, tid: str) -> _Trial:
        st = self._trials.get(tid)
        if st is None:
            st = self._trials[tid] = _Trial()
            if tid in (self._index or {}) or tid in self._forgotten:
                self._load(tid, st)
        return st

    def _load(self, tid: str, st: _Trial) -> None:
        """A trial stored by an earlier writer (a resumed driver) or by this one before it ended."""
        attempt, files = self._forgotten.pop(tid, None) or (self._index or {}).get(tid, (None, []))
        mine = (pc.field("run_id") == self.run_id) & (pc.field("trial_id") == tid)
        rows = read_trials(self.run_dir, filter=mine).to_pylist()
        if attempt is None and not rows:
            return
        row = rows[0] if rows else {}
        steps = read_steps(self.run_dir, filter=mine)
        st.attempt = max(a for a in (attempt, row.get(store.ATTEMPT), 0) if a is not None)
        st.on_disk = st.restart = True
        st.files = files if attempt == st.attempt else []
        st.history = {r["step"]: r for r in steps.to_pylist()}
        st.last_step = max(st.history) if st.history else None
        if row:
            st.config = {k[4:]: v for k, v in row.items() if k.startswith("cfg_")}
            st.row = {k: v for k, v in row.items() if not k.startswith("cfg_") and v is not None}

    def _restart(self, tid: str, st: _Trial, step: int) -> None:
        """The trial reports ``step`` again (restored from an earlier checkpoint, or resumed by a new driver):
        a new attempt, holding the rows before ``step``; the later ones are superseded."""
        if st.on_disk:  # rows of this attempt are stored: carry the kept ones into the new attempt
            stored = store.trial_rows(self._fs, st.files, METRICS_SCHEMA, self.run_id, tid, st.attempt)
            kept = stored.filter(pc.field("step") < step).drop_columns([store.ATTEMPT])
            st.metrics = [kept.cast(METRICS_SCHEMA)] + st.metrics
            st.attempt, st.on_disk, st.files = st.attempt + 1, False, []
        st.metrics = [t if t.num_rows == 0 or pc.max(t.column("step")).as_py() < step
                      else t.filter(pc.field("step") < step) for t in st.metrics]
        st.history = {k: v for k, v in st.history.items() if k < step}
        st.steps = sorted(st.history)
        st.last_step = max(st.history) if st.history else None
        st.restart = False
        st.dirty = True

    # ------------------------------------------------------------------ recording
    def set_identity(self, trial_id: str, config_id: str, replicate: int, baseline: bool = False) -> None:
        """The configuration ``trial_id`` runs, its replicate index (default: its own id, 0) and whether it is
        a matched baseline the search added."""
        with self._lock:
            st = self._state(str(trial_id))
            st.row["config_id"], st.row["replicate"] = str(config_id), int(replicate)
            st.row["matched_baseline"] = bool(baseline)
            st.dirty = True

    def add_report(self, trial_id: str, config: Mapping, metrics: Mapping) -> None:
        """Record one evaluation of ``trial_id`` (a report dict in the constants.py format)."""
        step = metrics.get(C.STEP)
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f"report of trial {trial_id}: 'step' must be an int, got {step!r}")
        trial_id = str(trial_id)
        table = self._metric_rows(trial_id, step, metrics)
        examples = metrics.get(C.EXAMPLES_SEEN)
        steps_row = {"run_id": self.run_id, "trial_id": trial_id, "step": step,
                     "examples_seen": examples if isinstance(examples, int) else None,
                     **{k: _float(metrics.get(k)) for k in STEP_FLOATS},
                     "status": str(metrics.get(C.STATUS, C.RUNNING)),
                     C.TEST_SCORED: _test_scored(metrics)}
        with self._lock:
            st = self._state(trial_id)
            restart = st.restart or (st.last_step is not None and step <= st.last_step)
        if restart:
            with self._io, self._lock:  # no write of this trial in flight while its attempt changes
                self._restart(trial_id, st, step)
        with self._lock:
            if st.config is None or not st.history:
                st.config = full_config(config)
            st.metrics.append(table)
            st.history[step] = steps_row
            st.steps.append(step)
            st.last_step = step
            status = metrics.get(C.STATUS, C.RUNNING)
            st.row["status"] = status if status in STATUSES else C.RUNNING  # a retried trial runs again
            if metrics.get(C.REASON):
                st.row["error"] = str(metrics[C.REASON])
            st.row["primary_metric"] = metrics.get(C.PRIMARY_METRIC)
            if metrics.get(C.PRECISION):
                st.row[C.PRECISION] = str(metrics[C.PRECISION])
            for key in (C.PEAK_RSS_MB, C.PEAK_GPU_MB):  # the peak over every attempt of the trial
                value = _float(metrics.get(key))
                if value is not None and not math.isnan(value):
                    st.row[key] = max(value, st.row.get(key) or 0.0)
            st.ended, st.dirty = False, True
        if self._thread is None and time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def _metric_rows(self, trial_id: str, step: int, metrics: Mapping) -> pa.Table:
        """One report's tidy rows as a small Arrow table (a few hundred rows)."""
        shared = tuple(_float(metrics.get(k)) for k in (C.LAMBDA, C.TRAIN_LOSS, C.TASK_LOSS, C.URIEL_LOSS,
                                                        C.TRAIN_SECONDS))
        epoch = _float(metrics.get(C.EPOCH))
        split_c, lang_c, uriel_c, seen_c, metric_c, value_c, role_c = [], [], [], [], [], [], []
        item_c: list[int | None] = []
        langs = metrics.get(C.LANGS) or {}
        for lang, info in langs.items():
            uriel, seen, role = info.get("uriel"), bool(info.get("seen")), C.lang_role(info)
            for split in C.SPLITS_RECORDED:
                for name, value in (info.get(split) or {}).items():
                    split_c.append(split), lang_c.append(lang), uriel_c.append(uriel), seen_c.append(seen)
                    metric_c.append(name), value_c.append(_float(value)), role_c.append(role)
        item_c += [None] * len(value_c)
        for lang, answers in (metrics.get(C.ITEMS) or {}).items():  # each test example, where test was scored
            info = langs.get(lang, {})
            uriel, seen, role = info.get("uriel"), bool(info.get("seen")), C.lang_role(info)
            for name in ITEM_METRICS:
                values = [_float(v) for v in answers.get(name, ())]
                k = len(values)
                split_c += ["test"] * k
                lang_c += [lang] * k
                uriel_c += [uriel] * k
                seen_c += [seen] * k
                metric_c += [name] * k
                value_c += values
                role_c += [role] * k
                item_c += range(k)
        n = len(value_c)
        return pa.Table.from_arrays(
            [pa.array([v] * n, f.type) for v, f in zip((self.run_id, trial_id, step, epoch), METRICS_SCHEMA)]
            + [pa.array(c, f.type) for c, f in zip((split_c, lang_c, uriel_c, seen_c, metric_c, value_c),
                                                     list(METRICS_SCHEMA)[4:10])]
            + [pa.array([v] * n, pa.float64()) for v in shared] + [pa.array(role_c, pa.string()),
                                                                   pa.array(item_c, pa.int64())],
            schema=METRICS_SCHEMA)

    def drop_trial(self, trial_id: str) -> None:
        """Hide every row of ``trial_id`` (a dead driver's Ray trial whose Optuna trial another took over).

        Parts are append-only, so this writes tombstones: a newer attempt of the trial holding one row at
        step -1 in steps and metrics (readers keep a trial's newest attempt, then drop negative steps) and
        a newer trials row with status ``dropped`` (readers drop those)."""
        trial_id = str(trial_id)
        with self._io, self._lock:
            st = self._state(trial_id)
            if st.on_disk or st.history or st.row:
                name = f"{self._token}-{self._seq:06d}"
                self._seq += 1
                tomb = {"run_id": self.run_id, "trial_id": trial_id, "step": -1, store.ATTEMPT: st.attempt + 1}
                for table, schema in (("metrics", METRICS_SCHEMA), ("steps", STEPS_SCHEMA)):
                    store.write_part(self._fs, self._root, table, self.run_id, name,
                                     pa.Table.from_pylist([tomb], schema=store.stored_schema(schema)))
                row = self._trial_row(trial_id, st)
                row["status"] = store.DROPPED
                store.write_part(self._fs, self._root, "trials", self.run_id, name, trials_table([row], self._cfg_types))
            self._trials.pop(trial_id, None)
            self._ended.discard(trial_id)
            self._forgotten.pop(trial_id, None)
            if self._index:
                self._index.pop(trial_id, None)

    def at_best_step(self, trial_id: str) -> dict | None:
        """The trial's averages at its best step (the step the tables' ``best_*`` columns hold); None when it
        never reported."""
        with self._lock:
            st = self._state(str(trial_id))
            if not st.history:
                return None
            return dict(st.history[best_step(st.history, self.metric, self.mode)])

    def end_trial(self, trial_id: str, status: str, *, error: str = "", pruned_at_step: int | None = None,
                  resources: Mapping | None = None, wall_seconds: float | None = None,
                  config: Mapping | None = None) -> None:
        """Record how ``trial_id`` ended; it is written at once (by the thread, with ``background``).
        ``config`` fills the cfg_ columns of a trial that never reported (e.g. it crashed at start)."""
        if status not in STATUSES:
            raise ValueError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        trial_id = str(trial_id)
        with self._lock:
            st = self._state(trial_id)
            if config is not None and st.config is None:
                st.config = full_config(config)
            trial = st.row
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
            st.dirty = st.ended = True
            self._ended.add(trial_id)
        if self._thread is not None:
            self._wake.set()
        elif math.isfinite(self.flush_interval_s):
            self.flush()

    def stored_ends(self) -> list[str]:
        """Trials whose end (recorded with :meth:`end_trial`) has been written since the last call."""
        with self._lock:
            ended, self._stored_ends = self._stored_ends, []
        return ended

    # ------------------------------------------------------------------ writing
    def storage_error(self) -> BaseException | None:
        """The error of the writing thread's last attempt, if it failed (the rows stay for the next)."""
        return self._error

    def hold_error(self, error: BaseException) -> None:
        """Keep ``error`` as the last attempt's (a flush outside the thread failed the same way)."""
        self._error = error

    def flush(self) -> None:
        """Write every unwritten row now (each trial's rows as new part files, its trials row replaced)."""
        self._flush(None)
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self, *, compact_after: bool = False) -> None:
        """Write what is left, stop the writing thread, and optionally compact the run's tables."""
        if self._thread is not None:
            self._stop = True
            self._wake.set()
            self._thread.join()
            self._thread = None
        self.flush()
        if compact_after:
            compact(self.run_dir)

    def _flush_loop(self) -> None:
        while not self._stop:
            timeout = self.flush_interval_s if math.isfinite(self.flush_interval_s) else None
            self._wake.wait(timeout)
            # Trial ends within the next moment go into the same files: fewer, larger parts when many end.
            time.sleep(self.min_gap_s)
            self._wake.clear()
            if self._stop:
                return
            due = time.monotonic() - self._last_flush >= self.flush_interval_s
            with self._lock:
                ended = set(self._ended)
            try:
                self._flush(None if due else ended)
            except Exception as exc:  # storage hiccup: keep the rows, retry at the next flush
                logger.warning("writing results failed (will retry): %s", exc)
                self._error = exc

    def _flush(self, only: set[str] | None) -> None:
        with self._io:
            started, cpu = time.perf_counter(), time.thread_time()
            with self._lock:
                jobs = []
                for tid, st in list(self._trials.items()):
                    if (only is not None and tid not in only) or not (st.metrics or st.steps or st.dirty):
                        continue
                    rows = [st.history[s] for s in st.steps if s in st.history]
                    jobs.append((tid, st, st.metrics, st.steps, rows, self._trial_row(tid, st) if st.dirty else None,
                                 st.ended and st.dirty))
                    st.metrics, st.steps, st.dirty = [], [], False
                if only is None:
                    self._last_flush = time.monotonic()
            if jobs:
                try:
                    written = self._write(jobs)
                    with self._lock:
                        self._record(jobs, written)
                except BaseException:
                    with self._lock:  # unwritten or unrecorded: the next flush writes them again (same names)
                        for tid, st, metrics, steps, _, trial_row, _ in jobs:
                            st.metrics = metrics + st.metrics
                            st.steps = sorted(set(steps) | set(st.steps))
                            st.dirty = st.dirty or trial_row is not None
                    raise
            self.flush_seconds += time.perf_counter() - started
            self.flush_cpu_seconds += time.thread_time() - cpu

    def _write(self, jobs: list) -> str | None:
        """One new part per table for everything in ``jobs``; returns the metrics part's path (if any)."""
        # Per trial, not per report: this thread shares the GIL with Ray Tune's event loop, so its Python work
        # must stay small however many reports a flush carries (else it falls behind and rows pile up).
        name = f"{self._token}-{self._seq:06d}"
        metrics, metric_attempts, steps, step_attempts, trials = [], [], [], [], []
        for tid, st, pending, _, rows, trial_row, _ in jobs:
            if pending:
                metrics += pending
                metric_attempts.append((st.attempt, sum(t.num_rows for t in pending)))
            steps += rows
            step_attempts.append((st.attempt, len(rows)))
            if trial_row is not None:
                trials.append(trial_row)
        path = None
        if metrics:
            table = pa.concat_tables(metrics).combine_chunks()  # one contiguous table: Parquet writes it fast
            path = store.write_part(self._fs, self._root, "metrics", self.run_id, name,
                                    table.append_column(store.ATTEMPT, _repeated(metric_attempts)))
        if steps:
            table = pa.Table.from_pylist(steps, schema=STEPS_SCHEMA)  # takes the schema's keys of each row
            store.write_part(self._fs, self._root, "steps", self.run_id, name,
                             table.append_column(store.ATTEMPT, _repeated(step_attempts)))
        if trials:
            store.write_part(self._fs, self._root, "trials", self.run_id, name, trials_table(trials, self._cfg_types))
        return path

    def _record(self, jobs: list, metrics_path: str | None) -> None:
        """The parts are stored: the next flush gets a new name; ended, fully written trials are forgotten."""
        self._seq += 1
        for tid, st, pending, _, rows, _, end_row in jobs:
            if end_row:
                self._stored_ends.append(tid)
            if pending or rows:
                st.on_disk = True
            if pending and metrics_path:
                st.files.append(metrics_path)
            if st.ended and not (st.metrics or st.steps or st.dirty) and self._trials.get(tid) is st:
                del self._trials[tid]
                self._ended.discard(tid)
                self._forgotten[tid] = (st.attempt, st.files)

    def _trial_row(self, tid: str, st: _Trial) -> dict[str, Any]:
        row = summary_row(tid, st.row, st.history, st.config, run_id=self.run_id, versions=self._versions,
                          metric=self.metric, mode=self.mode)
        row["updated"] = _dt.datetime.now(_dt.timezone.utc)
        row[store.ATTEMPT] = st.attempt
        self._last_version = row[store.VERSION] = max(time.time_ns(), self._last_version + 1)
        return row
