"""The --emit-module generator: a standalone PyTorch file whose `Model` runs the written state dict.

The file imports only torch (safetensors only inside `load()`, for a .safetensors file).  `Model()`
takes `load_state_dict(..., strict=True)` of the written file; `forward(x)` takes the model's input
layout and returns what the source model's predict returns.  Everything the state dict cannot say
(head, merges, reverse-only layers, activations) is a line of `forward`.
"""
from __future__ import annotations

import os
import re

from ...version import __version__
from ..literals import comment, py_str
from ...model import SELU_ALPHA, SELU_GAMMA, Activation
from . import module_front
from .statedict import MODULE_SPECS, TORCH_CLASS, ActivationSpec, DropoutSpec, EmbeddingSpec, LinearSpec, RNNSpec

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _f(v) -> str:
    return repr(float(v))


def activation_code(a: Activation, x: str = "x") -> str | None:
    """Python expression applying `a` to `x` with torch, or None for linear."""
    n, al, be = a.name, a.alpha, a.beta
    table = {
        "linear": None, "sigmoid": f"torch.sigmoid({x})", "tanh": f"torch.tanh({x})",
        "relu": f"torch.relu({x})", "softsign": f"F.softsign({x})", "softplus": f"F.softplus({x})",
        "exponential": f"torch.exp({x})", "swish": f"F.silu({x})", "gelu": f"F.gelu({x})",
        "softmax": f"torch.softmax({x}, dim=-1)", "log_softmax": f"torch.log_softmax({x}, dim=-1)",
        "relu6": f"F.relu6({x})",
    }
    if n in table:
        return table[n]
    if n == "hard_sigmoid":
        return f"torch.clamp({x} * {_f(al)} + {_f(be)}, 0.0, 1.0)"
    if n == "elu":
        return f"F.elu({x}, alpha={_f(al)})"
    if n == "selu":
        if al == SELU_ALPHA and be == SELU_GAMMA:
            return f"F.selu({x})"
        return f"{_f(be)} * F.elu({x}, alpha={_f(al)})"
    if n == "leaky_relu":
        return f"F.leaky_relu({x}, {_f(al)})"
    if n == "thresholded_relu":
        return f"torch.where({x} > {_f(al)}, {x}, torch.zeros_like({x}))"
    if n == "affine":
        return f"{x} * {_f(al)} + {_f(be)}"
    if n == "scaled_tanh":
        return f"{_f(al)} * torch.tanh({x} * {_f(be)})"
    raise ValueError(f"activation '{n}' has no torch expression")


def _access(path: str) -> str:
    segments = path.split(".")
    if all(_IDENT.match(s) for s in segments):
        return "self." + path
    return f"self.get_submodule({py_str(path)})"


def _constructor(spec) -> str:
    if isinstance(spec, LinearSpec):
        return f"nn.Linear({spec.input_size}, {spec.units_out}, bias={spec.bias is not None})"
    front = module_front.constructor(spec)
    if front is not None:
        return front
    args = [str(spec.input_size), str(spec.hidden)]
    if spec.num_layers != 1:
        args.append(f"num_layers={spec.num_layers}")
    if spec.cell == "rnn":
        args.append(f"nonlinearity={spec.nonlinearity!r}")
    if not spec.bias:
        args.append("bias=False")
    args.append(f"batch_first={spec.batch_first}")
    if spec.bidirectional:
        args.append("bidirectional=True")
    if spec.proj_size:
        args.append(f"proj_size={spec.proj_size}")
    return f"nn.{TORCH_CLASS[spec.cell]}({', '.join(args)})"


def _init_lines(specs) -> list[str]:
    lines, containers = [], set()
    for spec in specs:
        if not isinstance(spec, MODULE_SPECS):
            continue
        *parents, leaf = spec.path.split(".")
        for k in range(len(parents)):
            container = ".".join(parents[:k + 1])
            if container not in containers:
                containers.add(container)
                lines.append(_assign(container, "nn.Module()"))
        lines.append(_assign(spec.path, _constructor(spec)))
        if isinstance(spec, RNNSpec):
            for name in ("h0", "c0"):
                state = getattr(spec, name)
                if state is not None:
                    shape = ", ".join(str(d) for d in state.shape)
                    lines.append(f"{_access(spec.path)}.register_buffer({name!r}, torch.zeros({shape}))")
    return lines


def _assign(path: str, value: str) -> str:
    *parents, leaf = path.split(".")
    owner = _access(".".join(parents)) if parents else "self"
    if _IDENT.match(leaf) and (not parents or owner.startswith("self.") and "(" not in owner):
        return f"{owner}.{leaf} = {value}"
    return f"{owner}.add_module({py_str(leaf)}, {value})"


def _merge(merge: str, a: str, b: str) -> str:
    return {"concat": f"torch.cat([{a}, {b}], dim=-1)", "sum": f"{a} + {b}", "mul": f"{a} * {b}",
            "ave": f"({a} + {b}) / 2"}[merge]


