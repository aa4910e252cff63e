"""The typed configuration of one trial, validated eagerly.

Every field is also a search-space parameter name (``search_spaces/*.yaml``) and a CLI flag of
``alchemy-tune train`` (underscores become dashes; ``lambda_`` is ``--lambda``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .encoder import BUNDLED_MODELS, POOLERLESS_BUNDLED
from .errors import UsageError
from .language_vectors import DEFAULT_FEATURES as SOURCE_DEFAULT_FEATURES
from .language_vectors import SOURCES as URIEL_SOURCES
from .language_vectors import missing_policies, parse_features

PROJECTIONS = ("linear", "mlp")
ACTIVATIONS = ("gelu", "relu", "tanh", "silu")
POOLINGS = ("cls", "mean", "pooler")
LAMBDA_SCHEDULES = ("constant", "warmup", "linear_decay", "cosine_decay", "alchemyscale", "alchemytune")
DYNAMIC_SCHEDULES = ("alchemyscale", "alchemytune")
"""Schedules that set the URIEL weight themselves and ignore λ."""
COUPLED_FIELDS = ("lambda", "lambda_schedule", "model", "pooling")
"""Fields a cross-field rule of TrialConfig reads together: a search space checks their combinations."""
DEVICES = ("auto", "cpu", "cuda")
SCORE_TEST = ("best", "every")
DEFAULT_FEATURES = SOURCE_DEFAULT_FEATURES["lang2vec"]


@dataclass(frozen=True)
class TrialConfig:
    """One LinguAlchemy trial. Defaults are the CPU-friendly bundled-task setting."""

    # --- data
    task: str = "bible-genre"
    """Registered task name (see ``alchemy_tune.tasks.TASKS``)."""
    data_dir: str | None = None
    """Folder of the dataset's release files (paper tasks); None = bundled data / the hub."""
    task_variant: str | None = None
    """Task-specific input choice, e.g. MasakhaNews ``headline`` or ``headline+text``."""
    train_size: int | None = 300
    """Training examples per seen language (nested subsets by ``data_seed``); None = all."""
    dev_size: int | None = 60
    """Dev examples per language; None = all."""
    test_size: int | None = 120
    """Test examples per language; None = all."""
    seen: tuple[str, ...] | None = None
    """Override the task's training languages (dataset codes)."""
    unseen: tuple[str, ...] | None = None
    """Override the task's test languages (dataset codes): never trained on, never used to choose."""
    val: tuple[str, ...] | None = None
    """Validation languages (dataset codes; never trained on, their dev split chooses); None = the task's
    default group (bible tasks: ita ukr pes kor; paper tasks: none), ``[]`` = none."""
    data_seed: int = 0
    """Seed of the training-size subsets (kept apart from ``seed`` so seeds vary training only)."""
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
    uriel_source: str = "lang2vec"
    """Language vectors: ``lang2vec`` (URIEL, the paper's) or ``urielplus`` (URIEL+, Khan et al. 2025)."""
    uriel_features: str | None = None
    """'+'-joined feature sets of the source; None = the source's default (lang2vec: the paper's
    syntax_knn+syntax_average+geo, 505 dims; urielplus: syntactic+geographic, 793 dims)."""
    missing: str = "zero"
    """Missing URIEL values: ``zero`` (paper), ``mean`` over languages, ``knn`` (lang2vec's kNN-imputed sets)."""
    projection: str = "linear"
    """URIEL projection head: ``linear`` (paper) or ``mlp``."""
    proj_depth: int = 2
    """MLP: number of linear layers (>= 2)."""
    proj_width: int = 256
    """MLP: hidden width."""
    proj_activation: str = "gelu"
    proj_dropout: float = 0.0
    proj_layernorm: bool = False
    proj_sigmoid: bool = False
    """Squash the projection into [0, 1], the range of URIEL values."""

    # --- λ
    lambda_: float = 10.0
    """Scale of the URIEL loss (0 = plain fine-tuning, the baseline). Paper: 10."""
    lambda_schedule: str = "constant"
    lambda_warmup: float = 0.1
    """``warmup``: fraction of training over which λ rises linearly from 0."""
    scale_interval: int = 100
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
    seed: int = 42

    # --- execution
    device: str = "auto"
    threads: int | None = None
    """CPU threads for torch; None = leave torch's default."""
    bf16: bool = True
    """bf16 autocast on GPUs with native bf16 (compute capability >= 8.0); fp32 elsewhere. Heads and losses stay fp32."""
    deterministic: bool = False
    """Torch's deterministic algorithms (+ cuBLAS workspace): a resumed GPU trial repeats an uninterrupted one exactly; slower."""
    checkpoint_every: int = 1
    """Write a checkpoint every k evaluations (a restart repeats at most k evaluations' training)."""
    checkpoint_best: bool = True
    """Also checkpoint at every evaluation that is a new best on the selection metric."""
    score_test: str = "best"
    """When test is scored: ``best`` (at each new best dev step and the last step) or ``every`` evaluation."""

    def __post_init__(self) -> None:
        if self.uriel_features is None:  # the source's default, so tables always show the sets that ran
            default = SOURCE_DEFAULT_FEATURES.get(self.uriel_source, DEFAULT_FEATURES)
            object.__setattr__(self, "uriel_features", default)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config",
                  combinations: bool = True) -> "TrialConfig":
        """Build and validate; ``lambda`` is accepted for ``lambda_``. Unknown keys are errors.

        ``combinations=False`` checks each value on its own, not the rules between fields
        (``COUPLED_FIELDS``): how a search space judges one entry before it checks their combinations.
        """
        names = {f.name for f in fields(cls)}
        kwargs, problems = {}, []
        for key, value in values.items():
            name = "lambda_" if key == "lambda" else key
            if name not in names:
                problems.append(f"{source}: unknown parameter {key!r}")
                continue
            kwargs[name] = value
        if problems:
            raise UsageError("; ".join(problems))
        for key in ("seen", "unseen", "val"):
            value = kwargs.get(key)
            if isinstance(value, str):
                kwargs[key] = tuple(v for v in value.split(",") if v)
            elif isinstance(value, list):
                kwargs[key] = tuple(value)
        return cls(**kwargs)._validated(source, combinations)

    def replace(self, **changes: Any) -> "TrialConfig":
        return dataclasses.replace(self, **changes)._validated("config")

    def to_dict(self) -> dict[str, Any]:
        """Plain values keyed by parameter name (``lambda``, not ``lambda_``)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out["lambda" if f.name == "lambda_" else f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def _validated(self, source: str, combinations: bool = True) -> "TrialConfig":
        problems = list(_problems(self))
        if combinations and not problems:
            problems = list(_combination_problems(self))
        if problems:
            raise UsageError("; ".join(f"{source}: {p}" for p in problems))
        return self


def _problems(c: TrialConfig):
    """Yield every problem at once, each naming the field, the value and what would be valid."""
    types = {f.name: f.type for f in fields(c)}

    def check_type(name, kind, optional=False):
        value = getattr(c, name)
        if value is None and optional:
            return True
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            shown = "lambda" if name == "lambda_" else name
            return f"{shown}: expected {kind.__name__}{' or null' if optional else ''}, got {value!r}"
        return True

    for name, annotation in types.items():
        optional = "None" in str(annotation)
        base = str(annotation).split("|")[0].strip()
        kind = {"str": str, "int": int, "float": float, "bool": bool}.get(base)
        if kind is None:
            continue
        result = check_type(name, kind, optional)
        if result is not True:
            yield result

    def choice(name, valid):
        value = getattr(c, name)
        if value not in valid:
            return f"{name}: {value!r} is not one of {', '.join(valid)}"

    for name, valid in (
        ("projection", PROJECTIONS), ("proj_activation", ACTIVATIONS), ("pooling", POOLINGS),
        ("uriel_source", URIEL_SOURCES), ("lambda_schedule", LAMBDA_SCHEDULES), ("device", DEVICES),
        ("score_test", SCORE_TEST),
    ):
        problem = choice(name, valid)
        if problem:
            yield problem

    def num(name, value, cond, text):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                yield f"{name}: must be a finite number ({text}), got {value!r}"
            elif not cond(value):
                yield f"{name}: must be {text}, got {value!r}"

    yield from num("lambda", c.lambda_, lambda v: v >= 0, ">= 0")
    for name in ("train_size", "dev_size", "test_size", "max_steps", "num_layers", "threads", "eval_every"):
        value = getattr(c, name)
        if value is not None:
            yield from num(name, value, lambda v: v >= 1, "a positive integer")
    for name in ("max_length", "batch_size", "evals_per_epoch", "scale_interval", "proj_width", "checkpoint_every"):
        yield from num(name, getattr(c, name), lambda v: v >= 1, "a positive integer")
    yield from num("max_length", c.max_length, lambda v: v <= 8192, "<= 8192")
    yield from num("proj_depth", c.proj_depth, lambda v: v >= 2, ">= 2 (depth 1 is projection: linear)")
    yield from num("epochs", c.epochs, lambda v: v > 0, "> 0")
    yield from num("lr", c.lr, lambda v: 0 < v < 1, "in (0, 1)")
    yield from num("weight_decay", c.weight_decay, lambda v: v >= 0, ">= 0")
    yield from num("grad_clip", c.grad_clip, lambda v: v > 0, "> 0")
    yield from num("tune_lr", c.tune_lr, lambda v: 0 < v < 10, "in (0, 10)")
    yield from num("tune_floor", c.tune_floor, lambda v: v >= 0, ">= 0")
    for name in ("dropout", "proj_dropout"):
        yield from num(name, getattr(c, name), lambda v: 0 <= v < 1, "in [0, 1)")
    for name in ("warmup_ratio", "lambda_warmup"):
        yield from num(name, getattr(c, name), lambda v: 0 <= v <= 1, "in [0, 1]")
    yield from _uriel_problems(c)
    for name in ("seen", "unseen", "val"):
        value = getattr(c, name)
        if value is not None and not (isinstance(value, tuple) and all(isinstance(v, str) for v in value)):
            yield f"{name}: expected a list of language codes, got {value!r}"


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


def _combination_problems(c: TrialConfig):
    """Rules between fields (all in ``COUPLED_FIELDS``), checked once every field is valid on its own."""
    if c.pooling == "pooler" and c.model in BUNDLED_MODELS:  # known without loading the model
        yield POOLERLESS_BUNDLED.format(c.model)
    if c.lambda_schedule in DYNAMIC_SCHEDULES and c.lambda_ == 0:
        # analyze counts every λ = 0 trial as the plain fine-tuning baseline, but these train with L_uriel
        yield (f"lambda: 0 with lambda_schedule {c.lambda_schedule!r} would still train with the URIEL loss "
               "(the dynamic schedules ignore λ); the λ = 0 baseline takes lambda_schedule constant")
