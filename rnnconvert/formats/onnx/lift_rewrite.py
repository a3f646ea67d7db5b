"""The graph surgery of a lift (`lift_loop`, `lift_unrolled`): a confirmed Loop replaced, at its place, by a native
LSTM/GRU/RNN node over time-major X, its Y/Y_h/Y_c squeezed back to the shapes the Loop's outputs had
(the step outputs [T, B, H], or a torch ConcatFromSequence's [B, T, H]; final states [B, H]); zero
initial states (ConstantOfShape/Expand of 0) left out, others fed through Unsqueeze.  Nodes no graph
output needs any more (the loop's counters and conditions) are pruned.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


class Refused(Exception):
    """A Loop that does not lift as a whole (how it feeds or collects steps); `node` names where."""

    def __init__(self, node, reason: str):
        super().__init__(reason)
        self.node, self.reason = node, reason


def _attr(node, name, default=None):
    a = next((a for a in node.attribute if a.name == name), None)
    return default if a is None else helper.get_attribute_value(a)


def _is_zero(g, name, consts) -> bool:
    v = consts.get(name)
    if v is not None:
        return not np.any(v)
    src = next((n for n in g.node if name in n.output), None)
    if src is None:
        return False
    if src.op_type == "ConstantOfShape":
        value = _attr(src, "value")
        return value is None or not np.any(numpy_helper.to_array(value))
    if src.op_type == "Expand":
        v = consts.get(src.input[0])
        return v is not None and not np.any(v)
    return False


def check(g, loop, p) -> None:
    """Refuse (lift_loop.Refused) what the rewrite cannot place, before anything is changed."""
    if p.x_axis not in (0, 1):
        raise Refused(p.x_node, f"reads steps along axis {p.x_axis} of X (0 or 1 expected)")
    p.concat = None
    if p.y[0] == "seq":
        users = [n for n in g.node if p.y[1] in n.input]
        if len(users) != 1 or users[0].op_type != "ConcatFromSequence" or int(_attr(users[0], "new_axis", 0)) != 1 \
                or int(_attr(users[0], "axis", 0)) not in (0, 1) or any(o.name == p.y[1] for o in g.output):
            raise Refused(loop, "collects its steps into a sequence used other than by one "
                                "ConcatFromSequence(axis 0 or 1, new_axis=1)")
        p.concat = users[0]


def _rewrite(g, loop, p, name: str, opset: int) -> None:
    cell, consts = p.cell, p.consts
    made, inits = [], []

    def const(suffix, array, dtype=np.float32):
        inits.append(numpy_helper.from_array(np.asarray(array, dtype), f"{name}/{suffix}"))
        return f"{name}/{suffix}"

    def squeeze(src, axis, out):
        if opset >= 13:
            made.append(helper.make_node("Squeeze", [src, const(f"axis{axis}", [axis], np.int64)], [out],
                                         name=f"{out}/squeeze"))
        else:
            made.append(helper.make_node("Squeeze", [src], [out], axes=[axis], name=f"{out}/squeeze"))

    x = p.x_src
    if p.x_axis == 1:
        x = f"{name}/X_time_major"
        made.append(helper.make_node("Transpose", [p.x_src], [x], perm=[1, 0, 2], name=f"{name}/to_time_major"))
    states = []
    for st, suffix in ((p.h, "h0"), (p.c, "c0")):
        if st is None:
            continue
        init = st[3]
        v = consts.get(init)
        if _is_zero(g, init, consts):
            states.append("")
        elif v is not None:
            v = np.asarray(v, np.float32).reshape(1, -1, cell.hidden)
            states.append(const(suffix, v))
        else:
            out = f"{name}/{suffix}"
            if opset >= 13:
                made.append(helper.make_node("Unsqueeze", [init, const(f"{suffix}_axis", [0], np.int64)], [out],
                                             name=f"{out}/unsqueeze"))
            else:
                made.append(helper.make_node("Unsqueeze", [init], [out], axes=[0], name=f"{out}/unsqueeze"))
            states.append(out)
    lens = ""
    if getattr(p, "seq_lens", None):          # a body that stops each sequence at its length (lift_lengths)
        lens = f"{name}/sequence_lens"
        made.append(helper.make_node("Cast", [p.seq_lens], [lens], to=onnx.TensorProto.INT32, name=f"{lens}/cast"))
    ins = [x, const("W", cell.W[None]), const("R", cell.R[None]), const("B", cell.B[None]), lens] + states
    while ins and not ins[-1]:
        ins.pop()
    outs = [f"{name}/Y", f"{name}/Y_h"] + ([f"{name}/Y_c"] if p.c else [])
    made.append(helper.make_node(cell.kind.upper(), ins, outs, name=name, **cell.attributes(),
                                 **({"direction": p.direction} if getattr(p, "direction", "forward") != "forward"
                                    else {})))
    squeeze(outs[1], 0, loop.output[p.h[0]])
    if p.c:
        squeeze(outs[2], 0, loop.output[p.c[0]])
    if p.concat is None and getattr(p, "y_axis", 0) == 1:      # a Scan's outputs stacked on axis 1
        squeeze(outs[0], 1, f"{name}/Y_steps")
        made.append(helper.make_node("Transpose", [f"{name}/Y_steps"], [p.y[1]], perm=[1, 0, 2],
                                     name=f"{name}/to_batch_major"))
    elif p.concat is None:
        squeeze(outs[0], 1, p.y[1])
    else:
        axis = int(_attr(p.concat, "axis", 0))
        target = p.concat.output[0]
        squeeze(outs[0], 1, target if axis == 0 else f"{name}/Y_steps")
        if axis == 1:
            made.append(helper.make_node("Transpose", [f"{name}/Y_steps"], [target], perm=[1, 0, 2],
                                         name=f"{name}/to_batch_major"))
    nodes = []
    for n in g.node:
        if n is loop:
            nodes.extend(made)
        elif n is not p.concat:
            nodes.append(n)
    g.ClearField("node")
    g.node.extend(nodes)
    g.initializer.extend(inits)


def _names(node) -> set:
    out = {i for i in node.input if i}
    for a in node.attribute:
        for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
            for n in sub.node:
                out |= _names(n)
    return out


def _prune(g: onnx.GraphProto) -> None:
    """Drop nodes no graph output depends on (the lifted loops' counters, conditions and zero states)."""
    need = {o.name for o in g.output}
    keep = []
    for n in reversed(list(g.node)):
        if any(o in need for o in n.output):
            keep.append(n)
            need |= _names(n)
    keep.reverse()
    if len(keep) != len(g.node):
        g.ClearField("node")
        g.node.extend(keep)


def rewrite_unrolled(g, p, name, opset):
    """The steps of `p` (lift_unrolled._Plan) replaced by one native node; the stacking Concat of their
    Unsqueeze(h_t) by its Y, the last h / c by Y_h / Y_c."""
    attr = _attr
    cell = p.cell
    ax = lambda v: numpy_helper.from_array(np.asarray(v, np.int64), f"{name}/axes{len(inits)}")  # noqa: E731
    made, inits = [], []

    def node(op, ins, out, **kw):
        made.append(helper.make_node(op, ins, [out], name=f"{out}/{op.lower()}", **kw))
        return out

    def squeeze(src, axis, out):
        if opset >= 13:
            inits.append(ax([axis]))
            return node("Squeeze", [src, inits[-1].name], out)
        return node("Squeeze", [src], out, axes=[axis])

    x = p.x if p.axis == 0 else node("Transpose", [p.x], f"{name}/X_time_major", perm=[1, 0, 2])
    if p.axis not in (0, 1):
        raise Refused(None, f"the steps are slices along axis {p.axis} (0 or 1 expected)")
    for k, a in (("W", cell.W), ("R", cell.R), ("B", cell.B)):
        inits.append(numpy_helper.from_array(a.astype(np.float32)[None], f"{name}/{k}"))
    outs = [f"{name}/Y", f"{name}/Y_h"] + ([f"{name}/Y_c"] if cell.kind == "lstm" else [])
    made.append(helper.make_node(cell.kind.upper(), [x, f"{name}/W", f"{name}/R", f"{name}/B"], outs, name=name,
                                 **cell.attributes()))
    hs = [p.io[0][0][0]] + [io[1][0] for io in p.io]         # h_0 .. h_T-1
    cs = [p.io[0][0][1]] + [io[1][1] for io in p.io]
    cells = set()
    for t in range(p.T):
        need = {hs[t]} | ({cs[t]} if cs[t] else set())
        for n in reversed(p.steps[t]):
            if any(o in need for o in n.output):
                cells.add(id(n))
                need.update(i for i in n.input if i)
    outside = {}
    for n in g.node:
        if id(n) not in cells:
            for i in n.input:
                outside.setdefault(i, []).append(n)
    drop = set(cells)
    stack = [n for n in g.node if n.op_type == "Concat" and len(n.input) == p.T and all(
        _unsq(p.prod, i, hs[t], p.consts) is not None for t, i in enumerate(n.input))]
    for n in stack:
        drop.add(id(n))
        b = _unsq(p.prod, n.input[0], hs[0], p.consts)
        if int(attr(n, "axis", 0)) != b:
            raise Refused(None, "the steps' outputs are stacked along another axis than they were unsqueezed")
        seq = squeeze(outs[0], 1, n.output[0] if b == 0 else f"{name}/Y_steps")
        if b == 1:
            node("Transpose", [seq], n.output[0], perm=[1, 0, 2])
    stacked = {i for n in stack for i in n.input}
    for t in range(p.T):
        for v, final in ((hs[t], outs[1]), (cs[t], outs[2] if len(outs) > 2 else None)):
            users = [n for n in outside.get(v, []) if id(n) not in drop and not (n.op_type == "Unsqueeze" and
                                                                               n.output[0] in stacked)]
            if not users and not any(o.name == v for o in g.output):
                continue
            if t != p.T - 1 or final is None:
                raise Refused(None, f"step {t}'s state '{v}' is used outside the recurrence")
            squeeze(final, 0, v)
    nodes, placed = [], False
    for n in g.node:
        if id(n) in drop:
            if not placed:
                nodes.extend(made)
                placed = True
            continue
        nodes.append(n)
    g.ClearField("node")
    g.node.extend(nodes)
    g.initializer.extend(inits)


def _unsq(prod, name, h, consts):
    """The axis of `name` = Unsqueeze(h, axis), else None."""
    n = prod.get(name)
    if n is None or n.op_type != "Unsqueeze" or n.input[0] != h:
        return None
    axes = _attr(n, "axes")
    if axes is None and len(n.input) > 1:
        v = consts.get(n.input[1])
        axes = None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]
    return int(axes[0]) if axes and len(axes) == 1 else None


