"""The ``search:`` settings of a space file and the command line: their fields, their lists and their rules.

One home for both paths: a space file's ``search:`` section (:mod:`alchemy_tune.tuning.space_file` reports every
problem of the file at once, as ``search.<key>: ...``) and the settings a search runs with, the file's with
the command line's flags applied (:func:`check_settings`, the first problem as ``--<flag>: ...``). The
sampler and pruner builders check their names with the same rules. A leaf module: no Optuna, no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from alchemy_tune.core.constants import SELECTION_METRICS
from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.numbers import is_finite_number

SAMPLERS = ("tpe", "random", "gp", "cmaes", "nsga2", "grid", "bruteforce")
PRUNERS = ("none", "median", "percentile", "successive-halving", "hyperband", "threshold", "patient",
           "wilcoxon", "asha")
MODES = ("max", "min")
CMAES_ONE_OBJECTIVE = "cmaes optimises one objective: use nsga2, tpe, gp or random for several objectives"


@dataclass(frozen=True)
class SearchSettings:
    """The ``search:`` section: defaults the CLI may override."""

    metric: str = "dev_select"
    """Selection metric: ``dev_select`` (seen + validation dev), ``dev_seen``, ``dev_val`` or, marked as
    such everywhere, ``oracle_dev_unseen``."""
    mode: str = "max"
    objectives: tuple[tuple[str, str], ...] | None = None
    """Several ((metric, mode), ...) for the sampler; ``metric``/``mode`` stay what a pruner watches."""
    sampler: str = "tpe"
    pruner: str = "median"
    trials: int | None = None
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    max_concurrent: int | None = None
    seed: int = 0
    """Sampler seed (the trial's own seed is the ``seed`` parameter)."""
    n_startup_trials: int | None = None
    """Random trials before a model-based sampler (tpe, gp, cmaes) takes over; None = its default."""
    pruner_options: Mapping[str, Any] | None = field(default=None, hash=False)
    """Keyword arguments for the Optuna pruner, e.g. {n_warmup_steps: 2} or {percentile: 25}."""
    max_evals: int | None = None
    """asha: evaluations of a trial run to the end (epochs x evals_per_epoch); None = the search's default."""
    repeats: int = 1
    """Replicates per sampled configuration, replicate r with training seed seed + r (and data seed
    data_seed + r under ``replicate_data``): each runs as its own trial, and the sampler and pruner see the
    mean over them (see :mod:`alchemy_tune.tuning.replicates`)."""
    replicate_data: bool = False
    """Whether replicates vary the training subsets too: replicate r trains with (seed + r, data_seed + r),
    so the comparisons speak for the method rather than for one draw of the data. Off (the data seed fixed,
    every replicate on the same subsets) unless asked: runs made before the setting existed read as off."""
    keep_checkpoints: str = "best"
    """What a finished trial keeps on storage: ``best`` (its best evaluation's checkpoint), ``none`` or
    ``all``. Running and failed trials keep their newest two (a resume continues from them)."""
    baselines: str | None = None
    """``matched``: every sampled configuration with the URIEL loss gets its plain fine-tuning twin (λ = 0,
    the same other settings and seeds; :mod:`alchemy_tune.tuning.baselines`); ``none``: only what the
    sampler draws. None = matched for the tpe and random samplers wherever λ can be > 0, else none."""
    primary: Mapping[str, Any] | None = field(default=None, hash=False)
    """The comparison the search is for, declared before it runs: {parameter: value or [values]} picks the
    configurations whose comparison with plain fine-tuning is the report's headline family (Holm over them
    alone); None = every configuration. Every other table is exploratory."""
    margin: float | None = None
    """The equivalence margin of the headline comparison, declared before the run, in the primary metric's
    units (0.01 = one accuracy point): a comparison whose 90% interval lies inside ±margin reads
    "equivalent". None = the metric's default (``analysis.stats.DEFAULT_MARGINS``); ``analyze --margin``
    overrides it."""


SETTINGS = tuple(f.name for f in fields(SearchSettings))


def leak_hint(metric: Any) -> str:
    """Why a test-language metric is refused, and the name that would accept it."""
    if str(metric).startswith("test_"):
        return " (selecting on test data would leak it)"
    if str(metric) in ("dev_unseen", "dev_all"):
        return (f" ({metric} contains the test languages' dev data; selecting on it is only possible by "
                "name, as oracle_dev_unseen, and every output then says 'oracle')")
    return ""


def _is_int(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def value_problem(key: str, value: Any, *, null: str = " or null") -> str | None:
    """What is wrong with ``value`` for the setting ``key``, None if nothing (``objectives``: see
    :func:`parse_objectives`). ``null`` is how a message names "unset" (" or null" in a YAML file)."""
    choices = {"metric": SELECTION_METRICS, "mode": MODES, "sampler": SAMPLERS, "pruner": PRUNERS}.get(key)
    if choices is not None:
        return None if value in choices else f"{value!r} is not one of {', '.join(choices)}{leak_hint(value)}"
    if key in ("cpus_per_trial", "gpus_per_trial"):
        least = 0 if key == "gpus_per_trial" else 1e-9
        ok = is_finite_number(value) and value >= least
        return None if ok else f"expected a number {'>= 0' if least == 0 else '> 0'}, got {value!r}"
    if key == "pruner_options":
        ok = value is None or (isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, (int, float, str, bool)) for k, v in value.items()))
        return None if ok else f"expected {{option: value, ...}} (pruner keyword arguments), got {value!r}"
    if key == "primary":
        ok = value is None or (isinstance(value, dict) and value and all(
            isinstance(k, str) and (isinstance(v, (int, float, str, bool)) or (
                isinstance(v, list) and v and all(isinstance(x, (int, float, str, bool)) for x in v)))
            for k, v in value.items()))
        return None if ok else (f"expected {{parameter: value or [values], ...}} (the configurations of the "
                                f"headline comparison), got {value!r}")
    if key == "margin":
        ok = value is None or (is_finite_number(value) and 0 < value < 1)
        return None if ok else (f"expected a number in (0, 1) (the equivalence margin in the metric's units, "
                                f"0.01 = one accuracy point){null}, got {value!r}")
    if key == "keep_checkpoints":
        return None if value in ("best", "none", "all") else f"expected best, none or all, got {value!r}"
    if key == "baselines":
        return None if value is None or value in ("matched", "none") else \
            f"expected matched or none{null}, got {value!r}"
    if key == "replicate_data":
        return None if isinstance(value, bool) else \
            f"expected true or false (vary the data seed with the training seed), got {value!r}"
    if key == "repeats":
        return None if _is_int(value, 1) else \
            f"expected an integer >= 1 (training seeds per configuration), got {value!r}"
    if key == "seed" and _is_int(value, 0) and value > 2**32 - 1:
        return f"expected an integer in [0, {2**32 - 1}] (the samplers' seed range), got {value!r}"
    # trials, max_concurrent, max_evals, n_startup_trials: optional; seed: required
    optional = key != "seed"
    least = 0 if key in ("seed", "n_startup_trials") else 1
    if (value is None and optional) or _is_int(value, least):
        return None
    return f"expected an integer >= {least}{null if optional else ''}, got {value!r}"


