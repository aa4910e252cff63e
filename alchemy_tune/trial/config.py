"""The typed configuration of one trial, validated eagerly, and everything known about its fields.

Every field is also a search-space parameter (``search_spaces/*.yaml``), a column of the trials table
(``cfg_<parameter>``) and a CLI flag of ``alchemy-tune train`` (underscores become dashes). A parameter is
named as its field, except ``lambda_`` (a Python keyword otherwise), which is ``lambda``:
:func:`param_name` and :func:`field_name` translate. :func:`config_fields` describes each field (kind,
optional, role) for whoever reflects over the dataclass; :func:`params_with_role` lists the parameters
of a role (field metadata).
"""

from __future__ import annotations

import math
from dataclasses import InitVar, dataclass, field, fields
from functools import cache
from typing import Any, Callable, Mapping

from alchemy_tune.trial.encoder import BUNDLED_MODELS, POOLERLESS_BUNDLED
from alchemy_tune.core.errors import UsageError
from alchemy_tune.languages.vectors import DEFAULT_FEATURES as SOURCE_DEFAULT_FEATURES
from alchemy_tune.languages.vectors import SOURCES as URIEL_SOURCES
from alchemy_tune.languages.controls import CONTROLS as URIEL_CONTROLS
from alchemy_tune.languages.vectors import missing_policies, parse_features

PROJECTIONS = ("linear", "mlp")
ACTIVATIONS = ("gelu", "relu", "tanh", "silu")
POOLINGS = ("cls", "mean", "pooler")
LAMBDA_SCHEDULES = ("constant", "warmup", "linear_decay", "cosine_decay", "alchemyscale", "alchemytune")
DYNAMIC_SCHEDULES = ("alchemyscale", "alchemytune")
"""Schedules that set the URIEL weight themselves and ignore λ."""
COUPLED_FIELDS = ("lambda", "lambda_schedule", "model", "pooling", "uriel_control")
"""Fields a cross-field rule of TrialConfig reads together: a search space checks their combinations."""
DEVICES = ("auto", "cpu", "cuda")
SCORE_TEST = ("best", "every")
DEFAULT_FEATURES = SOURCE_DEFAULT_FEATURES["lang2vec"]

# Field metadata keys, and the roles a field may have (at most one; most fields have none).
ROLE, PARAM = "role", "param"
EXECUTION = "execution"
"""How and where a trial runs and what it records, never what it learns (bf16 and deterministic change
rounding only): a checkpoint resumes under other values, the analysis pools trials that differ only here."""
REPLICATE = "replicate"
"""The seeds (``seed``, ``data_seed``): trials that differ only in them are replicates of one configuration.
A data seed draws which examples train (a random draw of the data, like the training seed's draw of the
initialisation and order), never a setting to tune or to compare."""
LANGUAGES = "languages"
"""The language lists: they define which scores a trial has, so they are not a searched setting."""
URIEL = "uriel"
"""Settings that only shape the URIEL loss: a matched λ = 0 baseline may differ in them (it has none)."""


