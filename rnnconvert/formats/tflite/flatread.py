"""Reading a FlatBuffer from a stranger, every offset checked: a table, vector or string that would lie
outside the buffer, a vtable shorter than it says, or a vector longer than the bytes left is an InputError
naming what was being read, never an IndexError, a crash or an allocation larger than the file.
"""
from __future__ import annotations

import struct

import numpy as np

from ...errors import InputError


class Buf:
    def __init__(self, data: bytes, path: str | None = None):
        self.data = memoryview(data)
        self.path = path

    def fail(self, what: str):
        raise InputError(f"not a valid TFLite FlatBuffer: {what} lies outside the file "
                         f"({len(self.data)} bytes); the file is truncated or damaged", path=self.path)

    def unpack(self, fmt: str, pos: int, what: str):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.data):
            self.fail(what)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def root(self, what: str = "the root table") -> "Table":
        return self.table(self.unpack("<I", 0, what), what)

    def table(self, pos: int, what: str) -> "Table":
        vt = pos - self.unpack("<i", pos, what)
        vt_size = self.unpack("<H", vt, f"the vtable of {what}")
        if vt_size < 4 or vt_size % 2 or vt + vt_size > len(self.data):
            self.fail(f"the vtable of {what}")
        return Table(self, pos, vt, (vt_size - 4) // 2, what)


class Table:
    def __init__(self, buf: Buf, pos: int, vt: int, nfields: int, what: str):
        self.buf, self.pos, self.vt, self.nfields, self.what = buf, pos, vt, nfields, what

    def _field(self, k: int) -> int:
        """Absolute position of field k, or 0 when absent."""
        if k >= self.nfields:
            return 0
        off = self.buf.unpack("<H", self.vt + 4 + 2 * k, f"the vtable of {self.what}")
        return self.pos + off if off else 0

    def scalar(self, k: int, fmt: str, default=0):
        p = self._field(k)
        return default if not p else self.buf.unpack(fmt, p, f"field {k} of {self.what}")

    def _target(self, k: int, what: str) -> int | None:
        p = self._field(k)
        if not p:
            return None
        return p + self.buf.unpack("<I", p, what)

    def table(self, k: int, what: str) -> "Table | None":
        t = self._target(k, what)
        return None if t is None else self.buf.table(t, what)

    def _vector(self, k: int, elem: int, what: str) -> tuple[int, int] | None:
        t = self._target(k, what)
        if t is None:
            return None
        n = self.buf.unpack("<I", t, what)
        if n * elem > len(self.buf.data) - t - 4:
            self.buf.fail(f"{what} ({n} elements)")
        return t + 4, n

    def array(self, k: int, dtype: str, what: str) -> np.ndarray | None:
        dt = np.dtype(dtype).newbyteorder("<")
        v = self._vector(k, dt.itemsize, what)
        if v is None:
            return None
        start, n = v
        return np.frombuffer(self.buf.data, dt, n, start).astype(dt.newbyteorder("="))

    def bytes(self, k: int, what: str) -> memoryview | None:
        v = self._vector(k, 1, what)
        return None if v is None else self.buf.data[v[0]:v[0] + v[1]]

    def string(self, k: int, what: str) -> str | None:
        b = self.bytes(k, what)
        return None if b is None else bytes(b).decode("utf-8", "replace")

    def tables(self, k: int, what: str) -> list["Table"]:
        v = self._vector(k, 4, what)
        if v is None:
            return []
        start, n = v
        out = []
        for i in range(n):
            p = start + 4 * i
            out.append(self.buf.table(p + self.buf.unpack("<I", p, what), f"{what}[{i}]"))
        return out
