"""The paper workflow's commands on MASSIVE release files: one trial, and a 2-trial search over the paper's space.

The paper space asks for a GPU and Hugging Face models per trial; on this CPU-only, offline machine the same
space runs with those two pinned from the command line (--gpus-per-trial 0 --model <local folder>).
"""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from release_fixtures import write_massive
from testing.cli import run_cli_process

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, timeout=400):
    return run_cli_process(*args, cwd=ROOT, timeout=timeout)


def test_train_on_massive_release_files(tmp_path, tiny_encoder_dir):
    data = write_massive(tmp_path / "massive")
    result = cli("train", "--task", "massive", "--data-dir", str(data), "--model", tiny_encoder_dir,
                 "--num-layers", "none", "--epochs", "2", "--batch-size", "16", "--lr", "1e-3",
                 "--train-size", "none", "--dev-size", "none", "--test-size", "none")
    assert result.returncode == 0, result.stderr
    # the paper had no validation languages: 25 seen, 27 test locales
    assert result.stdout.count("TEST") == 27 and "test average" in result.stdout and "val average" not in result.stdout
    assert "sw-KE" in result.stdout and "swa" in result.stdout


@pytest.mark.slow
def test_two_trials_of_the_paper_massive_space(tmp_path, tiny_pooler_encoder_dir):
    data = write_massive(tmp_path / "massive")
    # the paper space pools with the pretrained pooler: a tiny BERT that has one stands in for mBERT
    result = cli("--trials", "2", "--space", "search_spaces/paper-massive.yaml", "--data-dir", str(data),
                 "--model", tiny_pooler_encoder_dir, "--set", "num_layers=null", "--gpus-per-trial", "0",
                 "--cpus-per-trial", "1", "--num-cpus", "2", "--storage", str(tmp_path / "runs"), "--name", "paper")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "search finished" in result.stdout
    trials = pq.read_table(tmp_path / "runs" / "paper" / "results" / "trials").to_pylist()
    assert len(trials) == 2 and all(t["status"] == "completed" for t in trials)
    assert {t["cfg_task"] for t in trials} == {"massive"} and {t["cfg_max_length"] for t in trials} == {80}
    metrics = pq.read_table(tmp_path / "runs" / "paper" / "results" / "metrics")
    assert len(set(metrics.column("lang").to_pylist())) == 52
