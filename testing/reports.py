"""Synthetic trial reports in the format a trial hands its ``report`` callable (see core/constants.py)."""

from __future__ import annotations

from alchemy_tune.core import constants as C

LANGS = {"eng": ("eng", True), "fra": ("fra", True), "sw-KE": ("swh", False), "ja-JP": ("jpn", False)}


def make_report(step: int, *, offset: float = 0.0, status: str = C.RUNNING) -> dict:
    """A report dict in the constants.py format; scores encode the step so rows can be told apart."""
    langs = {}
    for i, (lang, (uriel, seen)) in enumerate(LANGS.items()):
        acc = round(0.1 * step + 0.01 * i + offset, 6)
        langs[lang] = {"uriel": uriel, "seen": seen, "dev": {"accuracy": acc, "macro_f1": acc / 2},
                       "test": {"accuracy": acc + 0.001, "macro_f1": acc / 3}}
    avg = {}
    for split in C.SPLITS_EVALUATED:
        for group, pick in (("seen", lambda s: s), ("unseen", lambda s: not s), ("all", lambda s: True)):
            vals = [v[split]["accuracy"] for v in langs.values() if pick(v["seen"])]
            avg[C.average_key(split, group)] = sum(vals) / len(vals)
    return {C.STEP: step, C.EPOCH: step / 2, C.EXAMPLES_SEEN: 32 * step, C.LAMBDA: 10.0, C.TRAIN_LOSS: 1.5,
            C.TASK_LOSS: 1.4, C.URIEL_LOSS: 0.01, **avg, C.LANGS: langs, C.PRIMARY_METRIC: "accuracy",
            C.STATUS: status, C.REASON: "", C.TRAIN_SECONDS: 2.0 * step}
