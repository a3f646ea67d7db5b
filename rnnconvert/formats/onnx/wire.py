"""The protobuf wire format of an ONNX file, where onnx's parser would hold every weight in memory twice.

Writing: the framing of a field and of an initializer whose raw_data follows straight from a numpy buffer
(`initializers.save`).  Reading: `split` walks the top-level ModelProto fields and the main graph's
initializers, and returns the file without the large raw_data payloads (for onnx to parse) plus where
each payload lies; `read_payloads` reads each into one numpy array.  Every varint and length is checked
against the bounds of the message that holds it (the file, for the outermost); broken framing is an
InputError.  What the walk does not handle (group wire types, more than MAX_FIELDS fields) is left to
onnx's parser (`Unhandled`).

Field numbers (onnx.proto): ModelProto.graph = 7, GraphProto.initializer = 5, TensorProto.dims = 1,
data_type = 2, segment = 3, raw_data = 9, data_location = 14.
"""
from __future__ import annotations

import mmap
import os

import numpy as np
from . import lite as onnx

from ...errors import InputError

MODEL_GRAPH = 7
GRAPH_INITIALIZER = 5
TENSOR_RAW_DATA = 9
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
LEAN_BYTES = 1 << 16        # raw_data payloads from this size on are read into arrays, not parsed by onnx
MAX_FIELDS = 1 << 20        # fields walked in Python before the file is left to onnx's parser (a file of
                            # millions of tiny fields is onnx's to parse quickly, not this loop's)


