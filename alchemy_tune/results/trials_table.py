"""The trials table's rows: one trial's summary (its last evaluation and the best one by the run's selection
metric) and its configuration as typed ``cfg_<name>`` columns. Columns: :mod:`alchemy_tune.results.schema`."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import pyarrow as pa

from alchemy_tune.core import constants as C
from alchemy_tune.core.errors import UsageError
from alchemy_tune.results.schema import TRIAL_COLUMNS


def config_types() -> dict[str, pa.DataType]:
    """Arrow type of every TrialConfig value, so a column's type never depends on the values seen."""
    from alchemy_tune.trial.config import config_fields

    arrow = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
             "tuple": pa.list_(pa.string())}
    return {f.param: arrow[f.kind] for f in config_fields()}


def full_config(config: Mapping) -> dict:
    """The trial's config with TrialConfig's defaults filled in, so every value gets its column.

    A search space names only what it fixes or samples; the trial runs the rest at their defaults, and the
    tables must say what ran. Configs that are not TrialConfigs (other trial functions) stay as given.
    """
    from alchemy_tune.trial.config import TrialConfig

    try:
        return {**TrialConfig.from_dict(config).to_dict(), **dict(config)}
    except (UsageError, TypeError):
        return dict(config)


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


def best_step(history: Mapping[int, Mapping], metric: str, mode: str) -> int:
    """The step whose ``metric`` was best (``mode``; the later of equal ones), else the last: the one rule
    by which the tables, ``analyze``, ``confirm`` and the sampler read a trial's value."""
    steps = sorted(history)
    sign = 1.0 if mode == "max" else -1.0
    key = C.report_key(metric)
    scored = [(sign * v, s) for s in steps if (v := history[s].get(key)) is not None and not math.isnan(v)]
    return max(scored)[1] if scored else steps[-1]


def summary_row(tid: str, state: Mapping[str, Any], history: Mapping[int, Mapping], config: Mapping | None, *,
                run_id: str, versions: str, metric: str, mode: str) -> dict[str, Any]:
    """A trial's row from what the writer holds: ``state`` (status, error, resources, ...), ``history`` (step
    -> steps row of its current attempt) and its ``config`` (kept under ``_config`` for :func:`trials_table`).
    The best step is the one where ``metric`` was best (``mode``); test is never used to choose."""
    row = {name: None for name, _ in TRIAL_COLUMNS}
    row.update({k: v for k, v in state.items() if k in row})
    row.update(run_id=run_id, trial_id=tid, versions=versions)
    row["status"] = row["status"] or C.RUNNING
    row["error"] = row["error"] or ""
    row["config_id"] = row["config_id"] or tid
    row["replicate"] = row["replicate"] or 0
    row["matched_baseline"] = bool(row["matched_baseline"])
    row["selection_metric"], row["oracle"] = metric, C.selects_on_test(metric)
    if history:
        steps = sorted(history)
        last = history[steps[-1]]
        row.update(n_reports=len(steps), final_step=steps[-1], final_epoch=last.get("epoch"),
                   final_lambda=last.get(C.LAMBDA), compute_seconds=last.get(C.TRAIN_SECONDS))
        best = best_step(history, metric, mode)
        row["best_step"] = best
        for key in C.AVERAGE_KEYS:
            row[f"final_{key}"] = last.get(key)
            row[f"best_{key}"] = history[best].get(key)
    seed = (config or {}).get("seed")
    row["seed"] = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    row["_config"] = dict(config or {})
    return row


def trials_table(rows: list[dict], cfg_types: Mapping[str, pa.DataType]) -> pa.Table:
    """Rows of :func:`summary_row` (plus updated, attempt, version) as an Arrow table; every config value
    becomes a ``cfg_<name>`` column of its declared type."""
    cfg_names = sorted({k for r in rows for k in r["_config"]})
    schema = list(TRIAL_COLUMNS)
    columns = {name: [r[name] for r in rows] for name, _ in TRIAL_COLUMNS}
    for name in cfg_names:
        values = [r["_config"].get(name) for r in rows]
        kind, values = _config_column(cfg_types.get(name), values)
        schema.append((f"cfg_{name}", kind))
        columns[f"cfg_{name}"] = values
    return pa.Table.from_pydict(columns, schema=pa.schema(schema))
