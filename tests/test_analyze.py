"""The analysis on synthetic runs with a known effect, the CLI's outputs and its one-line errors."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from alchemy_tune import analyze as A
from alchemy_tune import constants as C
from alchemy_tune.cli import main
from alchemy_tune.config import TrialConfig
from alchemy_tune.importance import param_importance
from alchemy_tune.results import ResultsWriter, read_trials
from alchemy_tune.synthetic import make_run
from test_results import make_report


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    a = make_run(str(root / "seed0"), n_trials=36, seed=0, failed=1, running=1)
    b = make_run(str(root / "seed1"), n_trials=36, seed=1)
    return a, b


def test_cli_prints_tables_and_writes_a_report_with_readable_plots(two_seeds, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["analyze", *two_seeds, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for title in ("== Leaderboard ==", "== URIEL-subset ablation", "== Pareto front", "still running",
                  "failed synthetic-0/trial_0034: RuntimeError: synthetic failure"):
        assert title in text
    report = (out / "report.md").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) >= 5 and "per_language.png" in pngs and "uriel_ablation.png" in pngs
    for name in pngs:
        assert f"]({name})" in report
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # languages are named on the per-language plot's table
    assert "Swahili (swh)" in report and "Japanese (jpn)" in report


def test_ablation_recovers_the_synthetic_effect_and_pools_seeds(two_seeds):
    runs = A.load_runs(list(two_seeds))
    table, note = A.ablation(runs)
    assert note is None
    rows = table.set_index("uriel_features")
    full, geo = rows.loc["syntax_knn+syntax_average+geo"], rows.loc["geo"]
    # the synthetic URIEL gain grows with the subset and touches only unseen languages
    assert full["Δunseen"] > geo["Δunseen"] > 0
    assert full["Δunseen"] - full["Δunseen_ci"] > 0
    assert abs(full["Δseen"]) < full["Δunseen"] / 3
    one = A.ablation(A.load_runs([two_seeds[1]]))[0].set_index("uriel_features")
    assert rows["n"].sum() > one["n"].sum()  # both runs are pooled


def test_language_deltas_show_unseen_languages_gaining_with_family_and_script(two_seeds):
    runs = A.load_runs(list(two_seeds), metric="test_unseen")
    table, note = A.language_deltas(runs)
    assert note is None
    unseen_mean = table.loc[~table["seen"].astype(bool), "delta"].mean()
    seen_mean = table.loc[table["seen"].astype(bool), "delta"].mean()
    assert unseen_mean > seen_mean + 0.01
    swh = table.set_index("lang").loc["swh"]
    assert (swh["language"], swh["family"], swh["script"]) == ("Swahili", "Niger-Congo", "Latin")
    families = A.grouped_deltas(table, "family")
    assert families["languages"].sum() == len(table)


def test_leaderboard_matches_an_independent_query(two_seeds):
    import duckdb

    runs = A.load_runs([two_seeds[0]], metric="dev_unseen")
    board = A.leaderboard(runs, top=5)
    path = os.path.join(two_seeds[0], "results", "trials", "**", "*.parquet")
    expected = duckdb.sql(f"select trial_id from read_parquet('{path}') order by best_dev_unseen desc limit 5").fetchall()
    assert board["trial"].tolist() == [r[0] for r in expected]
    assert board["dev_unseen"].is_monotonic_decreasing


def test_pareto_front_is_exactly_the_non_dominated_trials(two_seeds):
    runs = A.load_runs([two_seeds[0]])
    front = A.pareto_front(runs)
    trials = A._scored(runs)
    pts = trials[["best_dev_seen", "best_dev_unseen"]].to_numpy()
    on_front = set(front["trial"])
    for tid, (s, u) in zip(trials["trial_id"], pts):
        dominated = np.any((pts[:, 0] >= s) & (pts[:, 1] >= u) & ((pts[:, 0] > s) | (pts[:, 1] > u)))
        assert dominated == (tid not in on_front)


def test_mean_ci_is_the_t_interval():
    values = [0.5, 0.52, 0.47, 0.55]
    mean, half, n = A.mean_ci(values)
    lo, hi = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert (n, mean) == (4, pytest.approx(np.mean(values))) and half == pytest.approx((hi - lo) / 2)
    assert math.isnan(A.mean_ci([0.4])[1]) and A.mean_ci([])[2] == 0


def test_importance_ranks_the_parameters_that_drive_the_score(two_seeds):
    runs = A.load_runs(list(two_seeds))
    table, note = param_importance(A._scored(runs), runs.score, "ped-anova")
    assert note is None
    assert set(table["parameter"]) <= {c[4:] for c in runs.trials.columns if c.startswith("cfg_")}
    top3 = table.sort_values("importance", ascending=False)["parameter"].head(3).tolist()
    assert "lambda" in top3 or "uriel_features" in top3


def _run_with(tmp_path, trials):
    (tmp_path / "alchemy_run.json").write_text(json.dumps({"schema": 1, "run_id": "r"}))
    writer = ResultsWriter(str(tmp_path), "r")
    for tid, changes, status in trials:
        writer.add_report(tid, TrialConfig(**changes).to_dict(), make_report(2))
        if status:
            writer.end_trial(tid, status, error="boom" if status == C.FAILED else "")
    writer.flush()
    return str(tmp_path)


def test_without_a_matching_baseline_the_tables_say_so(tmp_path, capsys):
    run = _run_with(tmp_path, [("a", {"lambda_": 10.0, "lr": 1e-4}, C.COMPLETED),
                               ("b", {"lambda_": 0.0, "lr": 3e-4}, C.COMPLETED),
                               ("c", {"lambda_": 10.0, "lr": 2e-4}, None)])
    assert main(["analyze", run, "--format", "json", "--no-report"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "no baseline with matching settings" in result["table_notes"]["uriel_ablation"]
    assert "unpaired" in result["table_notes"]["uriel_ablation"]
    (row,) = result["tables"]["uriel_ablation"]  # the running trial "c" is left out of summaries
    assert row["n"] == 1 and row["Δunseen"] == pytest.approx(0.0)  # a and b reported the same scores
    assert "unpaired" in result["table_notes"]["language_deltas"]
    assert len(result["tables"]["leaderboard"]) == 3
    assert any("still running" in n for n in result["notes"])
    assert main(["analyze", run, "--format", "csv", "--no-report"]) == 0
    assert "# leaderboard\nrank,run,trial" in capsys.readouterr().out


@pytest.mark.parametrize("case, message", [
    ("missing", "no such directory"), ("plain", "not a run"), ("newer", "newer than this"),
    ("empty", "empty run"),
])
def test_bad_input_is_a_one_line_error_with_exit_2(tmp_path, capsys, case, message):
    target = tmp_path / case
    if case != "missing":
        target.mkdir()
    if case in ("newer", "empty"):
        (target / "alchemy_run.json").write_text(json.dumps({"schema": 1, "run_id": "r"}))
    if case == "newer":
        (target / "results").mkdir()
        table = pa.table({"run_id": ["r"]}).replace_schema_metadata({b"schema_version": b"3"})
        pq.write_table(table, target / "results" / "trials.parquet")
    assert main(["analyze", str(target)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_trials_table_columns_survive_missing_config_columns(tmp_path):
    run = _run_with(tmp_path, [("a", {}, C.COMPLETED), ("b", {"lambda_": 0.0}, C.COMPLETED)])
    table = read_trials(run).drop_columns(["cfg_uriel_features", "cfg_train_size", "cfg_lambda_schedule"])
    pq.write_table(table.replace_schema_metadata({b"schema_version": b"1"}),
                   os.path.join(run, "results", "trials.parquet"))
    runs = A.load_runs([run])
    assert A.ablation(runs)[1] == "no URIEL-subset or λ column"
    assert A.scaling(runs)[1] == "no cfg_train_size column"
    assert len(A.leaderboard(runs)) == 2


@pytest.mark.parametrize("df", [1, 2, 5, 30, 31, 45, 200, 10_000])
def test_t_quantile_matches_scipy(df):
    assert A.t975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-4)


def test_fanova_without_scikit_learn_is_a_usage_error(two_seeds, capsys):
    try:
        import sklearn  # noqa: F401
    except ImportError:
        assert main(["analyze", two_seeds[1], "--importance", "fanova", "--no-report"]) == 2
        assert "needs scikit-learn" in capsys.readouterr().err
    else:
        assert main(["analyze", two_seeds[1], "--importance", "fanova", "--no-report"]) == 0
        assert "== Parameter importance ==" in capsys.readouterr().out
