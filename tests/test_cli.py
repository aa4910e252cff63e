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
