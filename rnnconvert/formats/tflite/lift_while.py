"""TensorFlow's own WHILE lowering of a Keras recurrent layer (TFLiteConverter with a static batch) read as the
canonical layer it computes, or refused naming the op.

TensorFlow writes a layer as TRANSPOSE (to time-major; go_backwards: then REVERSE_V2 of time) -> WHILE(counter,
t, outputs, h [, c], T, x)
whose cond is LESS(t, T) and whose body reads x_t = GATHER(x, t), computes the cell with FULLY_CONNECTED,
SPLIT / SPLIT_V, ADD, SUB, MUL, LOGISTIC, TANH, ... and writes the new h into the outputs (every step, read
back by a TRANSPOSE, or only the last, read by a STRIDED_SLICE); a Bidirectional is two such loops whose
outputs a REVERSE_V2 and a CONCATENATION merge (read as one layer by `reader_recurrent.merge`).  The body is not pattern-matched: its
FULLY_CONNECTED weights give W (those reading x_t), R (those reading the state) and the biases, and a
candidate cell of each kind the sizes allow (RNN, GRU reset after and before, LSTM; sigmoid, hard_sigmoid,
tanh, relu, linear activations) is accepted only when one step of it equals the body evaluated on random
inputs and states (numpy, float64, `_run`), within 1e-5.  Anything else is refused naming the WHILE op.
"""
from __future__ import annotations

import itertools

import numpy as np

from ...errors import UnsupportedError
from ...model import HARD_SIGMOID_KERAS2, LINEAR, RELU, SIGMOID, TANH, DirectionWeights, Recurrent
from ...model import gates
from . import schema as s

TOL = 1e-5
GATES = (SIGMOID, HARD_SIGMOID_KERAS2)
CANDIDATES = (TANH, RELU, LINEAR, SIGMOID)
ORDERS = {"rnn": ("h",), "gru": ("zrn", "rzn"), "lstm": ("ifgo",)}      # Keras's first: z, r, h and i, f, c, o
_FUSED = {s.ACT_NONE: lambda v: v, s.ACT_RELU: lambda v: np.maximum(v, 0), s.ACT_RELU6: lambda v: np.clip(v, 0, 6),
          s.ACT_TANH: np.tanh}


class Lifted:
    """A WHILE read as `layer`: `seq` the index of its outputs tensor (all steps when `full`), `h` its state."""
    def __init__(self, layer, seq, h, full):
        self.layer, self.seq, self.h, self.full = layer, seq, h, full


