"""The recurrent product R*Ht-1 of the cells' time loops, in the form OpenBLAS runs fastest.

OpenBLAS (on its AVX-512 kernels) computes a product whose M*N*K is at most 1e6 with a small-matrix
kernel that reads both operands in place; a larger one packs both operands into buffers first, on
every call.  A recurrent matrix R [rows, S] (4H x S for an LSTM) times a state of b columns is far
above that and gets repacked every step.  Cut into blocks of BLOCK rows, each block times the state
is a small product, and one batched np.matmul over the blocks takes, on one thread in float32
(OpenBLAS 0.3.31, SkylakeX kernel): LSTM(512) b16 282 us instead of 457, b32 536 instead of 695,
b4 136 instead of 339; LSTM(256) b8 28 instead of 75.  (Below the cells' MIN_WORK they keep the
single product: see `cells._fast`.)  Each output element is still one dot
product of a row of R with a column of Ht-1 (only its summation order is the small kernel's).

The state's memory order picks the block layout: a state stored [batch, S] (the LSTM's), or any state
of at most SMALL_BATCH columns, is fastest against blocks stored transposed ([S, BLOCK] each, a copy of
R made once); a wider state stored [S, batch] (the GRU's, the RNN's) against plain row blocks (views of
R): GRU(256) b2 12.2 us a step against 17.4 (and 12.2 unblocked), b16 at hidden 512 259 against 310.  Rows past the last full block take one
more product.  float64 keeps the single product (its results stay what they were); so does any BLAS
this is not measured on.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from . import blas

BLOCK = 32
SMALL_BATCH = 8
SMALL_KERNEL_MNK = 1_000_000
SMALL_KERNEL_CORES = ("skylakex", "cooperlake", "sapphirerapids")
BLOCKED_DTYPES = (np.dtype(np.float32),)

Product = Callable[[np.ndarray, np.ndarray], None]


def recurrent(R: np.ndarray, batch: int, state_by_batch: bool, fast: bool = True) -> Product:
    """product(h, out): out[...] = R @ h for h [S, b] and out [rows, b] (C order), for any b up to `batch`
    (one product may serve the threads running column chunks of a batch).

    `state_by_batch`: h is stored [b, S] (a transposed view), else [S, b].  `fast`: the blocks
    are allowed (the cells allow them from MIN_WORK up; below, the float32 pass stays as it was).
    R may also be `transposed_blocks`' array, filled: its product is the blocked one."""
    if R.ndim == 3:
        return _product(R, R[:0, 0])
    rows, S = R.shape
    if not (fast and blocked(R.dtype, rows, S, batch)):
        return functools.partial(np.matmul, R)         # (h, out): no Python frame a step (a lambda cost 2 us)
    full = rows - rows % BLOCK
    blocks = R[:full].reshape(-1, BLOCK, S)
    if state_by_batch or batch <= SMALL_BATCH:
        blocks = np.ascontiguousarray(blocks.transpose(0, 2, 1)).transpose(0, 2, 1)
    return _product(blocks, R[full:])


def transposed_blocks(rows: int, S: int, dtype) -> np.ndarray:
    """An empty matrix of `rows` (a multiple of BLOCK) by S, as [rows/BLOCK, BLOCK, S] stored the way
    `recurrent` lays out R for a state stored [batch, S]: filled in place, it needs no copy."""
    return np.empty((rows // BLOCK, S, BLOCK), dtype).transpose(0, 2, 1)


def _product(blocks: np.ndarray, tail: np.ndarray) -> Product:
    full = blocks.shape[0] * BLOCK

    def product(h, out):
        np.matmul(blocks, h, out=out[:full].reshape(-1, BLOCK, out.shape[1]))    # splits axis 0: always a view
        if len(tail):
            np.matmul(tail, h, out=out[full:])
    return product


def blocked(dtype, rows: int, S: int, batch: int) -> bool:
    """Whether the blocked product pays: float32, an OpenBLAS small-matrix kernel (measured on these
    cores), and a block times the state within its size limit."""
    return (np.dtype(dtype) in BLOCKED_DTYPES and rows >= BLOCK and BLOCK * S * batch <= SMALL_KERNEL_MNK
            and blas.core() in SMALL_KERNEL_CORES)
