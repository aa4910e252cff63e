"""What a task is: labelled examples per language and split, three language roles, metrics.

Every dataset loader (bundled corpus or the paper's benchmarks) returns a :class:`Task`; the trial
never needs to know where the examples came from.

Language roles (the protocol that keeps test languages out of every decision):

- ``seen``: trained on; their dev split takes part in selection, their test split is scored.
- ``val`` (validation): never trained on; their dev split is used to choose (best step, pruning, sampler
  feedback, best configuration); their test split is scored and reported.
- ``unseen`` (test): never trained on and never used for any decision; scored only.

A loader returns the languages it trains on as ``seen`` and every held-out language as ``unseen``;
:func:`assign_roles` then moves the validation group out of ``unseen`` (``load_task`` calls it), so no
loader needs to know about validation languages.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

from alchemy_tune.core.errors import UsageError

TaskKind = Literal["classification", "pair_regression"]
SPLITS = ("train", "dev", "test")

METRICS: dict[str, tuple[str, ...]] = {
    # the first metric of each kind is the primary one: averages and search objectives use it
    "classification": ("accuracy", "macro_f1"),
    "pair_regression": ("pearson", "spearman"),
}


@dataclass(frozen=True)
class Example:
    """One labelled input: a text (and a second text for pair tasks) with a class index or a score."""

    text: str
    label: int | float
    text_pair: str | None = None


@dataclass(frozen=True)
class TaskOptions:
    """How to load a task. Every loader accepts all of these (ignoring what does not apply)."""

    train_size: int | None = None
    """Training examples per seen language; None = all. Nested: a smaller size is a subset of a larger."""
    dev_size: int | None = None
    """Dev examples per language: a stratified subset, a prefix of a fixed order; None = loader default."""
    test_size: int | None = None
    """Test examples per language: a stratified subset, a prefix of a fixed order; None = loader default."""
    seen: tuple[str, ...] | None = None
    """Override of the training (seen) languages, as dataset codes."""
    unseen: tuple[str, ...] | None = None
    """Override of the test (unseen) languages, as dataset codes."""
    val: tuple[str, ...] | None = None
    """Override of the validation languages (held out, used to choose); None = the task's default group."""
    data_dir: str | None = None
    """Folder with the dataset's own release files; None = the Hugging Face hub (or bundled data)."""
    variant: str | None = None
    """Task-specific input choice, e.g. MasakhaNews 'headline' or 'headline+text'."""
    seed: int = 0
    """Seed for the training-size subsets (not for model training)."""
    group: tuple[str, ...] | None = None
    """Seen languages that train on ``group_train_size`` examples instead of ``train_size`` (e.g. the
    high-resource ones keep 800 while the rest vary): low-resource seen languages as a setting."""
    group_train_size: int | None = None
    """Training examples per language of ``group``; None = all."""
    script_twins: bool = False
    """Let a seen language's other-script twin (SIB-200 ``zho_Hant`` of ``zho_Hans``) be held out."""

    def size_of(self, lang: str) -> int | None:
        """Training examples asked for ``lang`` (a seen language): the group's size or ``train_size``."""
        return self.group_train_size if lang in (self.group or ()) else self.train_size

    def __post_init__(self) -> None:
        for name in ("train_size", "dev_size", "test_size", "group_train_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise UsageError(f"{name.replace('_', '-')}: must be a positive integer, got {value!r}")


@dataclass
class Task:
    """A loaded task: examples per split and language, plus everything needed to score them."""

    name: str
    kind: TaskKind
    labels: tuple[str, ...]
    """Class names, index = label; empty for pair regression."""
    seen: tuple[str, ...]
    """Dataset language codes trained on (and evaluated)."""
    unseen: tuple[str, ...]
    """Test languages: only evaluated, never used to choose anything."""
    uriel_codes: Mapping[str, str]
    """Dataset language code -> lang2vec (ISO 639-3) code, for every language of the task."""
    train: Mapping[str, list[Example]]
    dev: Mapping[str, list[Example]]
    test: Mapping[str, list[Example]]
    notes: list[str] = field(default_factory=list)
    """Human-readable facts about the load (code fallbacks, dropped examples), printed by `plan`."""
    val: tuple[str, ...] = ()
    """Validation languages: never trained on; their dev split chooses (see the module docstring)."""

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.seen) + tuple(self.val) + tuple(self.unseen)

    def role(self, lang: str) -> str:
        """``seen``, ``val`` or ``unseen`` (test)."""
        return "seen" if lang in self.seen else "val" if lang in self.val else "unseen"

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS[self.kind]

    @property
    def primary_metric(self) -> str:
        return METRICS[self.kind][0]

    @property
    def num_labels(self) -> int:
        """Output width of the task head: classes, or 1 for regression."""
        return len(self.labels) if self.kind == "classification" else 1

    def split(self, name: str) -> Mapping[str, list[Example]]:
        return {"train": self.train, "dev": self.dev, "test": self.test}[name]

    def validate(self) -> "Task":
        """Raise UsageError if the task cannot be trained and evaluated as declared."""
        problems = []
        for a, b in (("seen", "unseen"), ("seen", "val"), ("val", "unseen")):
            overlap = set(getattr(self, a)) & set(getattr(self, b))
            if overlap:
                problems.append(f"languages both {a} and {b}: {sorted(overlap)}")
        if not self.seen:
            problems.append("no seen (training) language")
        for lang in self.languages:
            if lang not in self.uriel_codes:
                problems.append(f"language {lang!r} has no URIEL code")
            if not self.test.get(lang) and not self.dev.get(lang):
                # a release may lack one labelled split (SemRel: esp has no labelled test, ind no dev)
                problems.append(f"language {lang!r} has no dev or test examples")
        for lang in self.seen:
            if not self.train.get(lang):
                problems.append(f"seen language {lang!r} has no training examples")
        if self.kind == "classification":
            n = len(self.labels)
            for split in SPLITS:
                for lang, examples in self.split(split).items():
                    bad = [e.label for e in examples if not (isinstance(e.label, int) and 0 <= e.label < n)]
                    if bad:
                        problems.append(f"{split}/{lang}: label {bad[0]!r} outside 0..{n - 1}")
        if problems:
            raise UsageError(f"task {self.name}: " + "; ".join(problems))
        return self


