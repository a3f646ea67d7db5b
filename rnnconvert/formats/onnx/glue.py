"""Walk an ONNX graph from its input to its output and say, tensor by tensor, what each one means.

Facts about tensors (`_graph`), their meaning as flows (`_flow`) and the glue ops on them (`_ops`)
come together here: the walker visits the nodes the output depends on, in order, turns each
recurrent node into weights and outputs, and turns recurrent outputs into canonical layers where
something that is not glue consumes them.  Every op it does not recognise on the way is refused
by name.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import os

import numpy as np
import onnx

from ...model import gates
from ...errors import InputError, UnsupportedError
from ...model import ActivationLayer, DirectionWeights, Recurrent
from . import _acts, _exprs
from ._flow import Flow, Piece, collapse
from ._fold import Folder, FoldRefused, weight_bytes
from ._graph import ONE, Bcast, Const, Size, SymVec, Unusable, Zeros, describe, int_list, node_attrs, use_counts
from ._front_ops import FrontOps
from ._ops import GlueOps

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


class Walker(GlueOps, FrontOps):
    def __init__(self, proto: onnx.ModelProto, path: str, output: str | None, values: dict, own: set = frozenset()):
        """`values`: {initializer name: array}; `own`: names among them whose arrays were read for this walk
        alone, so W and R may be turned canonical inside them."""
        self.proto, self.g, self.path = proto, proto.graph, path
        self.values, self.own = values, set(own)
        self.canonical: dict[str, np.ndarray] = {}     # name -> array permuted in place
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 9)
        self.facts: dict[str, object] = {}
        self.recs: list[RecInfo] = []
        self.time: str | None = None
        self.static: dict[str, int | None] = {}
        self.output = output
        self._settled: dict[int, tuple] = {}
        self._pairs: dict[tuple, int] = {}
        self.used: set[int] = set()          # recurrent nodes that became layers
        self.dropped_axis: tuple | None = None  # (axis, rank) of a graph output's direction axis of 1
        try:
            size = os.path.getsize(path)
        except (OSError, TypeError):
            size = 0
        self.folder = Folder(max(size, weight_bytes(values.values())), path, self.opset)

    # ---------------------------------------------------------------- entry
    def run(self, input_name: str) -> Flow:
        g = self.g
        for name, value in self.values.items():
            self.facts[name] = Const(value)
        if self.own:
            uses = use_counts(g)
            self.own = {name for name in self.own if uses.get(name, 0) == 1}
        vi = next(i for i in g.input if i.name == input_name)
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in vi.type.tensor_type.shape.dim]
        if len(dims) == 2 and vi.type.tensor_type.elem_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            self.static = {"A0": dims[0], "A1": dims[1]}     # token ids [batch, time]: an Embedding follows
            self.facts[input_name] = Flow(axes=("A0", "A1"), tail="ids")
            dims = None
        elif len(dims) != 3:
            raise UnsupportedError(f"the graph input '{input_name}' has {len(dims)} axes; rnnconvert reads "
                                   "models over one [batch, time, features] (or time-major) input", path=self.path)
        if dims is not None:
            self.static = {"A0": dims[0], "A1": dims[1]}
            self.facts[input_name] = Flow(axes=("A0", "A1", "F"), width=dims[2] or -1)
        needed = self._needed(self.output)
        uses: dict[str, int] = {}
        for k in needed:
            for name in g.node[k].input:
                uses[name] = uses.get(name, 0) + 1
        for k, node in enumerate(g.node):
            if k in needed:
                self.visit(node)
                for name in node.input:          # a folded constant no node still needs is dropped
                    uses[name] -= 1
                    if not uses[name] and name != self.output and name not in self.values \
                            and isinstance(self.facts.get(name), Const):
                        del self.facts[name]
        fact = self.facts.get(self.output)
        if isinstance(fact, Unusable):
            raise UnsupportedError(f"the graph output '{self.output}' {fact.why}", path=self.path)
        if not isinstance(fact, Flow):
            raise UnsupportedError(f"the graph output '{self.output}' is not computed from the input "
                                   f"'{input_name}'", path=self.path)
        if "D" in fact.axes:      # a recurrent node's Y or Y_h itself: the canonical output has no direction axis
            self.dropped_axis = (fact.axes.index("D"), len(fact.axes))
        return self.settle(fact, None)

    def _needed(self, out: str) -> set:
        """Indices of the nodes the output depends on."""
        producer = {o: k for k, n in enumerate(self.g.node) for o in n.output if o}
        seen, todo, names = set(), [out], set()
        while todo:
            name = todo.pop()
            if name in names:
                continue
            names.add(name)
            k = producer.get(name)
            if k is None or k in seen:
                continue
            seen.add(k)
            todo.extend(i for i in self.g.node[k].input if i)
        return seen

    def refuse(self, node, why: str):
        where = describe(node) if node is not None else "the graph output"
        raise UnsupportedError(f"{where}: {why}", path=self.path)

    def fact(self, name: str):
        if name not in self.facts:
            raise UnsupportedError(f"tensor '{name}' is used before any node computes it "
                                   "(not a topologically sorted graph, or an outer-scope name)", path=self.path)
        return self.facts[name]

    # ---------------------------------------------------------------- dispatch
    def visit(self, node: onnx.NodeProto):
        try:
            self._visit(node)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
            self.refuse(node, f"cannot make sense of it ({type(exc).__name__}: {exc}); does the file pass "
                              "onnx.checker.check_model?")

    def _visit(self, node: onnx.NodeProto):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            self.refuse(node, f"an op of domain '{node.domain}', which rnnconvert does not read")
        if op in ("If", "Loop", "Scan"):
            self.refuse(node, f"control flow ({op}) on the way from the input to the output; rnnconvert "
                              "reads graphs whose recurrence is native LSTM/GRU/RNN nodes")
        ins = [self.fact(n) if n else None for n in node.input]
        for f in ins:
            if isinstance(f, Unusable):
                self.refuse(node, f.why)
        if op in RECURRENT:
            outs = self.recurrent(node, ins)
        elif op == "Identity" and len(ins) == 1 and isinstance(ins[0], Const):
            outs = ins            # the same constant (folding would return it too): nothing to evaluate
        elif all(f is None or isinstance(f, Const) for f in ins):
            try:
                outs = [None if a is None else Const(a)
                        for a in self.folder.fold(node, [None if f is None else f.value for f in ins])]
            except FoldRefused:
                raise
            except Exception as exc:  # the reference evaluator's errors are not ours to type
                text = " ".join(str(exc).split())         # its messages span lines: one line, bounded
                self.refuse(node, f"cannot evaluate it on constant inputs ({type(exc).__name__}: "
                                  f"{text[:300] + ' ...' if len(text) > 300 else text})")
        elif any(isinstance(f, Flow) for f in ins):
            handler = getattr(self, f"flow_{op}", None)
            if handler is None:
                if op in _exprs.UNARY:
                    handler = self.flow_unary
                elif op in ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"):
                    handler = self.flow_binary
                else:
                    self.refuse(node, "an op rnnconvert does not map onto a canonical layer "
                                      "(it reads recurrent nodes, Dense heads and activations, and their glue)")
            outs = handler(node, ins)
        elif any(isinstance(f, SymVec) for f in ins):
            outs = self.sym_op(node, ins)
        else:
            outs = self.zero_op(node, ins)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        for name, f in zip(node.output, outs):
            if name:
                self.facts[name] = f if f is not None else Unusable(
                    f"uses output '{name}' of {describe(node)}, which rnnconvert cannot follow")
        for name in list(node.output)[len(outs):]:
            if name:
                self.facts[name] = Unusable(f"uses output '{name}' of {describe(node)}, which has no place "
                                            "in the canonical model")

    # ---------------------------------------------------------------- helpers
    def size(self, f: Flow, ax: str) -> Size:
        if ax in ("A0", "A1"):
            v = self.static.get(ax)
            return Size(v) if v else Size(1, (ax,))
        if ax == "D":
            return Size(len(f.entries))
        if ax == "F":
            return Size(f.width)
        return ONE

    def axes_arg(self, node, ins, index=1, name="axes") -> list[int] | None:
        a = node_attrs(node)
        if name in a:
            return list(a[name])
        if len(ins) > index and ins[index] is not None:
            v = int_list(ins[index])
            if v is None:
                self.refuse(node, f"its {name} are not constant")
            return v
        return None

    def norm(self, axis: int, rank: int, node) -> int:
        if not -rank <= axis < rank:
            raise InputError(f"{describe(node)}: axis {axis} out of range for rank {rank}", path=self.path)
        return axis % rank

    def time_of(self, f: Flow) -> int | None:
        return f.axes.index(self.time) if self.time in f.axes else None

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
        if len(ins) > 4 and ins[4] is not None:
            self.refuse(node, "it takes sequence_lens (variable-length batches); the canonical model runs "
                              "every sequence to the full length")
        if cell == "lstm":
            if int(a.get("input_forget", 0)):
                self.refuse(node, "input_forget=1 (coupled input and forget gates) has no canonical form")
            P = self._weight(node, ins, 7, "P")
            if P is not None and np.any(P):
                self.refuse(node, "it has non-zero peephole weights P, which the canonical LSTM does not have")
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
                h0=h0[d], c0=c0[d]))
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
        y = Flow(axes=y_axes, entries=seq, width=H, rev=x.rev)
        yh = Flow(axes=h_axes, entries=st, width=H)
        yc = Unusable(f"uses the cell state Y_c of {describe(node)}; the canonical model returns hidden "
                      "states only")
        return [y, yh, yc][:len(node.output)]

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
            if len(f.entries) != 1:
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
        return Flow(axes=f.axes, stack=stack, width=stack[-1].units_out)

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

    def bound_expr(self, f: Flow, node) -> Flow:
        """`f` before an elementwise op extends its expression: a chain of hundreds of activations would
        make an expression the recursive evaluator cannot walk, so one MAX_DEPTH deep is settled into
        activation layers first (or refused, when it computes none rnnconvert knows)."""
        if f.expr is None:
            return f
        d = _exprs.depth(f.expr)
        if d < _exprs.MAX_DEPTH or d < _exprs.MAX_UNKNOWN_DEPTH and _exprs.identify_chain(f.expr) is None:
            return f
        if d >= _exprs.MAX_UNKNOWN_DEPTH:
            self.refuse(node, f"it extends a chain of {d} elementwise ops ending at '{f.expr_name}' that computes no "
                              "activation rnnconvert knows")
        return self.settle(f, node)

    def settle(self, f: Flow, node) -> Flow:
        """A stack flow with no pending expression (raw outputs become a layer, expressions an activation)."""
        if f.pad:
            self.refuse(node, "it takes a time-padded signal that no Conv consumes")
        if f.tail == "ids":
            self.refuse(node, "it takes the token ids themselves; rnnconvert reads token ids that go into an "
                              "embedding table (Gather)")
        f = self.finalize(f, node)
        if f.expr is None:
            return replace(f, tail="")
        key = id(f)
        if key not in self._settled:
            acts = _exprs.identify_chain(f.expr)
            if acts is None:
                self.refuse(node, f"the elementwise ops ending at '{f.expr_name}' do not compute an activation "
                                  "rnnconvert knows")
            acts = [a for a in acts if a.name != "linear"]
            names = [f"{f.expr_name}_{k}" for k in range(len(acts) - 1)] + [f.expr_name]
            stack = f.stack + tuple(ActivationLayer(n, a) for n, a in zip(names, acts))
            self._settled[key] = (f, stack)
        return Flow(axes=f.axes, stack=self._settled[key][1], width=f.width, rev=f.rev)

