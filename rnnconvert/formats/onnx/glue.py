"""Walk an ONNX graph from its input to its output and say, tensor by tensor, what each one means.

Facts about tensors (`_graph`), their meaning as flows (`_flow`) and the glue ops on them (`_ops`,
`_layout_ops`) come together here: the walker visits the nodes the output depends on, in order, turns each
recurrent node into weights and outputs, and turns recurrent outputs into canonical layers where
something that is not glue consumes them.  Every op it does not recognise on the way is refused
by name.
"""
from __future__ import annotations

from dataclasses import replace

import os

import numpy as np
from . import lite as onnx

from ...errors import InputError, UnsupportedError
from ...model import ActivationLayer
from . import _exprs
from ._flow import Flow
from ._fold import Folder, FoldRefused, weight_bytes
from ._graph import ONE, Const, Size, SymVec, Unusable, describe, int_list, node_attrs, use_counts
from ._front_ops import FrontOps
from ._layout_ops import LayoutOps
from ._ops import GlueOps
from ._rnn_nodes import RECURRENT, RecInfo, RecurrentNodes


class Walker(GlueOps, LayoutOps, FrontOps, RecurrentNodes):
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
        if "*" in ax:               # batch and time merged into one axis (`_layout_ops.merge_steps`)
            a, b = ax.split("*")
            return self.size(f, a) * self.size(f, b)
        if ax in ("A0", "A1"):
            v = f.steps if ax == self.time and f.steps is not None else self.static.get(ax)
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

    # ---------------------------------------------------------------- pending expressions -> layers
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
        return Flow(axes=f.axes, stack=self._settled[key][1], width=f.width, rev=f.rev, steps=f.steps)
