"""Gate orders of every framework, and every permutation between them.

A recurrent weight tensor stacks one block of `hidden` rows per gate.  The canonical model
keeps LSTM blocks as `ifgo` and GRU blocks as `rzn`; each reader and writer converts with the
functions here, whose names carry the orders they map between, so a permutation can be
checked by reading it.

| cell | Keras | ONNX | PyTorch | MATLAB | canonical |
|------|-------|------|---------|--------|-----------|
| LSTM | ifco  | iofc | ifgo    | ifgo   | ifgo      |
| GRU  | zrh   | zrh  | rzn     | rzh    | rzn       |
| RNN  | h     | h    | h       | -      | h         |

Letters name the same gate across frameworks: LSTM `c` (Keras, ONNX) is `g` (the cell
candidate); GRU `h` (Keras, ONNX; MATLAB's h-tilde) is `n` (PyTorch's new gate).
"""
from __future__ import annotations

import numpy as np

CANONICAL = {"lstm": "ifgo", "gru": "rzn", "rnn": "h"}
GATE_COUNT = {"lstm": 4, "gru": 3, "rnn": 1}

# Per cell: letters that name the same gate in different frameworks.
_ALIASES = {"lstm": {"c": "g"}, "gru": {"h": "n"}, "rnn": {}}

ORDERS = {
    "keras": {"lstm": "ifco", "gru": "zrh", "rnn": "h"},
    "onnx": {"lstm": "iofc", "gru": "zrh", "rnn": "h"},
    "torch": {"lstm": "ifgo", "gru": "rzn", "rnn": "h"},
    "matlab": {"lstm": "ifgo", "gru": "rzh", "rnn": "h"},
}

GATE_NAMES = {
    "lstm": {"i": "input gate", "f": "forget gate", "g": "cell candidate", "o": "output gate"},
    "gru": {"r": "reset gate", "z": "update gate", "n": "candidate (new) state"},
    "rnn": {"h": "hidden state"},
}


def _normalise(cell: str, order: str) -> str:
    aliases = _ALIASES[cell]
    norm = "".join(aliases.get(ch, ch) for ch in order)
    if sorted(norm) != sorted(CANONICAL[cell]):
        raise ValueError(f"'{order}' is not a gate order of a {cell.upper()} cell")
    return norm


def permutation(cell: str, src: str, dst: str) -> list[int]:
    """Block indices `p` such that blocks of order `dst` are `src_blocks[p]`."""
    s, d = _normalise(cell, src), _normalise(cell, dst)
    return [s.index(ch) for ch in d]


def permute(array: np.ndarray, cell: str, src: str, dst: str, axis: int = 0) -> np.ndarray:
    """Reorder the gate blocks of `array` along `axis` from order `src` to order `dst`."""
    perm = permutation(cell, src, dst)
    if perm == list(range(len(perm))):
        return array
    n = array.shape[axis]
    if n % len(perm):
        raise ValueError(f"axis of size {n} does not split into {len(perm)} gate blocks")
    blocks = np.split(array, len(perm), axis=axis)
    return np.concatenate([blocks[p] for p in perm], axis=axis)


def gate_slices(cell: str, order: str, hidden: int) -> list[tuple[str, int, int]]:
    """[(gate letter as the framework names it, start, stop)] for a tensor in `order`."""
    return [(ch, k * hidden, (k + 1) * hidden) for k, ch in enumerate(order)]


# Named conversions: the letters say what they do.
def ifco_to_ifgo(a, axis=0):
    return permute(a, "lstm", "ifco", "ifgo", axis)


def ifgo_to_ifco(a, axis=0):
    return permute(a, "lstm", "ifgo", "ifco", axis)


def iofc_to_ifgo(a, axis=0):
    return permute(a, "lstm", "iofc", "ifgo", axis)


def ifgo_to_iofc(a, axis=0):
    return permute(a, "lstm", "ifgo", "iofc", axis)


def zrh_to_rzn(a, axis=0):
    return permute(a, "gru", "zrh", "rzn", axis)


def rzn_to_zrh(a, axis=0):
    return permute(a, "gru", "rzn", "zrh", axis)


