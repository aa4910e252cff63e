"""The search end to end: bad input at the CLI, every sampler on a real study, a real search with the real
trial loop (tiny encoder) including a diverging trial, and a multi-objective search."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import optuna
import pandas as pd
import pytest

from alchemy_tune.core import constants as C
from alchemy_tune.cli import main
from alchemy_tune.core.errors import UsageError
from alchemy_tune.tuning.searcher import StudyHandle
from alchemy_tune.tuning.study_attrs import CONFIG_ATTR, RAY_ID_ATTR
from alchemy_tune.tuning.samplers import build_sampler
from alchemy_tune.tuning.journal import JOURNAL
from alchemy_tune.tuning.search import SearchRequest, run_search
from alchemy_tune.core.settings import SAMPLERS
from alchemy_tune.tuning.space_file import load_space
from testing.cli import one_line_error, run_cli
from testing.searches import TINY, check_configurations_see_replicate_means, write_space

TESTS = Path(__file__).resolve().parent
@pytest.fixture
def ray_cleanup():
    """The test starts its own Ray (not the shared one below): none may be running before or after it."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()


@pytest.fixture
def scripted_workers(monkeypatch):
    """Ray workers started after this can import the scripted trials in tests/scripted_trials.py."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture(scope="module")
def _module_ray(tmp_path_factory):
    """Set up lazily by ``local_ray``; shut down when the module's tests are done."""
    saved = os.environ.get("PYTHONPATH")
    # Ray workers started from here can import tests/scripted_trials.py
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), saved or ""])
    # scripted_trials.quality_trial crashes on lr 1e-5 while this file exists (a test creates it)
    os.environ["SCRIPTED_FAIL_FILE"] = str(tmp_path_factory.mktemp("fail") / "fail-now")
    yield
    import ray

    ray.shutdown()
    os.environ.pop("SCRIPTED_FAIL_FILE")
    os.environ.pop("PYTHONPATH") if saved is None else os.environ.update(PYTHONPATH=saved)


