"""URIEL+ vectors through the ``urielplus`` package's own API: the reference the equivalence test and
benchmark compare :mod:`alchemy_tune.languages.urielplus` with."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def query_vectors(u, s: str, glottocodes: Sequence[str]) -> np.ndarray:
    """Vectors of feature set ``s`` from an integrated ``URIELPlus`` object ``u``, -1 = missing."""
    if s == "script":  # get_vector('script') is empty in urielplus 1.3.2: read the loaded script matrix
        loaded = u.get_script_loaded_features()
        row = {g: i for i, g in enumerate(loaded["langs"].tolist())}
        return np.stack([loaded["data"][row[g], :, 0] for g in glottocodes]).astype(np.float32)
    category = {"genetic": "genetic", "geographic": "geographic"}.get(s, s)
    vectors = u.get_vector(category, list(glottocodes))
    return np.asarray([vectors[g] for g in glottocodes], np.float32)