class Unhandled(Exception):
    """Framing valid for protobuf that this walk does not follow: onnx's parser reads the file."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_header(field: int, length: int) -> bytes:
    """The key and length of a length-delimited field whose `length` bytes follow."""
    return varint(field << 3 | _LEN) + varint(length)


def tensor_frame(header: bytes, nbytes: int) -> bytes:
    """An initializer field holding the serialized TensorProto `header` (name, dims, data_type) and a
    raw_data field of `nbytes`, which the caller writes right after these bytes."""
    raw = field_header(TENSOR_RAW_DATA, nbytes)
    return field_header(GRAPH_INITIALIZER, len(header) + len(raw) + nbytes) + header + raw


# -------------------------------------------------------------------------------------------- reading

class _Walk:
    def __init__(self, buf, path: str):
        self.buf, self.path, self.budget = buf, path, MAX_FIELDS

    def fail(self, what: str):
        return InputError(f"not an ONNX model (cannot parse protobuf: {what}; the file is truncated or "
                          "damaged)", path=self.path)

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        value = shift = 0
        for k in range(10):
            if pos + k >= end:
                raise self.fail(f"a varint at byte {pos} runs past the end of its message at byte {end}")
            byte = self.buf[pos + k]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, pos + k + 1
        raise self.fail(f"a varint at byte {pos} is longer than 10 bytes")

    def fields(self, start: int, end: int):
        """(field number, wire type, value start, value end, field start) of each field in [start, end)."""
        pos = start
        while pos < end:
            self.budget -= 1
            if self.budget < 0:
                raise Unhandled
            key, at = self.varint(pos, end)
            field, wire = key >> 3, key & 7
            if field == 0:
                raise self.fail(f"field number 0 at byte {pos}")
            if wire == _VARINT:
                _, stop = self.varint(at, end)
            elif wire == _I64:
                stop = at + 8
            elif wire == _I32:
                stop = at + 4
            elif wire == _LEN:
                length, at = self.varint(at, end)
                stop = at + length
            elif wire in (3, 4):
                raise Unhandled
            else:
                raise self.fail(f"wire type {wire} of field {field} at byte {pos}")
            if stop > end:
                raise self.fail(f"field {field} at byte {pos} declares {stop - at} bytes, past the end of its "
                                f"message at byte {end}")
            yield field, wire, at, stop, pos
            pos = stop


def split(path: str) -> tuple[bytes, dict[int, tuple[int, int]]]:
    """(the file with the main graph's large raw_data fields cut out, {initializer index: (offset, length)
    of its raw_data in the file}).  Initializers are counted across all graph fields, in file order, as
    protobuf merges them."""
    size = os.path.getsize(path)
    if size == 0:
        return b"", {}
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        w = _Walk(buf, path)
        parts, payloads, index = [], {}, 0
        for field, wire, at, stop, pos in w.fields(0, size):
            if field != MODEL_GRAPH or wire != _LEN:
                parts.append(buf[pos:stop])
                continue
            graph = []
            for f, wt, a, b, p in w.fields(at, stop):
                if f == GRAPH_INITIALIZER and wt == _LEN:
                    cut = _raw_data(w, a, b) if b - a >= LEAN_BYTES else None
                    if cut is None:
                        graph.append(buf[p:b])
                    else:
                        (ra, rb, rp), rest = cut
                        payloads[index] = (ra, rb - ra)
                        graph.append(field_header(GRAPH_INITIALIZER, len(rest)) + rest)
                    index += 1
                else:
                    graph.append(buf[p:b])
            body = b"".join(graph)
            parts.append(field_header(MODEL_GRAPH, len(body)) + body)
        return b"".join(parts), payloads


def _raw_data(w: _Walk, start: int, end: int):
    """((start, end, field start) of the one large raw_data field of the tensor in [start, end), the tensor's
    other fields), or None when it has none or several."""
    raw, rest = [], []
    for f, wt, a, b, p in w.fields(start, end):
        if f == TENSOR_RAW_DATA and wt == _LEN:
            raw.append((a, b, p))
        else:
            rest.append(w.buf[p:b])
    if len(raw) != 1 or raw[0][1] - raw[0][0] < LEAN_BYTES:
        return None
    return raw[0], b"".join(rest)


_DTYPES = {onnx.TensorProto.FLOAT: "<f4", onnx.TensorProto.DOUBLE: "<f8", onnx.TensorProto.FLOAT16: "<f2",
           onnx.TensorProto.INT8: "i1", onnx.TensorProto.UINT8: "u1", onnx.TensorProto.INT16: "<i2",
           onnx.TensorProto.UINT16: "<u2", onnx.TensorProto.INT32: "<i4", onnx.TensorProto.UINT32: "<u4",
           onnx.TensorProto.INT64: "<i8", onnx.TensorProto.UINT64: "<u8", onnx.TensorProto.BOOL: "?"}


def read_payloads(path: str, graph: onnx.GraphProto, payloads: dict[int, tuple[int, int]],
                  into_proto: bool = False) -> dict[int, np.ndarray]:
    """{initializer index: its values}, each read with one read into its array.  A payload whose tensor
    needs more than a plain array (an unknown type, segments, a size its dims do not give), or every
    payload with `into_proto`, is put back into its tensor as raw_data, for onnx's own conversion."""
    out = {}
    with open(path, "rb") as fh:
        for k, (offset, length) in payloads.items():
            t = graph.initializer[k]
            dtype = _DTYPES.get(t.data_type)
            count = int(np.prod(list(t.dims), dtype=np.float64)) if dtype else -1
            if into_proto or dtype is None or t.HasField("segment") or t.data_location == onnx.TensorProto.EXTERNAL \
                    or any(d < 0 for d in t.dims) or count * np.dtype(dtype).itemsize != length:
                fh.seek(offset)
                t.raw_data = fh.read(length)
                continue
            a = np.empty(count, dtype)
            fh.seek(offset)
            if fh.readinto(memoryview(a).cast("B")) != length:
                raise InputError(f"initializer '{t.name}' is cut short: the file ends inside its {length} bytes",
                                 path=path)
            out[k] = a.reshape(tuple(t.dims))
    return out


def read_external(graph: onnx.GraphProto, base: str) -> dict[int, np.ndarray]:
    """{initializer index: values} of the main graph's large external-data initializers, each read from
    its file (inside `base`, offset and length already checked by safety.check_onnx_external) straight
    into its array; those tensors become plain stripped ones, the rest is left to onnx."""
    out = {}
    for k, t in enumerate(graph.initializer):
        dtype = _DTYPES.get(t.data_type)
        if t.data_location != onnx.TensorProto.EXTERNAL or dtype is None or t.HasField("segment") \
                or any(d < 0 for d in t.dims):
            continue
        info = {e.key: e.value for e in t.external_data}
        count = int(np.prod(list(t.dims), dtype=np.float64))
        nbytes = count * np.dtype(dtype).itemsize
        if nbytes < LEAN_BYTES:
            continue
        a = np.fromfile(os.path.join(base, info["location"]), dtype=dtype, count=count,
                        offset=int(info.get("offset", 0)))
        if a.size != count:
            raise InputError(f"initializer '{t.name}' is cut short: its external data file ends inside its "
                             f"{nbytes} bytes", path=os.path.join(base, info["location"]))
        out[k] = a.reshape(tuple(t.dims))
        t.ClearField("external_data")
        t.ClearField("data_location")
    return out
