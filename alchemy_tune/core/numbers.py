"""What counts as a number in reports, settings and results: one rule for every module."""

from __future__ import annotations

import math
from typing import Any


def is_finite_number(value: Any) -> bool:
    """True for an int or float that is neither NaN nor ±inf; False for bools (``True == 1`` in Python, but a
    flag is not a score), None, text and anything else."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
