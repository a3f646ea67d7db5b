"""A recurrent layer TFLite's sequence ops cannot hold (GRU in both reset modes, LSTM gates other than
sigmoid or cell/output activations other than one of tanh/relu/relu6/none, clip, RNN activations such as
selu) as a WHILE loop over the cell, as TensorFlow lowers them.

Main subgraph: XW = FULLY_CONNECTED(x, W) for every step at once ([batch, time, gates*H], the biases that
can join it included), reversed in time for a reverse direction; WHILE over (t, T, XW, h, [c], Y) with Y
the whole output [batch, time, S], zeros (FILL) before the loop.  Cond subgraph: t < T.  Body subgraph: the
cell on XW[:, t] and h (equations in reference/network.py), step t written into Y in place of its zeros
(DYNAMIC_UPDATE_SLICE at [0, t, 0]), t + 1.  Every tensor of the body keeps its shape from one step to the
next, so LiteRT runs the loop on its static path: no re-planning of the body's memory per step (files
written before grew Y by a CONCATENATION per step, a dynamic body; the reader takes both).  LiteRT's WHILE
copies a loop variable the body changes once per step, so Y costs [batch, time, S] floats a step: a layer
that returns only the step it processed last carries no Y (its output is the loop's final h, or its last
output under a mask; "pick" in the metadata), and a direction returning its sequence (not --stateful) runs as chunks of steps (`loop_chunks.py`, whose inner body is this one).  The layer's settings
are kept in the file's metadata ("rnnconvert.loops") so the reader can take the loop back without
pattern-matching the body; its weights are the body's tensors.
"""
from __future__ import annotations

import numpy as np

from ...model import Recurrent
from . import schema as s
from . import quantize as q
from .emit import Emitter, Value

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def last_processed_only(e: Emitter, layer: Recurrent, reverse: bool) -> bool:
    """Does the layer return of this direction only the step processed last (recurrent._pick: y[:, -1] of a
    forward direction, y[:, 0] of a reverse one)?  Not with --stateful, whose h_out is the loop's h."""
    if layer.output == "sequence" or e.stateful is not None:
        return False
    first = (reverse and layer.output == "final_state") or (layer.output == "last_step"
                                                             and layer.time_order == "processing")
    return first == reverse


def hybrid_plan(layer: Recurrent, quantize, mask) -> dict | None:
    """The int8 weights a loop's products take (`quantize.plan`), or None: float32 under a mask or a clip,
    which the hybrid arithmetic (reference/hybrid.py) does not compute."""
    return q.plan(layer, quantize) if mask is None and layer.clip is None else None