def lift(op, g, graphs, consts, name: str) -> Lifted:
    where = f"{g.name}: op WHILE (output '{g.tensors[op.outputs[0]].name}')"

    def refuse(why):
        return UnsupportedError(f"{where}: TensorFlow's loop over a recurrent cell, {why}; rnnconvert reads it "
                                "when its body is an LSTM, GRU or simple RNN cell it checks")
    o = op.options
    ci, bi = o.get("cond_subgraph_index", -1), o.get("body_subgraph_index", -1)
    if not (0 < ci < len(graphs) and 0 < bi < len(graphs)):
        raise refuse("its cond or body subgraph is missing")
    cond, body = graphs[ci], graphs[bi]
    n = len(op.inputs)
    if len(body.inputs) != n or len(body.outputs) != n or len(cond.inputs) != n or len(cond.ops) != 1 \
            or cond.ops[0].name != "LESS":
        raise refuse("its loop is not a count over time steps (cond LESS(t, T))")
    less = cond.ops[0].inputs
    if len(less) != 2 or not set(less) <= set(cond.inputs):
        raise refuse("its cond is not LESS of two loop variables")
    it, ilim = cond.inputs.index(less[0]), cond.inputs.index(less[1])
    gathers = [b for b in body.ops if b.name == "GATHER" and b.inputs[1] == body.inputs[it]
               and b.inputs[0] in body.inputs]
    if len(gathers) != 1:
        raise refuse("its body reads no single step x_t = GATHER(x, t)")
    ix = body.inputs.index(gathers[0].inputs[0])
    xt = gathers[0].outputs[0]
    rank2 = [k for k in range(n) if k not in (it, ilim, ix) and len(body.tensors[body.inputs[k]].shape) == 2
             and body.outputs[k] != body.inputs[k]]
    rank3 = [k for k in range(n) if k not in (ix,) and len(body.tensors[body.inputs[k]].shape) == 3]
    if not 1 <= len(rank2) <= 2 or len(rank3) != 1:
        raise refuse(f"its body carries {len(rank2)} states and {len(rank3)} output lists")
    fcs = [b for b in body.ops if b.name == "FULLY_CONNECTED" and b.inputs[1] >= 0
           and body.tensors[b.inputs[1]].data is not None]
    reads = _reads(body, xt, {body.inputs[k]: k for k in rank2})
    hk = [k for k in rank2 if any(k in reads.get(b.inputs[0], ()) for b in fcs)]
    if len(hk) != 1:
        raise refuse("no single state is read by a matrix product (the hidden state)")
    ih, ic = hk[0], next((k for k in rank2 if k != hk[0]), None)
    H = body.tensors[body.inputs[ih]].shape[-1]
    if not isinstance(H, int) or H < 1:
        raise refuse(f"its hidden state has shape {body.tensors[body.inputs[ih]].shape}")
    W = [b for b in fcs if reads.get(b.inputs[0]) == {"x"}]
    R = [b for b in fcs if ih in reads.get(b.inputs[0], ())]
    if not W or not R:
        raise refuse("its body has no matrix product of the input and of the state")
    w = _weights(body, W, R, reads, H)
    w["hybrid"] = _hybrid(body, W + R, refuse)
    h0, c0 = (_initial(op, k, consts, refuse) if k is not None else None for k in (ih, ic))
    probe = _probe(body, xt, body.inputs[ih], None if ic is None else body.inputs[ic], body.outputs[ih],
                   None if ic is None else body.outputs[ic], w["F"], H, refuse)
    layer = _match(name, w, H, ic is not None, probe, refuse)
    layer.weights[0].h0, layer.weights[0].c0 = h0, c0
    full = body.tensors[body.inputs[rank3[0]]].shape[0] != 1 or op.inputs[rank3[0]] not in consts
    return Lifted(layer, op.outputs[rank3[0]], op.outputs[ih], full)


def _reads(body, xt, states: dict) -> dict:
    """{tensor: what it depends on: 'x' (x_t), k (the state carried as loop variable k)} over the body's ops."""
    dep = {xt: {"x"}, **{t: {k} for t, k in states.items()}}
    for b in body.ops:
        d = set().union(*(dep.get(i, set()) for i in b.inputs if i >= 0))
        for out in b.outputs:
            dep.setdefault(out, d)
    return dep


def _weights(body, W, R, reads, H) -> dict:
    t = body.tensors

    def bias(b):
        return (np.asarray(t[b.inputs[2]].data, np.float64) if len(b.inputs) > 2 and b.inputs[2] >= 0
                else np.zeros(t[b.inputs[1]].shape[0]))
    mats = [np.asarray(t[b.inputs[1]].data, np.float64) for b in W + R]
    if any(m.ndim != 2 for m in mats) or len({m.shape[1] for m in mats[:len(W)]}) != 1 \
            or any(m.shape[1] != H for m in mats[len(W):]):
        raise UnsupportedError(f"{body.name}: matrix products of shapes {[list(m.shape) for m in mats]} are no "
                               f"cell's over a state of {H}")
    Wm, Rm = np.concatenate(mats[:len(W)]), np.concatenate(mats[len(W):])
    Wb, Rb = np.concatenate([bias(b) for b in W]), np.concatenate([bias(b) for b in R])
    for b in body.ops:          # a bias added after the products (an LSTM's BiasAdd)
        if b.name == "ADD" and len(b.inputs) == 2:
            c = [i for i in b.inputs if t[i].data is not None]
            if len(c) == 1 and np.size(t[c[0]].data) == len(Wb) and reads.get(b.outputs[0]):
                Wb = Wb + np.asarray(t[c[0]].data, np.float64).reshape(-1)
    return {"W": Wm, "R": Rm, "Wb": Wb, "Rb": Rb, "F": Wm.shape[1], "sW": _row_scales(t, W), "sR": _row_scales(t, R)}


