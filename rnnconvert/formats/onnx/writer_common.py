"""What the ONNX writer's modules share (`writer.py` for the stack, `writer_recurrent.py` for the
recurrent nodes): an activation written as standalone ONNX nodes (`_activation`), and the base name of
a layer's nodes (`_base`: the layer's own name, or its kind and index).
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import UnsupportedError
from .initializers import Builder as _Builder


def _activation(b: _Builder, act, x: str, base: str) -> str:
    n = act.name
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softplus": "Softplus",
              "softsign": "Softsign", "exponential": "Exp"}
    f32 = lambda name, v: b.const(f"{base}/{name}", np.float32(v))  # noqa: E731
    if n == "linear":
        return x
    if n in simple:
        return b.op(simple[n], [x], f"{base}/{simple[n]}")
    if n in ("softmax", "log_softmax"):
        op = "Softmax" if n == "softmax" else "LogSoftmax"
        return b.op(op, [x], f"{base}/{op}", axis=-1)
    if n == "hard_sigmoid":
        return b.op("HardSigmoid", [x], f"{base}/HardSigmoid", alpha=float(act.alpha), beta=float(act.beta))
    if n == "elu":
        return b.op("Elu", [x], f"{base}/Elu", alpha=float(act.alpha))
    if n == "selu":
        return b.op("Selu", [x], f"{base}/Selu", alpha=float(act.alpha), gamma=float(act.beta))
    if n == "leaky_relu":
        return b.op("LeakyRelu", [x], f"{base}/LeakyRelu", alpha=float(act.alpha))
    if n == "thresholded_relu":
        return b.op("ThresholdedRelu", [x], f"{base}/ThresholdedRelu", alpha=float(act.alpha))
    if n == "relu6":
        return b.op("Clip", [x, f32("zero", 0.0), f32("six", 6.0)], f"{base}/Relu6")
    if n == "affine":
        y = b.op("Mul", [x, f32("alpha", act.alpha)], f"{base}/affine_scale")
        return b.op("Add", [y, f32("beta", act.beta)], f"{base}/affine_shift")
    if n == "scaled_tanh":
        y = b.op("Mul", [x, f32("beta", act.beta)], f"{base}/scaled_tanh_in")
        y = b.op("Tanh", [y], f"{base}/Tanh")
        return b.op("Mul", [y, f32("alpha", act.alpha)], f"{base}/scaled_tanh_out")
    if n == "swish":
        return b.op("Mul", [x, b.op("Sigmoid", [x], f"{base}/Sigmoid")], f"{base}/swish")
    if n == "gelu":   # exact form: 0.5 * x * (1 + erf(x / sqrt(2)))
        e = b.op("Erf", [b.op("Div", [x, f32("sqrt2", math.sqrt(2.0))], f"{base}/gelu_scale")], f"{base}/Erf")
        e = b.op("Add", [e, f32("one", 1.0)], f"{base}/gelu_add")
        return b.op("Mul", [b.op("Mul", [x, f32("half", 0.5)], f"{base}/gelu_half"), e], f"{base}/gelu")
    raise UnsupportedError(f"the ONNX writer cannot express the activation '{n}'")


def _base(name: str, k: int, kind: str) -> str:
    return _safe(name) or f"{kind}_{k}"


def _safe(name) -> str:
    return str(name or "").strip()
