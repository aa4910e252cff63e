"""Is a study's test set large enough? Item noise of each paired Δ beside the effect the design detects.

Run: ``python benchmarks/item_noise.py RUN_DIR [RUN_DIR ...]``. For every configuration with a matched plain
fine-tuning baseline, and each of its test languages and seeds, the two trials' answers on the same test
examples give per-example differences d ∈ {−1, 0, +1} (right minus right); the item noise of that cell's Δ
is ``var(d) / n_examples``, and of the configuration's Δ (the mean over languages × seeds)
``sqrt(Σ var / n) / cells``. Printed per configuration: that standard error, 2.8 × it (the smallest effect
item noise alone would leave detectable at 80% power, two-sided 5%) and the design's MDE from the languages ×
seeds model, which holds item noise and every other source of variation. Item noise is below the detectable
effect where the first figure is well under the last.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from alchemy_tune.analysis import analyze as A
from alchemy_tune.analysis import paired as P


def item_se(u: P.Units, key: str) -> tuple[float, int]:
    """(standard error of the configuration's test-language Δ from item noise alone, cells used)."""
    d = P.delta_matrix(u.of_config(key), u.baseline_of(key), "unseen")
    variances = []
    for lang, row in d.iterrows():
        seeds = [s for s, v in row.items() if not math.isnan(v)]
        mine = u.answers(key, lang, seeds)
        base = u.answers(u.base_of[key], lang, seeds, baseline=True)
        if mine is None or base is None:
            continue
        labels = mine[1]
        diff = (mine[0] == labels).astype(float) - (base[0] == labels).astype(float)  # [seed, item]
        variances += [float(np.var(row_d, ddof=1)) / len(row_d) for row_d in diff]
    if not variances:
        return math.nan, 0
    return math.sqrt(sum(variances)) / len(variances), len(variances)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args()
    u = A.units(A.load_runs(args.runs))
    table = P.baseline_comparisons(u, roles=("unseen",))
    print(f"{'configuration':60s} {'cells':>5s} {'item SE':>8s} {'2.8 x SE':>8s} {'MDE':>7s}")
    for _, row in table[table["baseline"] == "matched"].iterrows():
        key = A.config_key(u, row)
        se, cells = item_se(u, key)
        print(f"{row['configuration'][:60]:60s} {cells:5d} {se:8.4f} {2.8 * se:8.4f} {row['mde_unseen']:7.4f}")


if __name__ == "__main__":
    main()
