"""The reference forward pass: the canonical model computed with numpy, float64 by default.

Verification compares every framework with this.  It implements exactly what `model.py` describes
and raises `UnsupportedError` on anything else (a layer kind, a cell, an activation), naming the
layer, instead of computing something nearby.

The equations use the ONNX symbols.  `t` runs over the input steps in processing order (T-1 .. 0
for a reverse direction), `*` is the elementwise product, `f`, `g`, `h` are the layer's
activations, and clip(.) bounds a pre-activation to [-clip, clip] when the layer has a clip.

LSTM (gates i, f, g, o; `g` is ONNX's `c`):
    it = f(clip(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi))
    ft = f(clip(Xt*(Wf^T) + Ht-1*(Rf^T) + Wbf + Rbf))
    gt = g(clip(Xt*(Wg^T) + Ht-1*(Rg^T) + Wbg + Rbg))
    ot = f(clip(Xt*(Wo^T) + Ht-1*(Ro^T) + Wbo + Rbo))
    Ct = ft * Ct-1 + it * gt
    Ht = ot * h(Ct)                     without a projection
    Ht = (ot * h(Ct))*(P^T)             with a projection P = proj [S, H] (PyTorch proj_size)
GRU (gates r, z, n; `n` is ONNX's `h`):
    zt = f(clip(Xt*(Wz^T) + Ht-1*(Rz^T) + Wbz + Rbz))
    rt = f(clip(Xt*(Wr^T) + Ht-1*(Rr^T) + Wbr + Rbr))
    nt = g(clip(Xt*(Wn^T) + rt * (Ht-1*(Rn^T) + Rbn) + Wbn))     reset_after (linear_before_reset=1)
    nt = g(clip(Xt*(Wn^T) + (rt * Ht-1)*(Rn^T) + Rbn + Wbn))     not reset_after
    Ht = (1 - zt) * nt + zt * Ht-1
RNN:
    Ht = f(clip(Xt*(Wi^T) + Ht-1*(Ri^T) + Wbi + Rbi))

H_0 is `h0` ([S] broadcast over the batch, or [batch, S]; zeros when absent), C_0 likewise `c0`.
A layer's outputs, per direction, are the states Ht stored at the input step t they follow; then
`output`, `time_order` and `merge` pick and combine them (see `_pick`).

Dense: Y = activation(X*kernel + bias), per time step on a sequence.  ActivationLayer: the
activation over the last axis.  Dropout: the identity.  Embedding, Masking, Conv1D, Pooling1D,
Flatten and BatchNorm, and what a mask (Embedding mask_zero, Masking) does to the recurrent layers
after it, are stated and computed in `reference_layers.py`; a model that starts with an Embedding
takes integer token ids [batch, time].

Activations (alpha, beta as in ONNX and `model.ACTIVATIONS`): hard_sigmoid clip(alpha*x+beta, 0, 1),
elu x if x > 0 else alpha*(exp(x)-1), selu beta*elu_alpha(x), leaky_relu x if x >= 0 else alpha*x,
thresholded_relu x if x > alpha else 0, affine alpha*x+beta, scaled_tanh alpha*tanh(beta*x),
relu6 min(max(x, 0), 6), softsign x/(1+|x|), softplus log(1+exp(x)), swish x*sigmoid(x),
gelu x*(1+erf(x/sqrt(2)))/2 (the exact form), softmax and log_softmax over the last axis.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy.special import erf, expit

from . import gates
from .errors import InputError, UnsupportedError
from . import reference_layers
from .model import (
    ACTIVATIONS, CELLS, DIRECTIONS, MERGE_MODES, OUTPUTS, TIME_ORDERS, Activation, ActivationLayer,
    Dense, Dropout, Embedding, Layer, Model, Recurrent, recurrent_problems,
)

LAYOUTS = ("batch_time_feature", "time_batch_feature")


class State(NamedTuple):
    """One direction's state after the whole sequence: h [batch, S], c [batch, H] (LSTM only)."""
    h: np.ndarray
    c: np.ndarray | None = None


