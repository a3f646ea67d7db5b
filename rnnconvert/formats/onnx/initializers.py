"""Nodes and initializers of a graph being written, and the file written with each weight tensor
streamed from its numpy buffer.

Large float32 tensors are lazy: a shape and the functions that fill it, called only when the tensor is
written, into one buffer of the final dtype and layout (so gate permutation, direction stacking,
transposition and cast are one copy), and dropped right after.  `save` writes the graph skeleton
serialized by onnx, then frames each lazy tensor in protobuf wire format by hand (`wire.py`), so no
tensor is held twice and the whole model is never serialized in memory.  With a sidecar (ONNX external
data) the tensors go to that file instead, in the same streaming way.
"""
from __future__ import annotations

import numpy as np
from . import lite as onnx
from .lite import TensorProto, helper, numpy_helper

from ...model import gates
from . import wire

EXTERNAL_MIN_TENSOR_BYTES = 128     # smaller tensors (shapes, axes) stay in the graph


class Lazy:
    """A float32 tensor of `shape` made by `fills`, functions given a preallocated array to fill: one per
    slice along the first axis (a direction of a recurrent weight), or with `whole`, one for all of it."""

    def __init__(self, shape: tuple, fills: list, whole: bool = False):
        self.shape, self.fills, self.whole = tuple(int(n) for n in shape), fills, whole
        self.nbytes = 4 * int(np.prod(self.shape, dtype=np.int64))

    def chunks(self):
        """The tensor in file order, one slice at a time (a new buffer each, freed by the caller)."""
        part = self.shape if self.whole else self.shape[1:]
        for fill in self.fills:
            out = np.empty(part, np.float32)
            fill(out)
            yield out
            del out             # before the next slice is allocated

    def array(self) -> np.ndarray:
        out = np.empty(self.shape, np.float32)
        if self.whole:
            self.fills[0](out)
        else:
            for d, fill in enumerate(self.fills):
                fill(out[d])
        return out


def copy_of(array):
    """A fill that copies `array` (any layout or float dtype) into its float32 destination."""
    return lambda out: gates.copy_into(out, array)


class Builder:
    """Collects nodes and float32/int64 initializers under unique names.

    Modes for float32 tensors of at least EXTERNAL_MIN_TENSOR_BYTES: `defer` keeps them lazy until
    `save` streams them into the file; a `sidecar` (an open file and its location) receives each as ONNX
    external data at once; neither builds them in the proto (`to_onnx`).
    """

    def __init__(self, sidecar: tuple | None = None, defer: bool = False):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._used: set[str] = set()
        self._sidecar = sidecar
        self.external_bytes = 0
        self._defer = defer
        self.deferred: dict[str, Lazy] = {}    # name -> tensor, for tensors written after the graph

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name

    def const(self, base: str, array, dtype=np.float32) -> str:
        source = np.asarray(array)
        if dtype == np.float32 and 4 * source.size >= EXTERNAL_MIN_TENSOR_BYTES and (self._sidecar or self._defer):
            return self.tensor(base, source.shape, [copy_of(source)], whole=True)
        name = self.unique(base)
        self.inits.append(numpy_helper.from_array(np.asarray(source, dtype=dtype, order="C"), name))  # 0-d stays
        return name

    def tensor(self, base: str, shape, fills: list, whole: bool = False) -> str:
        """A float32 initializer made by `fills` (see Lazy); returns its name."""
        name = self.unique(base)
        lazy = Lazy(shape, fills, whole)
        if self._sidecar and lazy.nbytes >= EXTERNAL_MIN_TENSOR_BYTES:
            self.inits.append(self._external(name, lazy))
        elif self._defer and lazy.nbytes >= EXTERNAL_MIN_TENSOR_BYTES:
            self.inits.append(TensorProto(name=name, data_type=TensorProto.FLOAT, dims=lazy.shape))
            self.deferred[name] = lazy
        else:
            self.inits.append(numpy_helper.from_array(lazy.array(), name))
        return name

    def _external(self, name: str, lazy: Lazy) -> onnx.TensorProto:
        fh, location = self._sidecar
        fh.write(b"\0" * (-fh.tell() % 4096))      # page-aligned, so that runtimes can map it
        offset = fh.tell()
        for chunk in lazy.chunks():
            fh.write(memoryview(chunk).cast("B"))
        tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=lazy.shape)
        for key, value in (("location", location), ("offset", offset), ("length", lazy.nbytes)):
            tensor.external_data.add(key=key, value=str(value))
        tensor.data_location = TensorProto.EXTERNAL
        self.external_bytes += lazy.nbytes
        return tensor

    def op(self, op_type: str, inputs: list[str], base: str, n_out: int = 1, outputs=None, **attrs):
        node_name = self.unique(base)
        outs = outputs or [self.unique(f"{node_name}_out{k}" if n_out > 1 else f"{node_name}_out")
                           for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=node_name, **attrs))
        return outs if n_out > 1 or outputs else outs[0]


def check(proto: onnx.ModelProto, b: Builder) -> None:
    """onnx.checker (with shape inference) on the graph without its weights: each deferred or external
    tensor stands in as a graph input of its type and shape, so nodes, attributes and shapes are checked
    without a byte of weights; what the bytes are framed as is tested by runtimes loading the files."""
    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(proto)
    g = skeleton.graph
    stand_ins = [t for t in g.initializer if t.data_location == TensorProto.EXTERNAL]
    kept = [t for t in g.initializer if t.data_location != TensorProto.EXTERNAL]
    del g.initializer[:]
    g.initializer.extend(kept)
    stand_ins += [t for t in b.inits if t.name in b.deferred]
    inputs = {i.name for i in g.input}           # an initializer may also be a graph input (its default)
    g.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in stand_ins
                   if t.name not in inputs)
    onnx.checker.check_model(skeleton, full_check=True)


def save(proto: onnx.ModelProto, b: Builder, path: str) -> None:
    """The model with one graph field: the skeleton's own fields, then each deferred tensor framed as an
    initializer whose raw_data is written straight from its buffer.  Empties `proto.graph`."""
    tensors = [(t, b.deferred[t.name]) for t in b.inits if t.name in b.deferred]
    graph = proto.graph.SerializeToString()
    proto.ClearField("graph")
    head = proto.SerializeToString()
    frames = [wire.tensor_frame(t.SerializeToString(), lazy.nbytes) for t, lazy in tensors]
    with open(path, "wb") as fh:
        fh.write(head)
        fh.write(wire.field_header(wire.MODEL_GRAPH, len(graph) + sum(len(f) + lazy.nbytes
                                                                       for f, (_, lazy) in zip(frames, tensors))))
        fh.write(graph)
        for frame, (_, lazy) in zip(frames, tensors):
            fh.write(frame)
            written = 0
            for chunk in lazy.chunks():
                fh.write(memoryview(chunk).cast("B"))
                written += chunk.nbytes
                del chunk
            if written != lazy.nbytes:
                raise AssertionError(f"tensor of {lazy.nbytes} bytes wrote {written}")   # our own framing