def step_alone(p, body, feeds: dict, outs: list, opset: int, name: str, what: str, native_model, x, h, c):
    """(got, ref): the Loop body's outputs `outs` computed alone by onnxruntime from `feeds` (its nodes that
    lead to them, its constants from `p.env`), and the native node of `p.cell` (`native_model`) run from the
    same x, h and c.  A body onnxruntime cannot run alone is refused: it `what` (a phrase: 'matches a masked
    GRU cell'), but ..."""
    from .runtime import import_onnxruntime, quiet_options
    ort = import_onnxruntime()
    need, keep = set(outs), []
    for node in reversed(list(body.node)):
        if any(o in feeds for o in node.output) or not any(o in need for o in node.output):
            continue
        keep.append(node)
        need.update(i for i in node.input if i)
    keep.reverse()
    produced = {o for n in keep for o in n.output} | set(feeds)
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in p.env.items()
             if k in need and k not in produced and isinstance(v, np.ndarray)]
    vi = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape))
          for n, a in feeds.items() if n in need]
    ov = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in outs]
    m = helper.make_model(helper.make_graph(keep, name, vi, ov, initializer=inits),
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = min(m.ir_version, 8)
    so = quiet_options(ort)
    try:
        got = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(
            None, {k: v for k, v in feeds.items() if k in need})
    except Exception as exc:  # noqa: BLE001 - onnxruntime's refusal becomes ours, naming the Loop
        raise Refused(p.loop, f"{what}, but onnxruntime cannot run its step alone "
                              f"({str(exc).splitlines()[0][:160]})") from None
    ref = ort.InferenceSession(native_model(p.cell, opset, p.c is not None).SerializeToString(), so,
                               providers=["CPUExecutionProvider"]).run(
        None, {"X": x[None], "h0": h[None], **({"c0": c[None]} if p.c else {})})
    return got, ref
