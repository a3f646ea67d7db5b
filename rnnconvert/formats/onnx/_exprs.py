"""Elementwise expressions after a layer, and which canonical activation they compute.

An expression is a tuple tree over the layer output `X`: `("x",)`, `("c", value)` or
`("op", op_type, attrs, args)`.  One ONNX op maps by name and attributes; a composite
(x*sigmoid(x), 0.5*x*(1+erf(x/sqrt 2)), alpha*tanh(beta*x), ...) is recognised by evaluating it
and comparing with each activation's definition, so the order exporters write it in does not matter.
"""
from __future__ import annotations

import math

import numpy as np

from ...model import Activation

X = ("x",)
_erf = np.vectorize(math.erf)

ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Neg", "Exp", "Log", "Tanh", "Sigmoid", "Relu", "Erf",
               "Sqrt", "Abs", "Pow", "Max", "Min", "Clip", "Softplus", "Softsign", "HardSigmoid",
               "Elu", "Selu", "LeakyRelu", "ThresholdedRelu", "Reciprocal", "HardSwish", "Identity"}
UNARY = ELEMENTWISE - {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Clip"}

_SELU_ALPHA = 1.67326319217681884765625
_SELU_GAMMA = 1.05070102214813232421875


MAX_DEPTH = 16          # a pending expression this deep is settled into activation layers first
MAX_UNKNOWN_DEPTH = 64  # ... or, when it is no activation rnnconvert knows, refused


def depth(e) -> int:
    """Ops on the longest path from `e` to a leaf (iterative: chains of any length)."""
    best, todo = 0, [(e, 0)]
    while todo:
        e, d = todo.pop()
        if e[0] == "op":
            todo.extend((a, d + 1) for a in e[3] if a is not None)
        else:
            best = max(best, d)
    return best


def op(op_type: str, attrs: dict, *args):
    return ("op", op_type, tuple(sorted(attrs.items())), tuple(args))


def evaluate(e, x: np.ndarray) -> np.ndarray:
    kind = e[0]
    if kind == "x":
        return x
    if kind == "c":
        return np.full_like(x, e[1])
    _, t, attrs, args = e
    a = dict(attrs)
    v = [evaluate(arg, x) if arg is not None else None for arg in args]
    with np.errstate(all="ignore"):
        if t == "Add":
            return v[0] + v[1]
        if t == "Sub":
            return v[0] - v[1]
        if t == "Mul":
            return v[0] * v[1]
        if t == "Div":
            return v[0] / v[1]
        if t == "Pow":
            return np.power(v[0], v[1])
        if t == "Max":
            return np.maximum(v[0], v[1])
        if t == "Min":
            return np.minimum(v[0], v[1])
        if t == "Clip":
            lo = v[1] if len(v) > 1 and v[1] is not None else a.get("min", -np.inf)
            hi = v[2] if len(v) > 2 and v[2] is not None else a.get("max", np.inf)
            return np.minimum(np.maximum(v[0], lo), hi)
        y = v[0]
        return {
            "Neg": lambda: -y, "Exp": lambda: np.exp(y), "Log": lambda: np.log(y),
            "Tanh": lambda: np.tanh(y), "Sigmoid": lambda: 1 / (1 + np.exp(-y)),
            "Relu": lambda: np.maximum(y, 0), "Erf": lambda: _erf(y), "Sqrt": lambda: np.sqrt(y),
            "Abs": lambda: np.abs(y), "Reciprocal": lambda: 1 / y, "Identity": lambda: y,
            "Softplus": lambda: np.log1p(np.exp(y)), "Softsign": lambda: y / (1 + np.abs(y)),
            "HardSigmoid": lambda: np.clip(a.get("alpha", 0.2) * y + a.get("beta", 0.5), 0, 1),
            "Elu": lambda: np.where(y > 0, y, a.get("alpha", 1.0) * (np.exp(y) - 1)),
            "Selu": lambda: a.get("gamma", _SELU_GAMMA) * np.where(y > 0, y, a.get("alpha", _SELU_ALPHA) * (np.exp(y) - 1)),
            "LeakyRelu": lambda: np.where(y >= 0, y, a.get("alpha", 0.01) * y),
            "ThresholdedRelu": lambda: np.where(y > a.get("alpha", 1.0), y, 0.0),
            "HardSwish": lambda: y * np.clip(y / 6 + 0.5, 0, 1),
        }[t]()


def identify(e) -> Activation | None:
    """The canonical activation `e` computes, or None."""
    if e == X:
        return Activation("linear")
    direct = _direct(e)
    if direct is not None:
        return direct
    return _fit(e)


def _direct(e) -> Activation | None:
    if e[0] != "op" or not e[3] or e[3][0] != X:
        return None
    _, t, attrs, args = e
    a = dict(attrs)
    if len(args) == 1:
        simple = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu", "Softplus": "softplus",
                  "Softsign": "softsign", "Exp": "exponential", "Identity": "linear"}
        if t in simple:
            return Activation(simple[t])
        if t == "HardSigmoid":
            return Activation("hard_sigmoid", a.get("alpha", 0.2), a.get("beta", 0.5))
        if t == "Elu":
            return Activation("elu", a.get("alpha", 1.0))
        if t == "Selu":
            return Activation("selu", a.get("alpha", _SELU_ALPHA), a.get("gamma", _SELU_GAMMA))
        if t == "LeakyRelu":
            return Activation("leaky_relu", a.get("alpha", 0.01))
        if t == "ThresholdedRelu":
            return Activation("thresholded_relu", a.get("alpha", 1.0))
    return None


