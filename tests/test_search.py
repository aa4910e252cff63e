"""The search end to end: bad input at the CLI, every sampler on a real study, a real search with the real
trial loop (tiny encoder) including a diverging trial, and a multi-objective search."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import optuna
import pytest

from alchemy_tune import constants as C
from alchemy_tune.cli import main
from alchemy_tune.errors import UsageError
from alchemy_tune.optuna_searcher import CONFIG_ATTR, RAY_ID_ATTR, SAMPLERS, StudyHandle, build_sampler
from alchemy_tune.search import JOURNAL, SearchRequest, run_search
from alchemy_tune.space import load_space

TESTS = Path(__file__).resolve().parent
TINY = dict(task="bible-genre", train_size=24, dev_size=12, test_size=12, seen=["eng", "fra", "deu"],
            unseen=["spa", "rus"], batch_size=8, epochs=1.0, evals_per_epoch=3, max_length=48, num_layers=None,
            device="cpu", threads=1)


def write_space(tmp_path: Path, search: dict, params: dict, fixed: dict | None = None, name="space.yaml") -> str:
    data = {"search": search, **(fixed or {}), **params}
    path = tmp_path / name
    path.write_text(json.dumps(data))  # JSON is YAML
    return str(path)


@pytest.fixture
def ray_cleanup():
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def scripted_workers(monkeypatch):
    """Ray workers started after this can import the scripted trials in tests/scripted_trials.py."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))


def cli_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


# ----------------------------------------------------------------------------- bad input
def test_bad_flags_and_spaces_are_one_line_exit_2(tmp_path, capsys):
    assert "--trials" in cli_error(capsys, ["--trials", "0", "--dry-run"])
    assert "'annealing'" in cli_error(capsys, ["--trials", "2", "--sampler", "annealing", "--dry-run"])
    assert "'early'" in cli_error(capsys, ["--trials", "2", "--pruner", "early", "--dry-run"])
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("search: {trials: 2\nlr: [")
    assert str(bad_yaml) in cli_error(capsys, ["--space", str(bad_yaml), "--dry-run"])
    unknown = write_space(tmp_path, {"trials": 2}, {"learning_rate": {"type": "float", "low": 0.1, "high": 0.2}})
    assert "learning_rate" in cli_error(capsys, ["--space", unknown, "--dry-run"])
    inverted = write_space(tmp_path, {"trials": 2}, {"lr": {"type": "float", "low": 0.1, "high": 0.01}})
    assert "lr" in cli_error(capsys, ["--space", inverted, "--dry-run"])
    # several objectives cannot be pruned by an Optuna pruner
    multi = write_space(tmp_path, {"trials": 2, "objectives": [["dev_seen", "max"], ["dev_val", "max"]],
                                   "sampler": "nsga2"}, {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}})
    assert "--pruner" in cli_error(capsys, ["--space", multi, "--pruner", "median", "--dry-run"])
    # test-language dev data chooses only by name; replicates need a pruner that sees configurations
    assert "oracle_dev_unseen" in cli_error(capsys, ["--trials", "2", "--metric", "dev_unseen", "--dry-run"])
    assert "test data" in cli_error(capsys, ["--trials", "2", "--metric", "test_select", "--dry-run"])
    assert "--repeats" in cli_error(capsys, ["--trials", "2", "--repeats", "0", "--dry-run"])
    assert "ASHA" in cli_error(capsys, ["--trials", "2", "--repeats", "2", "--pruner", "asha", "--dry-run"])
    assert "not a run" in cli_error(capsys, ["resume", str(tmp_path)])
    assert "no such directory" in cli_error(capsys, ["resume", str(tmp_path / "nope")])


