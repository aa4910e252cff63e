"""Parquet result tables: schema, readers other than pyarrow, resume/retry without duplicates, atomicity."""

from __future__ import annotations

import json
import math
import os

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alchemy_tune import constants as C
from alchemy_tune.config import TrialConfig
from alchemy_tune.errors import UsageError
from alchemy_tune.results import (METRICS_SCHEMA, SCHEMA_VERSION, ResultsWriter, read_metrics, read_run_meta,
                                  read_steps, read_trials)

LANGS = {"eng": ("eng", True), "fra": ("fra", True), "sw-KE": ("swh", False), "ja-JP": ("jpn", False)}


def make_report(step: int, *, offset: float = 0.0, status: str = C.RUNNING) -> dict:
    """A report dict in the constants.py format; scores encode the step so rows can be told apart."""
    langs = {}
    for i, (lang, (uriel, seen)) in enumerate(LANGS.items()):
        acc = round(0.1 * step + 0.01 * i + offset, 6)
        langs[lang] = {"uriel": uriel, "seen": seen, "dev": {"accuracy": acc, "macro_f1": acc / 2},
                       "test": {"accuracy": acc + 0.001, "macro_f1": acc / 3}}
    avg = {}
    for split in C.SPLITS_EVALUATED:
        for group, pick in (("seen", lambda s: s), ("unseen", lambda s: not s), ("all", lambda s: True)):
            vals = [v[split]["accuracy"] for v in langs.values() if pick(v["seen"])]
            avg[C.average_key(split, group)] = sum(vals) / len(vals)
    return {C.STEP: step, C.EPOCH: step / 2, C.EXAMPLES_SEEN: 32 * step, C.LAMBDA: 10.0, C.TRAIN_LOSS: 1.5,
            C.TASK_LOSS: 1.4, C.URIEL_LOSS: 0.01, **avg, C.LANGS: langs, C.PRIMARY_METRIC: "accuracy",
            C.STATUS: status, C.REASON: "", C.TRAIN_SECONDS: 2.0 * step}


@pytest.fixture
def run_dir(tmp_path):
    meta = {"schema": 1, "run_id": "r1", "kind": "search", "metric": "dev_unseen", "mode": "max",
            "versions": {"alchemy_tune": "0.1.0", "torch": "2.13.0"}}
    (tmp_path / "alchemy_run.json").write_text(json.dumps(meta))
    return str(tmp_path)


CONFIG = TrialConfig(seen=("eng", "fra"), train_size=None).to_dict()


def test_tables_have_the_documented_schema_and_version(run_dir):
    writer = ResultsWriter(run_dir, "r1")
    for step in (1, 2, 3):
        writer.add_report("t0", CONFIG, make_report(step))
    writer.end_trial("t0", C.COMPLETED, resources={"CPU": 2, "GPU": 0}, wall_seconds=12.5)

    trials = read_trials(run_dir)
    assert trials.num_rows == 1
    row = trials.to_pylist()[0]
    assert (row["status"], row["final_step"], row["n_reports"], row["cpus"], row["wall_seconds"]) == (
        C.COMPLETED, 3, 3, 2.0, 12.5)
    assert row["compute_seconds"] == 6.0 and row["seed"] == CONFIG["seed"]
    assert json.loads(row["versions"])["torch"] == "2.13.0"
    # every config value is a typed column, never text
    types = {f.name: f.type for f in trials.schema}
    assert types["cfg_lambda"] == pa.float64() and types["cfg_train_size"] == pa.int64()
    assert types["cfg_freeze_embeddings"] == pa.bool_() and types["cfg_seen"] == pa.list_(pa.string())
    assert row["cfg_seen"] == ["eng", "fra"] and row["cfg_train_size"] is None
    assert {f"cfg_{k}" for k in CONFIG} <= set(trials.column_names)
    for path in ("trials", "metrics", "steps"):
        meta = pq.read_schema(os.path.join(run_dir, "results", f"{path}.parquet")).metadata
        assert meta[b"schema_version"] == str(SCHEMA_VERSION).encode() and meta[b"table"] == path.encode()

    metrics = read_metrics(run_dir)
    assert metrics.schema.equals(METRICS_SCHEMA, check_metadata=False)
    assert metrics.num_rows == 3 * len(LANGS) * 2 * 2  # steps × langs × splits × metrics
    sw = metrics.filter(pa.compute.field("lang") == "sw-KE").to_pylist()[0]
    assert (sw["uriel_code"], sw["seen"], sw["lambda"]) == ("swh", False, 10.0)
    assert read_steps(run_dir).column("step").to_pylist() == [1, 2, 3]


