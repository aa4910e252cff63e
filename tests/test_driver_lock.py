"""One driver per run folder (tuning/driver_lock.py): a second search with the same name, or a resume while
the first driver lives, is a one-line refusal naming the holder; a dead holder leaves no stale lock; a search
killed before its first trial leaves a name that can be used again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alchemy_tune.cli import main
from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.settings import SearchSettings
from alchemy_tune.results.run_record import RUN_FILE, RunRecord, new_run_dir
from alchemy_tune.tuning.driver_lock import LOCK_FILE, DriverLock

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def holder(tmp_path):
    """A separate process that holds a run folder's lock until killed (as a running driver does)."""
    procs = []

    def start(run_dir: str) -> subprocess.Popen:
        code = textwrap.dedent(f"""
            import sys, time
            from alchemy_tune.tuning.driver_lock import DriverLock
            with DriverLock({run_dir!r}, "alchemy-tune search"):
                print("held", flush=True)
                time.sleep(600)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_search_with_the_same_name_is_refused_while_the_first_runs(tmp_path, holder, capsys):
    proc = holder(str(tmp_path / "twice"))
    code = main(["--name", "twice", "--storage", str(tmp_path), "--trials", "1", "--sampler", "random"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"another driver is running it (alchemy-tune search, pid {proc.pid} on" in err
    assert not (tmp_path / "twice" / RUN_FILE).exists()  # nothing written by the refused driver


def test_resume_is_refused_while_the_original_driver_lives(tmp_path, holder, capsys):
    run_dir = str(tmp_path / "running")
    RunRecord.new("search", settings=SearchSettings(trials=2)).write(run_dir)
    proc = holder(run_dir)
    assert main(["resume", run_dir]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pid {proc.pid}" in err and f"alchemy-tune resume {run_dir}" in err


def test_a_killed_holder_leaves_no_stale_lock(tmp_path, holder):
    run_dir = str(tmp_path / "crashed")
    proc = holder(run_dir)
    with pytest.raises(UsageError, match="another driver"):
        DriverLock(run_dir, "alchemy-tune resume").__enter__()
    os.kill(proc.pid, signal.SIGKILL)  # the kernel drops a dead process's flock
    proc.wait()
    with DriverLock(run_dir, "alchemy-tune resume"):
        assert "alchemy-tune resume" in (tmp_path / "crashed" / LOCK_FILE).read_text()


def test_a_search_that_stopped_before_its_first_trial_frees_its_name(tmp_path, capsys):
    from alchemy_tune.tuning.run_folder import forget_abandoned

    run_dir = str(tmp_path / "early")
    RunRecord.new("search", settings=SearchSettings(trials=2)).write(run_dir)
    with pytest.raises(UsageError, match="already holds a run"):
        new_run_dir(str(tmp_path), "early", "choose another --name")
    forget_abandoned(run_dir)
    assert "stopped before its first trial" in capsys.readouterr().err
    assert new_run_dir(str(tmp_path), "early", "choose another --name") == run_dir
    # a run that has a study journal is not abandoned: its record stays
    RunRecord.new("search", settings=SearchSettings(trials=2)).write(run_dir)
    Path(run_dir, "study.journal").write_text("")
    forget_abandoned(run_dir)
    assert Path(run_dir, RUN_FILE).exists()

