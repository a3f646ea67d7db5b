"""What the Keras writer's planners share (`plan.py` for the recurrent stack, `frontend_writer.py` for
the front-end layers): `KLayer`, one Keras layer to write as a flavour-neutral spec; `Refusal`, a
feature Keras cannot express; and which Keras activation, function or layer, computes a canonical one
exactly in Keras 2 or 3 (hard_sigmoid's slope differs between them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ... import model as M

HARD_SIGMOID_SLOPE = {2: 0.2, 3: 1.0 / 6.0}
_HS_TEXT = {2: "clip(0.2x+0.5, 0, 1)", 3: "clip(x/6+0.5, 0, 1)"}
_PLAIN = ("linear", "sigmoid", "tanh", "relu", "softsign", "softplus", "exponential", "swish", "gelu",
          "relu6", "softmax", "log_softmax")


@dataclass
class KLayer:
    """One Keras layer to write: class, settings of its config, weights in Keras's order."""
    cls: str                         # LSTM GRU SimpleRNN Bidirectional Dense Activation LeakyReLU ELU + frontend_writer
    name: str
    settings: dict
    input_shape: list
    weights: list = field(default_factory=list)     # arrays, or functions making them (recurrent kernels)
    wrapped: str | None = None       # Bidirectional: the recurrent class it wraps


class Refusal(Exception):
    """A feature of one layer that Keras cannot express (collected, then raised together)."""


def close(a, b) -> bool:
    return a is not None and math.isclose(float(a), b, rel_tol=1e-6, abs_tol=1e-9)


def keras_activation(act: M.Activation, major: int) -> str | None:
    """The Keras activation name computing `act` exactly in Keras `major`, or None."""
    n = act.name
    if n in _PLAIN:
        return n
    if n == "hard_sigmoid" and close(act.alpha, HARD_SIGMOID_SLOPE[major]) and close(act.beta, 0.5):
        return n
    if n == "selu" and close(act.alpha, M.SELU_ALPHA) and close(act.beta, M.SELU_GAMMA):
        return n
    if n == "elu" and close(act.alpha, 1.0):
        return n
    if n == "leaky_relu" and major >= 3 and close(act.alpha, 0.2):
        return n
    return None


def describe_missing(act: M.Activation, major: int, role: str) -> str:
    if act.name == "hard_sigmoid":
        what = ("tf.keras 2's hard_sigmoid " if close(act.alpha, 0.2) and close(act.beta, 0.5)
                else "Keras 3's hard_sigmoid " if close(act.alpha, 1 / 6) and close(act.beta, 0.5) else "")
        return (f"{role} {what}{act} = clip({act.alpha:.6g}x+{act.beta:.6g}, 0, 1) has no Keras {major} "
                f"activation (Keras {major}'s hard_sigmoid is {_HS_TEXT[major]})")
    return f"{role} {act} has no Keras {major} activation"


def _activation_layer(act: M.Activation, major: int) -> str | None:
    """A Keras activation LAYER computing `act` where no activation function name does."""
    if act.name == "leaky_relu" and act.alpha is not None:
        return "LeakyReLU"
    if act.name == "elu" and act.alpha is not None:
        return "ELU"
    return None
