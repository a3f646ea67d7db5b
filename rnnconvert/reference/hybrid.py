"""LiteRT's hybrid (dynamic-range) arithmetic, for layers whose `hybrid` setting says their int8 weights
run that way (`rnnconvert/model/hybrid.py`): FULLY_CONNECTED and the sequence LSTM / RNN ops with int8
weights and float32 activations, computed in float32 as TFLite's kernels compute them (fully_connected.cc
EvalHybridDense, lstm_eval.cc LstmStepHybrid, kernel_utils.cc RnnBatchStep, portable_tensor_utils.cc).

Every product M*v of an int8 matrix M [rows, cols] (scales s[row]) with a float32 vector v (one per batch
row, per time step) is

    quantize v:  symmetric   r = max|v|, sf = r/127, q = round(v * (127/r)) in [-127, 127], zp = 0
                 asymmetric  lo = min(0, min v), hi = max(0, max v) (in double), sf = (hi-lo)/255,
                             zp = the nudged zero point in [-128, 127], q = round(zp + v * (1/sf)) in [-128, 127]
                 (an all-zero v: q = 0, sf = 1, zp = 0; round is half away from zero)
    accumulate:  out[row] += float32(sum_c M[row, c] * q[c] - zp * sum_c M[row, c]) * float32(sf * s[row])

added to what `out` holds: the bias, then the input's product, then the recurrent one (LSTM and RNN), then
the activation.  LSTM (canonical gates i, f, g, o; each gate block its own product over x_t and h_t-1):
    G = b + W*x_t (+) R*h_t-1;  i, f, o = sigmoid(G);  g = act_g(G);  c_t = f*c_t-1 + g*i;
    h_t = o * act_h(c_t), or with a projection P: h_t = P*(o * act_h(c_t)) as one more hybrid product.
RNN: h_t = act(b + W*x_t (+) R*h_t-1).  GRU (TensorFlow's loop body, hybrid FULLY_CONNECTED): see `_gru`.  Dense: y = act(bias + kernel^T * x), per [batch, time] row.
Conv1D (per-channel CONV_2D): the whole input of each batch row quantized at once, asymmetric whatever the
op says; y[t, f] = act(float32(sum_k,c K[k, c, f] * (q[t', c] - zp)) * float32(s[f] * sf) + bias[f]), padded
steps contributing nothing.
The sum over c is exact (integers); the float32 steps round as the kernel's do; LiteRT's sigmoid and tanh
(Eigen's) may differ from numpy's by an ulp, which now and then moves a value across a rounding boundary of
the quantizer: one int8 step more or less, up to ~1e-3 on the outputs, fading over the following steps.
The result is returned in the pass's dtype, always computed in float32 as LiteRT does; the float32 pass
(which verification runs to measure how sensitive an input is to rounding, `checks.float32_noise`) rounds
differently on purpose: activations in float64 and the quantizer's scaling in float64, so that an input on
which an ulp moves an int8 value shows it as noise, and the checks allow for it.
"""
from __future__ import annotations

import numpy as np

from ..model import hybrid as H
from .activations import _compile
from .cells import State

F32 = np.float32


def _round(v: np.ndarray) -> np.ndarray:
    """TfLiteRound: half away from zero (exact in float64 for float32 values)."""
    v = v.astype(np.float64)
    return np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5))


def quantize(v: np.ndarray, asymmetric: bool, wide: bool = False):
    """Rows of float32 v [N, C] -> (q float64 integers [N, C], sf float32 [N], zp float64 [N]); `wide`: the
    scaling before rounding in float64 (the other rounding, see the module docstring)."""
    v = np.asarray(v, F32)
    n = v.shape[0]
    q = np.zeros(v.shape, np.float64)
    sf = np.ones(n, F32)
    zp = np.zeros(n, np.float64)
    if v.size == 0:
        return q, sf, zp
    lo, hi = v.min(axis=1), v.max(axis=1)
    if not asymmetric:
        r = np.maximum(np.abs(lo), np.abs(hi))
        live = r != 0
        sf[live] = r[live] / F32(127)
        inv = F32(127) / np.where(live, r, F32(1))
        q[live] = np.clip(_round((_wide(v, wide) * inv[:, None])[live]), -127, 127)
        return q, sf, zp
    rmin, rmax = np.minimum(0.0, lo.astype(np.float64)), np.maximum(0.0, hi.astype(np.float64))
    live = rmin != rmax
    scale = np.where(live, (rmax - rmin) / 255.0, 1.0)
    from_min, from_max = -128.0 - rmin / scale, 127.0 - rmax / scale
    use_min = (128.0 + np.abs(rmin / scale)) < (127.0 + np.abs(rmax / scale))
    zd = np.where(use_min, from_min, from_max)
    nudged = np.where(zd <= -128.0, -128.0, np.where(zd >= 127.0, 127.0, _round(zd)))
    sf[live] = scale[live].astype(F32)
    zp[live] = nudged[live]
    inv = F32(1) / sf
    shifted = zp.astype(F32)[:, None] + _wide(v, wide) * inv[:, None]   # float32(zp) + float32(v * inv)
    q[live] = np.clip(_round(shifted[live]), -128, 127)
    return q, sf, zp


