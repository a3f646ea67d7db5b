"""safetensors read and written with numpy alone (no torch, no `safetensors` package).

Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`, then the
raw little-endian buffers; offsets count from the first byte after the header.  Every offset,
size and dtype is checked against the file before a byte is copied, so a corrupt header can never
make us allocate more than the file holds; entries sharing bytes are refused (each would be copied).  BF16 is widened to float32 (numpy has no bfloat16).
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

from ...errors import InputError, UnsupportedError
from ...model import MAX_DIM
from ...files.text import read_json
from ...errors import short_repr

MAX_HEADER = 100_000_000          # the limit the safetensors specification sets

# safetensors dtype -> numpy dtype (little-endian); BF16 handled apart.
DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
ITEMSIZE = {name: np.dtype(dt).itemsize for name, dt in DTYPES.items()} | {"BF16": 2}
_NUMPY_TO_ST = {np.dtype(dt).str.lstrip("<|"): name for name, dt in DTYPES.items()}


def sniff(path) -> bool:
    """True when the file starts with a plausible safetensors header."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return False
            n = struct.unpack("<Q", head)[0]
            if n < 2 or 8 + n > size or n > MAX_HEADER:
                return False
            return isinstance(read_json(f.read(n), path, "header"), dict)
    except (OSError, InputError):
        return False


def read(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(tensors in header order, __metadata__) of a safetensors file; InputError on anything malformed."""
    path = str(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise InputError(f"truncated safetensors file: {size} bytes, the 8-byte header length "
                                 "is missing", path=path)
            n = struct.unpack("<Q", head)[0]
            if n > MAX_HEADER or 8 + n > size:
                raise InputError(f"corrupt safetensors file: header length {n} bytes, but the file has "
                                 f"only {size - 8} bytes after the length field", path=path)
            raw = f.read(n)
            data_size = size - 8 - n
            header = _parse_header(raw, path)
            metadata = header.pop("__metadata__", None) or {}
            if not isinstance(metadata, dict):
                raise InputError("corrupt safetensors header: __metadata__ is not an object", path=path)
            entries, problems = [], []
            for name, info in header.items():
                entry = _check_entry(name, info, data_size, problems)
                if entry:
                    entries.append(entry)
            problems += _overlaps(entries)
            if problems:
                raise InputError("corrupt safetensors header: " + "; ".join(problems[:3])
                                 + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""), path=path)
            tensors = {}
            for name, dtype, shape, begin, end in entries:
                f.seek(8 + n + begin)
                buf = f.read(end - begin)
                if len(buf) != end - begin:
                    raise InputError(f"truncated safetensors file: tensor '{name}' needs bytes "
                                     f"{begin}..{end} of the data section", path=path)
                tensors[name] = _decode(buf, dtype, shape)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", path=path) from None
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def _parse_header(raw: bytes, path: str) -> dict:
    header = read_json(raw, path, "corrupt safetensors file: the header", limit=MAX_HEADER)
    if not isinstance(header, dict):
        raise InputError("corrupt safetensors file: the header is not a JSON object", path=path)
    return header


def _check_entry(name, info, data_size: int, problems: list):
    if not isinstance(info, dict):
        problems.append(f"'{name}': entry is not an object")
        return None
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in ITEMSIZE:
        problems.append(f"'{name}': dtype {dtype!r} is not supported (known: {', '.join(ITEMSIZE)})")
        return None
    if not (isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                            for d in shape)):
        problems.append(f"'{name}': shape {short_repr(shape)} is not a list of non-negative integers")
        return None
    if any(d > MAX_DIM for d in shape):
        problems.append(f"'{name}': shape {short_repr(shape)} has an axis over {MAX_DIM}")
        return None
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(isinstance(o, int) and o >= 0 for o in offsets)):
        problems.append(f"'{name}': data_offsets {offsets!r} is not [begin, end]")
        return None
    begin, end = offsets
    if begin > end or end > data_size:
        problems.append(f"'{name}': data_offsets [{begin}, {end}] out of range (data section has "
                        f"{data_size} bytes)")
        return None
    need = int(np.prod(shape, dtype=object)) * ITEMSIZE[dtype]
    if need != end - begin:
        problems.append(f"'{name}': {dtype} {shape} needs {need} bytes, data_offsets give {end - begin}")
        return None
    return name, dtype, tuple(shape), begin, end


def _overlaps(entries) -> list[str]:
    """Entries sharing bytes (the specification forbids it): each would be copied, so 1000 entries on one
    4 MB range would make 4 GB from a 4 MB file.  With no overlap, all tensors together are at most the
    data section (twice that for BF16, widened to float32)."""
    out, last = [], None
    for e in sorted((e for e in entries if e[4] > e[3]), key=lambda e: e[3]):
        if last is not None and e[3] < last[4]:
            out.append(f"'{e[0]}' bytes [{e[3]}, {e[4]}] overlap '{last[0]}' bytes [{last[3]}, {last[4]}]; "
                       "each tensor needs its own bytes")
        if last is None or e[4] > last[4]:
            last = e
    return out


def _decode(buf: bytes, dtype: str, shape) -> np.ndarray:
    if dtype == "BF16":
        bits = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    a = np.frombuffer(buf, dtype=DTYPES[dtype]).reshape(shape)
    return a.astype(a.dtype.newbyteorder("="), copy=True)


def write(path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` (in their order, 8-byte aligned) and string `metadata` as safetensors."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name, a in tensors.items():
        a = np.asarray(a)
        key = a.dtype.str.lstrip("<>|=")
        if key not in _NUMPY_TO_ST:
            raise UnsupportedError(f"tensor '{name}': numpy dtype {a.dtype} has no safetensors equivalent")
        data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _NUMPY_TO_ST[key], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(len(text)) % 8)            # pad so the data section starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
