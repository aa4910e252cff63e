"""Task registry: name -> loader. Loaders import lazily (the paper's loaders need `datasets`)."""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .base import SPLITS, Example, Task, TaskOptions, take_nested

__all__ = ["SPLITS", "Example", "Task", "TaskOptions", "TASKS", "load_task", "take_nested"]

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
    module_name, func_name = TASKS[name].split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    return loader(options or TaskOptions()).validate()