def forward(model: Model, x: np.ndarray, dtype=np.float64, *, layout: str | None = None) -> np.ndarray:
    """Run `model` on `x`; the result is shaped like the source framework's predict.

    `x` is `[batch, time, features]`, or `[time, batch, features]` when the layout (by default
    `model.input.layout`) is 'time_batch_feature'; a sequence output has the same layout, a
    layer that returns one step gives `[batch, units]`.  Everything is computed in `dtype`.
    """
    return forward_with_states(model, x, dtype, layout=layout)[0]


def forward_with_states(model: Model, x: np.ndarray, dtype=np.float64, *,
                        layout: str | None = None) -> tuple[np.ndarray, list[list[State]]]:
    """`forward`, plus each layer's final states: `states[k][d]` is direction `d` of `model.layers[k]`.

    A final state is the state after the whole sequence (forward: after input T-1; reverse:
    after input 0), whatever the layer outputs, so it can be fed back as `h0`/`c0` to continue a
    stream.  Non-recurrent layers have an empty list.
    """
    dtype = _float_dtype(dtype)
    layout = layout or model.input.layout
    if model.layers and isinstance(model.layers[0], Embedding):
        X = reference_layers.token_ids(x, layout)
    else:
        X = _time_major(x, layout, dtype)
        if model.input.features and X.shape[-1] != model.input.features:
            raise InputError(f"input has {X.shape[-1]} features, the model expects {model.input.features}")
    states, mask = [], None
    for layer in model.layers:
        X, mask, layer_states = reference_layers.run(layer, X, mask, dtype, _run)
        states.append(layer_states)
    if X.ndim == 3 and layout == "batch_time_feature":
        X = X.transpose(1, 0, 2)
    return np.ascontiguousarray(X), states


def run_layer(layer: Layer, x: np.ndarray, dtype=np.float64) -> tuple[np.ndarray, list[State]]:
    """One layer on batch-major `x` [batch, time, features] (or [batch, features] after a step).

    Returns the layer's output (batch-major) and its final states, one per direction.
    """
    dtype = _float_dtype(dtype)
    if isinstance(layer, Embedding):
        X = reference_layers.token_ids(x, "batch_time_feature")
    else:
        X = np.asarray(x, dtype=dtype)
    if X.ndim == 3:
        X = X.transpose(1, 0, 2)
    y, states = _run(layer, X, dtype)
    return np.ascontiguousarray(y.transpose(1, 0, 2) if y.ndim == 3 else y), states


def activate(activation: Activation, x: np.ndarray, layer: str | None = None) -> np.ndarray:
    """`activation` applied to `x` (a new array; softmax and log_softmax over the last axis)."""
    fn, _ = _compile(activation, layer)
    x = np.asarray(x)
    out = np.empty_like(x)
    fn(x, out)
    return out


# ----------------------------------------------------------------------------------------- layers

def _run(layer: Layer, X: np.ndarray, dtype) -> tuple[np.ndarray, list[State]]:
    """One layer on a time-major tensor [time, batch, features] or on [batch, features]."""
    if isinstance(layer, Recurrent):
        return _recurrent(layer, X, dtype)
    if isinstance(layer, Dense):
        return _dense(layer, X, dtype), []
    if isinstance(layer, ActivationLayer):
        return activate(layer.activation, X, layer.name), []
    if isinstance(layer, Dropout):
        return X, []
    Y = reference_layers.run_plain(layer, X, dtype)
    if Y is not None:
        return Y, []
    raise UnsupportedError(f"layer kind '{layer.kind}' is not implemented by the reference forward pass",
                           layer=getattr(layer, "name", None))


