"""Declarative search spaces: a YAML file -> a validated, typed :class:`SearchSpace` -> Optuna / Ray Tune.

A space file maps :class:`~alchemy_tune.trial.config.TrialConfig` field names (``lambda`` for λ) to a fixed
value or a spec, plus an optional ``search:`` section (:class:`~alchemy_tune.core.settings.SearchSettings`) and ``description:``::

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
Reading a file into these types is :func:`alchemy_tune.tuning.space_file.load_space`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from alchemy_tune.trial.config import TrialConfig, config_fields
from alchemy_tune.core.errors import UsageError
from alchemy_tune.core.numbers import is_finite_number
from alchemy_tune.core.settings import SearchSettings

KINDS = ("fixed", "float", "int", "categorical", "subset")
MAX_GRID = 100_000
"""grid() refuses to enumerate more configurations than this (a typo such as high: 100000 on an int)."""
MAX_SUBSET_MEMBERS = 12
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


_FIELD_KIND = {f.param: f.kind for f in config_fields()}  # parameter -> kind (config.FieldInfo)
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
            if n >= MAX_GRID:  # too many to list: sampled as a stepped range, never enumerated
                return None
            return [round(self.low + i * self.step, 12) for i in range(n + 1)]
        return None

    def can_take(self, value: Any) -> bool:
        if self.kind in ("fixed", "categorical", "subset"):
            return any(_same(value, option) for option in self.values())
        if not (is_finite_number(value) and self.low <= value <= self.high):
            return False
        if self.kind == "int":
            return isinstance(value, int) and (value - self.low) % (self.step or 1) == 0
        if self.step is None:
            return True
        return abs((value - self.low) / self.step - round((value - self.low) / self.step)) <= 1e-9

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

    def summary(self) -> dict:
        """What the analysis needs of the space, as plain data for the run record (``space_params``): per
        parameter whether it was a continuous range and the condition under which it applies."""
        return {p.name: {"continuous": p.values() is None, "when": {k: list(v) for k, v in p.when.items()}}
                for p in self.params.values()}

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


def shipped_spaces() -> Path | None:
    """The ``search_spaces/`` folder shipped with the package (a source checkout or an editable install)."""
    package = Path(__file__).resolve().parents[1]  # alchemy_tune/
    for candidate in (package.parent / "search_spaces", package / "search_spaces"):
        if candidate.is_dir():
            return candidate
    return None


def default_space() -> Path:
    """``search_spaces/default.yaml``: the space of ``search`` and ``plan`` without ``--space``."""
    shipped = shipped_spaces()
    if shipped is None or not (shipped / "default.yaml").is_file():
        raise UsageError("--space: this installation has no search_spaces/default.yaml; give a space file")
    return shipped / "default.yaml"


def resolve_space(value: str | Path) -> Path:
    """A space file from ``--space``: a path (``~`` expanded here, on the machine that reads it) or the name of
    a shipped space (``paper-grid`` or ``paper-grid.yaml``, from search_spaces/)."""
    text = str(value)
    path = Path(text).expanduser()
    if path.exists() or "/" in text or "\\" in text:
        return path
    shipped = shipped_spaces()
    name = text if text.endswith((".yaml", ".yml")) else f"{text}.yaml"
    if shipped is not None and (shipped / name).is_file():
        return shipped / name
    known = sorted(p.stem for p in shipped.glob("*.yaml")) if shipped is not None else []
    raise UsageError(f"--space {text}: no such file, and not a shipped space"
                     + (f" (shipped: {', '.join(known)})" if known else ""))


# --------------------------------------------------------------------------------------------- values

_TAG = "\x1f"  # marks where TrialConfig's "source: " prefix ends, so its messages can be re-keyed


def _config_problems(values: Mapping[str, Any], *, combinations: bool = True) -> list[str]:
    """TrialConfig's verdict on a (partial) configuration: one ``field: message`` per problem."""
    try:
        TrialConfig.from_dict(values, source=_TAG, combinations=combinations)
    except UsageError as exc:
        return str(exc).removeprefix(f"{_TAG}: ").split(f"; {_TAG}: ")
    return []


def _value_problems(name: str, value: Any) -> list[str]:
    """TrialConfig's own verdict on one value, without its prefixes. A feature spec is checked on its own
    against every URIEL source (which source a trial uses is checked with its whole configuration)."""
    from alchemy_tune.languages.vectors import SOURCES

    attempts = [{name: value, "uriel_source": s} for s in SOURCES] if name == "uriel_features" else [{name: value}]
    problems: list[str] = []
    for values in attempts:
        found = _config_problems(values, combinations=False)
        if not found:
            return []
        problems = problems or [p.removeprefix(f"{name}: ") for p in found]
    return problems


def _normalize(name: str, value: Any) -> Any:
    return _coerce_float(value) if _FIELD_KIND.get(name) == "float" else value


def _coerce_float(value: Any) -> Any:
    if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        return float(value)
    return value


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
