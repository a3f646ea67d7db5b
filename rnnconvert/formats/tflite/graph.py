"""Tensors, constants and operators of a TFLite model collected subgraph by subgraph, then written as the
FlatBuffer (`flatbuf`) with the schema's field indices (`schema`).

Buffer 0 is the empty buffer every tensor without data points at; each constant gets its own buffer.
"""
from __future__ import annotations

import numpy as np

from . import flatbuf as fb
from . import schema as s

_NP_TYPES = {np.dtype("float32"): s.FLOAT32, np.dtype("int32"): s.INT32, np.dtype("int64"): s.INT64,
             np.dtype("int8"): s.INT8, np.dtype("bool"): s.BOOL}
_BYTE_ENUMS = {"fused_activation_function", "padding", "weights_format", "out_type"}


class Subgraph:
    def __init__(self, model: "TFLiteModel", name: str):
        self.model, self.name = model, name
        self.tensors: list[dict] = []
        self.ops: list[tuple] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self._names: set[str] = set()

    def _unique(self, name: str) -> str:
        base, k = name, 1
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        self._names.add(name)
        return name

    def tensor(self, name: str, shape, dtype: int = s.FLOAT32, signature=None, variable: bool = False,
               buffer: int = 0, quant: dict | None = None) -> int:
        """A tensor; `shape` has 1 where `signature` has -1 (a dimension fixed only when run)."""
        self.tensors.append({"name": self._unique(name), "shape": [int(d) for d in shape], "type": dtype,
                             "signature": None if signature is None else [int(d) for d in signature],
                             "variable": variable, "buffer": buffer, "quant": quant})
        return len(self.tensors) - 1

    def const(self, name: str, array, quant: dict | None = None) -> int:
        a = np.array(array, order="C", copy=None)
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        return self.tensor(name, a.shape, _NP_TYPES[a.dtype], buffer=self.model.buffer(fb.array_bytes(a)),
                           quant=quant)

    def like(self, name: str, shape, signature=None, dtype: int = s.FLOAT32) -> int:
        return self.tensor(name, shape, dtype, signature)

    def op(self, name: str, inputs, outputs, options: str | None = None, **fields) -> None:
        self.ops.append((self.model.opcode(name), list(inputs), list(outputs), options, fields))

    def table(self) -> fb.Table:
        tensors = [self._tensor_table(t) for t in self.tensors]
        ops = [self._op_table(*o) for o in self.ops]
        return fb.Table(_fields(s.SUBGRAPH, tensors=fb.Vector("obj", tensors), inputs=fb.int_vector(self.inputs),
                                outputs=fb.int_vector(self.outputs), operators=fb.Vector("obj", ops),
                                name=fb.String(self.name)))

    @staticmethod
    def _tensor_table(t) -> fb.Table:
        quant = None
        if t["quant"]:
            q = t["quant"]
            quant = fb.Table(_fields(s.QUANTIZATION, scale=fb.Vector("<f", q["scale"]),
                                     zero_point=fb.Vector("<q", q["zero_point"]),
                                     quantized_dimension=fb.i32(q.get("axis", 0))))
        return fb.Table(_fields(
            s.TENSOR, shape=fb.int_vector(t["shape"]), type=fb.i8(t["type"]), buffer=fb.u32(t["buffer"]),
            name=fb.String(t["name"]), quantization=quant,
            is_variable=fb.boolean(True) if t["variable"] else None,
            shape_signature=None if t["signature"] is None else fb.int_vector(t["signature"]),
            has_rank=fb.boolean(True)))

    @staticmethod
    def _op_table(opcode, inputs, outputs, options, fields) -> fb.Table:
        opts = None
        if options is not None:
            names = s.OPTION_FIELDS[options]
            opts = fb.Table(_fields(names, **{k: _option_value(k, v) for k, v in fields.items()}))
        return fb.Table(_fields(
            s.OPERATOR, opcode_index=fb.u32(opcode), inputs=fb.int_vector(inputs), outputs=fb.int_vector(outputs),
            builtin_options_type=None if options is None else fb.u8(s.OPTIONS[options]),
            builtin_options=opts))


def _option_value(name, v):
    if name in _BYTE_ENUMS:
        return fb.i8(v)
    if isinstance(v, bool):
        return fb.boolean(v)
    if isinstance(v, int):
        return fb.i32(v)
    if isinstance(v, float):
        return fb.f32(v)
    return fb.int_vector(v)


def _fields(index: dict, **values) -> list:
    """A table's field list: values placed at their schema field index, None elsewhere."""
    out = [None] * (max(index.values(), default=-1) + 1)
    for k, v in values.items():
        out[index[k]] = v
    return out


class TFLiteModel:
    def __init__(self, description: str = "rnnconvert"):
        self.description = description
        self.buffers: list[bytes] = [b""]
        self.opcodes: list[int] = []
        self.subgraphs: list[Subgraph] = []
        self.metadata: dict[str, bytes] = {}

    def subgraph(self, name: str) -> Subgraph:
        g = Subgraph(self, name)
        self.subgraphs.append(g)
        return g

    def buffer(self, data: bytes) -> int:
        self.buffers.append(data)
        return len(self.buffers) - 1

    def opcode(self, name: str) -> int:
        code = s.OPS[name]
        if code not in self.opcodes:
            self.opcodes.append(code)
        return self.opcodes.index(code)

    def to_bytes(self) -> bytes:
        legacy = s.PLACEHOLDER_FOR_GREATER_OP_CODES
        codes = [fb.Table(_fields(s.OPERATOR_CODE, deprecated_builtin_code=fb.i8(min(c, legacy)),
                                  version=fb.i32(s.OP_VERSIONS.get(c, 1)), builtin_code=fb.i32(c)))
                 for c in self.opcodes]
        meta = []
        for name, data in self.metadata.items():
            meta.append(fb.Table(_fields(s.METADATA, name=fb.String(name), buffer=fb.u32(self.buffer(data)))))
        buffers = [fb.Table(_fields(s.BUFFER, data=fb.Bytes(b) if b else None)) for b in self.buffers]
        root = fb.Table(_fields(s.MODEL, version=fb.u32(s.VERSION), operator_codes=fb.Vector("obj", codes),
                                subgraphs=fb.Vector("obj", [g.table() for g in self.subgraphs]),
                                description=fb.String(self.description), buffers=fb.Vector("obj", buffers),
                                metadata=fb.Vector("obj", meta) if meta else None))
        return fb.finish(root, s.IDENTIFIER)
