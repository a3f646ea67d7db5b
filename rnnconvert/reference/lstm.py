"""The LSTM of the reference forward pass (equations: `network`'s docstring), on `cells`' machinery: the
plain loop (float64 always, and float32 below MIN_WORK: verification's passes, bit for bit as they were)
and `_lstm_fast`, the float32 fast path for large batches.

Like every cell it runs one direction over a time-major X [T, B, F] and returns (Y [T, B, S], State),
Y[t] the state after input t.
"""
from __future__ import annotations

import numpy as np

from . import cells as C, products
from .activations import _sigmoid
from ..model import gates


def _lstm(layer, w, X, reverse, acts, dtype):
    """The LSTM, with or without peepholes (ONNX P: i and f see c(t-1), o sees c(t), each before its
    activation and the clip; o then takes its activation after the new cell state)."""
    T, B, _ = X.shape
    H = layer.hidden
    acts = tuple(C._on_blocks(fn, elementwise, H) for fn, elementwise in acts)
    P = None if w.proj is None else C._cast(w.proj, dtype)
    S = H if P is None else P.shape[0]
    if C._fast(dtype, B, 4 * H * S):
        return _lstm_fast(layer, w, X, reverse, acts, dtype, P)
    f, g, h_act = acts
    W_ifog, R_ifog, b_ifog, peep = _lstm_weights(w, dtype)
    clip = layer.clip
    project = C._projections(X, W_ifog, b_ifog, fast=False)

    def loop(cols):
        XW = project(cols)
        b = XW.shape[2]
        h = C._initial(w.h0, S, cols, b, dtype)
        c = C._initial(w.c0, H, cols, b, dtype)
        Y = np.empty((T, S, b), dtype)
        G = np.empty((4 * H, b), dtype)
        cell = _cell(G, c, peep, clip, (f, g, h_act))
        for t in C._steps(T, reverse):
            np.matmul(R_ifog, h, out=G)
            G += XW[t]
            out = cell()
            h = Y[t]
            if P is None:
                np.copyto(h, out)
            else:
                np.matmul(P, out, out=h)
        return Y.transpose(0, 2, 1), h, c

    with C._blas_threads(B, 4 * H * S):
        Y, h, c = C._run_chunks(loop, C._batch_chunks(B, 4 * H * S))
    return Y, C.State(h.T.copy(), c.T.copy())


def _lstm_weights(w, dtype):
    """W, R and the summed biases with gate rows reordered to i, f, o, g (f then applies to one contiguous
    block), and the peepholes (i, f, o) as columns, or None."""
    W = C._cast(gates.permute(w.W, "lstm", "ifgo", "ifog"), dtype)
    R = C._cast(gates.permute(w.R, "lstm", "ifgo", "ifog"), dtype)
    bias = gates.permute(C._cast(w.Wb, dtype) + C._cast(w.Rb, dtype), "lstm", "ifgo", "ifog")
    peep = None if w.P is None else tuple(C._cast(w.P[k], dtype)[:, None] for k in range(3))
    return W, R, bias, peep


