"""The recurrent cells of the reference forward pass (equations: `network`'s docstring): the GRU and the
simple RNN here, the LSTM in `lstm`, and the machinery they share (column chunks on threads, BLAS
threading, input projections, initial states).

Each cell runs one direction over a time-major X [T, B, F] and returns (Y [T, B, S], State), Y[t]
the state after input t.  The input projections of all steps are one matmul before the time loop;
inside it tensors are [units, batch], so that every gate block is a contiguous range of rows, and
every step works in buffers allocated before the loop.  Every cell keeps its state Ht in Y[t] as
[units, batch] (and returns a transposed view), except on the float32 fast path (`_fast`), where the
LSTM's (`lstm._lstm_fast`) and the GRU's are [batch, units]: there the blocked product runs faster on that
order (GRU(512) b16 t200, one thread: 77-79 ms CPU instead of 85-89), while OpenBLAS's plain dgemm/sgemm on the small
batches below MIN_WORK runs 3-4x faster on [units, batch] (LSTM(256) b2, float64: 42 us a step instead
of 146; LSTM(256) b2 t300: 60-67 ms before, the GRU's 15 ms).  The matmul R*Ht itself is
`products.recurrent` (in float32: blocks of rows that OpenBLAS's small-matrix kernel takes without
repacking R every step).

The batch columns of a recurrence are independent, so a large batch runs as a few column chunks,
one per BLAS thread, each on its own Python thread with single-threaded BLAS calls (numpy releases
the GIL in matmul and in the ufunc loops).  A chunk computes what the whole batch would up to the
matmul's summation order (with OpenBLAS: float64 identical, float32 within 2e-6 at hidden 512).
A recurrence whose per-step matmul is small (below MIN_WORK, as verification's batches of 2-3 are)
runs with single-threaded BLAS: handing a tiny matmul to BLAS threads costs more than it saves.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Callable, NamedTuple

import numpy as np

from . import blas, products
from .activations import _tanh

# A batch is split only when one step's recurrent matmul (gates*H x S times S x B) has at least this
# many multiply-adds, and never into chunks of fewer than MIN_CHUNK columns: below that, the
# threads cost more than they save.
MIN_WORK = 1 << 22
MIN_CHUNK = 8


class State(NamedTuple):
    """One direction's state after the whole sequence: h [batch, S], c [batch, H] (LSTM only)."""
    h: np.ndarray
    c: np.ndarray | None = None


Fn = Callable[[np.ndarray, np.ndarray], None]


def _gru(layer, w, X, reverse, acts, dtype):
    T, B, _ = X.shape
    H = layer.hidden
    f, g = (_on_blocks(fn, elementwise, H) for fn, elementwise in acts)
    W, R = _cast(w.W, dtype), _cast(w.R, dtype)
    Wb, Rb = _cast(w.Wb, dtype), _cast(w.Rb, dtype)
    clip = layer.clip
    fast = _fast(dtype, B, 3 * H * H)
    f, g = _fast_activations((f, g), fast)
    if layer.reset_after:
        # Rbn stays inside r * (...); the r and z recurrent biases join the input projection.
        Rb_n = Rb[2 * H:, None].copy()
        bias = Wb.copy()
        bias[:2 * H] += Rb[:2 * H]
        project = _projections(X, W, bias, fast)

        def loop(cols):
            XW = project(cols)
            b = XW.shape[2]
            h = _initial(w.h0, H, cols, b, dtype)
            Y = np.empty((T, b, H) if fast else (T, H, b), dtype)     # fast: Ht stored [batch, H], as the LSTM's
            tmp = np.empty((H, b), dtype)
            G = np.empty((3 * H, b), dtype)
            r_z, r, z, n = G[:2 * H], G[:H], G[H:2 * H], G[2 * H:]
            product = products.recurrent(R, b, state_by_batch=fast, fast=fast)
            for t in _steps(T, reverse):
                product(h, G)
                XWt = XW[t]
                r_z += XWt[:2 * H]
                if clip is not None:
                    np.clip(r_z, -clip, clip, out=r_z)
                f(r_z, r_z)
                n += Rb_n
                n *= r
                n += XWt[2 * H:]
                if clip is not None:
                    np.clip(n, -clip, clip, out=n)
                g(n, n)
                h_t = Y[t].T if fast else Y[t]
                _gru_update(h, n, z, tmp, h_t)
                h = h_t
            return (Y if fast else Y.transpose(0, 2, 1)), h
    else:
        bias = Wb + Rb
        R_rz, R_n = np.ascontiguousarray(R[:2 * H]), np.ascontiguousarray(R[2 * H:])
        project = _projections(X, W, bias, fast)

        def loop(cols):
            XW = project(cols)
            b = XW.shape[2]
            h = _initial(w.h0, H, cols, b, dtype)
            Y = np.empty((T, b, H) if fast else (T, H, b), dtype)
            tmp = np.empty((H, b), dtype)
            r_z, n = np.empty((2 * H, b), dtype), np.empty((H, b), dtype)
            r, z = r_z[:H], r_z[H:]
            product_rz = products.recurrent(R_rz, b, state_by_batch=fast, fast=fast)
            product_n = products.recurrent(R_n, b, state_by_batch=False, fast=fast)
            for t in _steps(T, reverse):
                product_rz(h, r_z)
                XWt = XW[t]
                r_z += XWt[:2 * H]
                if clip is not None:
                    np.clip(r_z, -clip, clip, out=r_z)
                f(r_z, r_z)
                np.multiply(r, h, out=tmp)
                product_n(tmp, n)
                n += XWt[2 * H:]
                if clip is not None:
                    np.clip(n, -clip, clip, out=n)
                g(n, n)
                h_t = Y[t].T if fast else Y[t]
                _gru_update(h, n, z, tmp, h_t)
                h = h_t
            return (Y if fast else Y.transpose(0, 2, 1)), h
    with _blas_threads(B, 3 * H * H):
        Y, h = _run_chunks(loop, _batch_chunks(B, 3 * H * H))
    return Y, State(h.T.copy())


