"""Names of the values a trial reports, shared by the trial, the search, the results and the analysis.

A trial calls ``report(metrics, checkpoint_dir=None)`` after every evaluation with a dict of these keys.
Scalar keys are plain floats/ints/strings; ``LANGS`` holds the per-language metrics::

    {
      "step": 120, "epoch": 1.5, "examples_seen": 3840,
      "lambda": 10.0, "train_loss": 1.31, "task_loss": 1.22, "uriel_loss": 0.009,
      "dev_seen": 0.61, "dev_unseen": 0.52, "dev_all": 0.57,
      "test_seen": 0.60, "test_unseen": 0.50, "test_all": 0.56,
      "langs": {"eng": {"uriel": "eng", "seen": True,
                        "dev": {"accuracy": 0.7, "macro_f1": 0.6},
                        "test": {"accuracy": 0.68, "macro_f1": 0.59}}, ...},
      "primary_metric": "accuracy",
      "status": "running",           # "running" | "completed" | "diverged"
      "reason": "",                  # why it diverged, else ""
      "train_seconds": 41.2,         # compute seconds spent by this trial so far (resumes included)
    }

The ``*_seen`` / ``*_unseen`` / ``*_all`` values are means over languages of the task's primary metric
(accuracy for classification, Pearson for pair regression); NaN when a group has no language.
"""

STEP = "step"
EPOCH = "epoch"
EXAMPLES_SEEN = "examples_seen"
LAMBDA = "lambda"
TRAIN_LOSS = "train_loss"
TASK_LOSS = "task_loss"
URIEL_LOSS = "uriel_loss"
LANGS = "langs"
PRIMARY_METRIC = "primary_metric"
STATUS = "status"
REASON = "reason"
TRAIN_SECONDS = "train_seconds"

SPLITS_EVALUATED = ("dev", "test")
GROUPS = ("seen", "unseen", "all")


def average_key(split: str, group: str) -> str:
    """``average_key("dev", "unseen") == "dev_unseen"``."""
    return f"{split}_{group}"


AVERAGE_KEYS = tuple(average_key(s, g) for s in SPLITS_EVALUATED for g in GROUPS)

RUNNING = "running"
COMPLETED = "completed"
DIVERGED = "diverged"
# Statuses only the search assigns (a trial never reports these itself):
PRUNED = "pruned"
FAILED = "failed"
