"""A recurrent cell unrolled over a fixed number of steps (keras2onnx, hand-written exporters), lifted into
one native LSTM/GRU/RNN node before the reader walks the graph.

Steps are found from the slices of one tensor X along one axis, x_t = Gather(X, t) or Squeeze(Slice(X, t,
t+1)) or Squeeze(Split(X)[t]), t = 0..T-1; step t is what depends on x_t and not on x_t+1, and its states are
the tensors it hands to step t+1 (h, or h and c; h is the one a matrix product reads).  Every step but the
first is matched with `cell_match`/`cell_templates` and must give the same weights; the last step's new
states are the values of it that match that cell.  onnxruntime then runs step 1, the last step and step 0
(from its constant states, which must be zeros) against the native node.  The steps' outputs must be
used as a native node's are: stacked by a Concat of Unsqueeze(h_t) (Y), or the last h / c alone (Y_h, Y_c).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...errors import UnsupportedError
from . import cell_match as cm
from .cell_templates import match
from .lift_rewrite import Refused, _is_zero, _prune, rewrite_unrolled
from ._fold import Folder
from .lift_loop import TOL, _native_model

BUDGET = 50_000_000       # steps x nodes: a larger graph (over ~1700 steps of ~17 nodes) is left as it is


def _attr(node, name, default=None):
    a = next((a for a in node.attribute if a.name == name), None)
    return default if a is None else helper.get_attribute_value(a)


def _scalar(consts, name):
    v = consts.get(name) if name else None
    if v is None or np.asarray(v).size != 1:
        return None
    return int(np.asarray(v).reshape(-1)[0])


def _slices(g, consts, users) -> dict:
    """{(X, axis): {t: x_t tensor}} of the one-step slices of the graph's tensors."""
    groups: dict = {}
    for n in g.node:
        if n.op_type == "Gather" and len(n.input) == 2 and consts.get(n.input[0]) is None:
            t = consts.get(n.input[1])
            if t is not None and np.asarray(t).ndim == 0 and int(t) >= 0:
                groups.setdefault((n.input[0], int(_attr(n, "axis", 0))), {})[int(t)] = n.output[0]
        elif n.op_type == "Slice" and len(n.input) >= 4 and consts.get(n.input[0]) is None:
            s, e, a = (_scalar(consts, i) for i in n.input[1:4])
            sq = users.get(n.output[0], [])
            if None not in (s, e, a) and e == s + 1 and s >= 0 and len(sq) == 1 and sq[0].op_type == "Squeeze":
                groups.setdefault((n.input[0], a), {})[s] = sq[0].output[0]
        elif n.op_type == "Split" and len(n.output) > 1 and consts.get(n.input[0]) is None:
            for t, o in enumerate(n.output):
                sq = users.get(o, [])
                if len(sq) == 1 and sq[0].op_type == "Squeeze":
                    groups.setdefault((n.input[0], int(_attr(n, "axis", 0))), {})[t] = sq[0].output[0]
    return {k: v for k, v in groups.items() if len(v) >= 2 and sorted(v) == list(range(len(v)))}


def lift(proto: onnx.ModelProto, path: str, consts, opset: int) -> tuple[onnx.ModelProto, list[str]]:
    g = proto.graph
    if any(n.op_type in ("LSTM", "GRU", "RNN") for n in g.node):
        return proto, []
    users: dict = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    groups = _slices(g, consts, users)
    if not groups:
        return proto, []
    new = onnx.ModelProto()
    new.CopyFrom(proto)
    names = []
    for (x, axis), steps in groups.items():
        if len(steps) * len(new.graph.node) > BUDGET:
            continue
        name = f"{x}/unrolled"
        try:
            plan = _plan(new.graph, consts, x, axis, [steps[t] for t in range(len(steps))])
        except (Refused, KeyError, IndexError, ValueError, TypeError, AttributeError):
            continue                     # no states handed from step to step: not a recurrence
        except cm.NoCell as exc:
            raise UnsupportedError(f"the {len(steps)} steps over '{x}' do not compute an LSTM, GRU or RNN cell: "
                                   f"{_where(exc.node)} does not fit ({exc.why}); nothing was lifted",
                                   path=path, layer=name) from None
        try:
            _confirm(plan, opset)
            rewrite_unrolled(new.graph, plan, name, opset)
        except Refused as exc:
            raise UnsupportedError(f"the {len(steps)} steps over '{x}' are not lifted: {exc.reason}", path=path,
                                   layer=name) from None
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            continue                     # outputs wired in a way the rewrite does not follow: left as is
        names.append(name)
    if names:
        _prune(new.graph)
    return new, names