@dataclass(frozen=True)
class TrialConfig:
    """One LinguAlchemy trial. Defaults are the CPU-friendly bundled-task setting."""

    # --- data
    task: str = "bible-genre"
    """Registered task name (see ``alchemy_tune.tasks.TASKS``)."""
    data_dir: str | None = field(default=None, metadata={ROLE: EXECUTION})
    """Folder of the dataset's release files (paper tasks); None = bundled data / the hub."""
    task_variant: str | None = None
    """Task-specific input choice, e.g. MasakhaNews ``headline`` or ``headline+text``."""
    train_size: int | None = 300
    """Training examples per seen language (nested subsets by ``data_seed``); None = all. A task may declare
    its own default (sib200: 200)."""
    dev_size: int | None = 60
    """Dev examples per language; None = all. A task may declare its own default (sib200: 40)."""
    test_size: int | None = 120
    """Test examples per language; None = all. A task may declare its own default (sib200: 60)."""
    seen: tuple[str, ...] | None = field(default=None, metadata={ROLE: LANGUAGES})
    """Override the task's training languages (dataset codes)."""
    unseen: tuple[str, ...] | None = field(default=None, metadata={ROLE: LANGUAGES})
    """Override the task's test languages (dataset codes): never trained on, never used to choose."""
    val: tuple[str, ...] | None = field(default=None, metadata={ROLE: LANGUAGES})
    """Validation languages (dataset codes; never trained on, their dev split chooses); None = the task's
    default group (bible tasks: ita ukr pes kor; paper tasks: none), ``[]`` = none."""
    group_langs: tuple[str, ...] | None = field(default=None, metadata={ROLE: LANGUAGES})
    """Seen languages trained on ``group_train_size`` examples each instead of ``train_size`` (e.g. the
    high-resource ones keep 800 while the others vary); the tables record each language's actual count."""
    group_train_size: int | None = None
    """Training examples per language of ``group_langs``; None = all."""
    script_twins: bool = field(default=False, metadata={ROLE: LANGUAGES})
    """Hold out a seen language's other-script twin too (SIB-200: ``zho_Hant`` when ``zho_Hans`` is seen).
    It shares the seen language's URIEL vector, so by default it is left out of the held-out languages."""
    data_seed: int = field(default=0, metadata={ROLE: REPLICATE})
    """Seed of the training-size subsets and of a control's derangement (kept apart from ``seed`` so the two
    can vary separately; a search's ``replicate_data`` varies it with the training seed)."""
    max_length: int = 64
    """Maximum tokens per input (pair inputs together)."""
    group_by_length: bool = True
    """Batch examples of similar length together (with dynamic padding) to waste less compute."""
    pad_to_max_length: bool = False
    """Pad every batch to ``max_length`` as the authors' code did (for comparisons only)."""

    # --- encoder
    model: str = "e5-small"
    """``e5-small`` (bundled multilingual-e5-small), a local model folder, or a Hugging Face id."""
    num_layers: int | None = 6
    """Keep only the first k transformer layers; None = all."""
    freeze_embeddings: bool = True
    """Freeze the (large) word-embedding matrix: most of the CPU cost of a step otherwise."""
    pooling: str = "mean"
    """``mean`` over tokens (how e5 is used), ``cls`` (first token's state) or ``pooler`` (the encoder's
    pretrained pooler, tanh-dense on the first token, as the paper; only models whose checkpoint has one)."""
    dropout: float = 0.1
    """Dropout on the pooled representation before the heads."""

    # --- URIEL and projection
    uriel_source: str = field(default="lang2vec", metadata={ROLE: URIEL})
    """Language vectors: ``lang2vec`` (URIEL, the paper's) or ``urielplus`` (URIEL+, Khan et al. 2025)."""
    uriel_features: str | None = field(default=None, metadata={ROLE: URIEL})
    """'+'-joined feature sets of the source; None = the source's default (lang2vec: the paper's
    syntax_knn+syntax_average+geo, 505 dims; urielplus: syntactic+geographic, 793 dims)."""
    missing: str = field(default="zero", metadata={ROLE: URIEL})
    """Missing URIEL values: ``zero`` (paper), ``mean`` over languages, ``knn`` (lang2vec's kNN-imputed sets)."""
    projection: str = field(default="linear", metadata={ROLE: URIEL})
    """URIEL projection head: ``linear`` (paper) or ``mlp``."""
    proj_depth: int = field(default=2, metadata={ROLE: URIEL})
    """MLP: number of linear layers (>= 2)."""
    proj_width: int = field(default=256, metadata={ROLE: URIEL})
    """MLP: hidden width."""
    proj_activation: str = field(default="gelu", metadata={ROLE: URIEL})
    proj_dropout: float = field(default=0.0, metadata={ROLE: URIEL})
    proj_layernorm: bool = field(default=False, metadata={ROLE: URIEL})
    proj_sigmoid: bool = field(default=False, metadata={ROLE: URIEL})
    """Squash the projection into [0, 1], the range of URIEL values."""
    uriel_control: str = field(default="none", metadata={ROLE: URIEL})
    """Train towards a control instead of the real vectors: ``shuffled`` (another language's vector, a
    derangement fixed by ``data_seed``) or ``random`` (each feature drawn from its values over the task's
    languages); ``none`` = the real URIEL vectors. What separates typology from regularisation."""

    # --- λ
    lambda_: float = field(default=10.0, metadata={ROLE: URIEL, PARAM: "lambda"})
    """Scale of the URIEL loss (0 = plain fine-tuning, the baseline). Paper: 10."""
    lambda_schedule: str = field(default="constant", metadata={ROLE: URIEL})
    lambda_warmup: float = field(default=0.1, metadata={ROLE: URIEL})
    """``warmup``: fraction of training over which λ rises linearly from 0."""
    scale_interval: int = field(default=100, metadata={ROLE: URIEL})
    """``alchemyscale``: steps between weight updates (paper: 100)."""
    tune_lr: float = 0.01
    """``alchemytune``: learning rate of the learnable log-variances (own group: no weight decay, no LR
    decay)."""
    tune_floor: float = 0.01
    """``alchemytune``: added to the URIEL loss in the weighting, so its weight stays <= 1/tune_floor."""

    # --- optimisation
    epochs: float = 2.0
    max_steps: int | None = None
    """Stop after this many optimiser steps (overrides ``epochs`` when smaller)."""
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    """Fraction of steps of linear LR warm-up before linear decay (paper: 0)."""
    grad_clip: float = 1.0
    batch_size: int = 32
    evals_per_epoch: int = 1
    eval_every: int | None = None
    """Evaluate every this many optimiser steps (overrides ``evals_per_epoch``); with ``max_steps`` it keeps
    the number of evaluations equal across training sizes."""
    seed: int = field(default=42, metadata={ROLE: REPLICATE})

    # --- execution
    device: str = field(default="auto", metadata={ROLE: EXECUTION})
    threads: int | None = field(default=None, metadata={ROLE: EXECUTION})
    """CPU threads for torch; None = leave torch's default."""
    bf16: bool = field(default=True, metadata={ROLE: EXECUTION})
    """bf16 autocast on GPUs with native bf16 (compute capability >= 8.0); fp32 elsewhere. Heads and losses stay fp32."""
    deterministic: bool = field(default=False, metadata={ROLE: EXECUTION})
    """Torch's deterministic algorithms (+ cuBLAS workspace): a resumed GPU trial repeats an uninterrupted one exactly; slower."""
    checkpoint_every: int = field(default=1, metadata={ROLE: EXECUTION})
    """Write a checkpoint every k evaluations (a restart repeats at most k evaluations' training)."""
    checkpoint_best: bool = field(default=True, metadata={ROLE: EXECUTION})
    """Also checkpoint at every evaluation that is a new best on the selection metric."""
    score_test: str = field(default="best", metadata={ROLE: EXECUTION})
    """When test is scored: ``best`` (at each new best dev step and the last step) or ``every`` evaluation."""

    _check: InitVar[tuple[str, bool]] = ("config", True)
    """(source named in errors, whether the rules between fields apply): only :meth:`from_dict` passes it."""

    def __post_init__(self, _check: tuple[str, bool]) -> None:
        if self.uriel_features is None:  # the source's default, so tables always show the sets that ran
            default = SOURCE_DEFAULT_FEATURES.get(self.uriel_source, DEFAULT_FEATURES)
            object.__setattr__(self, "uriel_features", default)
        source, combinations = _check
        problems = list(_problems(self))
        if combinations and not problems:
            problems = [message(self) for holds, message in COMBINATION_RULES if not holds(self)]
        if problems:
            raise UsageError("; ".join(f"{source}: {p}" for p in problems))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config",
                  combinations: bool = True) -> "TrialConfig":
        """Build and validate from parameters (``lambda`` or ``lambda_``). Unknown keys are errors.

        ``combinations=False`` checks each value on its own, not the rules between fields
        (``COUPLED_FIELDS``): how a search space judges one entry before it checks their combinations.
        """
        names = {f.name for f in config_fields()}
        kwargs, problems = {}, []
        for key, value in values.items():
            name = field_name(key)
            if name not in names:
                problems.append(f"{source}: unknown parameter {key!r}")
                continue
            kwargs[name] = value
        if problems:
            raise UsageError("; ".join(problems))
        kwargs = {**task_defaults(kwargs.get("task", cls.task)), **kwargs}
        for key in (f.name for f in config_fields() if f.kind == "tuple"):
            value = kwargs.get(key)
            if isinstance(value, str):
                kwargs[key] = tuple(v for v in value.split(",") if v)
            elif isinstance(value, list):
                kwargs[key] = tuple(value)
        return cls(**kwargs, _check=(source, combinations))

    def task_options(self):
        """The :class:`~alchemy_tune.tasks.TaskOptions` this trial loads its task with."""
        from alchemy_tune.tasks import TaskOptions

        return TaskOptions(train_size=self.train_size, dev_size=self.dev_size, test_size=self.test_size,
                           seen=self.seen, unseen=self.unseen, val=self.val, data_dir=self.data_dir,
                           variant=self.task_variant, seed=self.data_seed, group=self.group_langs,
                           group_train_size=self.group_train_size, script_twins=self.script_twins)

    def to_dict(self) -> dict[str, Any]:
        """Plain values keyed by parameter name (``lambda``, not ``lambda_``)."""
        out = {}
        for f in config_fields():
            value = getattr(self, f.name)
            out[f.param] = list(value) if isinstance(value, tuple) else value
        return out