@pytest.fixture
def local_ray(_module_ray):
    """One embedded Ray on 127.0.0.1 (2 CPUs, 1 bookkeeping GPU) shared by this module's searches; a search
    finds it started and joins it. The GPU is only declared (no trial here uses CUDA): --gpu-hours counts it."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, num_gpus=1, _node_ip_address="127.0.0.1", include_dashboard=False,
                 log_to_driver=False, logging_level="ERROR")


def cli_error(capsys, argv) -> str:
    return one_line_error(run_cli(*argv))


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
        handle.finish(f"ray{i}", {C.STEP: 1, "dev_seen": score + 0.1, "dev_val": score, "dev_select": score,
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
    """Constant liar: trials still running count (as bad) for the next draw, so concurrent workers spread out.
    Without it TPE ignores them, as it ignores failed trials: asking with the earlier asks still running then
    draws exactly what asking after failing them draws."""
    x = optuna.distributions.FloatDistribution(0, 1)

    def draws(concurrent: int, fail: bool) -> list[float]:
        study = optuna.create_study(direction="maximize", sampler=build_sampler(
            "tpe", seed=0, concurrent=concurrent, n_startup_trials=0))
        for i in range(20):
            study.add_trial(optuna.trial.create_trial(params={"x": i / 20}, distributions={"x": x},
                                                      value=-abs(i / 20 - 0.3)))
        out = []
        for _ in range(4):
            trial = study.ask({"x": x})
            out.append(trial.params["x"])
            if fail:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return out

    assert draws(4, fail=False) != draws(4, fail=True)
    assert draws(1, fail=False) == draws(1, fail=True)
    with pytest.raises(UsageError, match="'sobol'"):
        build_sampler("sobol", seed=0)


def test_a_trial_is_told_once(tmp_path):
    space = load_space(write_space(tmp_path, {}, {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}}))
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner="none", seed=0)
    handle.ask("a", space)
    assert handle.finish("a", {C.STEP: 3, "dev_unseen": 0.5, C.STATUS: C.COMPLETED}) == C.COMPLETED
    assert handle.finish("a", {C.STEP: 3, "dev_unseen": 0.9, C.STATUS: C.COMPLETED}) is None
    handle.ask("b", space)  # Tune's last result of a trial stopped before it began: its id, no report
    assert handle.finish("b", {"trial_id": "b"}) is None
    assert handle.study.trials[0].value == 0.5


def test_the_searcher_caps_concurrency_and_a_restored_one_counts_only_what_tune_runs_again(tmp_path):
    """max_concurrent is the searcher's own cap (Tune's ConcurrencyLimiter would restore a saved set of
    running trials that a driver killed mid-upload can leave newer than the experiment state: trials the
    restored Tune never runs would hold every slot, and the resumed search would wait with nothing running).
    Restored, the searcher counts as running exactly the trials the restored experiment runs again."""
    import pickle

    from alchemy_tune.tuning.journal import restoring
    from alchemy_tune.tuning.searcher import OptunaSearcher

    (tmp_path / "s.yaml").write_text("lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}\n")
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_select", "max")], sampler="random",
                         pruner="none", seed=0, run_id="run-x")
    searcher = OptunaSearcher(handle, load_space(str(tmp_path / "s.yaml")), n_trials=10, max_concurrent=2)
    saved = pickle.dumps(searcher)  # what tuner.pkl holds
    assert isinstance(searcher.suggest("a"), dict) and isinstance(searcher.suggest("b"), dict)
    assert searcher.suggest("c") is None  # two running: Tune asks again later
    searcher.on_trial_complete("a", {"dev_select": 0.5})
    assert isinstance(searcher.suggest("c"), dict)
    # a resumed driver: the experiment state it restores runs "b" again ("c" was never saved in it)
    restoring("run-x", ["b"])
    restored = pickle.loads(saved)
    restored.restore(str(tmp_path / "searcher-state.pkl"))
    assert isinstance(restored.suggest("d"), dict) and restored.suggest("e") is None
    restored.on_trial_complete("b", {"dev_select": 0.6})
    assert isinstance(restored.suggest("e"), dict)


# ----------------------------------------------------------------------------- real searches
def test_search_with_the_real_trial_records_completed_and_diverged(tmp_path, tiny_encoder_dir, local_ray, capsys):
    """ASHA with its top rung at the trials' last evaluation (1 epoch x 3): the trial that ran to its end is
    completed, not pruned; the diverging one is PRUNED in Optuna (README: Search) and `diverged` in the tables."""
    from alchemy_tune.tuning.study_attrs import REASON_ATTR, STATUS_ATTR
    from alchemy_tune.results.schema import read_metrics, read_trials

    # grid over λ: 0 trains normally, 1e39 makes the first loss infinite
    space = write_space(tmp_path, {"sampler": "grid", "pruner": "asha", "max_concurrent": 2, "seed": 0},
                        {"lambda": {"type": "categorical", "choices": [0, 1.0e39]}},
                        {**TINY, "model": tiny_encoder_dir, "lr": 1e-3})
    outcome = run_search(SearchRequest(space_path=space, storage=str(tmp_path / "runs"), name="real",
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
    # the trial measured itself inside its Ray worker; test was scored at its chosen steps only
    assert trials[0]["precision"] == "fp32" and 100 < trials[0]["peak_rss_mb"] < 4000
    assert trials[0]["best_test_unseen"] is not None
    metrics = read_metrics(str(run_dir)).to_pandas()
    assert set(metrics["lang"]) == {"eng", "fra", "deu", "spa", "rus"}
    # each trial's TensorBoard events are under its own folder in the run directory
    events = list(run_dir.glob("*/tensorboard/events.out.tfevents.*"))
    assert len(events) == 2
    # ...with each trial's settings for TensorBoard's HParams dashboard, and how it ended
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, metadata

    ends = {}
    for event_file in events:
        acc = EventAccumulator(str(event_file.parent))
        acc.Reload()
        tags = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
        end = tags.get(metadata.SESSION_END_INFO_TAG)
        ends[start.hparams["lambda"].number_value] = end and metadata.parse_session_end_info_plugin_data(end).status
    assert ends == {0.0: api_pb2.STATUS_SUCCESS, 1.0e39: api_pb2.STATUS_FAILURE}  # ran to its end; diverged
    # and only there: Tune's own TensorBoardX logger, a copy of them, is off; its CSV and JSON logs stay,
    # each report's languages in one JSON column instead of one column per language, split and metric
    assert not list(run_dir.glob("*/events.out.tfevents.*"))
    progress = [pd.read_csv(p) for p in run_dir.glob("*/progress.csv")]
    assert len(progress) == 2 and all(len(p.columns) < 100 for p in progress)
    scored = [p for p in progress if "langs" in p.columns]  # the diverged trial stopped before scoring
    assert scored and all(json.loads(p["langs"].iloc[0])["spa"]["seen"] is False for p in scored)
    # each test example's answer went to the tables, and only there: not into Tune's logs or its state
    items = metrics[metrics["item"].notna()]
    assert set(items["metric"]) == {"prediction", "label"} and set(items["split"]) == {"test"}
    assert set(items["trial_id"]) == {trials[0]["trial_id"]} and len(items) > 2 * 5
    assert not any("items" in p.columns for p in progress)
    assert not any('"items"' in f.read_text() for f in run_dir.glob("*/result.json"))
    study = optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / JOURNAL))))
    by_lambda = {t.params["lambda"]: t for t in study.trials}
    assert by_lambda[0].state.name == "COMPLETE" and by_lambda[0].user_attrs[STATUS_ATTR] == C.COMPLETED
    diverged = by_lambda[1e39]
    # diverged at its first evaluation: no finite objective, so PRUNED without a value (worse than any)
    assert diverged.state.name == "PRUNED" and diverged.value is None
    assert diverged.user_attrs[STATUS_ATTR] == C.DIVERGED and "non-finite" in diverged.user_attrs[REASON_ATTR]
    out = capsys.readouterr().out
    assert "diverged" in out and "1 completed" in out


@pytest.mark.slow
def test_bruteforce_with_more_trials_than_configurations_runs_each_once(tmp_path, tiny_encoder_dir, local_ray,
                                                                        capsys):
    """Optuna's BruteForceSampler stops the study when the space is exhausted, which raises outside
    study.optimize(); the search caps itself at the space's size instead and ends normally."""
    space = write_space(tmp_path, {"sampler": "bruteforce", "pruner": "none", "max_concurrent": 2},
                        {"lambda": {"type": "categorical", "choices": [0, 1]}},
                        {**TINY, "model": tiny_encoder_dir, "lr": 1e-3, "evals_per_epoch": 1})
    code = main(["--space", space, "--trials", "5", "--storage", str(tmp_path), "--name", "bf"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 completed" in out
    study = optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "bf" / JOURNAL))))
    assert sorted(t.params["lambda"] for t in study.trials) == [0, 1]
    assert all(t.state.name == "COMPLETE" for t in study.trials)


