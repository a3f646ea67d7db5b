"""The `hybrid` setting (`rnnconvert/model/hybrid.py`) of a layer read from an op LiteRT runs as a hybrid
kernel: FULLY_CONNECTED or a sequence LSTM / RNN op whose weights are int8 on a float32 input.  The
weights themselves are already dequantized exactly by `parse`; here each int8 tensor gives its scales (one
per tensor, or one per output channel for FULLY_CONNECTED), expanded to one per row of the canonical array.
An op with some weights int8 and others float, or int8 weights with a non-zero zero point (which the hybrid
kernels ignore), is refused: LiteRT's result on it is not the dequantized model's.
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError


def _scales(t, rows: int, per_channel: bool, where: str) -> np.ndarray:
    if t.scales is None:
        raise UnsupportedError(f"{where}: int8 weights '{t.name}' with a non-zero zero point; LiteRT's hybrid "
                               "kernels multiply the int8 values as they are, rnnconvert reads zero point 0")
    if t.scales.size == 1:
        return np.full(rows, t.scales[0], np.float32)
    if per_channel and t.axis == 0 and t.scales.size == rows:
        return t.scales
    raise UnsupportedError(f"{where}: int8 weights '{t.name}' with {t.scales.size} scales along axis {t.axis}; "
                           "LiteRT's hybrid sequence ops take one scale per tensor")


def _setting(op, scales: dict) -> dict:
    return {"asymmetric_inputs": bool(op.options.get("asymmetric_quantize_inputs", False)),
            "scales": {k: [float(v) for v in s] for k, s in scales.items()}}


def dense(op, tensors, units: int, graph: str, name: str) -> dict | None:
    """FULLY_CONNECTED: its filter [units, in] int8 or not."""
    t = tensors[op.inputs[1]]
    if not t.quantized:
        return None
    return _setting(op, {"kernel": _scales(t, units, True, f"{graph}: {name}: {op.name}")})


def conv(op, tensors, graph: str, name: str) -> dict | None:
    """CONV_2D: a filter [out, 1, W, in] int8 with one scale per output channel runs as LiteRT's per-channel
    hybrid kernel (its input quantized asymmetric); None for a float filter and for one int8 scale (another
    kernel, which rnnconvert does not emulate: the caller reads it as float, under an assumption)."""
    t = tensors[op.inputs[1]]
    if not t.quantized:
        return None
    scales = _scales(t, t.shape[0], True, f"{graph}: {name}: {op.name}")
    if t.scales.size == 1:
        return None
    return {"asymmetric_inputs": True, "scales": {"kernel": [float(v) for v in scales]}}


def recurrent(op, tensors, layer, directions: list, graph: str) -> dict | None:
    """A sequence op: `directions` [(direction name, the op's inputs of that direction as `_direction` takes
    them)] for the directions `layer` holds, in its order."""
    where = f"{graph}: {layer.name}: {op.name}"
    parts, flags = {}, []
    for d, r, w in zip(*zip(*directions), layer.weights):
        H = layer.hidden
        groups = {"W": r[0:4], "R": r[4:8]} if layer.cell == "lstm" else {"W": r[0:1], "R": r[1:2]}
        if layer.cell == "lstm" and w.proj is not None:
            groups["proj"] = [r[15]]
        for key, idx in groups.items():
            rows = w.proj.shape[0] if key == "proj" else H
            ts = [tensors[i] for i in idx]
            flags += [t.quantized for t in ts]
            if all(t.quantized for t in ts):
                parts[f"{d}.{key}"] = np.concatenate([_scales(t, rows, False, where) for t in ts])
    if not any(flags):
        return None
    if not all(flags):
        raise UnsupportedError(f"{where}: some weights int8 and others float32; LiteRT's hybrid kernel takes "
                               "all of them int8")
    return _setting(op, parts)


def merged(a, b, graph: str) -> dict | None:
    """The setting of one bidirectional layer made of two unidirectional ops' layers `a` and `b`."""
    if a.hybrid is None and b.hybrid is None:
        return None
    if a.hybrid is None or b.hybrid is None or a.hybrid["asymmetric_inputs"] != b.hybrid["asymmetric_inputs"]:
        raise UnsupportedError(f"{graph}: {a.name}/{b.name}: the two directions quantize differently (int8 "
                               "hybrid in one only, or asymmetric inputs in one only)")
    return {"asymmetric_inputs": a.hybrid["asymmetric_inputs"], "scales": a.hybrid["scales"] | b.hybrid["scales"]}
