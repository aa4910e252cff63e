"""Declarative search spaces: a YAML file -> a validated, typed :class:`SearchSpace` -> Optuna / Ray Tune.

A space file maps :class:`~alchemy_tune.config.TrialConfig` field names (``lambda`` for λ) to a fixed
value or a spec, plus an optional ``search:`` section (:class:`SearchSettings`) and ``description:``::

    task: bible-genre                                   # fixed
    lr: {type: float, low: 2.0e-5, high: 5.0e-4, log: true}
    lambda: {type: categorical, choices: [0, 1, 10]}
    uriel_features: {type: subset, of: [syntax_knn, syntax_average, geo], min_size: 1}
    proj_width: {type: categorical, choices: [128, 256], when: {projection: mlp}}

``when`` makes a parameter conditional: it is active only if every named parameter has one of the listed
values. A condition reads the value the trial will use: the sampled or fixed one, or TrialConfig's default
when the referenced parameter is itself inactive. An inactive parameter is left out of the trial config, so
TrialConfig's default applies. Parameters are kept in dependency order (a condition's parameters first).

A ``subset`` parameter is suggested as ONE categorical over every allowed combination (joined with '+' in
the order of ``of``; ``seen``/``unseen`` join with ','), not one boolean per member: per-member booleans
would add parameters that are not TrialConfig fields (Ray copies every suggested name into the config)
and could draw fewer than ``min_size`` members; every sampler handles a categorical, grid included.

PyYAML reads ``1e-5`` (no dot) as text; where a float is expected such text is taken as the number.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .config import TrialConfig
from .constants import AVERAGE_KEYS
from .errors import UsageError

KINDS = ("fixed", "float", "int", "categorical", "subset")
SAMPLERS = ("tpe", "random", "gp", "cmaes", "nsga2", "grid", "bruteforce")
PRUNERS = ("none", "median", "percentile", "successive-halving", "hyperband", "threshold", "patient",
           "wilcoxon", "asha")
MODES = ("max", "min")
METRICS = tuple(k for k in AVERAGE_KEYS if k.startswith("dev_"))
"""What a search may optimise: selecting on test_* averages would leak the test sets into the choice."""
MAX_GRID = 100_000
"""grid() refuses to enumerate more configurations than this (a typo such as high: 100000 on an int)."""
MAX_SUBSET_MEMBERS = 12
_KEYS = {
    "fixed": ("type", "value", "when"),
    "float": ("type", "low", "high", "log", "step", "when"),
    "int": ("type", "low", "high", "log", "step", "when"),
    "categorical": ("type", "choices", "when"),
    "subset": ("type", "of", "min_size", "max_size", "when"),
}
_REQUIRED = {"fixed": ("value",), "float": ("low", "high"), "int": ("low", "high"),
             "categorical": ("choices",), "subset": ("of",)}
_RESERVED = ("search", "description")
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _field_kinds() -> dict[str, str]:
    out = {}
    for f in fields(TrialConfig):
        base = str(f.type).split("|")[0].strip()
        out["lambda" if f.name == "lambda_" else f.name] = "tuple" if base.startswith("tuple") else base
    return out


_FIELD_KIND = _field_kinds()  # parameter name -> "float" | "int" | "str" | "bool" | "tuple"
_DEFAULTS = TrialConfig().to_dict()


@dataclass(frozen=True)
class Param:
    """One parameter of a space: fixed, a numeric range, a categorical or a subset of named members."""

    name: str
    kind: str
    value: Any = None
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()
    """categorical: the choices; subset: every allowed combination, already joined."""
    of: tuple[str, ...] = ()
    min_size: int = 1
    max_size: int | None = None
    when: Mapping[str, tuple] = field(default_factory=dict, hash=False)
    """{other parameter: allowed values}; all must hold for this parameter to be active."""

    def is_active(self, values: Mapping[str, Any]) -> bool:
        """Whether the condition holds for a (partial) config; absent names read TrialConfig defaults."""
        return all(
            any(_same(values[ref] if ref in values else _DEFAULTS[ref], a) for a in allowed)
            for ref, allowed in self.when.items()
        )

    def values(self) -> Sequence | None:
        """Every value this parameter can take (a ``range`` for ints), or None for a continuous range."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind in ("categorical", "subset"):
            return list(self.choices)
        if self.kind == "int" and not self.log:
            return range(self.low, self.high + 1, self.step or 1)
        if self.kind == "float" and self.step is not None:
            n = round((self.high - self.low) / self.step)
            return [round(self.low + i * self.step, 12) for i in range(n + 1)]
        return None

    def can_take(self, value: Any) -> bool:
        if self.kind in ("fixed", "categorical", "subset"):
            return any(_same(value, option) for option in self.values())
        if not (_is_number(value) and self.low <= value <= self.high):
            return False
        if self.kind == "int":
            return isinstance(value, int) and (value - self.low) % (self.step or 1) == 0
        return self.step is None or any(_same(float(value), v) for v in self.values())

    def describe(self) -> str:
        options = self.values()
        if options is not None and len(options) <= 12:
            return ", ".join(map(repr, options))
        step = f" step {self.step}" if self.step is not None else ""
        return f"{'log ' if self.log else ''}{self.kind} in [{self.low}, {self.high}]{step}"

    def suggest(self, trial: Any) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))


