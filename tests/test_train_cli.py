"""`alchemy-tune train` as a user runs it: a real subprocess, real corpus, tiny or real encoder."""

import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

TINY = ["--train-size", "24", "--dev-size", "12", "--test-size", "12", "--seen", "eng,fra", "--unseen", "spa,rus",
        "--batch-size", "8", "--epochs", "1", "--evals-per-epoch", "1", "--max-length", "48", "--lr", "1e-3",
        "--num-layers", "none"]


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "alchemy_tune.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})


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
    result = cli("train", *model, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_help_on_every_command():
    from alchemy_tune.cli import COMMANDS

    for command in COMMANDS:
        result = cli(command, "--help", timeout=120)
        assert result.returncode == 0 and "usage" in result.stdout.lower(), (command, result.stderr)
    top = cli("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in COMMANDS)


def test_train_prints_table_and_writes_a_run(tiny_encoder_dir, tmp_path):
    out = tmp_path / "run"
    result = cli("train", "--model", tiny_encoder_dir, *TINY, "--val", "rus", "--out", str(out))
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
