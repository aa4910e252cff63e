"""The one 'finite number' rule used by reports, settings and results."""

from __future__ import annotations

import math

import numpy as np

from alchemy_tune.core.numbers import is_finite_number


def test_finite_ints_and_floats_are_numbers():
    assert all(is_finite_number(v) for v in (0, -3, 2.5, 1e308, np.float64(0.5), np.int64(4).item()))


def test_bools_nan_inf_and_non_numbers_are_not():
    assert not any(is_finite_number(v) for v in (True, False, math.nan, math.inf, -math.inf, None, "1", [1]))