# ------------------------------------------------------------------------------- what a setting means
def is_plain(values: Mapping[str, Any]) -> bool:
    """Plain fine-tuning: λ = 0 under a schedule that follows λ, so the URIEL loss is never computed.

    The one definition every layer asks (the trial's loss, the matched twins of a search, the analysis's
    baselines). ``values`` are parameters (``lambda``, ``lambda_schedule``; a missing one has its default,
    ``lambda_`` is accepted too). A dynamic schedule (AlchemyScale, AlchemyTune) sets the URIEL weight itself,
    so it is never plain, whatever λ says.
    """
    lam = values.get("lambda", values.get("lambda_", TrialConfig.lambda_))
    try:
        lam = float(lam)
    except (TypeError, ValueError):
        return False
    schedule = values.get("lambda_schedule", TrialConfig.lambda_schedule)
    return lam == 0 and schedule not in DYNAMIC_SCHEDULES


def uses_uriel(values: Mapping[str, Any]) -> bool:
    """Whether a configuration trains with the URIEL loss: everything that is not plain fine-tuning."""
    return not is_plain(values)


_ONLY_WITH: dict[str, tuple[str, tuple]] = {
    "lambda_warmup": ("lambda_schedule", ("warmup",)),
    "scale_interval": ("lambda_schedule", ("alchemyscale",)),
    "tune_lr": ("lambda_schedule", ("alchemytune",)), "tune_floor": ("lambda_schedule", ("alchemytune",)),
    **{name: ("projection", ("mlp",)) for name in ("proj_depth", "proj_width", "proj_activation", "proj_dropout",
                                                  "proj_layernorm")},
}


