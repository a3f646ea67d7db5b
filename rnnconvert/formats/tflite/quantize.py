"""Int8 weights: dynamic-range quantization (`quantize="dynamic"`: a weight stored as int8 with one float32
scale for the whole tensor, symmetric, zero point 0, q = round(w / scale) in [-127, 127], scale = max|w| / 127),
or a layer's own `hybrid` setting (`rnnconvert/model/hybrid.py`, e.g. read from a TensorFlow-quantized file),
kept as it is: its scales and its asymmetric_quantize_inputs.  Activations stay float: LiteRT's hybrid kernels
(FULLY_CONNECTED, the sequence ops) quantize their inputs on the fly.  The reader dequantizes as TFLite defines
it, float32(q) * scale, exactly.  A WHILE loop's products take int8 weights too (`loop.py`), except under a
mask or a clip, whose hybrid arithmetic the reference pass does not compute: those stay float32.
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from .emit import Emitter

FRESH = {"asymmetric_inputs": True, "scales": None}


def plan(layer, quantize) -> dict | None:
    """How `layer`'s weights are written: its hybrid setting, FRESH scales (quantize 'dynamic'), or None
    (float32)."""
    if getattr(layer, "hybrid", None) is not None:
        return layer.hybrid
    return FRESH if quantize == "dynamic" else None


def asymmetric(hybrid: dict | None) -> bool:
    return bool(hybrid and hybrid["asymmetric_inputs"])


def int8(array) -> tuple[np.ndarray, float]:
    a = np.asarray(array, np.float32)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    scale = peak / 127.0 if peak > 0 else 1.0
    q = np.clip(np.round(a / np.float32(scale)), -127, 127).astype(np.int8)
    return q, scale


def int8_weight(e: Emitter, name: str, array) -> int:
    q, scale = int8(array)
    return e.g.const(name, q, quant={"scale": [scale], "zero_point": [0], "axis": 0})


def weight(e: Emitter, name: str, array, hybrid: dict | None, key: str = "", rows=slice(None),
           per_channel: bool = False) -> int:
    """`array` [rows, cols] as a constant: float32, fresh int8, or int8 on the scales `hybrid` gives rows of
    array `key` (one per tensor; one per row where `per_channel`, FULLY_CONNECTED's filter)."""
    if hybrid is None:
        return e.const(name, np.asarray(array, np.float32))
    if hybrid["scales"] is None:
        return int8_weight(e, name, array)
    s = np.asarray(hybrid["scales"][key], np.float32)[rows]
    if not per_channel and np.any(s != s[0]):
        raise UnsupportedError(f"'{name}': int8 scales that differ within one tensor; a TFLite sequence op takes "
                               "one scale per weight tensor")
    a = np.asarray(array, np.float64)
    q = np.rint(a.reshape(a.shape[0], -1) / s[:, None].astype(np.float64)).astype(np.int8).reshape(a.shape)
    scales = [float(s[0])] if np.all(s == s[0]) else [float(v) for v in s]
    return e.g.const(name, q, quant={"scale": scales, "zero_point": [0] * len(scales), "axis": 0})
