"""The analysis on synthetic runs with a known effect, the CLI's outputs and its one-line errors."""

from __future__ import annotations

import json
from types import SimpleNamespace
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from alchemy_tune.analysis import analyze as A
from alchemy_tune.core import constants as C
from alchemy_tune.analysis import language_gains as G
from alchemy_tune.analysis import paired as P
from alchemy_tune.analysis import scaling_report as SR
from alchemy_tune.analysis import verdict as V
from alchemy_tune.cli import main
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.analysis.importance import param_importance
from alchemy_tune.results.schema import read_metrics, read_trials
from alchemy_tune.results.writer import ResultsWriter
from testing.synthetic import make_run
from testing.reports import make_report


N_LANGS = 16  # 8 test languages
ITEMS = 40  # test examples per language in the synthetic runs that store them


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """A wide synthetic search (λ × URIEL subset × projection, 3 seeds each) pooled from two runs."""
    root = tmp_path_factory.mktemp("runs")
    a = make_run(str(root / "seed0"), n_trials=72, seed=0, failed=1, running=1, metric="dev_seen")
    b = make_run(str(root / "seed1"), n_trials=72, seed=1, first_seed=50, metric="dev_seen")
    return a, b


@pytest.fixture(scope="module")
def lambdas(tmp_path_factory):
    """λ ∈ {0, 1, 10, 25} with one URIEL subset, 3 seeds each: 3 comparisons, 8 test languages."""
    return make_run(str(tmp_path_factory.mktemp("lam") / "run"), n_trials=12, n_langs=N_LANGS, metric="dev_seen",
                    items=ITEMS)


def _raw_scores(run_dir: str, at: str = "final") -> pd.DataFrame:
    """Per-language test accuracy at each trial's final (or best) step, joined by hand (independently of
    analyze)."""
    trials = read_trials(run_dir).to_pandas()
    metrics = read_metrics(run_dir).to_pandas()
    trials = trials[trials["status"] == "completed"][["run_id", "trial_id", f"{at}_step", "cfg_lambda", "cfg_seed"]]
    metrics = metrics[(metrics["split"] == "test") & (metrics["metric"] == "accuracy")]
    joined = metrics.merge(trials, left_on=["run_id", "trial_id", "step"], right_on=["run_id", "trial_id", f"{at}_step"])
    return joined.rename(columns={"cfg_lambda": "lam", "cfg_seed": "seed"})[["lam", "seed", "lang", "seen", "value"]]


def _two_way(d: np.ndarray, draws: int = 400_000) -> tuple[float, float, float, float]:
    """(Δ, lo, hi, p) of the languages × seeds model, computed here from its textbook formulas with scipy.stats:
    the mean squares, then the generalized pivotal quantity R = Δ̂ − Z·√(V*/(L·S)) by plain Monte Carlo
    (random χ² draws: the module's are stratified), its 2.5% and 97.5% quantiles and twice its tail at 0."""
    n_l, n_s = d.shape
    m, rows, cols = d.mean(), d.mean(axis=1), d.mean(axis=0)
    rng = np.random.default_rng(0)
    theta = lambda ms, f: ms * f / stats.chi2.rvs(f, size=draws, random_state=rng)  # noqa: E731
    ms_l = n_s * ((rows - m) ** 2).sum() / (n_l - 1)
    if n_s == 1:
        v = theta(ms_l, n_l - 1)
    else:
        f_e = (n_l - 1) * (n_s - 1)
        ms_s = n_l * ((cols - m) ** 2).sum() / (n_s - 1)
        ms_e = ((d - rows[:, None] - cols[None, :] + m) ** 2).sum() / f_e
        t_l, t_s, t_e = theta(ms_l, n_l - 1), theta(ms_s, n_s - 1), theta(ms_e, f_e)
        v = np.maximum(t_l, t_e) + np.maximum(t_s - t_e, 0)
    r = m - stats.norm.rvs(size=draws, random_state=rng) * np.sqrt(v / d.size)
    lo, hi = np.quantile(r, [0.025, 0.975])
    return m, lo, hi, 2 * min((r < 0).mean(), (r > 0).mean())


def test_paired_delta_interval_p_and_holm_match_an_independent_computation(lambdas):
    runs = A.load_runs([lambdas])
    table, note = A.comparisons(A.units(runs))
    assert note is None and len(table) == 3 and set(table["baseline"]) == {"matched"}
    raw = _raw_scores(lambdas)
    test_langs = set(runs.langs.loc[runs.langs["role"] == "unseen", "lang"])  # the val language is not one
    raw = raw[raw["lang"].isin(test_langs)].pivot_table(index=["lang", "seed"], columns="lam", values="value")
    p_values = {}
    for lam in (1.0, 10.0, 25.0):
        row = table.set_index("lambda").loc[lam]
        d = (raw[lam] - raw[0.0]).unstack("seed")  # language x seed
        delta, lo, hi, p = _two_way(d.to_numpy())
        assert row["Δunseen"] == pytest.approx(delta, abs=1e-12)
        width = hi - lo  # stratified draws against plain Monte Carlo of the same pivot
        assert (row["Δunseen_lo"], row["Δunseen_hi"]) == pytest.approx((lo, hi), abs=0.01 * width)
        assert row["p_unseen"] == pytest.approx(p, abs=0.005)
        assert (row["languages_unseen"], row["seeds_unseen"]) == (len(test_langs), 3)
        assert (row["p_unseen"] < 0.05) == (not row["Δunseen_lo"] <= 0 <= row["Δunseen_hi"])  # one model
        p_values[lam] = row["p_unseen"]
    # Holm by its definition: the k-th smallest p times (m - k + 1), made monotone
    ordered = sorted(p_values, key=p_values.get)
    expected, running = {}, 0.0
    for k, lam in enumerate(ordered):
        running = max(running, min(1.0, (3 - k) * p_values[lam]))
        expected[lam] = running
    assert table.set_index("lambda")["p_holm_unseen"].to_dict() == pytest.approx(expected)
    # the synthetic URIEL effect: large λ helps test languages, and only them
    big = table.set_index("lambda").loc[25.0]
    assert V.beats(big, "unseen") and not V.beats(big, "seen")