def _wide(v, wide: bool):
    return v.astype(np.float64) if wide else v


def _act(fn, wide: bool):
    """An activation `fn(x, out)` on float32 arrays; `wide`: computed in float64, then rounded to float32."""
    if not wide:
        return fn

    def run(x, out):
        t = x.astype(np.float64)
        fn(t, t)
        out[...] = t
    return run


class Product:
    """One int8 matrix of a layer ([rows, cols] integers, a float32 scale per row, its row sums); `rows`: a
    block of them, a product of its own (a GRU's reset-before candidate)."""

    def __init__(self, layer, key: str, wide: bool = False, rows=slice(None)):
        self.wide = wide
        self.M = H.integers(layer, key).astype(np.float64)[rows]
        self.s = np.asarray(layer.hybrid["scales"][key], F32)[rows]
        self.row_sums = self.M.sum(axis=1)
        self.asymmetric = layer.hybrid["asymmetric_inputs"]

    def accumulate(self, out: np.ndarray, v: np.ndarray) -> np.ndarray:
        """out [N, rows] (float32) + the hybrid product with v [N, cols]; nothing when v is all zeros."""
        if not np.any(v):
            return out
        q, sf, zp = quantize(v, self.asymmetric, self.wide)
        dot = q @ self.M.T - zp[:, None] * self.row_sums[None, :]        # exact integers
        return out + dot.astype(F32) * (sf[:, None] * self.s[None, :])


def dense(layer, X: np.ndarray, dtype) -> np.ndarray:
    shape = X.shape
    v = np.asarray(X, F32).reshape(-1, shape[-1])
    units = layer.kernel.shape[1]
    out = np.zeros((v.shape[0], units), F32)
    if layer.bias is not None:
        out += np.asarray(layer.bias, F32)
    wide = np.dtype(dtype) == F32
    out = Product(layer, "kernel", wide).accumulate(out, v)
    _act(_compile(layer.activation, layer.name)[0], wide)(out, out)
    return out.reshape(shape[:-1] + (units,)).astype(dtype)


def conv1d(layer, X: np.ndarray, dtype, plain) -> np.ndarray:
    """X [T, B, C]; `plain(layer, X, dtype)`: the reference convolution, run on the integers (exact)."""
    from dataclasses import replace
    from ..model import LINEAR
    T, B, C = X.shape
    wide = np.dtype(dtype) == F32
    q, sf, zp = quantize(np.asarray(X, F32).transpose(1, 0, 2).reshape(B, T * C), True, wide)
    Q = (q - zp[:, None]).reshape(B, T, C).transpose(1, 0, 2)
    width, per_group, filters = layer.kernel.shape
    K = H.integers(layer, "kernel").reshape(filters, width, per_group).transpose(1, 2, 0).astype(np.float64)
    acc = plain(replace(layer, kernel=K, bias=None, activation=LINEAR, hybrid=None), Q, np.float64)
    scale = np.asarray(layer.hybrid["scales"]["kernel"], F32)[None, :] * sf[:, None]        # [B, filters]
    out = acc.astype(F32) * scale[None]
    if layer.bias is not None:
        out = out + np.asarray(layer.bias, F32)
    _act(_compile(layer.activation, layer.name)[0], wide)(out, out)
    return out.astype(dtype)


