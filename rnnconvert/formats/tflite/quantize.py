"""Dynamic-range quantization (`quantize="dynamic"`): a weight stored as int8 with one float32 scale for the
whole tensor (symmetric, zero point 0, q = round(w / scale) in [-127, 127], scale = max|w| / 127), and
float activations: LiteRT's hybrid kernels (FULLY_CONNECTED, the sequence ops) quantize their inputs on the
fly (asymmetric_quantize_inputs).  The reader dequantizes as TFLite defines it, float32(q) * scale, exactly.
Weights inside a WHILE body stay float32.
"""
from __future__ import annotations

import numpy as np

from .emit import Emitter


def int8(array) -> tuple[np.ndarray, float]:
    a = np.asarray(array, np.float32)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    scale = peak / 127.0 if peak > 0 else 1.0
    q = np.clip(np.round(a / np.float32(scale)), -127, 127).astype(np.int8)
    return q, scale


def int8_weight(e: Emitter, name: str, array) -> int:
    q, scale = int8(array)
    return e.g.const(name, q, quant={"scale": [scale], "zero_point": [0], "axis": 0})
