"""Recurrent nodes on the walk: an LSTM/GRU/RNN node's weights (turned to canonical gate order in
place where the walk owns them), activations, initial states and outputs (`recurrent`), and raw
recurrent outputs turned into canonical layers where something that is not glue consumes them
(`finalize`; two one-direction nodes over one input become one bidirectional layer, `_pair`).
`RecurrentNodes` is mixed into `glue.Walker`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ...model import gates
from ...errors import InputError
from ...model import DirectionWeights, Recurrent
from . import _acts
from ._flow import Flow, Piece, collapse
from ._graph import Bcast, Const, FullLen, Unusable, Zeros, describe, node_attrs

RECURRENT = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}


@dataclass
class RecInfo:
    name: str
    op: str
    cell: str
    direction: str            # effective direction (a forward node over reversed input is 'reverse')
    hidden: int
    weights: list
    activations: list
    clip: float | None
    reset_after: bool
    has_bias: bool
    stack: tuple
    cache: dict = field(default_factory=dict)
    members: tuple = ()       # for a layer made of two one-direction nodes: their indices
    key: str = ""             # the node's name (or first output), for reports


class RecurrentNodes:
    # ---------------------------------------------------------------- recurrent nodes
    def recurrent(self, node, ins):
        op, cell = node.op_type, RECURRENT[node.op_type]
        a = node_attrs(node)
        x = ins[0]
        if not isinstance(x, Flow):
            self.refuse(node, "its input X is not computed from the graph input")
        x = self.settle(x, node)
        layout = int(a.get("layout", 0))
        if len(x.axes) != 3 or x.axes[2] != "F" or set(x.axes[:2]) != {"A0", "A1"}:
            self.refuse(node, f"its input X has axes {x.axes}, expected [time, batch, features]")
        t_axis = x.axes[0] if layout == 0 else x.axes[1]
        if self.time is None:
            self.time = t_axis
        elif self.time != t_axis:
            self.refuse(node, "its input runs over the batch axis as time (inconsistent time axis)")
        direction = a.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise InputError(f"{describe(node)}: direction '{direction}'", path=self.path)
        D = 2 if direction == "bidirectional" else 1
        G = gates.GATE_COUNT[cell]
        W, R, B = (self._weight(node, ins, k, n) for k, n in ((1, "W"), (2, "R"), (3, "B")))
        if W is None or R is None:
            raise InputError(f"{describe(node)}: W and R are required inputs", path=self.path)
        H = int(a.get("hidden_size", R.shape[-1] if R.ndim == 3 else 0))
        problems = []
        if W.ndim != 3 or W.shape[0] != D or W.shape[1] != G * H:
            problems.append(f"W has shape {tuple(W.shape)}, expected ({D}, {G}*hidden_size = {G * H}, input_size)")
        elif x.width > 0 and W.shape[2] != x.width:
            problems.append(f"W has input size {W.shape[2]} but X has {x.width} features")
        if R.shape != (D, G * H, H):
            problems.append(f"R has shape {tuple(R.shape)}, expected ({D}, {G * H}, {H})")
        if B is not None and B.shape != (D, 2 * G * H):
            problems.append(f"B has shape {tuple(B.shape)}, expected ({D}, {2 * G * H})")
        if problems:
            raise InputError(f"{describe(node)} (hidden_size={H}): " + "; ".join(problems), path=self.path)
        if len(ins) > 4 and ins[4] is not None and not self._full_lengths(x, t_axis, ins[4]):
            self.refuse(node, "it takes sequence_lens (variable-length batches); the canonical model runs "
                              "every sequence to the full length")
        peep = [None] * D
        if cell == "lstm":
            if int(a.get("input_forget", 0)):
                self.refuse(node, "input_forget=1 (coupled input and forget gates) has no canonical form")
            P = self._weight(node, ins, 7, "P")
            if P is not None and P.shape != (D, 3 * H):
                raise InputError(f"{describe(node)}: P has shape {tuple(P.shape)}, expected ({D}, {3 * H})",
                                 path=self.path)
            if P is not None and np.any(P):
                peep = [gates.peepholes_to_canonical(P[d]) for d in range(D)]
        names = list(a.get("activations", _acts.DEFAULT_ACTS[cell] * D))
        n = len(_acts.DEFAULT_ACTS[cell])
        try:
            acts = _acts.from_onnx(names, list(a.get("activation_alpha", [])), list(a.get("activation_beta", [])))
        except KeyError:
            self.refuse(node, f"activations {names}: rnnconvert knows {sorted(_acts.FROM_ONNX)}")
        if len(acts) not in (n, n * D):
            raise InputError(f"{describe(node)}: {len(acts)} activations, expected {n * D}", path=self.path)
        if len(acts) == 2 * n and acts[:n] != acts[n:]:
            self.refuse(node, f"its two directions use different activations ({names}); the canonical "
                              "model has one list per layer")
        acts = acts[:n]
        h0 = self._state(node, ins, 5, D, H)
        c0 = self._state(node, ins, 6, D, H) if cell == "lstm" else [None] * D
        weights = []
        W_in, R_in = (self._in_place(node, k, a, cell) for k, a in ((1, W), (2, R)))
        for d in range(D):
            b = B[d] if B is not None else np.zeros(2 * G * H, W.dtype)
            weights.append(DirectionWeights(
                W=W_in[d] if W_in is not None else gates.to_canonical(W[d], cell, "onnx"),
                R=R_in[d] if R_in is not None else gates.to_canonical(R[d], cell, "onnx"),
                Wb=gates.to_canonical(b[:G * H], cell, "onnx"), Rb=gates.to_canonical(b[G * H:], cell, "onnx"),
                h0=h0[d], c0=c0[d], P=peep[d]))
        eff = direction
        if x.rev:   # a node over time-reversed input
            if direction == "bidirectional":
                self.refuse(node, "a bidirectional node over time-reversed input")
            eff = "reverse" if direction == "forward" else "forward"
        info = RecInfo(name=node.name or f"{cell}_{len(self.recs)}", op=op, cell=cell, direction=eff, hidden=H,
                       weights=weights, activations=acts, clip=a.get("clip"),
                       reset_after=bool(int(a.get("linear_before_reset", 0))) if cell == "gru" else True,
                       has_bias=B is not None, stack=x.stack, key=node.name or node.output[0])
        k = len(self.recs)
        self.recs.append(info)
        seq = tuple(Piece(((k, d, "seq"),)) for d in range(D))
        st = tuple(Piece(((k, d, "state"),)) for d in range(D))
        t, b = (self.time, "A1" if self.time == "A0" else "A0")
        y_axes = (t, "D", b, "F") if layout == 0 else (b, t, "D", "F")
        h_axes = ("D", b, "F") if layout == 0 else (b, "D", "F")
        y = Flow(axes=y_axes, entries=seq, width=H, rev=x.rev, steps=x.steps)
        yh = Flow(axes=h_axes, entries=st, width=H)
        yc = Unusable(f"uses the cell state Y_c of {describe(node)}; the canonical model returns hidden "
                      "states only")
        return [y, yh, yc][:len(node.output)]

    def _full_lengths(self, x, t_axis, lens) -> bool:
        """sequence_lens that are the whole length of every sequence (a constant equal to the input's fixed
        time size, or the time size repeated): the node computes what it computes without them."""
        n = self.size(x, t_axis)
        return isinstance(lens, FullLen) and lens.size == n or \
            isinstance(lens, Const) and n.is_int and lens.value.size > 0 and bool(np.all(lens.value == n.coef))

    def _weight(self, node, ins, k, name):
        if len(ins) <= k or ins[k] is None:
            return None
        f = ins[k]
        if isinstance(f, Zeros):
            return None if name == "P" else self.refuse(node, f"{name} is an all-zero tensor of runtime shape")
        if not isinstance(f, Const):
            self.refuse(node, f"its {name} is computed at run time (a graph input?), not stored in the file")
        return np.asarray(f.value, dtype=np.float32) if f.value.dtype != np.float32 else f.value

    def _in_place(self, node, k, a, cell):
        """W or R [D, gates*H, n] in canonical gate order inside its own memory, when it is an array read
        from the file for this one node input (no other node or output names it); else None."""
        name = node.input[k]
        if self.canonical.get(name) is a:     # a node walked again: already canonical
            return a
        if name not in self.own or self.values.get(name) is not a or not a.flags.writeable:
            return None
        self.own.discard(name)
        self.canonical[name] = gates.permute_in_place(a, cell, gates.ORDERS["onnx"][cell], gates.CANONICAL[cell],
                                                      axis=1)
        return a

    def _state(self, node, ins, k, D, H):
        role = "initial_h" if k == 5 else "initial_c"
        f = ins[k] if len(ins) > k else None
        if f is None or isinstance(f, Zeros):
            return [None] * D
        if isinstance(f, Bcast):
            try:
                base = np.broadcast_to(f.base.reshape((1,) * (3 - f.base.ndim) + f.base.shape), (D, 1, H))
            except ValueError:
                self.refuse(node, f"{role} expands a constant of shape {f.base.shape} that is not [dirs, 1, hidden]")
            return [np.array(base[d, 0], dtype=np.float32) for d in range(D)]
        if isinstance(f, Const):
            v = f.value
            if v.ndim != 3 or v.shape[0] != D or v.shape[2] != H:
                raise InputError(f"{describe(node)}: {role} has shape {v.shape}, expected ({D}, batch, {H})",
                                 path=self.path)
            if not np.any(v):
                return [None] * D
            return [np.array(v[d], dtype=np.float32) for d in range(D)]
        self.refuse(node, f"its {role} comes from a graph input or a computed tensor; rnnconvert reads "
                          "initial states stored in the file (constants) or zeros")

    # ---------------------------------------------------------------- raw -> canonical layers
    def finalize(self, f: Flow, node) -> Flow:
        if not f.raw:
            return f
        if "D" in f.axes:
            if len(f.entries) != 1 and node is not None:     # the graph output keeps [.., D, .., H]: see runtime.py
                self.refuse(node, "it consumes a recurrent output whose directions are still a separate axis "
                                  f"(axes {f.axes}); the canonical model concatenates or merges them")
            f = collapse(f)
        nodes = sorted({n for p in f.pieces for n, _, _ in p.parts})
        if len(nodes) == 1:
            k = nodes[0]
            remap = {(k, d): d for d in range(2)}
        elif len(nodes) == 2:
            k, remap = self._pair(node, *nodes)
        else:
            self.refuse(node, "it mixes the outputs of more than two recurrent nodes")
        info = self.recs[k]
        self.used.update(info.members or (k,))
        D = 2 if info.direction == "bidirectional" else 1
        p = [replace(q, parts=tuple((remap[(n, d)], w) for n, d, w in q.parts)) for q in f.pieces]
        if len(p) == 1 and len(p[0].parts) == D and (D == 1 or p[0].merge != "concat"):
            merge, parts = (p[0].merge if D == 2 else "concat"), p[0].parts
        elif D == 2 and len(p) == 2 and all(len(q.parts) == 1 for q in p) and [q.parts[0][0] for q in p] == [0, 1]:
            merge, parts = "concat", (p[0].parts[0], p[1].parts[0])
        else:
            self.refuse(node, f"it uses the directions of {info.op} node '{info.name}' as "
                              f"{[q.parts for q in p]}; the canonical model takes each direction once, forward "
                              "first (concat) or merged by sum/mul/ave")
        if sorted(d for d, _ in parts) != list(range(D)):
            self.refuse(node, f"it uses a direction of {info.op} node '{info.name}' twice")
        t = self.time_of(f)
        if t is not None:
            if any(w != "seq" for _, w in parts):
                self.refuse(node, "a time axis with mixed time steps")
            output, time_order = "sequence", "input"
            if f.rev:
                if info.direction != "reverse":
                    self.refuse(node, f"it reverses the time axis of the output of {info.op} node "
                                      f"'{info.name}', which runs {info.direction}")
                time_order = "processing"
        else:
            modes = {"last_step", "final_state"}
            for d, when in parts:
                backward = info.direction == "reverse" or (info.direction == "bidirectional" and d == 1)
                if when == "state":
                    ok = {"final_state"} if backward else {"last_step", "final_state"}
                elif when == "last":
                    ok = {"last_step"} if backward else {"last_step", "final_state"}
                elif when == "first":
                    ok = {"final_state"} if backward else set()
                else:
                    ok = set()
                modes &= ok
            if not modes:
                self.refuse(node, f"it takes time steps {[w for _, w in parts]} of {info.op} node '{info.name}' "
                                  "that are neither each direction's final state nor the last step")
            from_y = any(w in ("last", "first") for _, w in parts)
            output = "last_step" if "last_step" in modes and (from_y or "final_state" not in modes) \
                else "final_state"
            time_order = "input"
        key = (merge, output, time_order)
        if key not in info.cache:
            layer = Recurrent(name=info.name, cell=info.cell, hidden=info.hidden, direction=info.direction,
                              weights=info.weights, activations=list(info.activations), output=output,
                              merge=merge, time_order=time_order, reset_after=info.reset_after,
                              clip=None if info.clip is None else float(info.clip),
                              has_input_bias=info.has_bias, has_recurrent_bias=info.has_bias)
            info.cache[key] = info.stack + (layer,)
        stack = info.cache[key]
        return Flow(axes=f.axes, stack=stack, width=stack[-1].units_out, steps=f.steps)

    def _pair(self, node, a: int, b: int) -> tuple[int, dict]:
        """Two one-direction nodes over the same input, one each way: one bidirectional layer."""
        key = ("pair", a, b)
        fa, fb = self.recs[a], self.recs[b]
        if fa.direction == "reverse" and fb.direction == "forward":
            fa, fb, a, b = fb, fa, b, a
        same = ("cell", "hidden", "activations", "clip", "reset_after", "has_bias")
        if fa.direction != "forward" or fb.direction != "reverse" or fa.stack is not fb.stack or \
                any(getattr(fa, k) != getattr(fb, k) for k in same):
            self.refuse(node, f"it combines {fa.op} node '{fa.name}' and {fb.op} node '{fb.name}', which are not "
                              "the two directions of one bidirectional layer (same input, settings, one each way)")
        if key not in self._pairs:
            self.recs.append(RecInfo(name=fa.name, op=fa.op, cell=fa.cell, direction="bidirectional",
                                     hidden=fa.hidden, weights=fa.weights + fb.weights, activations=fa.activations,
                                     clip=fa.clip, reset_after=fa.reset_after, has_bias=fa.has_bias, stack=fa.stack,
                                     members=(a, b)))
            self._pairs[key] = len(self.recs) - 1
        return self._pairs[key], {(a, 0): 0, (b, 0): 1}