def test_one_seed_gives_the_t_interval_over_languages_and_says_so(tmp_path):
    run = make_run(str(tmp_path / "one"), n_trials=4, n_langs=N_LANGS, repeats=1, metric="dev_seen")
    first = A.comparisons(A.units(A.load_runs([run])))[0]
    again = A.comparisons(A.units(A.load_runs([run])))[0]
    assert first[["Δunseen_lo", "Δunseen_hi"]].equals(again[["Δunseen_lo", "Δunseen_hi"]])
    row = first.set_index("lambda").loc[10.0]
    raw = _raw_scores(run)
    runs = A.load_runs([run])
    raw = raw[raw["lang"].isin(set(runs.langs.loc[runs.langs["role"] == "unseen", "lang"]))].pivot_table(
        index="lang", columns="lam", values="value")
    d = (raw[10.0] - raw[0.0]).to_numpy()
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert (row["Δunseen_lo"], row["Δunseen_hi"]) == pytest.approx((lo, hi), rel=1e-6)
    assert "one seed" in row["caveats_unseen"]
    verdict = " ".join(V.verdict(first, confirmed=False))
    assert "1 seed)" in verdict and "one seed: seed-to-seed variation is not measured" in verdict


def test_pairing_by_seed_is_what_narrows_the_interval(lambdas):
    runs = A.load_runs([lambdas])
    trials, scores = A._scored(runs), runs.scores("test")
    paired = P.baseline_comparisons(P.Units(trials, scores)).set_index("lambda")
    # relabel the baseline's seeds: the same scores, now paired with another seed's draw
    plain = trials["cfg_lambda"] == 0
    shuffled = trials.assign(cfg_seed=np.where(plain, 42 + (trials["cfg_seed"] - 42 + 1) % 3, trials["cfg_seed"]))
    crossed = P.baseline_comparisons(P.Units(shuffled, scores)).set_index("lambda")
    assert crossed.loc[10.0, "Δunseen"] == pytest.approx(paired.loc[10.0, "Δunseen"])  # same means
    width = lambda t: (t["Δunseen_hi"] - t["Δunseen_lo"]).mean()  # noqa: E731
    assert width(crossed) > 1.5 * width(paired)


def test_every_row_is_one_configuration_and_every_searched_setting_gets_a_table(two_seeds):
    runs = A.load_runs(list(two_seeds))
    u = A.units(runs)
    table, _ = A.comparisons(u)
    dims = ["lambda", "projection", "uriel_features"]
    assert [P.short(c) for c in u.searched] == dims
    assert not table.duplicated(dims).any()  # no row pools two values of a searched setting
    assert len(table) == 9 * 2  # λ>0 × subsets × projections; plain fine-tuning is the baseline
    assert table["seeds_unseen"].max() == 6 and table["seeds_unseen"].min() == 4  # 3 per run; 2 did not finish
    by, continuous = A.dimensions(u)
    assert continuous == []
    assert set(by) == {"projection", "uriel_features"}
    proj = by["projection"][0]
    assert set(proj["reference"]) == {"projection=linear"} and len(proj) == 9
    subsets = by["uriel_features"][0]
    # the synthetic gain grows with the subset's size, so smaller subsets lose against the full default set
    assert (subsets["Δunseen"] < 0).all() and set(subsets["reference"]) == {
        "uriel_features=syntax_knn+syntax_average+geo"}


def test_language_and_family_gains_keep_their_cis(lambdas):
    runs = A.load_runs([lambdas])
    u = A.units(runs)
    table = A.comparisons(u)[0]
    best = V.focus(table)
    # the detailed configuration is the best by the selection metric (dev_seen here), never by test
    assert best["selection_score"] == table["selection_score"].max()
    dev = A._scored(runs).groupby("cfg_lambda")[runs.col("dev_seen")].mean()
    assert best["lambda"] == dev.drop(0.0).idxmax()
    key = A.config_key(u, best)
    langs = G.language_table(u, key)
    swh = langs.set_index("lang").loc["swh"]
    assert (swh["language"], swh["family"], swh["script"], swh["role"]) == ("Swahili", "Niger-Congo", "Latin",
                                                                            "unseen")
    assert swh["delta_lo"] <= swh["delta"] <= swh["delta_hi"] and swh["seeds"] == 3
    # from the test examples: zero width only where both answered every example the same way in every seed
    changed = langs["delta"] != 0
    assert (langs.loc[changed, "delta_hi"] > langs.loc[changed, "delta_lo"]).all() and changed.sum() > 4
    assert list(dict.fromkeys(langs["role"])) == ["seen", "val", "unseen"]  # the protocol's order
    families = G.grouped_language_deltas(u, key, "family")
    assert families["languages"].sum() == (langs["role"] == "unseen").sum()
    assert (families["delta_lo"] <= families["delta"]).all() and (families["delta"] <= families["delta_hi"]).all()
    single = families[families["languages"] == 1]
    assert len(single) and single["interval"].str.startswith("one language").all()
    assert (single["interval"].str.contains("over its seeds only")).all()
    d = P.delta_matrix(u.of_config(key), u.baseline_of(key), "unseen")
    for _, group in single.iterrows():  # a family of one language: the same model over that language's seeds
        lang = group["interval"].split("(")[1].split(")")[0]
        seeds = d.loc[lang].to_numpy()
        lo, hi = stats.t.interval(0.95, len(seeds) - 1, loc=seeds.mean(), scale=stats.sem(seeds))
        assert (group["delta_lo"], group["delta_hi"]) == pytest.approx((lo, hi))


