"""``alchemy-tune confirm``: choosing by the selection metric, fresh seeds, a linked run, real trials on Ray."""

from __future__ import annotations

import json

import pytest

from alchemy_tune.core import constants as C
from alchemy_tune.core.errors import UsageError
from alchemy_tune.cli import main
from alchemy_tune.analysis.confirm import plan
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.results.schema import read_trials
from alchemy_tune.results.writer import ResultsWriter
from alchemy_tune.core.settings import SearchSettings
from alchemy_tune.results.run_record import RunRecord
from testing.reports import make_report
from testing.searches import TINY

# (λ, seed, dev offset, test offset): λ=3 is best on dev (the selection metric), λ=1 on test
SOURCE = ((0.0, 1, 0.00, 0.00), (0.0, 2, 0.00, 0.00), (1.0, 1, 0.01, 0.30), (1.0, 2, 0.01, 0.30),
          (3.0, 1, 0.05, -0.2), (3.0, 2, 0.05, -0.2))


def _source_run(root, model: str, **fixed) -> str:
    run_dir = str(root / "search-1")
    RunRecord.new("search", run_id="search-1",
                  settings=SearchSettings(metric="dev_seen", max_concurrent=2, trials=6)).write(run_dir)
    writer = ResultsWriter(run_dir, "search-1")
    for i, (lam, seed, dev, test) in enumerate(SOURCE):
        config = TrialConfig.from_dict({**TINY, "model": model, "lr": 1e-3, "lambda": lam, "seed": seed,
                                        **fixed}).to_dict()
        report = make_report(1, offset=dev, status=C.COMPLETED)
        for info in report[C.LANGS].values():
            info["test"]["accuracy"] += test
        report["test_unseen"] += test
        writer.add_report(f"t{i}", config, report)
        writer.end_trial(f"t{i}", C.COMPLETED)
    writer.add_report("failed", {**config, "lambda": 9.0}, make_report(1, offset=0.9))
    writer.end_trial("failed", C.FAILED, error="boom")  # a failed trial is never chosen
    writer.flush()
    return run_dir


def test_plan_chooses_by_the_selection_metric_with_fresh_seeds(tmp_path):
    run = _source_run(tmp_path, "e5-small")
    p = plan(run, top=1, repeats=3)
    assert [c["config"]["lambda"] for c in p.chosen] == [3.0]  # best dev, although worst test
    assert p.chosen[0]["replicates"] == 2 and p.seeds == [3, 4, 5]  # above the source's seeds 1, 2
    assert [b["lambda"] for b in p.baselines] == [0.0]
    assert [(c["lambda"], c["seed"]) for c in p.configs] == [(3.0, 3), (3.0, 4), (3.0, 5), (0.0, 3), (0.0, 4),
                                                             (0.0, 5)]
    two = plan(run, top=2, repeats=1)
    assert [c["config"]["lambda"] for c in two.chosen] == [3.0, 1.0] and len(two.baselines) == 1


def test_confirmation_draws_fresh_data_seeds_and_the_baseline_shares_them(tmp_path):
    """The source trained every replicate on data seed 0: a confirmation on that subset would speak for one
    draw of the data only. Replicate r gets a fresh (seed, data seed) pair, the same for a configuration and
    its baseline, and the record and the printout name the data seeds."""
    from alchemy_tune.analysis.confirm import describe, link

    run = _source_run(tmp_path, "e5-small")
    p = plan(run, top=1, repeats=3)
    assert p.fresh_data and p.data_seeds == (1, 2, 3)  # above the source's data seed 0
    assert [(c["lambda"], c["seed"], c["data_seed"]) for c in p.configs] == [
        (3.0, 3, 1), (3.0, 4, 2), (3.0, 5, 3), (0.0, 3, 1), (0.0, 4, 2), (0.0, 5, 3)]
    assert "data_seed" not in p.chosen[0]["config"] and "data_seed" not in p.baselines[0]  # replicate settings
    assert "with seeds 3, 4, 5 and fresh data seeds 1, 2, 3" in describe(p)[0]
    record = link(p, 1, 3)["confirm"]
    assert record["data_seeds"] == [1, 2, 3] and record["fresh_data"] is True
    assert plan(run, top=1, repeats=2, first_data_seed=10).data_seeds == (10, 11)
    # a second confirmation draws data seeds no earlier one drew
    RunRecord.new("confirm", run_id="confirm-a", source_run={"run_id": "search-1", "run_dir": run},
                  confirm=record).write(str(tmp_path / "confirm-search-1"))
    again = plan(run, top=1, repeats=2)
    assert again.seeds == [6, 7] and again.data_seeds == (4, 5)


def test_with_all_the_data_and_no_control_the_data_seed_is_kept_and_said_so(tmp_path):
    run = _source_run(tmp_path, "e5-small", train_size=None, data_seed=7)
    p = plan(run, top=1, repeats=2)
    assert not p.fresh_data and p.data_seeds == (7, 7) and {c["data_seed"] for c in p.configs} == {7}
    from alchemy_tune.analysis.confirm import describe

    assert "data seed 7 (all the data, no control: nothing to redraw)" in describe(p)[0]
    with pytest.raises(UsageError, match="^--data-seed 3: the configurations train on all the data"):
        plan(run, top=1, repeats=2, first_data_seed=3)


