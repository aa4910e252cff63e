"""One error boundary for every command: each class of bad input is one line, exit 2, no traceback,
nothing written outside the run folder. In this process, but for one check through a real subprocess."""

from pathlib import Path

import pytest

from testing.cli import one_line_error, run_cli, run_cli_process


def synthetic_run(path: Path) -> Path:
    from testing.synthetic import make_run

    make_run(str(path), n_trials=4, n_langs=4, n_evals=2, seed=0)
    return path


def test_a_truncated_result_file_is_one_line(tmp_path):
    run = synthetic_run(tmp_path / "run")
    parts = sorted((run / "results").rglob("*.parquet"))
    assert parts
    for part in parts:  # every table file cut in half, as an interrupted copy leaves it
        data = part.read_bytes()
        part.write_bytes(data[: len(data) // 2])
    one_line_error(run_cli_process("analyze", str(run)))


def test_a_corrupt_run_file_is_one_line(tmp_path):
    run = synthetic_run(tmp_path / "run")
    (run / "alchemy_run.json").write_text('{"schema": 1, "run_id": ')  # truncated JSON
    one_line_error(run_cli("analyze", str(run)), "alchemy_run.json")


def test_an_output_path_that_is_a_file_is_one_line(tmp_path, tiny_encoder_dir):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_cli("train", "--model", tiny_encoder_dir, "--max-steps", "1", "--out", str(blocker / "run"))
    one_line_error(result, str(blocker))
    assert sorted(p.name for p in tmp_path.iterdir()) == before and blocker.read_text() == "not a folder"


@pytest.mark.parametrize("flag, value", [("--lambda", "inf"), ("--lr", "nan"), ("--epochs", "1e400")])
def test_non_finite_numbers_are_refused_at_validation(flag, value, tiny_encoder_dir):
    one_line_error(run_cli("train", "--model", tiny_encoder_dir, flag, value), "must be a finite number")


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "~x"])
def test_a_run_name_is_one_folder_name(tmp_path, name):
    storage = tmp_path / "runs"
    storage.mkdir()
    result = run_cli("--trials", "1", "--name", name, "--storage", str(storage), cwd=tmp_path)
    one_line_error(result, "--name")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"] and not any(storage.iterdir())


@pytest.mark.parametrize("argv, needle", [
    (["plan", "--trials", "0"], "--trials: must be at least 1"),
    (["--time-budget", "-1", "--dry-run"], "--time-budget: must be a positive number"),
    (["--num-cpus", "0", "--dry-run"], "--num-cpus: must be >= 1"),
    (["--seed", str(2**32), "--dry-run"], "--seed: expected an integer in [0, 4294967295]"),
    (["--set", f"seed={2**63}", "--dry-run"], "seed: must be in [0, 4294967295]"),
    (["--repeats", "3", "--set", f"seed={2**32 - 2}", "--dry-run"], "replicate seeds would reach 4294967296"),
    (["--trial-fn", "no_such_module:run", "--dry-run"], "--trial-fn no_such_module:run: cannot import"),
    (["--trial-fn", "json:no_such_function", "--dry-run"], "json has no function 'no_such_function'"),
    (["--pruner", "percentile", "--set", "lr=1e-4", "--dry-run"], None),
    (["--baselines", "twins", "--dry-run"], "--baselines: expected matched or none"),
    (["--keep-checkpoints", "some", "--dry-run"], "--keep-checkpoints: expected best, none or all"),
])
def test_every_check_a_search_makes_runs_before_anything_starts_dry_run_included(tmp_path, argv, needle):
    """Bad values that used to pass --dry-run (and fail after Ray started, leaving a half-made run)."""
    result = run_cli(*argv, "--storage", str(tmp_path / "runs"), cwd=tmp_path) if argv[0] != "plan" \
        else run_cli(*argv, cwd=tmp_path)
    if needle is None:
        assert result.returncode == 0, result.stderr
        return
    one_line_error(result, needle)
    assert not (tmp_path / "runs").exists()