def test_dry_run_shows_the_plan_of_the_default_space(capsys):
    assert main(["--trials", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "trials: 3 (sampled" in out and "default.yaml" in out and "lr: log float" in out


def test_search_runs_as_a_plain_script_like_ray_submit(tmp_path):
    """`ray submit` copies search.py alone to the head node's home and runs `python ~/search.py ARGS`."""
    import shutil
    import subprocess
    import sys

    source = TESTS.parent / "alchemy_tune" / "search.py"
    shutil.copy(source, tmp_path / "search.py")
    copied = subprocess.run([sys.executable, "search.py", "--trials", "2", "--dry-run"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    assert "trials: 2 (sampled" in copied.stdout
    in_place = subprocess.run([sys.executable, str(source), "--trials", "0"], capture_output=True, text=True,
                              timeout=120)
    assert in_place.returncode == 2 and "--trials" in in_place.stderr


def test_gpus_on_a_machine_without_them_fail_fast(tmp_path, capsys, ray_cleanup):
    err = cli_error(capsys, ["--trials", "1", "--gpus-per-trial", "1", "--num-cpus", "1",
                             "--storage", str(tmp_path), "--name", "g"])
    assert "--gpus-per-trial 1" in err and "0 GPU" in err
    assert not (tmp_path / "g").exists()  # nothing was started


def test_unreachable_address_is_a_usage_error(tmp_path, capsys, ray_cleanup):
    err = cli_error(capsys, ["--trials", "1", "--address", "127.0.0.1:1", "--storage", str(tmp_path)])
    assert "127.0.0.1:1" in err


# ----------------------------------------------------------------------------- samplers
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_drives_a_journal_study(tmp_path, sampler):
    params = {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
              "lambda": {"type": "categorical", "choices": [0, 1, 10]},
              "batch_size": {"type": "int", "low": 8, "high": 32, "step": 8}}
    if sampler in ("grid", "bruteforce"):
        params["lr"] = {"type": "categorical", "choices": [1e-4, 1e-3]}
    objectives = [["dev_seen", "max"], ["dev_val", "max"]] if sampler == "nsga2" else None
    space = load_space(write_space(tmp_path, {"sampler": sampler, "objectives": objectives}, params))
    journal = tmp_path / JOURNAL
    handle = StudyHandle(str(journal), objectives=objectives or [("dev_select", "max")], sampler=sampler,
                         pruner="none", seed=3, n_startup_trials=2)
    grid = space.grid() if sampler == "grid" else None
    seen = []
    for i in range(6):
        if grid is not None:
            handle.study.enqueue_trial(grid[i])
        config = handle.ask(f"ray{i}", space)
        seen.append(json.dumps(config, sort_keys=True))
        assert set(config) >= {"lr", "lambda", "batch_size"}
        score = -abs(math.log10(config["lr"]) + 3) + config["lambda"] / 100
        handle.finish(f"ray{i}", {"dev_seen": score + 0.1, "dev_val": score, "dev_select": score,
                                  C.STATUS: C.COMPLETED})
    if sampler in ("grid", "bruteforce"):
        assert len(set(seen)) == 6  # exhaustive samplers never repeat a configuration
    # A new process (a restarted driver) finds the same trials, configs and Ray ids in the journal.
    again = optuna.load_study(study_name="alchemy-tune",
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(str(journal))))
    trials = again.get_trials()
    assert [t.user_attrs[RAY_ID_ATTR] for t in trials] == [f"ray{i}" for i in range(6)]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert [json.dumps(t.user_attrs[CONFIG_ATTR], sort_keys=True) for t in trials] == seen


def test_tpe_uses_constant_liar_only_under_concurrency():
    assert build_sampler("tpe", seed=0, concurrent=4)._constant_liar is True
    assert build_sampler("tpe", seed=0, concurrent=1)._constant_liar is False
    with pytest.raises(UsageError, match="'sobol'"):
        build_sampler("sobol", seed=0)


def test_a_trial_is_told_once(tmp_path):
    space = load_space(write_space(tmp_path, {}, {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}}))
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner="none", seed=0)
    handle.ask("a", space)
    assert handle.finish("a", {"dev_unseen": 0.5, C.STATUS: C.COMPLETED}) == C.COMPLETED
    assert handle.finish("a", {"dev_unseen": 0.9, C.STATUS: C.COMPLETED}) is None
    assert handle.study.trials[0].value == 0.5


# ----------------------------------------------------------------------------- real searches
@pytest.mark.slow
def test_search_with_the_real_trial_records_completed_and_diverged(tmp_path, tiny_encoder_dir, ray_cleanup,
                                                                   capsys):
    from alchemy_tune.results import read_metrics, read_trials

    # grid over λ: 0 trains normally, 1e39 makes the first loss infinite
    space = write_space(tmp_path, {"sampler": "grid", "pruner": "median", "max_concurrent": 2, "seed": 0},
                        {"lambda": {"type": "categorical", "choices": [0, 1.0e39]}},
                        {**TINY, "model": tiny_encoder_dir, "lr": 1e-3})
    outcome = run_search(SearchRequest(space_path=space, storage=str(tmp_path / "runs"), name="real", num_cpus=2,
                                       settings={"trials": 5}, progress_interval_s=1000))
    run_dir = tmp_path / "runs" / "real"
    assert outcome.counts == {C.COMPLETED: 1, C.DIVERGED: 1}  # the grid has 2 points, so 2 trials, not 5
    assert outcome.best[0]["config"]["lambda"] == 0
    meta = json.loads((run_dir / "alchemy_run.json").read_text())
    assert meta["kind"] == "search" and meta["sampler"] == "grid" and meta["objectives"] == [["dev_select", "max"]]
    assert meta["oracle"] is False and meta["repeats"] == 1
    trials = {r["cfg_lambda"]: r for r in read_trials(str(run_dir)).to_pylist()}
    assert trials[0]["status"] == C.COMPLETED and trials[0]["n_reports"] == 3
    assert trials[1e39]["status"] == C.DIVERGED and "non-finite" in trials[1e39]["error"]
    assert trials[0]["cpus"] == 1.0 and trials[0]["wall_seconds"] > 0
    # without repeats every trial is its own configuration (its Optuna trial number), replicate 0
    assert sorted(r["config_id"] for r in trials.values()) == ["0", "1"]
    assert {r["replicate"] for r in trials.values()} == {0}
    assert {(r["selection_metric"], r["oracle"]) for r in trials.values()} == {("dev_select", False)}
    metrics = read_metrics(str(run_dir)).to_pandas()
    assert set(metrics["lang"]) == {"eng", "fra", "deu", "spa", "rus"}
    # each trial's TensorBoard events are under its own folder in the run directory
    events = list(run_dir.glob("*/tensorboard/events.out.tfevents.*"))
    assert len(events) == 2
    study = optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / JOURNAL))))
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "FAIL"]
    out = capsys.readouterr().out
    assert "diverged" in out and "1 completed" in out


