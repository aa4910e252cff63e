"""Every check a search can make before it writes anything or starts Ray, shared by the search and its
``--dry-run``: a bad flag, space, seed, pruner option, budget or trial function is one line, and no run
folder is left behind to block the name."""

from __future__ import annotations

import dataclasses

from alchemy_tune.tuning.trial_fn import TRIAL_FN
from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.settings import check_settings
from alchemy_tune.results.run_dir import check_writable, run_name
from alchemy_tune.tuning.samplers import sampler_kind



def load(request):
    """(space, settings): the space file with CLI parameters pinned and CLI settings applied, validated."""
    from alchemy_tune.tuning.space import default_space
    from alchemy_tune.tuning.space_file import load_space

    space = load_space(request.space_path or default_space(), overrides=request.params or None)
    settings = dataclasses.replace(space.settings, **request.settings)
    check_settings(settings)
    from alchemy_tune.tuning.baselines import resolve

    return space, resolve(space, settings)


def check_trial_fn(trial_fn: str) -> None:
    """``--trial-fn MODULE:FUNCTION`` imports here (the bundled one is known to): a typo is one line now,
    not every trial failing on the workers."""
    import importlib

    module, sep, name = trial_fn.partition(":")
    if not sep or not module or not name:
        raise UsageError(f"--trial-fn: expected MODULE:FUNCTION, got {trial_fn!r}")
    if trial_fn == TRIAL_FN:
        return
    try:
        found = getattr(importlib.import_module(module), name, None)
    except Exception as exc:  # any error importing user code is the flag's problem
        raise UsageError(f"--trial-fn {trial_fn}: cannot import {module} ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:160]})") from None
    if not callable(found):
        raise UsageError(f"--trial-fn {trial_fn}: {module} has no function {name!r}")


def check_seeds(space, settings) -> None:
    """Every training seed a replicate runs (seed .. seed + repeats - 1), and under ``replicate_data`` every
    data seed, is one numpy and torch accept."""
    from alchemy_tune.trial.config import MAX_SEED, TrialConfig

    p = space.params.get("seed")
    options = [TrialConfig.seed] if p is None else (p.values() or [p.high])
    top = max(int(v) for v in options) + settings.repeats - 1
    if top > MAX_SEED:
        raise UsageError(f"--repeats {settings.repeats}: replicate seeds would reach {top}, beyond {MAX_SEED}; "
                         "lower the seed or the repeats")
    if getattr(settings, "replicate_data", False):  # data seeds move with the training seeds
        p = space.params.get("data_seed")
        options = [TrialConfig.data_seed] if p is None else (p.values() or [p.high])
        top = max(int(v) for v in options) + settings.repeats - 1
        if top > MAX_SEED:
            raise UsageError(f"--repeats {settings.repeats}: replicate data seeds would reach {top}, beyond "
                             f"{MAX_SEED}; lower the data_seed or the repeats, or drop --replicate-data")


def grid_note(space, settings) -> str | None:
    """What a grid search runs when ``--trials`` takes part of the grid, and whether it holds plain
    fine-tuning to compare with: lines ``plan`` and the search print before anything runs."""
    from alchemy_tune.trial.config import TrialConfig, is_plain

    grid = space.grid()
    if grid is None:
        return None
    notes = []
    if settings.trials is not None and settings.trials < len(grid):
        notes.append(f"grid: --trials {settings.trials} runs the first {settings.trials} of its {len(grid)} "
                     "configurations, in the grid's order (leave --trials out to run them all)")
    elif settings.trials is not None and settings.trials > len(grid):
        notes.append(f"grid: --trials {settings.trials} asks for more than its {len(grid)} configurations; "
                     f"the grid sampler runs each once: {len(grid)}")
    base = TrialConfig().to_dict()
    ran = grid[: settings.trials] if settings.trials else grid
    if not any(is_plain({**base, **space.fixed(), **c}) for c in ran) and not settings.baselines == "matched":
        notes.append("no plain fine-tuning (λ = 0) among the configurations it runs: its report compares them "
                     "with each other, but gives no verdict against plain fine-tuning (add λ = 0 to the grid, "
                     "or see ablation.yaml and study.yaml)")
    return "; ".join(notes) or None


def validate(request):
    """(space, settings, enqueued configurations): every check that can run before anything is written or
    Ray starts (``--dry-run`` runs them too)."""
    from alchemy_tune.tuning.budget import Budget

    space, settings = load(request)
    if request.name:
        run_name(request.name)
    check_writable(request.storage, "--storage")
    Budget.of(request.time_budget_s, request.gpu_hours, settings.gpus_per_trial)  # bad budgets fail here
    if request.num_cpus is not None and request.num_cpus < 1:
        raise UsageError(f"--num-cpus: must be >= 1, got {request.num_cpus}")
    if request.max_failures < 0:
        raise UsageError(f"--max-failures: must be >= 0, got {request.max_failures}")
    check_seeds(space, settings)
    check_trial_fn(request.trial_fn)
    # what needs Optuna from here on: the checks above answer a bad flag before its second of imports
    from alchemy_tune.tuning.pruning import build_pruner

    mode = "max" if (settings.objectives or ((settings.metric, settings.mode),))[0][1] == "max" else "min"
    build_pruner(settings.pruner, mode=mode, options=settings.pruner_options)  # option names and types
    from alchemy_tune.tuning.warm_start import open_source_study, read_enqueue

    enqueued = read_enqueue(request.enqueue, space) if request.enqueue else []
    if enqueued and sampler_kind(settings.sampler).fixed_order:
        raise UsageError("--enqueue: the grid sampler already fixes the order of every configuration; "
                         "use bruteforce, tpe or random with --enqueue")
    if len(enqueued) > settings.trials:
        raise UsageError(f"--enqueue {request.enqueue}: {len(enqueued)} configurations but --trials "
                         f"{settings.trials}; raise --trials")
    if request.warm_start:
        open_source_study(request.warm_start)  # fails before anything is written
    return space, settings, enqueued