def _row_scales(t, fcs):
    """One scale per row of the products' weights (1.0 for float ones)."""
    out = []
    for b in fcs:
        w = t[b.inputs[1]]
        rows = w.shape[0]
        out.append(np.ones(rows) if w.scales is None else np.broadcast_to(w.scales.astype(np.float64), (rows,)))
    return np.concatenate(out)


def _hybrid(body, fcs, refuse):
    """(asymmetric inputs) when the products' weights are int8 (LiteRT's hybrid FULLY_CONNECTED), else None."""
    ws = [body.tensors[b.inputs[1]] for b in fcs]
    if not any(w.quantized for w in ws):
        return None
    if not all(w.quantized and w.scales is not None and w.scales.size in (1, w.shape[0]) for w in ws):
        raise refuse("its matrix products mix int8 and float weights, or carry int8 zero points or scales "
                     "rnnconvert does not read")
    flags = {bool(b.options.get("asymmetric_quantize_inputs")) for b in fcs}
    if len(flags) != 1:
        raise refuse("its int8 products quantize their inputs differently")
    return flags.pop()


def _initial(op, k, consts, refuse):
    i = op.inputs[k]
    if i not in consts:
        raise refuse("its initial state is computed, not a constant")
    v = np.asarray(consts[i], np.float32)
    if v.ndim != 2 or v.shape[0] != 1:
        raise refuse(f"its initial state has shape {list(v.shape)}")
    return None if not np.any(v) else v[0].copy()


def _probe(body, xt, h_in, c_in, h_out, c_out, F, H, refuse):
    rng = np.random.default_rng(0)
    scale = np.array([1.0, 0.3, 3.0, 6.0])[:, None]
    x, h, c = (rng.standard_normal((4, m)) * scale for m in (F, H, H))
    try:
        with np.errstate(all="ignore"):
            env = _run(body, {xt: x, h_in: h, **({c_in: c} if c_in is not None else {})},
                       [o for o in (h_out, c_out) if o is not None], refuse)
    except (ValueError, IndexError, TypeError) as exc:
        raise refuse(f"its body cannot be evaluated on x_t and the states ({type(exc).__name__}: "
                     f"{str(exc)[:80]})") from None
    if h_out not in env or c_out is not None and c_out not in env:
        raise refuse("its new state does not follow from x_t and the states")
    return x, h, c, env[h_out], None if c_out is None else env[c_out]


