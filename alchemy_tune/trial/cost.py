"""The cost model of a trial on a CPU: sentences per second for training and for scoring, measured.

``benchmarks/bench_sib200.py`` and a default ``alchemy-tune train --task sib200`` measure both rates on the
2-core build machine with the bundled encoder (e5-small cut to 6 layers, frozen word embeddings, 2
threads, real SIB-200 sentences of 44 tokens on average); docs/performance.md records them. A trial's time is then

    prepare + train_sentences / TRAIN_RATE + evaluations × dev_sentences / SCORE_RATE
            + test_passes × test_sentences / SCORE_RATE,

with both rates scaled by 6 / layers for a cut of another depth (the encoder's layers are nearly all of the
cost) and halved for a trial given one thread (more than 2 threads are not extrapolated). It is an estimate for planning a CPU study (`plan` prints it), not a promise: a machine shared with
other work runs slower, sentences longer than SIB-200's cost more, and it says nothing about other
encoders or GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

from alchemy_tune.trial import optim
from alchemy_tune.trial.config import TrialConfig
from alchemy_tune.trial.encoder import BUNDLED_MODELS

TRAIN_RATE = 40.0
"""Training sentences per second (forward, both losses, backward, optimiser step), batch 32."""
SCORE_RATE = 140.0
"""Scored sentences per second (evaluation: length-sorted batches of 64, inference mode)."""
PREPARE_SECONDS = 10.0
"""Reading the data, tokenising and loading the encoder, once per trial (a fresh cache adds the one-time
conversion of the bundled weights, about a minute)."""
CALIBRATED_LAYERS = 6
CALIBRATED_THREADS = 2


@dataclass(frozen=True)
class TrialCost:
    """Estimated seconds of one trial's parts; ``test_passes`` is a range where the rule decides."""

    prepare: float
    training: float
    dev: float
    test_pass: float
    evaluations: int
    test_passes: tuple[int, int]

    @property
    def low(self) -> float:
        return self.prepare + self.training + self.dev + self.test_passes[0] * self.test_pass

    @property
    def high(self) -> float:
        return self.prepare + self.training + self.dev + self.test_passes[1] * self.test_pass


def estimate(config: TrialConfig, n_train: int, n_dev: int, n_test: int) -> TrialCost | None:
    """The cost of ``config`` on a task with these sentence counts (train: all seen languages; dev and test:
    every language), or None where the model is not calibrated (an encoder other than the bundled one)."""
    if config.model not in BUNDLED_MODELS:
        return None
    threads = min(config.threads or CALIBRATED_THREADS, CALIBRATED_THREADS)
    scale = (config.num_layers or 12) / CALIBRATED_LAYERS * CALIBRATED_THREADS / threads
    train_rate, score_rate = TRAIN_RATE / scale, SCORE_RATE / scale
    steps, per_epoch = optim.total_steps(config, n_train)
    evaluations = -(-steps // optim.eval_interval(config, per_epoch))
    passes = (evaluations, evaluations) if config.score_test == "every" else (min(2, evaluations), evaluations)
    return TrialCost(PREPARE_SECONDS, steps * config.batch_size / train_rate, evaluations * n_dev / score_rate,
                     n_test / score_rate, evaluations, passes)


@dataclass
class Timings:
    """Where a trial's seconds went (wall time of this process; what `train` prints and the cost model uses)."""

    prepare: float = 0.0
    dev: float = 0.0
    test: float = 0.0
    loop: float = 0.0
    dev_passes: int = 0
    test_passes: int = 0

    @property
    def training(self) -> float:
        """The optimiser steps: the loop less its evaluations."""
        return self.loop - self.dev - self.test

    def line(self) -> str:
        total = self.prepare + self.loop
        return (f"{total:.0f} s = prepare {self.prepare:.0f} s (data, tokens, encoder) + training {self.training:.0f} s"
                f" + {self.dev_passes} dev evaluation(s) {self.dev:.0f} s + {self.test_passes} test pass(es) "
                f"{self.test:.0f} s")