def _dense(layer: Dense, X: np.ndarray, dtype) -> np.ndarray:
    kernel = np.asarray(layer.kernel, dtype=dtype)
    if kernel.ndim != 2 or kernel.shape[0] != X.shape[-1]:
        raise InputError(f"kernel shape {tuple(kernel.shape)} does not take {X.shape[-1]} input features",
                         layer=layer.name)
    Y = X @ kernel
    if layer.bias is not None:
        Y += np.asarray(layer.bias, dtype=dtype)
    fn, _ = _compile(layer.activation, layer.name)
    fn(Y, Y)
    return Y


def _recurrent(layer: Recurrent, X: np.ndarray, dtype) -> tuple[np.ndarray, list[State]]:
    _check_recurrent(layer, X)
    acts = [_compile(a, layer.name) for a in layer.activations]
    step = {"lstm": _lstm, "gru": _gru, "rnn": _rnn}[layer.cell]
    outputs, states = [], []
    for direction, w in zip(layer.direction_names(), layer.weights):
        reverse = direction == "reverse"
        Y, state = step(layer, w, X, reverse, acts, dtype)
        outputs.append(_pick(layer, Y.transpose(0, 2, 1), reverse))
        states.append(state)
    return _merge(layer, outputs), states


def _pick(layer: Recurrent, Y: np.ndarray, reverse: bool) -> np.ndarray:
    """From one direction's states Y [time, batch, S] (Y[t] follows input t), what the layer returns.

    sequence: Y, or Y reversed for time_order 'processing' (Keras go_backwards);
    last_step: the last element of that sequence (a backward direction: its state after one step);
    final_state: the state after the whole sequence (a backward direction: Y[0]).
    """
    if layer.output == "sequence":
        return Y[::-1] if layer.time_order == "processing" else Y
    if layer.output == "last_step":
        return Y[0] if layer.time_order == "processing" else Y[-1]
    return Y[0] if reverse else Y[-1]


def _merge(layer: Recurrent, outputs: list[np.ndarray]) -> np.ndarray:
    if len(outputs) == 1:
        return outputs[0]
    y_forward, y_backward = outputs
    if layer.merge == "concat":
        return np.concatenate([y_forward, y_backward], axis=-1)
    if layer.merge == "sum":
        return y_forward + y_backward
    if layer.merge == "mul":
        return y_forward * y_backward
    return (y_forward + y_backward) / 2      # 'ave'; _check_recurrent refused anything else


def _check_recurrent(layer: Recurrent, X: np.ndarray) -> None:
    """Settings this pass does not know raise UnsupportedError; a malformed layer raises InputError."""
    for setting, known in (("cell", CELLS), ("direction", DIRECTIONS), ("output", OUTPUTS),
                           ("merge", MERGE_MODES), ("time_order", TIME_ORDERS)):
        value = getattr(layer, setting)
        if value not in known:
            raise UnsupportedError(f"{setting} '{value}' is not implemented by the reference forward pass; "
                                   f"known: {', '.join(known)}", layer=layer.name)
    if X.ndim != 3:
        raise InputError(f"a recurrent layer needs a sequence [batch, time, features], got shape {X.shape} "
                         "(does the layer before return one step?)", layer=layer.name)
    if X.shape[0] == 0:
        raise InputError("the input sequence has no time steps", layer=layer.name)
    problems = [p.lstrip(":. ") for p in recurrent_problems(layer, "", X.shape[-1])]
    for name, w in zip(layer.direction_names(), layer.weights):
        for flag, array in (("has_input_bias", "Wb"), ("has_recurrent_bias", "Rb")):
            if not getattr(layer, flag) and np.any(getattr(w, array)):
                problems.append(f"{name}.{array}: non-zero although {flag} is False")
        for array in ("h0", "c0"):
            v = getattr(w, array)
            if v is not None and (v.ndim not in (1, 2) or v.ndim == 2 and v.shape[0] != X.shape[1]):
                problems.append(f"{name}.{array}: shape {tuple(v.shape)}, expected (state,) "
                                f"or (batch={X.shape[1]}, state)")
    if problems:
        raise InputError("; ".join(problems), layer=layer.name)