@dataclass(frozen=True)
class SearchSettings:
    """The ``search:`` section: defaults the CLI may override."""

    metric: str = "dev_unseen"
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


@dataclass(frozen=True)
class SearchSpace:
    """A validated space. ``params`` is in dependency order.

    Example:
        >>> import optuna
        >>> space = load_space("search_spaces/default.yaml")
        >>> config = space.suggest(optuna.create_study().ask())
        >>> check_trial_config(config).task
        'bible-genre'
    """

    path: str
    params: Mapping[str, Param]
    settings: SearchSettings
    description: str = ""

    def suggest(self, trial: Any) -> dict:
        """Define-by-run: suggest the active parameters; return the full config (fixed values included)."""
        out: dict[str, Any] = {}
        for p in self.params.values():
            if p.is_active(out):
                out[p.name] = p.suggest(trial)
        return out

    def grid(self) -> list[dict] | None:
        """Every config of a fully discrete space (conditions honoured), else None.

        No config appears twice: choices are unique and an inactive parameter adds no branch.
        """
        if any(p.values() is None for p in self.params.values()):
            return None
        configs: list[dict] = [{}]
        for p in self.params.values():
            options, grown = p.values(), []
            for config in configs:
                if not p.is_active(config):
                    grown.append(config)
                    continue
                if len(grown) + len(options) > MAX_GRID:
                    raise UsageError(f"{self.path}: the grid has more than {MAX_GRID:,} configurations "
                                     f"(at parameter {p.name}): narrow the space or use a non-grid sampler")
                grown.extend({**config, p.name: v} for v in options)
            configs = grown
        return configs

    def fixed(self) -> dict:
        """Values every trial shares: fixed parameters whose conditions depend only on fixed parameters."""
        out: dict[str, Any] = {}
        for p in self.params.values():
            if p.kind == "fixed" and all(self.params[r].kind == "fixed" for r in p.when) and p.is_active(out):
                out[p.name] = p.value
        return out


def check_trial_config(values: Mapping[str, Any]) -> TrialConfig:
    """Validate a sampled config (``lambda`` accepted) and return the typed TrialConfig."""
    return TrialConfig.from_dict(values, source="trial config")


