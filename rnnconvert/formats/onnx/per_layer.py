"""ONNX recurrent nodes as per-layer conversion candidates (`rnnconvert.formats.per_layer`): every LSTM/GRU/RNN
node of the graph and of its If/Loop/Scan subgraphs, named as `extract.recurrent_nodes` names them; a Loop
of the main graph that computes a cell is one (`lift_loop`), named as the Loop node, and so are steps
unrolled over a tensor X (`lift_unrolled`, named 'X/unrolled')."""
from __future__ import annotations

from ..found import Found
from . import extract
from .lift import lift_model
from .reader import load


def scan(path: str) -> list[Found]:
    proto, _ = lift_model(load(path), path)        # a Loop computing a cell lists as its native node
    opset = extract.opset_of(proto)
    folder = extract.folder_for(proto, path)       # one folding budget for all nodes
    resolver = extract.Resolver(opset, folder)     # each graph indexed, each shared weight folded, once
    out = []
    for ref in extract.recurrent_nodes(proto):
        extract.resolve(ref, opset, resolver=resolver)
        direction = next((a.s.decode() for a in ref.node.attribute if a.name == "direction"), "forward")
        out.append(Found(ref.name, extract.RECURRENT[ref.node.op_type], direction == "bidirectional",
                         f"{ref.node.op_type} node in the {ref.where}",
                         (lambda ref=ref: _build(ref, path)), node=ref, opset=opset))
    return out


def _build(ref, path):
    layer, notes = extract.to_layer(ref, path)
    return [layer], notes
