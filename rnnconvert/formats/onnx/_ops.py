"""Glue ops on flows, shape vectors and zero states: what each ONNX op does to a tensor's meaning.

`GlueOps` is mixed into `glue.Walker`; each `flow_<OpType>` takes the node and its input facts and
returns the output facts, or refuses the node by name when the canonical model cannot say what it
computes (`Walker.refuse`).  Here: reductions, elementwise and MatMul/Gemm ops, Shape, and the ops on
shape vectors and zeros; the ops that only rearrange a flow are `_layout_ops.LayoutOps`.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from .lite import numpy_helper

from ...model import Activation, ActivationLayer, Dense
from . import _exprs
from ._flow import Flow, Piece, collapse
from ._graph import BIG, ONE, Bcast, Const, FullLen, SymVec, Zeros, as_sizes, int_list, node_attrs, symvec


class GlueOps:
    def _reduce(self, node, ins, merge):
        f = ins[0]
        axes = self.axes_arg(node, ins)
        keep = int(node_attrs(node).get("keepdims", 1))
        if axes is not None and len(axes) == 1 and merge in ("ave", "max") and self.time is not None and \
                f.axes[self.norm(axes[0], len(f.axes), node)] == self.time:
            return self.reduce_time(node, ins, "average" if merge == "ave" else "max")
        if merge == "max":
            self.refuse(node, "it takes the maximum over an axis that is not time")
        if axes is None or len(axes) != 1 or f.axes[self.norm(axes[0], len(f.axes), node)] != "D":
            self.refuse(node, "it reduces over an axis that is not the directions of a recurrent node")
        ax = self.norm(axes[0], len(f.axes), node)
        merged = self._merge(node, list(f.entries), merge)
        g = replace(f, entries=(merged,))
        if keep:
            return [g]
        g = collapse(g)
        return [replace(g, axes=tuple(a for i, a in enumerate(f.axes) if i != ax))]

    def flow_ReduceSum(self, node, ins):
        return self._reduce(node, ins, "sum")

    def flow_ReduceMean(self, node, ins):
        return self._reduce(node, ins, "ave")

    def flow_ReduceMax(self, node, ins):
        return self._reduce(node, ins, "max")

    def flow_ReduceProd(self, node, ins):
        return self._reduce(node, ins, "mul")

    def _merge(self, node, pieces, merge) -> Piece:
        if len(pieces) != 2 or any(len(p.parts) != 1 for p in pieces) or \
                pieces[0].parts[0][:2] == pieces[1].parts[0][:2]:
            self.refuse(node, "it combines recurrent outputs other than the two directions of one layer")
        return Piece(pieces[0].parts + pieces[1].parts, merge)

    def flow_binary(self, node, ins):
        op = node.op_type
        a, b = ins[0], ins[1]
        if isinstance(a, Flow) and isinstance(b, Flow):
            if a.raw and b.raw:
                if op not in ("Add", "Mul") or a.axes != b.axes or a.rev != b.rev:
                    self.refuse(node, f"{op} of two recurrent outputs")
                ka, kb = (a.entries, b.entries) if "D" in a.axes else (a.pieces, b.pieces)
                if len(ka) != 1 or len(kb) != 1:
                    self.refuse(node, f"{op} of recurrent outputs with several directions each")
                m = self._merge(node, [ka[0], kb[0]], "sum" if op == "Add" else "mul")
                return [replace(a, entries=(m,)) if "D" in a.axes else replace(a, pieces=(m,))]
            a, b = self.finalize(a, node), self.finalize(b, node)
            if a.stack is not b.stack or a.axes != b.axes or a.rev != b.rev:
                self.refuse(node, f"{op} of two different signals")
            return [replace(a, expr=_exprs.op(op, {}, a.expr or _exprs.X, b.expr or _exprs.X),
                            expr_name=node.name or op, tail="")]
        f, c, flow_first = (a, b, True) if isinstance(a, Flow) else (b, a, False)
        if not isinstance(c, Const):
            self.refuse(node, f"{op} with a tensor computed at run time")
        if f.raw:
            p = f.entries if "D" in f.axes else f.pieces
            v = c.value
            if len(p) == 1 and p[0].merge == "sum" and v.size == 1 and \
                    ((op == "Mul" and float(v.reshape(-1)[0]) == 0.5) or (op == "Div" and flow_first and float(v.reshape(-1)[0]) == 2.0)):
                q = replace(p[0], merge="ave")
                return [replace(f, entries=(q,)) if "D" in f.axes else replace(f, pieces=(q,))]
            f = self.finalize(f, node)
        if op == "Add" and f.tail == "conv" and f.expr is None:
            return self.conv_bias(node, f, c.value)
        if op == "Add" and f.tail == "matmul" and f.expr is None and c.value.size > 1:
            units = f.width
            v = c.value
            if v.shape[-1:] != (units,) or v.size != units:
                self.refuse(node, f"it adds a constant of shape {v.shape} after MatMul, not a bias of {units}")
            dense = f.stack[-1]
            layer = Dense(dense.name, dense.kernel, np.array(v.reshape(units)), dense.activation)
            return [replace(f, stack=f.stack[:-1] + (layer,), tail="")]
        if c.value.size != 1:
            self.refuse(node, f"{op} with a constant of shape {c.value.shape}; rnnconvert maps only biases and "
                              "scalar constants of activations")
        if op == "Add" and f.tail == "matmul" and f.expr is None:   # a scalar bias
            dense = f.stack[-1]
            layer = Dense(dense.name, dense.kernel, np.full(f.width, c.value.reshape(-1)[0], dense.kernel.dtype),
                          dense.activation)
            return [replace(f, stack=f.stack[:-1] + (layer,), tail="")]
        cst = ("c", float(c.value.reshape(-1)[0]))
        f = self.bound_expr(f, node)
        e = f.expr or _exprs.X
        args = (e, cst) if flow_first else (cst, e)
        return [replace(f, expr=_exprs.op(op, {}, *args), expr_name=node.name or op, tail="")]

    def flow_unary(self, node, ins):
        f = self.bound_expr(self.finalize(ins[0], node), node)
        attrs = {k: v for k, v in node_attrs(node).items() if isinstance(v, (int, float))}
        return [replace(f, expr=_exprs.op(node.op_type, attrs, f.expr or _exprs.X),
                        expr_name=node.name or node.op_type, tail="")]

    def flow_Clip(self, node, ins):
        f = self.finalize(ins[0], node)
        a = node_attrs(node)
        bounds = []
        for k, key in ((1, "min"), (2, "max")):
            if len(ins) > k and ins[k] is not None:
                if not isinstance(ins[k], Const):
                    self.refuse(node, f"its {key} is not constant")
                bounds.append(("c", float(ins[k].value.reshape(-1)[0])))
            elif key in a:
                bounds.append(("c", float(a[key])))
            else:
                bounds.append(None)
        return [replace(f, expr=_exprs.op("Clip", {}, f.expr or _exprs.X, *bounds),
                        expr_name=node.name or "Clip", tail="")]

    def _softmax(self, node, ins, name):
        f = self.settle(ins[0], node)
        axis = int(node_attrs(node).get("axis", -1 if self.opset >= 13 else 1))
        if self.norm(axis, len(f.axes), node) != len(f.axes) - 1 or f.axes[-1] != "F":
            self.refuse(node, f"{node.op_type} over axis {axis}, not the feature axis")
        return [replace(f, stack=f.stack + (ActivationLayer(node.name or name, Activation(name)),))]

    def flow_Softmax(self, node, ins):
        return self._softmax(node, ins, "softmax")

    def flow_LogSoftmax(self, node, ins):
        return self._softmax(node, ins, "log_softmax")

    def flow_MatMul(self, node, ins):
        f, k = ins
        if not isinstance(f, Flow) or not isinstance(k, Const) or k.value.ndim != 2:
            self.refuse(node, "MatMul of the signal with something other than a constant 2-D kernel")
        f = self.settle(f, node)
        if f.axes[-1] != "F" or (f.width > 0 and k.value.shape[0] != f.width):
            self.refuse(node, f"kernel {k.value.shape} does not act on the feature axis (width {f.width})")
        layer = Dense(_dense_name(node), np.asarray(k.value))
        return [replace(f, stack=f.stack + (layer,), width=int(k.value.shape[1]), tail="matmul")]

    def flow_Gemm(self, node, ins):
        f, k = ins[0], ins[1]
        c = ins[2] if len(ins) > 2 else None
        a = node_attrs(node)
        if not isinstance(f, Flow) or not isinstance(k, Const) or (c is not None and not isinstance(c, Const)):
            self.refuse(node, "Gemm of the signal with something other than constant weights")
        if int(a.get("transA", 0)):
            self.refuse(node, "transA=1")
        f = self.settle(f, node)
        if len(f.axes) != 2 or f.axes[-1] != "F":
            self.refuse(node, f"Gemm on a signal with axes {f.axes}")
        kernel = k.value.T if int(a.get("transB", 0)) else k.value
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        if alpha != 1.0:
            kernel = kernel * np.float32(alpha)
        units = kernel.shape[1]
        bias = None
        if c is not None:
            v = c.value * np.float32(beta) if beta != 1.0 else c.value
            if v.size not in (1, units):
                self.refuse(node, f"its C of shape {v.shape} is not a bias of {units} units")
            bias = np.broadcast_to(v.reshape(-1), (units,)).copy()
        layer = Dense(_dense_name(node), np.ascontiguousarray(kernel), bias)
        return [replace(f, stack=f.stack + (layer,), width=int(units), tail="")]

    def flow_Shape(self, node, ins):
        f = ins[0]
        sizes = [self.size(f, a) for a in f.axes]
        a = node_attrs(node)
        start, end = a.get("start", 0), a.get("end", len(sizes))
        return [symvec(sizes[slice(start, end)])]

    # ---------------------------------------------------------------- shape vectors and zeros
    def sym_op(self, node, ins):
        op = node.op_type
        vecs = [as_sizes(f) if f is not None else None for f in ins]
        x = ins[0]
        if op in ("Cast", "Identity"):
            return [x]
        if op == "Shape" and isinstance(x, SymVec):
            return [Const(np.array([] if x.scalar else [len(x.items)], dtype=np.int64))]
        if op == "Equal" and all(v is not None for v in vecs):
            a, b = vecs
            if len(b) == 1:
                b = b * len(a)
            out = []
            for p, q in zip(a, b):
                if p.is_int and q.is_int:
                    out.append(p.coef == q.coef)
                elif (q.is_int and q.coef <= 0) or (p.is_int and p.coef <= 0):
                    out.append(False)          # a runtime size is never 0 or negative here
                else:
                    self.refuse(node, "compares two runtime sizes")
            return [Const(np.array(out, dtype=bool))]
        if op == "Where" and isinstance(ins[0], Const) and all(v is not None for v in vecs[1:]):
            cond = np.atleast_1d(ins[0].value)
            a, b = vecs[1], vecs[2]
            n = max(len(cond), len(a), len(b))
            a, b = (a * n if len(a) == 1 else a), (b * n if len(b) == 1 else b)
            cond = np.broadcast_to(cond, (n,))
            return [symvec([p if c else q for c, p, q in zip(cond, a, b)])]
        if op == "Gather" and isinstance(ins[1], Const) and int(node_attrs(node).get("axis", 0)) == 0:
            idx = ins[1].value
            items = [vecs[0][int(i)] for i in np.atleast_1d(idx)]
            return [symvec(items, scalar=idx.ndim == 0)]
        if op == "Slice" and isinstance(x, SymVec):
            a = node_attrs(node)
            if self.opset < 10:
                s, e, st = a["starts"][0], a["ends"][0], 1
            else:
                s, e = int_list(ins[1])[0], int_list(ins[2])[0]
                st = int_list(ins[4])[0] if len(ins) > 4 and ins[4] is not None else 1
            return [symvec(vecs[0][slice(s, min(e, BIG), st)])]
        if op == "Concat" and all(v is not None for v in vecs):
            return [symvec(sum(vecs, []))]
        if op in ("Unsqueeze", "Squeeze", "Reshape") and isinstance(x, SymVec):
            scalar = op == "Squeeze"
            return [SymVec(x.items, scalar)]
        if op in ("Mul", "Div") and all(v is not None for v in vecs):
            a, b = vecs
            if len(a) == 1 and len(b) > 1:
                a = a * len(b)
            if len(b) == 1 and len(a) > 1:
                b = b * len(a)
            out = [p * q if op == "Mul" else p.div(q) for p, q in zip(a, b)]
            if all(o is not None for o in out):
                return [symvec(out, scalar=isinstance(x, SymVec) and x.scalar)]
        if op == "ReduceProd" and vecs[0] is not None and len(ins) < 2:   # tf2onnx's Tensordot: batch*time
            a = node_attrs(node)
            if a.get("axes", [0]) not in ([0], [-1]) or a.get("noop_with_empty_axes", 0):
                self.refuse(node, f"ReduceProd of a shape vector over axes {a.get('axes')}")
            size = ONE
            for item in vecs[0]:
                size = size * item
            return [symvec([size], scalar=not int(a.get("keepdims", 1)))]
        if op == "ConstantOfShape":
            v = node_attrs(node).get("value")
            val = numpy_helper.to_array(v) if v is not None else np.zeros(1, np.float32)
            return [Zeros() if not np.any(val) else Bcast(val.reshape(()), len(vecs[0]))]
        if op in ("Expand", "Tile") and isinstance(x, SymVec) and len(x.items) == 1:
            return [FullLen(x.items[0])]     # one size repeated: sequence_lens of whole sequences
        if op == "Expand" and isinstance(ins[0], Const):
            base = ins[0].value
            if not np.any(base) and base.size == 1:
                return [Zeros()]
            return [Bcast(base, len(vecs[1]))]
        self.refuse(node, "a shape computation rnnconvert does not follow")

    def zero_op(self, node, ins):
        op = node.op_type
        x = ins[0]
        if isinstance(x, Zeros) and op in ("Unsqueeze", "Squeeze", "Reshape", "Transpose", "Slice", "Gather",
                                           "Identity", "Cast", "Expand", "Tile"):
            return [Zeros()]
        if op == "Concat" and all(isinstance(f, Zeros) or (isinstance(f, Const) and not np.any(f.value))
                                  for f in ins):
            return [Zeros()]
        if isinstance(x, (Bcast, FullLen)) and op in ("Identity", "Cast"):
            return [x]
        if op == "Expand" and isinstance(x, Zeros):
            return [Zeros()]
        self.refuse(node, "an op on an initial-state tensor that rnnconvert does not follow")


def _dense_name(node) -> str:
    name = node.name or node.output[0]
    parts = [p for p in name.replace(":", "/").split("/") if p and p not in ("MatMul", "Gemm", "BiasAdd", "Tensordot")]
    return parts[-1] if parts else name
