"""Parquet result tables: schema, readers other than pyarrow, resume/retry without duplicates, atomicity,
append-only parts and compaction (schema version 2), version-1 runs."""

from __future__ import annotations

import json
import math
import os
import time

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from alchemy_tune.core import constants as C
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.core.errors import UsageError
from alchemy_tune.results.store import SCHEMA_VERSION
from alchemy_tune.results.schema import METRICS_SCHEMA, compact, read_metrics, read_steps, read_trials
from alchemy_tune.results import writer as results_writer
from alchemy_tune.results.writer import ResultsWriter
from alchemy_tune.results.run_record import RunRecord
from testing.reports import LANGS, make_report

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
    for table in ("trials", "metrics", "steps"):
        files = all_files(run_dir, table)
        assert files
        for path in files:
            meta = pq.read_schema(path).metadata
            assert meta[b"schema_version"] == b"2" == str(SCHEMA_VERSION).encode() and meta[b"table"] == table.encode()

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
    other = ResultsWriter(str(tmp_path), "r2", metric=C.SELECT)
    other.add_report("x", CONFIG, make_report(1))
    other.flush()
    (row,) = read_trials(str(tmp_path), filter=pc.field("run_id") == "r2").to_pylist()
    assert row["selection_metric"] == C.SELECT and row["oracle"] is False


def all_files(run_dir: str, table: str) -> list[str]:
    base = os.path.join(run_dir, "results", table)
    return sorted(os.path.join(d, f) for d, _, names in os.walk(base) for f in names if f.endswith(".parquet"))


# The README's one-liners for readers without this package (kept verbatim there).
def duckdb_metrics(run: str):
    return duckdb.sql(f"select * from read_parquet('{run}/results/metrics/**/*.parquet', union_by_name = true) "
                      "qualify attempt = max(attempt) over (partition by run_id, trial_id)").df()


def duckdb_trials(run: str):
    return duckdb.sql(f"select * from read_parquet('{run}/results/trials/**/*.parquet', union_by_name = true) "
                      "qualify version = max(version) over (partition by run_id, trial_id)").df()


def polars_metrics(run: str):
    return pl.scan_parquet(f"{run}/results/metrics/**/*.parquet").filter(
        pl.col("attempt") == pl.col("attempt").max().over("run_id", "trial_id")).collect().to_pandas()


def pandas_metrics(run: str):
    m = pd.read_parquet(f"{run}/results/metrics")
    return m[m.attempt == m.groupby(["run_id", "trial_id"]).attempt.transform("max")]


METRIC_KEY = ["run_id", "trial_id", "step", "split", "lang", "metric"]


def metric_rows_by_reader(run: str) -> dict[str, list[tuple]]:
    """(key..., value) rows, sorted, as each reader sees the metrics table."""
    frames = {"pyarrow": read_metrics(run).to_pandas(), "duckdb": duckdb_metrics(run),
              "polars": polars_metrics(run), "pandas": pandas_metrics(run)}
    return {name: sorted(tuple(r) for r in f[METRIC_KEY + ["value"]].itertuples(index=False))
            for name, f in frames.items()}