@pytest.mark.slow
def test_multi_objective_search_returns_a_pareto_front(tmp_path, local_ray):
    space = write_space(tmp_path, {"sampler": "nsga2", "pruner": "none", "max_concurrent": 2, "seed": 1,
                                   "objectives": [["dev_seen", "max"], ["dev_val", "max"]]},
                        {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                         "lambda": {"type": "categorical", "choices": [0, 1, 10]}})
    outcome = run_search(SearchRequest(space_path=space, storage=str(tmp_path / "runs"), name="mo",
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
    from alchemy_tune.tuning.searcher import StudyHandle

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
    from alchemy_tune.tuning.progress import metric_label
    from alchemy_tune.tuning.search import SearchOutcome
    from alchemy_tune.cli.search import print_outcome

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
    from alchemy_tune.results.schema import read_trials

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
    from alchemy_tune.results.schema import read_trials

    space = write_space(tmp_path, {"sampler": "tpe", "n_startup_trials": 2, "pruner": "median", "seed": 3,
                                   "max_concurrent": 1, "repeats": 2},
                        {"lr": {"type": "float", "low": 1e-5, "high": 3e-3, "log": True}},
                        {**TINY, "unseen": ["spa", "rus", "ita"], "model": tiny_encoder_dir, "lambda": 1.0})
    runs = {}
    for name, trial_fn in (("plain", "alchemy_tune.trial.train:run_trial"),
                           ("scrambled", "scripted_trials:scrambled_test_labels_trial")):
        run_search(SearchRequest(space_path=space, storage=str(tmp_path / "runs"), name=name, num_cpus=2,
                                 settings={"trials": 4}, trial_fn=trial_fn, progress_interval_s=1000))
        runs[name] = tmp_path / "runs" / name
    plain, scrambled = _decisions(runs["plain"]), _decisions(runs["scrambled"])
    assert plain == scrambled

    check_configurations_see_replicate_means(runs["plain"], repeats=2)
    assert any(state == "PRUNED" for _, state, *_ in plain["configs"].values())  # pruning was exercised
    # ... while the test languages' scores did change (ita is the validation language: it chooses)
    a, b = (read_trials(str(runs[n])).to_pandas().sort_values(["config_id", "replicate"]) for n in runs)
    assert (a["best_dev_unseen"].to_numpy() != b["best_dev_unseen"].to_numpy()).any()
    assert (a["best_dev_val"].to_numpy() == b["best_dev_val"].to_numpy()).all()


# ----------------------------------------------------------------------------- study bookkeeping
def _lr_space(tmp_path, sampler="random", choices=(1e-3, 1e-4, 1e-5, 1e-6)):
    return load_space(write_space(tmp_path, {"sampler": sampler},
                                  {"lr": {"type": "categorical", "choices": list(choices)}}))


def test_a_repeated_ray_trial_id_gets_no_second_optuna_trial(tmp_path):
    """Ray ids are 8 hex characters; a repeat must not merge two trials: Tune is asked to try another id."""
    from alchemy_tune.tuning.searcher import OptunaSearcher

    space = _lr_space(tmp_path)
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner="none", seed=0)
    searcher = OptunaSearcher(handle, space, n_trials=5)
    assert isinstance(searcher.suggest("0a1b2c3d"), dict)
    assert searcher.suggest("0a1b2c3d") is None  # None: Tune calls again with a fresh id
    assert isinstance(searcher.suggest("ffffffff"), dict)
    assert [t.user_attrs[RAY_ID_ATTR] for t in handle.study.trials] == ["0a1b2c3d", "ffffffff"]


def test_trials_are_counted_incrementally_as_a_fresh_driver_counts_them(tmp_path):
    """n_trials is asked before every new trial, so it scans only new trials: warm-start trials never count,
    an enqueued one counts once it is asked, a retried failure stops counting; a fresh handle (a resumed
    driver, full scan) and this_runs_trials agree at every step."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    from alchemy_tune.tuning.study_attrs import WARM_ATTR

    space = _lr_space(tmp_path)
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner="none", seed=0)

    def agree(expected):
        fresh = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                            pruner="none", seed=0)
        assert handle.n_trials() == fresh.n_trials() == len(handle.this_runs_trials()) == expected

    handle.study.add_trial(optuna.trial.create_trial(
        params={"lr": 1e-3}, distributions={"lr": CategoricalDistribution([1e-3, 1e-4, 1e-5, 1e-6])}, value=0.5,
        user_attrs={WARM_ATTR: "earlier-run"}))
    handle.study.enqueue_trial({"lr": 1e-5})
    agree(0)  # the warm-start trial never counts, the enqueued one not before it is asked
    assert handle.ask("a", space)["lr"] == 1e-5
    agree(1)
    handle.ask("b", space)
    handle.study.tell(handle.number_of("b"), state=TrialState.FAIL)
    agree(2)
    handle.retry("b", space)  # a new trial runs "b" again; the failed one no longer counts
    agree(2)
    handle.ask("c", space)
    agree(3)


def test_an_adopted_orphan_forgets_the_dead_drivers_pruning_and_its_old_rows(tmp_path):
    from types import SimpleNamespace

    from alchemy_tune.tuning.searcher import OptunaSearcher
    from alchemy_tune.tuning.trial_end import ResultsCallback
    from alchemy_tune.tuning.study_attrs import PRUNED_AT_ATTR, PRUNED_BY_ATTR
    from alchemy_tune.results.schema import read_trials

    space = _lr_space(tmp_path)
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner="median", seed=0)
    config = handle.ask("old", space)
    results = ResultsCallback(str(tmp_path), "run-1", handle, "dev_unseen", "max")
    report = {C.STEP: 1, "dev_unseen": 0.4, C.STATUS: C.RUNNING, C.LANGS: {}}
    results.on_trial_result(0, [], SimpleNamespace(trial_id="old", config=config), report)
    # the dead driver had decided to prune it, then died before telling Optuna
    handle.set_trial_attr("old", PRUNED_AT_ATTR, 1)
    handle.set_trial_attr("old", PRUNED_BY_ATTR, "median")
    results.writer.flush()
    assert handle.mark_orphans(known_ray_ids=set()) == 1

    resumed = ResultsCallback(str(tmp_path), "run-1", handle, "dev_unseen", "max")
    assert OptunaSearcher(handle, space, n_trials=5).suggest("new") == config
    resumed.on_trial_result(0, [], SimpleNamespace(trial_id="new", config=config), report)
    assert handle.finish("new", {**report, C.STATUS: C.COMPLETED}) == C.COMPLETED  # not PRUNED
    resumed.writer.end_trial("new", C.COMPLETED)
    resumed.writer.flush()  # the search writes from a background thread; the test reads right away
    assert [r["trial_id"] for r in read_trials(str(tmp_path)).to_pylist()] == ["new"]  # "old" is gone
    (trial,) = handle.study.trials
    assert trial.user_attrs[RAY_ID_ATTR] == "new" and trial.user_attrs["previous_ray_trial_ids"] == ["old"]


def test_enqueued_configurations_come_first_and_bad_ones_are_one_line_errors(tmp_path):
    from alchemy_tune.tuning.searcher import OptunaSearcher
    from alchemy_tune.tuning.warm_start import enqueue, read_enqueue

    space = _lr_space(tmp_path)
    good = tmp_path / "first.yaml"
    good.write_text("- {lr: 1.0e-6}\n- {lr: 1.0e-5}\n")
    handle = StudyHandle(str(tmp_path / JOURNAL), objectives=[("dev_unseen", "max")], sampler="random",
                         pruner="none", seed=0)
    enqueue(handle, read_enqueue(str(good), space))
    searcher = OptunaSearcher(handle, space, n_trials=2)
    assert [searcher.suggest(f"t{i}")["lr"] for i in range(2)] == [1e-6, 1e-5]
    assert searcher.suggest("t2") == "FINISHED"  # enqueued trials count once asked, not twice
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {lr: 0.5}\n- {learning_rate: 1}\n")
    with pytest.raises(UsageError, match=r"entry 1: lr: 0.5 .*entry 2: learning_rate: not a parameter"):
        read_enqueue(str(bad), space)
    with pytest.raises(UsageError, match="no such file"):
        read_enqueue(str(tmp_path / "nope.yaml"), space)


def test_budgets_say_why_they_stop():
    from alchemy_tune.tuning.budget import Budget

    assert Budget.of(None, None, 0) is None
    budget = Budget.of(60, 1.0, 0.5)
    assert budget.spent(now=budget.started + 59) is None
    assert "time budget of 60 s" in budget.spent(now=budget.started + 61)
    budget = Budget.of(None, 1.0, 0.5)
    budget.record("a", {"time_total_s": 3600.0})
    assert budget.spent() is None  # 0.5 GPU-hours
    budget.record("b", {"time_total_s": 3600.0})
    assert "1 GPU-hours" in budget.spent()
    with pytest.raises(UsageError, match="--gpu-hours"):
        Budget.of(None, 1.0, 0)
    with pytest.raises(UsageError, match="--time-budget"):
        Budget.of(-5, None, 0)


# ----------------------------------------------------------------------------- extend, warm start, budgets
@pytest.mark.slow
def test_enqueue_retry_extend_and_warm_start(tmp_path, local_ray, capsys):
    """One run: an enqueued configuration first (it crashes), then resume retries it and extends the search
    to 3 trials; a second search warm-started from the first is told its 3 trials and, the bruteforce
    sampler knowing them, runs the one configuration left."""
    from alchemy_tune.tuning.study_attrs import WARM_ATTR
    from alchemy_tune.results.schema import read_trials

    space = write_space(tmp_path, {"sampler": "bruteforce", "pruner": "none", "max_concurrent": 1, "seed": 0},
                        {"lr": {"type": "categorical", "choices": [1e-3, 1e-4, 1e-5, 1e-6]}})
    first = tmp_path / "first.yaml"
    first.write_text("- {lr: 1.0e-5}\n")
    fail_file = Path(os.environ["SCRIPTED_FAIL_FILE"])
    fail_file.write_text("fail")
    common = ["--space", space, "--storage", str(tmp_path), "--max-failures", "0"]
    env_trial = "scripted_trials:quality_trial"

    def cli(argv):
        code = main(argv)
        return code, capsys.readouterr().out

    code, out = cli(["--trials", "2", "--enqueue", str(first), "--name", "a", *common, "--trial-fn", env_trial])
    assert code == 0, out
    run_a = tmp_path / "a"
    rows = {r["cfg_lr"]: r["status"] for r in read_trials(str(run_a)).to_pylist()}
    assert rows[1e-5] == C.FAILED and len(rows) == 2

    fail_file.unlink()
    code, out = cli(["resume", str(run_a), "--retry-errored", "--trials", "3"])
    assert code == 0, out
    summary = out[out.rindex("search finished"):].splitlines()[0]
    assert "3 completed" in summary and "failed" not in summary
    rows = read_trials(str(run_a)).to_pylist()
    assert len(rows) == 3 and all(r["status"] == C.COMPLETED for r in rows)
    lrs_a = {r["cfg_lr"] for r in rows}
    assert 1e-5 in lrs_a

    code, out = cli(["--trials", "3", "--warm-start", str(run_a), "--name", "b", *common, "--trial-fn", env_trial])
    assert code == 0, out
    assert "warm start: 3 completed trial(s)" in out
    (row,) = read_trials(str(tmp_path / "b")).to_pylist()  # only its own trial: the space had one left
    assert row["cfg_lr"] not in lrs_a and row["status"] == C.COMPLETED
    study = optuna.load_study(study_name="alchemy-tune", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "b" / JOURNAL))))
    assert sum(WARM_ATTR in t.user_attrs for t in study.trials) == 3


@pytest.mark.slow
@pytest.mark.parametrize("budget", [["--time-budget", "8"], ["--gpus-per-trial", "0.5", "--gpu-hours", "0.0003"]])
def test_a_budget_stops_the_asking_and_running_trials_finish(tmp_path, local_ray, capsys, budget):
    from alchemy_tune.results.schema import read_trials

    space = write_space(tmp_path, {"sampler": "random", "pruner": "none", "max_concurrent": 1, "seed": 0},
                        {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}})
    code = main(["--space", space, "--trials", "20", "--storage", str(tmp_path), "--name", "budget",
                 "--trial-fn", "scripted_trials:quality_trial", *budget])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "stopped asking for trials: " + ("time budget" if "--time-budget" in budget else "GPU budget") in out
    rows = read_trials(str(tmp_path / "budget")).to_pylist()
    assert 1 <= len(rows) < 20 and all(r["status"] == C.COMPLETED for r in rows)  # none cut short


def test_space_by_shipped_name_and_with_a_tilde(tmp_path, capsys, monkeypatch):
    """`ray submit ... -- --space paper-grid` must not depend on the laptop's shell or home: a shipped space is
    found by name, and `~` is expanded by the process that reads the file."""
    assert main(["--space", "paper-grid", "--dry-run"]) == 0
    assert "paper-grid.yaml" in capsys.readouterr().out
    assert main(["plan", "--space", "lambda"]) == 0
    assert "lambda.yaml" in capsys.readouterr().out
    monkeypatch.setenv("HOME", str(tmp_path))
    write_space(tmp_path, {"trials": 2}, {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}}, name="mine.yaml")
    assert main(["--space", "~/mine.yaml", "--dry-run"]) == 0
    assert str(tmp_path / "mine.yaml") in capsys.readouterr().out
    err = cli_error(capsys, ["--space", "paper-gird", "--dry-run"])
    assert "paper-gird" in err and "paper-grid" in err  # the shipped names are listed


def test_uncapped_searches_keep_enough_trials_pending_for_the_autoscaler():
    from alchemy_tune.tuning.search import pending_trials

    assert pending_trials({"CPU": 2}, 1, 0) == 16  # Tune's default for a custom searcher would be 1
    assert pending_trials({"CPU": 256, "GPU": 64}, 2, 0.5) == 128
    assert pending_trials({"CPU": 64, "GPU": 8}, 1, 1) == 16


def test_multi_machine_clusters_need_shared_storage(tmp_path):
    from alchemy_tune.tuning.search import check_shared_storage

    mounts = f"/dev/sda1 / ext4 rw 0 0\nserver:/export {tmp_path} nfs4 rw 0 0\n"
    check_shared_storage("/data/runs/x", {"10.0.0.1"}, mounts)  # one machine: any folder
    check_shared_storage(str(tmp_path / "runs" / "x"), {"10.0.0.1", "10.0.0.2"}, mounts)  # NFS
    check_shared_storage("s3://bucket/runs/x", {"10.0.0.1", "10.0.0.2"}, mounts)
    with pytest.raises(UsageError, match=r"--storage /data/runs/x: a folder on this machine \(ext4\).* 2 machines"):
        check_shared_storage("/data/runs/x", {"10.0.0.1", "10.0.0.2"}, mounts)


def test_a_resumed_search_counts_its_budget_from_the_resume():
    import pickle

    from alchemy_tune.tuning.budget import Budget

    budget = Budget.of(60, None, 0)
    budget.started -= 3600  # an hour ago the first driver began
    budget.record("a", {"time_total_s": 10.0})
    assert budget.spent() is not None
    again = pickle.loads(pickle.dumps(budget))  # what Tune restores in the resumed driver
    assert again.spent() is None and again.seconds == {}


def test_a_failure_after_the_run_folder_exists_leaves_nothing_that_blocks_its_name(tmp_path, local_ray, monkeypatch):
    """Anything that fails once the run's record and study exist, before a trial starts, removes them: the
    same --name then starts a new search instead of saying "continue it with resume"."""
    from alchemy_tune.tuning import search as search_module

    space = write_space(tmp_path, {"sampler": "random", "pruner": "none", "seed": 0},
                        {"lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-3, "log": True}}, {**TINY})
    request = SearchRequest(space_path=space, storage=str(tmp_path / "runs"), name="half", settings={"trials": 1})
    made = []

    def broken(*args, **kwargs):
        made.extend(p.name for p in (tmp_path / "runs" / "half").iterdir())
        raise RuntimeError("a failure after the run folder exists")

    monkeypatch.setattr(search_module, "make_tuner", broken)
    with pytest.raises(RuntimeError):
        run_search(request)
    assert "alchemy_run.json" in made  # the record that made its name "taken"
    assert not (tmp_path / "runs" / "half").exists()
    # nothing blocks the name: the same request passes every check up to Ray again
    with pytest.raises(RuntimeError):
        run_search(request)
