"""Sequence lengths inside Loop bodies, as torch.onnx.export writes a `torch.jit.script`ed loop that stops each
sequence at its length: the body compares the step counter with an outer `lengths` [B] tensor,
m = Unsqueeze(Greater(lengths, t), 1) (or Less(t, lengths)), and mixes with it,

    state       Where(m, new, old)       kept from step lengths[b] on
    output      Where(m, new, zeros)     zeros from step lengths[b] on

which is what a native node's `sequence_lens` does (steps past the length leave Y zero and Y_h, Y_c at the last
step within it).  `unlength` gives the Loop with each Where taken as its new value, which `lift_loop` matches
and checks as any cell; `confirm` then runs the original body in onnxruntime at step 2 with lengths that stop
two rows before it, against the native node; the lifted node gets `sequence_lens` = Cast(lengths, int32)
(`lift_rewrite`).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .lift_rewrite import Refused, _attr, step_alone


def _producers(graph):
    return {o: n for n in graph.node for o in n.output if o}


def _const(body, prod, consts, name):
    n = prod.get(name)
    if n is not None and n.op_type == "Constant":
        return numpy_helper.to_array(_attr(n, "value"))
    init = {t.name: t for t in body.initializer}
    return numpy_helper.to_array(init[name]) if name in init else consts.get(name)


def _counters(g, loop, body, consts) -> set:
    """The body's step counters: the iteration number, and carried values that start at 0 and add 1."""
    prod = _producers(body)
    b_in, b_out = [i.name for i in body.input], [o.name for o in body.output]
    out = {b_in[0]}
    for k in range(len(loop.input) - 2):
        bi, bo, init = b_in[2 + k], b_out[1 + k], loop.input[2 + k]
        add = prod.get(bo)
        start = consts.get(init)
        if start is None:
            src = _producers(g).get(init)
            start = numpy_helper.to_array(_attr(src, "value")) if src is not None and src.op_type == "Constant" else None
        if add is None or add.op_type != "Add" or bi not in add.input or start is None or np.any(start != 0):
            continue
        one = _const(body, prod, consts, next(i for i in add.input if i != bi))
        if one is not None and np.asarray(one).size == 1 and float(np.asarray(one).reshape(-1)[0]) == 1:
            out.add(bi)
    return out


def _is_zeros(body, prod, consts, name) -> bool:
    n = prod.get(name)
    if n is not None and n.op_type == "ConstantOfShape":
        v = _attr(n, "value")
        return v is None or not np.any(numpy_helper.to_array(v))
    v = _const(body, prod, consts, name)
    return v is not None and not np.any(v)


