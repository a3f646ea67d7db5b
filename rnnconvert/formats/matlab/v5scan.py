"""MATLAB v5 (v6, v7) MAT-file streams checked before scipy.io reads them.

scipy's reader recurses in C for every nested cell or struct (10,000 levels overflow the stack and
kill the process) and inflates a miCOMPRESSED element whole, however large.  `check(buf, path)`
walks the stream's tags without recursion and without keeping inflated bytes: nesting deeper than
MAX_DEPTH, more than MAX_ELEMENTS nested arrays in all (each costs scipy a Python object), compressed
elements inflating past ZIP_RATIO times the file (the budget is shared by all of them, and by the MCOS
subsystem stream checked after), negative dimensions, cells and structs declaring more elements than
their bytes can hold, and elements overrunning the element around them are refused, naming the
variable.

Layout: a 128-byte header (bytes 126-127 'IM' little-endian, 'MI' big-endian), then data elements:
a tag (type u32, byte count u32; or a small element: count in the upper 16 bits, 4 bytes of data),
data padded to 8 bytes.  A miMATRIX holds sub-elements: array flags (class in the low byte),
dimensions (int32), name, then by class: cells their elements as miMATRIX, structs a field-name
length, the names and their values as miMATRIX (objects a class name first); miCOMPRESSED holds a
zlib stream of one element.
"""
from __future__ import annotations

import struct
import zlib

from ...errors import InputError
from ...files.safety import SLACK, ZIP_RATIO, _size
from .limits import MAX_DEPTH, MAX_ELEMENTS

MI_MATRIX, MI_COMPRESSED = 14, 15
CELL, STRUCT, OBJECT, OPAQUE = 1, 2, 3, 17
NUMERIC = (4, *range(6, 16))          # char and numeric classes: at least a byte per element (not sparse)
DIMENSIONED = range(1, 16)           # classes whose second sub-element is the dimensions (not opaque, 17)
PIECE = 1 << 16                      # inflated bytes taken at a time
FEED = 1 << 16                       # compressed bytes given to zlib at a time


class Budget:
    """Inflated bytes allowed for one file: ZIP_RATIO times its size plus SLACK."""

    def __init__(self, file_size: int):
        self.file_size = file_size
        self.total = self.left = ZIP_RATIO * file_size + SLACK


class _Short(Exception):
    """An element runs past the end of what holds it."""


