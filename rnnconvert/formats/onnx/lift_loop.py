"""Recurrent cells written as a `Loop` of the main graph, lifted into native LSTM/GRU/RNN nodes before the
reader walks the graph, so a lifted layer reads (and lists, per layer) exactly as a native node would.

Two ways exporters feed and collect the steps are recognised:
  tf2onnx       x_t = Gather(X [T, B, F], i) with i the iteration number or a carried counter
                (+1 per step from 0), the new h as a scan output [T, B, H]; weights passed in as carried
                values the body returns unchanged, or read from the outer graph;
  torch script  x_t = SequenceAt(SplitToSequence(X, axis, keepdims=0), i), the new h appended with
                SequenceInsert to a carried SequenceEmpty, ConcatFromSequence(axis, new_axis=1) after.
The body is matched by `cell_match`/`cell_templates`; the match is accepted only once onnxruntime runs
the body's step and the native node on the same random inputs and states and they agree to float32
precision (`_confirm`); without onnxruntime the lift is refused, never taken unchecked.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...errors import UnsupportedError
from . import cell_match as cm
from . import lift_lengths, lift_mask
from .cell_templates import Cell, match
from .lift_rewrite import Refused, _prune, _rewrite, check

TOL = 2e-5          # float32 precision over a cell step of saturating inputs


def _attr(node, name, default=None):
    a = next((a for a in node.attribute if a.name == name), None)
    return default if a is None else helper.get_attribute_value(a)


def _producers(graph):
    return {o: n for n in graph.node for o in n.output if o}


def lift(proto: onnx.ModelProto, path: str, consts, opset: int, masks: dict | None = None
         ) -> tuple[onnx.ModelProto, list[str]]:
    """The model with every Loop of the main graph that computes a cell replaced by a native node.
    `consts.get(name)` gives a main-graph constant (None for run-time values).  Returns (model, names of
    the lifted nodes); raises UnsupportedError naming the node and the op when a Loop does not fit and the
    graph holds no native recurrent node to read instead.  With `masks` (a dict), a Loop whose body reads a
    mask (`lift_mask`) is lifted too, unmasked, and its MaskInfo recorded under the native node's name: the
    graph alone then no longer computes the mask, the reader puts it into the canonical model."""
    g = proto.graph
    loops = [n for n in g.node if n.op_type == "Loop"]
    if not loops:
        return proto, []
    native = any(n.op_type in ("LSTM", "GRU", "RNN") for n in g.node)
    new = onnx.ModelProto()
    new.CopyFrom(proto)
    g = new.graph
    lifted = []
    for first in [n.output[0] for n in g.node if n.op_type == "Loop"]:
        loop = next(n for n in g.node if n.output[0] == first)      # the rewrite replaces the node list
        name = loop.name or loop.output[0]
        masked = None
        if masks is not None:
            try:
                masked = lift_mask.unmask(g, loop, consts)
            except Refused as exc:
                if native:
                    continue
                raise UnsupportedError(f"Loop node '{name}' reads a mask, but {_describe(exc.node)} {exc.reason}; "
                                       "nothing was lifted", path=path, layer=name) from None
            except (KeyError, IndexError, ValueError, TypeError, AttributeError):
                continue
        lengths = None
        if masked is None:
            try:
                lengths = lift_lengths.unlength(g, loop, consts)
            except Refused as exc:
                if native:
                    continue
                raise UnsupportedError(f"Loop node '{name}' stops sequences at their lengths, but "
                                       f"{_describe(exc.node)} {exc.reason}; nothing was lifted", path=path,
                                       layer=name) from None
            except (KeyError, IndexError, ValueError, TypeError, AttributeError):
                continue
        if masked is not None or lengths is not None:
            original = onnx.NodeProto()
            original.CopyFrom(loop)
            loop.CopyFrom((masked or lengths)[0])
        try:
            plan = _plan(g, loop, consts)
        except (Refused, KeyError, IndexError, ValueError, TypeError, AttributeError):
            if masked is not None or lengths is not None:
                loop.CopyFrom(original)
            continue             # not a loop over the steps of a sequence: the reader says what it found
        except cm.NoCell as exc:
            if masked is not None or lengths is not None:
                loop.CopyFrom(original)
            if native:
                continue
            raise UnsupportedError(f"Loop node '{name}' does not compute an LSTM, GRU or RNN cell: its "
                                   f"{_describe(exc.node)} does not fit ({exc.why}); nothing was lifted",
                                   path=path, layer=name) from None
        try:
            check(g, loop, plan)
            _confirm(plan, opset)
            if masked is not None:
                lift_mask.same_order(g, plan, masked[2])
                lift_mask.confirm(plan, masked[1], masked[3], opset, _native_model, TOL)
            if lengths is not None:
                lift_lengths.confirm(plan, lengths[1], lengths[2], opset, _native_model, TOL)
                plan.seq_lens = lengths[1]
        except Refused as exc:
            if masked is not None or lengths is not None:
                loop.CopyFrom(original)
            if native:
                continue
            who = "it" if exc.node is loop else f"its {_describe(exc.node)}"
            raise UnsupportedError(f"Loop node '{name}' is not lifted: {who} {exc.reason}", path=path,
                                   layer=name) from None
        _rewrite(g, loop, plan, name, opset)
        if masked is not None:
            masks[name] = masked[1]
            lift_mask.unmasked_input(g, masked[1])
        lifted.append(name)
    _prune(g)
    return new, lifted


def _describe(node) -> str:
    return f"{node.op_type} node '{node.name or node.output[0]}'" if node is not None else "body"


class _Plan:
    pass


def _plan(g, loop, consts) -> _Plan:
    body = _attr(loop, "body")
    n_carried = len(loop.input) - 2
    b_in = [i.name for i in body.input]
    b_out = [o.name for o in body.output]
    prod = _producers(body)
    p = _Plan()
    p.consts = consts
    p.x_src = p.x_axis = p.x_node = None
    p.states, p.seq, p.const_in = [], None, {}
    counters = {b_in[0]}
    for k in range(n_carried):
        bi, bo, init = b_in[2 + k], b_out[1 + k], loop.input[2 + k]
        src = _producers(g).get(init)
        if bo == bi:                                  # passed through unchanged: a weight
            v = consts.get(init)
            p.const_in[bi] = cm.Opaque() if v is None else np.asarray(v)    # a run-time bound: not the cell's
        elif src is not None and src.op_type == "SequenceEmpty":
            ins = prod.get(bo)
            if ins is None or ins.op_type != "SequenceInsert" or ins.input[0] != bi or len(ins.input) > 2:
                raise Refused(ins or loop, "builds a sequence other than by appending each step")
            p.seq = (k, ins.input[1])
        elif prod.get(bo) is not None and prod[bo].op_type == "Add" and bi in prod[bo].input and \
                np.all(np.asarray(consts.get(init) if consts.get(init) is not None else -1) == 0) and \
                _is_one(prod[bo], bi, body, consts):
            counters.add(bi)
        else:
            p.states.append((k, bi, bo, init))
    if not 1 <= len(p.states) <= 2:
        raise Refused(loop, f"carries {len(p.states)} state tensors (a cell carries h, or h and c)")
    for node in body.node:                            # where the step reads x_t
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] in counters and \
                int(_attr(node, "axis", 0)) == 0 and node.input[0] not in prod and node.input[0] not in b_in:
            p.x_node, p.x_src, p.x_axis = node, node.input[0], 0
        elif node.op_type == "SequenceAt" and node.input[1] in counters and node.input[0] not in prod:
            split = _producers(g).get(node.input[0])
            if split is None or split.op_type != "SplitToSequence" or int(_attr(split, "keepdims", 1)) != 0 or \
                    (len(split.input) > 1 and split.input[1] and
                     np.asarray(consts.get(split.input[1]) if consts.get(split.input[1]) is not None else 0).size
                     != 1 or np.any(np.asarray(consts.get(split.input[1])) != 1)):
                raise Refused(node, "reads steps from a sequence that is not X split one step at a time")
            p.x_node, p.x_src, p.x_axis = node, split.input[0], int(_attr(split, "axis", 0))
    if p.x_node is None:
        raise Refused(loop, "reads no step x_t = X[i] of an outer tensor")
    p.body, p.loop, p.x_name = body, loop, p.x_node.output[0]
    cell_of(p, counters | {b_in[1]})
    p.y = _y_output(loop, body, p)
    return p


def cell_of(p, opaque: set) -> None:
    """Evaluate `p.body` (x_t is `p.x_name`; `p.states` (k, body input, body output, initial value) the
    carried states; `p.const_in` the carried constants; `opaque` names that are not the cell's) and match
    it: sets p.h, p.c, p.H, p.F, p.env, p.cell."""
    body = p.body
    b_in = [i.name for i in body.input]
    prod = _producers(body)
    consts = p.consts
    env = {}
    for t in body.initializer:
        env[t.name] = numpy_helper.to_array(t)
    for node in body.node:
        for i in node.input:
            if i and i not in env and i not in prod and i not in b_in:
                v = consts.get(i)
                if v is not None:
                    env[i] = np.asarray(v)
    env.update(p.const_in)
    for c in opaque:
        env[c] = cm.Opaque()
    from ._fold import Folder
    fold = cm.fold_with(Folder(0, None, 17))
    steps = [n for n in body.node if n is not p.x_node]
    cm.evaluate(steps, env, fold)             # the constants first: weight slices size the states
    # which state is h: the one a matrix product reads; F and H from those products
    sizes = {}
    for node in body.node:
        if node.op_type in ("MatMul", "Gemm") and len(node.input) >= 2:
            w = env.get(node.input[1])
            w = w if isinstance(w, np.ndarray) else None
            if w is not None and w.ndim == 2:
                sizes[node.input[0]] = w.shape[1] if node.op_type == "Gemm" and _attr(node, "transB", 0) \
                    else w.shape[0]
    hs = [s for s in p.states if s[1] in sizes]
    if len(hs) != 1:
        raise Refused(p.loop, "has no single state read by a matrix product (the hidden state)")
    p.h = hs[0]
    p.c = next((s for s in p.states if s is not p.h), None)
    p.H = int(sizes[p.h[1]])
    if p.x_name not in sizes:
        raise Refused(p.x_node or p.loop, "gives a step no matrix product reads")
    p.F = int(sizes[p.x_name])
    env[p.x_name] = cm.var("x", p.F)
    env[p.h[1]] = cm.var("h", p.H)
    if p.c is not None:
        env[p.c[1]] = cm.var("c", p.H)
    cm.evaluate(steps, env, fold)
    p.env = env
    states = {"h": env.get(p.h[2])}
    if p.c is not None:
        states["c"] = env.get(p.c[2])
    for key, v in states.items():
        if not isinstance(v, cm.Poly):
            raise Refused(p.loop, f"returns a new {key} that is not computed from the step's values")
    nodes = {"h": _last_node(body, p.h[2])}
    if p.c is not None:
        nodes["c"] = _last_node(body, p.c[2])
    p.cell = match(nodes, states, p.F)


def _is_one(node, bi, body, consts) -> bool:
    other = next(i for i in node.input if i != bi)
    inits = {t.name: numpy_helper.to_array(t) for t in body.initializer}
    v = inits.get(other)
    v = consts.get(other) if v is None else v
    if v is None:
        prod = _producers(body).get(other)
        if prod is not None and prod.op_type == "Constant":
            v = numpy_helper.to_array(_attr(prod, "value"))
    return v is not None and np.asarray(v).size == 1 and float(np.asarray(v).reshape(-1)[0]) == 1.0


def _last_node(body, name):
    return _producers(body).get(name) or body.node[-1]


def _y_output(loop, body, p):
    """('scan', loop output) or ('seq', ConcatFromSequence is found later): the step output must be new h."""
    n_carried = len(loop.input) - 2
    h_new = p.env[p.h[2]]
    if p.seq is not None:
        k, y = p.seq
        ys = [("seq", loop.output[k])]
        v = p.env.get(y)
    else:
        scans = [o.name for o in body.output[1 + n_carried:]]
        if len(scans) != 1:
            raise Refused(loop, f"has {len(scans)} scan outputs (one step output, the new h, expected)")
        ys = [("scan", loop.output[n_carried])]
        v = p.env.get(scans[0])
    if not isinstance(v, cm.Poly) or not v.same(h_new):
        raise Refused(loop, "collects a step output that is not the new hidden state")
    return ys[0]


def _confirm(p: _Plan, opset: int) -> None:
    """onnxruntime: the body's step and the native node agree on random x, h (, c)."""
    from .runtime import import_onnxruntime, quiet_options
    try:
        ort = import_onnxruntime()
    except Exception as exc:  # noqa: BLE001
        raise Refused(p.loop, f"matches a {p.cell.kind.upper()} cell, but its check was not run ({exc}); "
                              "rnnconvert lifts a cell only once onnxruntime confirms it") from None
    rng = np.random.default_rng(0)
    B = 4
    scale = np.array([1.0, 0.3, 3.0, 6.0], np.float32)[:, None]
    x = (rng.standard_normal((B, p.F)) * scale).astype(np.float32)
    h = (rng.standard_normal((B, p.H)) * scale).astype(np.float32)
    c = (rng.standard_normal((B, p.H)) * scale).astype(np.float32)
    step = _step_model(p, opset)
    so = quiet_options(ort)
    feeds = {p.x_name: x, p.h[1]: h, **({p.c[1]: c} if p.c else {})}
    try:
        got = ort.InferenceSession(step.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception as exc:  # noqa: BLE001
        raise Refused(p.loop, f"matches a {p.cell.kind.upper()} cell, but onnxruntime cannot run its step alone "
                              f"({str(exc).splitlines()[0][:160]})") from None
    ref = ort.InferenceSession(_native_model(p.cell, opset, p.c is not None).SerializeToString(), so,
                               providers=["CPUExecutionProvider"]).run(None, {"X": x[None], "h0": h[None],
                                                                               **({"c0": c[None]} if p.c else {})})
    for what, a, b in zip(("h", "c"), got, ref):
        diff = float(np.max(np.abs(a - b[0])))
        if not diff <= TOL * (1 + float(np.max(np.abs(b)))):
            raise Refused(p.loop, f"looks like a {p.cell.kind.upper()} cell, but its step differs from the native "
                                  f"node's by {diff:.3g} in the new {what} (onnxruntime, random x and states)")


def _step_model(p: _Plan, opset: int) -> onnx.ModelProto:
    body = p.body
    outs = [p.h[2]] + ([p.c[2]] if p.c else [])
    need, keep = set(outs), []
    for node in reversed(list(body.node)):
        if node is p.x_node or not any(o in need for o in node.output):
            continue
        keep.append(node)
        need.update(i for i in node.input if i)
    keep.reverse()
    inputs = [p.x_name, p.h[1]] + ([p.c[1]] if p.c else [])
    produced = {o for n in keep for o in n.output} | set(inputs)
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in p.env.items()
             if k in need and k not in produced and isinstance(v, np.ndarray)]
    sizes = [p.F, p.H, p.H]
    vi = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [None, s]) for n, s in zip(inputs, sizes)]
    ov = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in outs]
    if any(n == p.h[1] for n in outs):
        raise Refused(p.loop, "returns its hidden state unchanged")
    graph = helper.make_graph(keep, "step", vi, ov, initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = min(m.ir_version, 8)
    return m


def _native_model(cell: Cell, opset: int, lstm: bool) -> onnx.ModelProto:
    ins = ["X", "W", "R", "B", "", "h0"] + (["c0"] if lstm else [])
    outs = ["Y", "Y_h"] + (["Y_c"] if lstm else [])
    node = helper.make_node(cell.kind.upper(), ins, outs, **cell.attributes())
    inits = [numpy_helper.from_array(a.astype(np.float32)[None], n) for n, a in (("W", cell.W), ("R", cell.R),
                                                                                  ("B", cell.B))]
    vi = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ["X", "h0"] + (["c0"] if lstm else [])]
    ov = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in outs[1:]]
    m = helper.make_model(helper.make_graph([node], "native", vi, ov, initializer=inits),
                          opset_imports=[helper.make_opsetid("", max(opset, 14))])
    m.ir_version = min(m.ir_version, 8)
    return m
