"""Streaming ONNX graphs: recurrent states as graph inputs and outputs, read and written.

Reading (`detach`, then `attach`): a graph input is a state input when each of its uses is the
`initial_h`/`initial_c` of a recurrent node, directly or through a `Slice` along its first axis (how
torch.onnx.export hands `h0` [layers*dirs, batch, H] of a multi-layer module to each layer's node).
A graph output is a state output when it is a node's `Y_h`/`Y_c`, directly, through `Identity`, or a
`Concat` along the first axis of several (torch's `h_n`), with or without state inputs; when every graph
output is one, the first is the model's output itself (a graph returning Y_h and Y_c).  A batch-major
node's (layout=1) states are [batch, dirs, size], not a port.  They are cut from a copy of the graph
before the walker reads the layers (their initial states become zeros) and become `StatePort`s.
Any other route from an extra input to an initial state (states packed into one tensor and taken
apart with Slice/Squeeze/Unsqueeze, as keras2onnx writes) is refused by name.

Writing (`add_state_io`): the same forms back: a port of one layer is wired straight to the node, a
port of several layers is sliced (`Slice`) or concatenated (`Concat`) along the first axis.
"""
from __future__ import annotations

import copy

import numpy as np
from . import lite as onnx
from .lite import TensorProto, helper, numpy_helper

from ...errors import UnsupportedError
from ...model import Model, StatePort
from ._graph import BIG, describe, node_attrs
from .glue import RECURRENT
from .state_dirs import direction_input, direction_output, topological as _topological

SLOTS = {5: "h", 6: "c"}          # recurrent node input slot -> state
OUT_SLOTS = {1: "h", 2: "c"}      # recurrent node output slot -> state
HINT = ("rnnconvert reads state inputs shaped [directions, batch, size] that feed initial_h/initial_c "
        "directly or sliced per layer along their first axis")


def detach(proto: onnx.ModelProto, path: str, keep: str | None = None):
    """(graph without its state inputs/outputs, input ports, output ports); `proto` itself when it has none.
    `keep`: the graph output the caller reads as the model's output, never a port.

    A port is {"name", "state", "parts": [(node key, rows)]}, rows the node's direction count."""
    g = proto.graph
    init = {t.name for t in g.initializer}
    extra = [i for i in g.input if i.name not in init]
    sequence = _sequence_sources(g) if extra else set()
    extra = [i for i in extra if i.name not in sequence]     # the model's input (it may also size zero states)
    ins, consts = [], {}
    if extra:                       # graph inputs that may be states: only then are users indexed
        consts = _constants(g)
        users: dict[str, list] = {}
        for node in g.node:
            for slot, name in enumerate(node.input):
                if name:
                    users.setdefault(name, []).append((node, slot))
        for vi in extra:
            port = direction_input(vi.name, users, consts, _axes, _key) or _input_port(vi.name, users, consts, path)
            if port is not None:
                ins.append(port)
    producer = {o: n for n in g.node for o in n.output if o}
    consts = consts if extra else _constants(g) if len(g.output) > 1 else {}
    outs = [p for p in (_output_port(o.name, producer, consts, path) or direction_output(
        o.name, producer, consts, _axes, _rows, _key) for o in g.output if o.name != keep)
            if p is not None] if ins or len(g.output) > 1 else []
    if outs and len(outs) == len(g.output):
        outs = outs[1:]          # every output is a node's Y_h/Y_c: the first is the model's output itself
    if not ins and not outs:
        return proto, [], []
    proto = copy.deepcopy(proto)
    g = proto.graph
    cut = {p["name"] for p in ins}
    producer = {o: n for n in g.node for o in n.output if o}
    for node in g.node:
        if node.op_type in RECURRENT:
            for slot in SLOTS:
                if len(node.input) > slot and _source(node.input[slot], producer, cut):
                    node.input[slot] = ""
    _keep(g.input, lambda i: i.name not in cut)
    gone = {p["name"] for p in outs}
    _keep(g.output, lambda o: o.name not in gone)
    return proto, ins, outs