def _where(node) -> str:
    return f"its {node.op_type} node '{node.name or node.output[0]}'" if node is not None else "the step"


class _Plan:
    pass


def _walk(names, links, late, t, forward: bool) -> set:
    """The nodes of step `t` (by `late`) reached from `names`: forward through `users`, or back through
    producers; the walk stays within the step, so each step costs its own nodes."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        nodes = links.get(name, []) if forward else [links[name]] if name in links else []
        for n in nodes:
            if id(n) not in seen and late.get(id(n)) == t:
                seen.add(id(n))
                todo.extend(o for o in (n.output if forward else n.input) if o)
    return seen


def _before(g, nodes, prod, late, consts) -> set:
    """The nodes, on no step's slice, between step 0 and the constants or zero states it starts from."""
    seen, todo = set(), [i for n in nodes for i in n.input if i]
    while todo:
        name = todo.pop()
        n = prod.get(name)
        if n is None or id(n) in seen or id(n) in late or consts.get(name) is not None or _is_zero(g, name, consts):
            continue
        seen.add(id(n))
        todo.extend(i for i in n.input if i)
    return seen


_ACCESS = ("MatMul", "Gemm", "Slice", "Split", "Identity", "Squeeze", "Unsqueeze", "Gather", "Reshape")


def _plan(g, consts, x, axis, xs) -> _Plan:
    users: dict = {}
    prod = {o: n for n in g.node for o in n.output if o}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    T = len(xs)
    index = {v: t for t, v in enumerate(xs)}
    late = {}                    # id(node) -> the last step it depends on (one pass: nodes are in order)
    for n in g.node:
        t = max([-1] + [index.get(i, -1) for i in n.input] + [late.get(id(prod[i]), -1) for i in n.input if i in prod])
        if t >= 0:
            late[id(n)] = t
    for v in xs:
        if v in prod:
            late.setdefault(id(prod[v]), -1)
    order = {id(n): k for k, n in enumerate(g.node)}
    node_of = {id(n): n for n in g.node}
    by_late: dict = {}
    for n in g.node:
        if id(n) in late:
            by_late.setdefault(late[id(n)], []).append(n)

    def state_of(name, t):
        """Back from what step t reads of step t-1, through matrix products and slices, to the state."""
        while name in prod and prod[name].op_type in _ACCESS:
            n = prod[name]           # a slice's bounds (torch's computed from Shape) are not the data
            live = [i for i in n.input if i and consts.get(i) is None] if n.op_type in ("MatMul", "Gemm") \
                else n.input[:1]
            if len(live) != 1 or live[0] not in prod or late.get(id(prod[live[0]])) != t - 1:
                break
            name = live[0]
        return name

    handed = [None]              # handed[t]: the states step t-1 hands to step t
    for t in range(1, T):
        raw = {i for n in by_late.get(t, []) for i in n.input if i in prod and late.get(id(prod[i])) == t - 1}
        handed.append(sorted({state_of(i, t) for i in raw}))
    if not all(1 <= len(h) <= 2 for h in handed[1:]):
        raise Refused(None, "no states handed from step to step")
    steps = []
    for t in range(T):
        seen = {id(n) for n in by_late.get(t, [])}
        if handed[t]:            # what reads the states before x_t joins them (h @ R) is step t's
            seen |= _walk(handed[t], users, late, t - 1, forward=True)
            seen -= _walk(handed[t], prod, late, t - 1, forward=False)   # what made them is step t-1's
        if t == 0:               # what step 0 computes from its initial states alone (h0 @ R + b)
            seen |= _before(g, by_late.get(0, []), prod, late, consts)
        steps.append(sorted((node_of[k] for k in seen), key=lambda n: order[id(n)]))
    p = _Plan()
    p.x, p.axis, p.xs, p.steps, p.T, p.g, p.prod = x, axis, xs, steps, T, g, prod
    fold = cm.fold_with(Folder(0, None, 17))
    p.fold, p.consts = fold, consts
    cells, outs = [], []
    for t in range(1, T):
        ins = handed[t]
        env, hc = _env(p, t, ins)
        misfits: list = []
        cm.evaluate(steps[t], env, fold, misfits)
        if t < T - 1:
            new = handed[t + 1]
            cell, names = _match_step(env, hc, new, users, steps[t + 1], misfits, p)
        else:
            cell, names = _match_last(env, hc, cells[-1] if cells else None, misfits, p, steps[t])
        if cells and not _same(cell, cells[-1]):
            raise cm.NoCell(env.get("__node__"), f"step {t} has other weights than step {t - 1}")
        cells.append(cell)
        outs.append((hc, names))
    p.cell, p.io = cells[0], outs          # io[t-1] = ((h_in, c_in), (h_out, c_out)) of step t
    return p


