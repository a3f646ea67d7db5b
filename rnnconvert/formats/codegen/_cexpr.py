"""Activations as C and JavaScript source: one elementwise expression per name, softmax over a block.

The formulas are the reference pass's (`rnnconvert.reference.network`): sigmoid floors its input at -80,
softplus is log1p(exp(-|x|)) + max(x, 0), gelu the exact erf form, selu beta * elu_alpha(x).
C computes tanh and sigmoid with `c_kernels`' rational tanh (absolute error under 4e-7, as onnxruntime's),
so that loops over them vectorize; JavaScript with Math.tanh and Math.exp.
"""
from __future__ import annotations

from ...errors import UnsupportedError
from ...model import Activation


def _num(v, lang) -> str:
    s = repr(float(v))
    return s + "f" if lang == "c" and ("." in s or "e" in s) else s


def expr(act: Activation, v: str, lang: str) -> str:
    """The activation of scalar `v` as an expression in `lang` ('c' or 'js')."""
    a = None if act.alpha is None else _num(act.alpha, lang)
    b = None if act.beta is None else _num(act.beta, lang)
    m = (lambda f: f"{f}f") if lang == "c" else (lambda f: f"Math.{f}")
    fabs = "fabsf" if lang == "c" else "Math.abs"
    one, zero = ("1.0f", "0.0f") if lang == "c" else ("1.0", "0.0")
    n = act.name
    if n == "linear":
        return v
    if n == "sigmoid":
        return f"sigmoid_({v})"
    tanh = "tanh_" if lang == "c" else "Math.tanh"   # C: c_kernels' rational tanh, which vectorizes
    if n == "tanh":
        return f"{tanh}({v})"
    if n == "relu":
        return f"({v} > {zero} ? {v} : {zero})"
    if n == "softsign":
        return f"({v} / ({one} + {fabs}({v})))"
    if n == "softplus":
        return f"({m('log1p')}({m('exp')}(-{fabs}({v}))) + ({v} > {zero} ? {v} : {zero}))"
    if n == "exponential":
        return f"{m('exp')}({v})"
    if n == "swish":
        return f"({v} * sigmoid_({v}))"
    if n == "gelu":
        half = "0.5f" if lang == "c" else "0.5"
        r2 = _num(0.7071067811865476, lang)
        erf = "erff" if lang == "c" else "erf_"
        return f"({half} * {v} * ({one} + {erf}({v} * {r2})))"
    if n == "hard_sigmoid":
        return f"clamp01_({a} * {v} + {b})"
    if n == "elu":
        return f"({v} < {zero} ? {a} * {m('expm1')}({v}) : {v})"
    if n == "selu":
        return f"({b} * ({v} < {zero} ? {a} * {m('expm1')}({v}) : {v}))"
    if n == "leaky_relu":
        return f"({v} < {zero} ? {a} * {v} : {v})"
    if n == "thresholded_relu":
        return f"({v} > {a} ? {v} : {zero})"
    if n == "affine":
        return f"({a} * {v} + {b})"
    if n == "scaled_tanh":
        return f"({a} * {tanh}({b} * {v}))"
    if n == "relu6":
        six = "6.0f" if lang == "c" else "6.0"
        return f"({v} < {zero} ? {zero} : ({v} > {six} ? {six} : {v}))"
    raise UnsupportedError(f"code generation cannot express the activation '{n}'")


def helpers_needed(acts) -> set[str]:
    need = set()
    for act in acts:
        if act.name in ("sigmoid", "swish"):
            need.add("sigmoid")
        if act.name in ("tanh", "scaled_tanh"):
            need.add("tanh")
        if act.name == "hard_sigmoid":
            need.add("clamp01")
        if act.name == "gelu":
            need.add("erf")
    return need