# ------------------------------------------------------------------------------------------ cells
# Each cell runs one direction over a time-major X [T, B, F] and returns (Y [T, S, B], State),
# Y[t] the state after input t.  Inside the time loop tensors are [units, batch], so that every
# gate block is a contiguous range of rows.  The input projections of all steps are one matmul
# before the loop, which then works in preallocated buffers.

def _lstm(layer, w, X, reverse, acts, dtype):
    T, B, _ = X.shape
    H = layer.hidden
    f, g, h_act = (_on_blocks(fn, elementwise, H) for fn, elementwise in acts)
    # Gate rows reordered once to i, f, o, g so that f applies to one contiguous block.
    W_ifog = _cast(gates.permute(w.W, "lstm", "ifgo", "ifog"), dtype)
    R_ifog = _cast(gates.permute(w.R, "lstm", "ifgo", "ifog"), dtype)
    b_ifog = gates.permute(_cast(w.Wb, dtype) + _cast(w.Rb, dtype), "lstm", "ifgo", "ifog")
    P = None if w.proj is None else _cast(w.proj, dtype)
    S = H if P is None else P.shape[0]
    XW = _input_projection(X, W_ifog, b_ifog)
    h = _initial(w.h0, S, B, dtype)
    c = _initial(w.c0, H, B, dtype)
    Y = np.empty((T, S, B), dtype)
    G = np.empty((4 * H, B), dtype)
    i_f_o, i, f_gate, o, g_gate = G[:3 * H], G[:H], G[H:2 * H], G[2 * H:3 * H], G[3 * H:]
    ig = np.empty((H, B), dtype)
    clip = layer.clip
    for t in _steps(T, reverse):
        np.matmul(R_ifog, h, out=G)
        G += XW[:, t]
        if clip is not None:
            np.clip(G, -clip, clip, out=G)
        f(i_f_o, i_f_o)
        g(g_gate, g_gate)
        c *= f_gate
        np.multiply(i, g_gate, out=ig)
        c += ig
        h_act(c, ig)                      # ig now holds h(Ct)
        if P is None:
            np.multiply(o, ig, out=Y[t])
        else:
            ig *= o
            np.matmul(P, ig, out=Y[t])
        h = Y[t]
    return Y, State(h.T.copy(), c.T.copy())


