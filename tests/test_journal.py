"""The study journal's file lock: a lock left by a dead driver must not block a resumed search forever."""

import os
import subprocess
import sys
import textwrap

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from alchemy_tune.journal import JOURNAL, drop_dangling_lock
from alchemy_tune.optuna_searcher import STUDY_NAME


def test_a_moved_run_with_a_dead_drivers_lock_opens(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    journal = old / JOURNAL
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(journal))), study_name=STUDY_NAME)
    study.tell(study.ask(), 0.5)
    # The driver was killed while it held Optuna's lock (a symlink to the journal's path), then the run
    # folder moved: the lock now dangles, and Optuna's stale-lock recovery, which stats the link, never fires.
    os.symlink(str(journal), str(journal) + ".lock")
    new = tmp_path / "new"
    old.rename(new)
    assert os.path.islink(new / (JOURNAL + ".lock")) and not os.path.exists(new / (JOURNAL + ".lock"))
    code = textwrap.dedent(f"""
        from alchemy_tune.optuna_searcher import StudyHandle
        h = StudyHandle({str(new / JOURNAL)!r}, objectives=[("dev_select", "max")], sampler="random",
                        pruner="none", seed=0)
        h.study.tell(h.study.ask(), 0.7)
        print(len(h.study.get_trials()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.split()[-1] == "2", out.stderr[-2000:]
    assert not os.path.lexists(new / (JOURNAL + ".lock"))  # released after the write, as Optuna does


def test_a_live_lock_is_left_alone(tmp_path):
    journal = tmp_path / JOURNAL
    journal.write_text("")
    os.symlink(str(journal), str(journal) + ".lock")
    assert drop_dangling_lock(str(journal)) is False and os.path.islink(str(journal) + ".lock")
    journal.unlink()
    assert drop_dangling_lock(str(journal)) is True and not os.path.lexists(str(journal) + ".lock")
