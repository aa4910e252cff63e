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