def test_best_is_chosen_on_dev_objective_and_final_is_last(run_dir):
    writer = ResultsWriter(run_dir, "r1")
    for step, offset in ((1, 0.5), (2, 0.0), (3, 0.0)):  # step 1 has the best dev scores
        writer.add_report("t0", CONFIG, make_report(step, offset=offset))
    writer.flush()
    row = read_trials(run_dir).to_pylist()[0]
    assert row["best_step"] == 1 and row["final_step"] == 3
    assert row["best_dev_unseen"] == pytest.approx(make_report(1, offset=0.5)["dev_unseen"])
    assert row["final_test_seen"] == pytest.approx(make_report(3)["test_seen"])


def test_configuration_replicate_role_and_oracle_columns(tmp_path):
    """Replicates share a config_id; a run that selected on the test languages' dev data says oracle on
    every row; metrics carry each language's role."""
    meta = {"schema": 1, "run_id": "r1", "kind": "search", "metric": "oracle_dev_unseen", "mode": "max"}
    (tmp_path / "alchemy_run.json").write_text(json.dumps(meta))
    writer = ResultsWriter(str(tmp_path), "r1")
    for tid, replicate in (("a", 0), ("b", 1)):
        writer.set_identity(tid, "7", replicate)
        for step, offset in ((1, 0.0), (2, 0.5), (3, 0.0)):
            report = make_report(step, offset=offset)
            report[C.LANGS]["ja-JP"]["role"] = C.VAL
            writer.add_report(tid, CONFIG, report)
    writer.add_report("c", CONFIG, make_report(1))  # no identity given: its own configuration
    writer.flush()
    rows = {r["trial_id"]: r for r in read_trials(str(tmp_path)).to_pylist()}
    assert [(rows[t]["config_id"], rows[t]["replicate"]) for t in "abc"] == [("7", 0), ("7", 1), ("c", 0)]
    assert {(r["selection_metric"], r["oracle"]) for r in rows.values()} == {("oracle_dev_unseen", True)}
    assert rows["a"]["best_step"] == 2  # chosen on dev_unseen, the oracle's data
    metrics = read_metrics(str(tmp_path)).to_pandas()
    roles = metrics[metrics["trial_id"] != "c"].groupby("lang")["role"].unique()
    assert {lang: list(r) for lang, r in roles.items()} == {"eng": ["seen"], "fra": ["seen"], "ja-JP": ["val"],
                                                            "sw-KE": ["unseen"]}
    assert not ResultsWriter(str(tmp_path), "r2", metric=C.SELECT)._trial_row("x")["oracle"]


def test_readable_by_duckdb_and_polars_without_this_package(run_dir):
    writer = ResultsWriter(run_dir, "r1")
    for tid in ("t0", "t1"):
        for step in (1, 2):
            writer.add_report(tid, CONFIG, make_report(step))
        writer.end_trial(tid, C.COMPLETED)
    metrics_path = os.path.join(run_dir, "results", "metrics.parquet")
    trials_path = os.path.join(run_dir, "results", "trials.parquet")
    n, mean = duckdb.sql(
        f"select count(*), avg(value) from '{metrics_path}' where split='dev' and metric='accuracy' "
        "and not seen").fetchall()[0]
    assert n == 2 * 2 * 2 and mean == pytest.approx((0.12 + 0.13 + 0.22 + 0.23) / 4)
    frame = pl.read_parquet(trials_path)
    assert frame["trial_id"].to_list() == ["t0", "t1"] and frame["cfg_lambda"].dtype == pl.Float64
    version = duckdb.sql(f"select value from parquet_kv_metadata('{trials_path}') where key='schema_version'")
    assert version.fetchall()[0][0] == str(SCHEMA_VERSION).encode()


def test_retried_trial_rows_appear_once_and_resume_keeps_earlier_rows(run_dir):
    first = ResultsWriter(run_dir, "r1")
    for step in (1, 2, 3):
        first.add_report("t0", CONFIG, make_report(step))
    first.add_report("t1", CONFIG, make_report(1))
    first.flush()
    # the driver dies; a new one restores t0 from its step-2 checkpoint and reports 3..5 again
    second = ResultsWriter(run_dir, "r1")
    for step in (3, 4, 5):
        second.add_report("t0", CONFIG, make_report(step, offset=0.05))
    second.end_trial("t0", C.COMPLETED)

    metrics = read_metrics(run_dir)
    key = ["run_id", "trial_id", "step", "split", "lang", "metric"]
    counts = duckdb.sql("select count(*) c from metrics group by " + ", ".join(key) + " having c > 1")
    assert counts.fetchall() == []
    t0 = metrics.filter(pa.compute.field("trial_id") == "t0")
    assert sorted(set(t0.column("step").to_pylist())) == [1, 2, 3, 4, 5]
    step3 = t0.filter((pa.compute.field("step") == 3) & (pa.compute.field("lang") == "eng")
                      & (pa.compute.field("split") == "dev") & (pa.compute.field("metric") == "accuracy"))
    assert step3.column("value").to_pylist() == [pytest.approx(0.3 + 0.05)]  # the retry's value won
    assert metrics.filter(pa.compute.field("trial_id") == "t1").num_rows == len(LANGS) * 4  # kept
    trials = {r["trial_id"]: r for r in read_trials(run_dir).to_pylist()}
    assert trials["t0"]["n_reports"] == 5 and trials["t0"]["status"] == C.COMPLETED
    assert trials["t1"]["status"] == C.RUNNING


