"""A run's folder and its records: the Parquet tables' schema and readers (``schema``), how parts are
stored and compacted (``store``), the writer (``writer``) and its trials rows (``trials_table``),
the run record ``alchemy_run.json`` (``run_record``), paths (``run_dir``), TensorBoard files (``tensorboard``). Imports from ``trial``
and below; never Ray or Optuna.

The readers are here for pandas, polars and duckdb users alike::

    from alchemy_tune.results import read_trials
    trials = read_trials("alchemy-runs/search-20260101-120000").to_pandas()
"""

__all__ = ["compact", "read_metrics", "read_steps", "read_trials"]


def __getattr__(name: str):
    # on first use only: importing results.run_dir (a bad flag's check) must not pull in pandas and pyarrow
    if name in __all__:
        from alchemy_tune.results import schema

        return getattr(schema, name)
    raise AttributeError(f"module 'alchemy_tune.results' has no attribute {name!r}")
