"""TFLite's sequence ops back into canonical recurrent layers.

A sequence op's output is held as `Seq` until what consumes it says what the layer returns: a REVERSE_V2
(a reverse layer's output back in input order), a STRIDED_SLICE of one step (last step or final state), a
CONCATENATION / ADD / MUL of the two directions (one bidirectional layer, as TensorFlow writes a Keras
Bidirectional: two unidirectional ops), or anything else (the whole sequence).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ...errors import UnsupportedError
from ...model import DirectionWeights, Recurrent
from ...model.activations import LINEAR, SIGMOID, Activation
from ...model.assumptions import Assumption
from . import reader_hybrid as hybrid, schema as s

FUSED_NAMES = {s.ACT_NONE: "linear", s.ACT_RELU: "relu", s.ACT_RELU6: "relu6", s.ACT_TANH: "tanh"}
SEQUENCE_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
                "BIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_RNN")


@dataclass
class Chain:
    layers: list


@dataclass
class Rev:
    base: Chain


@dataclass
class Seq:
    base: Chain
    layer: Recurrent            # one direction
    order: str                  # 'input' (time-aligned) or 'processing'
    pick: str | None = None     # None (the sequence), 'last' or 'first'
    half: bool = False          # one direction of a bidirectional op: only a merge completes it


def fused_activation(code: int, op: str, graph: str) -> Activation:
    if code not in FUSED_NAMES:
        raise UnsupportedError(f"{graph}: {op} with fused activation {code}; rnnconvert reads none, relu, "
                               "relu6 and tanh")
    return Activation(FUSED_NAMES[code])


def _direction(r, consts, cell, name, graph, init) -> DirectionWeights:
    """Weights of one direction from the op's inputs `r` (LSTM: 18 after input; RNN: 3)."""
    def c(k, what):
        if r[k] < 0 or consts.get(r[k]) is None:
            raise UnsupportedError(f"{graph}: {name}: the {what} is not a constant tensor (or is absent: "
                                   "rnnconvert reads LSTMs with an input gate, CIFG ones are not read)")
        return np.asarray(consts[r[k]], np.float32)
    if cell == "rnn":
        W, R, B = c(0, "input weights"), c(1, "recurrent weights"), c(2, "bias")
        return DirectionWeights(W, R, B, np.zeros_like(B), h0=init(r[3]))
    for k, what in ((8, "cell-to-input peephole"), (9, "cell-to-forget peephole"), (10, "cell-to-output peephole"),
                    (16, "projection bias")):
        if r[k] >= 0:
            raise UnsupportedError(f"{graph}: {name}: has a {what}, which the canonical LSTM does not hold")
    W = np.concatenate([c(k, "input weights") for k in range(4)])
    R = np.concatenate([c(k, "recurrent weights") for k in range(4, 8)])
    B = np.concatenate([c(k, "gate bias") for k in range(11, 15)])
    proj = c(15, "projection weights") if r[15] >= 0 else None
    return DirectionWeights(W, R, B, np.zeros_like(B), h0=init(r[17]), c0=init(r[18]), proj=proj)


def sequence_op(op, x, consts, graph, init, name, assumptions: list, tensors=()) -> list:
    """The op's outputs as `Seq` (or a Chain when a bidirectional op merges its outputs itself); `tensors`:
    the subgraph's, for the scales of int8 weights (a hybrid op)."""
    cell = "lstm" if "LSTM" in op.name else "rnn"
    o = op.options
    if o.get("time_major"):
        raise UnsupportedError(f"{graph}: {name}: {op.name} with time_major=true; rnnconvert reads batch-major "
                               "sequence ops")
    act = fused_activation(o.get("fused_activation_function", 0), op.name, graph)
    if cell == "lstm" and o.get("proj_clip"):
        raise UnsupportedError(f"{graph}: {name}: proj_clip {o['proj_clip']:g} is not in the canonical LSTM")
    if cell == "lstm" and o.get("cell_clip"):
        # TensorFlow's converter writes cell_clip 10 on every Keras LSTM, which Keras never applies.
        clip = o["cell_clip"]
        assumptions.append(Assumption(
            f"layer '{name}': {op.name} clips its cell state to [-{clip:g}, {clip:g}] (cell_clip); read without "
            f"it, as the Keras layer TensorFlow converted computes: the same while |c| stays under {clip:g}, "
            "which `rnnconvert verify` checks on the file as it is (litert(src))", "default",
            f"cell_clip {clip:g} dropped", ""))
    acts = [SIGMOID, act, act] if cell == "lstm" else [act]
    base, order = (x.base, "processing") if isinstance(x, Rev) else (x, "input")
    ins = op.inputs
    if op.name.startswith("UNIDIRECTIONAL"):
        need = 24 if cell == "lstm" else 5
        if len(ins) < need - (4 if cell == "lstm" else 0):
            raise UnsupportedError(f"{graph}: {name}: {op.name} with {len(ins)} inputs, expected {need}")
        ins = ins + [-1] * (need - len(ins))
        rest = ins[1:18] + [ins[18], ins[19]] if cell == "lstm" else ins[1:5]
        w = _direction(rest, consts, cell, name, graph, init)
        layer = _layer(name, cell, w, acts, "reverse" if order == "processing" else "forward")
        layer.hybrid = hybrid.recurrent(op, tensors, layer, [(layer.direction, rest)], graph)
        return [Seq(base, layer, order)]
    if order == "processing":
        raise UnsupportedError(f"{graph}: {name}: a bidirectional op on a reversed sequence")
    if cell == "lstm":
        if len(ins) < 39:
            raise UnsupportedError(f"{graph}: {name}: {op.name} with {len(ins)} inputs, expected 48")
        fw = ins[1:18] + [ins[35], ins[36]]
        bw = ins[18:35] + [ins[37], ins[38]]
        if len(ins) > 39 and ins[39] >= 0:
            raise UnsupportedError(f"{graph}: {name}: {op.name} with an auxiliary input")
    else:
        if len(ins) < 9:
            raise UnsupportedError(f"{graph}: {name}: {op.name} with {len(ins)} inputs, expected 12")
        fw, bw = ins[1:5], ins[5:9]
        if len(ins) > 9 and ins[9] >= 0:
            raise UnsupportedError(f"{graph}: {name}: {op.name} with an auxiliary input")
    wf = _direction(fw, consts, cell, name, graph, init)
    wb = _direction(bw, consts, cell, name, graph, init)
    if o.get("merge_outputs"):
        layer = _layer(name, cell, [wf, wb], acts, "bidirectional")
        layer.hybrid = hybrid.recurrent(op, tensors, layer, [("forward", fw), ("reverse", bw)], graph)
        return [Chain(base.layers + [layer])]
    halves = [_layer(name, cell, wf, acts, "forward"), _layer(name, cell, wb, acts, "reverse")]
    for layer, r in zip(halves, (fw, bw)):
        layer.hybrid = hybrid.recurrent(op, tensors, layer, [(layer.direction, r)], graph)
    return [Seq(base, layer, "input", half=True) for layer in halves]