def load_space(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SearchSpace:
    """Read and validate a space file; every problem is reported at once in one UsageError.

    ``overrides`` pin parameters (CLI values such as ``{"task": "massive"}``): each replaces the file's
    entry with a fixed, unconditional value.
    """
    where = str(path)
    data = _read_yaml(Path(path), where)
    problems: list[tuple[str, str]] = []
    params: dict[str, Param] = {}
    settings, description = SearchSettings(), ""
    failed: set[str] = set()  # invalid entries: conditions naming them are not reported a second time
    for key, raw in data.items():
        if key == "search":
            settings = _parse_settings(raw, problems)
        elif key == "description":
            if isinstance(raw, str):
                description = raw
            else:
                problems.append(("description", f"expected text, got {raw!r}"))
        elif (name := _param_name(key, problems)) is not None:
            if name in params:
                problems.append((key, "given twice (lambda and lambda_ are the same parameter)"))
            param = _parse_param(name, key, raw, problems)
            if param is not None:
                params[name] = param
            else:
                failed.add(name)
    _check_conditions(params, failed, problems)
    ordered = _dependency_order(params, problems)
    for key, value in (overrides or {}).items():
        name = _param_name(key, problems, prefix="override ")
        if name is not None:
            value = _normalize(name, value)
            before = len(problems)
            problems += [(f"override {key}", p) for p in _value_problems(name, value)]
            if len(problems) == before:
                # an existing entry keeps its place: dropping its condition keeps the order valid
                ordered[name] = Param(name=name, kind="fixed", value=value)
    if settings.sampler in ("grid", "bruteforce"):
        for p in ordered.values():
            if p.values() is None:
                problems.append(("search.sampler", f"{settings.sampler} needs every parameter discrete, but "
                                 f"{p.name} is a {'log ' if p.log else ''}{p.kind} range without step: give "
                                 "choices or a step"))
    if problems:
        raise UsageError("; ".join(f"{where}: {key}: {message}" for key, message in problems))
    return SearchSpace(path=where, params=ordered, settings=settings, description=description)


# ---------------------------------------------------------------------------------------------- reading


def _read_yaml(path: Path, where: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{where}: no such search-space file (shipped ones are in search_spaces/)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read: {exc}") from None
    try:
        duplicates = list(_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), ""))
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{where}: {at}invalid YAML: {reason}") from None
    if duplicates:
        raise UsageError("; ".join(f"{where}: {key}: {message}" for key, message in duplicates))
    if data is None:
        raise UsageError(f"{where}: empty file: expected a mapping of parameter names to values or "
                         "{type: ...} specs (see search_spaces/default.yaml)")
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a mapping of parameter names at the top level, "
                         f"got {type(data).__name__}")
    return data