def to_canonical(a, cell: str, framework: str, axis: int = 0):
    """Blocks in `framework`'s order -> canonical order."""
    return permute(a, cell, ORDERS[framework][cell], CANONICAL[cell], axis)


def from_canonical(a, cell: str, framework: str, axis: int = 0):
    """Blocks in canonical order -> `framework`'s order."""
    return permute(a, cell, CANONICAL[cell], ORDERS[framework][cell], axis)


def permute_into(out: np.ndarray, array, cell: str, src: str, dst: str, axis: int = 0) -> np.ndarray:
    """`permute(array, ...)` written into the preallocated `out` (its dtype, its memory): one copy,
    block by block, with any transposition or cast done by the same assignment."""
    perm = permutation(cell, src, dst)
    n = out.shape[axis]
    if n % len(perm):
        raise ValueError(f"axis of size {n} does not split into {len(perm)} gate blocks")
    size = n // len(perm)
    lead = (slice(None),) * (axis % out.ndim)
    for k, p in enumerate(perm):
        copy_into(out[lead + (slice(k * size, (k + 1) * size),)], array[lead + (slice(p * size, (p + 1) * size),)])
    return out


def permute_in_place(array: np.ndarray, cell: str, src: str, dst: str, axis: int = 0) -> np.ndarray:
    """Reorder the gate blocks of `array` along `axis` inside its own memory, following each cycle of
    the permutation with one block held aside; returns `array`."""
    perm = permutation(cell, src, dst)
    axis %= array.ndim
    if axis:       # one leading index at a time: blocks are then disjoint ranges, which numpy copies
        for idx in np.ndindex(array.shape[:axis]):     # without a temporary
            permute_in_place(array[idx], cell, src, dst)
        return array
    n = array.shape[0]
    if n % len(perm):
        raise ValueError(f"axis of size {n} does not split into {len(perm)} gate blocks")
    size = n // len(perm)

    def block(k):
        return array[k * size:(k + 1) * size]
    done = set()
    for start in range(len(perm)):
        if start in done or perm[start] == start:
            continue
        held = block(start).copy()           # the cycle: dst block k takes src block perm[k]
        k = start
        while perm[k] != start:
            block(k)[...] = block(perm[k])
            done.add(k)
            k = perm[k]
        block(k)[...] = held
        done.add(k)
    return array


_TILE = 128     # rows and columns of a tile that fits in L2 cache on both sides of a transposition


def copy_into(out: np.ndarray, array) -> np.ndarray:
    """`out[...] = array`; a transposed 2-D (or stacked 2-D) source is copied tile by tile, which is
    several times faster than numpy's element-strided copy once a matrix outgrows the cache."""
    array = np.asanyarray(array)
    if out.ndim < 2 or array.shape != out.shape or array.flags.c_contiguous or out.size < _TILE * _TILE:
        out[...] = array
        return out
    rows, cols = out.shape[-2:]
    for i in range(0, rows, _TILE):
        for j in range(0, cols, _TILE):
            out[..., i:i + _TILE, j:j + _TILE] = array[..., i:i + _TILE, j:j + _TILE]
    return out


def transposed(a: np.ndarray) -> np.ndarray:
    """`a.T` as a new C-contiguous array (of a 2-D array), copied tile by tile."""
    a = np.asarray(a)
    if a.ndim != 2:
        return np.ascontiguousarray(a.T)
    return copy_into(np.empty(a.shape[::-1], a.dtype), a.T)


def peepholes_to_canonical(P) -> np.ndarray:
    """ONNX's LSTM peepholes of one direction, [3*hidden] in order i, o, f, as the canonical [3, hidden], rows i, f, o."""
    iof = np.asarray(P, dtype=np.float32).reshape(3, -1)
    return np.ascontiguousarray(iof[[0, 2, 1]])


def peepholes_from_canonical(P) -> np.ndarray:
    """The canonical [3, hidden] peepholes (rows i, f, o) as ONNX's [3*hidden] (i, o, f)."""
    return np.ascontiguousarray(np.asarray(P)[[0, 2, 1]].reshape(-1))
