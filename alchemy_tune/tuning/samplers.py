"""Optuna samplers by name (the search space's ``search.sampler``); pruners are built in :mod:`pruning`."""

from __future__ import annotations

import optuna

from alchemy_tune.core.settings import check_name


class _BruteForce(optuna.samplers.BruteForceSampler):
    """BruteForceSampler whose exhaustion does not call ``study.stop()``.

    Optuna stops a study from ``after_trial`` once the space is exhausted, which only works inside
    ``study.optimize``; from ``tell`` it raises before the trial's state is stored. The searcher caps a
    bruteforce search at the space's size instead (as for grid).
    """

    def after_trial(self, study, trial, state, values) -> None:
        pass


def build_sampler(name: str, *, seed: int | None, n_objectives: int = 1, concurrent: int = 1,
                  n_startup_trials: int | None = None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler called ``name``; ``grid`` is served by enqueued trials over a random fallback.

    ``concurrent`` is the most trials running at once (0 = no limit).
    """
    check_name("sampler", name, n_objectives)
    startup = {} if n_startup_trials is None else {"n_startup_trials": n_startup_trials}
    if name == "tpe":
        # constant_liar: pending trials count as bad, so concurrent workers don't all sample the same spot.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          constant_liar=concurrent != 1, **startup)
    if name == "random" or name == "grid":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, **startup)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False, **startup)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return _BruteForce(seed=seed)