def applies(param: str, values: Mapping[str, Any]) -> bool:
    """Whether setting ``param`` changes what a configuration with these ``values`` trains: the URIEL
    settings do nothing in plain fine-tuning (λ is what makes it plain, so it is shown), λ does nothing
    under a dynamic schedule, and a schedule's or an MLP projection's own settings nothing without it."""
    if param in ("lambda", "lambda_"):
        return values.get("lambda_schedule", TrialConfig.lambda_schedule) not in DYNAMIC_SCHEDULES
    if param == "data_seed":  # it draws the training subsets and a control's derangement, nothing else
        values = {**task_defaults(values.get("task", TrialConfig.task)), **values}
        subset = values.get("train_size", TrialConfig.train_size) is not None or (
            bool(values.get("group_langs")) and values.get("group_train_size") is not None)
        return subset or values.get("uriel_control", TrialConfig.uriel_control) != "none"
    if is_plain(values) and param in params_with_role(URIEL):
        return False
    if param in _ONLY_WITH:
        other, allowed = _ONLY_WITH[param]
        return values.get(other, getattr(TrialConfig, field_name(other))) in allowed
    return True


def twin_of(values: Mapping[str, Any]) -> dict:
    """A configuration's matched plain fine-tuning twin: λ = 0 with a constant schedule, every other setting
    the same (the URIEL settings stay, unused without the URIEL loss)."""
    twin = {**values, "lambda": 0.0}
    twin.pop("lambda_", None)
    if "lambda_schedule" in twin:
        twin["lambda_schedule"] = "constant"
    if "uriel_control" in twin:  # the twin of a control and of its real configuration is one run
        twin["uriel_control"] = "none"
    return twin


