"""Recurrent layers as TFLite's sequence ops: LSTM as UNIDIRECTIONAL_SEQUENCE_LSTM /
BIDIRECTIONAL_SEQUENCE_LSTM, simple RNN as UNIDIRECTIONAL_SEQUENCE_RNN / BIDIRECTIONAL_SEQUENCE_RNN,
batch-major (time_major false), a reverse layer between two REVERSE_V2.

Odd about them: the ops keep one bias per gate (Wb + Rb, summed in float32); their LSTM gates are
sigmoid and the cell and output activations one fused activation (tanh, relu, relu6 or none); and their
state tensors are variables that keep the last state across `invoke`.  So that each invoke starts from
the model's initial state, a FILL (plus h0/c0 when the model has them) writes the state variables before
the op, every invoke, with the batch size of that invoke (this also lets the batch change on resize).
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...model import Recurrent
from . import quantize as q
from .emit import FUSED, Emitter, Value



def fused_form(layer: Recurrent) -> str | None:
    """Why `layer` cannot be one of TFLite's sequence ops, or None when it can."""
    acts = [a.name for a in layer.activations]
    if layer.cell == "gru":
        return "TFLite has no GRU op"
    if layer.clip is not None:
        return f"clip {layer.clip:g} bounds every pre-activation, TFLite's cell_clip only the cell state"
    if layer.cell == "lstm":
        if acts[0] != "sigmoid":
            return f"gate activation {layer.activations[0]}: TFLite's LSTM gates are sigmoid"
        if acts[1] != acts[2] or acts[1] not in FUSED:
            return (f"cell/output activations {layer.activations[1]}/{layer.activations[2]}: TFLite's LSTM "
                    "takes one of tanh, relu, relu6, linear for both")
    elif acts[0] not in FUSED:
        return f"activation {layer.activations[0]}: TFLite's RNN takes tanh, relu, relu6 or linear"
    return None


def emit_recurrent(e: Emitter, layer: Recurrent, x: Value, quantize=None, mask: Value | None = None,
                   force_loop: bool = False) -> Value:
    if len(x.dims) != 3:
        raise UnsupportedError("a recurrent layer needs a sequence [batch, time, features]", layer=layer.name)
    if fused_form(layer) or mask is not None or force_loop:
        return _as_loops(e, layer, x, mask, quantize)
    act = FUSED[layer.activations[-1].name]
    S, name = layer.state_size, layer.name
    if layer.direction == "bidirectional":
        # merge_outputs=true is not used: LiteRT 2.x's batch-major merged output is wrong past batch 2 (its
        # backward half lands in the wrong rows); a CONCATENATION after the op is exact.
        outs = _bidirectional(e, layer, x, act, False, quantize)
        picked = [_pick(e, layer, y, reverse) for y, reverse in zip(outs, (False, True))]
        return _merge(e, layer, picked)
    reverse = layer.direction == "reverse"
    xin = e.reverse_time(x, f"{name}/reversed_input") if reverse else x
    y = e.new(f"{name}/output_in_processing_order" if reverse else f"{name}/output", [x.dims[0], x.dims[1], S])
    _unidirectional(e, layer, layer.weights[0], xin, y, act, "", quantize)
    if reverse and layer.output == "sequence" and layer.time_order == "processing":
        return y
    if reverse and layer.output == "sequence":
        return e.reverse_time(y, f"{name}/output")
    if layer.output == "sequence":
        return y
    # last_step and final_state of one direction: the last step processed, or (last_step of a reverse
    # layer in input order) the step after one input.
    first = reverse and layer.output == "last_step" and layer.time_order == "input"
    return e.step(y, last=not first, name=f"{name}/{layer.output}")


def _as_loops(e: Emitter, layer: Recurrent, x: Value, mask: Value | None = None, quantize=None) -> Value:
    """Each direction a WHILE loop (`loop.py`), time-aligned; then what the layer returns, merged."""
    from .loop import emit_loop_direction, last_processed_only
    ys = []
    for d, w in zip(layer.direction_names(), layer.weights):
        last = last_processed_only(e, layer, d == "reverse")
        y = emit_loop_direction(e, layer, w, x, d == "reverse", f"{d}/" if len(layer.weights) > 1 else "", e.loops,
                                mask, last, quantize)
        ys.append(y if last else _pick(e, layer, y, d == "reverse"))
    return ys[0] if len(ys) == 1 else _merge(e, layer, ys)


def _pick(e: Emitter, layer: Recurrent, y: Value, reverse: bool) -> Value:
    """One direction's time-aligned output -> what the layer returns of it (reference `_pick`)."""
    tag = "reverse" if reverse else "forward"
    processing = layer.time_order == "processing"
    if layer.output == "sequence":
        return e.reverse_time(y, f"{layer.name}/{tag}/in_processing_order") if processing else y
    first = (reverse and layer.output == "final_state") or (layer.output == "last_step" and processing)
    return e.step(y, last=not first, name=f"{layer.name}/{tag}/{layer.output}")


def _merge(e: Emitter, layer: Recurrent, ys: list[Value]) -> Value:
    name = f"{layer.name}/merged"
    if layer.merge == "concat":
        return e.concat(ys, name)
    if layer.merge == "mul":
        return e.binary("MUL", ys[0], ys[1].index, name)
    total = e.binary("ADD", ys[0], ys[1].index, name if layer.merge == "sum" else f"{name}/sum")
    if layer.merge == "sum":
        return total
    return e.binary("MUL", total, e.scalar(f"{name}/half", 0.5), name)


