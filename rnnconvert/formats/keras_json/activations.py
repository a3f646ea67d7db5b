"""Keras activation names (strings, or Keras 3 dicts) -> `model.Activation`.

hard_sigmoid changed meaning in Keras 3: clip(0.2x + 0.5) in Keras 1/2 and tf.keras 2.x,
clip(x/6 + 0.5) in Keras 3, so the file's keras_version decides.
"""
from __future__ import annotations

from ... import model as M
from ...errors import UnsupportedError
from .graph import snake_case

_SIMPLE = {
    "linear": M.LINEAR, "sigmoid": M.SIGMOID, "tanh": M.TANH, "relu": M.RELU,
    "softmax": M.Activation("softmax"), "log_softmax": M.Activation("log_softmax"),
    "softplus": M.Activation("softplus"), "softsign": M.Activation("softsign"),
    "exponential": M.Activation("exponential"), "swish": M.Activation("swish"),
    "silu": M.Activation("swish"), "gelu": M.Activation("gelu"), "relu6": M.Activation("relu6"),
    "selu": M.SELU, "elu": M.Activation("elu", 1.0),
    "leaky_relu": M.Activation("leaky_relu", 0.2),     # keras.activations.leaky_relu (Keras 3)
}
KNOWN = sorted(set(_SIMPLE) | {"hard_sigmoid"})


def activation(spec, keras_major: int, *, path=None, layer=None, what="activation") -> M.Activation:
    """A layer's `activation` / `recurrent_activation` value as a canonical activation."""
    if isinstance(spec, dict):
        return _from_dict(spec, keras_major, path=path, layer=layer, what=what)
    name = "linear" if spec in (None, "") else str(spec).rsplit(".", 1)[-1]
    if name == "hard_sigmoid":
        return M.HARD_SIGMOID_KERAS3 if keras_major >= 3 else M.HARD_SIGMOID_KERAS2
    if name in _SIMPLE:
        return _SIMPLE[name]
    raise UnsupportedError(f"{what} '{name}' is not supported; supported: {', '.join(KNOWN)}",
                           path=path, layer=layer)


def _from_dict(spec: dict, keras_major: int, *, path, layer, what) -> M.Activation:
    cls, cfg = spec.get("class_name"), spec.get("config")
    if isinstance(cfg, str):            # {"class_name": "function", "config": "tanh", ...}
        return activation(cfg, keras_major, path=path, layer=layer, what=what)
    cfg = cfg if isinstance(cfg, dict) else {}
    act = layer_activation(str(cls), cfg)
    if act is not None:
        return act
    if isinstance(cfg.get("name"), str) and cls in (None, "function"):
        return activation(cfg["name"], keras_major, path=path, layer=layer, what=what)
    return activation(snake_case(str(cls)), keras_major, path=path, layer=layer, what=what)


def layer_activation(cls: str, cfg: dict) -> M.Activation | None:
    """Activation layers (ReLU, LeakyReLU, ELU, Softmax) used as layers or as an activation
    argument; None when the class is not one of them or its settings have no canonical form."""
    if cls == "ReLU":
        neg = float(cfg.get("negative_slope") or 0.0)
        top, thr = cfg.get("max_value"), float(cfg.get("threshold") or 0.0)
        if thr != 0.0:
            return None
        if neg == 0.0 and top is None:
            return M.RELU
        if neg == 0.0 and float(top) == 6.0:
            return M.Activation("relu6")
        if top is None:
            return M.Activation("leaky_relu", neg)
        return None
    if cls == "LeakyReLU":
        return M.Activation("leaky_relu", float(cfg.get("negative_slope", cfg.get("alpha", 0.3))))
    if cls == "ELU":
        return M.Activation("elu", float(cfg.get("alpha", 1.0)))
    if cls == "Softmax":
        return M.Activation("softmax") if cfg.get("axis", -1) in (-1, [-1]) else None
    return None