def test_cli_report_opens_with_the_verdict(lambdas, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["analyze", lambdas, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("== Verdict ==\nOn the test languages (never fine-tuned on), the searched")
    report = (out / "report.md").read_text()
    lines = [line for line in report.splitlines() if line.strip()]
    assert lines[:2] == ["# alchemy-tune analysis", "## Verdict"]
    assert lines[2].startswith("On the test languages (never fine-tuned on), the searched (not yet confirmed")
    assert "is better than plain fine-tuning" in lines[2]
    assert lines[3].startswith("On the seen languages, the comparison of the searched") and "inconclusive" in lines[3]
    assert "95% CI" in lines[2] and "Holm-corrected" in lines[2] and "7 languages × 3 seeds" in lines[2]
    assert "cannot be ruled out" in lines[3] and "detects |Δ|" not in report  # no post-hoc power
    assert lines[4].startswith("The margin ±0.01 is the metric's default: the space declared none")
    assert lines[5].startswith("Headline family") and lines[6].startswith("![Paired comparisons")  # then its figure
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"comparisons.png", "language_deltas.png", "per_language.png"} <= set(pngs)
    for name in pngs:
        assert f"]({name})" in report
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Swahili (swh)" in report and "oracle" not in report.lower()
    _check_standalone_page(out / "report.html", pngs)


def _check_standalone_page(path, pngs) -> None:
    """report.html: the verdict first, every figure inlined as a PNG that decodes, tables as HTML tables."""
    import base64
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.images, self.paragraphs, self.tables, self._p = [], [], 0, None

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.images.append(dict(attrs)["src"])
            elif tag == "p":
                self._p = ""
            elif tag == "table":
                self.tables += 1

        def handle_data(self, data):
            if self._p is not None:
                self._p += data

        def handle_endtag(self, tag):
            if tag == "p" and self._p is not None:
                self.paragraphs.append(self._p.strip())
                self._p = None

    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert page.paragraphs[0].startswith("On the test languages")
    assert len(set(page.images)) == len(pngs) and page.tables >= 3  # the headline figure shows twice
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_confirmation_runs_drive_the_verdict(lambdas, tmp_path, capsys):
    confirm = make_run(str(tmp_path / "confirm"), n_trials=12, n_langs=N_LANGS, first_seed=100, kind="confirm",
                       run_id="confirm-1", metric="dev_seen")
    assert main(["analyze", lambdas, confirm, "--format", "json", "--no-report"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["verdict"][0].startswith("On the test languages (never fine-tuned on), the confirmed configuration (λ=")
    confirmed = result["tables"]["confirmed"]
    assert {r["seeds_unseen"] for r in confirmed} == {3}  # fresh seeds only
    assert {r["seeds_unseen"] for r in result["tables"]["comparisons"]} == {3}  # the search's alone
    board = result["tables"]["leaderboard"]
    assert board and not any(r["run"] == "confirm-1" for r in board)


def test_oracle_selection_is_marked_everywhere(tmp_path, capsys):
    run = make_run(str(tmp_path / "oracle"), n_trials=12, n_langs=N_LANGS, metric="dev_unseen")
    out = tmp_path / "report"
    assert main(["analyze", run, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert all(line.startswith("[oracle") for line in text.split("\n\n")[0].splitlines()[1:])
    assert "note: ORACLE" in text and " oracle " in text  # the leaderboard's selection column
    report = (out / "report.md").read_text()
    assert report.startswith("# alchemy-tune analysis — ORACLE selection")
    saved = json.loads((out / "tables.json").read_text())
    assert saved["oracle"] is True
    assert all(row["selection"] == "oracle" for rows in saved["tables"].values() for row in rows)
    assert saved["tables"]["comparisons"] and saved["tables"]["language_deltas"]


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


def test_the_pareto_front_of_dev_scores_says_it_is_not_for_choosing(lambdas):
    """It plots the test languages' own dev scores: readable, never a way to choose, and it says so."""
    from alchemy_tune.analysis.report import compute, title

    tables, notes, _ = compute(A.load_runs([lambdas]), top=5, importance="ped-anova")
    assert not tables["pareto_front"].empty and notes["pareto_front"].startswith("NOT FOR CHOOSING")
    assert "not for choosing" in title("pareto_front")


def test_importance_ranks_the_parameters_that_drive_the_score(two_seeds, tmp_path):
    """Configurations count, not trials: the two pooled runs hold 19 (the same ones on other seeds, every
    plain fine-tuning one alike), too few for numbers; a wider search ranks what drives the score."""
    runs = A.load_runs(list(two_seeds))
    table, note = param_importance(A._scored(runs), runs.score, "ped-anova")
    assert table.empty and note == "importance needs ≥ 20 configurations (19 here)"
    runs = A.load_runs([make_run(str(tmp_path / "wide"), n_trials=144, metric="dev_seen")])
    table, note = param_importance(A._scored(runs), runs.score, "ped-anova")
    assert note.startswith("PED-ANOVA (Optuna) over 37 configurations (finished search trials")
    assert set(table["parameter"]) <= {c[4:] for c in runs.trials.columns if c.startswith("cfg_")}
    top3 = table.sort_values("importance", ascending=False)["parameter"].head(3).tolist()
    assert "lambda" in top3 or "uriel_features" in top3


def test_execution_settings_and_seeds_are_not_parameters_or_configurations():
    """Roles come from config.py's field metadata: a trial's execution settings (bf16, checkpoint cadence, ...)
    and its seed vary without being searched, so importance skips them and they never split a configuration."""
    rng = np.random.default_rng(0)
    n = 60
    lr = np.repeat(np.logspace(-4, -1, 20), 3)  # 20 configurations, 3 seeds each
    trials = pd.DataFrame({"cfg_lr": lr, "cfg_bf16": [True, False] * 30, "cfg_checkpoint_every": [1, 2, 3, 4] * 15,
                           "cfg_seed": range(n), "cfg_deterministic": [True, False, False, False] * 15,
                           "best_dev_select": np.log10(lr) + rng.normal(0, 0.01, n)})
    table, note = param_importance(trials, "best_dev_select", "ped-anova")
    assert note.startswith("PED-ANOVA") and list(table["parameter"]) == ["lr"]
    assert P.identity_columns(trials) == ["cfg_lr"]


def test_importance_gives_a_parameter_of_one_schedule_none_of_the_schedules_own(tmp_path):
    """Acceptance: only λ and the schedule drive the score; scale_interval applies to AlchemyScale alone
    (elsewhere trials keep its default, 100). Over completed search trials, one row per configuration,
    with scale_interval 'n/a' where it does not apply, it ranks below lambda_schedule; pruned and running
    trials are left out."""
    from alchemy_tune.tuning.space_file import load_space

    (tmp_path / "space.yaml").write_text(
        "lambda: {type: categorical, choices: [0, 1, 2]}\n"
        "lambda_schedule: {type: categorical, choices: [constant, warmup, linear_decay, alchemyscale],"
        " when: {lambda: [1, 2]}}\n"
        "scale_interval: {type: categorical, choices: [20, 50], when: {lambda_schedule: alchemyscale}}\n"
        "weight_decay: {type: categorical, choices: [0.0, 0.01]}\n")
    space = load_space(str(tmp_path / "space.yaml"))
    effect = {"constant": 0.0, "warmup": 0.02, "linear_decay": 0.04, "alchemyscale": -0.06}
    rng = np.random.default_rng(0)
    rows = []
    # 22 configurations (importance needs 20); weight decay does nothing to the score
    configs = [(0.0, "constant", 100)] + [(lam, s, 100) for lam in (1.0, 2.0) for s in ("constant", "warmup",
                                                                                      "linear_decay")] \
        + [(lam, "alchemyscale", i) for lam in (1.0, 2.0) for i in (20, 50)]
    for (lam, schedule, interval), decay in ((c, d) for c in configs for d in (0.0, 0.01)):
        for seed in (42, 43, 44):
            score = 0.5 - 0.01 * lam + (effect[schedule] if lam else 0.0) + rng.normal(0, 0.002)
            rows.append({"cfg_lambda": lam, "cfg_lambda_schedule": schedule, "cfg_scale_interval": interval,
                         "cfg_weight_decay": decay, "cfg_seed": seed, "status": C.COMPLETED,
                         "best_dev_select": score})
    rows.append({**rows[-1], "status": C.PRUNED, "best_dev_select": 0.9})  # never counted
    rows.append({**rows[0], "cfg_seed": 45, "status": C.RUNNING, "best_dev_select": 0.9})
    trials = pd.DataFrame(rows)
    table, note = param_importance(trials, "best_dev_select", "ped-anova", space=space)
    rank = table.set_index("parameter")["importance"]
    assert rank["lambda_schedule"] > rank["scale_interval"], table
    assert "over 22 configurations" in note and "'n/a' where its condition is false" in note
    plain, _ = param_importance(trials, "best_dev_select", "ped-anova")  # without the space: as stored
    assert "conditions unknown" in _


def _run_with(tmp_path, trials):
    (tmp_path / "alchemy_run.json").write_text(json.dumps({"schema": 1, "run_id": "r", "metric": "dev_seen"}))
    writer = ResultsWriter(str(tmp_path), "r")
    for tid, changes, status in trials:
        writer.add_report(tid, TrialConfig(**changes).to_dict(), make_report(2))
        if status:
            writer.end_trial(tid, status, error="boom" if status == C.FAILED else "")
    writer.flush()
    return str(tmp_path)


def test_without_a_matching_baseline_there_is_no_delta(tmp_path, capsys):
    run = _run_with(tmp_path, [("a", {"lambda_": 10.0, "lr": 1e-4}, C.COMPLETED),
                               ("b", {"lambda_": 0.0, "lr": 3e-4}, C.COMPLETED),
                               ("c", {"lambda_": 10.0, "lr": 2e-4}, None)])
    assert main(["analyze", run, "--format", "json", "--no-report"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "no matched baseline" in result["table_notes"]["comparisons"]
    (row,) = result["tables"]["comparisons"]  # the running trial "c" is left out of summaries
    assert row["baseline"] == P.NO_BASELINE and row["Δunseen"] is None and row["Δseen"] is None
    assert result["verdict"] == ["No verdict: no configuration has a matched plain fine-tuning baseline "
                                 "(λ=0, same other settings, same seeds) in these runs."]
    assert result["tables"]["language_deltas"] == []
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
    assert A.comparisons(A.units(runs))[0]["baseline"].tolist() == ["matched"]
    assert SR.analyse(A.units(runs))[1]["scaling"] == SR.NO_CURVE
    assert len(A.leaderboard(runs)) == 2


def test_fanova_without_scikit_learn_is_a_usage_error(two_seeds, capsys):
    try:
        import sklearn  # noqa: F401
    except ImportError:
        assert main(["analyze", two_seeds[1], "--importance", "fanova", "--no-report"]) == 2
        assert "needs scikit-learn" in capsys.readouterr().err
    else:
        assert main(["analyze", two_seeds[1], "--importance", "fanova", "--no-report"]) == 0
        assert "== Parameter importance ==" in capsys.readouterr().out


def test_a_setting_of_one_schedule_does_not_stop_the_schedule_comparison():
    """AlchemyScale's scale_interval is set only with that schedule (20; the others keep 100): the schedule
    comparison must still pair AlchemyScale with the constant schedule, by seed and language."""
    configs = [(0.0, "constant", 100), (0.1, "constant", 100), (1.0, "constant", 100), (1.0, "alchemyscale", 20)]
    trials, scores = [], []
    for c, (lam, schedule, interval) in enumerate(configs):
        for seed in (42, 43, 44):
            tid = f"t{c}{seed}"
            trials.append({"run_id": "r", "trial_id": tid, "cfg_lambda": lam, "cfg_lambda_schedule": schedule,
                           "cfg_scale_interval": interval, "cfg_seed": seed})
            for i, lang in enumerate(("aa", "bb", "cc", "dd")):
                value = 0.5 + 0.01 * i + 0.001 * seed - (0.05 if schedule == "alchemyscale" else 0.0)
                scores.append({"run_id": "r", "trial_id": tid, "lang": lang, "role": "unseen", "value": value})
    units = P.Units(pd.DataFrame(trials), pd.DataFrame(scores))
    table, note = P.dimension_comparisons(units, "cfg_lambda_schedule", roles=("unseen",))
    assert note is None and len(table) == 1  # λ = 0.1 has no AlchemyScale run: only λ = 1 is compared
    row = table.iloc[0]
    assert row["paired"] == "yes" and row["reference"] == "lambda_schedule=constant"
    assert row["Δunseen"] == pytest.approx(-0.05) and row["seeds_unseen"] == 3


def test_nothing_follows_a_setting_every_configuration_has_its_own_value_of():
    """A random search's continuous lr gives each configuration its own value: the projection does not
    'follow' lr, so an lr comparison pairs nothing across different projections (the reference lr, 1e-4,
    only ran with the linear projection)."""
    trials, scores = [], []
    for c, (lr, projection) in enumerate([(1e-4, "linear"), (2e-4, "mlp"), (3e-4, "mlp")]):
        for seed in (42, 43):
            tid = f"t{c}{seed}"
            trials.append({"run_id": "r", "trial_id": tid, "cfg_lambda": 1.0, "cfg_lr": lr,
                           "cfg_projection": projection, "cfg_seed": seed})
            scores += [{"run_id": "r", "trial_id": tid, "lang": lang, "role": "unseen", "value": 0.5}
                       for lang in ("aa", "bb")]
    units = P.Units(pd.DataFrame(trials), pd.DataFrame(scores))
    table, _ = P.dimension_comparisons(units, "cfg_lr", roles=("unseen",))
    assert set(table["paired"]) == {"none: no run of the same configuration at the reference value"}


def _data_seed_units(data_seeds, unpaired: bool = True) -> P.Units:
    """Plain fine-tuning and λ=1, 4 test languages, replicates (seed, data seed) = zip(42.., data_seeds); a
    subset's draw moves every score by 0.1 × data seed, the URIEL loss adds 0.02. With ``unpaired`` the
    baseline also ran a replicate λ=1 never ran, and λ=1 one the baseline never ran: neither is a pair."""
    trials, scores = [], []
    for lam, extra in ((0.0, [(45, 9)]), (1.0, [(45, 8)])):
        for seed, data_seed in [*zip((42, 43, 44), data_seeds), *(extra if unpaired else [])]:
            tid = f"t{lam}-{seed}-{data_seed}"
            trials.append({"run_id": "r", "trial_id": tid, "cfg_lambda": lam, "cfg_seed": seed,
                           "cfg_data_seed": data_seed})
            for i in range(4):
                value = 0.4 + 0.01 * i + 0.1 * data_seed + 0.001 * seed + 0.02 * lam
                scores.append({"run_id": "r", "trial_id": tid, "lang": f"l{i}", "role": "unseen", "value": value})
    return P.Units(pd.DataFrame(trials), pd.DataFrame(scores))


def _treated_delta(u: P.Units) -> pd.DataFrame:
    key = next(k for k in u.configs.index if not u.plain[k])
    return P.delta_matrix(u.of_config(key), u.baseline_of(key), "unseen")


def test_a_varied_data_seed_is_part_of_the_replicate_and_pairs_by_seed_and_subset():
    """With data seeds varied (replicate_data, or a confirmation on fresh subsets) the data seed is a
    replicate, not a configuration: λ=1 and its baseline pair only where both trained with the same seed on
    the same subsets, so the subset's large effect cancels. With one data seed everywhere (every earlier
    run) the replicate is the training seed, exactly as before."""
    u = _data_seed_units((0, 1, 2))
    assert u.identity == ["cfg_lambda"] and len(u.configs) == 2  # the data seed splits no configuration
    d = _treated_delta(u)
    assert list(d.columns) == ["42/0", "43/1", "44/2"]  # (45, 8) and (45, 9): one subset each, never paired
    assert np.allclose(d.to_numpy(), 0.02)
    old = _data_seed_units((5, 5, 5), unpaired=False)
    assert old.identity == ["cfg_lambda"] and list(old._keyed["_seed"]) == list(old.trials["cfg_seed"])
    d = _treated_delta(old)
    assert list(d.columns) == [42, 43, 44] and np.allclose(d.to_numpy(), 0.02)


def _nan_units(nan_cells) -> P.Units:
    """Plain fine-tuning and λ=1, 8 test languages × 3 seeds; λ=1 has no score (NaN, e.g. a collapsed
    regressor's Pearson) at ``nan_cells`` (language index, seed)."""
    trials, scores = [], []
    for lam in (0.0, 1.0):
        for seed in (42, 43, 44):
            tid = f"t{lam}-{seed}"
            trials.append({"run_id": "r", "trial_id": tid, "cfg_lambda": lam, "cfg_seed": seed,
                           "best_dev_select": 0.5 + lam / 10})
            for i in range(8):
                value = 0.4 + 0.01 * i + (0.02 * lam) + 0.003 * ((seed + i) % 3)
                if lam and (i, seed) in nan_cells:
                    value = math.nan
                scores.append({"run_id": "r", "trial_id": tid, "lang": f"l{i}", "role": "unseen", "value": value})
    return P.Units(pd.DataFrame(trials), pd.DataFrame(scores), score_col="best_dev_select")


def test_a_missing_score_never_drops_a_seed_and_a_language_missing_everywhere_is_named():
    """Acceptance: a NaN in one language for one seed keeps every other seed of every language; a NaN in one
    language for all seeds removes only that language and says so; the verdict's counts match."""
    whole = P.baseline_comparisons(_nan_units(set()), roles=("unseen",)).iloc[0]
    one = P.baseline_comparisons(_nan_units({(3, 43)}), roles=("unseen",)).iloc[0]
    assert (one["languages_unseen"], one["seeds_unseen"]) == (8, 3)
    assert "1 missing language × seed score(s) filled" in one["caveats_unseen"]
    assert one["Δunseen"] == pytest.approx(whole["Δunseen"], abs=1e-12)  # the additive model fills it exactly
    verdict = V.verdict(pd.DataFrame([one]), confirmed=True)[0]
    assert "(8 languages × 3 seeds)" in verdict and "1 missing language × seed score(s)" in verdict
    gone = P.baseline_comparisons(_nan_units({(5, 42), (5, 43), (5, 44)}), roles=("unseen",)).iloc[0]
    assert (gone["languages_unseen"], gone["seeds_unseen"]) == (7, 3) and gone["baseline"] == "matched"
    assert "left out: l5" in gone["caveats_unseen"]
    verdict = V.verdict(pd.DataFrame([gone]), confirmed=True)[0]
    assert "(7 languages × 3 seeds)" in verdict and "l5" in verdict and "no matched" not in verdict
    everywhere = P.baseline_comparisons(_nan_units({(i, s) for i in range(8) for s in (42, 43, 44)}),
                                        roles=("unseen",))
    said = V.verdict(everywhere, confirmed=True)[0]
    assert "no test-language score" in said and "no configuration has a matched" not in said


def test_a_declared_primary_comparison_is_the_headline_family(tmp_path, capsys):
    """A space's `search.primary` picks the configurations of the headline: the verdict's Holm family is
    those alone; the comparisons table stays whole and is labelled exploratory."""
    import dataclasses

    from alchemy_tune.results.run_record import RunRecord

    run = make_run(str(tmp_path / "run"), n_trials=12, n_langs=N_LANGS, metric="dev_seen", items=ITEMS)
    record = RunRecord.read(run)
    dataclasses.replace(record, settings=dataclasses.replace(record.settings, primary={"lambda": 1.0})).write(run)
    runs = A.load_runs([run])
    assert runs.primary == {"lambda": 1.0}
    from alchemy_tune.analysis.report import compute

    tables, notes, verdict = compute(runs, top=5, importance="ped-anova")
    assert len(tables["comparisons"]) == 3 and "exploratory" in notes["comparisons"]
    family, name = V.primary_family(tables["comparisons"], runs.primary)
    assert list(family["lambda"]) == [1.0] and "lambda=1.0: 1 configuration(s)" in name
    assert family["p_holm_unseen"].iloc[0] == family["p_unseen"].iloc[0]  # a family of one: no correction
    assert "(λ=1," in verdict[0] and "over 1 configuration (" in verdict[0]
    assert verdict[-1].startswith("Headline family: the declared primary comparison (lambda=1.0")
    assert main(["plan", "--space", str(_primary_space(tmp_path, {"bogus": 1}))]) == 2
    assert "search.primary.bogus: unknown parameter" in capsys.readouterr().err


def _primary_space(tmp_path, primary) -> str:
    path = tmp_path / "primary.yaml"
    path.write_text(json.dumps({"search": {"trials": 2, "primary": primary},
                                "lambda": {"type": "categorical", "choices": [0, 1]}}))
    return str(path)


def test_a_run_copied_elsewhere_finds_its_space_beside_its_record(tmp_path):
    """The shipped study tables travel without the machine they ran on: the space file named in the record
    is gone, its copy beside the record is used (for which parameters apply where)."""
    import dataclasses

    from alchemy_tune.results.run_record import RunRecord

    from alchemy_tune.cli.analyze import run_space

    run = make_run(str(tmp_path / "run"), n_trials=8, metric="dev_seen")
    record = RunRecord.read(run)
    dataclasses.replace(record, space="/nonexistent/elsewhere/study.yaml").write(run)
    assert A.load_runs([run], space_of=run_space).space is None
    (tmp_path / "run" / "study.yaml").write_text("lambda: {type: categorical, choices: [0, 1]}\n")
    space = A.load_runs([run], space_of=run_space).space
    assert space is not None and "lambda" in space.params
    assert A.load_runs([run]).space is None  # the analysis alone reads only what the record stores


def test_the_space_a_record_stores_answers_what_the_analysis_asks(tmp_path):
    """A search stores its space's parameters in its record (``space_params``); the analysis reads their
    kinds and conditions from there, without the search layer, as it would from the space file."""
    import dataclasses

    from alchemy_tune.results.run_record import RunRecord
    from alchemy_tune.tuning.space_file import load_space

    text = ("lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}\n"
            "projection: {type: categorical, choices: [linear, mlp]}\n"
            "proj_width: {type: categorical, choices: [128, 256], when: {projection: [mlp]}}\n")
    (tmp_path / "space.yaml").write_text(text)
    space = load_space(str(tmp_path / "space.yaml"))
    run = make_run(str(tmp_path / "run"), n_trials=4)
    record = RunRecord.read(run)
    dataclasses.replace(record, extra={**record.extra, "space_params": space.summary()}).write(run)
    stored = A.load_runs([run]).space
    for name in ("lr", "projection", "proj_width"):
        assert (stored.params[name].values() is None) == (space.params[name].values() is None)
        for values in ({"projection": "mlp"}, {"projection": "linear"}, {}):
            assert stored.params[name].is_active(values) == space.params[name].is_active(values)
    dataclasses.replace(record, extra={**record.extra, "space_params": ["not", "a", "space"]}).write(run)
    assert A.load_runs([run]).space is None  # a malformed record reads as a run without its space


def test_a_setting_drawn_from_a_range_gets_no_per_value_table():
    """A TPE search over a continuous lr: pairing three arbitrary learning rates against a fourth says
    nothing, so there is no "lr: each value vs the reference" table; a categorical setting still gets one."""
    from alchemy_tune.tuning.space import Param

    rng = np.random.default_rng(0)
    trials, scores = [], []
    for c in range(10):
        lr, proj = float(10 ** rng.uniform(-5, -3)), ("linear", "mlp")[c % 2]
        for lam in (0.0, 1.0):
            for seed in (42, 43):
                tid = f"t{c}-{lam}-{seed}"
                trials.append({"run_id": "r", "trial_id": tid, "cfg_lambda": lam, "cfg_lr": lr,
                               "cfg_projection": proj, "cfg_seed": seed})
                for lang in ("aa", "bb", "cc"):
                    scores.append({"run_id": "r", "trial_id": tid, "lang": lang, "role": "unseen",
                                   "value": 0.5 + rng.normal(0, 0.01)})
    u = P.Units(pd.DataFrame(trials), pd.DataFrame(scores))
    tables, continuous = A.dimensions(u)
    assert continuous == ["lr"] and set(tables) == {"projection"}
    space = SimpleNamespace(params={"lr": Param(name="lr", kind="float", low=1e-5, high=1e-3, log=True),
                                    "projection": Param(name="projection", kind="categorical",
                                                        choices=("linear", "mlp"))})
    assert A.dimensions(u, space)[1] == ["lr"]


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PROBE = """<script>
window.addEventListener("load", () => {
  const first = document.querySelector("p");
  document.body.setAttribute("data-check", JSON.stringify({
    verdict: first ? first.textContent : "",
    images: Array.from(document.images).map(image => image.naturalWidth),
    // a table wider than the page scrolls sideways inside itself (display:block; overflow-x:auto)
    overflowing: Array.from(document.querySelectorAll("table")).filter(t => t.scrollWidth > t.clientWidth + 1)
      .map(t => t.querySelector("tr").textContent.trim().slice(0, 80)),
    sections: Array.from(document.querySelectorAll("h2")).map(h => {
      let next = h.nextElementSibling;
      return next && next.tagName !== "H2" ? "" : h.textContent; }).filter(Boolean)}));
});
</script>"""


def open_in_chromium(page: Path, tmp_path: Path, width: int = 1280) -> dict:
    """What the probe above finds in ``page`` opened in a real headless Chromium at ``width`` pixels."""
    import html
    import re
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "no chromium: .ci/run installs Debian's chromium package"
    probe = page.with_name(f"probe-{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},2000"]
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout
    found = re.search(r'data-check="([^"]*)"', dom)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
def test_report_html_opens_in_a_real_headless_chromium(lambdas, tmp_path):
    """The page to forward, opened as a reader opens it: in a real browser (Debian's Chromium, which .ci/run
    installs when missing), from a file, with no server and nothing beside it. Checked from inside the page:
    the verdict comes first and every figure loaded (natural width > 0). A screenshot stays in tmp_path."""
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "no chromium: .ci/run installs Debian's chromium package"
    out = tmp_path / "report"
    assert main(["analyze", lambdas, "--out", str(out), "--format", "csv"]) == 0
    alone = tmp_path / "forwarded"
    alone.mkdir()
    page = alone / "report.html"
    shutil.copy(out / "report.html", page)  # nothing beside it: the figures must be inside
    check = open_in_chromium(page, tmp_path)
    assert check["verdict"].startswith("On the test languages")
    assert len(check["images"]) >= 5 and all(width > 0 for width in check["images"]), check["images"]
    # at 1,280 px no table scrolls sideways and no section is empty, here and in the shipped reports
    assert check["overflowing"] == [] and check["sections"] == [], check
    for shipped in ("docs/study/report.html", "docs/scaling-study/report.html"):
        copy = tmp_path / shipped.replace("/", "-")
        shutil.copy(Path(__file__).resolve().parents[1] / shipped, copy)
        found = open_in_chromium(copy, tmp_path)
        assert found["overflowing"] == [] and found["sections"] == [], (shipped, found)
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report-screenshot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1280,3000", page.as_uri()],
                   capture_output=True, timeout=180)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_of_different_tasks_are_never_one_leaderboard(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _run_with(tmp_path / "a", [("a", {"lambda_": 0.0}, C.COMPLETED)])
    b = _run_with(tmp_path / "b", [("b", {"lambda_": 0.0, "task": "massive"}, C.COMPLETED)])
    assert main(["analyze", a, b, "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "runs of different tasks cannot be ranked together" in err and a in err and b in err
    assert err.count("\n") == 1


def test_bad_metric_lists_only_what_can_rank_and_a_bad_out_fails_before_the_work(lambdas, tmp_path, capsys):
    assert main(["analyze", lambdas, "--metric", "bogus", "--no-report"]) == 2
    err = capsys.readouterr().err
    valid = err.split("valid: ")[1]
    assert "dev_select" in valid and "test_" not in valid
    assert main(["analyze", lambdas, "--out", "/proc/version/x"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--out /proc/version/x: /proc/version is a file, not a folder" in err


def test_a_full_disk_while_writing_the_report_is_one_line_and_leaves_no_half_file(lambdas, tmp_path, capsys,
                                                                                   monkeypatch):
    """ENOSPC on the report's tables.json, written after report.md and the PNGs: one line naming --out, and
    the folder holds the earlier report exactly (no new report.md beside the old tables.json), with no
    staging folder left beside it."""
    import errno

    from alchemy_tune.results import run_dir as run_dir_module

    out = tmp_path / "report"
    assert main(["analyze", lambdas, "--out", str(out), "--no-report"]) == 0
    assert main(["analyze", lambdas, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    real = run_dir_module.write_bytes_atomic

    def full(path, data):
        if path.endswith("tables.json"):
            def half(target):  # the disk fills half-way through the file
                with open(target, "wb") as f:
                    f.write(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device", target)
            run_dir_module.atomic_write(*run_dir_module.resolve(path), half)
        return real(path, data)

    monkeypatch.setattr(run_dir_module, "write_bytes_atomic", full)
    assert main(["analyze", lambdas, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out}" in err and "No space left on device" in err
    assert f"nothing in {out} changed" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder left
    json.loads((out / "tables.json").read_text())


def test_the_reference_training_size_is_the_largest_by_number():
    """Sizes compare numerically: [50, 100, 200] keeps 200 as the reference (text order picked 100), and
    all the data (None) is larger than any size."""
    assert P._reference_value([50, 100, 200], "cfg_train_size") == 200
    assert P._reference_value([800, None, 50], "cfg_train_size") is None
    assert P._reference_value([25, 3], "cfg_proj_depth") == 3  # numeric, not text, order


@pytest.mark.slow
def test_the_browser_check_fails_on_a_table_too_wide_for_the_page(tmp_path):
    """The check above can fail: a planted 20-column table scrolls sideways at 1,280 px."""
    from alchemy_tune.analysis.report import write_html

    wide = "| " + " | ".join(f"column {i}" for i in range(20)) + " |\n|" + "---|" * 20 + "\n| " + \
        " | ".join("+0.0123 [-0.0456, +0.0789]" for _ in range(20)) + " |\n"
    page = write_html(tmp_path, f"# report\n\n## Verdict\n\nOn test languages ...\n\n## Wide\n\n{wide}")
    found = open_in_chromium(page, tmp_path)
    assert len(found["overflowing"]) == 1 and found["overflowing"][0].startswith("column 0")


def test_the_report_shows_each_figure_once_and_no_empty_section(lambdas, tmp_path):
    """The quick start's report: every figure is referenced once, and a section with nothing to show is one
    line of the run notes instead of a heading over "nothing"."""
    import re

    out = tmp_path / "report"
    assert main(["analyze", lambdas, "--out", str(out)]) == 0
    text = (out / "report.md").read_text(encoding="utf-8")
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert figures and len(figures) == len(set(figures)), figures
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert all(body.split("\n", 1)[1].strip() for body in sections)
    assert "_nothing to show_" not in text and "Nothing to show for: " in text
    for line in (line for line in text.splitlines() if line.startswith("| ")):
        assert line.count("|") - 1 <= 9, line  # at most 9 columns shown; the rest in csv/


def test_labels_name_only_the_settings_that_apply():
    """An AlchemyScale configuration ignores λ, plain fine-tuning ignores every URIEL setting, and a schedule's
    own settings say nothing under another schedule: none of them is part of a label."""
    columns = ["cfg_lambda", "cfg_lambda_schedule", "cfg_scale_interval", "cfg_uriel_features", "cfg_projection"]
    scale = {"cfg_lambda": 1.0, "cfg_lambda_schedule": "alchemyscale", "cfg_scale_interval": 100,
             "cfg_uriel_features": "geo", "cfg_projection": "linear"}
    assert P.label(scale, columns) == "lambda_schedule=alchemyscale, scale_interval=100, uriel_features=geo, " \
                                      "projection=linear"
    assert "lambda=" not in P.label(scale, columns) and "λ=" not in P.label(scale, columns)
    plain = {**scale, "cfg_lambda": 0.0, "cfg_lambda_schedule": "constant"}
    assert P.label(plain, columns) == "λ=0"
    constant = {**scale, "cfg_lambda_schedule": "constant"}
    assert P.label(constant, columns) == "λ=1, lambda_schedule=constant, uriel_features=geo, projection=linear"
