"""A small FlatBuffer writer, laid out front to back: the root offset, the file identifier, then every
object after the one that points at it (a uoffset is always forward), each table's vtable just before it.

Values: `Table([field, ...])` (field k is the schema's field k: None when absent, `Scalar`, or an object),
`Vector(kind, items)` (kind a struct format for scalars, or "obj" for tables and strings), `String`,
`Bytes` (a [ubyte] vector whose data starts on an `align` boundary).  No code generated from the schema:
the field tables live in `schema.py`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scalar:
    fmt: str        # struct format: '<b', '<B', '<?', '<i', '<I', '<f', '<h', '<q'
    value: object


def i8(v): return Scalar("<b", int(v))
def u8(v): return Scalar("<B", int(v))
def boolean(v): return Scalar("<?", bool(v))
def i32(v): return Scalar("<i", int(v))
def u32(v): return Scalar("<I", int(v))
def f32(v): return Scalar("<f", float(v))


class Table:
    def __init__(self, fields):
        self.fields = list(fields)


class Vector:
    def __init__(self, kind: str, items):
        self.kind = kind            # struct format of one element, or "obj"
        self.items = list(items)


class String:
    def __init__(self, text: str):
        self.data = text.encode("utf-8")


class Bytes:
    def __init__(self, data: bytes, align: int = 16):
        self.data = bytes(data)
        self.align = align


def int_vector(values) -> Vector:
    return Vector("<i", [int(v) for v in values])


def _pad(buf: bytearray, align: int, extra: int = 0) -> None:
    """Pad so that `len(buf) + extra` is a multiple of `align`."""
    while (len(buf) + extra) % align:
        buf.append(0)


def _place(buf: bytearray, obj) -> int:
    """Write `obj` (and everything it points at, after it); returns its position."""
    if isinstance(obj, (String, Bytes)):
        align = obj.align if isinstance(obj, Bytes) else 4
        _pad(buf, max(align, 4), 4)
        pos = len(buf)
        buf += struct.pack("<I", len(obj.data)) + obj.data
        if isinstance(obj, String):
            buf.append(0)
        return pos
    if isinstance(obj, Vector):
        if obj.kind == "obj":
            _pad(buf, 4)
            pos = len(buf)
            buf += struct.pack("<I", len(obj.items)) + bytes(4 * len(obj.items))
            for k, item in enumerate(obj.items):
                slot = pos + 4 + 4 * k
                target = _place(buf, item)
                struct.pack_into("<I", buf, slot, target - slot)
            return pos
        size = struct.calcsize(obj.kind)
        _pad(buf, max(size, 4), 4)
        pos = len(buf)
        buf += struct.pack("<I", len(obj.items)) + b"".join(struct.pack(obj.kind, v) for v in obj.items)
        return pos
    if isinstance(obj, Table):
        return _place_table(buf, obj)
    raise TypeError(f"cannot place {type(obj).__name__}")


def _place_table(buf: bytearray, table: Table) -> int:
    # Inline layout of the table: soffset, then each present field aligned to its size.
    layout, offset, children = [], 4, []
    for k, v in enumerate(table.fields):
        if v is None:
            continue
        size = struct.calcsize(v.fmt) if isinstance(v, Scalar) else 4
        offset = (offset + size - 1) // size * size
        layout.append((k, offset, v))
        offset += size
    table_size = (offset + 3) // 4 * 4
    n = max((k for k, _, _ in layout), default=-1) + 1
    vtable = struct.pack("<HH", 4 + 2 * n, table_size) + b"".join(
        struct.pack("<H", next((o for kk, o, _ in layout if kk == k), 0)) for k in range(n))
    _pad(buf, 8, len(vtable))     # the table starts 8-aligned, right after its vtable
    vt_pos = len(buf)
    buf += vtable
    pos = len(buf)
    body = bytearray(table_size)
    struct.pack_into("<i", body, 0, pos - vt_pos)
    for k, off, v in layout:
        if isinstance(v, Scalar):
            struct.pack_into(v.fmt, body, off, v.value)
        else:
            children.append((pos + off, v))
    buf += body
    for slot, child in children:
        target = _place(buf, child)
        struct.pack_into("<I", buf, slot, target - slot)
    return pos


def finish(root: Table, identifier: bytes) -> bytes:
    """The whole buffer: root uoffset, 4-byte identifier, the objects."""
    buf = bytearray(8)
    buf[4:8] = identifier
    pos = _place(buf, root)
    struct.pack_into("<I", buf, 0, pos)
    _pad(buf, 16)
    return bytes(buf)


def array_bytes(a: np.ndarray) -> bytes:
    """Little-endian row-major bytes of `a` (TFLite buffers assume a little-endian target)."""
    a = np.array(a, order="C", copy=None)
    return a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
