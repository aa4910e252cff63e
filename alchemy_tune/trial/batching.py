"""Tokenised examples, length-grouped batches and dynamic padding.

The authors padded every input to 80 tokens; most MASSIVE utterances are 5–20 tokens, so most of that
compute was spent on padding. Here a batch is padded only to its longest member, and (optionally) batches
are formed from examples of similar length: shuffle, cut into chunks of ``GROUP_CHUNK`` batches, sort each
chunk by length, split into batches, shuffle the batch order.
"""

from __future__ import annotations

import random
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import torch

from alchemy_tune.tasks.base import Example, stable_seed

GROUP_CHUNK = 50  # batches per sorting chunk: large enough to group lengths, small enough to stay random
PREFETCH_DEPTH = 2  # batches built ahead of the one in use
T = TypeVar("T")


@dataclass
class Encoded:
    """Token ids of one split (all its languages concatenated), with labels and a language index each."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: np.ndarray
    lang_index: np.ndarray
    """Index into the trial's language list (seen + unseen), used to look up URIEL targets."""

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def encode(tokenizer, examples: Sequence[Example], lang_index: int | Sequence[int], max_length: int,
           kind: str) -> Encoded:
    """Tokenise without padding (padding happens per batch in :func:`collate`)."""
    texts = [e.text for e in examples]
    pairs = [e.text_pair or "" for e in examples] if kind == "pair_regression" else None
    out = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
    labels = np.asarray([e.label for e in examples], dtype=np.int64 if kind == "classification" else np.float32)
    index = np.broadcast_to(np.asarray(lang_index, dtype=np.int64), (len(examples),)).copy()
    return Encoded(out["input_ids"], out.get("token_type_ids"), labels, index)


def remap(data: Encoded, mapping: np.ndarray) -> Encoded:
    """The same examples with token ids translated through ``mapping`` (a shrunk vocabulary)."""
    ids = [mapping[np.asarray(seq, dtype=np.int64)].tolist() for seq in data.input_ids]
    return Encoded(ids, data.token_type_ids, data.labels, data.lang_index)


def concat(parts: Sequence[Encoded]) -> Encoded:
    has_types = all(p.token_type_ids is not None for p in parts)
    return Encoded(
        [ids for p in parts for ids in p.input_ids],
        [t for p in parts for t in p.token_type_ids] if has_types else None,
        np.concatenate([p.labels for p in parts]) if parts else np.zeros(0),
        np.concatenate([p.lang_index for p in parts]) if parts else np.zeros(0, dtype=np.int64),
    )


def epoch_batches(data: Encoded, batch_size: int, *, seed: int, epoch: int, group_by_length: bool) -> list[list[int]]:
    """The batches of one training epoch, a pure function of (seed, epoch) so a resumed run replays them."""
    rng = random.Random(stable_seed("batches", seed, epoch))
    order = list(range(len(data)))
    rng.shuffle(order)
    if group_by_length:
        lengths = data.lengths
        chunk = batch_size * GROUP_CHUNK
        order = [i for s in range(0, len(order), chunk) for i in sorted(order[s : s + chunk], key=lambda k: lengths[k])]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if group_by_length:
        rng.shuffle(batches)
    return batches


def eval_batches(data: Encoded, batch_size: int) -> list[list[int]]:
    """Length-sorted batches for evaluation (order does not matter there, padding does)."""
    order = np.argsort(data.lengths, kind="stable").tolist()
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def collate(data: Encoded, indices: Sequence[int], pad_id: int, pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Pad to the longest example of the batch (or to ``pad_to``, to reproduce fixed-length padding)."""
    seqs = [data.input_ids[i] for i in indices]
    width = pad_to or max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(seq[:width])
        mask[row, : len(seq)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if data.token_type_ids is not None:
        types = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, i in enumerate(indices):
            t = data.token_type_ids[i][:width]
            types[row, : len(t)] = torch.as_tensor(t)
        batch["token_type_ids"] = types
    idx = np.asarray(indices)
    batch["labels"] = torch.as_tensor(data.labels[idx])
    batch["lang_index"] = torch.as_tensor(data.lang_index[idx])
    return batch


def prefetch(make: Callable[[int], T], keys: Iterable[int], depth: int = PREFETCH_DEPTH) -> Iterator[T]:
    """``make(k)`` for every key in order, each built on a helper thread while earlier ones are in use.

    Collating (Python loops over token lists) then overlaps the model's step instead of preceding it;
    ``make`` runs on one thread, in key order, so it may cache per-epoch state. Closing the generator
    (``contextlib.closing``) cancels what is queued; an exception in ``make`` reaches the consumer.
    """
    keys = iter(keys)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alchemy-batches") as pool:
        pending = deque(pool.submit(make, k) for _, k in zip(range(depth), keys))
        try:
            while pending:
                future = pending.popleft()
                nxt = next(keys, None)
                if nxt is not None:
                    pending.append(pool.submit(make, nxt))
                yield future.result()
        finally:
            for future in pending:
                future.cancel()
