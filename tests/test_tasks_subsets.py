"""Dev/test subsets: stratified, nested, parallel by key, blind to the order of the file."""

from __future__ import annotations

import random
from collections import Counter

from alchemy_tune.tasks.subsets import evaluation_order, score_band, take_evaluation

# (id, label): a file sorted by label with one dominant and one rare label
ROWS = [(f"r{i}", "a") for i in range(60)] + [(f"r{i}", "b") for i in range(60, 90)] + [("r90", "c")]


def take(rows, n, salt="test"):
    return take_evaluation(rows, n, key=lambda r: r[0], stratum=lambda r: r[1], salt=salt)


def test_every_prefix_covers_the_labels_then_follows_their_shares():
    order = take(ROWS, None)
    assert sorted(order) == sorted(ROWS)
    assert {label for _, label in order[:3]} == {"a", "b", "c"}  # the rare label is in any subset of 3
    for n in (10, 31, 50):
        counts = Counter(label for _, label in order[:n])
        rest = n - 3
        assert abs(counts["a"] - 1 - rest * 60 / 91) <= 1.5 and abs(counts["b"] - 1 - rest * 30 / 91) <= 1.5


def test_nested_order_blind_and_parallel_by_key():
    shuffled = ROWS[:]
    random.Random(1).shuffle(shuffled)
    assert take(shuffled, 20) == take(ROWS, 20)
    assert take(ROWS, 7) == take(ROWS, 20)[:7]
    # another language with the same ids (a parallel dataset) and its own texts gets the same ids
    other = [(key, label, f"text {key} in another language") for key, label in reversed(ROWS)]
    assert [r[0] for r in take(other, 12)] == [r[0] for r in take(ROWS, 12)]
    # the order is seeded per split: dev and test of the same rows differ
    assert take(ROWS, 12, salt="dev") != take(ROWS, 12, salt="test")
    assert evaluation_order([], key=str, stratum=str) == []


def test_score_bands():
    assert [score_band(s) for s in (0.0, 0.24, 0.25, 0.5, 0.99, 1.0)] == [0, 0, 1, 2, 3, 3]