def attach(model: Model, ins: list, outs: list, node_layers: dict, path: str) -> Model:
    """`model` with the ports, `node_layers` mapping a node key to (layer name, first direction)."""
    def ports(raw):
        out = []
        for p in raw:
            rows = []
            for key, n in p["parts"]:
                if key not in node_layers:
                    raise UnsupportedError(f"the graph {p['role']} '{p['name']}' carries the states of the recurrent "
                                           f"node '{key}', which is not on the way to the output '{model.output_name}'",
                                           path=path)
                layer, first = node_layers[key]
                rows += [(layer, first + d) for d in (range(n) if p.get("direction") is None else [p["direction"]])]
            layers = list(dict.fromkeys(name for name, _ in rows))
            dirs = {layer.name: len(layer.weights) for layer in model.recurrent_layers}
            if p.get("direction") is None and rows != [(name, d) for name in layers for d in range(dirs[name])]:
                raise UnsupportedError(f"the graph {p['role']} '{p['name']}' stacks the states of "
                                       f"{', '.join(f'{n}[{d}]' for n, d in rows)}, not every direction of each "
                                       f"layer in order; {HINT}", path=path)
            out.append(StatePort(p["name"], p["state"], layers, p.get("layout", "rows_batch_size"), p.get("direction")))
        return out
    model.state_inputs, model.state_outputs = ports(ins), ports(outs)
    return model


def add_state_io(proto: onnx.ModelProto, model: Model, nodes_of: dict, path=None) -> list[str]:
    """Add `model`'s state ports to `proto` built by the writer (`nodes_of`: layer name -> node name)."""
    g = proto.graph
    nodes = {n.name: n for n in g.node}
    taken = {t for n in g.node for t in list(n.input) + list(n.output)} | {i.name for i in g.initializer}
    from ...model.states import shape
    notes = []
    for port in model.state_inputs + model.state_outputs:
        if port.name in taken:
            raise UnsupportedError(f"the state tensor name '{port.name}' is already used inside the graph; rename "
                                   "the state", path=None if path is None else str(path))
        missing = [name for name in port.layers if name not in nodes_of]
        if missing:
            raise UnsupportedError(f"state '{port.name}' needs native recurrent nodes, but layer "
                                   f"'{missing[0]}' can only be written as a Scan",
                                   path=None if path is None else str(path))
    def axes0(base):
        g.initializer.append(numpy_helper.from_array(np.array([0], np.int64), f"{base}/axes"))
        return f"{base}/axes"

    for port in model.state_inputs:
        slot = 5 if port.state == "h" else 6
        g.input.append(helper.make_tensor_value_info(port.name, TensorProto.FLOAT, shape(model, port, "batch")))
        start = 0
        for name in port.layers:
            node = nodes[nodes_of[name]]
            D = 2 if _attr(node, "direction") == "bidirectional" else 1
            while len(node.input) <= slot:
                node.input.append("")
            if node.input[slot]:
                notes.append(f"layer '{name}': its initial {port.state} comes from the state input '{port.name}', "
                             "which must be fed")
            if port.layout == "batch_size":
                node.input[slot] = f"{port.name}/Unsqueeze"
                g.node.append(helper.make_node("Unsqueeze", [port.name, axes0(port.name)], [node.input[slot]],
                                               name=f"{port.name}/Unsqueeze"))
            elif len(port.layers) == 1:
                node.input[slot] = port.name
            else:
                base = f"{port.name}/{name}"
                consts = [numpy_helper.from_array(np.array([v], np.int64), f"{base}/{k}")
                          for k, v in (("starts", start), ("ends", start + D), ("axes", 0))]
                g.initializer.extend(consts)
                g.node.append(helper.make_node("Slice", [port.name] + [c.name for c in consts], [f"{base}/Slice"],
                                               name=f"{base}/Slice"))
                node.input[slot] = f"{base}/Slice"
            start += D
    for port in model.state_outputs:
        out_slot = 1 if port.state == "h" else 2
        parts = []
        for name in port.layers:
            node = nodes[nodes_of[name]]
            while len(node.output) <= out_slot:
                node.output.append("")
            if not node.output[out_slot]:
                node.output[out_slot] = f"{node.name}/Y_{port.state}"
            parts.append(node.output[out_slot])
        if port.layout == "batch_size":
            g.node.append(helper.make_node("Squeeze", [parts[0], axes0(port.name)], [port.name],
                                           name=f"{port.name}/Squeeze"))
        else:
            op = "Identity" if len(parts) == 1 else "Concat"
            g.node.append(helper.make_node(op, parts, [port.name], name=f"{port.name}/{op}",
                                           **({"axis": 0} if op == "Concat" else {})))
        g.output.append(helper.make_tensor_value_info(port.name, TensorProto.FLOAT, shape(model, port, "batch")))
    _topological(g)
    return notes + [f"state inputs {', '.join(p.name for p in model.state_inputs) or 'none'} and state outputs "
                    f"{', '.join(p.name for p in model.state_outputs) or 'none'} kept as graph inputs and outputs"]


