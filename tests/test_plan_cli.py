"""`alchemy-tune plan` and `--dry-run`: what a paper space would run, with languages and URIEL coverage."""

import os
import subprocess
import sys
from pathlib import Path

from release_fixtures import write_massive

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "alchemy_tune.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_plan_of_the_paper_massive_space_without_data():
    result = cli("plan", "--space", "search_spaces/paper-massive.yaml", "--show", "5")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "trials: 100 (the full grid)" in out
    assert "25 seen, 27 unseen languages (declared lists" in out  # no hub here: the loader's own lists
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:5] in ("sw-KE", "zh-TW", "en-US")}
    assert rows["sw-KE"][1:3] == ["UNSEEN", "swa"] and rows["zh-TW"][1:3] == ["seen", "zho"]
    assert "coverage syntax_knn" in out and "... and 95 more" in out


def test_plan_with_release_files_loads_them(tmp_path):
    data = write_massive(tmp_path / "massive")
    result = cli("plan", "--space", "search_spaces/paper-massive.yaml", "--data-dir", str(data), "--show", "2")
    assert result.returncode == 0, result.stderr
    assert "25 seen, 27 unseen languages (loaded)" in result.stdout


def test_dry_run_of_the_search_prints_the_same_plan():
    result = cli("--dry-run", "--space", "search_spaces/paper-grid.yaml", "--show", "3")
    assert result.returncode == 2 and "unrecognized arguments: --show" in result.stderr
    result = cli("--dry-run", "--space", "search_spaces/paper-grid.yaml")
    assert result.returncode == 0, result.stderr
    assert "trials: 49 (the full grid)" in result.stdout and "(loaded)" in result.stdout


def test_plan_bad_space_is_one_line(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("lr: {type: float, low: 0.001, high: 1.0e-5}\n")
    result = cli("plan", "--space", str(bad))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "lr.low: low <= high must hold" in result.stderr
