"""Old trial checkpoints are deleted only when no recently saved experiment state can name them."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

from ray import tune

from alchemy_tune.tuning import retention
from alchemy_tune.tuning.retention import CheckpointRetention


def test_a_checkpoint_a_recent_saved_state_names_survives_until_no_stored_state_can_name_it(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(retention.time, "monotonic", lambda: clock[0])
    keeper = CheckpointRetention(keep=2, grace_s=100)
    trial, later = SimpleNamespace(trial_id="t"), SimpleNamespace(trial_id="u")

    def checkpoint(trial, n):
        path = tmp_path / trial.trial_id / f"checkpoint_{n:06d}"
        path.mkdir(parents=True)
        keeper.on_checkpoint(0, [], trial, tune.Checkpoint.from_directory(str(path)))

    def left(trial):
        return sorted(int(p.name[-6:]) for p in (tmp_path / trial.trial_id).iterdir())

    for n in range(3):
        checkpoint(trial, n)
    keeper.get_state()  # save A names checkpoint 2
    assert left(trial) == [1, 2]
    for n in range(3, 6):
        checkpoint(trial, n)
    clock[0] = 10.0
    keeper.get_state()  # save B names 5; save A (naming 2) may still be the stored state
    assert left(trial) == [2, 3, 4, 5]  # Tune's num_to_keep=2 would have deleted 2
    for n in range(3):
        checkpoint(later, n)  # a trial no save has seen yet
    for clock[0] in range(20, 130, 10):  # saves every 10 s: the grace period stays 100 s
        keeper.get_state()
    # at 120 s, A is past the grace period; B (10 s), the newest save older than that, may still be stored
    assert left(trial) == [4, 5]
    assert left(later) == [0, 1, 2]  # B did not know it: B's state would start it from scratch
    clock[0] = 130.0
    keeper.get_state()  # B is gone too; the oldest save kept names later's checkpoint 2
    assert left(later) == [1, 2]
    # a resumed driver starts over: it never deletes what it did not see registered
    again = pickle.loads(pickle.dumps(keeper))
    again.get_state()
    assert left(trial) == [4, 5] and left(later) == [1, 2]


def test_an_ended_trial_is_forgotten_once_down_to_its_newest_checkpoints(tmp_path):
    keeper = CheckpointRetention(keep=2, grace_s=0)
    trial = SimpleNamespace(trial_id="t")
    for n in range(4):
        path = tmp_path / f"checkpoint_{n:06d}"
        path.mkdir()
        keeper.on_checkpoint(0, [], trial, tune.Checkpoint.from_directory(str(path)))
    keeper.on_trial_complete(0, [], trial)
    keeper.get_state()
    keeper.get_state()  # the first save named checkpoint 3; with no grace the second one is the only one kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000002", "checkpoint_000003"]
    assert keeper._checkpoints == {} and keeper._saves[-1][1] == {}  # nothing per trial is kept after its end


def test_a_finished_trial_keeps_only_its_best_checkpoint_by_default_or_none_or_all(tmp_path):
    """Finished trials never resume: only the best evaluation's checkpoint (the model worth loading) stays."""
    for finished, want in (("best", ["checkpoint_000001"]), ("none", []),
                           ("all", [f"checkpoint_{n:06d}" for n in range(4)])):
        folder = tmp_path / finished
        keeper = CheckpointRetention(keep=2, grace_s=1e9, finished=finished, metric="dev_select", mode="max")
        trial = SimpleNamespace(trial_id="t", last_result={})
        for n, value in enumerate((0.2, 0.5, 0.4, 0.5 - 1e-9)):
            path = folder / f"checkpoint_{n:06d}"
            path.mkdir(parents=True)
            trial.last_result = {"dev_select": value, "step": n + 1}
            keeper.on_checkpoint(0, [], trial, tune.Checkpoint.from_directory(str(path)))
        keeper.get_state()  # still running: its newest two, and the best so far unless all are kept
        assert len(list(folder.iterdir())) == {"none": 2, "best": 3, "all": 4}[finished]
        keeper.on_trial_complete(0, [], trial)
        keeper.get_state()
        assert sorted(p.name for p in folder.iterdir()) == want, finished


def three_checkpoints(keeper, folder, trial) -> None:
    for n in range(3):
        path = folder / f"checkpoint_{n:06d}"
        path.mkdir()
        keeper.on_checkpoint(0, [], trial, tune.Checkpoint.from_directory(str(path)))


def test_a_failed_trial_keeps_its_newest_checkpoints_for_a_retry(tmp_path):
    keeper = CheckpointRetention(keep=2, grace_s=0, finished="none", metric="dev_select")
    trial = SimpleNamespace(trial_id="t", last_result={"dev_select": 0.1})
    three_checkpoints(keeper, tmp_path, trial)
    keeper.on_trial_error(0, [], trial)
    keeper.get_state()
    keeper.get_state()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_000001", "checkpoint_000002"]


def test_a_callback_pickled_before_finished_trials_were_trimmed_still_works(tmp_path):
    old = CheckpointRetention.__new__(CheckpointRetention)
    old.__setstate__({"keep": 2, "grace_s": 0})  # what an earlier version's Tune state holds
    trial = SimpleNamespace(trial_id="t", last_result={"step": 1})
    three_checkpoints(old, tmp_path, trial)
    old.on_trial_complete(0, [], trial)
    old.get_state()
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint_000002"]  # its newest
