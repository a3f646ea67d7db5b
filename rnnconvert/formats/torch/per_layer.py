"""PyTorch recurrent modules as per-layer conversion candidates when the whole state dict does not
read as a model (`rnnconvert.formats.per_layer`): every nn.LSTM/GRU/RNN module found by its keys, whatever
else the state dict holds.  Layer k of a multi-layer module is `<module>_l<k>`; the module name
itself is the whole stack.  nn.RNN's nonlinearity comes from --arch, else tanh (an assumption).
"""
from __future__ import annotations

from ...model.assumptions import Assumption
from ..found import Found
from . import arch as arch_hints
from .loading import load
from .reader import specs_to_layers
from .statedict import RNNSpec, parse


def scan(path: str, arch=None, **_options) -> list[Found]:
    hints = arch_hints.load(arch)
    sd, _meta, _info = load(path, hints.state_dict_key)
    modules, _states, _unknown = parse(sd, path, ignore=hints.ignore)
    out = []
    for spec in modules.values():
        if not isinstance(spec, RNNSpec):
            continue
        notes = []
        if spec.path == "":
            spec.path = spec.cell
        if spec.cell == "rnn":
            nl = hints.nonlinearity_for(spec.path)
            if nl is None:
                notes.append(Assumption(f"nn.RNN '{spec.path}' nonlinearity not stored in a state dict: assumed "
                                        "tanh (give --arch with nonlinearity: relu if it was)", "activation",
                                        f"nn.RNN '{spec.path}' nonlinearity tanh",
                                        f"--arch nonlinearity: {{{spec.path}: tanh}} (or relu)"))
            spec.nonlinearity = nl or "tanh"
        layers = specs_to_layers([spec])
        for k, layer in enumerate(layers):
            out.append(Found(layer.name, layer.cell, layer.direction == "bidirectional",
                             f"module '{spec.path}'" + (f" layer {k}" if len(layers) > 1 else ""),
                             (lambda layer=layer, notes=notes: ([layer], notes))))
        if len(layers) > 1:
            out.append(Found(spec.path, spec.cell, spec.bidirectional, f"module '{spec.path}' ({len(layers)} layers)",
                             (lambda layers=layers, notes=notes: (layers, notes)),
                             group=[x.name for x in layers]))
    return out