def parse_objectives(value: Any, problems: list) -> tuple[tuple[str, str], ...] | None:
    """``{dev_seen: max, dev_unseen: max}`` or ``[[dev_seen, max], [dev_unseen, max]]`` -> pairs; appends
    ``(key, message)`` for each problem (keys relative to the settings: ``objectives[0]``)."""
    if value is None:
        return None
    pairs = list(value.items()) if isinstance(value, dict) else value
    if not isinstance(pairs, (list, tuple)) or not pairs:
        problems.append(("objectives", f"expected {{metric: max|min, ...}}, got {value!r}"))
        return None
    out = []
    for i, pair in enumerate(pairs):
        at = f"objectives.{pair[0]}" if isinstance(value, dict) else f"objectives[{i}]"
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            problems.append((at, f"expected [metric, max|min], got {pair!r}"))
        elif pair[0] not in SELECTION_METRICS or pair[1] not in MODES:
            problems.append((at, f"{pair!r}: metric must be one of {', '.join(SELECTION_METRICS)}, mode max "
                             f"or min{leak_hint(pair[0])}"))
        else:
            out.append((pair[0], pair[1]))
    if len({m for m, _ in out}) != len(out):
        problems.append(("objectives", "a metric appears twice"))
    return tuple(out)


def settings_problems(values: Mapping[str, Any], *, null: str = " or null",
                      hint: Callable[[str, list[str]], str] = lambda word, options: "") -> tuple[dict, list]:
    """(the known settings, objectives as pairs; [(key, message), ...]) for the settings named in ``values``.

    Each value is checked on its own (in the order given; ``hint(key, SETTINGS)`` suggests a name for an
    unknown key), then the rules between settings, each only when every setting it involves is named (a
    space file may leave the pruner to the command line) and valid on its own."""
    problems: list[tuple[str, str]] = []
    parsed, valid = {}, set()
    for key, value in values.items():
        before = len(problems)
        if key not in SETTINGS:
            problems.append((key, f"unknown setting{hint(str(key), list(SETTINGS))} (valid: {', '.join(SETTINGS)})"))
            continue
        if key == "objectives":
            value = parse_objectives(value, problems)
        else:
            problem = value_problem(key, value, null=null)
            if problem:
                problems.append((key, problem))
        parsed[key] = value
        if len(problems) == before:
            valid.add(key)
    problems += [(key, message) for key, message, needs in _rules(parsed) if needs <= valid]
    return parsed, problems