class _Plain:
    def __init__(self, buf, start: int, end: int):
        self.buf, self.pos, self.end = buf, start, end

    def read(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise _Short()
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        if self.pos + n > self.end:
            raise _Short()
        self.pos += n


class _Inflated:
    """The inflated bytes of one miCOMPRESSED element, produced PIECE at a time and charged to `budget`."""

    def __init__(self, buf, start: int, size: int, budget: Budget, owner):
        self.buf, self.fed, self.end = buf, start, start + size
        self.z, self.pos, self.budget, self.owner = zlib.decompressobj(), 0, budget, owner
        self.out, self.at = b"", 0               # inflated, not yet read: out[at:]

    def _pull(self, want: int) -> bytes:
        while True:
            if self.z.unconsumed_tail:
                data = self.z.unconsumed_tail
            elif self.fed < self.end and not self.z.eof:
                data = bytes(self.buf[self.fed:min(self.end, self.fed + FEED)])
                self.fed += len(data)
            else:
                return b""
            out = self.z.decompress(data, want)
            if out:
                if len(out) > self.budget.left:
                    raise InputError(f"MAT-file refused: variable '{self.owner.var}' inflates past "
                                     f"{_size(self.budget.total)}, over {ZIP_RATIO} times the file's "
                                     f"{_size(self.budget.file_size)} (a decompression bomb)", path=self.owner.path)
                self.budget.left -= len(out)
                return out

    def read(self, n: int) -> bytes:
        while len(self.out) - self.at < n:
            piece = self._pull(PIECE)
            if not piece:
                raise _Short()
            self.out, self.at = self.out[self.at:] + piece, 0
        got = self.out[self.at:self.at + n]
        self.at += n
        self.pos += n
        return got

    def skip(self, n: int) -> None:
        held = min(n, len(self.out) - self.at)
        self.at += held
        self.pos += held
        n -= held
        while n:
            piece = self._pull(min(n, PIECE))
            if not piece:
                raise _Short()
            n -= len(piece)
            self.pos += len(piece)


class _Scan:
    def __init__(self, path: str, order: str):
        self.path, self.order, self.var, self.count = path, order, "?", 0

    def refuse(self, what: str):
        raise InputError(f"MAT-file refused: variable '{self.var}' {what}", path=self.path)

    def tag(self, src) -> tuple[int, int, bytes | None]:
        kind, n = struct.unpack(self.order + "II", src.read(8))
        if kind >> 16:                               # small element: count in the upper half, data in n
            return kind & 0xFFFF, kind >> 16, struct.pack(self.order + "I", n)
        return kind, n, None

    def matrix(self, src, size: int, top: bool) -> None:
        """Walk one miMATRIX of `size` bytes at src.pos, its nested matrices on an explicit stack."""
        # a frame: [end, depth, sub-element index, class, element count, field name length, problem,
        #           nested matrices, nested matrices scipy will read (None: not known)]
        frames = [[src.pos + size, 1, 0, None, 0, 0, None, 0, None]]
        while frames:
            fr = frames[-1]
            end, depth = fr[0], fr[1]
            left = end - src.pos
            if left < 8:
                src.skip(left)                       # padding
                self.done(frames.pop())
                continue
            kind, n, small = self.tag(src)
            idx, fr[2] = fr[2], fr[2] + 1
            left = end - src.pos
            if small is None and n > left:
                self.refuse(f"is damaged: an element declares {n} bytes where {left} are left")
            pad = 0 if small is not None else min((-n) % 8, left - n)
            if kind == MI_MATRIX and idx >= 3 and small is None:
                if depth >= MAX_DEPTH:
                    self.refuse(f"nests cells or structs more than {MAX_DEPTH} deep; no network is nested "
                                "that deep")
                self.count += 1
                fr[7] += 1
                if fr[3] in NUMERIC:
                    self.refuse("is damaged: a numeric or char array holds an array where its data belongs")
                if self.count > MAX_ELEMENTS:
                    self.refuse(f"holds more than {MAX_ELEMENTS} arrays in cells and structs (the file's arrays "
                                "together); no network has as many")
                frames.append([src.pos + n + pad, depth + 1, 0, None, 0, 0, None, 0, None])   # padding its own
                continue
            data = small
            named = top and depth == 1 and idx == (1 if fr[3] == OPAQUE else 2)
            if idx == 0 or (idx == 1 and fr[3] in DIMENSIONED) or named \
                    or (fr[3] in (STRUCT, OBJECT) and idx == (3 if fr[3] == STRUCT else 4)):
                if data is None:
                    if n > 4096:
                        self.refuse(f"is damaged: a header element declares {n} bytes")
                    data = src.read(n)
            elif small is None:
                src.skip(n)
            if small is None:
                src.skip(pad)
            if idx == 0:
                fr[3] = struct.unpack(self.order + "I", data[:4])[0] & 0xFF if len(data) >= 4 else None
            elif idx == 1 and fr[3] in DIMENSIONED:
                dims = list(struct.unpack(f"{self.order}{len(data) // 4}i", data[:len(data) // 4 * 4]))
                count = 1
                for d in dims:
                    count *= d
                fr[4] = count
                fr[8] = count if fr[3] == CELL else 0 if fr[3] in (STRUCT, OBJECT) else None
                problem = (f"has dimensions {dims}: a size cannot be negative" if any(d < 0 for d in dims) else
                           f"declares a cell of {dims} ({count} elements) in {end - src.pos} bytes"
                           if fr[3] == CELL and count * 8 > end - src.pos else
                           f"declares an array of {dims} ({count} elements) in {end - src.pos} bytes"
                           if fr[3] in NUMERIC and count > end - src.pos else None)
                if problem and top and depth == 1:
                    fr[6] = problem                  # refused once the variable's name is read
                elif problem:
                    self.refuse(problem)
            elif named:
                self.var = data.rstrip(b"\0").decode("latin-1")
                if fr[6]:
                    self.refuse(fr[6])
            elif fr[3] in (STRUCT, OBJECT) and idx == (3 if fr[3] == STRUCT else 4):
                fr[5] = struct.unpack(self.order + "i", data[:4])[0] if len(data) >= 4 else 0
            elif fr[3] in (STRUCT, OBJECT) and idx == (4 if fr[3] == STRUCT else 5) and fr[5] > 0:
                fields = n // fr[5]
                fr[8] = fr[4] * fields
                if fr[4] * fields * 8 > end - src.pos:
                    self.refuse(f"declares a struct of {fr[4]} elements with {fields} fields in "
                                f"{end - src.pos} bytes")


    def done(self, fr) -> None:
        """A matrix walked to its end: it must hold what scipy will read from it (else scipy reads on into
        the elements after it, and has crashed the process doing so)."""
        if fr[3] in NUMERIC and fr[2] < 4:
            self.refuse("is damaged: a numeric or char array has no data element")
        if fr[8] is not None and fr[7] != fr[8]:
            what = "cell" if fr[3] == CELL else "struct"
            self.refuse(f"is damaged: a {what} of {fr[4]} elements holds {fr[7]} arrays where {fr[8]} belong")


def check(buf, path: str, budget: Budget | None = None) -> Budget:
    """Walk the MAT stream in `buf` (a v5 header, then data elements); InputError when it is nested
    too deeply, inflates past the budget or declares what it cannot hold.  Returns the budget, for
    a stream found inside this one (the MCOS subsystem)."""
    budget = budget or Budget(len(buf))
    order = ">" if bytes(buf[126:128]) == b"MI" else "<"
    scan = _Scan(path, order)
    pos = 128
    while pos + 8 <= len(buf):
        src = _Plain(buf, pos, len(buf))
        scan.var = "?"
        try:
            kind, n, small = scan.tag(src)
            if small is not None:
                pos = src.pos
                continue
            if n > len(buf) - src.pos:
                n = len(buf) - src.pos                # scipy reads what there is and refuses the rest
            if kind == MI_COMPRESSED:
                inner = _Inflated(buf, src.pos, n, budget, scan)
                kind2, n2, small2 = scan.tag(inner)
                if kind2 == MI_MATRIX and small2 is None:
                    scan.matrix(inner, n2, True)
                pos = src.pos + n
            elif kind == MI_MATRIX:
                scan.matrix(src, n, True)
                pos = src.pos                          # as scipy: the next variable right after
            else:
                pos = src.pos + n + (-n) % 8
        except _Short:
            scan.refuse("is damaged: an element runs past the end of what holds it")
        except zlib.error as exc:
            scan.refuse(f"is damaged: its compressed data cannot be inflated ({exc})")
    return budget
