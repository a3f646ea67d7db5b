"""Activation names shared by the ONNX reader and writer.

Inside an LSTM/GRU/RNN node ONNX knows a fixed list of functions by name; `activation_alpha` and
`activation_beta` are consumed in order, each only by the functions that take that parameter
(onnxruntime's reading, checked against it: HardSigmoid(0.2, 0.5) then LeakyRelu(0.1) is
`alpha=[0.2, 0.1], beta=[0.5]`).
"""
from __future__ import annotations

from ...model import Activation

# canonical name -> ONNX name inside a recurrent node ("linear" is written as Affine(1, 0))
TO_ONNX = {
    "sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "hard_sigmoid": "HardSigmoid",
    "affine": "Affine", "leaky_relu": "LeakyRelu", "thresholded_relu": "ThresholdedRelu",
    "scaled_tanh": "ScaledTanh", "elu": "Elu", "softsign": "Softsign", "softplus": "Softplus",
    "linear": "Affine",
}
FROM_ONNX = {v.lower(): k for k, v in TO_ONNX.items() if k != "linear"}

TAKES_ALPHA = {"Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh", "HardSigmoid", "Elu"}
TAKES_BETA = {"Affine", "ScaledTanh", "HardSigmoid"}
# onnxruntime's defaults when a node gives fewer alpha/beta values than its functions take
DEFAULTS = {"HardSigmoid": (0.2, 0.5), "LeakyRelu": (0.01, None), "ThresholdedRelu": (1.0, None),
            "Elu": (1.0, None), "Affine": (1.0, 0.0), "ScaledTanh": (1.0, 1.0)}

DEFAULT_ACTS = {"lstm": ["Sigmoid", "Tanh", "Tanh"], "gru": ["Sigmoid", "Tanh"], "rnn": ["Tanh"]}


def to_onnx(acts: list[Activation]) -> tuple[list[str], list[float], list[float]]:
    """Canonical activations -> (names, alphas, betas); KeyError for a name ONNX cannot use."""
    names, alphas, betas = [], [], []
    for a in acts:
        name = TO_ONNX[a.name]
        names.append(name)
        if a.name == "linear":
            alphas.append(1.0)
            betas.append(0.0)
            continue
        if name in TAKES_ALPHA:
            alphas.append(float(a.alpha if a.alpha is not None else DEFAULTS[name][0]))
        if name in TAKES_BETA:
            betas.append(float(a.beta if a.beta is not None else DEFAULTS[name][1]))
    return names, alphas, betas


def from_onnx(names: list[str], alphas: list[float], betas: list[float]) -> list[Activation]:
    """(names, alphas, betas) of a node -> canonical activations; KeyError for an unknown name."""
    out = []
    ia = ib = 0
    for raw in names:
        key = raw.lower()
        canon = FROM_ONNX[key]
        onnx_name = TO_ONNX[canon]
        alpha = beta = None
        if onnx_name in TAKES_ALPHA:
            alpha = alphas[ia] if ia < len(alphas) else DEFAULTS[onnx_name][0]
            ia += 1
        if onnx_name in TAKES_BETA:
            beta = betas[ib] if ib < len(betas) else DEFAULTS[onnx_name][1]
            ib += 1
        if canon == "affine" and alpha == 1.0 and beta == 0.0:
            out.append(Activation("linear"))
        elif alpha is None and beta is None:
            out.append(Activation(canon))
        else:
            out.append(Activation(canon, None if alpha is None else float(alpha),
                                  None if beta is None else float(beta)))
    return out


def node_attributes(layer, directions: int) -> dict:
    """A native LSTM/GRU/RNN node's attributes for the canonical `layer` (model.Recurrent) over `directions`:
    hidden_size, direction, the activations with their alphas and betas, clip, GRU's linear_before_reset."""
    names, alphas, betas = to_onnx(layer.activations)
    attrs = {"hidden_size": layer.hidden, "direction": layer.direction, "activations": names * directions}
    if alphas:
        attrs["activation_alpha"] = alphas * directions
    if betas:
        attrs["activation_beta"] = betas * directions
    if layer.clip is not None:
        attrs["clip"] = float(layer.clip)
    if layer.cell == "gru":
        attrs["linear_before_reset"] = int(bool(layer.reset_after))
    return attrs
