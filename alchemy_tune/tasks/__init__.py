"""Task registry: name -> loader. Loaders import lazily (the paper's loaders need `datasets`)."""

from __future__ import annotations

import importlib

from ..errors import UsageError
import dataclasses

from .base import SPLITS, Example, Task, TaskOptions, assign_roles, take_nested

__all__ = ["SPLITS", "Example", "Task", "TaskOptions", "TASKS", "default_val", "load_task", "take_nested"]

# name -> "module:function"; every function takes a TaskOptions and returns a validated Task.
TASKS: dict[str, str] = {
    "bible-genre": "alchemy_tune.tasks.bible:load_genre",
    "bible-relatedness": "alchemy_tune.tasks.bible:load_relatedness",
    "massive": "alchemy_tune.tasks.massive:load_massive",
    "masakhanews": "alchemy_tune.tasks.masakhanews:load_masakhanews",
    "semrel": "alchemy_tune.tasks.semrel:load_semrel",
}


def load_task(name: str, options: TaskOptions | None = None) -> Task:
    """Load a registered task by name; an unknown name is a UsageError listing the valid ones."""
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    options = options or TaskOptions()
    module_name, func_name = TASKS[name].split(":")
    module = importlib.import_module(module_name)
    loader = getattr(module, func_name)
    held_out = options
    if options.val and options.unseen is not None:
        # loaders know seen/held-out only: the validation languages are held out too
        held_out = dataclasses.replace(options, unseen=tuple(dict.fromkeys(options.unseen + options.val)))
    try:
        task = loader(held_out)
    except UsageError as exc:
        culprit = held_out is not options and any(repr(v) in str(exc) for v in options.val)
        if culprit:  # the loader checked our merged list: name the field the user gave
            raise UsageError(f"val: {str(exc).partition(': ')[2]}") from None
        raise
    return assign_roles(task, options.val, default_val(name)).validate()


def default_val(name: str) -> tuple[str, ...]:
    """The task's documented validation group (``DEFAULT_VAL`` of its module; none for the paper tasks)."""
    module = importlib.import_module(TASKS[name].split(":")[0])
    return tuple(getattr(module, "DEFAULT_VAL", ()))