def _cell(G: np.ndarray, c: np.ndarray, peep, clip, acts, halved: bool = False):
    """The cell after the recurrent product, as a step function: G [4H, b] holds the gates' pre-activations
    (i, f, o, g; i, f and o halved when `halved`: see `_lstm_fast`), c [H, b] the cell state.  Each call makes
    c the new cell state and returns o * h(c) in a buffer of its own, valid until the next call."""
    f, g, h_act = acts
    H = c.shape[0]
    i, f_gate, o, g_gate = G[:H], G[H:2 * H], G[2 * H:3 * H], G[3 * H:]
    sigmoids = G[:2 * H] if peep else G[:3 * H]      # with peepholes o waits for the new cell state
    clipped = (sigmoids, g_gate) if peep or halved else (G,)
    bounds = (clip, clip) if clip is None or not halved else (clip / 2, clip)    # clip(x, c)/2 = clip(x/2, c/2)
    ig = np.empty_like(c)

    def step() -> np.ndarray:
        if peep:
            np.add(i, peep[0] * c, out=i)
            np.add(f_gate, peep[1] * c, out=f_gate)
        if clip is not None:
            for part, bound in zip(clipped, bounds):
                np.clip(part, -bound, bound, out=part)
        if halved:
            np.tanh(G, out=G)
            np.multiply(sigmoids, 0.5, out=sigmoids)
            np.add(sigmoids, 0.5, out=sigmoids)
        else:
            f(sigmoids, sigmoids)
            g(g_gate, g_gate)
        np.multiply(c, f_gate, out=c)
        np.multiply(i, g_gate, out=ig)
        np.add(c, ig, out=c)
        if peep:
            np.add(o, peep[2] * c, out=o)
            if clip is not None:
                np.clip(o, -clip, clip, out=o)
            f(o, o)
        h_act(c, ig)                      # ig now holds h(Ct)
        np.multiply(ig, o, out=ig)
        return ig
    return step


# The input joins the recurrent product (`_lstm_fast`) when it is at most this fraction of the state's
# width.  LSTM(512) b32 t200 float32, 2 threads, against the flat projection: 64 and 128 features 12% and
# 9% faster, 256 even, 512 and 1024 5% and 12% slower.
FUSED_INPUT_FRACTION = 0.5


def _sigmoid_through_tanh(f, g, peep) -> bool:
    """Whether `_lstm_fast` computes its sigmoid gates through the tanh of its g gate: sigmoid and tanh
    gates, no peepholes."""
    return peep is None and f is _sigmoid and g is C._np_tanh