def emit_loop_direction(e: Emitter, layer: Recurrent, w, x: Value, reverse: bool, tag: str, meta: list,
                        mask: Value | None = None, last_only: bool = False, quantize=None) -> Value:
    """One direction as a WHILE: returns its time-aligned output [batch, time, S], or (last_only) the step
    it processed last [batch, S].  With int8 weights (`hybrid_plan`) every product is a hybrid
    FULLY_CONNECTED, and a GRU's body takes TensorFlow's form (`_gru_hybrid`)."""
    tm = e.g.model
    cell, H, S, G = layer.cell, layer.hidden, layer.state_size, GATES[layer.cell]
    name = f"{layer.name}/{tag}"
    hybrid = hybrid_plan(layer, quantize, mask)
    d = "reverse" if reverse else "forward"
    Wb, Rb = np.asarray(w.Wb, np.float32), np.asarray(w.Rb, np.float32)
    inner_rb = cell == "gru" and layer.reset_after       # Rbn stays inside r * (...)
    xbias = Wb + (np.where(np.arange(G * H) < 2 * H, Rb, 0) if inner_rb else Rb)
    if hybrid and cell == "gru":                          # Rb in the body's products, as TensorFlow's
        xbias = Wb
    B, T = x.dims[0], x.dims[1]
    first_op = len(e.g.ops)
    rec = {"layer": layer.name, "direction": d, "input": x.index,
           "cell": cell, "hidden": H, "activations": [a.to_dict() for a in layer.activations],
           "reset_after": bool(layer.reset_after), "clip": layer.clip,
           "W": q.weight(e, f"{name}W", w.W, hybrid, f"{d}.W", per_channel=True),
           "bias": e.const(f"{name}input_bias", xbias.astype(np.float32))}
    if hybrid:
        rec["hybrid"] = {"asymmetric_inputs": q.asymmetric(hybrid)}
    xw = e.op("FULLY_CONNECTED", [x.index, rec["W"], rec["bias"]],
              e.new(f"{name}XW", [B, T, G * H]), "FullyConnectedOptions", keep_num_dims=True,
              **({"asymmetric_quantize_inputs": q.asymmetric(hybrid)} if hybrid else {}))
    if reverse:
        xw = e.reverse_time(xw, f"{name}XW_reversed")
    shape = e.op("SHAPE", [x.index], e.new(f"{name}shape_of_input", [3], s.INT32), "ShapeOptions", out_type=s.INT32)
    steps = e.op("STRIDED_SLICE", [shape.index, e.ints(f"{name}t_b", [1]), e.ints(f"{name}t_e", [2]),
                                   e.ints(f"{name}t_s", [1])], e.new(f"{name}steps", [], s.INT32),
                 "StridedSliceOptions", shrink_axis_mask=1)
    if e.stateful is not None:      # --stateful: the states are graph inputs, their final values outputs
        h0 = _state_port(e, layer, "h", S, w.h0, B)
        c0 = _state_port(e, layer, "c", H, w.c0, B) if cell == "lstm" else None
    else:
        h0 = e.rows_of(x, S, f"{name}h0", e.new(f"{name}h0", [B, S]), w.h0)
        c0 = e.rows_of(x, H, f"{name}c0", e.new(f"{name}c0", [B, H]), w.c0) if cell == "lstm" else None
    masked = []
    if mask is not None:            # the mask, in processing order, and the last output (zeros before the first)
        m = e.reverse_time(mask, f"{name}mask_reversed") if reverse else mask
        masked = [m, e.rows_of(x, S, f"{name}out0", e.new(f"{name}out0", [B, S]))]
    if not (last_only or e.stateful is not None):       # the sequence, in chunks
        from .loop_chunks import emit_chunks
        y, body_index = emit_chunks(e, S, name, shape, steps, xw, [h0] + ([c0] if c0 else []), masked, _inputs,
                                    _cond, lambda sub, loop_in: _body(sub, layer, w, loop_in, rec, bool(masked),
                                                                      False, (hybrid, d) if hybrid else None))
        return _finish(e, rec, y, reverse, body_index, first_op, meta, mask, layer, h0, c0, name)
    y0 = None if last_only else _zeros_output(e, shape, S, f"{name}y0", [B, T, S])
    # t starts as a computed tensor, not a constant: LiteRT's WHILE copies into and resizes its loop inputs'
    # buffers, which a read-only constant does not have.
    t0 = e.op("SUB", [steps.index, steps.index], e.new(f"{name}t0", [], s.INT32), "SubOptions")
    loop_in = [t0, steps, xw, h0] + ([c0] if c0 else []) + masked + ([] if last_only else [y0])
    result = len(loop_in) - 1 if masked or not last_only else 3
    outs = [e.new(f"{name}loop/{k}" if k != result else f"{name}output", v.dims, v.dtype)
            for k, v in enumerate(loop_in)]
    cond_index, body_index = len(tm.subgraphs), len(tm.subgraphs) + 1
    _cond(Emitter(tm.subgraph(f"{name}cond")), loop_in)
    _body(Emitter(tm.subgraph(f"{name}body")), layer, w, loop_in, rec, bool(masked), last_only,
          (hybrid, d) if hybrid else None)
    e.counts["WHILE"] = e.counts.get("WHILE", 0) + 1
    e.g.op("WHILE", [v.index for v in loop_in], [v.index for v in outs], "WhileOptions",
           cond_subgraph_index=cond_index, body_subgraph_index=body_index)
    if e.stateful is not None:
        for port, v in zip(e.stateful[-2 if c0 else -1:], outs[3:5] if c0 else outs[3:4]):
            e.g.tensors[v.index]["name"] = port["name"].replace("_in", "_out")
            port["output"] = v.index
    if last_only:
        rec["pick"] = "first" if reverse else "last"        # in input order, as reader_recurrent.Seq says it
    return _finish(e, rec, outs[result], reverse and not last_only, body_index, first_op, meta, mask, layer,
                   h0, c0, name)


