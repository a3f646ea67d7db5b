"""MATLAB recurrent layers as per-layer conversion candidates when the whole network does not read
as a model (`rnnconvert.select`): every lstmLayer/bilstmLayer/gruLayer of the network variable, by
its Name, whatever other layers (convolutions, custom layers, branches) the network holds."""
from __future__ import annotations

from ...errors import InputError
from ...select import Found
from . import mcos
from .reader import _layer_list, _recurrent, _text, _value, fields

KINDS = {"LSTMLayer": ("lstm", False), "BiLSTMLayer": ("lstm", True), "GRULayer": ("gru", False)}


def scan(path: str, var: str | None = None, **_options) -> list[Found]:
    variables = mcos.load(path)
    out = []
    for vname, value in variables.items():
        if var is not None and vname != var:
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
    return [_recurrent(cls, name, p, where)], []