def test_a_second_confirmation_draws_seeds_no_earlier_one_used(tmp_path):
    run = _source_run(tmp_path, "e5-small")
    RunRecord.new("confirm", run_id="confirm-a", source_run={"run_id": "search-1", "run_dir": run},
                  confirm={"top": 1, "repeats": 3, "seeds": [3, 4, 5]}).write(str(tmp_path / "confirm-search-1"))
    RunRecord.new("confirm", run_id="confirm-b", source_run={"run_id": "another-search"},
                  confirm={"seeds": [30]}).write(str(tmp_path / "confirm-another"))  # another source's: not counted
    assert plan(run, top=1, repeats=2).seeds == [6, 7]


def test_damaged_neighbour_records_never_break_a_healthy_runs_confirmation(tmp_path, capsys):
    """Run folders beside the source whose alchemy_run.json is nested 100,000 levels deep, a list, or a
    confirmation record with mistyped fields: `confirm --dry-run` of the healthy run still plans (exit 0),
    the earlier confirmation beside them still counts, and the damaged ones are named once."""
    run = _source_run(tmp_path, "e5-small")
    RunRecord.new("confirm", run_id="confirm-a", source_run={"run_id": "search-1", "run_dir": run},
                  confirm={"top": 1, "repeats": 3, "seeds": [3, 4, 5]}).write(str(tmp_path / "confirm-search-1"))
    for name, text in (("deep", "[" * 100_000 + "]" * 100_000), ("a-list", "[1, 2, 3]"),
                       ("mistyped", '{"kind": "confirm", "source_run": {"run_id": "search-1"}, '
                                    '"confirm": {"seeds": "three"}}'),
                       ("wrong-shape", '{"kind": "confirm", "source_run": "search-1"}')):
        (tmp_path / name).mkdir()
        (tmp_path / name / "alchemy_run.json").write_text(text)
    assert main(["confirm", run, "--top", "1", "--repeats", "2", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "seeds 6, 7" in out, out
    assert err.count("skipped") == 1 and "damaged" in err
    assert all(n in err for n in ("deep", "a-list", "mistyped", "wrong-shape"))
    assert plan(run, top=1, repeats=2).seeds == [6, 7]  # the healthy earlier confirmation still counts


def test_a_configuration_is_ranked_only_when_all_its_replicates_completed(tmp_path):
    """λ=3 has the best mean dev score over the replicates that completed, but one of its two was pruned:
    it is not ranked (its mean would be over fewer seeds than the others'), and the plan says so."""
    run = _source_run(tmp_path, "e5-small")
    import dataclasses

    record = RunRecord.read(run)
    dataclasses.replace(record, settings=SearchSettings(metric="dev_seen", max_concurrent=2, trials=3,
                                                        repeats=2)).write(run)
    writer = ResultsWriter(run, "search-1")
    writer.end_trial("t5", C.PRUNED)  # λ=3, seed 2
    writer.flush()
    p = plan(run, top=1, repeats=1)
    assert [c["config"]["lambda"] for c in p.chosen] == [1.0]
    assert p.notes == ("1 configuration(s) with fewer than 2 completed replicates are not ranked",)


@pytest.mark.parametrize("argv, message", [
    (["--top", "0"], "--top: must be a positive integer"),
    (["--repeats", "0"], "--repeats: must be a positive integer"),
    (["--seed", "2"], "overlap seeds the source run or an earlier confirmation of it used"),
    (["--data-seed", "0"], "--data-seed 0: data seeds 0..2 overlap data seeds the source run or an earlier"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    run = _source_run(tmp_path, "e5-small")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["confirm", run, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.slow
def test_confirm_runs_the_best_configuration_and_its_baseline_end_to_end(tmp_path, tiny_encoder_dir, capsys):
    import ray

    run = _source_run(tmp_path, tiny_encoder_dir)
    try:
        code = main(["confirm", run, "--top", "1", "--repeats", "2", "--num-cpus", "2"])
    finally:
        ray.shutdown()
    out = capsys.readouterr().out
    assert code == 0, out
    confirm_dir = tmp_path / "confirm-search-1"
    meta = json.loads((confirm_dir / "alchemy_run.json").read_text())
    assert meta["kind"] == "confirm" and meta["source_run"]["run_id"] == "search-1"
    assert meta["source_run"]["run_dir"] == run and meta["confirm"]["seeds"] == [3, 4]
    assert meta["confirm"]["data_seeds"] == [1, 2] and "fresh data seeds 1, 2" in out
    assert [c["lambda"] for c in meta["confirm"]["configurations"]] == [3.0]
    rows = read_trials(str(confirm_dir)).to_pylist()
    assert sorted((r["cfg_lambda"], r["cfg_seed"], r["cfg_data_seed"], r["status"]) for r in rows) == [
        (0.0, 3, 1, C.COMPLETED), (0.0, 4, 2, C.COMPLETED), (3.0, 3, 1, C.COMPLETED), (3.0, 4, 2, C.COMPLETED)]
    assert all(r["cfg_model"] == tiny_encoder_dir for r in rows)
    # the test-language scores and the verdict are reported
    assert "confirmed test scores" in out and "test_unseen" in out and "On the test languages" in out
    # analyze bases its verdict on the confirmation run
    from alchemy_tune.analysis import analyze as A
    from alchemy_tune.analysis.report import compute

    tables, _, verdict = compute(A.load_runs([str(confirm_dir)]), top=5, importance="ped-anova")
    assert "confirmed" in verdict[0], verdict
    assert len(tables["confirmed"]) == 1 and tables["confirmed"]["seeds_unseen"].tolist() == [2]
