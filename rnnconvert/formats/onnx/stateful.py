"""Stateful ONNX: each recurrent layer's state as extra graph inputs and outputs, for streaming.

`make_stateful` turns a graph `writer.to_onnx` built into one where every LSTM/GRU/RNN node takes its
initial_h (and initial_c) from a graph input `<layer>/h_in` (`<layer>/c_in`), shape [1, batch, S],
and hands its final Y_h (Y_c) out as `<layer>/h_out` (`<layer>/c_out`).  A runtime feeds each
`*_in` the previous call's matching `*_out` and so streams one step (or chunk) at a time.  The
metadata entry `rnnconvert.model.states` lists them with their shapes and initial values (zeros, or the
model's h0/c0) and what the stateless graph used instead, so that `to_stateless` restores exactly
the graph the writer would have written without --stateful (which is how the reader reads it back).
A reverse or bidirectional layer is refused: its first output depends on the last input.
"""
from __future__ import annotations

import copy
import json

import numpy as np
from . import lite as onnx
from .lite import TensorProto, helper

from ...errors import UnsupportedError
from ...files.text import read_json
from ...model import Conv1D, Embedding, Flatten, Masking, Model, Pooling1D, Recurrent, TimeWindow

STATES_KEY = "rnnconvert.model.states"
USAGE = ("feed every '*_in' input the matching '*_out' output of the previous call (shape [1, batch, size]); "
         "on the first call feed the 'initial' value broadcast to the batch (zeros unless listed)")


def _mixes_steps(layer) -> bool:
    """A layer whose output at one step reads other steps: convolution wider than one step or strided,
    pooling, Flatten, a time window (its steps count from the end of the whole call), and masks (Keras's mask also changes what a masked step outputs)."""
    if isinstance(layer, Conv1D):
        return layer.kernel.shape[0] > 1 or layer.strides > 1
    if isinstance(layer, Embedding):
        return layer.mask_zero
    return isinstance(layer, (Pooling1D, Flatten, Masking, TimeWindow))


def make_stateful(proto: onnx.ModelProto, model: Model, path=None) -> list[str]:
    """Rewrite `proto` (from `writer.to_onnx(model)`) in place; returns notes."""
    mixing = [f"layer '{layer.name}' ({layer.kind})" for layer in model.layers if _mixes_steps(layer)]
    if mixing:
        raise UnsupportedError(f"--stateful streams one step at a time, but {', '.join(mixing)} "
                               f"combine{'s' if len(mixing) == 1 else ''} several time steps (or a mask over the "
                               "whole sequence), so chunks would not add up to the whole call; write this model "
                               "without --stateful", path=None if path is None else str(path))
    backward = [f"layer '{layer.name}' ({layer.direction})" for layer in model.layers
                if isinstance(layer, Recurrent) and layer.direction != "forward"]
    if backward:
        raise UnsupportedError(f"--stateful streams one step at a time, but {', '.join(backward)} "
                               f"need{'s' if len(backward) == 1 else ''} the whole sequence before the first output "
                               "(a backward direction reads the input from its end); write this model without "
                               "--stateful", path=None if path is None else str(path))
    g = proto.graph
    meta = read_json(next(p.value for p in proto.metadata_props if p.key == "rnnconvert"), path, "metadata")
    scanned = [f"layer '{e['name']}'" for e in meta["layers"] if e.get("form") == "scan"]
    if scanned:
        raise UnsupportedError(f"--stateful needs native LSTM/GRU/RNN nodes, but {', '.join(scanned)} "
                               "can only be written as a Scan; write this model without --stateful",
                               path=None if path is None else str(path))
    nodes = {n.name: n for n in g.node}
    states = []
    for k, (layer, entry) in enumerate(zip(model.layers, meta["layers"])):
        if not isinstance(layer, Recurrent):
            continue
        node = nodes[entry["node"]]
        w = layer.weights[0]
        kinds = [("h", 5, 1, layer.state_size, w.h0)] + ([("c", 6, 2, layer.hidden, w.c0)] if layer.cell == "lstm" else [])
        for what, slot, out_slot, size, init in kinds:
            while len(node.input) <= slot:
                node.input.append("")
            while len(node.output) <= out_slot:
                node.output.append("")
            name_in, name_out = f"{layer.name}/{what}_in", f"{layer.name}/{what}_out"
            default = node.input[slot]
            node.input[slot] = name_in
            added = node.output[out_slot] == ""
            if added:
                node.output[out_slot] = f"{node.name}/Y_{what}_state"
            g.node.append(helper.make_node("Identity", [node.output[out_slot]], [name_out],
                                           name=f"{layer.name}/{what}_state_out"))
            g.input.append(helper.make_tensor_value_info(name_in, TensorProto.FLOAT, [1, "batch", size]))
            g.output.append(helper.make_tensor_value_info(name_out, TensorProto.FLOAT, [1, "batch", size]))
            states.append({"layer": layer.name, "index": k, "cell": layer.cell, "state": what, "input": name_in,
                           "output": name_out, "shape": [1, "batch", size],
                           "initial": None if init is None else np.asarray(init, np.float64).tolist(),
                           "node": node.name, "slot": slot, "out_slot": out_slot, "stateless_input": default,
                           "added_output": added})
    helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props},
                                   STATES_KEY: json.dumps({"version": 1, "usage": USAGE, "states": states})})
    return [f"stateful: {len(states)} state inputs/outputs ({', '.join(s['input'] for s in states)}); "
            f"see the '{STATES_KEY}' metadata entry"] if states else []


