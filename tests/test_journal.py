"""The study journal's file lock: a lock left by a dead driver must not block a resumed search forever."""

import os
import subprocess
import sys
import textwrap

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from alchemy_tune.tuning.journal import JOURNAL, drop_dangling_lock
from alchemy_tune.tuning.searcher import STUDY_NAME


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
        from alchemy_tune.tuning.searcher import StudyHandle
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


def test_a_search_on_an_object_store_keeps_its_tables_and_journal_there(tmp_path, s3, monkeypatch):
    """The fast tier's object-store check: a search (embedded Ray, scripted trials) whose run folder is
    s3://... on an S3 API served on 127.0.0.1. Its tables and its study journal are read back from the bucket,
    not from this machine's copy; the slow tier kills and resumes such a search on a two-node cluster."""
    import json

    import ray

    from alchemy_tune.core import constants as C
    from alchemy_tune.tuning.journal import download, journal_location
    from alchemy_tune.tuning.study_attrs import RAY_ID_ATTR
    from alchemy_tune.results.schema import read_steps, read_trials
    from alchemy_tune.tuning.search import SearchRequest, run_search

    monkeypatch.setenv("SCRIPTED_SECONDS_PER_EVAL", "0.05")
    space = tmp_path / "space.yaml"
    space.write_text(json.dumps({"search": {"sampler": "random", "pruner": "none", "trials": 2,
                                            "max_concurrent": 2, "seed": 0, "baselines": "none"},
                                 "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}))
    ray.shutdown()  # the embedded Ray must start after the S3 environment is set, for its workers
    try:
        outcome = run_search(SearchRequest(space_path=str(space), storage=s3, name="objects", num_cpus=2,
                                           trial_fn="scripted_trials:quality_trial", progress_interval_s=1000))
    finally:
        ray.shutdown()
    run_dir = f"{s3}/objects"
    assert outcome.run_dir == run_dir and outcome.counts == {C.COMPLETED: 2}
    local = tmp_path / "from-the-bucket.journal"
    assert not local.exists() and journal_location(run_dir) != str(local)
    download(run_dir, str(local))
    study = optuna.load_study(study_name=STUDY_NAME, storage=JournalStorage(JournalFileBackend(str(local))))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    rows = read_trials(run_dir).to_pylist()
    assert sorted(r["trial_id"] for r in rows) == sorted(t.user_attrs[RAY_ID_ATTR] for t in study.trials)
    assert all(r["status"] == C.COMPLETED and r["n_reports"] == 6 for r in rows)
    assert len(read_steps(run_dir)) == 12  # every evaluation of both trials, once


def test_a_journal_whose_last_line_a_crash_cut_reopens_and_grows_cleanly(tmp_path, capsys):
    """A crash mid-append leaves the journal's last line cut (no newline). Opening the study moves the cut
    piece aside and truncates after the last whole line, so the next append starts a line of its own: every
    later reader (a resume, optuna-dashboard) parses the whole file, and every recorded trial is kept."""
    import json as _json

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from alchemy_tune.core.settings import SearchSettings
    from alchemy_tune.tuning.searcher import StudyHandle

    journal = str(tmp_path / "study.journal")
    handle = StudyHandle.for_settings(journal, SearchSettings(sampler="random", pruner="none"), run_dir=str(tmp_path))
    for x in (0.1, 0.2, 0.3):
        trial = handle.study.ask()
        trial.suggest_float("lr", 0.0, 1.0)
        handle.study.tell(trial, x)
    whole = open(journal, "rb").read()
    lines = whole.splitlines(keepends=True)
    with open(journal, "wb") as f:  # the crash: the last operation half-written
        f.write(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    again = StudyHandle.for_settings(journal, SearchSettings(sampler="random", pruner="none"), run_dir=str(tmp_path))
    kept = len(again.study.get_trials())
    trial = again.study.ask()
    trial.suggest_float("lr", 0.0, 1.0)
    again.study.tell(trial, 0.4)
    assert "its last line was cut off by a crash" in capsys.readouterr().err
    raw = open(journal, "rb").read()
    assert raw.endswith(b"\n") and all(_json.loads(line) for line in raw.splitlines())  # no glued line
    reread = optuna.load_study(study_name=None, storage=JournalStorage(JournalFileBackend(journal)))
    assert len(reread.get_trials()) == kept + 1 and kept >= 2
    assert list(tmp_path.glob("study.journal.cut-*"))