def test_readable_by_duckdb_and_polars_without_this_package(run_dir):
    writer = ResultsWriter(run_dir, "r1")
    for tid in ("t0", "t1"):
        for step in (1, 2):
            writer.add_report(tid, CONFIG, make_report(step))
        writer.end_trial(tid, C.COMPLETED)
    metrics = duckdb_metrics(run_dir)
    unseen_dev = metrics[(metrics.split == "dev") & (metrics.metric == "accuracy") & ~metrics.seen]
    assert len(unseen_dev) == 2 * 2 * 2
    assert unseen_dev.value.mean() == pytest.approx((0.12 + 0.13 + 0.22 + 0.23) / 4)
    frame = pl.read_parquet(f"{run_dir}/results/trials/**/*.parquet").sort("trial_id")
    assert frame["trial_id"].to_list() == ["t0", "t1"] and frame["cfg_lambda"].dtype == pl.Float64
    assert sorted(duckdb_trials(run_dir).trial_id) == ["t0", "t1"]
    path = all_files(run_dir, "trials")[0]
    version = duckdb.sql(f"select value from parquet_kv_metadata('{path}') where key='schema_version'")
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

    files = {t: all_files(run_dir, t) for t in ("trials", "steps", "metrics")}
    monkeypatch.setattr(pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        writer.flush()
    monkeypatch.undo()
    assert read_metrics(run_dir).equals(before)
    assert {t: all_files(run_dir, t) for t in files} == files  # no partial file left behind
    assert not [f for d, _, names in os.walk(run_dir) for f in names if f.endswith(".tmp")]
    writer.flush()  # the rows were kept and go out with the next flush
    assert read_metrics(run_dir).num_rows == 2 * len(LANGS) * 4


def test_uri_storage_goes_through_pyarrow_filesystems(tmp_path):
    uri = f"file://{tmp_path}/run"
    writer = ResultsWriter(uri, "r1")
    writer.add_report("t0", CONFIG, make_report(1))
    writer.end_trial("t0", C.DIVERGED, error="loss is NaN")
    assert all_files(str(tmp_path / "run"), "trials")
    assert read_trials(uri).column("error").to_pylist() == ["loss is NaN"]


def test_newer_schema_and_non_runs_are_usage_errors(run_dir, tmp_path):
    table = pa.table({"run_id": ["r1"]}).replace_schema_metadata({b"schema_version": b"99"})
    os.makedirs(os.path.join(run_dir, "results"))
    pq.write_table(table, os.path.join(run_dir, "results", "trials.parquet"))
    with pytest.raises(UsageError, match="schema version 99 is newer"):
        read_trials(run_dir)
    with pytest.raises(UsageError, match="no such directory"):
        RunRecord.read(str(tmp_path / "nope"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="not a run"):
        RunRecord.read(str(tmp_path / "plain"))


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


def restarted_run(run_dir: str) -> None:
    """t0 reports 1..4, a new driver restores it from its step-2 checkpoint (3, 4 again, then pruned at 4);
    t1 restarts in the same driver from its step-1 checkpoint after a write; t2 runs plainly."""
    first = ResultsWriter(run_dir, "r1")
    for step in (1, 2, 3, 4):
        first.add_report("t0", CONFIG, make_report(step))
    for step in (1, 2, 3):
        first.add_report("t1", CONFIG, make_report(step))
    first.flush()
    first.add_report("t1", CONFIG, make_report(2, offset=0.07))  # restored from step 1, same driver
    first.end_trial("t1", C.COMPLETED)
    second = ResultsWriter(run_dir, "r1")
    for step in (3, 4):
        second.add_report("t0", CONFIG, make_report(step, offset=0.05))
    second.end_trial("t0", C.PRUNED, pruned_at_step=4)
    for step in (1, 2):
        second.add_report("t2", CONFIG, make_report(step))
    second.end_trial("t2", C.COMPLETED)


def expected_rows() -> list[tuple]:
    rows = []
    for tid, steps in (("t0", [(1, 0), (2, 0), (3, 0.05), (4, 0.05)]), ("t1", [(1, 0), (2, 0.07)]),
                       ("t2", [(1, 0), (2, 0)])):
        for step, offset in steps:
            for lang, info in make_report(step, offset=offset)[C.LANGS].items():
                for split in ("dev", "test"):
                    for metric, value in info[split].items():
                        rows.append(("r1", tid, step, split, lang, metric, value))
    return sorted(rows)


def test_restarted_trials_rows_appear_once_to_every_reader_before_and_after_compact(run_dir):
    restarted_run(run_dir)
    want = expected_rows()
    assert len(all_files(run_dir, "metrics")) == 4  # one part per flush, whatever the trials in it
    for stage in ("parts", "compacted"):
        seen = metric_rows_by_reader(run_dir)
        for reader, rows in seen.items():
            assert [r[:6] for r in rows] == [w[:6] for w in want], (stage, reader)
            assert [r[6] for r in rows] == pytest.approx([w[6] for w in want]), (stage, reader)
        steps = read_steps(run_dir).to_pandas()
        assert sorted(zip(steps.trial_id, steps.step)) == [("t0", 1), ("t0", 2), ("t0", 3), ("t0", 4),
                                                          ("t1", 1), ("t1", 2), ("t2", 1), ("t2", 2)]
        trials = {r["trial_id"]: r for r in read_trials(run_dir).to_pylist()}
        assert {t: (r["status"], r["final_step"]) for t, r in trials.items()} == {
            "t0": (C.PRUNED, 4), "t1": (C.COMPLETED, 2), "t2": (C.COMPLETED, 2)}
        assert sorted(duckdb_trials(run_dir).trial_id) == ["t0", "t1", "t2"]
        if stage == "parts":
            assert compact(run_dir) == {"trials": 4, "steps": 4, "metrics": 4}  # one part per flush
            assert [len(all_files(run_dir, t)) for t in ("trials", "steps", "metrics")] == [1, 1, 1]
    # a driver resumed after compaction restarts t0 once more: still one row per key everywhere
    third = ResultsWriter(run_dir, "r1")
    third.add_report("t0", CONFIG, make_report(4, offset=0.09))
    third.end_trial("t0", C.COMPLETED)
    for rows in metric_rows_by_reader(run_dir).values():
        keys = [r[:6] for r in rows]
        assert keys == [w[:6] for w in want]
    assert len(duckdb_trials(run_dir)) == 3 and read_trials(run_dir).num_rows == 3


def test_crash_between_writing_a_part_and_recording_it_loses_and_duplicates_nothing(run_dir, monkeypatch):
    # in the same driver: the part is on storage, then recording it fails; the next flush rewrites that part
    writer = ResultsWriter(run_dir, "r1")
    writer.add_report("t0", CONFIG, make_report(1))
    original = ResultsWriter._record
    calls = []

    def fail_once(self, *args):
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("killed after the write")
        return original(self, *args)

    monkeypatch.setattr(ResultsWriter, "_record", fail_once)
    with pytest.raises(RuntimeError, match="killed after the write"):
        writer.flush()
    writer.add_report("t0", CONFIG, make_report(2))
    writer.flush()
    monkeypatch.undo()
    # a driver dies after writing t0's metric part but before its trials row; a new one resumes t0 at step 4
    # (Ray restored the step-3 checkpoint) and t0 also reports step 3 rows nobody recorded
    writer.add_report("t0", CONFIG, make_report(3))

    def die(*args, **kwargs):
        raise SystemExit("driver killed")

    monkeypatch.setattr(results_writer, "trials_table", die)  # the trials part, written after the others
    with pytest.raises(SystemExit):
        writer.flush()
    monkeypatch.undo()
    resumed = ResultsWriter(run_dir, "r1")
    resumed.add_report("t0", CONFIG, make_report(4))
    resumed.end_trial("t0", C.COMPLETED)
    for reader, rows in metric_rows_by_reader(run_dir).items():
        keys = [r[:6] for r in rows]
        assert len(keys) == len(set(keys)) == 4 * len(LANGS) * 4, reader
        assert sorted({k[2] for k in keys}) == [1, 2, 3, 4], reader
    row = read_trials(run_dir).to_pylist()[0]
    assert (row["n_reports"], row["final_step"], row["status"]) == (4, 4, C.COMPLETED)


def test_background_writer_keeps_the_event_loop_free_and_close_writes_everything(run_dir):
    writer = ResultsWriter(run_dir, "r1", background=True, flush_interval_s=3600)
    for tid in ("t0", "t1"):
        for step in (1, 2):
            writer.add_report(tid, CONFIG, make_report(step))
    writer.end_trial("t0", C.COMPLETED)  # written by the thread, promptly
    for _ in range(200):
        if read_trials(run_dir).num_rows:
            break
        import time

        time.sleep(0.02)
    assert read_trials(run_dir).column("trial_id").to_pylist() == ["t0"]
    writer.close(compact_after=True)
    assert sorted(read_trials(run_dir).column("status").to_pylist()) == [C.COMPLETED, C.RUNNING]
    assert read_metrics(run_dir).num_rows == 2 * 2 * len(LANGS) * 4
    assert [len(all_files(run_dir, t)) for t in ("trials", "steps", "metrics")] == [1, 1, 1]


def write_v1_run(run_dir: str) -> None:
    """A run as alchemy-tune wrote it before schema version 2: one file per table, schema_version 1."""
    from testing.synthetic import make_run

    make_run(run_dir, n_trials=8, n_langs=6, n_evals=3, seed=1)
    tables = {"trials": read_trials(run_dir).drop_columns(["attempt", "version"]),
              "steps": read_steps(run_dir), "metrics": read_metrics(run_dir)}
    import shutil

    for name, table in tables.items():
        shutil.rmtree(os.path.join(run_dir, "results", name))
        pq.write_table(table.replace_schema_metadata({b"schema_version": b"1", b"table": name.encode()}),
                       os.path.join(run_dir, "results", f"{name}.parquet"))


def test_a_schema_1_run_is_still_read_by_analyze_and_converted_when_continued(tmp_path):
    from alchemy_tune.analysis.analyze import load_runs, leaderboard

    run = str(tmp_path / "old")
    write_v1_run(run)
    runs = load_runs([run])
    assert len(runs.trials) == 8 and len(leaderboard(runs)) == 8
    assert len(runs.scores("test")) == 8 * 6 and len(runs.langs) == 2 * 8 * 6 and runs.langs.value.notna().all()
    # a writer continuing a version-1 run converts it first; readers then see the same rows plus the new
    before = read_metrics(run).num_rows
    writer = ResultsWriter(run, "synthetic-1")
    writer.add_report("extra", CONFIG, make_report(1))
    writer.end_trial("extra", C.COMPLETED)
    assert not os.path.exists(os.path.join(run, "results", "metrics.parquet"))
    assert read_metrics(run).num_rows == before + len(LANGS) * 4
    assert len(load_runs([run]).trials) == 9


def test_compact_command(run_dir, tmp_path, capsys):
    from alchemy_tune.cli import main

    run = run_dir
    restarted_run(run)
    before = read_metrics(run).sort_by([(c, "ascending") for c in METRIC_KEY])
    assert main(["compact", run]) == 0
    assert "metrics: 4 files -> 1" in capsys.readouterr().out
    assert read_metrics(run).sort_by([(c, "ascending") for c in METRIC_KEY]).equals(before)
    assert main(["compact", run]) == 0 and "metrics: already one file" in capsys.readouterr().out
    assert main(["compact", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_rows_are_stored_before_tune_saves_its_experiment_state(run_dir):
    """Tune calls callbacks' get_state when it saves experiment state; a resumed search continues trials from
    the checkpoints that state names, so every row reported before it must already be on storage."""
    from types import SimpleNamespace

    from alchemy_tune.tuning.trial_end import ResultsCallback
    from alchemy_tune.tuning.pruning import EVAL_INDEX

    callback = ResultsCallback(run_dir, "r1", handle=None, metric="dev_unseen", mode="max")
    trial = SimpleNamespace(trial_id="t0", config=CONFIG)
    for step in (1, 2):
        callback.on_trial_result(step, [trial], trial, {**make_report(step), EVAL_INDEX: step})
    assert callback.get_state() is None  # Tune keeps no callback state for it
    assert read_steps(run_dir).column("step").to_pylist() == [1, 2]
    assert read_metrics(run_dir).num_rows == 2 * len(LANGS) * 4
    callback.writer.close()


def _compact_in_a_process(run: str, go: str):
    import time as _time

    while not os.path.exists(go):  # both start together
        _time.sleep(0.001)
    return compact(run)


def test_two_concurrent_compactions_leave_exactly_the_rows_readers_saw(run_dir, tmp_path):
    """Two compactions at once (separate processes, as two shells would run them) duplicate nothing: one
    holds the lock, the other waits and finds the work done."""
    import concurrent.futures
    import multiprocessing

    restarted_run(run_dir)
    before = (read_steps(run_dir).num_rows, read_metrics(run_dir).num_rows)
    want = metric_rows_by_reader(run_dir)
    go = str(tmp_path / "go")
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        jobs = [pool.submit(_compact_in_a_process, run_dir, go) for _ in range(2)]
        open(go, "w").close()
        merged = [job.result(timeout=120) for job in jobs]
    assert sorted(m["metrics"] for m in merged) == [0, 4]  # one merged the 4 parts, the other found one file
    assert (read_steps(run_dir).num_rows, read_metrics(run_dir).num_rows) == before
    assert metric_rows_by_reader(run_dir) == want  # duckdb, polars and pandas too: one file, no duplicates
    assert [len(all_files(run_dir, t)) for t in ("trials", "steps", "metrics")] == [1, 1, 1]
    assert not os.path.exists(os.path.join(run_dir, "results", ".compact.lock"))


def test_a_compaction_beside_a_writer_keeps_the_rows_written_meanwhile(run_dir):
    """Parts a running search writes while a compaction merges are left for the next one, never lost."""
    from alchemy_tune.results import compaction as store

    restarted_run(run_dir)
    live = ResultsWriter(run_dir, "r1")
    real = store._compact_rows

    def merging_while_the_search_writes(*args, **kwargs):
        live.add_report("t3", CONFIG, make_report(1))
        live.end_trial("t3", C.COMPLETED)  # written now, after the compaction listed its files
        return real(*args, **kwargs)

    store._compact_rows = merging_while_the_search_writes
    try:
        compact(run_dir)
    finally:
        store._compact_rows = real
    trials = sorted(r["trial_id"] for r in read_trials(run_dir).to_pylist())
    assert trials == ["t0", "t1", "t2", "t3"]
    assert sorted(set(read_steps(run_dir).to_pandas().trial_id)) == trials
    keys = [r[:6] for r in metric_rows_by_reader(run_dir)["pyarrow"]]
    assert len(keys) == len(set(keys))


def test_a_stale_lock_of_a_dead_compaction_is_taken_over(run_dir):
    import json as _json
    import socket

    restarted_run(run_dir)
    lock = os.path.join(run_dir, "results", ".compact.lock")
    with open(lock, "w") as f:
        _json.dump({"host": socket.gethostname(), "pid": 2**22 + 12345}, f)  # no such process
    assert compact(run_dir)["metrics"] == 4 and not os.path.exists(lock)


def test_a_killed_writers_temporary_file_is_swept_by_the_next_compaction(run_dir):
    """A compaction killed mid-write leaves `.compacted-….parquet.<uuid>.tmp`: the next compaction deletes
    it (older than STALE_TMP_S), and leaves a fresh one (a running search's part being written)."""
    from alchemy_tune.results.compaction import STALE_TMP_S

    restarted_run(run_dir)
    folder = os.path.join(run_dir, "results", "metrics")
    stale = os.path.join(folder, ".compacted-00000000000000000001.parquet.0123abcd.tmp")
    fresh = os.path.join(folder, ".part-x.parquet.4567cdef.tmp")
    for path in (stale, fresh):
        with open(path, "wb") as f:
            f.write(b"PAR1 cut")
    old = time.time() - STALE_TMP_S - 60
    os.utime(stale, (old, old))
    assert compact(run_dir)["metrics"] == 4
    assert not os.path.exists(stale) and os.path.exists(fresh)


def test_a_results_file_cut_in_half_is_named_before_anything_runs_again(tmp_path, capsys):
    from alchemy_tune.cli import main
    """A steps part cut by a crash: `resume` refuses at once, naming the file (not "Parquet magic bytes not
    found" after every remaining trial has run), and `analyze` names it too."""
    from testing.synthetic import make_run

    run = make_run(str(tmp_path / "cut"), n_trials=2, n_langs=4, repeats=1)
    parts = sorted((tmp_path / "cut" / "results" / "steps").glob("**/*.parquet"))
    assert parts
    data = parts[0].read_bytes()
    parts[0].write_bytes(data[: len(data) // 2])
    assert main(["resume", run]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{parts[0]}: not a readable Parquet file" in err
    metrics = sorted((tmp_path / "cut" / "results" / "metrics").glob("**/*.parquet"))[0]
    parts[0].write_bytes(data)  # the steps part whole again; a metrics part cut instead
    whole = metrics.read_bytes()
    metrics.write_bytes(whole[: len(whole) // 2])
    assert main(["analyze", run, "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{metrics}: not a readable Parquet file" in err
