"""What the ONNX reader knows about one tensor before it knows its meaning (folding constants: `_fold.py`).

Facts: `Const` (a value), `SymVec` (a shape vector whose entries may be the symbolic batch or time
size), `Zeros` (an all-zero tensor of any shape, e.g. ConstantOfShape), `Bcast` (a constant
expanded to a runtime shape) and `Unusable` (an output the canonical model has no place for).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from . import lite as onnx
from .lite import helper

BIG = 2 ** 31 - 1          # Slice ends at or beyond this mean "to the end" (INT32_MAX, INT64_MAX)


def node_attrs(node: onnx.NodeProto) -> dict:
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        out[a.name] = v
    return out


def name_unnamed(graph: onnx.GraphProto) -> None:
    """Give each node with neither a name nor a first output (a recurrent node whose Y is not taken, as
    the ONNX operator tests write them) the name '<op>_<k>' (LSTM_0), k counting that op's nodes in the
    file in order (subgraphs after their owner), so the layer read, messages, `inspect` and `--layer` show
    one stable name; other unnamed nodes are known by their first output, as before."""
    taken = set()
    todo, nodes = [graph], []
    while todo:
        g = todo.pop(0)
        for n in g.node:
            nodes.append(n)
            taken.add(n.name)
            todo.extend([a.g for a in n.attribute if a.HasField("g")] + [s for a in n.attribute for s in a.graphs])
    counts: dict[str, int] = {}
    for n in nodes:
        k = counts.get(n.op_type, 0)
        counts[n.op_type] = k + 1
        if not n.name and not (n.output and n.output[0]):
            name = f"{n.op_type}_{k}"
            while name in taken:
                name += "_"
            n.name = name
            taken.add(name)


def describe(node: onnx.NodeProto) -> str:
    return f"{node.op_type} node '{node.name}'" if node.name else f"{node.op_type} node (output '{node.output[0]}')"


@dataclass(frozen=True)
class Size:
    """A dimension size: an integer times a product of symbols ('A0', 'A1': the input's first axes)."""
    coef: int
    syms: tuple = ()

    def __mul__(self, other: "Size") -> "Size":
        return Size(self.coef * other.coef, tuple(sorted(self.syms + other.syms)))

    def div(self, other: "Size") -> "Size | None":
        if other.coef == 0 or self.coef % other.coef:
            return None
        syms = list(self.syms)
        for s in other.syms:
            if s not in syms:
                return None
            syms.remove(s)
        return Size(self.coef // other.coef, tuple(syms))

    @property
    def is_int(self) -> bool:
        return not self.syms

    def __repr__(self):
        return "*".join([str(self.coef)] * (self.coef != 1 or not self.syms) + list(self.syms))


ONE = Size(1)


@dataclass(frozen=True)
class Const:
    value: np.ndarray


@dataclass(frozen=True)
class SymVec:
    items: tuple            # of Size
    scalar: bool = False


@dataclass(frozen=True)
class Zeros:
    pass


@dataclass(frozen=True)
class Bcast:
    base: np.ndarray
    rank: int


@dataclass(frozen=True)
class FullLen:
    """A [batch] vector holding the full sequence length (ReverseSequence over whole sequences)."""
    size: Size


@dataclass(frozen=True)
class Unusable:
    why: str


def as_sizes(fact) -> list[Size] | None:
    """A 1-D integer Const or a SymVec as a list of Sizes (None if it is neither)."""
    if isinstance(fact, SymVec):
        return list(fact.items)
    if isinstance(fact, Const) and fact.value.dtype.kind in "iu" and fact.value.ndim <= 1:
        return [Size(int(v)) for v in np.atleast_1d(fact.value)]
    return None


def symvec(items, scalar=False):
    """A SymVec, or a Const when every entry is a plain integer."""
    items = tuple(items)
    if all(s.is_int for s in items):
        arr = np.array([s.coef for s in items], dtype=np.int64)
        return Const(arr.reshape(()) if scalar else arr)
    return SymVec(items, scalar)



def int_list(fact) -> list[int] | None:
    if isinstance(fact, Const) and fact.value.dtype.kind in "iu":
        return [int(v) for v in np.atleast_1d(fact.value)]
    return None


def use_counts(g: onnx.GraphProto) -> dict[str, int]:
    """How many node inputs (in the graph and every subgraph) and graph outputs name each tensor."""
    uses: dict[str, int] = {}

    def walk(graph):
        for n in graph.node:
            for name in n.input:
                uses[name] = uses.get(name, 0) + 1
            for a in n.attribute:
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    walk(sub)
        for o in graph.output:
            uses[o.name] = uses.get(o.name, 0) + 1
    walk(g)
    return uses