def _env(p, t, ins):
    env = {}
    for n in p.steps[t]:
        for i in n.input:
            if i and i not in env and i not in ins and i != p.xs[t]:
                v = p.consts.get(i)
                env[i] = cm.Opaque() if v is None else np.asarray(v)
    reads = {}
    for n in p.steps[t]:
        if n.op_type in ("MatMul", "Gemm") and len(n.input) >= 2 and isinstance(env.get(n.input[1]), np.ndarray):
            w = env[n.input[1]]
            if w.ndim == 2:
                reads[n.input[0]] = w.shape[1] if n.op_type == "Gemm" and _attr(n, "transB", 0) else w.shape[0]
    hs = [i for i in ins if i in reads]
    if len(hs) != 1 or p.xs[t] not in reads:
        raise Refused(None, "no state and step read by matrix products")
    h = hs[0]
    c = next((i for i in ins if i != h), None)
    p.F, p.H = int(reads[p.xs[t]]), int(reads[h])
    for k in list(env):
        if k in (h, c):
            del env[k]
    env[p.xs[t]] = cm.var("x", p.F)
    env[h] = cm.var("h", p.H)
    if c is not None:
        env[c] = cm.var("c", p.H)
    return env, (h, c)


def _match_step(env, hc, new, users, later, misfits, p):
    reads = [o for o in new if any(n.op_type in ("MatMul", "Gemm") and n.input[0] == o for n in later)]
    if len(reads) != 1 or len(new) != (1 if hc[1] is None else 2):
        raise Refused(None, "the states handed on differ from the states read")
    h = reads[0]
    c = next((o for o in new if o != h), None)
    states = {"h": env.get(h)} if c is None else {"h": env.get(h), "c": env.get(c)}
    if not all(isinstance(v, cm.Poly) for v in states.values()):
        raise misfits[0] if misfits else Refused(None, "a state that is not computed from the step")
    nodes = {k: p.prod.get(v) for k, v in (("h", h), ("c", c)) if v}
    return match(nodes, states, p.F), (h, c)


def _match_last(env, hc, template, misfits, p, steps):
    polys, seen = [], set()          # each value once, by the node that computed it; the latest first
    for o in (o for n in steps for o in n.output):
        if isinstance(env.get(o), cm.Poly) and id(env[o]) not in seen:
            seen.add(id(env[o]))
            polys.insert(0, o)
    first = None
    for h in polys:
        for c in (polys if hc[1] is not None else [None]):
            if c == h:
                continue
            try:
                cell = match({"h": p.prod.get(h), **({"c": p.prod.get(c)} if c else {})},
                             {"h": env[h], **({"c": env[c]} if c else {})}, p.F)
            except cm.NoCell as exc:
                first = first or exc
                continue
            if template is None or _same(cell, template):
                return cell, (h, c)
    raise first or (misfits[0] if misfits else Refused(None, "the last step computes no cell"))


