"""Optuna samplers by name (the search space's ``search.sampler``), each with what it can do.

A :class:`SamplerKind` is one named choice: how to build its Optuna sampler, and the capabilities the rest
of the search asks about instead of comparing names (``kind.enumerates``, ``kind.twins``). Pruners
are built in :mod:`pruning`. No Optuna at import: a space file is checked against these flags before
Optuna's second of imports (the builders import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.settings import SAMPLERS, check_name


@dataclass(frozen=True)
class SamplerKind:
    name: str
    build: Callable[..., Any]
    """(seed, concurrent, startup) -> the Optuna sampler."""
    enumerates: bool = False
    """Tries configurations of a discrete space one by one: every parameter needs choices or a step, λ = 0 is
    one of the configurations (no twins needed), and the search is capped at the space's size."""
    fixed_order: bool = False
    """The configurations come in the space's own order (enqueued by the searcher), so ``--enqueue`` has no
    order to change."""
    twins: bool = False
    """Runs matched plain fine-tuning twins beside its sampled configurations (``search.baselines``): a twin
    carries no parameters, which only a sampler that models parameters one at a time tolerates."""


def _tpe(seed, concurrent, startup):
    from alchemy_tune.tuning.optuna_samplers import TPE

    # constant_liar: pending trials count as bad, so concurrent workers don't all sample the same spot.
    return TPE(seed=seed, multivariate=True, group=True, constant_liar=concurrent != 1, **startup)


def _random(seed, concurrent, startup):
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _gp(seed, concurrent, startup):
    import optuna

    return optuna.samplers.GPSampler(seed=seed, **startup)


def _cmaes(seed, concurrent, startup):
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False, **startup)


def _nsga2(seed, concurrent, startup):
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


def _bruteforce(seed, concurrent, startup):
    from alchemy_tune.tuning.optuna_samplers import BruteForce

    return BruteForce(seed=seed)


SAMPLER_KINDS: dict[str, SamplerKind] = {kind.name: kind for kind in (
    SamplerKind("tpe", _tpe, twins=True),
    SamplerKind("random", _random, twins=True),
    SamplerKind("gp", _gp),
    SamplerKind("cmaes", _cmaes),
    SamplerKind("nsga2", _nsga2),
    # the grid's configurations are enqueued by the searcher; the sampler only fills what a grid leaves open
    SamplerKind("grid", _random, enumerates=True, fixed_order=True),
    SamplerKind("bruteforce", _bruteforce, enumerates=True),
)}
assert tuple(SAMPLER_KINDS) == SAMPLERS, "core.settings.SAMPLERS names the kinds a space file may choose"
TWIN_SAMPLERS = tuple(name for name, kind in SAMPLER_KINDS.items() if kind.twins)


def sampler_kind(name: str) -> SamplerKind:
    if name not in SAMPLER_KINDS:
        raise UsageError(f"sampler: {name!r} is not one of {', '.join(SAMPLER_KINDS)}")
    return SAMPLER_KINDS[name]


def build_sampler(name: str, *, seed: int | None, n_objectives: int = 1, concurrent: int = 1,
                  n_startup_trials: int | None = None):
    """The Optuna sampler called ``name``; ``grid`` is served by enqueued trials over a random fallback.

    ``concurrent`` is the most trials running at once (0 = no limit).
    """
    check_name("sampler", name, n_objectives)
    startup = {} if n_startup_trials is None else {"n_startup_trials": n_startup_trials}
    return sampler_kind(name).build(seed, concurrent, startup)