def _gru(layer, w, X, reverse, acts, dtype):
    T, B, _ = X.shape
    H = layer.hidden
    f, g = (_on_blocks(fn, elementwise, H) for fn, elementwise in acts)
    W, R = _cast(w.W, dtype), _cast(w.R, dtype)
    Wb, Rb = _cast(w.Wb, dtype), _cast(w.Rb, dtype)
    h = _initial(w.h0, H, B, dtype)
    Y = np.empty((T, H, B), dtype)
    tmp = np.empty((H, B), dtype)
    clip = layer.clip
    if layer.reset_after:
        # Rbn stays inside r * (...); the r and z recurrent biases join the input projection.
        Rb_n = Rb[2 * H:, None].copy()
        bias = Wb.copy()
        bias[:2 * H] += Rb[:2 * H]
        XW = _input_projection(X, W, bias)
        G = np.empty((3 * H, B), dtype)
        r_z, r, z, n = G[:2 * H], G[:H], G[H:2 * H], G[2 * H:]
        for t in _steps(T, reverse):
            np.matmul(R, h, out=G)
            r_z += XW[:2 * H, t]
            if clip is not None:
                np.clip(r_z, -clip, clip, out=r_z)
            f(r_z, r_z)
            n += Rb_n
            n *= r
            n += XW[2 * H:, t]
            if clip is not None:
                np.clip(n, -clip, clip, out=n)
            g(n, n)
            _gru_update(h, n, z, tmp, Y[t])
            h = Y[t]
    else:
        XW = _input_projection(X, W, Wb + Rb)
        R_rz, R_n = np.ascontiguousarray(R[:2 * H]), np.ascontiguousarray(R[2 * H:])
        r_z, n = np.empty((2 * H, B), dtype), np.empty((H, B), dtype)
        r, z = r_z[:H], r_z[H:]
        for t in _steps(T, reverse):
            np.matmul(R_rz, h, out=r_z)
            r_z += XW[:2 * H, t]
            if clip is not None:
                np.clip(r_z, -clip, clip, out=r_z)
            f(r_z, r_z)
            np.multiply(r, h, out=tmp)
            np.matmul(R_n, tmp, out=n)
            n += XW[2 * H:, t]
            if clip is not None:
                np.clip(n, -clip, clip, out=n)
            g(n, n)
            _gru_update(h, n, z, tmp, Y[t])
            h = Y[t]
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
    XW = _input_projection(X, _cast(w.W, dtype), _cast(w.Wb, dtype) + _cast(w.Rb, dtype))
    R = _cast(w.R, dtype)
    h = _initial(w.h0, H, B, dtype)
    Y = np.empty((T, H, B), dtype)
    clip = layer.clip
    for t in _steps(T, reverse):
        y = Y[t]
        np.matmul(R, h, out=y)
        y += XW[:, t]
        if clip is not None:
            np.clip(y, -clip, clip, out=y)
        f(y, y)
        h = y
    return Y, State(h.T.copy())


