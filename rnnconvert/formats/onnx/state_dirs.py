"""State ports that hold one direction of a bidirectional node (`StatePort.direction`), as Keras's
Bidirectional takes and returns them (`[batch, size]` each): written as `Unsqueeze` of each direction's
input, `Concat` along the first axis into `initial_h`/`initial_c`, and `Slice` of one row of `Y_h`/`Y_c`
then `Squeeze` for each output; read back from the same forms (`states.detach` asks here first).
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ._graph import node_attrs
from .glue import RECURRENT
from .lite import TensorProto, helper, numpy_helper

SLOTS = {"h": 5, "c": 6}
OUT_SLOTS = {"h": 1, "c": 2}


def add_direction_ports(proto, model, nodes_of: dict, path=None) -> list[str]:
    """Wire `model`'s per-direction ports into the graph `proto` (the other ports already added), then put
    the graph's inputs and outputs in the model's order."""
    from ...model.states import shape
    g = proto.graph
    nodes = {n.name: n for n in g.node}
    ins = [p for p in model.state_inputs if p.direction is not None]
    outs = [p for p in model.state_outputs if p.direction is not None]
    if not ins and not outs:
        return []
    axes = "state_dirs/axes0"
    g.initializer.append(numpy_helper.from_array(np.array([0], np.int64), axes))
    groups: dict = {}
    for p in ins:
        groups.setdefault((p.layers[0], p.state), {})[p.direction] = p
    for (layer, state), by_dir in groups.items():
        if layer not in nodes_of:
            raise UnsupportedError(f"state '{next(iter(by_dir.values())).name}' needs a native recurrent node, but "
                                   f"layer '{layer}' can only be written as a Scan", path=path)
        if sorted(by_dir) != [0, 1]:
            have = next(iter(by_dir.values()))
            raise UnsupportedError(f"state input '{have.name}' gives the {state} state of one direction of the "
                                   f"bidirectional layer '{layer}' and no state input gives the other's; ONNX's "
                                   f"initial_{state} takes both directions in one tensor", path=path)
        parts = []
        for d in (0, 1):
            p = by_dir[d]
            g.input.append(helper.make_tensor_value_info(p.name, TensorProto.FLOAT, shape(model, p, "batch")))
            parts.append(f"{p.name}/Unsqueeze")
            g.node.append(helper.make_node("Unsqueeze", [p.name, axes], [parts[-1]], name=parts[-1]))
        node = nodes[nodes_of[layer]]
        while len(node.input) <= SLOTS[state]:
            node.input.append("")
        node.input[SLOTS[state]] = f"{layer}/initial_{state}/Concat"
        g.node.append(helper.make_node("Concat", parts, [node.input[SLOTS[state]]], axis=0,
                                       name=node.input[SLOTS[state]]))
    for p in outs:
        node = nodes[nodes_of[p.layers[0]]]
        slot = OUT_SLOTS[p.state]
        while len(node.output) <= slot:
            node.output.append("")
        if not node.output[slot]:
            node.output[slot] = f"{node.name}/Y_{p.state}"
        bounds = [numpy_helper.from_array(np.array([v], np.int64), f"{p.name}/{k}")
                  for k, v in (("starts", p.direction), ("ends", p.direction + 1), ("axes", 0))]
        g.initializer.extend(bounds)
        g.node.append(helper.make_node("Slice", [node.output[slot]] + [b.name for b in bounds], [f"{p.name}/Slice"],
                                       name=f"{p.name}/Slice"))
        g.node.append(helper.make_node("Squeeze", [f"{p.name}/Slice", axes], [p.name], name=f"{p.name}/Squeeze"))
        g.output.append(helper.make_tensor_value_info(p.name, TensorProto.FLOAT, shape(model, p, "batch")))
    _in_order(g.input, [model.input.name] + [p.name for p in model.state_inputs])
    _in_order(g.output, [model.output_name] + [p.name for p in model.state_outputs])
    topological(g)
    return [f"states {', '.join(p.name for p in ins + outs)}: one direction of a bidirectional layer each, "
            "joined into initial_h/initial_c by Unsqueeze and Concat, taken from Y_h/Y_c by Slice and Squeeze"]


def _in_order(container, names: list[str]) -> None:
    """`names` first in this order (those present), then the rest as they were."""
    by = {x.name: x for x in container}
    first = [by[n] for n in names if n in by]
    rest = [x for x in container if x.name not in names]
    items = [type(x)() for x in first + rest]
    for new, old in zip(items, first + rest):
        new.CopyFrom(old)
    del container[:]
    container.extend(items)


def topological(g) -> None:
    """Sort nodes so every input is produced before it is used (added Slice/Concat nodes)."""
    ready = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    pending, ordered = list(g.node), []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            ordered += rest
            break
        pending = rest
    del g.node[:]
    g.node.extend(ordered)


# -- reading ------------------------------------------------------------------------------------

def direction_input(name: str, users: dict, consts: dict, axes_of, key_of):
    """The raw port of graph input `name` when it is Unsqueeze(axis 0) -> Concat(axis 0, two parts) ->
    initial_h/initial_c of a bidirectional node, else None."""
    uses = users.get(name, [])
    if len(uses) != 1 or uses[0][0].op_type != "Unsqueeze" or uses[0][1] != 0 or axes_of(uses[0][0], consts) != [0]:
        return None
    unsq = uses[0][0]
    cat = users.get(unsq.output[0], []) if unsq.output else []
    if len(cat) != 1 or cat[0][0].op_type != "Concat" or node_attrs(cat[0][0]).get("axis") != 0 \
            or len(cat[0][0].input) != 2:
        return None
    concat, d = cat[0]
    targets = users.get(concat.output[0], []) if concat.output else []
    if len(targets) != 1 or targets[0][0].op_type not in RECURRENT or targets[0][1] not in (5, 6) \
            or node_attrs(targets[0][0]).get("direction") != "bidirectional" \
            or int(node_attrs(targets[0][0]).get("layout", 0)):
        return None
    node, slot = targets[0]
    return {"name": name, "role": "input", "state": "h" if slot == 5 else "c", "parts": [(key_of(node), 1)],
            "layout": "batch_size", "direction": d}


def direction_output(out_name: str, producer: dict, consts: dict, axes_of, rows_of, key_of):
    """The raw port of graph output `out_name` when it is Squeeze(axis 0) of a one-row Slice of a bidirectional
    node's Y_h/Y_c, else None."""
    sq = producer.get(out_name)
    if sq is None or sq.op_type != "Squeeze" or axes_of(sq, consts) != [0]:
        return None
    sl = producer.get(sq.input[0])
    rows = rows_of(sl, consts) if sl is not None and sl.op_type == "Slice" else None
    node = producer.get(sl.input[0]) if rows is not None else None
    if node is None or node.op_type not in RECURRENT or rows[1] != rows[0] + 1 or rows[0] not in (0, 1) \
            or node_attrs(node).get("direction") != "bidirectional" or int(node_attrs(node).get("layout", 0)):
        return None
    slot = list(node.output).index(sl.input[0])
    if slot not in (1, 2):
        return None
    return {"name": out_name, "role": "output", "state": "h" if slot == 1 else "c", "parts": [(key_of(node), 1)],
            "layout": "batch_size", "direction": rows[0]}