def test_restart_from_earlier_step_drops_later_stale_rows(run_dir):
    writer = ResultsWriter(run_dir, "r1")
    for step in (1, 2, 3, 4):
        writer.add_report("t0", CONFIG, make_report(step))
    writer.flush()
    writer.add_report("t0", CONFIG, make_report(2, offset=0.2))  # restarted from the step-1 checkpoint
    writer.end_trial("t0", C.PRUNED, pruned_at_step=2)
    steps = read_metrics(run_dir).column("step").to_pylist()
    assert sorted(set(steps)) == [1, 2]
    row = read_trials(run_dir).to_pylist()[0]
    assert (row["status"], row["pruned_at_step"], row["final_step"]) == (C.PRUNED, 2, 2)


def test_other_runs_rows_in_the_same_folder_are_kept(run_dir):
    a = ResultsWriter(run_dir, "r1")
    a.add_report("t0", CONFIG, make_report(1))
    a.flush()
    b = ResultsWriter(run_dir, "r2")
    b.add_report("t0", CONFIG, make_report(1))
    b.end_trial("t0", C.FAILED, error="Traceback ...\nRuntimeError: out of memory")
    trials = read_trials(run_dir).to_pylist()
    assert sorted((r["run_id"], r["status"]) for r in trials) == [("r1", C.RUNNING), ("r2", C.FAILED)]
    assert read_metrics(run_dir).num_rows == 2 * len(LANGS) * 4


def test_failed_write_leaves_the_previous_file_intact(run_dir, monkeypatch):
    writer = ResultsWriter(run_dir, "r1")
    writer.add_report("t0", CONFIG, make_report(1))
    writer.flush()
    before = read_metrics(run_dir)
    writer.add_report("t0", CONFIG, make_report(2))

    def broken_write(table, where, **kwargs):  # a crash half-way through writing
        with kwargs["filesystem"].open_output_stream(where) as out:
            out.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        writer.flush()
    monkeypatch.undo()
    assert read_metrics(run_dir).equals(before)
    assert sorted(os.listdir(os.path.join(run_dir, "results"))) == ["metrics.parquet", "steps.parquet",
                                                                     "trials.parquet"]


def test_uri_storage_goes_through_pyarrow_filesystems(tmp_path):
    uri = f"file://{tmp_path}/run"
    writer = ResultsWriter(uri, "r1")
    writer.add_report("t0", CONFIG, make_report(1))
    writer.end_trial("t0", C.DIVERGED, error="loss is NaN")
    assert (tmp_path / "run" / "results" / "trials.parquet").exists()
    assert read_trials(uri).column("error").to_pylist() == ["loss is NaN"]


def test_newer_schema_and_non_runs_are_usage_errors(run_dir, tmp_path):
    table = pa.table({"run_id": ["r1"]}).replace_schema_metadata({b"schema_version": b"99"})
    os.makedirs(os.path.join(run_dir, "results"))
    pq.write_table(table, os.path.join(run_dir, "results", "trials.parquet"))
    with pytest.raises(UsageError, match="schema version 99 is newer"):
        read_trials(run_dir)
    with pytest.raises(UsageError, match="no such directory"):
        read_run_meta(str(tmp_path / "nope"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="not a run"):
        read_run_meta(str(tmp_path / "plain"))


def test_bad_reports_and_statuses_are_rejected(run_dir):
    writer = ResultsWriter(run_dir, "r1")
    with pytest.raises(ValueError, match="'step' must be an int"):
        writer.add_report("t0", CONFIG, {C.STEP: "3"})
    with pytest.raises(ValueError, match="status: 'done' is not one of"):
        writer.end_trial("t0", "done")
    report = make_report(1)
    report["dev_unseen"] = math.nan  # a group without languages
    writer.add_report("t0", CONFIG, report)
    writer.flush()
    assert math.isnan(read_trials(run_dir).column("final_dev_unseen")[0].as_py())


def test_a_trial_that_never_reported_still_gets_a_row(run_dir):
    writer = ResultsWriter(run_dir, "r1")
    writer.end_trial("t9", C.FAILED, error="worker died", wall_seconds=0.5)
    row = read_trials(run_dir).to_pylist()[0]
    assert (row["trial_id"], row["status"], row["error"], row["final_step"]) == ("t9", C.FAILED, "worker died", None)
    assert read_metrics(run_dir).num_rows == 0
