"""ONNX -> ONNX in place, for graphs the canonical model cannot hold (a CNN front end over a 4-axis input, two
heads, an STFT): each recurrent part of the main graph is replaced by a native LSTM/GRU/RNN node written from
its canonical layer (`extract.to_layer`, the per-layer discovery `per_layer.py` uses), wired to the same
X, sequence_lens, initial states and outputs; every other node, initializer, input and output is kept as
it is.  The weights the replaced parts alone used are dropped (the new node carries them).  `stateful`: a
node whose initial_h/initial_c is not given gets it as a new graph input (zeros compute what the source
computes) and its Y_h/Y_c become graph outputs, so the graph streams.  Recurrent nodes inside If/Loop/Scan
subgraphs are left as they are, with a note.  A recurrence written without a native node (a Loop or Scan over a
cell, a cell unrolled over fixed steps) is first lifted into one (`lift.lift_model`, confirmed by onnxruntime
running its step): the native node takes the Loop's place, wired to the tensors its outputs fed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ...errors import UnsupportedError
from ...model import Recurrent, gates
from . import _acts
from .lift import lift_model
from .lift_mask import masked_loops
from .extract import NodeRef, Resolver, folder_for, opset_of, recurrent_nodes, resolve, to_layer

OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
MASKED = ("reads a mask (Keras Masking or Embedding mask_zero), and a native LSTM/GRU/RNN node cannot skip "
          "masked steps in the middle of a sequence")


@dataclass
class Replaced:
    name: str             # the node's name (extract's naming: its name, or its first output)
    layer: Recurrent      # the canonical layer the new node was written from
    ref: NodeRef          # the source node, for the per-node check
    state_inputs: list    # graph inputs added (--stateful)
    state_outputs: list   # graph outputs added (--stateful)
    opset: int = 17
    lifted_from: str = ""  # 'Loop', 'Scan' or 'unrolled cell' when the part had no native node in the source


def rewrite(proto: onnx.ModelProto, path: str, stateful: bool = False) -> tuple[onnx.ModelProto, list, list]:
    """(the rewritten model, [Replaced], notes); UnsupportedError naming the node when a recurrent part has no
    canonical layer, or when the main graph has none."""
    source = proto
    proto, lifted = lift_model(source, path)         # Loops, Scans and unrolled cells: native nodes first
    kinds = _lifted_kinds(source, lifted)
    opset = opset_of(proto)
    resolver = Resolver(opset, folder_for(proto, path))
    refs = recurrent_nodes(proto)
    main = [r for r in refs if r.where == "main graph"]
    notes = [f"{r.node.op_type} node '{r.name}' ({r.where}) left as it is: only the main graph is rewritten"
             for r in refs if r.where != "main graph"]
    masked = set(masked_loops(proto, path)) if any(n.op_type == "Loop" for n in proto.graph.node) else set()
    notes += [f"{n.op_type} node '{n.name or n.output[0]}' left as it is: "
              + (MASKED if (n.name or n.output[0]) in masked else "not a recurrence lifting reads")
              for n in proto.graph.node if n.op_type in ("Loop", "Scan")]
    if not main and masked:
        raise UnsupportedError(f"Loop node '{sorted(masked)[0]}' {MASKED}; convert the whole model instead (a "
                               "masked layer is written as a Scan)", path=path)
    if not main:
        raise UnsupportedError("no LSTM, GRU or RNN node, and no Loop, Scan or unrolled cell computing one, in the "
                               "main graph to rewrite in place", path=path)
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    g = out.graph
    index = {id(n): k for k, n in enumerate(proto.graph.node)}
    replaced, old_inputs = [], set()
    taken = {t for n in g.node for t in list(n.input) + list(n.output)} | {i.name for i in g.initializer} | \
        {i.name for i in g.input}
    for ref in main:
        resolve(ref, opset, resolver=resolver)
        layer, _ = to_layer(ref, path)
        k = index[id(ref.node)]
        if ref.name in kinds and not stateful:      # lifting wrote it as a native node already: kept as written
            replaced.append(Replaced(ref.name, layer, ref, [], [], opset, kinds[ref.name]))
            continue
        try:
            node, inits, ins, outs = native_node(layer, ref.node, stateful, taken, {i.name for i in g.input},
                                                 {o.name for o in g.output})
        except UnsupportedError as exc:
            exc.path = path
            raise
        old_inputs.update(ref.node.input[1:4])
        if len(ref.node.input) > 7:
            old_inputs.add(ref.node.input[7])
        g.node[k].CopyFrom(node)
        g.initializer.extend(inits)
        g.input.extend(ins)
        g.output.extend(outs)
        states_out = [o for o in list(node.output)[1:] if o] if stateful else []
        replaced.append(Replaced(ref.name, layer, ref, [i.name for i in ins], states_out, opset,
                                 kinds.get(ref.name, "")))
    used = _used(g)
    dead = {name for name in old_inputs if name and name not in used}
    if lifted:      # the weights a lifted Loop's body read from the main graph, the lift's unused constants
        was_used, had = _used(source.graph), {t.name for t in source.graph.initializer}
        dead |= {t.name for t in g.initializer if t.name not in used and (t.name in was_used or t.name not in had)}
    kept = [t for t in g.initializer if t.name not in dead]
    del g.initializer[:]
    g.initializer.extend(kept)
    kept_inputs = [i for i in g.input if i.name not in dead]
    del g.input[:]
    g.input.extend(kept_inputs)
    return out, replaced, notes


def native_node(layer: Recurrent, source: onnx.NodeProto, stateful: bool, taken: set, graph_inputs=(),
                graph_outputs=()):
    """(node, initializers, graph inputs added, graph outputs added): `layer` as one native node in the place
    of `source` (same X, sequence_lens, initial states and outputs)."""
    cell, H, D = layer.cell, layer.hidden, len(layer.weights)
    name = source.name or (source.output[0] if source.output else "") or OP[cell]

    def fresh(base):
        n, k = base, 0
        while n in taken:
            k += 1
            n = f"{base}_{k}"
        taken.add(n)
        return n

    W = np.stack([gates.from_canonical(w.W, cell, "onnx") for w in layer.weights]).astype(np.float32)
    R = np.stack([gates.from_canonical(w.R, cell, "onnx") for w in layer.weights]).astype(np.float32)
    B = np.stack([np.concatenate([gates.from_canonical(w.Wb, cell, "onnx"), gates.from_canonical(w.Rb, cell, "onnx")])
                  for w in layer.weights]).astype(np.float32)
    inits = [numpy_helper.from_array(a, fresh(f"{name}/{role}")) for role, a in (("W", W), ("R", R), ("B", B))]
    src_in = list(source.input) + [""] * (8 - len(source.input))
    ins = [src_in[0]] + [t.name for t in inits] + [src_in[4], src_in[5], src_in[6] if cell == "lstm" else ""]
    if any(w.P is not None for w in layer.weights):
        P = np.stack([gates.peepholes_from_canonical(w.P) if w.P is not None else np.zeros(3 * H, np.float32)
                      for w in layer.weights]).astype(np.float32)
        inits.append(numpy_helper.from_array(P, fresh(f"{name}/P")))
        ins.append(inits[-1].name)
    added_in, added_out = [], []
    states = (("h", 5, 1), ("c", 6, 2)) if cell == "lstm" else (("h", 5, 1),)
    outs = list(source.output) + [""] * (3 - len(source.output))
    for state, slot, out_slot in states:
        if not stateful:
            continue
        if ins[slot] not in graph_inputs:       # zeros, computed zeros or a constant: a graph input now
            if any(getattr(w, f"{state}0") is not None for w in layer.weights):
                raise UnsupportedError(f"{source.op_type} node '{name}': its initial {state} is a non-zero constant "
                                       "of the file; --stateful would replace it by a graph input",
                                       layer=name)
            ins[slot] = fresh(f"{name}/initial_{state}")
            added_in.append(helper.make_tensor_value_info(ins[slot], TensorProto.FLOAT, [D, "batch", H]))
        if not outs[out_slot]:
            outs[out_slot] = fresh(f"{name}/Y_{state}")
        if outs[out_slot] not in graph_outputs:
            added_out.append(helper.make_tensor_value_info(outs[out_slot], TensorProto.FLOAT, [D, "batch", H]))
    while ins and not ins[-1]:
        ins.pop()
    while outs and not outs[-1]:
        outs.pop()
    attrs = _acts.node_attributes(layer, D)
    node = helper.make_node(OP[cell], ins, outs, name=source.name or name, **attrs)
    return node, inits, added_in, added_out


def _used(g: onnx.GraphProto) -> set:
    return {t for n in g.node for t in n.input} | {o.name for o in g.output} | _subgraph_names(g)


def _subgraph_names(g: onnx.GraphProto) -> set:
    """Every tensor name a subgraph of `g` uses (an outer-scope initializer is used there by name)."""
    names, todo = set(), [a.g for n in g.node for a in n.attribute if a.HasField("g")] + \
        [s for n in g.node for a in n.attribute for s in a.graphs]
    while todo:
        sub = todo.pop()
        for n in sub.node:
            names.update(n.input)
            todo += [a.g for a in n.attribute if a.HasField("g")] + [s for a in n.attribute for s in a.graphs]
    return names


def _lifted_kinds(original: onnx.ModelProto, lifted: list) -> dict:
    """{lifted node name: what it was in the source ('Loop', 'Scan', 'unrolled cell')}."""
    ops = {n.name or (n.output[0] if n.output else ""): n.op_type for n in original.graph.node}
    return {name: ops.get(name) if ops.get(name) in ("Loop", "Scan") else "unrolled cell" for name in lifted}
