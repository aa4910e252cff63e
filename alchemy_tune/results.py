"""Result tables of a run: Parquet files with a documented, versioned schema.

Every run keeps three tables under ``RUN_DIR/results/``, readable by pandas, polars and duckdb without
this package. How they are laid out on storage (append-only parts, one folder per trial), the rule that
hides superseded rows, and compaction: :mod:`alchemy_tune.result_store`. Each file carries
``schema_version`` (2; version-1 runs still read) and ``table`` in its Parquet key-value metadata.

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
                                    and dev_select); final_test_* is null for a trial pruned at a step
                                    that had no test
best_step                int64      the evaluation where the run's selection metric (alchemy_run.json
                                    ``metric``/``mode``, default dev_select/max) was best
best_<split>_<group>     float64    every average at ``best_step`` (test is never used to choose;
                                    a trial scores test exactly at the steps that become its best)
final_lambda             float64    λ at the last evaluation (schedules change it)
primary_metric           string     accuracy, pearson, ...
pruned_at_step           int64      step at which the search pruned it (null otherwise)
error                    string     failure text or divergence reason ("" when none)
wall_seconds             float64    wall-clock seconds of the trial (search-measured)
compute_seconds          float64    training seconds reported by the trial (resumes included)
cpus, gpus               float64    resources of the trial; ``resources`` holds them all as JSON
precision                string     what the trial computed in: fp32 or bf16 (autocast on native GPUs)
peak_rss_mb              float64    the trial's peak host RSS, MB (its worker process, from its start)
peak_gpu_mb              float64    peak GPU memory torch reserved for the trial, MB (null on CPU)
seed                     int64      the training seed (= cfg_seed)
versions                 string     JSON of package versions (from alchemy_run.json)
updated                  timestamp  when the row was last written (UTC)
attempt                  int64      the trial's current attempt (see steps/metrics below)
version                  int64      write order of this row (nanoseconds); the highest per trial counts
=======================  =========  ==============================================================

``metrics.parquet`` — one tidy row per (run_id, trial_id, step, split, lang, metric):
run_id, trial_id (string); step (int64), epoch (float64); split (dev/test); lang (the dataset's own
code, e.g. ``sw-KE``); uriel_code (ISO 639-3 / lang2vec code, e.g. ``swa``); seen (bool); role (seen,
val or unseen: trained on, validation, test); metric
(accuracy, macro_f1, pearson, ...); value (float64); lambda, train_loss, task_loss, uriel_loss,
train_seconds (float64, the values at that step); attempt (int64).

``steps.parquet`` — one row per (run_id, trial_id, step): epoch, examples_seen, lambda, task_weight and
uriel_weight (the effective weights of the two losses; lambda = uriel_weight / task_weight), the losses,
the averages (dev_seen ... test_all, dev_select), train_seconds, status, attempt: the learning curves;
``test_scored`` (bool) says which steps have test scores (a trial scores test only at each new best dev step
and at its last step, unless ``score_test: every``); the test averages of the other steps are NaN and
metrics.parquet has no test rows for them.

A trial that restarts from a checkpoint and reports step s again starts a new ``attempt`` holding its rows
before s; readers keep each trial's highest attempt, so a resumed or retried trial's rows appear once.
Every file is written atomically: on a local or mounted filesystem a temporary file beside the target is
renamed over it; on object stores (s3://, gs://, abfs://) a single PUT is itself atomic.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from . import constants as C
from . import result_store as store

STATUSES = (C.RUNNING, C.COMPLETED, C.PRUNED, C.DIVERGED, C.FAILED)

METRICS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("trial_id", pa.string()), ("step", pa.int64()), ("epoch", pa.float64()),
    ("split", pa.string()), ("lang", pa.string()), ("uriel_code", pa.string()), ("seen", pa.bool_()),
    ("metric", pa.string()), ("value", pa.float64()), ("lambda", pa.float64()),
    ("train_loss", pa.float64()), ("task_loss", pa.float64()), ("uriel_loss", pa.float64()),
    ("train_seconds", pa.float64()), ("role", pa.string()),
])
STEP_FLOATS = ("epoch", C.LAMBDA, C.TASK_WEIGHT, C.URIEL_WEIGHT, C.TRAIN_LOSS, C.TASK_LOSS, C.URIEL_LOSS,
                *C.AVERAGE_KEYS, C.TRAIN_SECONDS)
STEPS_SCHEMA = pa.schema(
    [("run_id", pa.string()), ("trial_id", pa.string()), ("step", pa.int64()), ("examples_seen", pa.int64())]
    + [(name, pa.float64()) for name in STEP_FLOATS] + [("status", pa.string()), (C.TEST_SCORED, pa.bool_())]
)


TRIAL_COLUMNS: list[tuple[str, pa.DataType]] = (
    [("run_id", pa.string()), ("trial_id", pa.string()), ("status", pa.string()), ("config_id", pa.string()),
     ("replicate", pa.int64()), ("selection_metric", pa.string()), ("oracle", pa.bool_()),
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


def values_at_steps(run_dir: str, picks: pa.Table, split: str) -> pa.Table:
    """Per-language values of each trial at its chosen step (``picks``: run_id, trial_id, step, metric),
    streamed from the metrics files (see :func:`alchemy_tune.result_store.scan_values`)."""
    return store.scan_values(run_dir, picks, split, METRICS_SCHEMA)


def compact(run_dir: str) -> dict[str, int]:
    """Merge the run's part files into one file per table; readers see the same rows before and after."""
    return store.compact(run_dir, {"trials": None, "steps": STEPS_SCHEMA, "metrics": METRICS_SCHEMA})