def _state(e: Emitter, x: Value, size: int, name: str, init) -> Value:
    """A state variable [batch, size] written before the op on every invoke: zeros, or `init` (h0/c0)."""
    var = e.new(name, [x.dims[0], size], variable=True)
    return e.rows_of(x, size, name, var, init)


def _gate_weights(e: Emitter, layer: Recurrent, w, tag: str, quantize) -> tuple[list, list, list, list]:
    """Per gate (canonical order: LSTM i, f, g, o as TFLite's input, forget, cell, output): W, R, bias."""
    H = layer.hidden
    gates = {"lstm": "ifgo", "rnn": "h"}[layer.cell]
    W, R, B = [], [], []
    bias = np.asarray(w.Wb, np.float32) + np.asarray(w.Rb, np.float32)
    hybrid, d = q.plan(layer, quantize), tag.rstrip("/") or layer.direction_names()[0]
    for k, g in enumerate(gates):
        rows = slice(k * H, (k + 1) * H)
        W.append(q.weight(e, f"{layer.name}/{tag}W_{g}", w.W[rows], hybrid, f"{d}.W", rows))
        R.append(q.weight(e, f"{layer.name}/{tag}R_{g}", w.R[rows], hybrid, f"{d}.R", rows))
        B.append(e.const(f"{layer.name}/{tag}bias_{g}", bias[rows]))
    proj = [] if w.proj is None else [q.weight(e, f"{layer.name}/{tag}projection", w.proj, hybrid, f"{d}.proj"), -1]
    return W, R, B, proj


def _unidirectional(e: Emitter, layer: Recurrent, w, x: Value, y: Value, act: int, tag: str, quantize) -> None:
    S, H = layer.state_size, layer.hidden
    W, R, B, proj = _gate_weights(e, layer, w, tag, quantize)
    hs = _state(e, x, S, f"{layer.name}/{tag}h_state", w.h0)
    if layer.cell == "rnn":
        e.op("UNIDIRECTIONAL_SEQUENCE_RNN", [x.index, W[0], R[0], B[0], hs.index], y, "SequenceRNNOptions",
             time_major=False, fused_activation_function=act, asymmetric_quantize_inputs=q.asymmetric(q.plan(layer, quantize)))
        return
    cs = _state(e, x, H, f"{layer.name}/{tag}c_state", w.c0)
    inputs = [x.index] + W + R + [-1, -1, -1] + B + (proj or [-1, -1]) + [hs.index, cs.index] + [-1] * 4
    e.op("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, y, "UnidirectionalSequenceLSTMOptions",
         fused_activation_function=act, time_major=False, asymmetric_quantize_inputs=q.asymmetric(q.plan(layer, quantize)))


def _bidirectional(e: Emitter, layer: Recurrent, x: Value, act: int, merged: bool, quantize) -> list[Value]:
    """Both directions in one op; outputs time-aligned (the backward one too); merged: one [.., 2S] output."""
    S, H, name = layer.state_size, layer.hidden, layer.name
    fw, bw = layer.weights
    outs = ([e.new(f"{name}/output", [x.dims[0], x.dims[1], 2 * S])] if merged else
            [e.new(f"{name}/forward/output", [x.dims[0], x.dims[1], S]),
             e.new(f"{name}/reverse/output", [x.dims[0], x.dims[1], S])])
    Wf, Rf, Bf, Pf = _gate_weights(e, layer, fw, "forward/", quantize)
    Wb, Rb, Bb, Pb = _gate_weights(e, layer, bw, "reverse/", quantize)
    hf = _state(e, x, S, f"{name}/forward/h_state", fw.h0)
    hb = _state(e, x, S, f"{name}/reverse/h_state", bw.h0)
    if layer.cell == "rnn":
        inputs = [x.index, Wf[0], Rf[0], Bf[0], hf.index, Wb[0], Rb[0], Bb[0], hb.index, -1, -1, -1]
        e.counts["BIDIRECTIONAL_SEQUENCE_RNN"] = e.counts.get("BIDIRECTIONAL_SEQUENCE_RNN", 0) + 1
        e.g.op("BIDIRECTIONAL_SEQUENCE_RNN", inputs, [o.index for o in outs], "BidirectionalSequenceRNNOptions",
               time_major=False, fused_activation_function=act, merge_outputs=merged,
               asymmetric_quantize_inputs=q.asymmetric(q.plan(layer, quantize)))
        return outs
    cf = _state(e, x, H, f"{name}/forward/c_state", fw.c0)
    cb = _state(e, x, H, f"{name}/reverse/c_state", bw.c0)
    inputs = ([x.index] + Wf + Rf + [-1] * 3 + Bf + (Pf or [-1, -1])
              + Wb + Rb + [-1] * 3 + Bb + (Pb or [-1, -1])
              + [hf.index, cf.index, hb.index, cb.index] + [-1] * 9)
    e.counts["BIDIRECTIONAL_SEQUENCE_LSTM"] = e.counts.get("BIDIRECTIONAL_SEQUENCE_LSTM", 0) + 1
    e.g.op("BIDIRECTIONAL_SEQUENCE_LSTM", inputs, [o.index for o in outs], "BidirectionalSequenceLSTMOptions",
           fused_activation_function=act, merge_outputs=merged, time_major=False,
           asymmetric_quantize_inputs=q.asymmetric(q.plan(layer, quantize)))
    return outs
