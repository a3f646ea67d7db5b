"""Constant folding with bounds: which nodes the ONNX reader may evaluate on constant inputs, and at what cost.

A file from a stranger can make a tiny graph compute without end (a Loop of 2**62 trips inside a
SequenceMap feeding a weight) or allocate without bound (ConstantOfShape, Expand, Tile, Range to
terabytes).  `Folder.fold` evaluates one node with onnx's reference evaluator only when:
- it has no subgraph and is not a control-flow, sequence or optional op (`not_foldable`);
- every output's size is bounded before anything runs: by the inputs' sizes for ops that never grow
  (KEEPERS: Cast, Reshape, Transpose, ...), otherwise by onnx's shape inference given the node's actual
  input shapes and the values of its small inputs (an op that may grow, GROWERS, with no inferred
  shape is refused);
- that size fits the budget, which scales with the weights the file holds: one output at most ONE_FACTOR
  times them (+ ONE_SLACK), all folded outputs together TOTAL_FACTOR times (+ TOTAL_SLACK), one
  contraction FLOPS_FACTOR multiply-adds per byte, all folding FOLD_SECONDS (+ 1 s per SECONDS_PER), and
  at most FOLD_NODES evaluated nodes (+ 1 per NODE_BYTES of weights): each costs the reference evaluator
  about 0.2 ms, so 50,000 uses of one weight are refused in seconds, not by the time budget.
Identity is not evaluated: its output is its input (no copy, no cost), so a weight passed through many
Identity nodes costs nothing.
A node past a bound is refused by name (`FoldRefused`, exit 2); callers drop folded values no node needs.
"""
from __future__ import annotations

import time

import numpy as np
from . import lite as onnx
from .lite import helper, numpy_helper

from ...errors import UnsupportedError
from ._graph import describe

ONE_FACTOR, ONE_SLACK = 2, 16 << 20
TOTAL_FACTOR, TOTAL_SLACK = 8, 64 << 20
FOLD_SECONDS, SECONDS_PER = 30.0, 10 << 20
FOLD_NODES, NODE_BYTES = 10_000, 4096
FLOPS_FACTOR = 256          # multiply-adds of one MatMul/Gemm/Conv/Einsum per byte of weights
SMALL = 4096                # inputs of at most this many elements go to shape inference with their values
CONTROL = {"If", "Loop", "Scan", "SequenceMap"}
SEQUENCE = {"SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
            "SequenceLength", "SplitToSequence", "ConcatFromSequence", "Optional", "OptionalGetElement",
            "OptionalHasElement"}
# ops whose output may be far larger than their inputs: folded only when shape inference sizes them
GROWERS = {"Expand", "Tile", "ConstantOfShape", "Range", "Resize", "Upsample", "Pad", "OneHot", "MatMul",
           "MatMulInteger", "Gemm", "Einsum", "Conv", "ConvTranspose", "ConvInteger", "Gather", "GatherND",
           "GatherElements", "EyeLike", "RandomNormal", "RandomUniform", "Col2Im", "CenterCropPad", "DFT", "STFT",
           "MelWeightMatrix", "BlackmanWindow", "HannWindow", "HammingWindow", "Constant", "Compress", "Unique",
           "NonZero", "TfIdfVectorizer", "Bernoulli", "Multinomial"}
# ops whose output holds at most as many elements as their inputs (sized without shape inference)
KEEPERS = {"Identity", "Cast", "CastLike", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Slice",
           "Split", "Shape", "Size", "Neg", "Abs", "Sqrt", "Exp", "Log", "Tanh", "Sigmoid", "Relu", "Reciprocal",
           "Floor", "Ceil", "Round", "Sign", "Not", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
           "ReduceProd", "ArgMax", "ArgMin"}
# elementwise ops with numpy broadcasting: sized by the broadcast of their inputs' shapes (shape inference
# of a Max over 50,000 inputs takes a second and 400 MB)
BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal", "Less",
             "Greater", "LessOrEqual", "GreaterOrEqual", "Mod", "BitShift", "Where", "PRelu"}
STORE = "store the weights as initializers"


class FoldRefused(UnsupportedError):
    """A node whose folding the budget does not allow."""


