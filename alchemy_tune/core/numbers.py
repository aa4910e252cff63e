"""What counts as a number in reports, settings and results: one rule for every module."""

from __future__ import annotations

import math
from typing import Any


def is_finite_number(value: Any) -> bool:
    """True for an int or float that is neither NaN nor ±inf; False for bools (``True == 1`` in Python, but a
    flag is not a score), None, text and anything else."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


DECIMALS = 12


def exact(values):
    """``values`` (a number or an array) rounded to 12 decimals, with −0 as 0. Scores are counts over a test
    set or correlations, so differences of them are then exact: a language with no change is 0, not ±1e-17,
    and equal changes are equal, whatever the round-off of the means they came from."""
    import numpy as np

    return np.round(np.asarray(values, dtype=float), DECIMALS) + 0.0
