"""A .tflite file as plain values: its subgraphs' tensors (shape, type, constant data dequantized
exactly where int8 weights carry scales) and operators (builtin name, inputs, outputs, options by the
schema's field names).  Nothing here runs anything; every offset is checked (`flatread`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError, UnsupportedError
from . import schema as s
from .flatread import Buf

MAX_RANK = 8
_OPTION_TYPES = {"fused_activation_function": "<b", "padding": "<b", "weights_format": "<b", "out_type": "<b",
                 "beta": "<f", "alpha": "<f", "cell_clip": "<f", "proj_clip": "<f"}
_BOOL_FIELDS = {"keep_num_dims", "time_major", "merge_outputs", "keep_dims", "asymmetric_quantize_inputs",
                "approximate"}
_LIST_FIELDS = {"new_shape", "squeeze_dims"}


@dataclass
class Tensor:
    name: str
    shape: list
    dtype: int
    data: np.ndarray | None = None     # constants, float32 after dequantizing int8 weights
    variable: bool = False
    quantized: bool = False
    scales: np.ndarray | None = None   # int8 weights: float32 scales (one, or one per channel) ...
    axis: int = 0                      # ... along this axis, zero points all 0 (else None scales)


@dataclass
class Op:
    name: str
    inputs: list
    outputs: list
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    tensors: list
    inputs: list
    outputs: list
    ops: list


def parse(data: bytes, path: str | None = None) -> tuple[list[Graph], dict[str, bytes]]:
    """The subgraphs, and the model's metadata entries {name: bytes of its buffer}."""
    if len(data) < 8 or bytes(data[4:8]) != s.IDENTIFIER:
        raise InputError("not a TFLite file: its FlatBuffer identifier (bytes 4..8) is not TFL3", path=path)
    buf = Buf(data, path)
    root = buf.root("the model table")
    codes = []
    for c in root.tables(s.MODEL["operator_codes"], "operator_codes"):
        code = max(c.scalar(s.OPERATOR_CODE["builtin_code"], "<i"),
                   c.scalar(s.OPERATOR_CODE["deprecated_builtin_code"], "<b"))
        custom = c.string(s.OPERATOR_CODE["custom_code"], "custom_code")
        codes.append(f"custom op '{custom}'" if custom else s.OP_NAMES.get(code, f"builtin op {code}"))
    buffers = root.tables(s.MODEL["buffers"], "buffers")
    graphs = []
    for k, g in enumerate(root.tables(s.MODEL["subgraphs"], "subgraphs")):
        name = g.string(s.SUBGRAPH["name"], "subgraph name") or f"subgraph {k}"
        tensors = [_tensor(t, buffers, buf, name, i) for i, t in enumerate(g.tables(s.SUBGRAPH["tensors"], "tensors"))]
        ops = [_op(o, codes, len(tensors), name, path) for o in g.tables(s.SUBGRAPH["operators"], "operators")]
        io = [_indices(g.array(s.SUBGRAPH[key], "<i4", f"subgraph {key}"), len(tensors), name, path)
              for key in ("inputs", "outputs")]
        graphs.append(Graph(name, tensors, io[0], io[1], ops))
    if not graphs:
        raise InputError("the TFLite file has no subgraph", path=path)
    meta = {}
    for m in root.tables(s.MODEL["metadata"], "metadata"):
        b = m.scalar(s.METADATA["buffer"], "<I")
        if b >= len(buffers):
            raise InputError(f"metadata buffer {b} out of range ({len(buffers)} buffers)", path=path)
        meta[m.string(s.METADATA["name"], "metadata name") or ""] = bytes(
            buffers[b].bytes(s.BUFFER["data"], f"buffer {b}") or b"")
    return graphs, meta


def _indices(a, n, graph, path) -> list[int]:
    out = [] if a is None else [int(v) for v in a]
    bad = [v for v in out if v < -1 or v >= n]
    if bad:
        raise InputError(f"{graph}: tensor index {bad[0]} out of range (the subgraph has {n} tensors)", path=path)
    return out