# ---------------------------------------------------------------------------------------------

def _input_port(name: str, users: dict, consts: dict, path: str):
    """The state port graph input `name` (not one reaching a recurrent node's X) is, or None."""
    parts, state, layouts = [], set(), set()
    for node, slot in _uses(name, users):
        if node.op_type in RECURRENT and slot in SLOTS and not int(node_attrs(node).get("layout", 0)):
            parts.append((0, _key(node), _dirs(node)))
            state.add(SLOTS[slot])
            layouts.add("rows_batch_size")
            continue
        rows = _rows(node, consts) if node.op_type == "Slice" and slot == 0 else None
        if node.op_type == "Unsqueeze" and slot == 0 and _axes(node, consts) == [0]:
            rows = (0, 1)            # [batch, size] -> [1, batch, size]: Keras initial_state
        targets = _uses(node.output[0], users) if node.output else []
        if rows is not None and targets and all(n.op_type in RECURRENT and s in SLOTS for n, s in targets):
            for n, s in targets:
                parts.append((rows[0], _key(n), _dirs(n)))
                state.add(SLOTS[s])
                layouts.add("batch_size" if node.op_type == "Unsqueeze" else "rows_batch_size")
            continue
        route = _route(node, users)
        if route:
            raise UnsupportedError(f"the graph input '{name}' reaches the {route[-1]} through "
                                   f"{', '.join(r.op_type for r in route[:-1]) or 'glue'} (several states packed into "
                                   f"one tensor); {HINT}; convert its recurrent layers one by one with --layer",
                                   path=path)
        return None          # not a state input (the model's input, or one rnnconvert will refuse later)
    if not parts:
        return None
    if len(state) != 1:
        raise UnsupportedError(f"the graph input '{name}' feeds both initial_h and initial_c; {HINT}", path=path)
    layout = layouts.pop() if len(layouts) == 1 else None
    if layout is None or (layout == "batch_size" and (len(parts) != 1 or parts[0][2] != 1)):
        raise UnsupportedError(f"the graph input '{name}' feeds initial states both as [batch, size] and as "
                               f"[directions, batch, size]; {HINT}", path=path)
    parts.sort(key=lambda p: p[0])
    expect = 0
    for start, key, n in parts:
        if start != expect:
            raise UnsupportedError(f"the graph input '{name}' is sliced into rows that do not follow each other "
                                   f"(node '{key}' starts at row {start}, expected {expect}); {HINT}", path=path)
        expect += n
    return {"name": name, "role": "input", "state": state.pop(), "parts": [(k, n) for _, k, n in parts],
            "layout": layout}


def _output_port(out_name: str, producer: dict, consts: dict, path: str):
    name = out_name
    node = producer.get(name)
    layout = "rows_batch_size"
    while node is not None and (node.op_type == "Identity" or (node.op_type == "Squeeze" and layout != "batch_size"
                                                               and _axes(node, consts) == [0])):
        if node.op_type == "Squeeze":
            layout = "batch_size"          # Y_h [1, batch, size] -> [batch, size]: Keras return_state
        name = node.input[0]
        node = producer.get(name)
    if node is None:
        return None
    sources = [name] if node.op_type in RECURRENT else \
        list(node.input) if node.op_type == "Concat" and node_attrs(node).get("axis") == 0 else None
    if not sources:
        return None
    parts, state = [], set()
    for src in sources:
        n = producer.get(src)
        if n is None or n.op_type not in RECURRENT:
            return None
        slot = list(n.output).index(src)
        if slot not in OUT_SLOTS or int(node_attrs(n).get("layout", 0)):    # layout=1: [batch, dirs, size]
            return None
        parts.append((_key(n), _dirs(n)))
        state.add(OUT_SLOTS[slot])
    if len(state) != 1 or (layout == "batch_size" and (len(parts) != 1 or parts[0][1] != 1)):
        return None
    return {"name": out_name, "role": "output", "state": state.pop(), "parts": parts, "layout": layout}


def _uses(name: str, users: dict) -> list:
    """(node, slot) using tensor `name`, looking through Identity nodes (in depth-first order, without
    recursion: a chain of 50,000 Identity nodes is a loop, not 50,000 frames)."""
    out, seen, stack = [], set(), list(reversed(users.get(name, [])))
    while stack:
        n, s = stack.pop()
        if n.op_type == "Identity" and n.output:
            if id(n) not in seen:
                seen.add(id(n))
                stack.extend(reversed(users.get(n.output[0], [])))
        else:
            out.append((n, s))
    return out


