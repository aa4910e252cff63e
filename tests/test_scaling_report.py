"""The scaling section of `analyze` on synthetic runs with a known law (testing/synthetic.py): sizes as
numbers, the test split, the fits, Δ(n), the verdict and the two plots; one size gives no curve."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from alchemy_tune.analysis import analyze as A
from alchemy_tune.analysis import paired as P
from alchemy_tune.analysis import report as R
from alchemy_tune.analysis import scaling_report as SR
from alchemy_tune.cli import main
from testing.synthetic import make_scaling_run, make_run, scaling_truth


@pytest.fixture(scope="module")
def scaling_run(tmp_path_factory):
    return make_scaling_run(str(tmp_path_factory.mktemp("scaling")), n_langs=16, all_data=800, noise=0.005)


def test_all_the_data_is_its_real_count_and_the_reference_size_is_the_largest_number(scaling_run):
    runs = A.load_runs([scaling_run])
    sizes = runs.trials.groupby(runs.trials["cfg_train_size"].fillna(-1))["train_examples"].unique()
    assert {k: list(v) for k, v in sizes.items()} == {-1: [800.0], 25: [25.0], 50: [50.0], 100: [100.0],
                                                      200: [200.0], 400: [400.0]}
    tables, _, _ = SR.analyse(A.units(runs))
    assert sorted(tables["scaling"]["examples"].unique()) == [25, 50, 100, 200, 400, 800]
    # the by:train_size reference is numeric: 100 of [25, 50, 100], not "50" (a string sort); None is all
    assert P._reference_value([25, 50, 100], "cfg_train_size") == 100
    assert P._reference_value([25, None, 400], "cfg_train_size") is None


def test_the_scaling_section_reads_the_test_split_and_recovers_the_law(scaling_run):
    runs = A.load_runs([scaling_run])
    u = A.units(runs)
    tables, notes, verdict = SR.analyse(u)
    assert notes["scaling"].startswith("test split")
    plain = tables["scaling"].query("setting == 'λ=0' and role == 'unseen'").set_index("examples")["score"]
    # the test split's own values: the mean over the test languages of the law (offsets average to 0)
    test = runs.scores("test")
    expected = {n: test[test["role"] == "unseen"].merge(
        runs.trials[(runs.trials["train_examples"] == n) & (runs.trials["cfg_lambda"] == 0)][["run_id", "trial_id"]]
    )["value"].mean() for n in plain.index}
    assert plain.to_dict() == pytest.approx(expected)
    fits = tables["scaling_fits"].query("setting == 'λ=0' and role == 'unseen' and better == True").iloc[0]
    assert fits["form"] == "power law with a ceiling" and fits["extrapolation_ok"]
    assert fits["top_lo"] <= 0.6 <= fits["top_hi"] and fits["b_lo"] <= 0.5 <= fits["b_hi"]
    # Δ(n): it shrinks with n and changes sign at 100 examples per language (the truth)
    trend = tables["scaling_trend"].query("role == 'unseen'").iloc[0]
    assert trend["slope_hi"] < 0 and trend["p"] < 0.05
    assert trend["sign_change_at_lo"] <= 100 <= trend["sign_change_at_hi"]
    delta = tables["scaling_delta"].query("role == 'unseen'").set_index("examples")
    truth = {n: scaling_truth(n, 1.0) - scaling_truth(n, 0.0) for n in delta.index}
    covered = [delta.loc[n, "Δ_lo"] <= truth[n] <= delta.loc[n, "Δ_hi"] for n in delta.index]
    assert sum(covered) >= len(covered) - 1
    assert any(s.startswith("Scaling, λ=1 vs plain fine-tuning on test languages") and "Δ falls with data" in s
               and "the fitted Δ is 0 at about" in s and "better at 25, 50" in s for s in verdict)
    assert any(s.startswith("Scaling, plain fine-tuning (λ=0; fixed steps: 10 optimiser steps at every size)")
               for s in verdict)
    assert "fixed steps: 10 optimiser steps at every size" in notes["scaling"]
    # every per-size Δ reads one of the four ways, against the margin analyse was given
    assert set(delta["reading"]) <= {"better", "worse", "equivalent", "inconclusive"}
    assert delta.loc[25, "reading"] == "better" and delta.loc[800, "reading"] == "worse"


def test_a_fit_the_data_do_not_identify_shows_no_parameters(scaling_run):
    """λ=1's curve flattens (Δ shrinks as plain fine-tuning rises): its power law's a is not pinned down."""
    tables, _, _ = SR.analyse(A.units(A.load_runs([scaling_run])))
    fits = tables["scaling_fits"]
    loose = fits[~fits["identified"].astype(bool)]
    assert not loose.empty
    for _, row in loose.iterrows():
        assert row["note"].startswith("parameters not identified") and "none shown" in row["note"]
        names = ("top", "a", "b") if row["form"].startswith("power") else ("intercept", "per_e_fold")
        assert all(pd.isna(row[n]) and pd.isna(row[f"{n}_lo"]) for n in names)
    tight = fits[fits["identified"].astype(bool)]
    assert tight[["top", "top_lo", "top_hi"]].dropna().shape[0] >= 1


BANNED = ("did not help", "no effect", "did not change", "does not differ", "no trend")


def test_an_inconclusive_delta_and_trend_say_what_they_cannot_rule_out(tmp_path):
    """Noise far above the effect: Δ(n), its trend and the data efficiency are inconclusive, and the verdict
    says which effects remain possible instead of claiming none."""
    run = make_scaling_run(str(tmp_path / "noisy"), sizes=(25, 50, 100), noise=0.08, seed=3)
    tables, _, verdict = SR.analyse(A.units(A.load_runs([run])), margin=0.01)
    assert set(tables["scaling_delta"]["reading"]) == {"inconclusive"}
    assert set(tables["scaling_trend"]["reading"]) == {"inconclusive"}
    sentence = next(s for s in verdict if s.startswith("Scaling, λ=1 vs plain fine-tuning"))
    assert "cannot rule out" in sentence and "the trend is inconclusive" in sentence
    assert not any(b in s.lower() for s in verdict for b in BANNED)
    eff = tables["data_efficiency"].query("role == 'unseen'").iloc[0]
    assert eff["ratio_lo"] < 1 < eff["ratio_hi"] and eff["reading"].startswith("inconclusive")


def test_the_report_says_whether_steps_were_fixed_or_proportional_to_the_data():
    def units(rows):
        return SimpleNamespace(records={str(i): r for i, r in enumerate(rows)})

    sizes = (25.0, 100.0, 400.0)
    fixed = units([{"train_examples": n, "final_step": 200, "cfg_max_steps": 200, "cfg_epochs": 100} for n in sizes])
    assert SR.steps_regime(fixed, ["0", "1", "2"]) == "fixed steps: 200 optimiser steps at every size"
    epochs = units([{"train_examples": n, "final_step": n * 10 / 32 * 5, "cfg_max_steps": None, "cfg_epochs": 5}
                    for n in sizes])
    assert SR.steps_regime(epochs, ["0", "1", "2"]).startswith("steps proportional to the data (fixed epochs)")
    unread = units([{"train_examples": n, "cfg_max_steps": math.nan, "cfg_epochs": 5.0} for n in sizes])
    assert SR.steps_regime(unread, ["0", "1", "2"]) == "steps proportional to the data (fixed epochs: 5)"
    capped = units([{"train_examples": n, "cfg_max_steps": 200.0, "cfg_epochs": 100.0} for n in sizes])
    assert SR.steps_regime(capped, ["0", "1", "2"]).startswith("fixed steps: max_steps = 200")


def test_analyze_writes_the_scaling_section_with_its_two_plots(scaling_run, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["analyze", scaling_run, "--out", str(out)]) == 0
    capsys.readouterr()
    report = (out / "report.md").read_text()
    for name in SR.TABLES:
        assert f"## {R.title(name)}" in report
    assert (out / "scaling.png").is_file() and (out / "scaling_delta.png").is_file()
    assert "![Scaling" in report and "scaling_delta.png" in report
    saved = json.loads((out / "tables.json").read_text())
    assert any(s.startswith("Scaling, λ=1") for s in saved["verdict"])
    assert saved["tables"]["scaling_trend"][0]["sign_change_at"] == pytest.approx(100, rel=0.3)


def test_one_size_says_there_is_no_curve(tmp_path, capsys):
    run = make_run(str(tmp_path / "one"), n_trials=6)  # every trial at one training size
    runs = A.load_runs([run])
    assert runs.trials["train_examples"].nunique() == 1
    tables, notes, verdict = SR.analyse(A.units(runs))
    assert notes == {"scaling": SR.NO_CURVE} and verdict == [] and list(tables) == ["scaling"]
    assert tables["scaling"].empty
    out = tmp_path / "report"
    assert main(["analyze", run, "--out", str(out)]) == 0
    assert SR.NO_CURVE in (out / "report.md").read_text() and not (out / "scaling.png").exists()


def test_group_sizes_read_the_languages_train_size_sizes(tmp_path):
    """With ``group_langs``, a trial's size is the count of the languages ``train_size`` sizes: eng and fra
    keep 800 here, the other two seen languages get 25, 100 or 400 (the median of all four would be 412.5)."""
    run = make_scaling_run(str(tmp_path / "g"), sizes=(25, 100, 400), lambdas=(0.0,), seeds=(42,),
                           group=(("eng", "fra"), 800))
    runs = A.load_runs([run])
    assert sorted(runs.trials["train_examples"]) == [25, 100, 400]
    assert {tuple(g) for g in runs.trials["cfg_group_langs"]} == {("eng", "fra")}


def test_a_power_law_at_the_edge_of_its_exponent_range_is_said_to_have_no_ceiling():
    from alchemy_tune.analysis import scaling as S

    sizes = np.array([25, 50, 100, 200, 400], float)
    rng = np.random.default_rng(0)
    cube = (0.2 + 0.05 * np.log(sizes))[:, None, None] + rng.normal(0, 0.002, (5, 8, 3))  # log-linear: no ceiling
    c = S.curve(sizes, cube)
    rows = {r["form"]: r for r in SR._fit_rows("λ=0", "unseen", c)}
    assert rows["log-linear"]["better"] and "note" not in rows["log-linear"]
    assert c.fits["power law with a ceiling"]["params"][2] * np.log(16) < 0.1  # a straight line in ln n
    assert "no ceiling shows within these sizes" in rows["power law with a ceiling"]["note"]
    assert not rows["power law with a ceiling"]["identified"] and "b" not in rows["power law with a ceiling"]