def _layer(name, cell, w, acts, direction) -> Recurrent:
    ws = w if isinstance(w, list) else [w]
    return Recurrent(name=name, cell=cell, hidden=int(ws[0].W.shape[0] // (4 if cell == "lstm" else 1)),
                     direction=direction, weights=ws, activations=list(acts), has_recurrent_bias=False)


def output_kind(seq: Seq, graph: str) -> tuple[str, str]:
    """(output, time_order) of one direction's Seq: what its pick says the layer returns."""
    reverse = seq.layer.direction == "reverse"
    if seq.pick is None:
        return "sequence", seq.order
    if seq.order == "processing":
        return ("final_state" if seq.pick == "last" else "last_step"), "input"
    if seq.pick == "last":
        return ("last_step" if reverse else "final_state"), "input"
    if reverse:
        return "final_state", "input"
    raise UnsupportedError(f"{graph}: {seq.layer.name}: the first step of a forward sequence is no output "
                           "the canonical model has")


def finish(x, graph: str) -> Chain:
    """A value the next op reads as a whole: a Seq becomes its layer."""
    if isinstance(x, Chain):
        return x
    if isinstance(x, Rev):
        raise UnsupportedError(f"{graph}: a sequence reversed in time (REVERSE_V2) that no recurrent op reads")
    if x.half:
        raise UnsupportedError(f"{graph}: {x.layer.name}: one direction of a bidirectional op used on its own")
    output, order = output_kind(x, graph)
    return Chain(x.base.layers + [replace(x.layer, output=output, time_order=order)])


def merge(a: Seq, b: Seq, mode: str, graph: str) -> Chain:
    """Two directions over the same input, merged: one bidirectional layer."""
    if a.base is not b.base or {a.layer.direction, b.layer.direction} != {"forward", "reverse"}:
        raise UnsupportedError(f"{graph}: a {mode} of two sequences that are not the two directions of one "
                               "recurrent layer")
    if a.layer.direction == "reverse":
        if mode == "concat":
            raise UnsupportedError(f"{graph}: the backward direction concatenated before the forward one")
        a, b = b, a
    (fo, ft), (bo, bt) = output_kind(a, graph), output_kind(b, graph)
    if ft != "input" or bt != "input" or (fo == "sequence") != (bo == "sequence") or a.layer.cell != b.layer.cell:
        raise UnsupportedError(f"{graph}: {a.layer.name}/{b.layer.name}: the two directions return different "
                               "things")
    output = bo if bo != "sequence" else "sequence"
    layer = replace(a.layer, name=a.layer.name, direction="bidirectional", weights=a.layer.weights + b.layer.weights,
                    output=output, merge=mode, hybrid=hybrid.merged(a.layer, b.layer, graph))
    if a.layer.activations != b.layer.activations or a.layer.hidden != b.layer.hidden \
            or a.layer.reset_after != b.layer.reset_after:
        raise UnsupportedError(f"{graph}: {a.layer.name}/{b.layer.name}: directions with different settings")
    return Chain(a.base.layers + [layer])


__all__ = ["Chain", "Rev", "Seq", "SEQUENCE_OPS", "sequence_op", "finish", "merge", "fused_activation", "LINEAR"]