@pytest.mark.slow
def test_multi_objective_search_returns_a_pareto_front(tmp_path, scripted_workers, ray_cleanup):
    space = write_space(tmp_path, {"sampler": "nsga2", "pruner": "none", "max_concurrent": 2, "seed": 1,
                                   "objectives": [["dev_seen", "max"], ["dev_val", "max"]]},
                        {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                         "lambda": {"type": "categorical", "choices": [0, 1, 10]}})
    outcome = run_search(SearchRequest(space_path=space, storage=str(tmp_path / "runs"), name="mo", num_cpus=2,
                                       settings={"trials": 6}, trial_fn="scripted_trials:trade_off_trial",
                                       progress_interval_s=1000))
    assert outcome.counts == {C.COMPLETED: 6}
    front = outcome.best
    assert front and all(len(b["values"]) == 2 for b in front)
    # no member of the front is dominated by another trial of the study
    study = optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs" / "mo" / JOURNAL))))
    values = [t.values for t in study.trials]
    for b in front:
        assert not any(v[0] >= b["values"][0] and v[1] >= b["values"][1] and v != b["values"] for v in values)


def test_a_reopened_study_does_not_replay_its_seeded_draws(tmp_path):
    """After a driver dies, the resumed search re-opens the journal: its sampler must continue, not restart."""
    from alchemy_tune.optuna_searcher import StudyHandle

    def draw(handle, n):
        values = []
        for _ in range(n):
            trial = handle.study.ask()
            values.append(trial.suggest_float("lr", 1e-5, 1e-1, log=True))
            handle.study.tell(trial, 0.0)
        return values

    journal = str(tmp_path / "study.journal")
    make = lambda: StudyHandle(journal, objectives=[("dev_unseen", "max")], sampler="random",  # noqa: E731
                               pruner="none", seed=0)
    first = draw(make(), 3)
    again = draw(make(), 3)  # a new handle on the same journal, as `alchemy-tune resume` makes
    assert not set(first) & set(again)
    fresh = draw(StudyHandle(str(tmp_path / "other.journal"), objectives=[("dev_unseen", "max")],
                             sampler="random", pruner="none", seed=0), 3)
    assert fresh == first  # a new study with the same seed still reproduces the same draws