def _lstm_fast(layer, w, X, reverse, acts, dtype, P):
    """The LSTM on the float32 fast path (`cells._fast`), with what it takes to come near onnxruntime's time.

    - The state is stored [batch, S]: each chunk keeps one buffer A [b, T+1, K], A[:, k] the right operand
      of step k's blocked product (`products.recurrent`, one for all chunks) and A[:, k+1, :S] the state it
      gives, so the outputs are already batch-major.
    - Fused input: for an input of at most FUSED_INPUT_FRACTION of the state's width, W and the bias join R
      as more columns ([R | W | bias], K = S+F+1) and A[:, k] carries x and a 1 beside the state: one
      product a step gives the gates' whole pre-activation, with no input projection and no strided add
      of it.  (Each gate is still one dot product, over h, x and 1 together.)  Else the flat projection.
    - Sigmoid through tanh: with sigmoid and tanh gates and no peepholes, the i, f and o rows of W, R and
      the bias are halved once (exact: a power of two), one np.tanh runs over all four gates a step, and
      0.5*tanh(x/2) + 0.5 = sigmoid(x) (in float32 within 6.0e-8 of the exact sigmoid over [-30, 30];
      1/(1+exp(-x)) in float32: 8.9e-8).
    - The weights are written once, in the blocked product's own layout when the gate blocks are whole
      blocks of rows (`products.transposed_blocks`).
    LSTM(512) over 128 features, b32 t200, 2 threads (`python -m bench forward`): 1.29x onnxruntime's
    time, 1.66x before these."""
    T, B, F = X.shape
    H = layer.hidden
    f, g, h_act = C._fast_activations(acts, True)
    S = H if P is None else P.shape[0]
    clip = layer.clip
    peep = None if w.P is None else tuple(C._cast(w.P[k], dtype)[:, None] for k in range(3))
    halved = _sigmoid_through_tanh(f, g, peep)
    chunks = C._batch_chunks(B, 4 * H * S)
    widest = max(c.stop - c.start for c in chunks)
    fused = F <= FUSED_INPUT_FRACTION * S and products.blocked(dtype, 4 * H, S + F + 1, widest)
    K = S + F + 1 if fused else S
    # [R | W | bias] (or R), gate rows in the order i, f, o, g, halved where `halved` says, written once:
    # into the blocked product's own layout when the gates are whole blocks
    whole = H % products.BLOCK == 0 and products.blocked(dtype, 4 * H, K, widest)
    M = products.transposed_blocks(4 * H, K, dtype) if whole else np.empty((4 * H, K), dtype)
    order = gates.permutation("lstm", "ifgo", "ifog")
    scales = [0.5 if halved and k < 3 else 1.0 for k in range(4)]
    bias = np.empty(4 * H, dtype)
    for k, (src, scale) in enumerate(zip(order, scales)):
        rows = M[k * H // products.BLOCK:(k + 1) * H // products.BLOCK] if whole else M[k * H:(k + 1) * H]
        source = slice(src * H, (src + 1) * H)
        np.add(w.Wb[source], w.Rb[source], out=bias[k * H:(k + 1) * H], dtype=dtype)
        parts = [(rows[..., :S], w.R[source])]
        if fused:
            parts += [(rows[..., S:S + F], w.W[source]), (rows[..., S + F], bias[k * H:(k + 1) * H])]
        for out, a in parts:
            np.multiply(a.reshape(out.shape), scale, out=out, casting="unsafe")
    product = products.recurrent(M, widest, state_by_batch=True)

    def loop(cols):
        b = cols.stop - cols.start
        A = np.empty((b, T + 1, K), dtype)
        A[:, 0, :S] = C._initial(w.h0, S, cols, b, dtype).T
        XW = None
        if fused:
            A[:, :T, S:K - 1] = (X[::-1, cols] if reverse else X[:, cols]).transpose(1, 0, 2)
            A[:, :, K - 1] = 1
        else:
            XW = _gate_projection(X, w.W, bias, cols, order, scales, dtype)
        c = C._initial(w.c0, H, cols, b, dtype)
        G = np.empty((4 * H, b), dtype)
        cell = _cell(G, c, peep, clip, (f, g, h_act), halved)
        for k, t in enumerate(C._steps(T, reverse)):
            product(A[:, k].T, G)
            if XW is not None:
                G += XW[t]
            out = cell()
            if P is None:
                np.copyto(A[:, k + 1, :S], out.T)    # a transposing copy: faster than a transposing multiply
            else:
                np.matmul(P, out, out=A[:, k + 1, :S].T)
        Y = A[:, 1:, :S].transpose(1, 0, 2)
        return (Y[::-1] if reverse else Y), A[:, T, :S].T, c

    with C._blas_threads(B, 4 * H * S):
        Y, h, c = C._run_chunks(loop, chunks)
    return Y, C.State(h.T.copy(), c.T.copy())


def _gate_projection(X: np.ndarray, W: np.ndarray, bias: np.ndarray, cols: slice, order, scales, dtype) -> np.ndarray:
    """The flat input projection of the columns `cols` (as `cells._input_projection`'s: [T, 4H, b], a strided
    view of [T*b, 4H]), gate block k from W's rows `order[k]`, plus bias block k, times `scales[k]`: one
    matmul per gate straight from W's own rows, so that W, a deep layer's largest array (2S inputs wide),
    is never copied.  (x*W + b)*0.5 is bit for bit x*(W*0.5) + b*0.5.  The large-model suite (b3 t1, b3 t7,
    b2 t32) on a 111M-parameter 5x BiLSTM(1024), float32, one thread: 0.78-0.80 s of CPU instead of
    0.96-1.00 with W copied in gate order."""
    T, _, F = X.shape
    H = W.shape[0] // 4
    x = X[:, cols].reshape(-1, F)
    XW = np.empty((x.shape[0], 4 * H), dtype)
    for k, (src, scale) in enumerate(zip(order, scales)):
        block = XW[:, k * H:(k + 1) * H]
        np.matmul(x, C._cast(W[src * H:(src + 1) * H], dtype).T, out=block)
        block += bias[k * H:(k + 1) * H]
        if scale != 1.0:
            block *= scale
    return XW.reshape(T, -1, 4 * H).transpose(0, 2, 1)