def _gru_update(h, n, z, tmp, out):
    """out = (1 - z) * n + z * h, computed as n + z * (h - n)."""
    np.subtract(h, n, out=tmp)
    tmp *= z
    np.add(n, tmp, out=out)


def _rnn(layer, w, X, reverse, acts, dtype):
    T, B, _ = X.shape
    H = layer.hidden
    (f,) = (_on_blocks(fn, elementwise, H) for fn, elementwise in acts)
    W, R = _cast(w.W, dtype), _cast(w.R, dtype)
    bias = _cast(w.Wb, dtype) + _cast(w.Rb, dtype)
    clip = layer.clip
    fast = _fast(dtype, B, H * H)
    (f,) = _fast_activations((f,), fast)
    project = _projections(X, W, bias, fast)

    def loop(cols):
        XW = project(cols)
        h = _initial(w.h0, H, cols, XW.shape[2], dtype)
        Y = np.empty((T, H, XW.shape[2]), dtype)
        product = products.recurrent(R, XW.shape[2], state_by_batch=False, fast=fast)
        for t in _steps(T, reverse):
            y = Y[t]
            product(h, y)
            y += XW[t]
            if clip is not None:
                np.clip(y, -clip, clip, out=y)
            f(y, y)
            h = y
        return Y.transpose(0, 2, 1), h

    with _blas_threads(B, H * H):
        Y, h = _run_chunks(loop, _batch_chunks(B, H * H))
    return Y, State(h.T.copy())


