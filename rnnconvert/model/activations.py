"""Activation functions as the canonical model names them, with the constants that differ between
frameworks (hard_sigmoid is 0.2x+0.5 in Keras 2, MATLAB and ONNX, x/6+0.5 in Keras 3; SELU's alpha, gamma).

`ACTIVATIONS` lists every name and the parameters it takes, alpha and beta meaning what they mean in ONNX;
the reference pass (`reference/activations.py`) states each one's formula.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError


# Activation names and the parameters each one takes (alpha, beta meaning as in ONNX).
ACTIVATIONS = {
    "linear": (), "sigmoid": (), "tanh": (), "relu": (), "softsign": (), "softplus": (),
    "exponential": (), "swish": (), "gelu": (), "softmax": (), "log_softmax": (),
    "hard_sigmoid": ("alpha", "beta"),     # clip(alpha*x + beta, 0, 1)
    "elu": ("alpha",),                     # x if x > 0 else alpha*(exp(x)-1)
    "selu": ("alpha", "beta"),             # beta * (x if x > 0 else alpha*(exp(x)-1)); beta = gamma
    "leaky_relu": ("alpha",),
    "thresholded_relu": ("alpha",),
    "affine": ("alpha", "beta"),           # alpha*x + beta
    "scaled_tanh": ("alpha", "beta"),      # alpha*tanh(beta*x)
    "relu6": (),
}

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_GAMMA = 1.0507009873554804934193349852946


@dataclass(frozen=True)
class Activation:
    name: str
    alpha: float | None = None
    beta: float | None = None

    def __post_init__(self):
        if self.name not in ACTIVATIONS:
            raise InputError(f"unknown activation '{self.name}'; known: {', '.join(sorted(ACTIVATIONS))}")

    def __str__(self):
        params = [f"{k}={getattr(self, k):.6g}" for k in ACTIVATIONS[self.name]]
        return f"{self.name}({', '.join(params)})" if params else self.name

    def to_dict(self) -> dict:
        d = {"name": self.name}
        for k in ACTIVATIONS[self.name]:
            d[k] = getattr(self, k)
        return d


LINEAR = Activation("linear")
SIGMOID = Activation("sigmoid")
TANH = Activation("tanh")
RELU = Activation("relu")
HARD_SIGMOID_KERAS2 = Activation("hard_sigmoid", 0.2, 0.5)   # Keras 1/2, tf.keras 2.x, MATLAB, ONNX default
HARD_SIGMOID_KERAS3 = Activation("hard_sigmoid", 1.0 / 6.0, 0.5)
SELU = Activation("selu", SELU_ALPHA, SELU_GAMMA)
