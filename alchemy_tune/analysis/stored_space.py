"""A run's search space as the analysis sees it: per parameter, whether it was a continuous range and when
it applies. The search stores this in the run record (``space_params``); the analysis reads it from there,
so it never imports the search layer. (``alchemy-tune analyze`` reads the space file of an older run that
does not store it, through the search layer, and hands the same questions to the same code.)
"""

from __future__ import annotations

from dataclasses import dataclass

from alchemy_tune.results.run_record import RunRecord
from alchemy_tune.trial.config import TrialConfig


def stored_space(record: RunRecord, run_dir: str):
    """The run's space as its record stores it (``space_params``, written by the search), or None for a run
    that does not (``alchemy-tune analyze`` then reads the space file through the search layer)."""
    try:
        return StoredSpace.of(record.extra.get("space_params"))
    except (AttributeError, TypeError, ValueError):
        return None  # a malformed record reads as a run without its space


@dataclass(frozen=True)
class StoredParam:
    """A parameter of a stored space: what the analysis asks of a search-space parameter."""

    name: str
    continuous: bool
    when: dict

    def values(self):
        """None for a continuous range (as a space's parameter answers); the values are not stored."""
        return None if self.continuous else ()

    def is_active(self, values) -> bool:
        defaults = TrialConfig().to_dict()
        return all(any(_same(values[ref] if ref in values else defaults.get(ref), a) for a in allowed)
                   for ref, allowed in self.when.items())


@dataclass(frozen=True)
class StoredSpace:
    params: dict

    @classmethod
    def of(cls, data) -> "StoredSpace | None":
        if not isinstance(data, dict) or not data:
            return None
        return cls({name: StoredParam(name, bool(spec["continuous"]), dict(spec.get("when") or {}))
                    for name, spec in data.items()})


def _same(a, b) -> bool:
    """Equality that keeps true apart from 1, as a space compares values."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b