def assign_roles(task: Task, val: tuple[str, ...] | None, default: tuple[str, ...] = ()) -> Task:
    """Move the validation languages out of the task's held-out languages (``task.unseen``): see
    :func:`split_held_out`."""
    task.val, task.unseen = split_held_out(task.name, task.seen, tuple(task.unseen) + tuple(task.val), val, default)
    return task


def split_held_out(
    name: str, seen: Sequence[str], held_out: Sequence[str], val: Sequence[str] | None, default: Sequence[str] = (),
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(validation, test) languages of task ``name``'s held-out languages.

    ``val`` given (even empty) must name held-out languages of the task; None takes ``default`` (the task's
    documented group), keeping only its languages that are held out in this load (a language made seen by
    an override simply stays seen). At least one held-out language must stay a test language.
    """
    held_out = tuple(held_out)
    if val is None:
        chosen = tuple(lang for lang in default if lang in held_out)
    else:
        bad = [lang for lang in val if lang not in held_out]
        if bad:
            where = {lang: "a seen (training) language" if lang in seen else "not a language of this load"
                     for lang in bad}
            raise UsageError(f"val: {', '.join(f'{lang!r} is {why}' for lang, why in where.items())}; "
                             f"validation languages are held out: choose from {', '.join(held_out)}")
        chosen = tuple(dict.fromkeys(val))
    test = tuple(lang for lang in held_out if lang not in chosen)
    if chosen and not test:
        raise UsageError(f"val: {', '.join(chosen)} leaves task {name} no test (unseen) language; "
                         "keep at least one held-out language out of the validation group")
    return chosen, test


def stable_seed(*parts: object) -> int:
    """A seed derived from values, identical across processes and Python versions (unlike hash())."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def take_nested(examples: Sequence[Example], n: int | None, seed: int, lang: str) -> list[Example]:
    """The first ``n`` examples of a fixed, seeded permutation of ``examples``.

    The permutation depends only on (seed, lang, len(examples)), so for a fixed seed a smaller ``n``
    always yields a subset (a prefix) of a larger ``n``: scaling curves compare nested training sets.
    """
    import random

    order = list(range(len(examples)))
    random.Random(stable_seed("train-size", seed, lang, len(examples))).shuffle(order)
    if n is not None:
        order = order[:n]
    return [examples[i] for i in order]
