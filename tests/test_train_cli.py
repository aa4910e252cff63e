"""`alchemy-tune train` as a user runs it: bad input in this process, one real subprocess run end to end,
real corpus, tiny encoder."""

import sys

import pyarrow.parquet as pq
import pytest

from testing.cli import one_line_error, run_cli, run_cli_process

TINY = ["--train-size", "24", "--dev-size", "12", "--test-size", "12", "--seen", "eng,fra", "--unseen", "spa,rus",
        "--batch-size", "8", "--epochs", "1", "--evals-per-epoch", "1", "--max-length", "48", "--lr", "1e-3",
        "--num-layers", "none"]


@pytest.mark.parametrize("args, needle", [
    (["--lambda", "-1"], "lambda: must be >= 0, got -1"),
    (["--train-size", "-5"], "train_size: must be a positive integer, got -5"),
    (["--task", "nope"], "unknown task 'nope'; valid tasks: bible-genre"),
    (["--projection", "conv"], "projection: 'conv' is not one of linear, mlp"),
    (["--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
    (["--missing", "guess"], "missing: 'guess' is not one of zero, mean, knn"),
    (["--uriel-features", "syntax_knn+colour"], "colour"),
    (["--model", "/nonexistent/model-dir"], "/nonexistent/model-dir"),
    (["--seen", "eng,xx-QQ"], "xx-QQ"),
    (["--lambda-schedule", "exp"], "lambda_schedule: 'exp' is not one of constant"),
    (["--lambda", "0", "--lambda-schedule", "alchemytune"],
     "lambda: 0 with lambda_schedule 'alchemytune' would still train with the URIEL loss"),
    (["--lambda", "0", "--lambda-schedule", "alchemyscale"], "the λ = 0 baseline takes lambda_schedule constant"),
    (["--pooling", "pooler", "--model", "e5-small"], "model 'e5-small' (multilingual-e5) has no pretrained pooler"),
])
def test_bad_input_is_one_line_and_exit_2(args, needle, tiny_encoder_dir):
    model = [] if "--model" in args else ["--model", tiny_encoder_dir]
    one_line_error(run_cli("train", *model, *args), needle)


def test_help_on_every_command():
    from alchemy_tune.cli import COMMANDS

    for command in COMMANDS:
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "usage" in result.stdout.lower(), (command, result.stderr)
    top = run_cli("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in COMMANDS)


_HEAVY = ("torch", "transformers", "ray", "optuna", "pandas")
_REPORT = ("import sys\nfrom alchemy_tune.cli import main\ncode = main(sys.argv[1:])\n"
           f"print(code, [m for m in {_HEAVY!r} if m in sys.modules], file=sys.stderr)")


@pytest.mark.parametrize("args, needle", [
    (["train", "--lambda", "-1"], "lambda: must be >= 0"),
    (["train", "--model", "/nonexistent/model-dir"], "/nonexistent/model-dir"),
    (["train", "--task", "nope"], "unknown task 'nope'"),
    (["train", "--seen", "eng,xx-QQ"], "xx-QQ"),
    (["--trials", "0"], "--trials"),
    (["--trials", "2", "--sampler", "annealing"], "'annealing'"),
    (["--trials", "1", "--name", "../x"], "--name"),
    (["plan", "--space", "nope"], "--space nope"),
    (["resume", "/nonexistent/run"], "no such directory"),
    (["confirm", "/nonexistent/run"], "no such directory"),
    (["analyze", "/nonexistent/run"], "no such directory"),
    (["compact", "/nonexistent/run"], "no such directory"),
])
def test_bad_input_is_answered_before_the_heavy_imports(args, needle):
    """A fresh interpreter, as the installed command starts: validation comes before torch (about 2 s to
    import), Ray and Optuna, so a mistyped flag is answered at once."""
    import subprocess

    result = subprocess.run([sys.executable, "-c", _REPORT, *args], capture_output=True, text=True, timeout=120)
    *error, report = result.stderr.strip().splitlines()
    assert len(error) == 1 and needle in error[0] and "Traceback" not in result.stderr, result.stderr
    assert report == "2 []" or (args[0] in ("analyze", "confirm", "compact") and report == "2 ['pandas']"), report


def test_train_prints_table_and_writes_a_run(tiny_encoder_dir, tmp_path):
    out = tmp_path / "run"
    result = run_cli_process("train", "--model", tiny_encoder_dir, *TINY, "--val", "rus", "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "seen average" in text and "val average" in text and "test average" in text
    for lang in ("eng", "fra", "spa", "rus"):
        assert lang in text
    rows = {line.split()[0]: line.split()[2] for line in text.splitlines() if line[:3] in ("eng", "spa", "rus")}
    assert rows == {"eng": "seen", "rus": "val", "spa": "TEST"}
    assert (out / "alchemy_run.json").exists()
    trials = pq.read_table(out / "results" / "trials").to_pylist()
    assert len(trials) == 1 and trials[0]["status"] == "completed"
    assert trials[0]["selection_metric"] == "dev_select" and trials[0]["oracle"] is False
    metrics = pq.read_table(out / "results" / "metrics")
    assert set(metrics.column("lang").to_pylist()) == {"eng", "fra", "spa", "rus"}
    counts = {(r["lang"], r["value"]) for r in metrics.to_pylist() if r["split"] == "train"}
    assert counts == {("eng", 24.0), ("fra", 24.0)}  # each seen language's actual count, at every step


def test_quiet_prints_the_final_table_only(tiny_encoder_dir):
    """No per-step lines and no weight-loading progress bar (transformers draws one on stderr otherwise)."""
    loud = run_cli_process("train", "--model", tiny_encoder_dir, *TINY)
    quiet = run_cli_process("train", "--model", tiny_encoder_dir, *TINY, "--quiet")
    assert loud.returncode == quiet.returncode == 0, quiet.stderr
    assert "Loading weights" in loud.stderr and "step " in loud.stdout  # what --quiet leaves out
    assert quiet.stderr.strip() == "" and "step " not in quiet.stdout
    assert quiet.stdout.strip().splitlines()[-1] == loud.stdout.strip().splitlines()[-1]  # the same table
