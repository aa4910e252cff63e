"""Result tables of a run: Parquet files with a documented, versioned schema.

Every run keeps three tables under ``RUN_DIR/results/``, readable by pandas, polars and duckdb without
this package. How they are laid out on storage (append-only parts, one folder per trial), the rule that
hides superseded rows, and compaction: :mod:`alchemy_tune.results.store`. Each file carries
``schema_version`` (2; version-1 runs still read) and ``table`` in its Parquet key-value metadata.

The columns are declared once, below (``TRIAL_COLUMNS``, ``STEPS_SCHEMA``, ``METRICS_SCHEMA``); what each
means is documented in ``docs/results.md``, whose tables ``tests/test_docs.py`` checks against these.
``trials`` has one row per trial, keyed by (run_id, trial_id); ``steps`` one per (run_id, trial_id, step);
``metrics`` one tidy row per (run_id, trial_id, step, split, lang, metric, item): ``item`` is null for a
language's scores and names the test example for its ``prediction`` and ``label`` rows.

A trial that restarts from a checkpoint and reports step s again starts a new ``attempt`` holding its rows
before s; readers keep each trial's highest attempt, so a resumed or retried trial's rows appear once.
Every file is written atomically: on a local or mounted filesystem a temporary file beside the target is
renamed over it; on object stores (s3://, gs://, abfs://) a single PUT is itself atomic.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from alchemy_tune.core import constants as C
from alchemy_tune.results import store as store

STATUSES = (C.RUNNING, C.COMPLETED, C.PRUNED, C.DIVERGED, C.FAILED)

METRICS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("trial_id", pa.string()), ("step", pa.int64()), ("epoch", pa.float64()),
    ("split", pa.string()), ("lang", pa.string()), ("uriel_code", pa.string()), ("seen", pa.bool_()),
    ("metric", pa.string()), ("value", pa.float64()), ("lambda", pa.float64()),
    ("train_loss", pa.float64()), ("task_loss", pa.float64()), ("uriel_loss", pa.float64()),
    ("train_seconds", pa.float64()), ("role", pa.string()), ("item", pa.int64()),
])
ITEM_METRICS = ("prediction", "label")
"""``metrics`` rows of one test example (``item`` = its index in the language's test split), where test is
scored; every other row has no ``item``."""
STEP_FLOATS = ("epoch", C.LAMBDA, C.TASK_WEIGHT, C.URIEL_WEIGHT, C.TRAIN_LOSS, C.TASK_LOSS, C.URIEL_LOSS,
                *C.AVERAGE_KEYS, C.TRAIN_SECONDS)
STEPS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("trial_id", pa.string()), ("step", pa.int64()), ("examples_seen", pa.int64())]
    + [(name, pa.float64()) for name in STEP_FLOATS] + [("status", pa.string()), (C.TEST_SCORED, pa.bool_())]
)


TRIAL_COLUMNS: list[tuple[str, pa.DataType]] = (
    [("run_id", pa.string()), ("trial_id", pa.string()), ("status", pa.string()), ("config_id", pa.string()),
     ("replicate", pa.int64()), ("matched_baseline", pa.bool_()), ("selection_metric", pa.string()), ("oracle", pa.bool_()),
     ("n_reports", pa.int64()), ("final_step", pa.int64()), ("final_epoch", pa.float64())]
    + [(f"final_{k}", pa.float64()) for k in C.AVERAGE_KEYS]
    + [("best_step", pa.int64())] + [(f"best_{k}", pa.float64()) for k in C.AVERAGE_KEYS]
    + [("final_lambda", pa.float64()), ("primary_metric", pa.string()), ("pruned_at_step", pa.int64()),
       ("error", pa.string()), ("wall_seconds", pa.float64()), ("compute_seconds", pa.float64()),
       ("cpus", pa.float64()), ("gpus", pa.float64()), ("resources", pa.string()), ("seed", pa.int64()),
       (C.PRECISION, pa.string()), (C.PEAK_RSS_MB, pa.float64()), (C.PEAK_GPU_MB, pa.float64()),
       ("versions", pa.string()), ("updated", pa.timestamp("ms", tz="UTC")), (store.ATTEMPT, pa.int64()),
       (store.VERSION, pa.int64())]
)


store.DECLARED.update({"trials": {name: str(kind) for name, kind in TRIAL_COLUMNS},
                       "steps": {f.name: str(f.type) for f in STEPS_SCHEMA},
                       "metrics": {f.name: str(f.type) for f in METRICS_SCHEMA}})


# ----------------------------------------------------------------------------- reading
def read_trials(run_dir: str, columns: list[str] | None = None, filter: pc.Expression | None = None) -> pa.Table:
    """The trials table, one row per trial (empty if nothing was written yet)."""
    return store.read_table(run_dir, "trials", None, columns, filter)


def read_metrics(run_dir: str, columns: list[str] | None = None, filter: pc.Expression | None = None) -> pa.Table:
    """The per-language metrics table; ``columns`` and ``filter`` are pushed down to the files."""
    table = store.read_table(run_dir, "metrics", METRICS_SCHEMA, columns, filter)
    return store.with_roles(table) if columns is None or "role" in columns else table


def read_steps(run_dir: str, columns: list[str] | None = None, filter: pc.Expression | None = None) -> pa.Table:
    """The per-evaluation averages table (empty if nothing was written yet)."""
    return store.read_table(run_dir, "steps", STEPS_SCHEMA, columns, filter)


def values_at_steps(run_dir: str, picks: pa.Table, split: str, *, with_step: bool = False) -> pa.Table:
    """Per-language values of each trial at its chosen step(s) (``picks``: run_id, trial_id, step, metric),
    streamed from the metrics files (see :func:`alchemy_tune.results.store.scan_values`); ``with_step``
    keeps the step column (a trial picked at two steps)."""
    return store.scan_values(run_dir, picks, split, METRICS_SCHEMA, extra=("step",) if with_step else ())


def items_at_steps(run_dir: str, picks: pa.Table) -> pa.Table:
    """Each test example's prediction and label per trial at its chosen step (``picks``: run_id, trial_id,
    step): run_id, trial_id, lang, role, item, metric (prediction | label), value. Empty for runs written
    before test items were stored, and for trials whose chosen step did not score test."""
    steps = picks.select(["run_id", "trial_id", "step"])
    both = pa.concat_tables([steps.append_column("metric", pa.array([m] * steps.num_rows, pa.string()))
                             for m in ITEM_METRICS])
    return store.scan_values(run_dir, both, "test", METRICS_SCHEMA, extra=("item", "metric"))


def compact(run_dir: str) -> dict[str, int]:
    """Merge the run's part files into one file per table; readers see the same rows before and after."""
    from alchemy_tune.results.compaction import compact as merge

    return merge(run_dir, {"trials": None, "steps": STEPS_SCHEMA, "metrics": METRICS_SCHEMA})