def _same(a, b) -> bool:
    return a.kind == b.kind and a.acts == b.acts and a.linear_before_reset == b.linear_before_reset and all(
        np.allclose(getattr(a, k), getattr(b, k), rtol=1e-6, atol=1e-7) for k in ("W", "R", "B"))


def _step_model(p, t, outs, ins):
    need, keep = {o for o in outs if o}, []
    for n in reversed(p.steps[t]):
        if any(o in need for o in n.output):
            keep.append(n)
            need.update(i for i in n.input if i)
    keep.reverse()
    made = {o for n in keep for o in n.output} | set(ins)
    inits, zeros = [], []
    for name in sorted(need - made):
        v = p.consts.get(name)
        if v is None and _is_zero(p.g, name, p.consts):     # zero states of the batch's size
            zeros.append(name)
            continue
        if v is None:
            raise Refused(None, f"step {t} reads '{name}', computed at run time outside the steps")
        inits.append(numpy_helper.from_array(np.asarray(v), name))
    sizes = [p.F, p.H, p.H]
    vi = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [None, s]) for n, s in zip(ins, sizes)]
    vi += [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [None, p.H]) for n in zeros]
    p.zeros = zeros
    ov = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in outs if n]
    m = helper.make_model(helper.make_graph(keep, "step", vi, ov, initializer=inits),
                          opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _confirm(p, opset):
    from .runtime import import_onnxruntime, quiet_options
    try:
        ort = import_onnxruntime()
    except Exception as exc:  # noqa: BLE001
        raise Refused(None, f"they match a {p.cell.kind.upper()} cell, but its check was not run ({exc}); "
                            "rnnconvert lifts a cell only once onnxruntime confirms it") from None
    rng = np.random.default_rng(0)
    scale = np.array([1.0, 0.3, 3.0, 6.0], np.float32)[:, None]
    lstm = p.cell.kind == "lstm"
    native = ort.InferenceSession(_native_model(p.cell, opset, lstm).SerializeToString(), quiet_options(ort),
                                  providers=["CPUExecutionProvider"])
    first = p.io[0]
    checks = [(1, p.io[0]), (p.T - 1, p.io[-1]), (0, ((None, None), first[0]))]
    for t, ((h_in, c_in), (h_out, c_out)) in checks:
        x = (rng.standard_normal((4, p.F)) * scale).astype(np.float32)
        h = (rng.standard_normal((4, p.H)) * scale).astype(np.float32) if h_in else np.zeros((4, p.H), np.float32)
        c = (rng.standard_normal((4, p.H)) * scale).astype(np.float32) if c_in else np.zeros((4, p.H), np.float32)
        ins = [p.xs[t]] + [i for i in (h_in, c_in) if i]
        feeds = dict(zip(ins, [x, h, c]))
        try:
            step = _step_model(p, t, [h_out, c_out], ins)
            feeds.update({z: np.zeros((4, p.H), np.float32) for z in p.zeros})
            got = ort.InferenceSession(step.SerializeToString(), quiet_options(ort),
                                       providers=["CPUExecutionProvider"]).run(None, feeds)
        except Refused:
            raise
        except Exception as exc:  # noqa: BLE001
            raise Refused(None, f"onnxruntime cannot run step {t} alone ({str(exc).splitlines()[0][:160]})") from None
        ref = native.run(None, {"X": x[None], "h0": h[None], **({"c0": c[None]} if lstm else {})})
        for what, a, b in zip(("h", "c"), got, ref):
            diff = float(np.max(np.abs(a - b[0])))
            if not diff <= TOL * (1 + float(np.max(np.abs(b)))):
                raise Refused(None, f"step {t} differs from the native {p.cell.kind.upper()} node's by {diff:.3g} in "
                                    f"the new {what}" + (" (it does not start from zero states)" if t == 0 else ""))