def _sequence_sources(g) -> set:
    """Tensors that reach the sequence input X of a recurrent node through glue (not through Shape or another
    recurrent node): found once for all graph inputs, walking back from each X (per input, a forward walk
    was quadratic in a graph of many inputs)."""
    producer = {o: n for n in g.node for o in n.output if o}
    found, todo = set(), [n.input[0] for n in g.node if n.op_type in RECURRENT and n.input and n.input[0]]
    while todo:
        t = todo.pop()
        if t in found:
            continue
        found.add(t)
        p = producer.get(t)
        if p is not None and p.op_type not in RECURRENT and p.op_type != "Shape":
            todo.extend(i for i in p.input if i)
    return found


def _route(node, users, depth=6, failed=None) -> list:
    """Glue nodes from `node` to a recurrent node's initial state (with a description at the end), or [].
    `failed` remembers nodes that lead nowhere within a depth, so a DAG is not walked path by path."""
    failed = {} if failed is None else failed
    if depth == 0 or failed.get(id(node), 0) >= depth:
        return []
    for out in node.output:
        for n, s in users.get(out, []):
            if n.op_type in RECURRENT and s in SLOTS:
                return [node, f"{'initial_h' if s == 5 else 'initial_c'} of {describe(n)}"]
            if n.op_type in RECURRENT or n.op_type == "Shape":
                continue
            rest = _route(n, users, depth - 1, failed)
            if rest:
                return [node] + rest
    failed[id(node)] = depth
    return []


def _rows(node, consts) -> tuple[int, int] | None:
    """(start, stop) of a Slice over the first axis with step 1 and constant bounds, else None."""
    a = node_attrs(node)
    if "starts" in a:                                   # opset < 10
        starts, ends, axes, steps = a["starts"], a["ends"], a.get("axes", [0]), [1]
    else:
        vals = [consts.get(n) if n else None for n in list(node.input[1:5]) + [""] * (4 - len(node.input[1:5]))]
        if vals[0] is None or vals[1] is None:
            return None
        starts, ends = list(vals[0]), list(vals[1])
        axes = list(vals[2]) if vals[2] is not None else list(range(len(starts)))
        steps = list(vals[3]) if vals[3] is not None else [1] * len(starts)
    if list(axes) != [0] or list(steps) != [1] or starts[0] < 0 or ends[0] < 0 or ends[0] >= BIG:
        return None
    return int(starts[0]), int(ends[0])


def _axes(node, consts) -> list | None:
    a = node_attrs(node)
    if "axes" in a:
        return list(a["axes"])
    if len(node.input) > 1 and node.input[1] in consts:
        return [int(v) for v in consts[node.input[1]]]
    return None


def _constants(g) -> dict:
    """The small constants (slice bounds, axes) the state glue is recognised by; weights and any tensor
    that does not decode are left to the reader, which reports them."""
    tensors = [(t.name, t) for t in g.initializer]
    tensors += [(n.output[0], n.attribute[0].t) for n in g.node
                if n.op_type == "Constant" and n.output and n.attribute and n.attribute[0].name == "value"]
    out = {}
    for name, t in tensors:
        if int(np.prod(t.dims, dtype=np.float64)) > _SMALL:
            continue
        try:
            out[name] = np.atleast_1d(numpy_helper.to_array(t))
        except Exception:  # noqa: BLE001 - a damaged tensor: the reader's own checks name it
            continue
    return out


_SMALL = 64


def _source(name: str, producer: dict, cut: set) -> bool:
    """True when tensor `name` is a cut graph input, or an Identity, Slice or Unsqueeze of one (walked back
    through `producer`; scanning every node per step was quadratic)."""
    seen = set()
    while name not in cut:
        n = producer.get(name)
        if n is not None and n.op_type == "Concat" and name not in seen:     # per-direction states (state_dirs)
            return all(_source(i, producer, cut) for i in n.input)
        if n is None or n.op_type not in ("Identity", "Slice", "Unsqueeze") or not n.input or name in seen:
            return False
        seen.add(name)
        name = n.input[0]
    return True


def _key(node) -> str:
    return node.name or node.output[0]


def _dirs(node) -> int:
    return 2 if node_attrs(node).get("direction") == "bidirectional" else 1


def _attr(node, name):
    return node_attrs(node).get(name)


def _keep(container, pred) -> None:
    keep = [x for x in container if pred(x)]
    del container[:]
    container.extend(keep)
