"""The TFLite graph of one subgraph as values with shapes: `Emitter` holds the subgraph, makes tensors
whose dynamic dimensions (batch, time) are 1 in `shape` and -1 in `shape_signature`, and emits the small
ops the layers are built from (activations, slicing, reversing, merging).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import UnsupportedError
from . import schema as s
from .graph import Subgraph

FUSED = {"linear": s.ACT_NONE, "relu": s.ACT_RELU, "relu6": s.ACT_RELU6, "tanh": s.ACT_TANH}
# What FULLY_CONNECTED and CONV_2D take fused: LiteRT's fully_connected.cc refuses a fused tanh (on a
# sequence, keep_num_dims) and its float conv ignores one, so a tanh after them is a TANH op of its own.
FUSED_PRODUCT = {k: v for k, v in FUSED.items() if k != "tanh"}
_UNARY = {"sigmoid": "LOGISTIC", "tanh": "TANH", "relu": "RELU", "relu6": "RELU6", "exponential": "EXP",
          "log_softmax": "LOG_SOFTMAX"}


@dataclass
class Value:
    index: int
    dims: list          # None for a dimension fixed only when run (batch, time)
    dtype: int = s.FLOAT32


class Emitter:
    def __init__(self, graph: Subgraph):
        self.g = graph
        self.counts: dict[str, int] = {}
        self.loops: list[dict] = []         # the WHILE loops written, for the file's metadata (loop.py)
        self.spans: list[dict] = []         # mask constructs written, for the file's metadata (masks.py)
        self.stateful: list[dict] | None = None   # --stateful: the state ports written (loop.py)

    # ------------------------------------------------------------------ tensors
    def new(self, name: str, dims, dtype: int = s.FLOAT32, variable: bool = False) -> Value:
        shape = [1 if d is None else d for d in dims]
        sig = [-1 if d is None else d for d in dims] if None in dims else None
        return Value(self.g.tensor(name, shape, dtype, sig, variable=variable), list(dims), dtype)

    def const(self, name: str, array) -> int:
        return self.g.const(name, array)

    def ints(self, name: str, values) -> int:
        return self.g.const(name, np.asarray(values, np.int32))

    def op(self, opname: str, inputs, out: Value, options=None, **fields) -> Value:
        self.counts[opname] = self.counts.get(opname, 0) + 1
        self.g.op(opname, inputs, [out.index], options, **fields)
        return out

    # ------------------------------------------------------------------ small ops
    def unary(self, opname: str, x: Value, name: str) -> Value:
        return self.op(opname, [x.index], self.new(name, x.dims))

    def binary(self, opname: str, a: Value, b: int, name: str, dims=None) -> Value:
        options = {"ADD": "AddOptions", "MUL": "MulOptions", "SUB": "SubOptions"}.get(opname)
        return self.op(opname, [a.index, b], self.new(name, dims or a.dims), options)

    def scalar(self, name: str, v: float) -> int:
        return self.const(name, np.asarray(v, np.float32))

    def activation(self, act, x: Value, name: str, layer: str) -> Value:
        """`act` over the last axis as separate ops (TFLite's builtins, or a few of them composed)."""
        n = act.name
        if n == "linear":
            return x
        if n in _UNARY:
            return self.unary(_UNARY[n], x, f"{name}/{n}")
        if n == "softmax":
            return self.op("SOFTMAX", [x.index], self.new(f"{name}/softmax", x.dims), "SoftmaxOptions", beta=1.0)
        if n == "elu" and act.alpha == 1.0:
            return self.unary("ELU", x, f"{name}/elu")
        if n in ("elu", "selu"):     # relu(x) + alpha*min(ELU(x), 0), times gamma (beta) for selu
            neg = self.binary("MINIMUM", self.unary("ELU", x, f"{name}/elu"), self.scalar(f"{name}/zero", 0.0),
                              f"{name}/negative_part")
            neg = self.binary("MUL", neg, self.scalar(f"{name}/alpha", act.alpha), f"{name}/negative_scaled")
            y = self.binary("ADD", self.unary("RELU", x, f"{name}/positive_part"), neg.index, f"{name}/{n}_unscaled"
                            if n == "selu" else f"{name}/elu")
            return y if n == "elu" else self.binary("MUL", y, self.scalar(f"{name}/gamma", act.beta), f"{name}/selu")
        if n == "leaky_relu":
            return self.op("LEAKY_RELU", [x.index], self.new(f"{name}/leaky_relu", x.dims), "LeakyReluOptions",
                           alpha=float(act.alpha))
        if n == "gelu":
            return self.op("GELU", [x.index], self.new(f"{name}/gelu", x.dims), "GeluOptions", approximate=False)
        if n == "swish":
            sig = self.unary("LOGISTIC", x, f"{name}/sigmoid")
            return self.binary("MUL", x, sig.index, f"{name}/swish")
        if n in ("hard_sigmoid", "affine"):
            y = self.binary("MUL", x, self.scalar(f"{name}/alpha", act.alpha), f"{name}/scaled")
            y = self.binary("ADD", y, self.scalar(f"{name}/beta", act.beta), f"{name}/shifted")
            if n == "affine":
                return y
            y = self.unary("RELU", y, f"{name}/at_least_0")
            return self.binary("MINIMUM", y, self.scalar(f"{name}/one", 1.0), f"{name}/hard_sigmoid")
        if n == "scaled_tanh":
            y = self.binary("MUL", x, self.scalar(f"{name}/beta", act.beta), f"{name}/scaled")
            y = self.unary("TANH", y, f"{name}/tanh")
            return self.binary("MUL", y, self.scalar(f"{name}/alpha", act.alpha), f"{name}/scaled_tanh")
        if n == "softsign":
            a = self.unary("ABS", x, f"{name}/abs")
            a = self.binary("ADD", a, self.scalar(f"{name}/one", 1.0), f"{name}/abs_plus_1")
            return self.op("DIV", [x.index, a.index], self.new(f"{name}/softsign", x.dims))
        raise UnsupportedError(f"activation {act} has no TFLite form rnnconvert writes (written: linear, "
                               f"sigmoid, tanh, relu, relu6, softmax, log_softmax, exponential, elu, selu, "
                               "leaky_relu, gelu, swish, hard_sigmoid, affine, scaled_tanh, softsign)", layer=layer)

    def step(self, x: Value, last: bool, name: str) -> Value:
        """x[:, -1] (last) or x[:, 0] of a [batch, time, features] value: [batch, features]."""
        begin = [0, -1, 0] if last else [0, 0, 0]
        end = [0, 0, 0] if last else [0, 1, 0]
        out = self.new(name, [x.dims[0], x.dims[2]])
        return self.op("STRIDED_SLICE", [x.index, self.ints(f"{name}/begin", begin), self.ints(f"{name}/end", end),
                                         self.ints(f"{name}/strides", [1, 1, 1])], out, "StridedSliceOptions",
                       begin_mask=0b101, end_mask=0b111 if last else 0b101, shrink_axis_mask=0b010)

    def reverse_time(self, x: Value, name: str) -> Value:
        return self.op("REVERSE_V2", [x.index, self.ints(f"{name}/axis", [1])], self.new(name, x.dims, x.dtype))

    def concat(self, values: list[Value], name: str) -> Value:
        dims = list(values[0].dims[:-1]) + [sum(v.dims[-1] for v in values)]
        return self.op("CONCATENATION", [v.index for v in values], self.new(name, dims), "ConcatenationOptions",
                       axis=len(dims) - 1)

    def transpose_time_batch(self, x: Value, name: str) -> Value:
        dims = [x.dims[1], x.dims[0]] + x.dims[2:]
        return self.op("TRANSPOSE", [x.index, self.ints(f"{name}/perm", [1, 0, 2])], self.new(name, dims))

    def rows_dims(self, x: Value, size: int, name: str) -> Value:
        """[batch of x, size] as an int32 tensor computed when run (SHAPE, STRIDED_SLICE, CONCATENATION)."""
        shape = self.op("SHAPE", [x.index], self.new(f"{name}/shape_of_input", [len(x.dims)], s.INT32),
                        "ShapeOptions", out_type=s.INT32)
        batch = self.op("STRIDED_SLICE", [shape.index, self.ints(f"{name}/b0", [0]), self.ints(f"{name}/e1", [1]),
                                          self.ints(f"{name}/s1", [1])], self.new(f"{name}/batch", [1], s.INT32),
                        "StridedSliceOptions")
        return self.op("CONCATENATION", [batch.index, self.ints(f"{name}/size", [size])],
                       self.new(f"{name}/dims", [2], s.INT32), "ConcatenationOptions", axis=0)

    def rows_of(self, x: Value, size: int, name: str, out: Value, init=None) -> Value:
        """Write `out` [batch of x, size] when run: zeros (FILL), or `init` ([size] or [batch, size]) broadcast
        (BROADCAST_TO).  Both take a shape computed when run, so LiteRT makes `out` a dynamic tensor sized on
        every invoke: a state variable written by an op of static shape crashes LiteRT 2.x when it runs."""
        dims = self.rows_dims(x, size, name)
        if init is None:
            return self.op("FILL", [dims.index, self.scalar(f"{name}/zero", 0.0)], out)
        return self.op("BROADCAST_TO", [self.const(f"{name}/initial", np.asarray(init, np.float32)), dims.index], out)
