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

The cells' time loops, and how a large batch runs on several threads, are in `reference_cells.py`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.special import erf, expit

from ..model import gates
from ..model import states
from ..errors import InputError, UnsupportedError
from . import layers as reference_layers
from .cells import State, _gru, _lstm, _rnn
from ..model import (ACTIVATIONS, CELLS, DIRECTIONS, MERGE_MODES, OUTPUTS, TIME_ORDERS, Activation,
    ActivationLayer, Dense, Dropout, Embedding, Layer, Model, Recurrent, recurrent_problems)

LAYOUTS = ("batch_time_feature", "time_batch_feature")


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
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        # IEEE results (inf, NaN) are the pass's answer, judged by verification: no RuntimeWarning lines
        return _forward_with_states(model, x, dtype, layout)


def _forward_with_states(model, x, dtype, layout):
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
    with np.errstate(over="ignore"):
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
    with np.errstate(over="ignore"):
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
        outputs.append(_pick(layer, Y, reverse))
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
# whether it is elementwise; softmax and log_softmax work over the last axis.  fn runs under
# np.errstate(over="ignore") (set once per call or per time loop): an exp that overflows to inf
# gives sigmoid and tanh their exact limits.

Fn = Callable[[np.ndarray, np.ndarray], None]


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
    """1/(1 + exp(-x)): exp overflows to inf below x = -88 (float32) and gives the limit 0 exactly;
    within an ulp of scipy's expit, and faster (the time loops call it every step)."""
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)


def _tanh(x, out):
    """2/(1 + exp(-2x)) - 1 (exp overflowing to inf gives -1 exactly): absolute error a few ulp of 1
    (about 2e-7 in float32, 4e-16 in float64; tiny inputs lose their relative accuracy), and half
    the time of np.tanh."""
    np.multiply(x, -2.0, out=out)
    np.exp(out, out=out)
    out += 1
    np.divide(2.0, out, out=out)
    out -= 1


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
    "tanh": lambda: _tanh,
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


def forward_with_feeds(model, x, feeds: dict | None = None, dtype=np.float64):
    """The reference pass with state inputs `feeds`; returns (output, {state output name: array})."""
    y, final = forward_with_states(states.with_states(model, feeds), x, dtype)
    outs = {}
    for port in model.state_outputs:
        v = np.stack([getattr(final[k][d], port.state) for k, d in states.rows(model, port)])
        outs[port.name] = v[0] if port.layout == "batch_size" else v
    return y, outs