def _steps(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def _input_projection(X: np.ndarray, W: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """W*(Xt^T) + bias for every step in one matmul: [T, B, F] -> [gates*H, T, B].

    Returned as a view of a [T, gates*H, B] array, so that each step's XW[:, t] the time loop adds
    is one contiguous block (a strided block costs more than the transposing copy made here once).
    """
    T, B, F = X.shape
    XW = X.reshape(T * B, F) @ W.T
    XW += bias
    return np.ascontiguousarray(XW.reshape(T, B, -1).transpose(0, 2, 1)).transpose(1, 0, 2)


def _initial(v: np.ndarray | None, size: int, batch: int, dtype) -> np.ndarray:
    """A fresh [size, batch] state buffer from h0/c0 ([size] or [batch, size]) or zeros."""
    out = np.zeros((size, batch), dtype)
    if v is not None:
        out[...] = v.T if v.ndim == 2 else v[:, None]
    return out


def _cast(a: np.ndarray, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


def _float_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise InputError(f"dtype {dtype}: the reference forward pass computes in a floating type "
                         "(float32 or float64)")
    return dtype


def _time_major(x, layout: str, dtype) -> np.ndarray:
    if layout not in LAYOUTS:
        raise InputError(f"layout '{layout}', expected one of {', '.join(LAYOUTS)}")
    X = np.asarray(x, dtype=dtype)
    if X.ndim != 3:
        order = "[batch, time, features]" if layout == "batch_time_feature" else "[time, batch, features]"
        raise InputError(f"input of shape {X.shape}, expected {order}")
    return np.ascontiguousarray(X.transpose(1, 0, 2)) if layout == "batch_time_feature" else X


# ------------------------------------------------------------------------------------ activations
# `_compile` turns an Activation into fn(x, out) writing act(x) to `out` (which may be `x`), plus
# whether it is elementwise; softmax and log_softmax work over the last axis.

Fn = Callable[[np.ndarray, np.ndarray], None]


def _on_blocks(fn: Fn, elementwise: bool, hidden: int) -> Fn:
    """fn for a cell's [gates*hidden, batch] tensors: an axis-wise activation (softmax) runs over
    the units of each gate block on its own."""
    if elementwise:
        return fn

    def apply(x, out):
        for k in range(0, x.shape[0], hidden):
            fn(x[k:k + hidden].T, out[k:k + hidden].T)
    return apply


def _compile(activation: Activation, layer: str | None) -> tuple[Fn, bool]:
    make = _ACTIVATIONS.get(activation.name)
    if make is None:
        raise UnsupportedError(f"activation '{activation.name}' is not implemented by the reference "
                               "forward pass", layer=layer)
    params = []
    for p in ACTIVATIONS.get(activation.name, ()):
        value = getattr(activation, p)
        if value is None:
            raise InputError(f"activation '{activation.name}' needs {p}, the model gives none", layer=layer)
        params.append(float(value))
    return make(*params), activation.name not in ("softmax", "log_softmax")


def _linear(x, out):
    if out is not x:
        np.copyto(out, x)


def _sigmoid(x, out):
    """1/(1 + exp(-x)) with x floored at -80, where exp(-x) would overflow float32 and the result
    is below 2e-35 anyway: no overflow, no cancellation, and faster than scipy's expit."""
    np.maximum(x, -80.0, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)


def _softsign(x, out):
    d = np.abs(x)
    d += 1
    np.divide(x, d, out=out)


def _swish(x, out):
    np.multiply(x, expit(x), out=out)


def _gelu(x, out):
    e = erf(x * np.sqrt(0.5))
    e += 1
    e *= 0.5
    np.multiply(x, e, out=out)


def _softmax(x, out):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    np.copyto(out, e)


def _log_softmax(x, out):
    s = x - x.max(axis=-1, keepdims=True)
    s -= np.log(np.exp(s).sum(axis=-1, keepdims=True))
    np.copyto(out, s)


def _hard_sigmoid(alpha, beta):
    def fn(x, out):
        np.multiply(x, alpha, out=out)
        out += beta
        np.clip(out, 0.0, 1.0, out=out)
    return fn


def _elu(alpha, scale=1.0):
    def fn(x, out):
        negative = x < 0
        e = np.expm1(np.minimum(x, 0))
        e *= alpha
        np.copyto(out, x)
        np.copyto(out, e, where=negative)
        if scale != 1.0:
            out *= scale
    return fn


def _leaky_relu(alpha):
    def fn(x, out):
        negative = x < 0
        scaled = x * alpha
        np.copyto(out, x)
        np.copyto(out, scaled, where=negative)
    return fn


def _thresholded_relu(alpha):
    def fn(x, out):
        below = ~(x > alpha)
        np.copyto(out, x)
        out[below] = 0
    return fn


def _affine(alpha, beta):
    def fn(x, out):
        np.multiply(x, alpha, out=out)
        out += beta
    return fn


def _scaled_tanh(alpha, beta):
    def fn(x, out):
        np.multiply(x, beta, out=out)
        np.tanh(out, out=out)
        out *= alpha
    return fn


_ACTIVATIONS: dict[str, Callable[..., Fn]] = {
    "linear": lambda: _linear,
    "sigmoid": lambda: _sigmoid,
    "tanh": lambda: lambda x, out: np.tanh(x, out=out),
    "relu": lambda: lambda x, out: np.maximum(x, 0, out=out),
    "softsign": lambda: _softsign,
    "softplus": lambda: lambda x, out: np.logaddexp(0, x, out=out),
    "exponential": lambda: lambda x, out: np.exp(x, out=out),
    "swish": lambda: _swish,
    "gelu": lambda: _gelu,
    "softmax": lambda: _softmax,
    "log_softmax": lambda: _log_softmax,
    "hard_sigmoid": _hard_sigmoid,
    "elu": _elu,
    "selu": lambda alpha, beta: _elu(alpha, scale=beta),
    "leaky_relu": _leaky_relu,
    "thresholded_relu": _thresholded_relu,
    "affine": _affine,
    "scaled_tanh": _scaled_tanh,
    "relu6": lambda: lambda x, out: np.clip(x, 0, 6, out=out),
}
