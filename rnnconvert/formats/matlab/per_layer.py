"""MATLAB recurrent layers as per-layer conversion candidates when the whole network does not read
as a model (`rnnconvert.formats.per_layer`): every lstmLayer/bilstmLayer/gruLayer of the network variable, by
its Name, whatever other layers (convolutions, custom layers, branches) the network holds.  A file of
bare matrices without a mapping: per-gate matrices named as PyTorch's documentation names them
(`w_ii w_if w_ig w_io` / `w_hi ...`, biases `b_ii ...`, `b_hi ...`; GRU `w_ir w_iz w_in ...`) are
recognised as one layer each (any common prefix or suffix), read as the mapping would read them."""
from __future__ import annotations

import re

import numpy as np

from ...errors import InputError
from ...model.assumptions import Assumption
from ..found import Found
from . import mcos
from .build import _recurrent, _value, fields
from .reader_layers import _text
from .reader import _layer_list, networks

KINDS = {"LSTMLayer": ("lstm", False), "BiLSTMLayer": ("lstm", True), "GRULayer": ("gru", False)}


def scan(path: str, var: str | None = None, **_options) -> list[Found]:
    variables = mcos.load(path)
    out = _bare_layers(path, variables)
    keep = set(networks(variables)[0]) if var is None else {var}     # untrained arrays beside a network: left out
    for vname, value in variables.items():
        if vname not in keep:
            continue
        layers = _layer_list(value) or []
        for k, layer in enumerate(layers):
            cls, p = fields(layer)
            if cls not in KINDS:
                continue
            name = _text(p.get("Name"), f"layer{k}") or f"layer{k}"
            where = f"variable '{vname}' layers({k + 1}) ({cls})"
            out.append(Found(name, *KINDS[cls], where, (lambda cls=cls, name=name, p=p, where=where:
                                                          _build(path, cls, name, p, where))))
    return out


def _build(path, cls, name, p, where):
    if _value(p.get("InputWeights")) is None:
        raise InputError(f"{where}: an untrained layer definition (no learned weights)", path=path, layer=name)
    assumed = []
    return [_recurrent(cls, name, p, where, assumed.append)], assumed


PER_GATE = {"lstm": ("lstmLayer", "ifgo"), "gru": ("gruLayer", "rzn")}


def _bare_layers(path, variables) -> list[Found]:
    arrays = {k: v for k, v in variables.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"}
    out = []
    for cell, (function, letters) in PER_GATE.items():
        for key in sorted(arrays):
            m = re.fullmatch(rf"(.*?)w_i{letters[0]}(.*)", key)
            if not m:
                continue
            pre, post = m.groups()
            names = {part: [f"{pre}{part}{g}{post}" for g in letters] for part in ("w_i", "w_h", "b_i", "b_h")}
            if not all(n in arrays for n in names["w_i"] + names["w_h"]):
                continue
            entry = {"layer": function, "InputWeights": names["w_i"], "RecurrentWeights": names["w_h"],
                     "OutputMode": "sequence"}
            for part, prop in (("b_i", "Bias"), ("b_h", "RecurrentBias")):
                if all(n in arrays for n in names[part]):
                    entry[prop] = names[part]
            name = f"{pre}{cell}{post}".strip("_") or cell
            note = Assumption(f"layer '{name}': bare matrices {', '.join(names['w_i'] + names['w_h'])} read as one "
                              f"{cell.upper()} (gates {letters}, PyTorch's names; sigmoid and tanh activations)",
                              "architecture", f"bare matrices {pre}w_i{letters}{post} are one {cell.upper()}",
                              f"--mapping file listing the layer ({function}, its matrices, activations)")
            out.append(Found(name, cell, False, f"bare matrices {pre}w_i{letters}{post}",
                             (lambda entry=entry, name=name, note=note: _bare_build(path, variables, entry, name, note))))
    return out


def _bare_build(path, variables, entry, name, note):
    from dataclasses import replace

    from .bare import read_bare
    model = read_bare(path, variables, {"layers": [entry]})
    return [replace(model.layers[0], name=name)], [note] + model.source.get("assumptions", [])
