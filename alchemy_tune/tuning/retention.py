"""Which trial checkpoints the driver deletes, and when: never one that a resumed search may need.

Ray Tune's own ``CheckpointConfig(num_to_keep=2)`` deletes a trial's older checkpoints as soon as it has two
newer ones. But a resumed search restores each trial from the checkpoint named in Tune's experiment state,
which Tune saves every so often and uploads in the background: when a trial checkpoints faster than that, the
saved state names a checkpoint already deleted, and the resumed trial cannot be restored ("does not exist on
storage anymore"; Tune retries it until ``max_failures`` and errors it). The soak
(``benchmarks/soak.py``) found it: a driver killed on object storage left trials that could not continue.

So Tune keeps every checkpoint, and :class:`CheckpointRetention` deletes one only when it is neither among its
trial's ``keep`` newest nor at or after the oldest checkpoint that an experiment state saved within the grace
period names (``grace_s``, at least three of the longest gaps seen between saves; Tune asks this callback for its
state at each save). A resumed driver deletes only checkpoints registered since it started.

A trial that ends (completed, pruned, diverged) is never run again, so at the next save it keeps only what
``finished`` asks for: ``best`` (the default: the checkpoint of its best evaluation by the selection metric,
the model worth loading afterwards; it is spared while the trial runs too), ``none``, or ``all`` (then
nothing is ever deleted). A failed trial keeps its newest ones: ``resume
--retry-errored`` continues it from them.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from ray.tune import Callback

logger = logging.getLogger(__name__)


class CheckpointRetention(Callback):
    """Deletes old trial checkpoints at Tune's experiment-state saves, keeping any a saved state may name."""

    # what a callback pickled by an earlier version (a resumed run's Tune state) reads: without a metric
    # a finished trial's best checkpoint is its newest
    finished, metric, mode = "best", None, "max"

    def __init__(self, keep: int = 2, grace_s: float = 300.0, finished: str = "best", metric: str | None = None,
                 mode: str = "max"):
        self.keep, self.grace_s = keep, grace_s
        self.finished, self.metric, self.mode = finished, metric, mode
        self._forget()

    def _forget(self) -> None:
        self._checkpoints: dict[str, list] = {}  # trial id -> its checkpoints, oldest first
        self._serial: dict[str, int] = {}  # trial id -> number of checkpoints registered so far
        self._saves: deque = deque()  # (time, {trial id: serial of its newest checkpoint}) per state save
        self._ended: set[str] = set()  # forgotten once down to `keep` checkpoints: the work stays per live trial
        self._done: set[str] = set()  # ended for good (not failed): trimmed to `finished` at the next save
        self._values: dict[tuple[str, int], float] = {}  # (trial, checkpoint serial) -> its selection value
        self._grace = self.grace_s

    def __getstate__(self):
        return {"keep": self.keep, "grace_s": self.grace_s, "finished": self.finished, "metric": self.metric,
                "mode": self.mode}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._forget()  # a resumed driver deletes only the checkpoints it saw registered

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        n = self._serial.get(trial.trial_id, 0)
        self._serial[trial.trial_id] = n + 1
        self._checkpoints.setdefault(trial.trial_id, []).append((n, checkpoint))
        value = (getattr(trial, "last_result", None) or {}).get(self.metric) if self.metric else None
        if isinstance(value, (int, float)) and value == value:
            self._values[(trial.trial_id, n)] = float(value) * (1 if self.mode == "max" else -1)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended.add(trial.trial_id)
        if "step" in (getattr(trial, "last_result", None) or {}):  # ran and ended: never resumed (a trial stopped unstarted has no checkpoint)
            self._done.add(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended.add(trial.trial_id)

    def get_state(self):
        """Called by Tune while it saves its experiment state: the state being saved names each trial's newest
        checkpoint. Then delete what no state saved within the grace period can name."""
        now = time.monotonic()
        if self._saves:  # a slow upload can leave the stored state a few saves behind: 3 gaps at least
            self._grace = max(self._grace, 3 * (now - self._saves[-1][0]))
        self._saves.append((now, {tid: s - 1 for tid, s in self._serial.items()}))
        # the newest save older than the grace period stays: the stored state may still be that one
        while len(self._saves) > 1 and now - self._saves[1][0] > self._grace:
            self._saves.popleft()
        for tid, checkpoints in (self._checkpoints.items() if self.finished != "all" else ()):
            floor = min(refs.get(tid, -1) for _, refs in self._saves)
            removed = set()
            best = self._best(tid, checkpoints) if self.finished == "best" else None
            for n, checkpoint in checkpoints[:-self.keep]:
                if n >= floor:  # floor -1: a save that knew none of this trial's checkpoints may be stored
                    break
                if n == best:  # what the trial keeps once it ends
                    continue
                try:
                    checkpoint.filesystem.delete_dir(checkpoint.path)
                except FileNotFoundError:
                    pass
                except OSError as exc:  # storage hiccup: the next save tries again
                    logger.warning("could not delete old checkpoint %s: %s", checkpoint.path, exc)
                    continue
                removed.add(n)
            if removed:
                self._checkpoints[tid] = [(n, c) for n, c in checkpoints if n not in removed]
        self._trim_finished()
        for tid in [t for t in self._ended if len(self._checkpoints.get(t, ())) <= self.keep]:
            self._ended.discard(tid)
            self._checkpoints.pop(tid, None)
            self._serial.pop(tid, None)
        return None

    def _best(self, tid: str, checkpoints: list) -> int | None:
        """The serial of the trial's best checkpoint by the selection metric (the later of equal ones, as the
        tables choose); None when it has none."""
        if not checkpoints:
            return None
        return max(checkpoints, key=lambda c: (self._values.get((tid, c[0]), float("-inf")), c[0]))[0]

    def _trim_finished(self) -> None:
        """Finished trials keep only their best checkpoint (or none, or all)."""
        if self.finished == "all":
            self._done.clear()
            return
        for tid in list(self._done):
            checkpoints = self._checkpoints.get(tid, [])
            keep = {self._best(tid, checkpoints)} if self.finished == "best" and checkpoints else set()
            left = []
            for n, checkpoint in checkpoints:
                if n in keep:
                    left.append((n, checkpoint))
                    continue
                try:
                    checkpoint.filesystem.delete_dir(checkpoint.path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    logger.warning("could not delete checkpoint %s: %s", checkpoint.path, exc)
                    left.append((n, checkpoint))
            self._checkpoints[tid] = left
            self._done.discard(tid)
            self._ended.discard(tid)
            if len(left) <= 1:
                self._checkpoints.pop(tid, None)
                self._serial.pop(tid, None)