def _duplicate_keys(node: Any, path: str):
    """YAML keeps the last of two equal keys without a word; report them instead."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            key_path = f"{path}.{key}" if path else key
            if key in first:
                lines = f"lines {first[key] + 1} and {key_node.start_mark.line + 1}"
                yield key_path, f"duplicate key ({lines}): YAML would silently keep only the last"
            first.setdefault(key, key_node.start_mark.line)
            yield from _duplicate_keys(value_node, key_path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{path}[{i}]")


# --------------------------------------------------------------------------------------------- settings


def _parse_settings(raw: Any, problems: list) -> SearchSettings:
    if not isinstance(raw, dict):
        problems.append(("search", f"expected a mapping of settings, got {raw!r}"))
        return SearchSettings()
    valid = [f.name for f in fields(SearchSettings)]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"search.{key}"
        if key not in valid:
            problems.append((at, f"unknown setting{_hint(str(key), valid)} (valid: {', '.join(valid)})"))
        elif key in ("metric", "mode", "sampler", "pruner"):
            allowed = {"metric": METRICS, "mode": MODES, "sampler": SAMPLERS, "pruner": PRUNERS}[key]
            if value not in allowed:
                leak = " (selecting on test data would leak it)" if str(value).startswith("test_") else ""
                problems.append((at, f"{value!r} is not one of {', '.join(allowed)}{leak}"))
            kwargs[key] = value
        elif key == "objectives":
            kwargs[key] = _parse_objectives(value, problems)
        elif key in ("cpus_per_trial", "gpus_per_trial"):
            value = _coerce_float(value)
            least = 0 if key == "gpus_per_trial" else 1e-9
            if not _is_number(value) or value < least:
                problems.append((at, f"expected a number {'>= 0' if least == 0 else '> 0'}, got {value!r}"))
            kwargs[key] = value
        elif key == "pruner_options":
            if value is not None and not (isinstance(value, dict) and all(
                    isinstance(k, str) and isinstance(v, (int, float, str, bool)) for k, v in value.items())):
                problems.append((at, f"expected {{option: value, ...}} (pruner keyword arguments), "
                                 f"got {value!r}"))
            kwargs[key] = value
        else:  # trials, max_concurrent, seed, n_startup_trials, max_evals
            optional = key != "seed"
            least = 0 if key in ("seed", "n_startup_trials") else 1
            if (value is None and optional) or (isinstance(value, int) and not isinstance(value, bool)
                                                and value >= least):
                kwargs[key] = value
            else:
                null = " or null" if optional else ""
                problems.append((at, f"expected an integer >= {least}{null}, got {value!r}"))
    if kwargs.get("sampler") == "cmaes" and kwargs.get("objectives") and len(kwargs["objectives"]) > 1:
        problems.append(("search.sampler", "cmaes optimises one objective: use nsga2, tpe, gp or random for "
                         "several objectives"))
    return SearchSettings(**kwargs)


def _parse_objectives(value: Any, problems: list) -> tuple[tuple[str, str], ...] | None:
    """``{dev_seen: max, dev_unseen: max}`` or ``[[dev_seen, max], [dev_unseen, max]]``."""
    if value is None:
        return None
    pairs = list(value.items()) if isinstance(value, dict) else value
    if not isinstance(pairs, list) or not pairs:
        problems.append(("search.objectives", f"expected {{metric: max|min, ...}}, got {value!r}"))
        return None
    out = []
    for i, pair in enumerate(pairs):
        at = f"search.objectives[{i}]" if isinstance(value, list) else f"search.objectives.{pair[0]}"
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            problems.append((at, f"expected [metric, max|min], got {pair!r}"))
        elif pair[0] not in METRICS or pair[1] not in MODES:
            problems.append((at, f"{pair!r}: metric must be one of {', '.join(METRICS)}, mode max or min"))
        else:
            out.append((pair[0], pair[1]))
    if len({m for m, _ in out}) != len(out):
        problems.append(("search.objectives", "a metric appears twice"))
    return tuple(out)


# ------------------------------------------------------------------------------------------- parameters


def _param_name(key: Any, problems: list, prefix: str = "") -> str | None:
    name = "lambda" if key == "lambda_" else key
    if name in _FIELD_KIND:
        return name
    extra = "" if prefix else f", {', '.join(_RESERVED)}"
    hint = _hint(str(key), list(_FIELD_KIND))
    problems.append((f"{prefix}{key}", f"unknown parameter{hint}: parameters are the fields of TrialConfig "
                     f"(alchemy_tune/config.py){extra}"))
    return None


def _parse_param(name: str, key: str, raw: Any, problems: list) -> Param | None:
    before = len(problems)
    if not isinstance(raw, dict):
        if isinstance(raw, list) and _FIELD_KIND[name] != "tuple":
            problems.append((key, f"a list is not a value of {name}: to search over values write "
                             "{type: categorical, choices: [...]}"))
            return None
        value = _normalize(name, raw)
        problems += [(key, p) for p in _value_problems(name, value)]
        return Param(name=name, kind="fixed", value=value) if len(problems) == before else None
    kind = raw.get("type")
    if kind not in KINDS:
        problems.append((f"{key}.type", f"{'missing' if kind is None else repr(kind) + ' is not a type'}: "
                         f"give one of {', '.join(KINDS)}"))
        return None
    valid, required = ", ".join(_KEYS[kind]), ", ".join(_REQUIRED[kind])
    problems += [(f"{key}.{k}", f"unknown key for type {kind} (valid: {valid})")
                 for k in raw if k not in _KEYS[kind]]
    problems += [(f"{key}.{k}", f"missing (type {kind} needs {required})")
                 for k in _REQUIRED[kind] if k not in raw]
    when = _parse_when(key, raw.get("when"), problems)
    if len(problems) > before:
        return None
    parse = {"fixed": _fixed, "float": _range, "int": _range, "categorical": _categorical, "subset": _subset}
    fields_ = parse[kind](name, key, kind, raw, problems)
    return Param(name=name, kind=kind, when=when, **fields_) if len(problems) == before else None


def _fixed(name, key, kind, raw, problems) -> dict:
    value = _normalize(name, raw["value"])
    problems += [(f"{key}.value", p) for p in _value_problems(name, value)]
    return {"value": value}


def _range(name, key, kind, raw, problems) -> dict:
    field_kind = _FIELD_KIND[name]
    if field_kind not in ("int", "float") or (kind == "float" and field_kind == "int"):
        use = {"int": "int", "float": "float or int"}.get(field_kind, "categorical or fixed")
        problems.append((f"{key}.type", f"{name} takes {field_kind} values, so a {kind} range does not "
                         f"apply: use type: {use}"))
        return {}
    before = len(problems)
    got = {}
    for bound in ("low", "high", "step"):
        value = raw.get(bound)
        if bound == "step" and value is None:
            got[bound] = None
            continue
        value = value if kind == "int" else _coerce_float(value)
        if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            problems.append((f"{key}.{bound}", f"expected an integer, got {value!r}"))
        elif not _is_number(value):
            problems.append((f"{key}.{bound}", f"expected a number, got {value!r}"))
        got[bound] = value if kind == "int" or value is None else float(value)
    log = raw.get("log", False)
    if not isinstance(log, bool):
        problems.append((f"{key}.log", f"expected true or false, got {log!r}"))
    if len(problems) > before:
        return {}
    low, high, step = got["low"], got["high"], got["step"]
    if low > high:
        problems.append((f"{key}.low", f"low <= high must hold, got low={low}, high={high}"))
    if log and low <= 0:
        problems.append((f"{key}.log", f"log requires low > 0, got low={low}"))
    if step is not None:
        if step <= 0:
            problems.append((f"{key}.step", f"step > 0 must hold, got step={step}"))
        elif log:
            problems.append((f"{key}.step", "step cannot be combined with log: true"))
        elif low <= high and abs((high - low) / step - round((high - low) / step)) > 1e-9:
            problems.append((f"{key}.step", f"high - low must be a multiple of step, got low={low}, "
                             f"high={high}, step={step}"))
    for bound, value in (("low", low), ("high", high)):
        problems += [(f"{key}.{bound}", p) for p in _value_problems(name, value)]
    return {"low": low, "high": high, "step": step, "log": log}


def _categorical(name, key, kind, raw, problems) -> dict:
    choices = raw["choices"]
    if not isinstance(choices, list) or not choices:
        problems.append((f"{key}.choices", f"expected a non-empty list, got {choices!r}"))
        return {}
    values = [_normalize(name, c) for c in choices]
    if _FIELD_KIND[name] == "tuple":  # Optuna's categoricals hold scalars; TrialConfig splits on ','
        values = [",".join(map(str, v)) if isinstance(v, list) else v for v in values]
    families = sorted({_family(v) for v in values} - {"null"})
    if len(families) > 1:
        problems.append((f"{key}.choices", f"choices mix types ({', '.join(families)}): give one type"))
        return {}
    for i, value in enumerate(values):
        if isinstance(value, (dict, list)):
            problems.append((f"{key}.choices[{i}]", f"expected a plain value, got {value!r}"))
            continue
        problems += [(f"{key}.choices[{i}]", p) for p in _value_problems(name, value)]
        first = next(j for j, other in enumerate(values) if _same(value, other))
        if first < i:
            problems.append((f"{key}.choices[{i}]", f"duplicate of choices[{first}] ({value!r})"))
    return {"choices": tuple(values)}


def _subset(name, key, kind, raw, problems) -> dict:
    field_kind = _FIELD_KIND[name]
    if field_kind not in ("str", "tuple"):
        problems.append((f"{key}.type", f"a subset joins names into text, but {name} takes {field_kind} "
                         "values"))
        return {}
    members, joiner = raw["of"], "," if field_kind == "tuple" else "+"
    if not (isinstance(members, list) and 0 < len(members) <= MAX_SUBSET_MEMBERS):
        problems.append((f"{key}.of", f"expected a list of 1 to {MAX_SUBSET_MEMBERS} names, got {members!r}"))
        return {}
    before = len(problems)
    for i, member in enumerate(members):
        if not isinstance(member, str) or not member.strip() or joiner in member:
            problems.append((f"{key}.of[{i}]", f"expected one name without {joiner!r}, got {member!r}"))
        elif members.index(member) < i:
            problems.append((f"{key}.of[{i}]", f"duplicate of of[{members.index(member)}] ({member!r})"))
        else:
            problems += [(f"{key}.of[{i}]", p) for p in _value_problems(name, member)]
    sizes = {}
    for bound, default in (("min_size", 1), ("max_size", len(members))):
        value = raw.get(bound, default)
        if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(members)):
            problems.append((f"{key}.{bound}", f"expected an integer from 1 to {len(members)} (the size of "
                             f"of), got {value!r}"))
        sizes[bound] = value
    if len(problems) > before:
        return {}
    if sizes["min_size"] > sizes["max_size"]:
        problems.append((f"{key}.min_size", "min_size <= max_size must hold, got "
                         f"min_size={sizes['min_size']}, max_size={sizes['max_size']}"))
        return {}
    combos = tuple(joiner.join(c) for n in range(sizes["min_size"], sizes["max_size"] + 1)
                   for c in itertools.combinations(members, n))
    return {"of": tuple(members), "choices": combos, **sizes}


def _parse_when(key: str, raw: Any, problems: list) -> dict[str, tuple]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        problems.append((f"{key}.when", f"expected {{parameter: value or [values]}}, got {raw!r}"))
        return {}
    out = {}
    for ref, allowed in raw.items():
        ref_name = "lambda" if ref == "lambda_" else ref
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if not allowed:
            problems.append((f"{key}.when.{ref}", "expected a value or a non-empty list of values"))
        if ref_name in _FIELD_KIND:
            allowed = [_normalize(ref_name, a) for a in allowed]
        out[ref_name] = tuple(allowed)
    return out


def _check_conditions(params: dict[str, Param], failed: set[str], problems: list) -> None:
    """Each condition names another parameter of this space and values it can take."""
    for name, p in params.items():
        for ref, allowed in p.when.items():
            at = f"{name}.when.{ref}"
            if ref == name:
                problems.append((at, "a parameter cannot depend on itself"))
            elif ref in failed:
                continue
            elif ref not in params:
                hint = _hint(str(ref), list(params))
                problems.append((at, f"{ref!r} is not a parameter of this space{hint}"))
            else:
                target = params[ref]
                # an inactive target reads its default, so the default is a value it can take
                problems += [(at, f"{value!r} is not a value {ref} can take ({target.describe()})")
                             for value in allowed
                             if not (target.can_take(value) or target.when and _same(value, _DEFAULTS[ref]))]


def _dependency_order(params: dict[str, Param], problems: list) -> dict[str, Param]:
    ordered: dict[str, Param] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in ordered or name not in params:
            return
        if name in visiting:
            cycle = visiting[visiting.index(name):] + [name]
            problems.append((f"{name}.when", f"conditions form a cycle ({' -> '.join(cycle)})"))
            return
        visiting.append(name)
        for ref in params[name].when:
            visit(ref)
        visiting.pop()
        ordered.setdefault(name, params[name])

    for name in params:
        visit(name)
    return ordered


# --------------------------------------------------------------------------------------------- values

_TAG = "\x1f"  # marks where TrialConfig's "source: " prefix ends, so its messages can be re-keyed


def _value_problems(name: str, value: Any) -> list[str]:
    """TrialConfig's own verdict on one value (plus URIEL set names), without its prefixes."""
    try:
        TrialConfig.from_dict({name: value}, source=_TAG)
    except UsageError as exc:
        parts = str(exc).removeprefix(f"{_TAG}: ").split(f"; {_TAG}: ")
        return [p.removeprefix(f"{name}: ") for p in parts]
    if name == "uriel_features":
        from .uriel import parse_feature_spec

        try:
            parse_feature_spec(value)
        except UsageError as exc:
            return [str(exc)]
    return []


def _normalize(name: str, value: Any) -> Any:
    return _coerce_float(value) if _FIELD_KIND.get(name) == "float" else value


def _coerce_float(value: Any) -> Any:
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _family(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps true apart from 1 (Python's True == 1 would merge a bool and a number)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _hint(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