def _rnn_forward(spec: RNNSpec, batch_first: bool) -> list[str]:
    T, B = (1, 0) if batch_first else (0, 1)
    step = (lambda i: f"x[:, {i}]") if batch_first else (lambda i: f"x[{i}]")
    mod = _access(spec.path)
    names = ", ".join(f"'{comment(n)}'" for n in spec.layer_names) or f"'{comment(spec.path)}'"
    output = "h_n[-1], the backward direction's final state" if spec.output == "backward_final_state" \
        else spec.output
    lines = [f"# {names}: nn.{TORCH_CLASS[spec.cell]}" + (" run backwards" if spec.reverse_only else "")
             + f"; output {output}"]
    if spec.reverse_only:
        lines.append(f"x = x.flip({T})")
    call = f"{mod}(x)"
    if spec.h0 is not None:
        def state(name):
            s = f"{mod}.{name}"
            if getattr(spec, name).shape[1] == 1:
                s += f".expand(-1, x.shape[{B}], -1).contiguous()"
            return s
        hx = f"({state('h0')}, {state('c0')})" if spec.cell == "lstm" else state("h0")
        lines.append(f"hx = {hx}")
        call = f"{mod}(x, hx)"
    needs_state = spec.output in ("final_state", "backward_final_state")
    if needs_state:
        lines.append(f"x, state = {call}")
        lines.append("h_n = state[0]" if spec.cell == "lstm" else "h_n = state")
    else:
        lines.append(f"x, _ = {call}")
    S = spec.state_size
    two = spec.bidirectional
    if spec.output == "sequence":
        if spec.reverse_only and spec.time_order == "input":
            lines.append(f"x = x.flip({T})  # back to input order")
        if two and spec.merge != "concat":
            lines.append(f"x = {_merge(spec.merge, f'x[..., :{S}]', f'x[..., {S}:]')}")
    elif spec.output == "last_step":
        if spec.reverse_only and spec.time_order == "input":
            lines.append(f"x = {step(0)}  # at the last input step: after one step")
        else:
            lines.append(f"x = {step(-1)}")
        if two and spec.merge != "concat":
            lines.append(f"x = {_merge(spec.merge, f'x[..., :{S}]', f'x[..., {S}:]')}")
    elif spec.output == "final_state":
        lines.append(f"x = {_merge(spec.merge, 'h_n[-2]', 'h_n[-1]')}" if two else "x = h_n[-1]")
    else:  # backward_final_state
        lines.append("x = h_n[-1]")
    return lines


def forward_lines(specs, batch_first: bool) -> list[str]:
    lines, seq = [], True
    for spec in specs:
        if isinstance(spec, RNNSpec):
            lines += _rnn_forward(spec, batch_first)
            seq = spec.output == "sequence"
        elif isinstance(spec, LinearSpec):
            lines.append(f"x = {_access(spec.path)}(x)")
            if spec.activation is not None:
                expr = activation_code(spec.activation)
                if expr:
                    lines.append(f"x = {expr}")
        elif isinstance(spec, ActivationSpec):
            expr = activation_code(spec.activation)
            lines.append(f"x = {expr}" if expr else f"# activation '{comment(spec.name)}': linear")
        elif isinstance(spec, DropoutSpec):
            lines.append(f"# {comment(spec.variant)} '{comment(spec.name)}' (rate {float(spec.rate):g}): the identity at inference")
        else:
            front, seq = module_front.forward_lines(spec, _access, batch_first, seq, activation_code)
            lines += front
    return lines


def generate(specs, model, weights=None) -> str:
    """Source of a module file for `specs` (from writer.from_canonical(model))."""
    batch_first = model.input.layout != "time_batch_feature"
    for spec in specs:
        if isinstance(spec, RNNSpec):
            spec.batch_first = batch_first     # every module reads the model's one input layout
    layout = "[batch, time, features]" if batch_first else "[time, batch, features]"
    what = f"{layout} with {model.input.features} features, float32"
    if specs and isinstance(specs[0], EmbeddingSpec):
        what = ("token ids [batch, time]" if batch_first else "token ids [time, batch]") + " (integers)"
    weights_name = os.path.basename(str(weights)) if weights else "model.pt"
    init = "\n".join("        " + line for line in _init_lines(specs))
    forward = "\n".join("        " + line for line in forward_lines(specs, batch_first))
    return f'''"""PyTorch module generated by rnnconvert {__version__} for model '{comment(model.name)}'.

Input x: {what}.
Weights: {comment(weights_name)}, loaded with load_state_dict(strict=True):

    model = load({comment(py_str(weights_name))})
    y = model(torch.from_numpy(x))
"""
import torch
from torch import nn
import torch.nn.functional as F


class Model(nn.Module):
    def __init__(self):
        super().__init__()
{init}

    def forward(self, x):
{forward}
        return x


def load(path):
    """A Model holding the weights of `path` (.pt/.pth, or .safetensors with the safetensors package), in eval mode."""
    model = Model()
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
'''