def _rules(v: Mapping[str, Any]):
    """(key blamed, message, settings the rule reads) for each rule between settings that ``v`` breaks."""
    n_objectives = len(v.get("objectives") or ())
    if v.get("sampler") == "cmaes" and n_objectives > 1:
        yield "sampler", CMAES_ONE_OBJECTIVE, {"sampler", "objectives"}
    if v.get("pruner") == "asha" and (v.get("repeats") or 1) > 1:
        yield ("pruner", "ASHA ranks single Ray trials, not configurations, so it cannot prune replicates "
               "(repeats of 2 or more); use an Optuna pruner (median, percentile, successive-halving, hyperband, ...) "
               "or none", {"pruner", "repeats"})
    if n_objectives > 1 and v.get("pruner") not in (None, "none", "asha"):
        yield ("pruner", f"{v['pruner']!r}: Optuna pruners need one objective, this search has {n_objectives}; "
               f"use none or asha (ASHA prunes on {v.get('metric', SearchSettings.metric)})",
               {"pruner", "objectives"})


def flag(key: str) -> str:
    """The command-line flag of a setting (``cpus_per_trial`` -> ``--cpus-per-trial``)."""
    return "--" + key.replace("_", "-")


def check_settings(settings: SearchSettings) -> None:
    """Every rule over the settings a search runs with (the space file's, the command line's applied);
    UsageError naming the first problem's flag."""
    if settings.trials is None:
        raise UsageError("--trials: required (the space file's search section sets no `trials`)")
    _, problems = settings_problems({key: getattr(settings, key) for key in SETTINGS}, null="")
    if problems:
        key, message = problems[0]
        raise UsageError(f"{flag(key)}: {message}")


def check_name(key: str, value: Any, n_objectives: int = 1) -> None:
    """The sampler/pruner builders' check of a name (``key`` is ``sampler`` or ``pruner``)."""
    problem = value_problem(key, value)
    if problem is None:
        broken = [m for k, m, _ in _rules({key: value, "objectives": (None,) * n_objectives}) if k == key]
        problem = broken[0] if broken else None
    if problem:
        raise UsageError(f"{key}: {problem}")