def _run(body, feeds: dict, wanted: list, refuse) -> dict:
    """The ops `wanted` needs from `feeds`, in float64; an op of the cell outside the set is refused."""
    env = dict(feeds)
    t = body.tensors
    need = set(wanted)
    for b in reversed(body.ops):
        if need & set(b.outputs) and not set(b.outputs) & set(feeds):
            need |= {i for i in b.inputs if i >= 0}
    for b in body.ops:
        if any(o in env for o in b.outputs) or not need & set(b.outputs):
            continue
        vals = [env.get(i, t[i].data if i >= 0 else None) for i in b.inputs]
        vals = [None if v is None else np.asarray(v, np.float64) for v in vals]
        act = _FUSED.get(b.options.get("fused_activation_function", 0))
        if b.name == "FULLY_CONNECTED" and t[b.inputs[1]].quantized:
            y = _hybrid_fc(vals[0], t[b.inputs[1]], vals[2] if len(vals) > 2 else None,
                           bool(b.options.get("asymmetric_quantize_inputs")))
        elif b.name == "FULLY_CONNECTED":
            y = vals[0] @ vals[1].T + (vals[2] if len(vals) > 2 and vals[2] is not None else 0)
        elif b.name in ("ADD", "SUB", "MUL", "MINIMUM", "MAXIMUM"):
            y = {"ADD": np.add, "SUB": np.subtract, "MUL": np.multiply, "MINIMUM": np.minimum,
                 "MAXIMUM": np.maximum}[b.name](vals[0], vals[1])
        elif b.name in ("LOGISTIC", "TANH", "RELU", "RELU6"):
            y = {"LOGISTIC": lambda v: 1 / (1 + np.exp(-v)), "TANH": np.tanh, "RELU": lambda v: np.maximum(v, 0),
                 "RELU6": lambda v: np.clip(v, 0, 6)}[b.name](vals[0])
        elif b.name in ("SPLIT", "SPLIT_V"):
            data, axis = (vals[1], vals[0]) if b.name == "SPLIT" else (vals[0], vals[2])
            sizes = [data.shape[int(axis)] // len(b.outputs)] * len(b.outputs) if b.name == "SPLIT" \
                else [int(v) for v in vals[1]]
            ys = np.split(data, np.cumsum(sizes)[:-1], axis=int(axis))
            env.update(zip(b.outputs, ys))
            continue
        else:
            raise refuse(f"its body computes the cell with {b.name}, which rnnconvert does not evaluate")
        env[b.outputs[0]] = act(y) if act is not None else y
    return env


def _hybrid_fc(v, weight, bias, asymmetric: bool):
    """LiteRT's hybrid FULLY_CONNECTED (`rnnconvert/reference/hybrid.py`), for the body's evaluation."""
    from ...reference.hybrid import F32, quantize
    s = np.broadcast_to(weight.scales.astype(F32), (weight.shape[0],))
    M = np.rint(np.asarray(weight.data, np.float64) / s[:, None].astype(np.float64))
    q, sf, zp = quantize(np.asarray(v, F32), asymmetric)
    dot = q @ M.T - zp[:, None] * M.sum(axis=1)[None, :]
    out = np.zeros(dot.shape, F32) + (np.asarray(bias, F32) if bias is not None else F32(0))
    return (out + dot.astype(F32) * (sf[:, None] * s[None, :])).astype(np.float64)


def _match(name, w, H, has_c, probe, refuse) -> Recurrent:
    from ...reference.network import run_layer
    x, h, c, h_new, c_new = probe
    G = w["W"].shape[0] // H
    cell = {1: "rnn", 3: "gru", 4: "lstm"}.get(G) if w["W"].shape[0] == G * H == w["R"].shape[0] else None
    if cell is None or (cell == "lstm") != has_c:
        raise refuse(f"its products have {w['W'].shape[0]} rows for a state of {H}, no cell rnnconvert knows")
    tries = {"rnn": [[a] for a in CANDIDATES], "lstm": [[f, g, g] for f, g in itertools.product(GATES, CANDIDATES)],
             "gru": [[f, g] for f, g in itertools.product(GATES, CANDIDATES)]}[cell]
    orders = ORDERS[cell]
    best = np.inf
    for acts, reset_after, order in itertools.product(tries, (True, False) if cell == "gru" else (True,), orders):
        Wm, Rm, Wb, Rb, sW, sR = (gates.permute(w[k], cell, order, gates.CANONICAL[cell])
                                  for k in ("W", "R", "Wb", "Rb", "sW", "sR"))
        dw = DirectionWeights(Wm, Rm, Wb, Rb, h0=h, c0=c if has_c else None)
        hybrid = None if w["hybrid"] is None else {"asymmetric_inputs": w["hybrid"], "scales": {
            "forward.W": [float(v) for v in sW], "forward.R": [float(v) for v in sR]}}
        layer = Recurrent(name, cell, H, "forward", [dw], list(acts), reset_after=reset_after,
                          has_recurrent_bias=bool(np.any(Rb)), hybrid=hybrid)
        try:
            with np.errstate(all="ignore"):
                y, states = run_layer(layer, x[:, None, :])
        except Exception:  # noqa: BLE001 - a candidate the reference refuses is no match
            continue
        diff = max(float(np.abs(states[0].h - h_new).max()),
                   float(np.abs(states[0].c - c_new).max()) if has_c else 0.0)
        best = min(best, diff)
        if diff <= TOL * (1 + float(np.abs(h_new).max())):
            f32 = [np.asarray(a, np.float32) for a in (Wm, Rm, Wb, Rb)]
            layer.weights = [DirectionWeights(*f32)]
            layer.output = "sequence"
            return layer
    raise refuse(f"its body has the sizes of a {cell.upper()} but matches none of its forms (closest: "
                 f"{best:.3g} from the body, random x_t and states)")


class TimeMajor:
    """The input sequence TRANSPOSEd to [time, batch, features] for TensorFlow's WHILE (`reversed`: in time,
    by a REVERSE_V2 of axis 0: the loop of a backward layer)."""
    def __init__(self, base, reversed: bool = False):
        self.base, self.reversed = base, reversed


class WhileOut:
    """A lifted WHILE's outputs list: [time, batch, H] (`full`) or its last step [1, batch, H]."""
    def __init__(self, base, layer, full: bool):
        self.base, self.layer, self.full = base, layer, full


def feeds_while(g, tensor: int, loops: dict) -> bool:
    """Is `tensor` read by a WHILE rnnconvert did not write (TensorFlow's), or by a REVERSE_V2 feeding one?"""
    for k, b in enumerate(g.ops):
        if tensor in b.inputs[:1] and b.name == "REVERSE_V2" and feeds_while(g, b.outputs[0], loops):
            return True
        if b.name == "WHILE" and k not in loops and tensor in b.inputs:
            return True
    return False


def time_major_op(op, x: TimeMajor, consts, g):
    """REVERSE_V2 of the time axis (a backward layer's loop input)."""
    axis = np.asarray(consts[op.inputs[1]]).reshape(-1).tolist() if op.inputs[1] in consts else None
    if op.name == "REVERSE_V2" and axis == [0]:
        return TimeMajor(x.base, not x.reversed)
    raise UnsupportedError(f"{g.name}: {op.name} of the time-major sequence a WHILE loop reads")


def read_while(op, g, graphs, vals, consts, name, chain_of):
    """The WHILE's outputs into `vals`: its outputs list as a WhileOut, its final state as a Chain."""
    from dataclasses import replace
    xs = [vals[i] for i in op.inputs if i in vals]
    if len(xs) != 1 or not isinstance(xs[0], TimeMajor):
        raise UnsupportedError(f"{g.name}: op WHILE is not one rnnconvert reads (on the data path, output "
                               f"'{g.tensors[op.outputs[0]].name}'): it does not loop over the time-major input")
    lifted = lift(op, g, graphs, consts, name)
    base = xs[0].base
    if xs[0].reversed:
        lifted.layer.direction = "reverse"
        if lifted.layer.hybrid is not None:
            h = lifted.layer.hybrid
            h["scales"] = {k.replace("forward.", "reverse."): v for k, v in h["scales"].items()}
    vals[lifted.seq] = WhileOut(base, lifted.layer, lifted.full)
    vals[lifted.h] = chain_of(base.layers + [replace(lifted.layer, output="final_state")])


def while_output(op, x: WhileOut, consts, g, chain_of):
    """TRANSPOSE [1, 0, 2] of every step: the sequence in the order processed (a `Seq`, which a REVERSE_V2,
    a CONCATENATION with the other direction or any other op completes); STRIDED_SLICE of the last step
    processed: the final state."""
    from dataclasses import replace
    from .reader_recurrent import Seq
    c = [np.asarray(consts[i]).reshape(-1).tolist() if i in consts else None for i in op.inputs[1:]]
    reverse = x.layer.direction == "reverse"
    if op.name == "TRANSPOSE" and x.full and c[0] == [1, 0, 2]:
        return Seq(x.base, x.layer, "processing" if reverse else "input")
    if op.name == "STRIDED_SLICE" and len(c) == 3 and op.options.get("shrink_axis_mask", 0) & 1 \
            and c[0] is not None and (c[0][0] == -1 or not x.full and c[0][0] == 0):
        return chain_of(x.base.layers + [replace(x.layer, output="final_state")])
    raise UnsupportedError(f"{g.name}: {op.name} of the outputs of TensorFlow's WHILE loop over layer "
                           f"'{x.layer.name}': rnnconvert reads their TRANSPOSE (every step) or their last step")