def unlength(g, loop, consts):
    """(the Loop with each Where by the lengths mask taken as its new value, the lengths tensor, {what confirm
    needs}) for a Loop whose body compares its step with an outer lengths tensor, else None.  Raises Refused
    where the mask is used otherwise."""
    body = _attr(loop, "body")
    prod = _producers(body)
    b_in, b_out = [i.name for i in body.input], [o.name for o in body.output]
    counters = _counters(g, loop, body, consts)

    def outer(name):
        return name not in prod and name not in b_in and _const(body, prod, consts, name) is None

    cmp = [n for n in body.node if (n.op_type == "Greater" and n.input[1] in counters and outer(n.input[0])) or
           (n.op_type == "Less" and n.input[0] in counters and outer(n.input[1]))]
    if not cmp:
        return None
    if len(cmp) > 1:
        raise Refused(cmp[1], "compares the step with a second lengths tensor")
    node = cmp[0]
    lengths, t = (node.input[0], node.input[1]) if node.op_type == "Greater" else (node.input[1], node.input[0])
    masks = {node.output[0]}
    for n in body.node:
        if n.op_type == "Unsqueeze" and n.input[0] == node.output[0]:
            axes = _const(body, prod, consts, n.input[1]) if len(n.input) > 1 else _attr(n, "axes")
            if axes is None or list(np.asarray(axes).reshape(-1)) not in ([1], [-1]):
                raise Refused(n, "unsqueezes the lengths mask on an axis other than 1")
            masks.add(n.output[0])
    users = [n for n in body.node if any(i in masks for i in n.input) and n.output[0] not in masks]
    states = {b_in[2 + k]: b_out[1 + k] for k in range(len(loop.input) - 2)}
    inserted = {n.input[1] for n in body.node if n.op_type == "SequenceInsert"} | set(b_out[len(loop.input) - 1:])
    wheres = []
    for n in users:
        if n.op_type != "Where" or n.input[0] not in masks:
            raise Refused(n, "uses the lengths mask other than to pick the new or the old value (Where)")
        old = n.input[2]
        if old in states and states[old] == n.output[0]:
            wheres.append((n, "state"))
        elif n.output[0] in inserted and _is_zeros(body, prod, consts, old):
            wheres.append((n, "output"))
        else:
            raise Refused(n, "keeps on steps past a sequence's length a value that is neither the old state nor "
                             "zeros in the output")
    if not any(kind == "output" for _, kind in wheres):
        raise Refused(loop, "outputs steps past a sequence's length other than as zeros")
    new_body = onnx.GraphProto()
    new_body.CopyFrom(body)
    names = {n.output[0] for n, _ in wheres}
    for n in new_body.node:
        if n.op_type == "Where" and n.output[0] in names:
            new = n.input[1]
            del n.input[:]
            n.input.append(new)
            n.op_type = "Identity"
    from .lift_mask import _prune_body
    _prune_body(new_body)
    clean = onnx.NodeProto()
    clean.CopyFrom(loop)
    next(a for a in clean.attribute if a.name == "body").g.CopyFrom(new_body)
    return clean, lengths, {"body": body, "t": t, "wheres": wheres}


def confirm(p, lengths: str, extra: dict, opset: int, native_model, tol: float) -> None:
    """onnxruntime: the original body at step 2 with lengths [5, 1, 3, 2] (rows 1 and 3 past their length) gives
    the native node's new states and output for rows 0 and 2, and the old states and zeros for rows 1 and 3."""
    body = extra["body"]
    rng = np.random.default_rng(2)
    B = 4
    scale = np.array([1.0, 0.3, 3.0, 6.0], np.float32)[:, None]
    on = np.array([[True], [False], [True], [False]])
    feeds = {p.x_name: (rng.standard_normal((B, p.F)) * scale).astype(np.float32),
             extra["t"]: np.array(2, np.int64), lengths: np.array([5, 1, 3, 2], np.int64)}
    old = {}
    for st in [p.h] + ([p.c] if p.c else []):
        old[st[1]] = feeds[st[1]] = (rng.standard_normal((B, p.H)) * scale).astype(np.float32)
    outs = [n.output[0] for n, _ in extra["wheres"]]
    h, c = old[p.h[1]], old.get(p.c[1]) if p.c else None
    got, ref = step_alone(p, body, feeds, outs, opset, "lengths_step",
                          f"matches a {p.cell.kind.upper()} cell stopped by lengths", native_model, feeds[p.x_name], h, c)
    for (n, kind), a in zip(extra["wheres"], got):
        if kind == "output":
            want = np.where(on, ref[0][0], 0)
        else:
            state = p.h if n.input[2] == p.h[1] else p.c
            want = np.where(on, ref[0 if state is p.h else 1][0], old[state[1]])
        diff = float(np.max(np.abs(a - want)))
        if not diff <= tol * (1 + float(np.max(np.abs(want)))):
            raise Refused(p.loop, f"looks like a {p.cell.kind.upper()} cell stopped by lengths, but its {kind} "
                                  f"'{n.output[0]}' differs from the native node's with sequence_lens by {diff:.3g} "
                                  "(onnxruntime, random x, states and lengths)")
