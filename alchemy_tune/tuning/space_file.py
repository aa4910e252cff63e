"""Reading and validating a search-space YAML file (:func:`load_space`), on top of :mod:`alchemy_tune.tuning.space`.

``space`` holds the types and the value rules and imports nothing from here; this module reads a file
into them. Every helper appends ``(key, message)`` pairs to a shared ``problems`` list instead of
raising, so ``load_space`` reports all problems of a file at once.
"""

from __future__ import annotations

import math

import itertools
from pathlib import Path
from typing import Any, Mapping

import yaml

from alchemy_tune.trial.config import param_name
from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.numbers import is_finite_number
from alchemy_tune.core.settings import SearchSettings, settings_problems
from alchemy_tune.tuning.samplers import SAMPLER_KINDS
from alchemy_tune.tuning.space import (KINDS, SearchSpace, resolve_space, MAX_SUBSET_MEMBERS, _DEFAULTS, _FIELD_KIND,
                                       Param, _coerce_float, _config_problems, _family, _hint,
                                       _normalize, _same, _value_problems)

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
    except RecursionError:
        raise UsageError(f"{where}: nested too deeply to be a search space") from None
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
    # PyYAML reads 1e-5 (no dot) as text
    values = {k: _coerce_float(v) if k in ("cpus_per_trial", "gpus_per_trial") else v for k, v in raw.items()}
    values, found = settings_problems(values, hint=_hint)
    problems += [(f"search.{key}", message) for key, message in found]
    return SearchSettings(**values)


# ------------------------------------------------------------------------------------------- parameters


def _param_name(key: Any, problems: list, prefix: str = "") -> str | None:
    name = param_name(key)
    if name in _FIELD_KIND:
        return name
    extra = "" if prefix else f", {', '.join(_RESERVED)}"
    hint = _hint(str(key), list(_FIELD_KIND))
    problems.append((f"{prefix}{key}", f"unknown parameter{hint}: parameters are the fields of TrialConfig "
                     f"(alchemy_tune/trial/config.py){extra}"))
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
        elif not is_finite_number(value):
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
        elif low <= high and not math.isfinite((high - low) / step):
            problems.append((f"{key}.step", f"(high - low) / step must be a finite count of values, got low={low}, "
                             f"high={high}, step={step}"))
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
        ref_name = param_name(ref)
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


# ------------------------------------------------------------------------------------------ combinations

_MAX_COMBINATIONS = 10_000


def _representatives(p: Param, readers: list[Param]) -> list:
    """Values of ``p`` that cover every outcome the coupled rules and the conditions on ``p`` can see."""
    values = p.values()
    if values is not None and len(values) <= 1_000:
        return list(values)
    # a range: its ends, an inner point, and any value a condition compares it with
    named = [a for q in readers for a in q.when.get(p.name, ()) if p.can_take(a)]
    inner = (p.low + p.high) / 2 if p.kind == "float" else (p.low + p.high) // 2
    return list(dict.fromkeys([p.low, p.high, inner, *named]))


def _check_combinations(params: dict[str, Param], problems: list) -> None:
    """Every combination of the coupled fields (``config.COUPLED_FIELDS``) a trial can draw is valid.

    Only combinations that can occur count: conditions are honoured (e.g. ``lambda`` active only when
    ``lambda_schedule: constant``), and an inactive parameter reads TrialConfig's default.
    """
    from alchemy_tune.trial.config import COUPLED_FIELDS

    closure: list[str] = []
    stack = [n for n in COUPLED_FIELDS if n in params]
    while stack:
        name = stack.pop()
        if name in params and name not in closure:
            closure.append(name)
            stack.extend(params[name].when)
    if not closure:
        return
    readers = [params[n] for n in closure]
    combos: list[dict] = [{}]
    for name in (n for n in params if n in closure):  # params is in dependency order
        p, grown = params[name], []
        options = _representatives(p, readers)
        for combo in combos:
            grown.extend([combo] if not p.is_active(combo) else ({**combo, name: v} for v in options))
        if len(grown) > _MAX_COMBINATIONS:
            return  # too many to enumerate; each trial config is still checked when it is drawn
        combos = grown
    reported: set[str] = set()
    for combo in combos:
        for problem in _config_problems(combo):
            if problem not in reported:
                reported.add(problem)
                shown = ", ".join(f"{k}={v!r}" for k, v in combo.items())
                problems.append((problem.split(": ", 1)[0], f"{problem.split(': ', 1)[-1]} (a combination "
                                 f"this space can draw: {shown})"))


def load_space(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SearchSpace:
    """Read and validate a space file; every problem is reported at once in one UsageError.

    ``overrides`` pin parameters (CLI values such as ``{"task": "massive"}``): each replaces the file's
    entry with a fixed, unconditional value.
    """
    path = resolve_space(path)
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
    for key in settings.primary or {}:  # the headline comparison names parameters of TrialConfig
        _param_name(key, problems, prefix="search.primary.")
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
    if not problems:  # each entry is valid on its own: now the rules between fields
        _check_combinations(ordered, problems)
    if settings.sampler in SAMPLER_KINDS and SAMPLER_KINDS[settings.sampler].enumerates:
        for p in ordered.values():
            if p.values() is None:
                problems.append(("search.sampler", f"{settings.sampler} needs every parameter discrete, but "
                                 f"{p.name} is a {'log ' if p.log else ''}{p.kind} range without step: give "
                                 "choices or a step"))
    if problems:
        raise UsageError("; ".join(f"{where}: {key}: {message}" for key, message in problems))
    return SearchSpace(path=where, params=ordered, settings=settings, description=description)


def space_of_run(record, run_dir: str) -> SearchSpace | None:
    """A run's space file as the search read it (the file with the pinned parameters), or None. A run copied
    elsewhere (e.g. the studies' shipped tables) keeps a copy of the file beside its record."""
    import os

    if not record.space:
        return None
    beside = os.path.join(run_dir, os.path.basename(record.space)) if "://" not in run_dir else None
    for path in filter(None, (record.space, beside)):
        try:
            return load_space(path, record.params or None)
        except (UsageError, OSError):
            continue
    return None
