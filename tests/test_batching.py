import numpy as np
import pytest
import torch

from alchemy_tune.trial.batching import Encoded, collate, epoch_batches


def fake(lengths):
    ids = [[5] * n for n in lengths]
    return Encoded(ids, None, np.arange(len(lengths)), np.zeros(len(lengths), dtype=np.int64))


def test_epoch_batches_cover_every_example_once_and_are_reproducible():
    data = fake(np.random.default_rng(0).integers(3, 60, size=1000))
    a = epoch_batches(data, 16, seed=1, epoch=0, group_by_length=True)
    assert sorted(i for b in a for i in b) == list(range(1000))
    assert a == epoch_batches(data, 16, seed=1, epoch=0, group_by_length=True)
    assert a != epoch_batches(data, 16, seed=1, epoch=1, group_by_length=True)


def test_length_grouping_reduces_padding():
    data = fake(np.random.default_rng(0).integers(3, 60, size=2000))
    lengths = data.lengths

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    grouped = padded(epoch_batches(data, 32, seed=0, epoch=0, group_by_length=True))
    random_ = padded(epoch_batches(data, 32, seed=0, epoch=0, group_by_length=False))
    assert grouped < 0.7 * random_
    assert grouped >= lengths.sum()


def test_collate_pads_dynamically_or_to_fixed_length():
    data = fake([3, 5])
    batch = collate(data, [0, 1], pad_id=1)
    assert batch["input_ids"].shape == (2, 5)
    assert batch["attention_mask"].sum().item() == 8
    assert batch["input_ids"][0, 3:].tolist() == [1, 1]
    fixed = collate(data, [0, 1], pad_id=1, pad_to=80)
    assert fixed["input_ids"].shape == (2, 80)
    assert torch.equal(fixed["labels"], torch.tensor([0, 1]))


def test_prefetch_keeps_order_propagates_errors_and_stops_when_closed():
    import contextlib
    import threading

    from alchemy_tune.trial.batching import prefetch

    made = []

    def make(k):
        made.append((k, threading.current_thread().name))
        return k * k

    assert list(prefetch(make, range(7))) == [k * k for k in range(7)]
    assert all(name.startswith("alchemy-batches") for _, name in made)  # built off the main thread

    def bad(k):
        if k == 3:
            raise ValueError("batch 3")
        return k

    got = []
    with pytest.raises(ValueError, match="batch 3"):
        for x in prefetch(bad, range(10)):
            got.append(x)
    assert got == [0, 1, 2]

    made.clear()
    with contextlib.closing(prefetch(make, range(1000), depth=2)) as it:
        next(it)
    assert len(made) <= 4  # closing stops the helper: nothing built far ahead
    assert not any(t.name.startswith("alchemy-batches") for t in threading.enumerate())
