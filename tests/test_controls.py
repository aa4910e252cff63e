"""URIEL controls (shuffled, random) and the two instruments that separate typology from regularisation:
the "URIEL vs its control" comparison and Δ against typological distance."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from alchemy_tune.core.errors import UsageError
from alchemy_tune.languages import controls
from alchemy_tune.languages.codes import to_uriel
from alchemy_tune.languages.vectors import load_table
from alchemy_tune.tasks import TASKS, TaskOptions, declared_roles
from alchemy_tune.trial.config import TrialConfig


def _task_codes(name: str) -> list[str]:
    seen, val, test = declared_roles(name, TaskOptions())
    return [to_uriel(lang) for lang in seen + val + test]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_shuffled_is_a_derangement_of_every_tasks_languages_and_reproducible(task):
    codes = _task_codes(task)
    distinct = list(dict.fromkeys(codes))
    ids = np.array([[distinct.index(c)] for c in codes], dtype=np.float32)  # each row names its vector
    observed = np.ones_like(ids, dtype=bool)
    for seed in (0, 1, 7):
        got = controls.apply("shuffled", ids, observed, codes, seed)
        assert all(got[i, 0] != ids[i, 0] for i in range(len(codes))), "a language kept its own vector"
        # languages that share one vector (twins, macro-language members) move together
        assert all(got[i, 0] == got[j, 0] for i in range(len(codes)) for j in range(len(codes))
                   if codes[i] == codes[j])
        assert np.array_equal(got, controls.apply("shuffled", ids, observed, codes, seed))
    assert not np.array_equal(controls.apply("shuffled", ids, observed, codes, 0),
                              controls.apply("shuffled", ids, observed, codes, 1)) or len(distinct) <= 2


def test_random_keeps_each_features_mean_spread_and_the_missing_cells():
    codes = list(dict.fromkeys(_task_codes("sib200")))
    table, spec = load_table("lang2vec"), "syntax_average+geo"
    real, observed = table.vectors(spec, codes, "zero"), table.observed(spec, codes)
    drawn = controls.apply("random", real, observed, codes, 0)
    assert np.array_equal(drawn[~observed], real[~observed])  # the same missing cells, filled alike
    z, ratios = [], []
    for j in range(real.shape[1]):
        pool, new = real[observed[:, j], j], drawn[observed[:, j], j]
        if pool.size < 30 or pool.std() == 0:
            continue
        assert set(np.unique(new)) <= set(np.unique(pool))  # a binary feature stays binary
        z.append((new.mean() - pool.mean()) / (pool.std() / math.sqrt(pool.size)))  # ~ N(0, about 1.4)
        ratios.append(new.std() / pool.std())
    # within sampling error over the features: means centred on the real ones, spreads kept
    assert len(z) > 50 and abs(np.mean(z)) < 0.5 and np.std(z) < 2.0
    assert 0.9 < np.median(ratios) < 1.1
    # no vector says which language it is: a language's drawn vector is no nearer its own than another's
    own = np.mean([np.abs(drawn[i] - real[i])[observed[i]].mean() for i in range(len(codes))])
    other = np.mean([np.abs(drawn[i] - real[(i + 1) % len(codes)])[observed[i]].mean() for i in range(len(codes))])
    assert abs(own - other) < 0.05


def test_a_control_needs_the_uriel_loss_and_a_known_name():
    with pytest.raises(UsageError, match="uriel_control: shuffled with lambda 0 trains no URIEL loss"):
        TrialConfig.from_dict({"lambda": 0, "uriel_control": "shuffled"})
    with pytest.raises(UsageError, match="uriel_control: 'scrambled' is not one of none, shuffled, random"):
        TrialConfig.from_dict({"uriel_control": "scrambled"})
    assert TrialConfig.from_dict({"lambda": 1, "lambda_schedule": "alchemyscale",
                                  "uriel_control": "random"}).uriel_control == "random"
    with pytest.raises(UsageError, match="at least two languages with different URIEL vectors"):
        controls.apply("shuffled", np.zeros((2, 3), np.float32), np.ones((2, 3), bool), ["eng", "eng"], 0)


@pytest.mark.parametrize("control", ["shuffled", "random"])
def test_a_trial_with_each_control_trains_and_its_run_says_which(control, tmp_path, tiny_encoder_dir):
    from alchemy_tune.results.schema import read_trials
    from testing.cli import run_cli

    out = tmp_path / "run"
    result = run_cli("train", "--model", tiny_encoder_dir, "--num-layers", "none", "--max-steps", "2",
                     "--train-size", "8", "--dev-size", "6", "--test-size", "6", "--batch-size", "8",
                     "--lambda", "1", "--uriel-control", control, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert read_trials(str(out)).to_pandas()["cfg_uriel_control"].tolist() == [control]


# --------------------------------------------------------------------------- the analysis
SEEN = (("eng", "eng", True, "seen"), ("fra", "fra", True, "seen"), ("rus", "rus", True, "seen"),
        ("hin", "hin", True, "seen"), ("arb", "ara", True, "seen"), ("cmn", "zho", True, "seen"))


def _base(lang: str, seed: int) -> float:
    return 0.4 + random.Random(f"{lang}/{seed}").gauss(0, 0.03)  # shared by every configuration of a seed


def test_the_control_table_recovers_a_known_gain_over_the_shuffled_control(tmp_path):
    from alchemy_tune.analysis import analyze as A
    from alchemy_tune.analysis.controls import control_comparisons
    from testing.synthetic import write_scored_run

    test = tuple((code, code, False, "unseen") for code in ("spa", "por", "ita", "deu", "pol", "tur", "ind",
                                                              "vie", "swh", "jpn", "kor", "ben"))
    langs, truth = SEEN + test, 0.03
    trials, rng = [], random.Random(0)
    for seed in (42, 43, 44):
        for config, gain in (({"lambda": 0.0}, 0.0), ({"lambda": 1.0}, truth),
                             ({"lambda": 1.0, "uriel_control": "shuffled"}, 0.0)):
            scores = {lang: _base(lang, seed) + (gain if role == "unseen" else 0.0) + rng.gauss(0, 0.004)
                      for lang, _, _, role in langs}
            trials.append(({**TrialConfig.from_dict({**config, "seed": seed}).to_dict()}, scores))
    run = write_scored_run(str(tmp_path / "run"), langs, trials)
    table, note = control_comparisons(A.units(A.load_runs([run])))
    assert len(table) == 1 and table.iloc[0]["control"] == "shuffled" and "URIEL vs its control" in note
    row = table.iloc[0]
    assert row["Δunseen"] > 0 and row["Δunseen_lo"] <= truth <= row["Δunseen_hi"] and row["Δunseen_lo"] > 0
    assert row["Δseen_lo"] <= 0 <= row["Δseen_hi"]


def test_the_meta_regression_recovers_a_gain_that_falls_with_distance(tmp_path):
    from alchemy_tune.analysis import analyze as A
    from alchemy_tune.analysis import typology as T
    from alchemy_tune.analysis.controls import distance_tables
    from alchemy_tune.tasks.flores200 import HELD_OUT
    from testing.synthetic import write_scored_run

    spec = TrialConfig().uriel_features
    held = [lang for lang in HELD_OUT if lang not in ("arb_Latn", "zho_Hant")][:61]
    new_lang, held = held[-1], held[:-1]  # a language the fit never sees
    seen = {lang: code for lang, code, _, _ in SEEN}
    codes = {lang: to_uriel(lang) for lang in held + [new_lang]}
    cov, _ = T.distances(codes, seen, spec, "lang2vec", "zero", {}, {})
    d = dict(zip(cov["lang"], cov["uriel_nearest"]))
    gain = {lang: 0.06 - 0.4 * d[lang] for lang in codes}
    langs = SEEN + tuple((lang, codes[lang], False, "unseen") for lang in held)
    trials, rng = [], random.Random(1)
    for seed in (42, 43, 44):
        for lam in (0.0, 1.0):
            scores = {lang: _base(lang, seed) + (gain.get(lang, 0.0) if lam else 0.0) + rng.gauss(0, 0.003)
                      for lang, _, _, _ in langs}
            trials.append((TrialConfig.from_dict({"lambda": lam, "seed": seed}).to_dict(), scores))
    runs = A.load_runs([write_scored_run(str(tmp_path / "run"), langs, trials)])
    u = A.units(runs)
    key = next(k for k in u.configs.index if not u.plain[k])
    table, fit, notes = distance_tables(u, key, runs.langs)
    assert len(table) == len(held) and set(fit["covariate"]) >= {"uriel_nearest", "genetic", "geographic"}
    nearest = fit.set_index("covariate").loc["uriel_nearest"]
    assert nearest["slope_hi"] < 0 and nearest["slope_lo"] <= -0.4 <= nearest["slope_hi"]
    model = T.fit(table["uriel_nearest"].to_numpy(float), table["delta"].to_numpy(float))
    _, lo, hi = T.predict(model, d[new_lang])
    assert lo <= gain[new_lang] <= hi