def _steps(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def _batch_chunks(B: int, weights_per_column: int) -> list[slice]:
    """The column ranges a batch of B runs as: one per BLAS thread when the per-step matmul
    (`weights_per_column` multiply-adds per batch column) is large enough, else the whole batch."""
    n = min(blas.threads() or 1, B // MIN_CHUNK)
    if n < 2 or weights_per_column * B < MIN_WORK:
        return [slice(0, B)]
    bounds = [B * k // n for k in range(n + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def _blas_threads(B: int, weights_per_column: int):
    """The BLAS threading a recurrence runs under: single-threaded when its per-step matmul is below
    MIN_WORK (OpenBLAS threads even a 1024 x 256 x 2 matmul, and its threads' hand-offs cost more than the
    product: LSTM(256), batch 2, 300 steps, float64, load average 15 on 2 cores: one thread 0.08 s CPU,
    0.25 s wall; two threads 0.5-1.9 s CPU, 1.4-7 s wall); else as it is (`_run_chunks` may split it).
    The results are those of the threaded calls up to the matmul's summation order: identical on the
    wild models' batches of 1-3, an ulp apart on some shapes (GRU(700), RNN(1500))."""
    return blas.single_threaded() if weights_per_column * B < MIN_WORK else nullcontext()


def _run_chunks(loop, chunks: list[slice]) -> tuple[np.ndarray, ...]:
    """loop(columns) -> (Y [T, b, S], final states [S, b]...) for each chunk, joined over the batch.

    The joined Y is stored batch-major (a [T, B, S] view of [B, T, S]), the order the pass returns, so the
    network's last transpose copies nothing; each thread copies its own chunk into it, which also spreads
    the first touch of its pages (LSTM(512) b32 t200: 2.6 MB of page faults joined on one thread took
    about 3 ms)."""
    if len(chunks) == 1:
        return _quiet(loop, chunks[0])
    joined: list[np.ndarray] = []
    lock = threading.Lock()

    def run(cols):
        Y, *states = _quiet(loop, cols)
        with lock:
            if not joined:
                T, _, S = Y.shape
                joined.append(np.empty((chunks[-1].stop, T, S), Y.dtype).transpose(1, 0, 2))
        joined[0][:, cols] = Y
        return states

    with blas.single_threaded(), ThreadPoolExecutor(len(chunks)) as pool:
        states = [r.result() for r in [pool.submit(run, cols) for cols in chunks]]
    return (joined[0], *(np.concatenate(parts, axis=1) for parts in zip(*states)))


def _quiet(loop, cols):
    """The activations run under np.errstate(over="ignore") (see `activations`), set in the thread
    that runs the time loop (numpy's error state is per thread)."""
    with np.errstate(over="ignore"):
        return loop(cols)


def _fast(dtype, B: int, weights_per_column: int) -> bool:
    """Whether a recurrence takes the float32 fast paths (the flat input projection,
    `products.recurrent`'s blocks): float32 and a per-step matmul of at least MIN_WORK.  Below that
    (verification's batches of 2-3) the float32 pass stays what it was, bit for bit: verification measures
    its noise with it, and the fast paths' different summation order makes the float32 error up to 1.5x
    larger there (LSTM(256), batch 2, 60 steps: mean error against float64 4.7e-8 instead of 3.9e-8)."""
    return np.dtype(dtype) == np.float32 and weights_per_column * B >= MIN_WORK


def _fast_activations(fns, fast: bool):
    """On the fast path tanh is np.tanh (numpy's SIMD float32 tanh, within an ulp, one pass instead of
    `activations._tanh`'s five: LSTM(512) b16 t200, one thread, 1.7 ms instead of 5.5 for the two tanh of
    the loop); the other activations stay."""
    return tuple(_np_tanh if fast and fn is _tanh else fn for fn in fns)


def _np_tanh(x, out):
    np.tanh(x, out=out)


def _projections(X: np.ndarray, W: np.ndarray, bias: np.ndarray, fast: bool):
    """columns -> their input projections XW [T, gates*H, b] (`_input_projection`, flat on the fast path),
    computed by each column chunk in its own thread with single-threaded BLAS.  (Projecting the whole
    batch first on BLAS's 2 threads cost more: LSTM h512 b32 t200 in 2 chunks at load 4, 307 ms of CPU
    and 309 ms wall against 261 and 245: OpenBLAS's threads spin after the call.)"""
    if fast:
        return lambda cols: _input_projection(X, W, bias, cols, flat=True)
    return lambda cols: _input_projection(X, W, bias, cols)


# Input weights of at least this many bytes (past the caches) are projected in one flat matmul.
LARGE_PROJECTION = 4 << 20


def _input_projection(X: np.ndarray, W: np.ndarray, bias: np.ndarray, cols: slice, flat: bool = False) -> np.ndarray:
    """W*(Xt^T) + bias for every step t and the batch columns `cols`: [T, B, F] -> [T, gates*H, b], so
    that each step's XW[t] is one [gates*H, b] block in the loop's layout.

    `flat` (the float32 fast path): one flat matmul [T*b, F] x [F, gates*H], and XW[t] a strided view of
    it (the flat matmul runs at full speed, the batched one at a few columns per call: LSTM(512) over 128
    features, b16 t200, one thread, projection and the per-step adds 18.6 ms instead of 27.9).  Else the
    batched matmul (one per step, XW contiguous), or for weights past LARGE_PROJECTION the flat one made
    contiguous."""
    T, _, F = X.shape
    if flat or W.nbytes >= LARGE_PROJECTION:
        XW = (X[:, cols].reshape(-1, F) @ W.T).reshape(T, -1, W.shape[0]).transpose(0, 2, 1)   # [T*b, F] @ [F, rows]
        if not flat:
            XW = np.ascontiguousarray(XW)
    else:
        XW = np.matmul(W, np.ascontiguousarray(X[:, cols].transpose(0, 2, 1)))
    XW += bias[:, None]
    return XW


def _initial(v: np.ndarray | None, size: int, cols: slice, batch: int, dtype) -> np.ndarray:
    """A fresh [size, batch] state buffer for the batch columns `cols` from h0/c0 ([size] or
    [B, size]) or zeros."""
    out = np.zeros((size, batch), dtype)
    if v is not None:
        out[...] = v[cols].T if v.ndim == 2 else v[:, None]
    return out


def _cast(a: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


def _on_blocks(fn: Fn, elementwise: bool, hidden: int) -> Fn:
    """fn for a cell's [gates*hidden, batch] tensors: an axis-wise activation (softmax) runs over
    the units of each gate block on its own."""
    if elementwise:
        return fn

    def apply(x, out):
        for k in range(0, x.shape[0], hidden):
            fn(x[k:k + hidden].T, out[k:k + hidden].T)
    return apply
