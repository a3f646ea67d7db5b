"""The reference forward pass of the front-end layers, and Keras masks through recurrent layers.

Tensors are time-major as in `network`: X [T, B, F] (or [B, F] after a layer that returns one
step), token ids [T, B].  Equations, with t an output step and k a kernel tap:

Embedding:  Y[t, b] = table[ids[t, b]]; an id outside [0, vocab) is an InputError.
            mask_zero: mask[t, b] = ids[t, b] != 0.
Masking:    mask[t, b] = any_f(X[t, b, f] != mask_value) (compared in float32, as Keras does);
            Y = X with the masked steps set to 0.
Conv1D:     Xp = X padded with zeros in time (pad_left, pad_right; see `model.Conv1D`),
            Y[t] = act(sum_k Xp[t*strides + k*dilation] * kernel[k] + bias), each of `groups` groups
            of filters reading its own slice of the input features;
            T_out = floor((T + pad_left + pad_right - (width-1)*dilation - 1) / strides) + 1.
Pooling1D:  windowed: Y[t] = max / mean over the input steps t*strides .. t*strides+pool_size-1
            (strides None: pool_size), 'same' padding as Conv1D with padded steps left out of both;
            global: max / mean over all steps; a global mean under a mask averages the unmasked
            steps only (sum(X*mask) / sum(mask), as Keras's GlobalAveragePooling1D).
Flatten:    Y[b] = concat_t X[t, b] (time outer, features inner): [B, T*F].
TimeWindow: Y = X[start:stop] (Python's slice of the time axis: negative bounds count from the end,
            bounds past an end are clamped); single: Y = X[start] ([B, F]).  Keeping no step, or a
            single step outside the sequence, is an InputError.
BatchNorm:  Y = (X - mean) / sqrt(variance + epsilon) * scale + offset, over the last axis.
Dropout (every variant): the identity.

Masks (Keras 2 and 3 compute the same): a recurrent layer that receives a mask runs each step,
then keeps the new states only where the step is unmasked, h_t = m_t ? h'_t : h_t-1 (and c_t);
its output at a masked step is the previous output (zeros before the first) for masked_output
'previous', zeros for 'zero'.  go_backwards and the backward direction read the mask reversed
with the input; the last output of a layer returning one step is its output at the last step
processed.  The mask passes unchanged through Dropout, Dense, Activation, BatchNorm and a
recurrent layer returning its sequence (even in processing order, as Keras does); Conv1D,
windowed pooling, Flatten and TimeWindow drop it, and a layer returning one step consumes it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import InputError, UnsupportedError
from ..model import (CONV_PADDINGS, POOL_MODES, ActivationLayer, BatchNorm, Conv1D, Dense, Dropout, Embedding,
    Flatten, Layer, Masking, Pooling1D, Recurrent, TimeWindow)
from . import activations as A, cells as C, lstm as L, recurrent as R
from .activations import activate

# Layers a mask passes through unchanged (Keras supports_masking, output a sequence).
_KEEP_MASK = (Dropout, Dense, ActivationLayer, BatchNorm)


def token_ids(x, layout: str) -> np.ndarray:
    """Token ids [batch, time] (or [time, batch] for a time-major model) -> int64 [T, B]."""
    ids = np.asarray(x)
    if ids.ndim == 3 and ids.shape[-1] == 1:
        ids = ids[..., 0]
    if ids.ndim != 2:
        order = "[batch, time]" if layout == "batch_time_feature" else "[time, batch]"
        raise InputError(f"input of shape {ids.shape}, expected token ids {order} (the model starts with "
                         "an Embedding)")
    if ids.dtype.kind == "f":
        if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)):
            raise InputError("the model starts with an Embedding and takes integer token ids; the input "
                             "holds non-integer values")
    elif ids.dtype.kind not in "iub":
        raise InputError(f"input of dtype {ids.dtype}, expected integer token ids")
    ids = ids.astype(np.int64)
    return np.ascontiguousarray(ids.T if layout == "batch_time_feature" else ids)


def run(layer: Layer, X: np.ndarray, mask: np.ndarray | None, dtype, run_plain):
    """One layer with Keras mask semantics: (Y, mask after the layer, final states).

    `run_plain(layer, X, dtype)` is `network._run`, used for the layers without a mask.
    """
    if isinstance(layer, Embedding):
        return embedding(layer, X, dtype), (X != 0 if layer.mask_zero else None), []
    if isinstance(layer, Masking):
        if X.ndim != 3:
            raise InputError("masking needs a sequence [batch, time, features]", layer=layer.name)
        new = np.any(X.astype(np.float32) != np.float32(layer.mask_value), axis=-1)
        return X * new[..., None], new, []
    if mask is not None and isinstance(layer, Recurrent):
        Y, states = masked_recurrent(layer, X, mask, dtype)
        return Y, (mask if layer.output == "sequence" else None), states
    if mask is not None and isinstance(layer, Pooling1D) and layer.pool_size is None \
            and layer.mode == "average":
        _check_sequence(layer, X)
        m = mask[..., None]
        return np.where(m, X, 0).sum(axis=0) / m.sum(axis=0).astype(X.dtype), None, []
    Y, states = run_plain(layer, X, dtype)
    keep = isinstance(layer, _KEEP_MASK) or (isinstance(layer, Recurrent) and layer.output == "sequence")
    return Y, (mask if keep and Y.ndim == 3 else None), states


def run_plain(layer: Layer, X: np.ndarray, dtype) -> np.ndarray | None:
    """The front-end kinds without a mask; None for a kind this module does not compute."""
    if isinstance(layer, Embedding):
        return embedding(layer, X, dtype)
    if isinstance(layer, Masking):
        return run(layer, X, None, dtype, None)[0]
    if isinstance(layer, Conv1D):
        return conv1d(layer, X, dtype)
    if isinstance(layer, Pooling1D):
        return pooling1d(layer, X)
    if isinstance(layer, Flatten):
        _check_sequence(layer, X)
        return np.ascontiguousarray(X.transpose(1, 0, 2)).reshape(X.shape[1], -1)
    if isinstance(layer, BatchNorm):
        return batch_norm(layer, X, dtype)
    if isinstance(layer, TimeWindow):
        return time_window(layer, X)
    return None


# ------------------------------------------------------------------------------------------ kinds

def embedding(layer: Embedding, ids: np.ndarray, dtype) -> np.ndarray:
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise InputError(f"an embedding takes integer token ids [batch, time], got {ids.dtype} of shape "
                         f"{ids.shape} (is it the first layer?)", layer=layer.name)
    vocab = layer.table.shape[0]
    bad = (ids < 0) | (ids >= vocab)
    if np.any(bad):
        raise InputError(f"token id {int(ids[bad][0])} is outside the vocabulary [0, {vocab}); "
                         f"{int(bad.sum())} ids are out of range", layer=layer.name)
    return np.asarray(layer.table, dtype=dtype)[ids]


def conv_pads(layer: Conv1D, T: int) -> tuple[int, int]:
    """(left, right) zero padding in time for a sequence of T steps."""
    reach = (layer.kernel.shape[0] - 1) * layer.dilation + 1
    if layer.padding == "valid":
        return 0, 0
    if layer.padding == "causal":
        return reach - 1, 0
    if layer.padding == "explicit":
        return int(layer.pads[0]), int(layer.pads[1])
    total = max((-(-T // layer.strides) - 1) * layer.strides + reach - T, 0)
    return total // 2, total - total // 2


def conv1d(layer: Conv1D, X: np.ndarray, dtype) -> np.ndarray:
    _check_sequence(layer, X)
    if layer.padding not in CONV_PADDINGS:
        raise UnsupportedError(f"padding '{layer.padding}' is not implemented by the reference forward "
                               f"pass; known: {', '.join(CONV_PADDINGS)}", layer=layer.name)
    kernel = np.asarray(layer.kernel, dtype=dtype)
    width, per_group, filters = kernel.shape
    G = layer.groups
    if per_group * G != X.shape[-1] or filters % G:
        raise InputError(f"kernel shape {kernel.shape} with groups {G} does not take {X.shape[-1]} input "
                         "features", layer=layer.name)
    if layer.hybrid is not None:            # an int8 filter as LiteRT's hybrid kernel runs it
        from .hybrid import conv1d as hybrid_conv1d
        return hybrid_conv1d(layer, X, dtype, conv1d)
    T, B, _ = X.shape
    left, right = conv_pads(layer, T)
    Xp = np.pad(X, ((left, right), (0, 0), (0, 0)))
    reach = (width - 1) * layer.dilation + 1
    T_out = (Xp.shape[0] - reach) // layer.strides + 1
    if T_out < 1:
        raise InputError(f"a sequence of {T} steps is shorter than the convolution's reach of {reach} steps "
                         f"(padding '{layer.padding}')", layer=layer.name)
    Y = np.zeros((T_out, B, filters), dtype)
    fo = filters // G
    for k in range(width):
        start = k * layer.dilation
        Xk = Xp[start:start + (T_out - 1) * layer.strides + 1:layer.strides]
        for g in range(G):
            Y[..., g * fo:(g + 1) * fo] += Xk[..., g * per_group:(g + 1) * per_group] @ kernel[k, :, g * fo:(g + 1) * fo]
    if layer.bias is not None:
        Y += np.asarray(layer.bias, dtype=dtype)
    return activate(layer.activation, Y, layer.name)


def pooling1d(layer: Pooling1D, X: np.ndarray) -> np.ndarray:
    _check_sequence(layer, X)
    if layer.mode not in POOL_MODES or layer.padding not in ("valid", "same"):
        raise UnsupportedError(f"pooling mode '{layer.mode}' with padding '{layer.padding}' is not implemented "
                               "by the reference forward pass", layer=layer.name)
    if layer.pool_size is None:
        return X.max(axis=0) if layer.mode == "max" else X.mean(axis=0)
    p, s, T = layer.pool_size, layer.strides or layer.pool_size, X.shape[0]
    if layer.padding == "same":
        T_out = -(-T // s)
        left = max((T_out - 1) * s + p - T, 0) // 2
    else:
        T_out, left = (T - p) // s + 1, 0
    if T_out < 1:
        raise InputError(f"a sequence of {T} steps is shorter than the pooling window of {p}", layer=layer.name)
    Y = np.empty((T_out,) + X.shape[1:], X.dtype)
    for t in range(T_out):
        lo = t * s - left
        window = X[max(lo, 0):min(lo + p, T)]          # padded steps take no part
        Y[t] = window.max(axis=0) if layer.mode == "max" else window.mean(axis=0)
    return Y


def time_window(layer: TimeWindow, X: np.ndarray) -> np.ndarray:
    _check_sequence(layer, X)
    T = X.shape[0]
    kept = layer.steps(T)
    if not len(kept):
        what = f"step {layer.start}" if layer.single else f"steps {layer.start}:{layer.stop}"
        raise InputError(f"the window keeps {what} of a sequence of {T} steps: none", layer=layer.name)
    return X[kept[0]] if layer.single else X[kept.start:kept.stop]


def batch_norm(layer: BatchNorm, X: np.ndarray, dtype) -> np.ndarray:
    c = lambda a: None if a is None else np.asarray(a, dtype=dtype)  # noqa: E731
    mean, variance, scale, offset = c(layer.mean), c(layer.variance), c(layer.scale), c(layer.offset)
    if mean.shape != (X.shape[-1],):
        raise InputError(f"mean of shape {mean.shape} does not normalize {X.shape[-1]} features",
                         layer=layer.name)
    Y = (X - mean) / np.sqrt(variance + dtype.type(layer.epsilon))
    if scale is not None:
        Y *= scale
    if offset is not None:
        Y += offset
    return Y


def _check_sequence(layer: Layer, X: np.ndarray) -> None:
    if X.ndim != 3:
        raise InputError(f"{layer.kind} needs a sequence [batch, time, features], got shape {X.shape} "
                         "(does the layer before return one step?)", layer=layer.name)


# ------------------------------------------------------------------------------------------ masks

def masked_recurrent(layer: Recurrent, X: np.ndarray, mask: np.ndarray, dtype):
    """A recurrent layer over X [T, B, F] whose steps mask [T, B] says are real (Keras's rnn loop).

    Each step is the unmasked cell of `cells` run for one step from the carried state.
    """
    R._check_recurrent(layer, X)
    if layer.hybrid is not None:
        raise UnsupportedError("a mask reaching a layer with hybrid int8 arithmetic: LiteRT's hybrid sequence "
                               "ops take no mask", layer=layer.name)
    if mask.shape != X.shape[:2]:
        raise InputError(f"mask of shape {mask.shape} for a sequence of shape {X.shape[:2]}", layer=layer.name)
    acts = [A._compile(a, layer.name) for a in layer.activations]
    step = {"lstm": L._lstm, "gru": C._gru, "rnn": C._rnn}[layer.cell]
    T, B, _ = X.shape
    outputs, states = [], []
    for direction, w in zip(layer.direction_names(), layer.weights):
        reverse = direction == "reverse"
        S = w.proj.shape[0] if w.proj is not None else layer.hidden
        h = C._initial(w.h0, S, slice(None), B, dtype).T.copy()
        c = C._initial(w.c0, layer.hidden, slice(None), B, dtype).T.copy() if layer.cell == "lstm" else None
        out = np.zeros((B, S), dtype)
        Y = np.empty((T, B, S), dtype)
        for t in C._steps(T, reverse):
            _, new = step(layer, dataclasses.replace(w, h0=h, c0=c), X[t:t + 1], False, acts, dtype)
            m = mask[t][:, None]
            h = np.where(m, new.h, h)
            if c is not None:
                c = np.where(m, new.c, c)
            out = np.where(m, new.h, 0 if layer.masked_output == "zero" else out)
            Y[t] = out
        outputs.append(R._pick(layer, Y, reverse))
        states.append(C.State(h, c))
    return R._merge(layer, outputs), states