def states_of(proto: onnx.ModelProto) -> list[dict] | None:
    raw = next((p.value for p in proto.metadata_props if p.key == STATES_KEY), None)
    return None if raw is None else read_json(raw, None, f"the '{STATES_KEY}' metadata entry")["states"]


def to_stateless(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The graph without its state inputs/outputs (a copy), or `proto` itself when it has none."""
    states = states_of(proto)
    if states is None:
        return proto
    proto = copy.deepcopy(proto)
    g = proto.graph
    nodes = {n.name: n for n in g.node}
    ins, outs = {s["input"] for s in states}, {s["output"] for s in states}
    for s in states:
        node = nodes[s["node"]]
        node.input[s["slot"]] = s["stateless_input"]
        if s["added_output"]:
            node.output[s["out_slot"]] = ""
    for node in nodes.values():
        while node.input and node.input[-1] == "":
            node.input.pop()
        while node.output and node.output[-1] == "":
            node.output.pop()
    keep = [n for n in g.node if not (n.op_type == "Identity" and n.output[0] in outs)]
    del g.node[:]
    g.node.extend(keep)
    keep_in = [i for i in g.input if i.name not in ins]
    del g.input[:]
    g.input.extend(keep_in)
    keep_out = [o for o in g.output if o.name not in outs]
    del g.output[:]
    g.output.extend(keep_out)
    props = {p.key: p.value for p in proto.metadata_props if p.key != STATES_KEY}
    del proto.metadata_props[:]
    helper.set_model_props(proto, props)
    return proto


def initial_feeds(custom_metadata: dict, batch: int) -> dict[str, np.ndarray]:
    """{state input: its initial value [1, batch, size]} from a session's custom metadata map."""
    raw = custom_metadata.get(STATES_KEY)
    if raw is None:
        return {}
    feeds = {}
    for s in read_json(raw, None, f"the '{STATES_KEY}' metadata entry")["states"]:
        size = s["shape"][2]
        v = np.zeros((batch, size), np.float32) if s["initial"] is None else \
            np.broadcast_to(np.asarray(s["initial"], np.float32), (batch, size))
        feeds[s["input"]] = np.ascontiguousarray(v[None], dtype=np.float32)
    return feeds