def not_foldable(node: onnx.NodeProto) -> str | None:
    """Why `node` is never evaluated at read time (None: it may be, within the budget)."""
    if node.domain not in ("", "ai.onnx"):
        return f"an op of domain '{node.domain}'"
    if node.op_type in CONTROL or any(a.HasField("g") or len(a.graphs) for a in node.attribute):
        return f"control flow (a node with a subgraph) is never evaluated while reading; {STORE}"
    if node.op_type in SEQUENCE:
        return f"sequence and optional values are never evaluated while reading; {STORE}"
    return None


def weight_bytes(values) -> int:
    return sum(int(getattr(v, "nbytes", 0)) for v in values)


def declared_bytes(t: onnx.TensorProto) -> int:
    """The bytes a tensor's dims and type declare (validate.py has checked them against the file)."""
    return int(np.prod(list(t.dims), dtype=object)) * _itemsize(t.data_type)


class Folder:
    """Folds nodes for one file: `weights` is what the file holds (bytes), `path` names it in refusals."""

    def __init__(self, weights: int, path: str | None, opset: int):
        self.path, self.opset = path, opset
        self.one = ONE_FACTOR * weights + ONE_SLACK
        self.total = TOTAL_FACTOR * weights + TOTAL_SLACK
        self.seconds = FOLD_SECONDS + weights / SECONDS_PER
        self.flops = FLOPS_FACTOR * (weights + ONE_SLACK)
        self.nodes = FOLD_NODES + weights // NODE_BYTES
        self.evaluated = 0          # nodes evaluated so far
        self.made = 0               # bytes of every folded output so far
        self.spent = 0.0            # seconds spent folding

    def refuse(self, node, why: str):
        raise FoldRefused(f"{describe(node)}: {why}", path=self.path)

    def fold(self, node: onnx.NodeProto, arrays: list) -> list[np.ndarray]:
        """The node's outputs on constant inputs (None for unnamed outputs); refuses what is not foldable
        or past the budget."""
        why = not_foldable(node)
        if why:
            self.refuse(node, why)
        if self.spent > self.seconds:
            self.refuse(node, f"constant folding took more than {self.seconds:.0f} s in all; the graph computes "
                              "too much from its constants to be read")
        if node.op_type == "Identity" and len(arrays) == 1 and arrays[0] is not None:
            return [arrays[0]] + [None] * (len(node.output) - 1)
        if self.evaluated >= self.nodes:
            self.refuse(node, f"the graph has more than {self.nodes} nodes to evaluate on constant inputs, far "
                              f"more than its weights explain; {STORE}")
        self.evaluated += 1
        t0 = time.perf_counter()
        try:
            return self._fold(node, arrays)
        finally:
            self.spent += time.perf_counter() - t0

    def _fold(self, node, arrays):
        sizes = out_bytes(node, arrays, self.opset)
        if sizes is None:
            self.refuse(node, "the size of its output on its constant inputs cannot be bounded before it runs")
        big = max(sizes, default=0)
        if big > self.one:
            self.refuse(node, f"its output on constant inputs would take {big} bytes, more than the file's "
                              f"weights allow ({self.one} bytes); rnnconvert does not compute it")
        if work(node, arrays) > self.flops:
            self.refuse(node, f"computing it on constant inputs takes {work(node, arrays)} multiply-adds, more "
                              f"than the file's weights allow ({self.flops}); rnnconvert does not compute it")
        if self.made + sum(sizes) > self.total:
            self.refuse(node, f"constants computed from the file's would take more than {self.total} bytes in "
                              "all, far more than its weights; rnnconvert does not compute them")
        out = evaluate(node, arrays, self.opset)
        self.made += sum(a.nbytes for a in out if a is not None)
        return out