def test_an_oracle_search_says_so_in_its_summary_and_progress_lines(capsys):
    from alchemy_tune.progress import metric_label
    from alchemy_tune.search import SearchOutcome
    from alchemy_tune.search_cli import print_outcome

    best = [{"number": 2, "ray_trial_id": "abc", "values": [0.5], "config": {"lr": 1e-3}}]
    print_outcome(SearchOutcome(run_dir="runs/x", counts={C.COMPLETED: 3}, best=best,
                                metrics=(C.ORACLE_DEV_UNSEEN,), oracle=True))
    assert "ORACLE: this search selected on the test languages' own dev data" in capsys.readouterr().out
    print_outcome(SearchOutcome(run_dir="runs/x", counts={C.COMPLETED: 3}, best=best, metrics=(C.SELECT,),
                                repeats=3))
    out = capsys.readouterr().out
    assert "ORACLE" not in out and "mean over 3 replicates of dev_select: 0.5000" in out
    assert "ORACLE" in metric_label(C.ORACLE_DEV_UNSEEN) and metric_label(C.SELECT) == C.SELECT


# ----------------------------------------------------------------------------- selection never sees test labels
def _decisions(run_dir: Path) -> dict:
    """Every decision of a search: per configuration its values, status, pruning step, best steps and the
    values the sampler and pruner were fed; and the chosen configuration."""
    from alchemy_tune.results import read_trials

    study = optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / JOURNAL))))
    configs = {t.number: (t.params, t.state.name, t.value, t.intermediate_values,
                          t.user_attrs.get("pruned_at_step")) for t in study.trials}
    rows = {(r["config_id"], r["replicate"]): (r["status"], r["pruned_at_step"], r["best_step"],
                                                r["best_dev_select"], r["cfg_seed"])
            for r in read_trials(str(run_dir)).to_pylist()}
    return {"configs": configs, "trials": rows, "best": study.best_trial.number}


@pytest.mark.slow
def test_scrambling_the_test_languages_labels_changes_no_decision(tmp_path, tiny_encoder_dir, scripted_workers,
                                                                   ray_cleanup):
    """Acceptance: best steps, pruning and the chosen configuration never read test-language labels.

    Two TPE searches with median pruning and 2 replicates per configuration, identical except that the
    second trains with every dev/test label of the test languages (spa, rus) changed. One at a time, so the
    order of events, and with it every decision, is reproducible."""
    from alchemy_tune.results import read_trials

    space = write_space(tmp_path, {"sampler": "tpe", "n_startup_trials": 2, "pruner": "median", "seed": 3,
                                   "max_concurrent": 1, "repeats": 2},
                        {"lr": {"type": "float", "low": 1e-5, "high": 3e-3, "log": True}},
                        {**TINY, "unseen": ["spa", "rus", "ita"], "model": tiny_encoder_dir, "lambda": 1.0})
    runs = {}
    for name, trial_fn in (("plain", "alchemy_tune.train:run_trial"),
                           ("scrambled", "scripted_trials:scrambled_test_labels_trial")):
        run_search(SearchRequest(space_path=space, storage=str(tmp_path / "runs"), name=name, num_cpus=2,
                                 settings={"trials": 4}, trial_fn=trial_fn, progress_interval_s=1000))
        runs[name] = tmp_path / "runs" / name
    plain, scrambled = _decisions(runs["plain"]), _decisions(runs["scrambled"])
    assert plain == scrambled
    from test_replicates import check_configurations_see_replicate_means

    check_configurations_see_replicate_means(runs["plain"], repeats=2)
    assert any(state == "PRUNED" for _, state, *_ in plain["configs"].values())  # pruning was exercised
    # ... while the test languages' scores did change (ita is the validation language: it chooses)
    a, b = (read_trials(str(runs[n])).to_pandas().sort_values(["config_id", "replicate"]) for n in runs)
    assert (a["best_dev_unseen"].to_numpy() != b["best_dev_unseen"].to_numpy()).any()
    assert (a["best_dev_val"].to_numpy() == b["best_dev_val"].to_numpy()).all()
