"""Starting a search from what is already known: ``--enqueue FILE`` and ``--warm-start RUN_DIR``.

``--enqueue FILE``: a YAML/JSON list of configurations (``- {lr: 1.0e-4, lambda: 10}``) tried first, in
order, before the sampler proposes anything; a parameter left out is sampled. Each value must be one the
space can take.

``--warm-start RUN_DIR``: the completed trials of an earlier search are told to the new study with their
values (and per-evaluation curves, so pruners compare against them too), when they are compatible with the
new space: the same objective(s), every fixed value of the new space equal to the value the old trial ran
with, and every sampled value inside the new space. Incompatible trials are skipped and counted. Told trials
are flagged ``warm_start_from`` = ``<run_id>#<number>``; they inform the sampler and pruner but are not
trials of the new search (not counted, not in its tables, never its "best").
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from alchemy_tune.trial.config import TrialConfig, param_name
from alchemy_tune.core.errors import UsageError
from alchemy_tune.tuning.journal import fetch
from alchemy_tune.tuning.searcher import STUDY_NAME, StudyHandle
from alchemy_tune.tuning.study_attrs import CONFIG_ATTR, LANG_SCORES_ATTR, WARM_ATTR
from alchemy_tune.results.run_dir import is_uri, local_path
from alchemy_tune.results.run_record import RunRecord


def _sampled(space) -> dict:
    return {name: p for name, p in space.params.items() if p.kind != "fixed"}


def read_enqueue(path: str, space) -> list[dict]:
    """The configurations in ``path``, checked against ``space``; a one-line UsageError for any problem."""
    import yaml

    where = f"--enqueue {path}"
    try:
        data = yaml.safe_load(Path(os.path.expanduser(path)).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"{where}: cannot read it as YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise UsageError(f"{where}: nested too deeply to be a list of configurations") from None
    if not isinstance(data, list) or not data or not all(isinstance(c, dict) for c in data):
        raise UsageError(f"{where}: expected a non-empty list of mappings (- {{lr: 1.0e-4, lambda: 10}})")
    sampled, problems = _sampled(space), []
    configs = []
    for i, raw in enumerate(data, start=1):
        config = {}
        for key, value in raw.items():
            name = param_name(key)
            param = space.params.get(name)
            if param is None:
                problems.append(f"entry {i}: {key}: not a parameter of {space.path}")
            elif not param.can_take(value):
                what = "the space fixes it to" if param.kind == "fixed" else "the space allows"
                problems.append(f"entry {i}: {key}: {value!r} is not a value {space.path} allows "
                                f"({what} {param.describe()})")
            elif name in sampled:
                config[name] = value
        configs.append(config)
    if problems:
        raise UsageError(f"{where}: " + "; ".join(problems))
    return configs


def enqueue(handle: StudyHandle, configs: list[dict]) -> None:
    for config in configs:
        handle.study.enqueue_trial(config, user_attrs={"enqueued": True}, skip_if_exists=False)


def _distribution(param):
    if param.kind == "float":
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if param.kind == "int":
        return IntDistribution(param.low, param.high, log=param.log, step=param.step or 1)
    return CategoricalDistribution(list(param.choices))


def _compatible(config: dict, space) -> dict | None:
    """The sampled parameters of ``config`` if the old trial ran a configuration of ``space``, else None."""
    defaults = TrialConfig().to_dict()
    params = {}
    for name, param in space.params.items():
        if not param.is_active(config):
            continue
        value = config.get(name, defaults.get(name))
        if not param.can_take(value):
            return None
        if param.kind != "fixed":
            params[name] = value
    for name, value in config.items():  # the old trial must not have set what the new space leaves default
        if name not in space.params and name in defaults and value != defaults[name]:
            return None
    return params


def open_source_study(run_dir: str) -> tuple[RunRecord, optuna.Study]:
    record = RunRecord.read(run_dir)
    if record.kind != "search":
        raise UsageError(f"--warm-start {run_dir}: a {record.kind!r} run, not a search")
    run_dir = run_dir.rstrip("/") if is_uri(run_dir) else local_path(run_dir)
    journal = fetch(run_dir, "--warm-start {run_dir}: no {journal} in it")
    storage = JournalStorage(JournalFileBackend(journal))
    return record, optuna.load_study(study_name=STUDY_NAME, storage=storage)


def warm_start(handle: StudyHandle, space, run_dir: str) -> tuple[int, int]:
    """Tell the new study ``run_dir``'s compatible completed trials; (told, skipped)."""
    record, source = open_source_study(run_dir)
    objectives = record.objectives
    if [list(o) for o in zip(handle.objective_metrics, ["max" if d == "maximize" else "min"
                                                          for d in handle.directions])] != objectives:
        raise UsageError(f"--warm-start {run_dir}: it optimised {objectives}, this search "
                         f"{[list(o) for o in zip(handle.objective_metrics, handle.directions)]}; "
                         "warm starts need the same objective(s)")
    told = skipped = 0
    for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        params = _compatible(dict(t.user_attrs.get(CONFIG_ATTR) or {}), space)
        if params is None:
            skipped += 1
            continue
        attrs: dict[str, Any] = {k: v for k, v in t.user_attrs.items() if k.startswith(LANG_SCORES_ATTR)}
        attrs.update({WARM_ATTR: f"{record.run_id}#{t.number}", CONFIG_ATTR: t.user_attrs.get(CONFIG_ATTR)})
        handle.study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, values=t.values, params=params,
            distributions={name: _distribution(space.params[name]) for name in params},
            intermediate_values=dict(t.intermediate_values), user_attrs=attrs))
        told += 1
    return told, skipped
