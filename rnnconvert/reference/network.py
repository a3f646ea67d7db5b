"""The reference forward pass: the canonical model computed with numpy, float64 by default.

Verification compares every framework with this.  It implements exactly what `rnnconvert/model` describes
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
after it, are stated and computed in `layers`; a model that starts with an Embedding
takes integer token ids [batch, time].

A Dense, Conv1D, LSTM or RNN layer with a `hybrid` setting (int8 weights, e.g. read from a quantized .tflite)
computes as LiteRT's hybrid kernels do, in float32, its inputs quantized on the fly: stated and computed in
`hybrid`.
The activations (hard_sigmoid, elu, gelu, softmax, ...) are stated and computed in `activations`;
what a recurrent layer returns and how its directions merge, in `recurrent`.
The cells' time loops, and how a large batch runs on several threads, are in `cells`.
"""
from __future__ import annotations

import numpy as np

from ..model import states
from ..errors import InputError, UnsupportedError
from . import layers as reference_layers
from .activations import _compile, activate
from .cells import State
from .recurrent import _recurrent
from ..model import ActivationLayer, Dense, Dropout, Embedding, Layer, Model, Recurrent

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
    if layer.hybrid is not None:            # int8 weights as LiteRT's hybrid kernel runs them
        from .hybrid import dense
        return dense(layer, X, dtype)
    Y = X @ kernel
    if layer.bias is not None:
        Y += np.asarray(layer.bias, dtype=dtype)
    fn, _ = _compile(layer.activation, layer.name)
    with np.errstate(over="ignore"):
        fn(Y, Y)
    return Y


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


def forward_with_feeds(model, x, feeds: dict | None = None, dtype=np.float64):
    """The reference pass with state inputs `feeds`; returns (output, {state output name: array})."""
    y, final = forward_with_states(states.with_states(model, feeds), x, dtype)
    return y, state_outputs(model, final)


def state_outputs(model, final) -> dict:
    """{state output name: array}: `forward_with_states`'s final states as `model`'s state outputs give them."""
    outs = {}
    for port in model.state_outputs:
        v = np.stack([getattr(final[k][d], port.state) for k, d in states.rows(model, port)])
        outs[port.name] = v[0] if port.layout == "batch_size" else v
    return outs