def recurrent(layer, w, d: str, X: np.ndarray, reverse: bool, acts, dtype):
    """One direction `d` over X [T, B, F]: (Y [T, B, S], State), as `cells` returns them."""
    if layer.cell == "gru":
        return _gru(layer, w, d, X, reverse, acts, dtype)
    T, B, F = X.shape
    wide = np.dtype(dtype) == F32
    Wp, Rp = Product(layer, f"{d}.W", wide), Product(layer, f"{d}.R", wide)
    Pp = Product(layer, f"{d}.proj", wide) if w.proj is not None else None
    acts = [(_act(fn, wide), elementwise) for fn, elementwise in acts]
    bias = np.asarray(w.Wb, F32) + np.asarray(w.Rb, F32)
    S = layer.state_size
    h = _initial(w.h0, S, B)
    c = _initial(w.c0, layer.hidden, B) if layer.cell == "lstm" else None
    XC = Wp.accumulate(np.zeros((T * B, bias.size), F32), np.asarray(X, F32).reshape(T * B, F)).reshape(T, B, -1)
    Y = np.empty((T, B, S), F32)
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        G = Rp.accumulate(bias + XC[t], h)
        if layer.cell == "rnn":
            acts[0][0](G, G)
            h = G
        else:
            h, c = _lstm_step(G, c, acts, layer.hidden, Pp)
        Y[t] = h
    return Y.astype(dtype), State(h.astype(dtype), None if c is None else c.astype(dtype))


def _gru(layer, w, d, X, reverse, acts, dtype):
    """A GRU as TensorFlow's loop body computes it with hybrid FULLY_CONNECTED ops (canonical gates r, z, n):
    gx = Wb + W*x_t; reset after: gh = Rb + R*h, n = g(gx_n + r*gh_n); reset before: gh_rz = Rb_rz + R_rz*h,
    n = g(gx_n + (Rb_n + R_n*(r*h))), two products; h_t = z*h + (1-z)*n."""
    T, B, F = X.shape
    Hn = layer.hidden
    wide = np.dtype(dtype) == F32
    (f_act, _), (g_act, _) = [(_act(fn, wide), e) for fn, e in acts]
    Wp = Product(layer, f"{d}.W", wide)
    Rps = [Product(layer, f"{d}.R", wide)] if layer.reset_after else \
        [Product(layer, f"{d}.R", wide, slice(0, 2 * Hn)), Product(layer, f"{d}.R", wide, slice(2 * Hn, 3 * Hn))]
    Wb, Rb = np.asarray(w.Wb, F32), np.asarray(w.Rb, F32)
    h = _initial(w.h0, Hn, B)
    XC = Wp.accumulate(np.zeros((T * B, 3 * Hn), F32), np.asarray(X, F32).reshape(T * B, F)).reshape(T, B, -1)
    Y = np.empty((T, B, Hn), F32)
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        gx = Wb + XC[t]
        gh = Rps[0].accumulate(np.broadcast_to(Rb[:Rps[0].s.size], (B, Rps[0].s.size)).copy(), h)
        rz = gx[:, :2 * Hn] + gh[:, :2 * Hn]
        f_act(rz, rz)
        r, z = rz[:, :Hn], rz[:, Hn:]
        if layer.reset_after:
            n = gx[:, 2 * Hn:] + r * gh[:, 2 * Hn:]
        else:
            n = gx[:, 2 * Hn:] + Rps[1].accumulate(np.broadcast_to(Rb[2 * Hn:], (B, Hn)).copy(), r * h)
        g_act(n, n)
        h = z * h + (F32(1) - z) * n
        Y[t] = h
    return Y.astype(dtype), State(h.astype(dtype))


def _lstm_step(G, c, acts, Hn, Pp):
    (f_act, _), (g_act, _), (h_act, _) = acts
    i, f, g, o = (np.ascontiguousarray(G[:, k * Hn:(k + 1) * Hn]) for k in range(4))
    for gate in (i, f, o):
        f_act(gate, gate)
    g_act(g, g)
    c = f * c
    c = c + g * i
    out = np.empty_like(c)
    h_act(c, out)
    out = o * out
    if Pp is not None:
        out = Pp.accumulate(np.zeros((out.shape[0], Pp.s.size), F32), out)
    return out, c


def _initial(v, size: int, B: int) -> np.ndarray:
    if v is None:
        return np.zeros((B, size), F32)
    v = np.asarray(v, F32)
    return np.ascontiguousarray(np.broadcast_to(v, (B, size)))