def task_defaults(task: Any) -> dict[str, Any]:
    """The sizes task ``task`` declares as its defaults (``TaskSpec.sizes``); {} for an unknown task, which
    the load names."""
    from alchemy_tune.tasks import TASKS

    spec = TASKS.get(task) if isinstance(task, str) else None
    return dict(spec.sizes) if spec else {}


# ------------------------------------------------------------------------------- the fields, described
@dataclass(frozen=True)
class FieldInfo:
    name: str  # the dataclass field (``lambda_``)
    param: str  # the parameter, column and flag name (``lambda``)
    kind: str  # "str" | "int" | "float" | "bool" | "tuple" (of strings)
    optional: bool  # None is a valid value
    role: str | None  # EXECUTION, REPLICATE, LANGUAGES, URIEL or None


@cache
def config_fields() -> tuple[FieldInfo, ...]:
    """Every TrialConfig field with its kind read from the annotation, in declaration order."""
    out = []
    for f in fields(TrialConfig):
        annotation = str(f.type)  # a string under ``from __future__ import annotations``: "int | None"
        base = annotation.split("|")[0].strip()
        kind = "tuple" if base.startswith("tuple") else base
        param, role = f.metadata.get(PARAM, f.name), f.metadata.get(ROLE)
        out.append(FieldInfo(f.name, param, kind, "None" in annotation, role))
    return tuple(out)


def params_with_role(*roles: str) -> tuple[str, ...]:
    """Parameter names (as in ``to_dict``, spaces, ``cfg_`` columns) of the fields of any of ``roles``."""
    return tuple(f.param for f in config_fields() if f.role in roles)


def param_name(key: str) -> str:
    """The parameter name of a field (``lambda_`` -> ``lambda``); any other key unchanged."""
    return _PARAM_OF.get(key, key)


def field_name(key: str) -> str:
    """The field of a parameter (``lambda`` -> ``lambda_``); any other key unchanged."""
    return _FIELD_OF.get(key, key)


_PARAM_OF = {f.name: f.param for f in config_fields() if f.param != f.name}
_FIELD_OF = {param: name for name, param in _PARAM_OF.items()}


# ------------------------------------------------------------------------------------ validation rules
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}

MAX_SEED = 2**32 - 1
"""The largest seed numpy's generators accept (torch accepts more): every seed of a trial stays within it."""

CHOICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("projection", PROJECTIONS), ("proj_activation", ACTIVATIONS), ("pooling", POOLINGS),
    ("uriel_source", URIEL_SOURCES), ("lambda_schedule", LAMBDA_SCHEDULES), ("device", DEVICES),
    ("score_test", SCORE_TEST), ("uriel_control", URIEL_CONTROLS),
)
"""Fields with a fixed set of values."""

BOUNDS: tuple[tuple[tuple[str, ...], Callable[[float], bool], str], ...] = (
    (("lambda_",), lambda v: v >= 0, ">= 0"),
    (("seed", "data_seed"), lambda v: 0 <= v <= MAX_SEED, f"in [0, {MAX_SEED}] (numpy's and torch's seed range)"),
    (("train_size", "group_train_size", "dev_size", "test_size", "max_steps", "num_layers", "threads", "eval_every", "max_length",
      "batch_size", "evals_per_epoch", "scale_interval", "proj_width", "checkpoint_every"),
     lambda v: v >= 1, "a positive integer"),
    (("max_length",), lambda v: v <= 8192, "<= 8192"),
    (("proj_depth",), lambda v: v >= 2, ">= 2 (depth 1 is projection: linear)"),
    (("epochs",), lambda v: v > 0, "> 0"),
    (("lr",), lambda v: 0 < v < 1, "in (0, 1)"),
    (("weight_decay",), lambda v: v >= 0, ">= 0"),
    (("grad_clip",), lambda v: v > 0, "> 0"),
    (("tune_lr",), lambda v: 0 < v < 10, "in (0, 10)"),
    (("tune_floor",), lambda v: v >= 0, ">= 0"),
    (("dropout", "proj_dropout"), lambda v: 0 <= v < 1, "in [0, 1)"),
    (("warmup_ratio", "lambda_warmup"), lambda v: 0 <= v <= 1, "in [0, 1]"),
)
"""(fields, what must hold, how to say it) for numbers; None (an optional field unset) is not checked."""

