"""Scripted trial functions with the ``run_trial`` contract, whose scores are known in advance.

They let search tests check decisions (which trial is pruned, what the Pareto front is) exactly, in seconds.
Ray workers import this module by name (the tests put this folder on their PYTHONPATH). Searches that must
prove the real trial loop works under Ray use ``alchemy_tune.trial.train.run_trial`` instead.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time

N_EVALS = 6
SECONDS_PER_EVAL = float(os.environ.get("SCRIPTED_SECONDS_PER_EVAL", "0.3"))


def _quality(config) -> float:
    """1.0 at lr = 1e-3, falling by 1/3 per decade away from it."""
    return max(0.0, 1.0 - abs(math.log10(config.get("lr", 1e-3)) + 3) / 3)


def _report(report, step, dev_seen, dev_unseen, done):
    # roles: eng seen; spa, rus, ita, ukr validation; swh, kor test. Offsets average 0 in each group, so the
    # averages are the means of these scores; five seen+validation languages are enough pairs for a
    # Wilcoxon test at one evaluation.
    langs = {"eng": {"uriel": "eng", "seen": True, "role": "seen", "dev": {"accuracy": dev_seen}}}
    for code, role, offset in (("spa", "val", 0.02), ("rus", "val", -0.02), ("ita", "val", 0.01),
                               ("ukr", "val", -0.01), ("swh", "unseen", 0.0), ("kor", "unseen", 0.0)):
        langs[code] = {"uriel": code, "seen": False, "role": role, "dev": {"accuracy": dev_unseen + offset}}
    metrics = {"step": step, "epoch": step / N_EVALS, "dev_seen": dev_seen, "dev_val": dev_unseen,
               "dev_unseen": dev_unseen, "dev_select": (dev_seen + 4 * dev_unseen) / 5,
               "dev_all": (dev_seen + 6 * dev_unseen) / 7, "langs": langs, "primary_metric": "accuracy",
               "status": "completed" if done else "running", "reason": "", "train_seconds": step * SECONDS_PER_EVAL}
    with tempfile.TemporaryDirectory() as ckpt:
        with open(os.path.join(ckpt, "state.json"), "w") as handle:
            json.dump({"step": step}, handle)
        report(metrics, ckpt)


def _start(resume_from) -> int:
    if not resume_from:
        return 0
    with open(os.path.join(resume_from, "state.json")) as handle:
        return json.load(handle)["step"]


def quality_trial(config, report, *, resume_from=None):
    """Learning curve rising to ``_quality(config)``; ``lambda`` >= 1e30 diverges at once; lr 1e-5 raises
    while the file named by $SCRIPTED_FAIL_FILE exists (a crash that a retry can get past)."""
    starts = os.environ.get("SCRIPTED_STARTS")
    if starts and not resume_from:  # when each trial began, for tests of what starts when
        with open(starts, "a") as handle:
            handle.write(f"{time.time()}\n")
    fail_file = os.environ.get("SCRIPTED_FAIL_FILE")
    if config.get("lr") == 1e-5 and fail_file and os.path.exists(fail_file):
        raise RuntimeError("scripted failure")
    step = _start(resume_from)
    q = _quality(config)
    while step < N_EVALS:
        time.sleep(SECONDS_PER_EVAL)
        step += 1
        if config.get("lambda", 0) >= 1e30:
            report({"step": step, "status": "diverged", "reason": "non-finite loss (scripted)",
                    "dev_unseen": math.nan, "dev_seen": math.nan, "dev_select": math.nan}, None)
            return
        value = q * (0.5 + 0.5 * step / N_EVALS)
        _report(report, step, value + 0.05, value, step == N_EVALS)


def trade_off_trial(config, report, *, resume_from=None):
    """λ trades seen-language for unseen-language accuracy: a Pareto front over λ."""
    step = _start(resume_from)
    share = min(1.0, config.get("lambda", 0) / 10)
    q = _quality(config)
    while step < N_EVALS:
        time.sleep(SECONDS_PER_EVAL / 3)
        step += 1
        _report(report, step, q * (1 - 0.5 * share), q * (0.5 + 0.5 * share), step == N_EVALS)


def scrambled_test_labels_trial(config, report, *, resume_from=None):
    """The real trial, with every label of the test (unseen) languages' dev and test splits changed.

    Training never sees those languages, and nothing that chooses may read them: a search run with this
    trial must make exactly the decisions of one run with ``alchemy_tune.trial.train.run_trial``.
    """
    import dataclasses

    from alchemy_tune.trial import train

    load = train.load_task

    def scrambled(name, options):
        task = load(name, options)
        n = max(2, len(task.labels))
        for split in ("dev", "test"):
            examples = task.split(split)
            for lang in task.unseen:  # the next class for every example: no label stays right
                examples[lang] = [dataclasses.replace(e, label=(e.label + 1) % n) for e in examples[lang]]
        return task

    train.load_task = scrambled
    try:
        return train.run_trial(config, report, resume_from=resume_from)
    finally:
        train.load_task = load
