"""Masks inside Loop bodies, as tf2onnx writes a Keras recurrent layer behind `Masking` or
`Embedding(mask_zero=True)`: the body reads the step's mask m_t = Gather(M [T, B, 1] bool, i) beside x_t and
mixes with it, new = Cast(m)*cell + Cast(Not m)*old (or Where(m, cell, old)):

    state       h, c   kept where the mask is off (old = the state's own carried value)
    output      y_t    the previous output (old = a carried copy of the last output: `previous`) or zeros
                       (old = a carried zero tensor: `zero`, Keras' zero_output_for_mask)

M is Transpose(perm 1, 0, 2) (then ReverseSequence for a backward layer, as X) of
    Masking(v)          Greater(ReduceSum(Cast(Not(Equal(s, v))), -1, keepdims), 0), s the masked input
    mask_zero           Unsqueeze(Not(Equal(ids, 0)), -1), ids the embedding's ids.
`unmask` gives the Loop without the mask (state outputs the cell's, the step output the new h, the carried
output copies dropped), which `lift_loop` matches and checks as any cell; `confirm` then runs the original
body in onnxruntime with random masks against the native node.  The reader gets `MaskInfo` per lifted node
and puts the mask into the canonical model (`apply`): a `Masking` layer before the first layer, or
`mask_zero` on the embedding, and each layer's `masked_output`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import onnx
from onnx import helper

from ...errors import UnsupportedError
from .lift_rewrite import Refused, _attr, _is_zero, step_alone


@dataclass(frozen=True)
class MaskInfo:
    kind: str                 # "masking" | "mask_zero"
    value: float              # Masking's mask_value (0 for mask_zero)
    source: str               # the masked input s, or the embedding's ids
    masked_output: str        # "previous" | "zero"


def _producers(graph):
    return {o: n for n in graph.node for o in n.output if o}


def _skip(prod, name, ops=("Identity",)):
    while name in prod and prod[name].op_type in ops:
        name = prod[name].input[0]
    return name


def _mask_source(g, consts, name):
    """(MaskInfo fields kind, value, source, reversed) of an outer mask tensor, or None."""
    prod = _producers(g)
    n = prod.get(name)
    rev = False
    if n is not None and n.op_type == "ReverseSequence":
        rev, n = True, prod.get(n.input[0])
    if n is None or n.op_type != "Transpose" or list(_attr(n, "perm", [])) != [1, 0, 2]:
        return None
    n = prod.get(n.input[0])
    if n is not None and n.op_type == "Greater" and np.all(np.asarray(consts.get(n.input[1]) if
                                                                      consts.get(n.input[1]) is not None else 1) == 0):
        s = prod.get(n.input[0])
        if s is None or s.op_type not in ("ReduceSum", "ReduceMax"):
            return None
        axes = consts.get(s.input[1]) if len(s.input) > 1 and s.input[1] else _attr(s, "axes")
        if axes is None or list(np.asarray(axes).reshape(-1)) not in ([-1], [2]) or not _attr(s, "keepdims", 1):
            return None
        c = prod.get(s.input[0])
        n = prod.get(c.input[0]) if c is not None and c.op_type == "Cast" else None
        kind = "masking"
    elif n is not None and n.op_type == "Unsqueeze":
        axes = consts.get(n.input[1]) if len(n.input) > 1 else _attr(n, "axes")
        if axes is None or list(np.asarray(axes).reshape(-1)) not in ([-1], [2]):
            return None
        n = prod.get(n.input[0])
        kind = "mask_zero"
    else:
        return None
    if n is None or n.op_type != "Not":
        return None
    eq = prod.get(n.input[0])
    if eq is None or eq.op_type != "Equal":
        return None
    v = consts.get(eq.input[1])
    if v is None or np.asarray(v).size != 1 or (kind == "mask_zero" and float(np.asarray(v).reshape(-1)[0]) != 0):
        return None
    return kind, float(np.asarray(v).reshape(-1)[0]), eq.input[0], rev


def _mix(prod, name, m):
    """(value where the mask is on, value where it is off) of `name` = a mix by m, else None."""
    n = prod.get(_skip(prod, name))
    if n is None:
        return None
    if n.op_type == "Where" and _skip(prod, n.input[0]) == m:
        return n.input[1], n.input[2]
    if n.op_type != "Add" or len(n.input) != 2:
        return None
    on = off = None
    for t in n.input:
        mul = prod.get(t)
        if mul is None or mul.op_type != "Mul":
            return None
        for j in (0, 1):
            f = prod.get(mul.input[j])
            if f is None or f.op_type != "Cast" or _attr(f, "to") != onnx.TensorProto.FLOAT:
                continue
            src = prod.get(f.input[0])
            if f.input[0] == m:
                on = mul.input[1 - j]
            elif src is not None and src.op_type == "Not" and src.input[0] == m:
                off = mul.input[1 - j]
    return (on, off) if on is not None and off is not None else None


def unmask(g, loop, consts):
    """(the Loop without its mask, MaskInfo, reversed) for a Loop whose body reads a mask, else None.
    Raises Refused where a mask is read but not mixed as above."""
    body = _attr(loop, "body")
    prod = _producers(body)
    b_in = [i.name for i in body.input]
    b_out = [o.name for o in body.output]
    gathers = [n for n in body.node if n.op_type == "Gather" and n.input[0] not in prod and n.input[0] not in b_in
               and n.input[1] in b_in[:1] + b_in[2:]]
    found = [(n, _mask_source(g, consts, n.input[0])) for n in gathers]
    found = [(n, s) for n, s in found if s is not None]
    if not found:
        return None
    if len(found) > 1:
        raise Refused(found[1][0], "reads a second mask")
    gather, (kind, value, source, rev) = found[0]
    m = gather.output[0]
    n_carried = len(loop.input) - 2
    scans = b_out[1 + n_carried:]
    if len(scans) != 1:
        raise Refused(loop, f"has {len(scans)} scan outputs (one step output expected)")
    mixed = _mix(prod, scans[0], m)
    if mixed is None:
        raise Refused(prod.get(scans[0], loop), "collects a step output not mixed by the mask")
    y_on, y_off = mixed
    carried = {b_in[2 + k]: k for k in range(n_carried)}
    drop, outs = set(), {}
    out_value = _skip(prod, scans[0])
    for bi, k in carried.items():
        bo = b_out[1 + k]
        if _skip(prod, bo) == out_value:               # a carried copy of the step output
            drop.add(k)
            continue
        mix = _mix(prod, bo, m)
        if mix is None:
            continue                                   # a counter or a weight: lift_loop reads those
        if mix[1] != bi:
            raise Refused(prod.get(bo, loop), "mixes a state by the mask with other than its old value")
        outs[k] = mix[0]
    zero = None
    if y_off in carried:
        k = carried[y_off]
        if k in drop:
            masked = "previous"
        elif b_out[1 + k] == y_off and _is_zero(g, loop.input[2 + k], consts):
            masked, zero, _ = "zero", k, drop.add(k)
        else:
            raise Refused(loop, "outputs on masked steps a carried value that is neither the last output nor zeros")
    else:
        raise Refused(loop, "outputs on masked steps what is neither the last output nor zeros")
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    for k in drop:
        if loop.output[k] in used:
            raise Refused(loop, "returns the last output of its masked steps as its own output")
    new_body = onnx.GraphProto()
    new_body.CopyFrom(body)
    keep_in = [0, 1] + [2 + k for k in range(n_carried) if k not in drop]
    keep_out = [0] + [1 + k for k in range(n_carried) if k not in drop]
    del new_body.input[:]
    new_body.input.extend(body.input[j] for j in keep_in)
    outputs = []
    extra = []
    for j in keep_out + [1 + n_carried]:
        o = onnx.ValueInfoProto()
        o.CopyFrom(body.output[j])
        new = y_on if j == 1 + n_carried else outs.get(j - 1)
        if new is not None:
            o.name = f"{body.output[j].name}__unmasked"
            extra.append(helper.make_node("Identity", [new], [o.name]))
        outputs.append(o)
    del new_body.output[:]
    new_body.output.extend(outputs)
    new_body.node.extend(extra)
    _prune_body(new_body)
    clean = onnx.NodeProto()
    clean.CopyFrom(loop)
    del clean.input[:]
    clean.input.extend(loop.input[j] for j in keep_in)
    del clean.output[:]
    clean.output.extend(loop.output[j - 1] for j in keep_out[1:])
    clean.output.append(loop.output[n_carried])
    next(a for a in clean.attribute if a.name == "body").g.CopyFrom(new_body)
    return clean, MaskInfo(kind, value, source, masked), rev, dict(gather=gather, body=body, drop=drop, zero=zero)


def _prune_body(body) -> None:
    need = {o.name for o in body.output}
    keep = []
    for n in reversed(list(body.node)):
        if any(o in need for o in n.output):
            keep.append(n)
            need.update(i for i in n.input if i)
    keep.reverse()
    del body.node[:]
    body.node.extend(keep)


def apply(model, masks: dict, node_layers: dict, path: str):
    """The model read from a graph whose lifted layers `masks` ({native node name: MaskInfo}) were masked
    (`node_layers`: {node name: (layer name, direction)}, as the reader found them): the mask put in its
    canonical place, or UnsupportedError where the canonical model cannot hold it."""
    from ...model import Embedding, Masking, Recurrent
    from .frontend import masked_layers
    if not masks:
        return model
    kinds = {(i.kind, i.value, i.source) for i in masks.values()}
    kind, value, source = next(iter(kinds))
    layers = list(model.layers)
    where = f"Loop nodes {', '.join(sorted(masks))}"
    if len(kinds) != 1 or source != model.input.name:
        raise UnsupportedError(f"{where} read a mask computed other than once from the graph input "
                               f"'{model.input.name}'; the canonical model masks from its input only", path=path)
    if kind == "masking":
        if isinstance(layers[0], Embedding):
            raise UnsupportedError(f"{where} read a Masking mask of token ids", path=path)
        layers.insert(0, Masking("masking", value))
    else:
        if not isinstance(layers[0], Embedding):
            raise UnsupportedError(f"{where} read a mask of ids equal to 0, but the graph input feeds no embedding",
                                   path=path)
        layers[0] = replace(layers[0], mask_zero=True)
    model = replace(model, layers=layers)
    reached = masked_layers(model)
    rec = [k for k, layer in enumerate(layers) if isinstance(layer, Recurrent)]
    by_layer = {k: [i for n, i in masks.items() if node_layers.get(n, (None,))[0] == layers[k].name] for k in rec}
    if {k for k in rec if by_layer[k]} != reached:
        raise UnsupportedError(f"{where} are masked, but the canonical mask would reach the recurrent layers "
                               f"{', '.join(layers[k].name for k in sorted(reached))}; it cannot mask only some "
                               "of them", path=path)
    for k in reached:
        outs = {i.masked_output for i in by_layer[k]}
        if len(outs) != 1:
            raise UnsupportedError(f"layer '{layers[k].name}': its directions output different values on masked "
                                   "steps", path=path)
        layers[k] = replace(layers[k], masked_output=outs.pop())
    return replace(model, layers=layers)


def confirm(p, info: MaskInfo, extra: dict, opset: int, native_model, tol: float) -> None:
    """onnxruntime: the original body, run on random x, states, last output and a mask (on for rows 0 and 2,
    off for 1 and 3), gives the native node's new states where the mask is on and the old ones where it is
    off, and the step output the Keras way (`info.masked_output`)."""
    body, gather = extra["body"], extra["gather"]
    b_in = [i.name for i in body.input]
    b_out = [o.name for o in body.output]
    n_carried = len(body.input) - 2
    rng = np.random.default_rng(1)
    B = 4
    scale = np.array([1.0, 0.3, 3.0, 6.0], np.float32)[:, None]
    mask = np.array([[True], [False], [True], [False]])
    x = (rng.standard_normal((B, p.F)) * scale).astype(np.float32)
    feeds = {gather.output[0]: mask, p.x_name: x}
    states = {}
    for name in [p.h[1]] + ([p.c[1]] if p.c else []):
        states[name] = (rng.standard_normal((B, p.H)) * scale).astype(np.float32)
    feeds.update(states)
    last = (rng.standard_normal((B, p.H)) * scale).astype(np.float32)
    for k in extra["drop"]:
        bi = b_in[2 + k]
        feeds[bi] = np.zeros((B, p.H), np.float32) if k == extra["zero"] else last   # a zero constant, or the copy
    outs = [b_out[1 + n_carried]] + [b_out[1 + k] for k in range(n_carried) if b_in[2 + k] in states]
    h, c = states[p.h[1]], states.get(p.c[1]) if p.c else None
    got, ref = step_alone(p, body, feeds, outs, opset, "masked_step", f"matches a masked {p.cell.kind.upper()} cell",
                          native_model, x, h, c)
    h_new = np.where(mask, ref[0][0], h)
    y = np.where(mask, ref[0][0], last if info.masked_output == "previous" else 0)
    want = [y] + [h_new if b_in[2 + k] == p.h[1] else np.where(mask, ref[1][0], c)
                  for k in range(n_carried) if b_in[2 + k] in states]
    for what, a, b in zip(["the step output", "a new state", "a new state"], got, want):
        diff = float(np.max(np.abs(a - b)))
        if not diff <= tol * (1 + float(np.max(np.abs(b)))):
            raise Refused(p.loop, f"looks like a masked {p.cell.kind.upper()} cell, but {what} differs from the "
                                  f"native node's under a mask by {diff:.3g} (onnxruntime, random x, states, mask)")


def unmasked_input(g, info: MaskInfo) -> None:
    """Masking's x * Cast(mask) read as x by every node (a masked step is skipped by the lifted layer, and the
    canonical Masking layer zeroes it again): the mask's nodes are then pruned with the Loop's."""
    if info.kind != "masking":
        return
    prod = _producers(g)
    for n in list(g.node):
        if n.op_type != "Mul" or info.source not in n.input:
            continue
        other = prod.get(n.input[1 - list(n.input).index(info.source)])
        if other is None or other.op_type != "Cast" or prod.get(other.input[0]) is None or \
                prod[other.input[0]].op_type != "Greater":
            continue
        for user in g.node:
            for j, i in enumerate(user.input):
                if i == n.output[0]:
                    user.input[j] = info.source


def masked_loops(proto, path: str) -> list[str]:
    """Names of the main graph's Loops whose body reads a mask as tf2onnx writes one (`--in-place` keeps them:
    a native node cannot skip masked steps in the middle of a sequence)."""
    from .extract import Constants, folder_for, opset_of
    consts = Constants([proto.graph], opset_of(proto), folder_for(proto, path))
    out = []
    for loop in (n for n in proto.graph.node if n.op_type == "Loop"):
        body = _attr(loop, "body")
        prod, b_in = _producers(body), {i.name for i in body.input}
        if any(n.op_type == "Gather" and n.input[0] not in prod and n.input[0] not in b_in and
               _mask_source(proto.graph, consts, n.input[0]) is not None for n in body.node):
            out.append(loop.name or loop.output[0])
    return out


def same_order(g, p, reversed_mask: bool) -> None:
    """Refuse a Loop whose steps and mask run in different time orders (one reversed, the other not): the
    canonical layer reads its mask in its own order."""
    src = _producers(g).get(p.x_src)
    if (src is not None and src.op_type == "ReverseSequence") != reversed_mask:
        raise Refused(p.loop, "reads its mask in another time order than its steps (one of them reversed)")