COMBINATION_RULES: tuple[tuple[Callable[[TrialConfig], bool], Callable[[TrialConfig], str]], ...] = (
    # known without loading the model
    (lambda c: not (c.pooling == "pooler" and c.model in BUNDLED_MODELS),
     lambda c: POOLERLESS_BUNDLED.format(c.model)),
    # analyze counts every λ = 0 trial as the plain fine-tuning baseline, but these train with L_uriel
    (lambda c: not (c.lambda_schedule in DYNAMIC_SCHEDULES and c.lambda_ == 0),
     lambda c: (f"lambda: 0 with lambda_schedule {c.lambda_schedule!r} would still train with the URIEL loss "
                "(the dynamic schedules ignore λ); the λ = 0 baseline takes lambda_schedule constant")),
    (lambda c: c.uriel_control == "none" or not is_plain({"lambda": c.lambda_, "lambda_schedule": c.lambda_schedule}),
     lambda c: (f"uriel_control: {c.uriel_control} with lambda 0 trains no URIEL loss, so there is nothing to "
                "control; a control needs lambda > 0 (or a dynamic schedule)")),
)
"""(what must hold, the message) between fields, all in ``COUPLED_FIELDS``; checked once every field is
valid on its own."""


def _problems(c: TrialConfig):
    """Every problem of each value on its own, each naming the field, the value and what would be valid."""
    for f in config_fields():
        value, kind = getattr(c, f.name), _TYPES.get(f.kind)
        if kind is None or (value is None and f.optional) or _is_a(value, kind):
            continue
        yield f"{f.param}: expected {f.kind}{' or null' if f.optional else ''}, got {value!r}"
    for name, valid in CHOICES:
        if getattr(c, name) not in valid:
            yield f"{name}: {getattr(c, name)!r} is not one of {', '.join(valid)}"
    for names, holds, text in BOUNDS:
        for name in names:
            value = getattr(c, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue  # None, or refused by its type above
            if isinstance(value, float) and not math.isfinite(value):
                yield f"{param_name(name)}: must be a finite number ({text}), got {value!r}"
            elif not holds(value):
                yield f"{param_name(name)}: must be {text}, got {value!r}"
    yield from _uriel_problems(c)
    for name in (f.param for f in config_fields() if f.role == LANGUAGES and f.kind == "tuple"):
        value = getattr(c, name)
        if value is not None and not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            yield f"{name}: expected a list of language codes, got {value!r}"


def _is_a(value: Any, kind: type) -> bool:
    """``isinstance`` where a bool is not a number and an int is a float."""
    if kind in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def _uriel_problems(c: TrialConfig):
    """Feature sets and missing-value policy, checked against the chosen source (before any data loads)."""
    every_policy = tuple(dict.fromkeys(p for s in URIEL_SOURCES for p in missing_policies(s)))
    if c.missing not in every_policy:
        yield f"missing: {c.missing!r} is not one of {', '.join(every_policy)}"
    if c.uriel_source not in URIEL_SOURCES or not isinstance(c.uriel_features, str):
        return
    if c.missing in every_policy and c.missing not in missing_policies(c.uriel_source):
        yield (f"missing: {c.missing!r} is not a policy of uriel_source {c.uriel_source}; valid: "
               f"{', '.join(missing_policies(c.uriel_source))}")
    try:
        parse_features(c.uriel_features, c.uriel_source)
    except UsageError as exc:
        yield f"uriel_features: {exc}"
