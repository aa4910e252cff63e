"""The Optuna sampler classes this project adapts (imported only when a study is built); which name means
which sampler, and what each can do: :mod:`alchemy_tune.tuning.samplers`."""

from __future__ import annotations

import optuna

from alchemy_tune.tuning.study_attrs import is_twin


class BruteForce(optuna.samplers.BruteForceSampler):
    """BruteForceSampler whose exhaustion does not call ``study.stop()``.

    Optuna stops a study from ``after_trial`` once the space is exhausted, which only works inside
    ``study.optimize``; from ``tell`` it raises before the trial's state is stored. The searcher caps a
    bruteforce search at the space's size instead (as for grid).
    """

    def after_trial(self, study, trial, state, values) -> None:
        pass


class TPE(optuna.samplers.TPESampler):
    """TPE whose start-up phase counts sampled trials only: matched baselines (:mod:`alchemy_tune.tuning.baselines`)
    carry no parameters, and counting them would start the modelling on too few sampled ones."""

    def __init__(self, *, seed: int | None, n_startup_trials: int = 10, **kwargs):
        super().__init__(seed=seed, n_startup_trials=n_startup_trials, **kwargs)
        self._startup = n_startup_trials
        self._startup_sampler = optuna.samplers.RandomSampler(seed=seed)

    def _starting(self, study) -> bool:
        from optuna.trial import TrialState

        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        return sum(not is_twin(t) for t in finished) < self._startup

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self._startup_sampler.reseed_rng()

    def sample_relative(self, study, trial, search_space):
        return {} if self._starting(study) else super().sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        if self._starting(study):
            return self._startup_sampler.sample_independent(study, trial, param_name, param_distribution)
        return super().sample_independent(study, trial, param_name, param_distribution)
