"""A layer setting: `hybrid`, int8 weights run as LiteRT's hybrid (dynamic-range) kernels.

A Dense, Conv1D or Recurrent layer whose `hybrid` is not None holds its weights dequantized, each value exactly
float32(q) * scale with q an integer in [-127, 127], and computes as TFLite's hybrid FULLY_CONNECTED,
per-channel CONV_2D and sequence LSTM / RNN kernels do (a GRU: as TensorFlow's WHILE loop body computes it
with hybrid FULLY_CONNECTED ops): every matrix product quantizes its float input vector
on the fly (each batch row, each step, the LSTM's x_t and h_t-1 separately; a convolution's whole input per
batch row, always asymmetric) to int8, multiplies int8 x int8 into int32 and scales the sum back to float32 (`rnnconvert/reference/hybrid.py` states the equations).  The setting is

    {"asymmetric_inputs": bool,             the op's asymmetric_quantize_inputs
     "scales": {array: [scale per row]}}    float32 weight scales, one per output row of the product:
                                            "kernel" (one per unit, per filter) for a Dense, a Conv1D, "forward.W", "forward.R",
                                            "forward.proj" (and "reverse.*") for a recurrent layer

A reader sets it only for a file whose runtime computes that way (a .tflite with int8 weights); writers
that keep it write int8 weights with these scales, the others write the float weights and the conversion
note says the arithmetic changed.  `None` (every other layer): float arithmetic.
"""
from __future__ import annotations

import numpy as np

QMAX = 127


def keys(layer) -> list[str]:
    """The arrays of `layer` a hybrid kernel multiplies in int8: Dense 'kernel'; recurrent W, R, proj."""
    if getattr(layer, "kind", "") in ("dense", "conv1d"):
        return ["kernel"]
    out = []
    for d, w in zip(layer.direction_names(), layer.weights):
        out += [f"{d}.W", f"{d}.R"] + ([f"{d}.proj"] if w.proj is not None else [])
    return out


def rows_of(layer, key: str) -> np.ndarray:
    """The array `key` as [rows, cols], rows the products' outputs (a Dense kernel transposed, a Conv1D kernel
    [width, in, filters] as [filters, width * in])."""
    a = np.asarray(layer.arrays()[key])
    if key == "kernel":
        return a.T if a.ndim == 2 else np.transpose(a, (2, 0, 1)).reshape(a.shape[2], -1)
    return a


def integers(layer, key: str) -> np.ndarray:
    """The int8 values of array `key` ([rows, cols], int32): round(w / scale), exact for a valid layer."""
    w = rows_of(layer, key).astype(np.float64)
    s = np.asarray(layer.hybrid["scales"][key], np.float64)[:, None]
    return np.rint(w / s).astype(np.int32)


def problems(layer, where: str):
    """What is wrong with `layer.hybrid`: its form, a scale per row of each array, positive finite float32
    scales, and every weight on its int8 grid (float32(q) * scale, |q| <= 127)."""
    h = layer.hybrid
    if h is None:
        return
    if not isinstance(h, dict) or set(h) != {"asymmetric_inputs", "scales"} \
            or not isinstance(h["asymmetric_inputs"], bool) or not isinstance(h["scales"], dict):
        yield f"{where}: hybrid must be {{'asymmetric_inputs': bool, 'scales': {{array: [scale per row]}}}}"
        return
    want = keys(layer)
    if sorted(h["scales"]) != sorted(want):
        yield f"{where}: hybrid scales for {sorted(h['scales'])}, expected {want}"
        return
    for key in want:
        w = rows_of(layer, key)
        try:
            s = np.asarray(h["scales"][key], np.float64)
        except (TypeError, ValueError):
            s = np.array([np.nan])
        if s.shape != (w.shape[0],) or not np.all(np.isfinite(s)) or np.any(s <= 0) \
                or np.any(s.astype(np.float32).astype(np.float64) != s):
            yield (f"{where}: hybrid scales of '{key}': expected {w.shape[0]} positive float32 numbers, "
                   f"found {s.size}")
            continue
        q = np.rint(w.astype(np.float64) / s[:, None])
        if np.any(np.abs(q) > QMAX) or np.any((q.astype(np.float32) * s.astype(np.float32)[:, None]) != w):
            yield f"{where}: hybrid weights '{key}' are not int8 values times their scales"


def dequantized(model):
    """A copy of `model` with every layer's `hybrid` dropped: the float model of the same weights."""
    import copy
    out = copy.copy(model)
    out.layers = [_without(layer) for layer in model.layers]
    return out


def _without(layer):
    from dataclasses import replace
    return replace(layer, hybrid=None) if getattr(layer, "hybrid", None) is not None else layer


def any_hybrid(model) -> bool:
    return any(getattr(layer, "hybrid", None) is not None for layer in model.layers)


def note(model) -> list[str]:
    """The layers that run as hybrid kernels, for a conversion's note."""
    return [layer.name for layer in model.layers if getattr(layer, "hybrid", None) is not None]