def out_bytes(node: onnx.NodeProto, arrays: list, opset: int) -> list[int] | None:
    """Bytes of each named output by onnx's shape inference on the actual input shapes; None when they
    cannot be bounded."""
    names = list(node.input)
    feeds = [(n, a) for n, a in zip(names, arrays) if n and a is not None]
    outs = [o for o in node.output if o]
    if node.op_type in KEEPERS:       # at most the inputs' elements, in the output's type (Split: in parts)
        itemsize = max((a.itemsize for _, a in feeds), default=8)
        if node.op_type == "Cast":
            itemsize = _itemsize(next((a.i for a in node.attribute if a.name == "to"), 0))
        elif node.op_type == "CastLike" and len(feeds) > 1:
            itemsize = feeds[1][1].itemsize
        total = itemsize * sum(int(a.size) for _, a in feeds)
        return [-(-total // max(1, len(outs)))] * len(outs)
    if node.op_type in BROADCAST and feeds and len(outs) == 1:
        try:
            shape = np.broadcast_shapes(*(a.shape for _, a in feeds))
            return [int(np.prod(shape, dtype=object)) * max(a.itemsize for _, a in feeds)]
        except ValueError:       # shapes that do not broadcast: the evaluator says so below
            pass
    vi, inits = [], []
    for n, a in feeds:
        try:
            elem = helper.np_dtype_to_tensor_dtype(a.dtype)
        except Exception:       # noqa: BLE001 - a dtype onnx has no name for: not sized
            return None
        vi.append(helper.make_tensor_value_info(n, elem, list(a.shape)))
        if a.size <= SMALL:
            inits.append(numpy_helper.from_array(np.asarray(a), n))
    graph = helper.make_graph([node], "size", vi, [helper.make_value_info(o, onnx.TypeProto()) for o in outs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        # data propagation walks 1-D tensors element by element: only with small inputs (shape vectors)
        small = all(a.size <= SMALL for _, a in feeds)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=small)
    except Exception:       # noqa: BLE001 - inference refusing the node: the fallback below decides
        inferred = None
    known = {o.name: o.type for o in inferred.graph.output} if inferred is not None else {}
    sizes = []
    for o in outs:
        t = known.get(o)
        n = _count(t) if t is not None else None
        if n is None:
            if node.op_type in GROWERS:
                return None
            n = sum(int(a.size) for _, a in feeds)          # shape-preserving or shrinking ops
            itemsize = max((a.itemsize for _, a in feeds), default=8)
        else:
            itemsize = _itemsize(t.tensor_type.elem_type)
        sizes.append(n * itemsize)
    return sizes


def _count(t: onnx.TypeProto) -> int | None:
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    n = 1
    for d in t.tensor_type.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return None
        n *= d.dim_value
    return n


def _itemsize(elem: int) -> int:
    try:
        return max(1, np.dtype(helper.tensor_dtype_to_np_dtype(elem)).itemsize)
    except Exception:       # noqa: BLE001 - undefined element type
        return 8


def work(node, arrays) -> int:
    """Multiply-adds of a contraction on these inputs (an upper bound), 0 for other ops."""
    a = [x for x in arrays[:2] if x is not None]
    if node.op_type in ("MatMul", "MatMulInteger", "Gemm") and len(a) == 2 and a[0].ndim and a[1].ndim:
        return int(np.prod(a[0].shape, dtype=object)) * int(a[1].shape[-1] if a[1].ndim > 1 else 1)
    if node.op_type in ("Conv", "ConvTranspose", "ConvInteger", "Einsum") and a:
        return int(np.prod(a[0].shape, dtype=object)) * max(1, int(np.prod(a[-1].shape, dtype=object)))
    return 0


def evaluate(node: onnx.NodeProto, arrays: list, opset: int) -> list[np.ndarray]:
    """Evaluate one node on constant inputs with onnx's reference evaluator (no bounds: `Folder.fold`)."""
    if node.op_type in ("Max", "Min") and len(arrays) > 2 and len(node.output) == 1 and all(
            a is not None for a in arrays) and len({a.dtype for a in arrays}) == 1:
        # what onnx's Max/Min compute (a pairwise reduction), without building a graph of 50,000 inputs
        out = arrays[0]
        for a in arrays[1:]:
            out = (np.maximum if node.op_type == "Max" else np.minimum)(out, a)
        return [np.asarray(out)]
    from onnx.reference import ReferenceEvaluator
    names = list(node.input)
    feeds = {n: a for n, a in zip(names, arrays) if n}
    vi = [helper.make_value_info(n, onnx.TypeProto()) for n in feeds]
    vo = [helper.make_value_info(n, onnx.TypeProto()) for n in node.output if n]
    graph = helper.make_graph([node], "fold", vi, vo)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    outs = ReferenceEvaluator(model).run(None, feeds)
    result, k = [], 0
    for n in node.output:
        if n:
            result.append(np.asarray(outs[k]))
            k += 1
        else:
            result.append(None)
    return result
