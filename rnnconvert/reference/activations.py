"""The activations of the reference forward pass: `activate(activation, x)`, and `_compile`, which turns
an `Activation` into fn(x, out) writing act(x) to `out` (which may be `x`), plus whether it is elementwise.

Activations (alpha, beta as in ONNX and `model.ACTIVATIONS`): hard_sigmoid clip(alpha*x+beta, 0, 1),
elu x if x > 0 else alpha*(exp(x)-1), selu beta*elu_alpha(x), leaky_relu x if x >= 0 else alpha*x,
thresholded_relu x if x > alpha else 0, affine alpha*x+beta, scaled_tanh alpha*tanh(beta*x),
relu6 min(max(x, 0), 6), softsign x/(1+|x|), softplus log(1+exp(x)), swish x*sigmoid(x),
gelu x*(1+erf(x/sqrt(2)))/2 (the exact form), softmax and log_softmax over the last axis.
fn runs under np.errstate(over="ignore") (set once per call or per time loop): an exp that overflows
to inf gives sigmoid and tanh their exact limits.  An activation it does not know raises UnsupportedError.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import InputError, UnsupportedError
from ..model import ACTIVATIONS, Activation

Fn = Callable[[np.ndarray, np.ndarray], None]


def activate(activation: Activation, x: np.ndarray, layer: str | None = None) -> np.ndarray:
    """`activation` applied to `x` (a new array; softmax and log_softmax over the last axis)."""
    fn, _ = _compile(activation, layer)
    x = np.asarray(x)
    out = np.empty_like(x)
    with np.errstate(over="ignore"):
        fn(x, out)
    return out


def _compile(activation: Activation, layer: str | None) -> tuple[Fn, bool]:
    make = _ACTIVATIONS.get(activation.name)
    if make is None:
        raise UnsupportedError(f"activation '{activation.name}' is not implemented by the reference "
                               "forward pass", layer=layer)
    params = []
    for p in ACTIVATIONS.get(activation.name, ()):
        value = getattr(activation, p)
        if value is None:
            raise InputError(f"activation '{activation.name}' needs {p}, the model gives none", layer=layer)
        params.append(float(value))
    return make(*params), activation.name not in ("softmax", "log_softmax")


def _linear(x, out):
    if out is not x:
        np.copyto(out, x)


def _sigmoid(x, out):
    """1/(1 + exp(-x)): exp overflows to inf below x = -88 (float32) and gives the limit 0 exactly;
    within an ulp of scipy's expit, and faster (the time loops call it every step)."""
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)


def _tanh(x, out):
    """2/(1 + exp(-2x)) - 1 (exp overflowing to inf gives -1 exactly): absolute error a few ulp of 1
    (about 2e-7 in float32, 4e-16 in float64; tiny inputs lose their relative accuracy), and half
    the time of np.tanh."""
    np.multiply(x, -2.0, out=out)
    np.exp(out, out=out)
    out += 1
    np.divide(2.0, out, out=out)
    out -= 1


def _softsign(x, out):
    d = np.abs(x)
    d += 1
    np.divide(x, d, out=out)


def _swish(x, out):
    from scipy.special import expit       # imported here: scipy.special costs a fresh process ~0.15 s
    np.multiply(x, expit(x), out=out)


def _gelu(x, out):
    from scipy.special import erf
    e = erf(x * np.sqrt(0.5))
    e += 1
    e *= 0.5
    np.multiply(x, e, out=out)


def _softmax(x, out):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    np.copyto(out, e)


def _log_softmax(x, out):
    s = x - x.max(axis=-1, keepdims=True)
    s -= np.log(np.exp(s).sum(axis=-1, keepdims=True))
    np.copyto(out, s)


def _hard_sigmoid(alpha, beta):
    def fn(x, out):
        np.multiply(x, alpha, out=out)
        out += beta
        np.clip(out, 0.0, 1.0, out=out)
    return fn


def _elu(alpha, scale=1.0):
    def fn(x, out):
        negative = x < 0
        e = np.expm1(np.minimum(x, 0))
        e *= alpha
        np.copyto(out, x)
        np.copyto(out, e, where=negative)
        if scale != 1.0:
            out *= scale
    return fn


def _leaky_relu(alpha):
    def fn(x, out):
        negative = x < 0
        scaled = x * alpha
        np.copyto(out, x)
        np.copyto(out, scaled, where=negative)
    return fn


def _thresholded_relu(alpha):
    def fn(x, out):
        below = ~(x > alpha)
        np.copyto(out, x)
        out[below] = 0
    return fn


def _affine(alpha, beta):
    def fn(x, out):
        np.multiply(x, alpha, out=out)
        out += beta
    return fn


def _scaled_tanh(alpha, beta):
    def fn(x, out):
        np.multiply(x, beta, out=out)
        np.tanh(out, out=out)
        out *= alpha
    return fn


_ACTIVATIONS: dict[str, Callable[..., Fn]] = {
    "linear": lambda: _linear,
    "sigmoid": lambda: _sigmoid,
    "tanh": lambda: _tanh,
    "relu": lambda: lambda x, out: np.maximum(x, 0, out=out),
    "softsign": lambda: _softsign,
    "softplus": lambda: lambda x, out: np.logaddexp(0, x, out=out),
    "exponential": lambda: lambda x, out: np.exp(x, out=out),
    "swish": lambda: _swish,
    "gelu": lambda: _gelu,
    "softmax": lambda: _softmax,
    "log_softmax": lambda: _log_softmax,
    "hard_sigmoid": _hard_sigmoid,
    "elu": _elu,
    "selu": lambda alpha, beta: _elu(alpha, scale=beta),
    "leaky_relu": _leaky_relu,
    "thresholded_relu": _thresholded_relu,
    "affine": _affine,
    "scaled_tanh": _scaled_tanh,
    "relu6": lambda: lambda x, out: np.clip(x, 0, 6, out=out),
}
