"""The verdict's four readings on synthetic runs, and one checkpoint rule for the two twins of a pair."""

from __future__ import annotations

import random

import pytest

from alchemy_tune.analysis import analyze as A
from alchemy_tune.analysis import report as R
from alchemy_tune.trial.config import TrialConfig

SEEN = tuple((c, c, True, "seen") for c in ("eng", "fra", "rus", "hin", "ara", "zho"))
TEST = tuple((c, c, False, "unseen") for c in ("spa", "por", "ita", "deu", "pol", "tur", "ind", "vie", "swh",
                                               "jpn", "kor", "ben"))
LANGS = SEEN + TEST
SEEDS = (42, 43, 44, 45, 46)
BANNED = ("did not help", "no effect", "did not change", "does not differ", "no difference")


def _config(**values) -> dict:
    return TrialConfig.from_dict({"lambda": 0.0, **values}).to_dict()


def _verdict(tmp_path, gain: float, noise: float) -> list[str]:
    """A run of plain fine-tuning and λ = 1 over 5 seeds whose test-language scores differ by ``gain`` plus
    independent noise of sd ``noise`` per language and seed."""
    from testing.synthetic import write_scored_run

    rng, trials = random.Random(1), []
    for seed in SEEDS:
        base = {lang: 0.5 + random.Random(f"{lang}/{seed}").gauss(0, 0.03) for lang, *_ in LANGS}
        for lam, shift in ((0.0, 0.0), (1.0, gain)):
            scores = {lang: base[lang] + (shift if role == "unseen" else 0.0) + rng.gauss(0, noise)
                      for lang, _, _, role in LANGS}
            trials.append((_config(**{"lambda": lam, "seed": seed}), scores))
    runs = A.load_runs([write_scored_run(str(tmp_path / "run"), LANGS, trials)])
    _, _, verdict = R.compute(runs, top=5, importance="ped-anova")
    return verdict


def test_no_change_with_small_noise_reads_equivalent_within_the_margin(tmp_path):
    first = _verdict(tmp_path, 0.0, 0.002)[0]
    assert "test languages" in first and "is equivalent to plain fine-tuning within ±0.010" in first
    assert "90% interval" in first


def test_no_change_with_large_noise_reads_inconclusive_and_never_no_effect(tmp_path):
    verdict = _verdict(tmp_path, 0.0, 0.05)
    first = verdict[0]
    assert "inconclusive" in first and "cannot be ruled out" in first
    assert "equivalence within ±0.010 is not shown" in first
    for sentence in verdict:
        assert not any(b in sentence.lower() for b in BANNED), sentence


def test_a_gain_of_three_points_reads_better(tmp_path):
    first = _verdict(tmp_path, 0.03, 0.004)[0]
    assert "is better than plain fine-tuning" in first and "Holm-corrected p" in first


def test_analyze_margin_overrides_and_is_validated(tmp_path):
    from testing.synthetic import write_scored_run

    from alchemy_tune.core.errors import UsageError

    trials = [(_config(**{"lambda": lam, "seed": s}), {lang: 0.5 for lang, *_ in LANGS}) for s in SEEDS
              for lam in (0.0, 1.0)]
    run = write_scored_run(str(tmp_path / "run"), LANGS, trials)
    assert A.load_runs([run], margin=0.02).margin == 0.02
    assert A.load_runs([run]).margin_source.startswith("the default for accuracy")
    with pytest.raises(UsageError, match="--margin"):
        A.load_runs([run], margin=2.0)
    _, _, verdict = R.compute(A.load_runs([run]), top=5, importance="ped-anova")
    assert "identical scores" in verdict[0]  # every paired score equal: no zero-width interval


def test_twins_whose_best_steps_differ_are_scored_at_the_one_rules_step(tmp_path):
    """Acceptance: the plain twin's dev peaks at step 1, the URIEL configuration's at step 2. The report's
    comparison scores both at the final step (2) — the test scores set there give Δ = +0.02 exactly — and
    the sensitivity table shows each trial's own best step, which mixes steps 1 and 2 and says so."""
    from testing.synthetic import write_stepped_run

    trials = []
    for seed in SEEDS:
        base = {lang: 0.5 + random.Random(f"{lang}/{seed}").gauss(0, 0.03) for lang, *_ in LANGS}
        dev_up = {lang: v + 0.01 for lang, v in base.items()}
        plain = [(dev_up, {lang: v - 0.05 for lang, v in base.items()}),  # step 1: best dev, test far lower
                 (base, base)]
        uriel = [(base, {lang: v - 0.05 for lang, v in base.items()}),
                 (dev_up, {lang: v + 0.02 for lang, v in base.items()})]  # step 2: best dev
        trials += [(_config(**{"lambda": 0.0, "seed": seed}), plain), (_config(**{"lambda": 1.0, "seed": seed}), uriel)]
    run = write_stepped_run(str(tmp_path / "run"), LANGS, trials)
    runs = A.load_runs([run])
    assert runs.at == "final"
    t = runs.trials
    assert set(t.loc[t["cfg_lambda"] == 0, "best_step"]) == {1} and set(t.loc[t["cfg_lambda"] == 1, "best_step"]) == {2}
    tables, _, _ = R.compute(runs, top=5, importance="ped-anova")
    row = tables["comparisons"].iloc[0]
    assert row["Δunseen"] == pytest.approx(0.02, abs=1e-12) and not row.get("caveats_unseen")
    sens = tables["sensitivity"].set_index("rule")
    assert sens.loc["final step (both twins)", "Δunseen"] == pytest.approx(0.02, abs=1e-12)
    own = sens.loc["each trial's own best step"]
    assert own["Δunseen"] == pytest.approx(0.07, abs=1e-12)  # 0.02 against the plain twin's step-1 −0.05
    assert "different steps in 5 of 5" in own["caveats_unseen"]