def test_a_dry_run_asking_for_gpus_the_machine_lacks_is_refused(tmp_path):
    """`--gpus-per-trial 1 --dry-run` on a machine without a GPU: the one-line refusal the real run gives
    after Ray starts, at once."""
    import torch

    if torch.cuda.device_count() >= 1:
        pytest.skip("this machine has a GPU: the dry run rightly passes")
    result = run_cli("--gpus-per-trial", "1", "--dry-run", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    one_line_error(result, "--gpus-per-trial 1: this machine has 0 GPU(s)")
    assert not (tmp_path / "runs").exists()


def test_ray_address_in_the_environment_is_honoured_and_a_dead_one_fails_in_seconds(tmp_path, monkeypatch):
    """$RAY_ADDRESS names the cluster to join when --address is not given (as Ray's own tools read it);
    pointing at nothing, the search ends within seconds with one error line naming the variable, and the
    run folder it had begun is gone."""
    import time

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # loopback, a port nothing listens on
    started = time.monotonic()
    result = run_cli("--trials", "1", "--name", "nowhere", "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 2 and time.monotonic() - started < 30
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("note: joining the Ray cluster at $RAY_ADDRESS=127.0.0.1:1")
    assert len(lines) == 2 and "$RAY_ADDRESS=127.0.0.1:1: cannot connect to a Ray cluster" in lines[1]
    assert "Traceback" not in result.stderr and not (tmp_path / "runs" / "nowhere").exists()


def test_a_pruner_option_that_is_not_a_number_fails_before_the_search(tmp_path):
    space = tmp_path / "s.yaml"
    space.write_text("search: {pruner: percentile, pruner_options: {percentile: high}, trials: 2}\nlr: 1.0e-4\n")
    one_line_error(run_cli("--space", str(space), "--dry-run"), "pruner 'percentile': bad option(s)")


def test_help_shows_each_default_once():
    import re

    for command in ("search", "train", "analyze", "confirm", "resume", "plan", "compact"):
        text = " ".join(run_cli(command, "--help").stdout.split())
        assert not re.search(r"\(default: [^)]*\) \(default: [^)]*\)", text), command
        assert "(default: None)" not in text, command


def test_plan_and_dry_run_print_the_same_plan(tmp_path):
    plan = run_cli("plan", "--space", "lambda", "--trials", "5", cwd=tmp_path)
    dry = run_cli("--space", "lambda", "--trials", "5", "--dry-run", cwd=tmp_path)
    assert plan.returncode == dry.returncode == 0
    assert dry.stdout.splitlines()[1:] == plan.stdout.splitlines()  # the dry run says where results would go first


def test_a_grid_says_what_part_of_it_runs_and_whether_a_verdict_can_follow(tmp_path):
    """`alchemy-tune --trials 8 --space lambda` (a grid of 19 without λ = 0): before anything runs, the plan
    says that 8 of its 19 configurations run and that no verdict against plain fine-tuning can follow; more
    trials than the grid holds run the grid once, and it says so."""
    dry = run_cli("--trials", "8", "--space", "lambda", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0
    assert "trials: 8 of the grid's 19 configurations (the first ones, in the grid's order)" in dry.stdout
    assert "no verdict against plain fine-tuning" in dry.stdout
    whole = run_cli("--space", "study", "--dry-run", cwd=tmp_path)
    assert "trials: 14 of the grid's 14 configurations (the full grid)" in whole.stdout
    assert "no verdict" not in whole.stdout  # its grid holds plain fine-tuning
    more = run_cli("--trials", "20", "--space", "lambda", "--dry-run", cwd=tmp_path)
    assert more.returncode == 0 and "trials: 19 of the grid's 19 configurations (the full grid)" in more.stdout
    assert "--trials 20 asks for more than its 19 configurations; the grid sampler runs each once: 19" in more.stdout


@pytest.mark.parametrize("table, column", [("trials", "final_step"), ("metrics", "value")])
def test_a_results_file_with_other_column_types_is_one_line_naming_it(tmp_path, table, column):
    """A file dropped into a run's results folder whose column has another type: analyze and compact name it
    (an ArrowTypeError before); compact changes nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = synthetic_run(tmp_path / "run")
    first = sorted((run / "results" / table).rglob("*.parquet"))[0]
    t = pq.read_table(first)
    i = t.schema.get_field_index(column)
    # text where a number belongs (trials); a list where a number belongs (metrics: text would cast)
    values = [None if v is None else (str(v) if table == "trials" else [v]) for v in t.column(column).to_pylist()]
    odd = t.set_column(i, column, pa.array(values))
    stray = first.with_name("zz-stray.parquet")
    pq.write_table(odd.replace_schema_metadata(t.schema.metadata), stray)
    before = sorted(p.name for p in run.rglob("*.parquet"))
    for command in ("analyze", "compact"):
        line = one_line_error(run_cli(command, str(run), *(["--no-report"] if command == "analyze" else [])),
                              str(stray), f"column {column} is {'string' if table == 'trials' else 'list'}")
        assert "not a file this package wrote" in line
    assert sorted(p.name for p in run.rglob("*.parquet")) == before


def test_files_nested_too_deeply_are_one_line_naming_them(tmp_path):
    """YAML's parser and json recurse: a nesting no real file has is a RecursionError unless caught."""
    deep = "[" * 5000 + "]" * 5000
    (tmp_path / "enqueue.yaml").write_text(deep)
    one_line_error(run_cli("--enqueue", str(tmp_path / "enqueue.yaml"), "--trials", "2", "--dry-run",
                           "--storage", str(tmp_path / "runs")), "enqueue.yaml: nested too deeply")
    (tmp_path / "space.yaml").write_text("lr: " + deep)
    one_line_error(run_cli("plan", "--space", str(tmp_path / "space.yaml")), "space.yaml: nested too deeply")
    run = synthetic_run(tmp_path / "run")
    (run / "alchemy_run.json").write_text('{"schema": 1, "x": ' + deep + "}")
    one_line_error(run_cli("analyze", str(run)), "alchemy_run.json: nested too deeply")


def test_an_unwritable_storage_fails_before_anything_starts(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(run_cli("--trials", "1", "--storage", str(blocker / "runs"), "--dry-run"),
                   f"--storage {blocker / 'runs'}: {blocker} is a file, not a folder")


@pytest.mark.parametrize("limit_mb", [300, 600, 1500])
def test_too_little_address_space_is_one_line_at_once_never_a_hang(tmp_path, limit_mb):
    """`ulimit -v` at 300 MB, 600 MB and 1.5 GB gave a MemoryError traceback, a silent hang (OpenBLAS looping
    on a failed allocation) and a "Failed to launch worker thread" traceback: each is now one line, exit 2,
    within seconds."""
    import resource
    import subprocess
    import sys
    import time

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_mb << 20, limit_mb << 20))

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "alchemy_tune.cli", "plan"], cwd=tmp_path, preexec_fn=limit,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and time.monotonic() - started < 30
    assert done.stderr.count("\n") == 1 and f"address-space limit (ulimit -v) is {limit_mb:,} MB" in done.stderr


def test_no_replicate_data_on_the_command_line_turns_the_files_switch_off(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(f"search: {{repeats: 3, replicate_data: true, trials: 1}}\ndata_seed: {2**32 - 2}\n")
    result = run_cli("--space", str(big), "--no-replicate-data", "--dry-run", "--storage", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    assert "data seed fixed, every replicate on the same subsets" in result.stdout

