"""Names of the values a trial reports, shared by the trial, the search, the results and the analysis.

A trial calls ``report(metrics, checkpoint_dir=None)`` after every evaluation with a dict of these keys.
Scalar keys are plain floats/ints/strings; ``LANGS`` holds the per-language metrics::

    {
      "step": 120, "epoch": 1.5, "examples_seen": 3840,
      "lambda": 10.0, "task_weight": 1.0, "uriel_weight": 10.0,   # λ = uriel_weight / task_weight
      "train_loss": 1.31, "task_loss": 1.22, "uriel_loss": 0.009,
      "dev_seen": 0.61, "dev_val": 0.55, "dev_unseen": 0.52, "dev_all": 0.57, "dev_select": 0.59,
      "test_seen": 0.60, "test_val": 0.54, "test_unseen": 0.50, "test_all": 0.56,
      "langs": {"eng": {"uriel": "eng", "seen": True, "role": "seen",
                        "dev": {"accuracy": 0.7, "macro_f1": 0.6},
                        "test": {"accuracy": 0.68, "macro_f1": 0.59}}, ...},
      "items": {"eng": {"prediction": [2, 0, ...], "label": [2, 1, ...]}, ...},   # test split only
      "primary_metric": "accuracy",
      "notes": [],                   # e.g. why a metric is NaN ("dev pearson of eng: constant prediction")
      "status": "running",           # "running" | "completed" | "diverged"
      "reason": "",                  # why it diverged, else ""
      "train_seconds": 41.2,         # compute seconds spent by this trial so far (resumes included)
      "test_scored": True,           # test was scored at this step (chosen steps and the last only)
      "precision": "fp32",           # what ran: "fp32" or "bf16" (autocast, native bf16 GPUs only)
      "peak_rss_mb": 1210.5,         # this trial's peak host RSS so far (MB)
      "peak_gpu_mb": NaN,            # peak GPU memory reserved by torch (MB); NaN on CPU
    }

The ``*_seen`` / ``*_val`` / ``*_unseen`` / ``*_all`` values are means over languages of the task's primary
metric (accuracy for classification, Pearson for pair regression); NaN when a group has no language.

Language roles (see :mod:`alchemy_tune.tasks.base`): ``seen`` languages are trained on, ``val``
(validation) languages are never trained on and their dev split is what the search chooses with, ``unseen``
(test) languages are never trained on and never used for any decision. ``dev_select`` is the mean of the
per-language dev scores over seen ∪ val languages: the default selection metric.

Test is scored only at a step that becomes the best on the selection metric (``dev_select`` unless the
search gives another) and at the last step; elsewhere the ``test_*`` values are NaN, ``test_scored`` is
False and ``langs`` holds no ``test`` entries. Where test is scored, ``items`` holds every test example's
prediction and label per language, in the order of the language's test split (which is the same for every
trial of a task: the item index pairs two trials' answers to one example); the analysis builds per-language
intervals from them.
"""


STEP = "step"
EPOCH = "epoch"
EXAMPLES_SEEN = "examples_seen"
LAMBDA = "lambda"
TASK_WEIGHT = "task_weight"
URIEL_WEIGHT = "uriel_weight"
TRAIN_LOSS = "train_loss"
TASK_LOSS = "task_loss"
URIEL_LOSS = "uriel_loss"
LANGS = "langs"
ITEMS = "items"
PRIMARY_METRIC = "primary_metric"
NOTES = "notes"
STATUS = "status"
REASON = "reason"
TRAIN_SECONDS = "train_seconds"
TEST_SCORED = "test_scored"
PRECISION = "precision"
PEAK_RSS_MB = "peak_rss_mb"
PEAK_GPU_MB = "peak_gpu_mb"

SPLITS_EVALUATED = ("dev", "test")
TRAIN, EXAMPLES = "train", "examples"
"""Each report's ``langs[lang]["train"]["examples"]``: a seen language's actual training count (the metrics
table's ``split = train, metric = examples`` rows), so a size is a number even when ``train_size`` is None."""
SPLITS_RECORDED = (*SPLITS_EVALUATED, TRAIN)
SEEN, VAL, UNSEEN = "seen", "val", "unseen"
ROLES = (SEEN, VAL, UNSEEN)
GROUPS = (SEEN, VAL, UNSEEN, "all")
SELECT = "dev_select"
"""Mean dev score over the seen and validation languages (one value per language, then the mean)."""
SELECT_ROLES = (SEEN, VAL)
ORACLE_PREFIX = "oracle_"
ORACLE_DEV_UNSEEN = ORACLE_PREFIX + "dev_unseen"


def average_key(split: str, group: str) -> str:
    """``average_key("dev", "unseen") == "dev_unseen"``."""
    return f"{split}_{group}"


AVERAGE_KEYS = tuple(average_key(s, g) for s in SPLITS_EVALUATED for g in GROUPS) + (SELECT,)

SELECTION_METRICS = (SELECT, "dev_seen", "dev_val", ORACLE_DEV_UNSEEN)
"""What may choose (best step, pruning, sampler feedback, best configuration). Test-language dev data only
under the ``oracle_`` name, so that every output derived from it says so."""


def is_oracle(metric: str) -> bool:
    """True for a selection metric computed on the test (unseen) languages' own dev data."""
    return str(metric).startswith(ORACLE_PREFIX)


def selects_on_test(metric: str) -> bool:
    """True when selecting on ``metric`` uses test-language data: the oracle, or a run made before roles
    existed that selected on ``dev_unseen`` / ``dev_all`` (so their tables say oracle too)."""
    return is_oracle(metric) or metric in ("dev_unseen", "dev_all")


def report_key(metric: str) -> str:
    """The key of a report holding ``metric``'s value: ``oracle_dev_unseen`` reads ``dev_unseen``."""
    return str(metric)[len(ORACLE_PREFIX):] if is_oracle(metric) else str(metric)


def lang_role(info) -> str:
    """The role of one ``langs`` entry (reports written before roles existed only say ``seen``)."""
    role = info.get("role") if hasattr(info, "get") else None
    if role in ROLES:
        return role
    return SEEN if info.get("seen") else UNSEEN

RUNNING = "running"
COMPLETED = "completed"
DIVERGED = "diverged"
# Statuses only the search assigns (a trial never reports these itself):
PRUNED = "pruned"
FAILED = "failed"
