"""If nodes of the main graph replaced by the branch they take (`--if NAME=then|else`, read option `branches`).

A branch is taken when the user names it (by the If node's name or its condition tensor's), when the condition is
a constant of the file, or, given `feeds` (each a dict of graph inputs), when onnxruntime finds the same value for
it on every one of them (a note says so: other inputs may take the other branch).  The branch's nodes and
initializers take the If node's place, an Identity per output keeps the If's output names; an If a taken branch
holds is then a node of the main graph and is decided the same way, until none is left that can be.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...errors import InputError, UnsupportedError

CHOICES = ("then", "else")


def fix(proto: onnx.ModelProto, choices: dict, path: str, feeds: list | None = None) -> tuple[onnx.ModelProto, list]:
    """(the model with every decidable If inlined, notes); `proto` itself when there is no If to decide."""
    for name, branch in choices.items():
        if branch not in CHOICES:
            raise InputError(f"--if {name}={branch}: the branch is 'then' or 'else'", path=path)
    out, notes, used = proto, [], set()
    while True:
        g = out.graph
        consts = _constants(g)
        decided = {}
        for k, node in enumerate(g.node):
            if node.op_type != "If":
                continue
            key = next((n for n in (node.name, *node.input[:1]) if n in choices), None)
            if key is not None:
                decided[k] = (choices[key] == "then", f"as --if {key}={choices[key]} says")
                used.add(key)
            elif node.input and node.input[0] in consts and np.asarray(consts[node.input[0]]).size == 1:
                decided[k] = (bool(np.asarray(consts[node.input[0]]).reshape(-1)[0]), "its condition is a constant")
        if not decided and feeds:
            decided = _found(out, feeds)
        if not decided:
            break
        if out is proto:
            out = onnx.ModelProto()
            out.CopyFrom(proto)
        _inline(out.graph, decided, path, notes)
    unknown = sorted(set(choices) - used)
    if unknown:
        raise InputError(f"--if names {', '.join(repr(n) for n in unknown)}, which is not an If node of the graph (or "
                         "of a branch taken) nor its condition", path=path)
    return out, notes


def without_unused_inputs(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` without the graph inputs the outputs no longer depend on (a flag only the dropped branch's
    condition read): what the reader takes as the model's inputs."""
    g = proto.graph
    producer = {o: n for n in g.node for o in n.output if o}
    used, todo, seen = set(), [o.name for o in g.output], set()
    while todo:
        name = todo.pop()
        if name in used:
            continue
        used.add(name)
        node = producer.get(name)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        todo += [t for t in node.input if t] + sorted(_subgraph_inputs(node))
    keep = [i for i in g.input if i.name in used]
    del g.input[:]
    g.input.extend(keep)
    return proto


def _subgraph_inputs(node: onnx.NodeProto) -> set:
    names, todo = set(), [a.g for a in node.attribute if a.HasField("g")] + [s for a in node.attribute for s in a.graphs]
    while todo:
        sub = todo.pop()
        for n in sub.node:
            names.update(t for t in n.input if t)
            todo += [a.g for a in n.attribute if a.HasField("g")] + [s for a in n.attribute for s in a.graphs]
    return names


def _found(proto: onnx.ModelProto, feeds: list) -> dict:
    """{node index: (taken, why)} for the If nodes whose condition onnxruntime finds the same on every feed."""
    from .runtime import import_onnxruntime, quiet_options
    g = proto.graph
    ifs = [(k, n) for k, n in enumerate(g.node) if n.op_type == "If"]
    if not ifs:
        return {}
    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    names = [n.input[0] for _, n in ifs]
    have = {o.name for o in probe.graph.output}
    probe.graph.output.extend([helper.make_tensor_value_info(c, onnx.TensorProto.BOOL, None)
                               for c in dict.fromkeys(names) if c not in have])
    ort = import_onnxruntime()
    opts = quiet_options(ort)
    opts.log_severity_level = 4       # an input the graph cannot run on is skipped, not logged
    try:
        sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - onnxruntime cannot load it: nothing is found
        return {}
    values = []
    for f in feeds:
        try:
            values.append(dict(zip(names, sess.run(names, f))))
        except Exception:  # noqa: BLE001 - the graph cannot run on this input (verification says so too)
            continue
    if not values:
        return {}
    out = {}
    for k, n in ifs:
        seen = {bool(np.asarray(v[n.input[0]]).reshape(-1)[0]) if np.asarray(v[n.input[0]]).size == 1 else None
                for v in values}
        if len(seen) == 1 and None not in seen:
            out[k] = (seen.pop(), f"its condition had this value on every input verification ran ({len(values)} "
                                  f"set{'s' if len(values) > 1 else ''}); other inputs may take the other branch")
    return out


def _inline(g: onnx.GraphProto, decided: dict, path: str, notes: list) -> None:
    taken = {t for n in g.node for t in list(n.output)} | {i.name for i in g.initializer} | {i.name for i in g.input}
    nodes = []
    for k, node in enumerate(g.node):
        if k not in decided:
            nodes.append(node)
            continue
        then, why = decided[k]
        attr = "then_branch" if then else "else_branch"
        body = next((a.g for a in node.attribute if a.name == attr), None)
        if body is None:
            raise InputError(f"If node '{node.name}': no {attr}", path=path)
        clash = sorted(({t for n in body.node for t in n.output if t} | {i.name for i in body.initializer}) & taken)
        if clash:
            raise UnsupportedError(f"If node '{node.name}': its {attr} names '{clash[0]}' as the graph around it "
                                   "does; rnnconvert does not rename tensors to inline it", path=path)
        if len(body.output) != len(node.output):
            raise InputError(f"If node '{node.name}': its {attr} has {len(body.output)} outputs, the node "
                             f"{len(node.output)}", path=path)
        nodes.extend(body.node)
        g.initializer.extend(body.initializer)
        for inner, outer in zip(body.output, node.output):
            if outer:
                nodes.append(helper.make_node("Identity", [inner.name], [outer], name=f"{node.name}/{attr}/{outer}"))
        taken |= {t for n in body.node for t in n.output} | {i.name for i in body.initializer}
        notes.append(f"If node '{node.name}': the {attr.split('_')[0]} branch taken ({why}); the other is dropped")
    del g.node[:]
    g.node.extend(nodes)


def _constants(g: onnx.GraphProto) -> dict:
    fed = {i.name for i in g.input}          # an initializer that is also a graph input can be overridden
    out = {t.name: t for t in g.initializer if t.name not in fed and (not t.dims or int(np.prod(t.dims)) == 1)}
    out.update({n.output[0]: a.t for n in g.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"})
    values = {}
    for k, v in out.items():
        try:
            values[k] = numpy_helper.to_array(v)
        except Exception:  # noqa: BLE001 - a damaged tensor: the reader's own checks name it
            continue
    return values