def _finish(e: Emitter, rec: dict, y: Value, reverse: bool, body_index: int, first_op: int, meta: list, mask,
            layer: Recurrent, h0: Value, c0: Value | None, name: str) -> Value:
    """y back in input order (reverse), the loop's record completed and kept for the metadata."""
    if reverse:
        y = e.reverse_time(y, f"{name}output_in_input_order")
    rec.update(body=body_index, ops=[first_op, len(e.g.ops) - 1], output=y.index, masked=mask is not None,
               masked_output=layer.masked_output,
               h0=_init_const(e, h0), c0=_init_const(e, c0) if c0 else None)
    meta.append(rec)
    return y


def _zeros_output(e: Emitter, shape: Value, S: int, name: str, dims) -> Value:
    """Zeros [batch, time, S] (FILL on the input's batch and time, computed when run)."""
    bt = e.op("STRIDED_SLICE", [shape.index, e.ints(f"{name}/b", [0]), e.ints(f"{name}/e", [2]),
                                e.ints(f"{name}/s", [1])], e.new(f"{name}/batch_time", [2], s.INT32),
              "StridedSliceOptions")
    d = e.op("CONCATENATION", [bt.index, e.ints(f"{name}/size", [S])], e.new(f"{name}/dims", [3], s.INT32),
             "ConcatenationOptions", axis=0)
    return e.op("FILL", [d.index, e.scalar(f"{name}/zero", 0.0)], e.new(name, dims))


def _state_port(e: Emitter, layer: Recurrent, state: str, size: int, init, B) -> Value:
    """A graph input `<layer>/<state>_in` [batch, size]; its initial value (zeros, or h0/c0) in the metadata."""
    v = e.new(f"{layer.name}/{state}_in", [B, size])
    initial = None if init is None else np.asarray(init, np.float32).tolist()
    e.stateful.append({"name": f"{layer.name}/{state}_in", "layer": layer.name, "state": state, "size": size,
                       "initial": initial, "input": v.index})
    return v


def _init_const(e: Emitter, v: Value):
    """The constant a state's BROADCAST_TO spreads over the batch, or None (FILL: zeros; a state input)."""
    op = next((o for o in e.g.ops if v.index in o[2]), None)
    if op is None:
        return None
    return op[1][0] if e.g.model.opcodes[op[0]] == s.OPS["BROADCAST_TO"] else None


def _inputs(e: Emitter, loop_in: list[Value]) -> list[Value]:
    vals = [e.new(f"in{k}", v.dims, v.dtype) for k, v in enumerate(loop_in)]
    e.g.inputs = [v.index for v in vals]
    return vals


def _cond(e: Emitter, loop_in) -> None:
    vals = _inputs(e, loop_in)
    more = e.op("LESS", [vals[0].index, vals[1].index], e.new("more", [], s.BOOL))
    e.g.outputs = [more.index]