_PROBE = np.concatenate([np.linspace(-8.0, 8.0, 641), [-30.0, -20.0, 20.0, 30.0]])


def _close(y, ref) -> bool:
    ok = np.isfinite(ref)
    return bool(np.all(ok == np.isfinite(y))) and bool(np.all(np.abs(y[ok] - ref[ok]) <= 1e-5 * (1 + np.abs(ref[ok]))))


def _fit(e) -> Activation | None:
    x = _PROBE
    try:
        y = evaluate(e, x)
    except (KeyError, IndexError, TypeError):
        return None
    f = lambda v: float(evaluate(e, np.array([v]))[0])  # noqa: E731
    sig = 1 / (1 + np.exp(-x))
    fixed = {
        "linear": x, "sigmoid": sig, "tanh": np.tanh(x), "relu": np.maximum(x, 0),
        "softplus": np.log1p(np.exp(x)), "softsign": x / (1 + np.abs(x)), "exponential": np.exp(x),
        "swish": x * sig, "gelu": 0.5 * x * (1 + _erf(x / math.sqrt(2.0))), "relu6": np.clip(x, 0, 6),
    }
    for name, ref in fixed.items():
        if _close(y, ref):
            return Activation(name)
    with np.errstate(all="ignore"):
        cands = []
        a, b = f(1.0) - f(0.0), f(0.0)
        cands.append(Activation("affine", a, b))
        a = f(30.0)
        if a and abs(f(0.25) / a) < 1:
            cands.append(Activation("scaled_tanh", a, math.atanh(f(0.25) / a) / 0.25))
        cands.append(Activation("hard_sigmoid", (f(0.05) - f(-0.05)) / 0.1, f(0.0)))
        cands.append(Activation("leaky_relu", -f(-1.0)))
        cands.append(Activation("elu", -f(-30.0)))
        g = f(1.0)
        if g:
            cands.append(Activation("selu", -f(-30.0) / g, g))
    for act in cands:
        if _close(y, reference(act, x)):
            return act
    return None


def reference(act: Activation, x: np.ndarray) -> np.ndarray:
    a, b, n = act.alpha, act.beta, act.name
    with np.errstate(all="ignore"):
        if n == "affine":
            return a * x + b
        if n == "scaled_tanh":
            return a * np.tanh(b * x)
        if n == "hard_sigmoid":
            return np.clip(a * x + b, 0, 1)
        if n == "leaky_relu":
            return np.where(x >= 0, x, a * x)
        if n == "elu":
            return np.where(x > 0, x, a * (np.exp(x) - 1))
        if n == "selu":
            return b * np.where(x > 0, x, a * (np.exp(x) - 1))
    raise KeyError(n)


def identify_chain(e) -> list[Activation] | None:
    """Activations applied one after the other that compute `e` (gelu then swish, ...), or None."""
    act = identify(e)
    if act is not None:
        return [act]
    for t in sorted(_subtrees(e), key=_size, reverse=True):
        if t == e or t == X or not _has(t, X):
            continue
        outer = _substitute(e, t, ("t",))
        if _has(outer, X):
            continue                      # the outer part also reads x itself
        outer = _substitute(outer, ("t",), X)
        a, inner = identify(outer), identify_chain(t)
        if a is not None and inner is not None:
            return inner + [a]
    return None


def _subtrees(e):
    yield e
    if e[0] == "op":
        for arg in e[3]:
            if arg is not None:
                yield from _subtrees(arg)


def _size(e) -> int:
    return 1 + (sum(_size(a) for a in e[3] if a is not None) if e[0] == "op" else 0)


def _has(e, leaf) -> bool:
    return e == leaf or (e[0] == "op" and any(a is not None and _has(a, leaf) for a in e[3]))


def _substitute(e, old, new):
    if e == old:
        return new
    if e[0] != "op":
        return e
    return ("op", e[1], e[2], tuple(None if a is None else _substitute(a, old, new) for a in e[3]))