def _tensor(t, buffers, buf, graph, i) -> Tensor:
    f = s.TENSOR
    what = f"{graph} tensor {i}"
    shape = t.array(f["shape"], "<i4", f"{what} shape")
    shape = [] if shape is None else [int(d) for d in shape]
    sig = t.array(f["shape_signature"], "<i4", f"{what} shape_signature")
    if sig is not None and len(sig) == len(shape):
        shape = [None if d < 0 else int(d) for d in sig]
    if len(shape) > MAX_RANK or any(d is not None and d < 0 for d in shape):
        raise InputError(f"{what}: shape {shape} is not a tensor shape", path=buf.path)
    dtype = t.scalar(f["type"], "<b")
    name = t.string(f["name"], f"{what} name") or f"tensor_{i}"
    tensor = Tensor(name, shape, dtype, variable=bool(t.scalar(f["is_variable"], "<?")))
    b = t.scalar(f["buffer"], "<I")
    if b:
        if b >= len(buffers):
            raise InputError(f"{what} ('{name}'): buffer {b} out of range ({len(buffers)} buffers)", path=buf.path)
        data = buffers[b].bytes(s.BUFFER["data"], f"buffer {b}")
        if data is not None and len(data):
            tensor.data = _constant(tensor, data, t.table(f["quantization"], f"{what} quantization"), buf.path)
    return tensor


def _constant(t: Tensor, data, quant, path) -> np.ndarray:
    if t.dtype not in s.DTYPES:
        raise UnsupportedError(f"constant tensor '{t.name}' of TFLite type {t.dtype}; rnnconvert reads "
                               "float32, int32, int64, int8 and bool constants", path=path)
    dt = np.dtype(s.DTYPES[t.dtype]).newbyteorder("<")
    if None in t.shape:
        raise InputError(f"constant tensor '{t.name}' has a dynamic shape {t.shape}", path=path)
    n = int(np.prod(t.shape, dtype=np.int64)) if t.shape else 1
    if n * dt.itemsize != len(data):
        raise InputError(f"constant tensor '{t.name}': shape {t.shape} needs {n * dt.itemsize} bytes, its buffer "
                         f"holds {len(data)}", path=path)
    a = np.frombuffer(data, dt).astype(dt.newbyteorder("=")).reshape(t.shape)
    if t.dtype == s.INT8 and quant is not None:
        scale = quant.array(s.QUANTIZATION["scale"], "<f4", "quantization scale")
        zero = quant.array(s.QUANTIZATION["zero_point"], "<i8", "quantization zero_point")
        axis = quant.scalar(s.QUANTIZATION["quantized_dimension"], "<i")
        if scale is not None and len(scale):
            a = _dequantize(t, a, scale, zero, axis, path)
            t.quantized = True
            if zero is None or not np.any(zero):
                t.scales, t.axis = scale.astype(np.float32), int(axis)
    return a


def _dequantize(t, q, scale, zero, axis, path) -> np.ndarray:
    """float32(q - zero_point) * scale, per channel along `axis` (TFLite's definition, exact in float32)."""
    zero = np.zeros(len(scale), np.int64) if zero is None or not len(zero) else zero
    if len(scale) != 1 and (q.ndim == 0 or not 0 <= axis < q.ndim or q.shape[axis] != len(scale)) \
            or len(zero) not in (1, len(scale)):
        raise InputError(f"int8 tensor '{t.name}': {len(scale)} scales do not fit its shape {list(q.shape)} "
                         f"along axis {axis}", path=path)
    shape = [1] * q.ndim
    if len(scale) != 1:
        shape[axis] = len(scale)
    return ((q.astype(np.int64) - zero.reshape(shape if len(zero) > 1 else [1] * q.ndim)).astype(np.float32)
            * scale.astype(np.float32).reshape(shape))


def _op(o, codes, ntensors, graph, path) -> Op:
    f = s.OPERATOR
    k = o.scalar(f["opcode_index"], "<I")
    if k >= len(codes):
        raise InputError(f"{graph}: operator code {k} out of range ({len(codes)} codes)", path=path)
    ins = _indices(o.array(f["inputs"], "<i4", "operator inputs"), ntensors, graph, path)
    outs = _indices(o.array(f["outputs"], "<i4", "operator outputs"), ntensors, graph, path)
    options = {}
    kind = s.OPTION_NAMES.get(o.scalar(f["builtin_options_type"], "<B"))
    table = o.table(f["builtin_options"], "builtin options")
    if kind and table is not None:
        for name, idx in s.OPTION_FIELDS[kind].items():
            if name in _LIST_FIELDS:
                a = table.array(idx, "<i4", name)
                options[name] = None if a is None else [int(v) for v in a]
            elif name in _BOOL_FIELDS:   # BidirectionalSequenceLSTMOptions.time_major defaults to true
                default = kind == "BidirectionalSequenceLSTMOptions" and name == "time_major"
                options[name] = bool(table.scalar(idx, "<?", default))
            else:
                options[name] = table.scalar(idx, _OPTION_TYPES.get(name, "<i"))
    return Op(codes[k], ins, outs, options)