def _split(e: Emitter, v: Value, n: int, name: str) -> list[Value]:
    if n == 1:
        return [v]
    parts = [e.new(f"{name}{k}", [v.dims[0], v.dims[1] // n]) for k in range(n)]
    e.counts["SPLIT"] = e.counts.get("SPLIT", 0) + 1
    e.g.op("SPLIT", [e.ints(f"{name}axis", 1), v.index], [p.index for p in parts], "SplitOptions", num_splits=n)
    return parts


def _fc(e: Emitter, v: Value, weight, bias, name: str, rec: dict | None = None, key: str = "", hyb=None,
        rows=slice(None)) -> Value:
    """FULLY_CONNECTED(v, weight, bias); hyb (hybrid setting, direction): int8 weights, rows `rows` of the
    layer's array `key`, the bias recorded as a part of Rb ("Rb"), else as the GRU's inner bias ("Rbn")."""
    b = -1 if bias is None else e.const(f"{name}/bias", np.asarray(bias, np.float32))
    hybrid, d = hyb or (None, "")
    wi = q.weight(e, f"{name}/weight", weight, hybrid, f"{d}.{key}", rows, per_channel=True)
    if rec is not None:
        rec.setdefault("R", []).append(wi) if key == "R" else rec.update({key: wi})
        if bias is not None and hybrid:
            rec.setdefault("Rb", []).append(b)
        elif bias is not None:
            rec["Rbn"] = b
    options = {"asymmetric_quantize_inputs": q.asymmetric(hybrid)} if hybrid else {}
    return e.op("FULLY_CONNECTED", [v.index, wi, b], e.new(name, [v.dims[0], int(np.shape(weight)[0])]),
                "FullyConnectedOptions", **options)


def _add(e, a: Value, b: Value, name) -> Value:
    return e.op("ADD", [a.index, b.index], e.new(name, a.dims), "AddOptions")


def _mul(e, a: Value, b: Value, name) -> Value:
    return e.op("MUL", [a.index, b.index], e.new(name, a.dims), "MulOptions")


def _clip(e: Emitter, v: Value, clip, name) -> Value:
    if clip is None:
        return v
    v = e.binary("MINIMUM", v, e.scalar(f"{name}/clip_hi", clip), f"{name}/clipped_hi")
    return e.binary("MAXIMUM", v, e.scalar(f"{name}/clip_lo", -clip), f"{name}/clipped")


def _body(e: Emitter, layer: Recurrent, w, loop_in, rec: dict, masked: bool, last_only: bool, hyb) -> None:
    vals = _inputs(e, loop_in)
    t, steps, xw, h = vals[:4]
    c = vals[4] if layer.cell == "lstm" else None
    mask, out = vals[4 + (c is not None):6 + (c is not None)] if masked else (None, None)
    y = None if last_only else vals[-1]
    c_old = c
    H, G, L = layer.hidden, GATES[layer.cell], layer.name
    xt = e.op("GATHER", [xw.index, t.index], e.new("x_t", [xw.dims[0], G * H]), "GatherOptions", axis=1)
    f = layer.activations[0]
    R = np.asarray(w.R, np.float32)
    if layer.cell == "rnn":
        z = _clip(e, _add(e, xt, _fc(e, h, R, None, "Rh", rec, "R", hyb), "pre"), layer.clip, "pre")
        h_new = e.activation(f, z, "h", L)
    elif layer.cell == "lstm":
        z = _clip(e, _add(e, xt, _fc(e, h, R, None, "Rh", rec, "R", hyb), "gates"), layer.clip, "gates")
        gi, gf, gg, go = _split(e, z, 4, "gate")
        g_act, h_act = layer.activations[1], layer.activations[2]
        i, fg, g, o = (e.activation(f, gi, "i", L), e.activation(f, gf, "f", L), e.activation(g_act, gg, "g", L),
                       e.activation(f, go, "o", L))
        c = _add(e, _mul(e, fg, c, "f_c"), _mul(e, i, g, "i_g"), "c_new")
        h_new = _mul(e, o, e.activation(h_act, c, "h_c", L), "o_h")
        if w.proj is not None:
            h_new = _fc(e, h_new, w.proj, None, "projected", rec, "proj", hyb)
    elif hyb:
        h_new = _gru_hybrid(e, layer, w, xt, h, rec, hyb)
    else:
        xr, xz, xn = _split(e, xt, 3, "x_gate")
        g_act = layer.activations[1]
        Rr, Rz, Rn = R[:H], R[H:2 * H], R[2 * H:]
        r_pre = _add(e, xr, _fc(e, h, Rr, None, "Rr_h", rec, "R"), "r_pre")
        z_pre = _add(e, xz, _fc(e, h, Rz, None, "Rz_h", rec, "R"), "z_pre")
        r = e.activation(f, _clip(e, r_pre, layer.clip, "r_pre"), "r", L)
        zg = e.activation(f, _clip(e, z_pre, layer.clip, "z_pre"), "z", L)
        Rbn = np.asarray(w.Rb, np.float32)[2 * H:]
        if layer.reset_after:
            rn = _mul(e, r, _fc(e, h, Rn, Rbn, "Rn_h", rec, "R"), "r_Rn_h")
        else:
            rn = _fc(e, _mul(e, r, h, "r_h"), Rn, None, "Rn_rh", rec, "R")
        n = e.activation(g_act, _clip(e, _add(e, xn, rn, "n_pre"), layer.clip, "n_pre"), "n", L)
        diff = e.op("SUB", [h.index, n.index], e.new("h_minus_n", h.dims), "SubOptions")
        h_new = _add(e, n, _mul(e, zg, diff, "z_diff"), "h_new")
    out_new = h_new
    if masked:                      # a masked step keeps the states; it outputs the last output, or zeros
        m = e.op("GATHER", [mask.index, t.index], e.new("m_t", [h.dims[0]], s.BOOL), "GatherOptions", axis=1)
        m = e.op("EXPAND_DIMS", [m.index, e.ints("m_axis", 1)], e.new("m_t_column", [h.dims[0], 1], s.BOOL))
        other = out.index if layer.masked_output == "previous" else e.scalar("zero", 0.0)
        out_new = e.op("SELECT_V2", [m.index, h_new.index, other], e.new("out_new", h.dims))
        h_new = e.op("SELECT_V2", [m.index, h_new.index, h.index], e.new("h_kept", h.dims))
        if c is not None:
            c = e.op("SELECT_V2", [m.index, c.index, c_old.index], e.new("c_kept", c.dims))
    y_new = None if last_only else _write_step(e, y, out_new, t)
    t_new = e.op("ADD", [t.index, e.ints("one", 1)], e.new("t_next", [], s.INT32), "AddOptions")
    e.g.outputs = ([t_new.index, steps.index, xw.index, h_new.index] + ([c.index] if c else [])
                   + ([mask.index, out_new.index] if masked else []) + ([] if last_only else [y_new.index]))


def _gru_hybrid(e: Emitter, layer: Recurrent, w, xt: Value, h: Value, rec: dict, hyb) -> Value:
    """The GRU step as TensorFlow's loop body computes it with hybrid FULLY_CONNECTED ops, the arithmetic
    reference/hybrid.py `_gru` states: gx = Wb + W*x_t (xt); reset after: gh = Rb + R*h, n = g(gx_n + r*gh_n);
    reset before: gh_rz = Rb_rz + R_rz*h, n = g(gx_n + (Rb_n + R_n*(r*h))); h_t = z*h + (1-z)*n."""
    H, L = layer.hidden, layer.name
    f, g_act = layer.activations
    R, Rb = np.asarray(w.R, np.float32), np.asarray(w.Rb, np.float32)
    xr, xz, xn = _split(e, xt, 3, "x_gate")
    if layer.reset_after:
        hr, hz, hn = _split(e, _fc(e, h, R, Rb, "Rh", rec, "R", hyb), 3, "h_gate")
    else:
        hr, hz = _split(e, _fc(e, h, R[:2 * H], Rb[:2 * H], "Rrz_h", rec, "R", hyb, slice(0, 2 * H)), 2, "h_gate")
    r = e.activation(f, _add(e, xr, hr, "r_pre"), "r", L)
    z = e.activation(f, _add(e, xz, hz, "z_pre"), "z", L)
    if layer.reset_after:
        rn = _mul(e, r, hn, "r_hn")
    else:
        rn = _fc(e, _mul(e, r, h, "r_h"), R[2 * H:], Rb[2 * H:], "Rn_rh", rec, "R", hyb, slice(2 * H, 3 * H))
    n = e.activation(g_act, _add(e, xn, rn, "n_pre"), "n", L)
    one_minus_z = e.op("SUB", [e.scalar("one", 1.0), z.index], e.new("one_minus_z", z.dims), "SubOptions")
    return _add(e, _mul(e, z, h, "z_h"), _mul(e, one_minus_z, n, "z_n"), "h_new")


def _write_step(e: Emitter, y: Value, out: Value, t: Value) -> Value:
    """Y with step t replaced by out: DYNAMIC_UPDATE_SLICE(Y, out[:, None], [0, t, 0]), shapes unchanged."""
    step = e.op("EXPAND_DIMS", [out.index, e.ints("step_axis", 1)], e.new("y_t", [out.dims[0], 1, out.dims[1]]))
    at = e.op("MUL", [t.index, e.ints("time_axis", [0, 1, 0])], e.new("at_step_t", [3], s.INT32), "MulOptions")
    return e.op("DYNAMIC_UPDATE_SLICE", [y.index, step.index, at.index], e.new("y_new", y.dims))
