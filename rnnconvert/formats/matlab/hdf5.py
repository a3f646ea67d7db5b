"""MATLAB v7.3 (HDF5): reading its variables (`V73Reader`) and writing the `layers` cell of structs
(the conversion to v7 for Octave is the runtime's).

MATLAB's HDF5 layout: a 512-byte user block with the MAT header; each variable a dataset or group
with the attribute MATLAB_class; arrays stored transposed (HDF5 is row-major); char as uint16 with
MATLAB_int_decode 2; a cell a dataset of object references into `#refs#`; a scalar struct a group
with one member per field and MATLAB_fields listing them in order.  References may point anywhere, so
a stranger's file can make them a DAG (2**n paths to one object) or a cycle: each object is read once
(memoised by address), nesting stops at MAX_DEPTH and a cycle is refused, naming the variable.
"""
from __future__ import annotations

import time

import numpy as np

from ...errors import InputError
from ...files.safety import read_numeric
from .limits import MAX_DEPTH, MAX_ELEMENTS, _fortran_indices

_CLASSES = {np.dtype(np.float64): "double", np.dtype(np.float32): "single", np.dtype(np.uint8): "uint8",
            np.dtype(np.int32): "int32", np.dtype(np.int64): "int64", np.dtype(np.uint32): "uint32",
            np.dtype(bool): "logical"}


class V73Reader:
    """Values of the variables of an open v7.3 file `f`: objects as in mcos.load (structs dicts, cells
    lists, char str, arrays transposed back, MCOS object columns ("opaque", class, array)).  Every
    dataset is read once whatever refers to it, its datatype checked and its bytes charged to
    `budget` (safety.check_hdf5's)."""

    def __init__(self, f, path: str, budget):
        self.f, self.path, self.budget = f, path, budget
        self.memo: dict[int, object] = {}
        self.open: set[int] = set()          # objects being read: meeting one again is a cycle
        self.elements = 0
        self.var = ""

    def variable(self, name: str):
        self.var = name
        return self.value(self.f[name], 0)

    def value(self, obj, depth: int):
        import h5py
        addr = h5py.h5o.get_info(obj.id).addr
        if addr in self.memo:
            return self.memo[addr]
        if addr in self.open:
            raise InputError(f"variable '{self.var}': '{obj.name}' contains itself (its cell references form "
                             "a cycle, which no MAT-file written by MATLAB has)", path=self.path)
        if depth >= MAX_DEPTH:
            raise InputError(f"variable '{self.var}': cells or structs nested more than {MAX_DEPTH} deep "
                             f"(at '{obj.name}'); no network is nested that deep", path=self.path)
        self.open.add(addr)
        try:
            out = self._read(obj, depth + 1)
        finally:
            self.open.discard(addr)
        self.memo[addr] = out
        return out

    def _deref(self, ref, cell):
        try:
            return self.f[ref]
        except (ValueError, KeyError, TypeError):
            raise InputError(f"variable '{self.var}': '{cell.name}' holds a reference that leads nowhere",
                             path=self.path) from None

    def _read(self, obj, depth: int):
        import h5py
        from ...files.safety import hdf5_class
        cls = obj.attrs.get("MATLAB_class", b"")
        cls = cls.decode() if isinstance(cls, bytes) else str(cls)
        if isinstance(obj, h5py.Group):
            if cls == "struct" or not cls:
                fields = [k for k in obj.keys()]
                order = obj.attrs.get("MATLAB_fields")
                if order is not None and not isinstance(order, h5py.Reference):
                    fields = ["".join(c.decode() if isinstance(c, bytes) else str(c) for c in np.asarray(x).reshape(-1))
                              for x in order]
                if any(isinstance(obj[k], h5py.Dataset) and obj[k].dtype == h5py.ref_dtype
                       and "MATLAB_class" not in obj[k].attrs for k in fields if k in obj):
                    refs = {k: self._refs(obj[k]) for k in fields}
                    shape = next(iter(refs.values())).shape
                    return [{k: self.value(self._deref(refs[k][idx], obj[k]), depth) for k in fields}
                            for idx in _fortran_indices(shape)]
                return {k: self.value(obj[k], depth) for k in fields if k in obj}
            return {k: self.value(obj[k], depth) for k in obj.keys()}
        if int(obj.attrs.get("MATLAB_empty", 0)):    # MATLAB stores an empty array's dimensions as its data
            return "" if cls == "char" else [] if cls in ("cell", "struct") else np.zeros((0, 0))
        if cls == "cell" or cls == "FileWrapper__" or hdf5_class(obj) == "reference":
            refs = self._refs(obj)
            return [self.value(self._deref(refs[idx], obj), depth) for idx in _fortran_indices(refs.shape)]
        arr = read_numeric(obj, self.path, self.budget, complex_ok=True)
        if cls == "char":
            return "".join(chr(c) for c in np.asarray(arr).T.reshape(-1, order="F"))
        if arr.dtype.names and {"real", "imag"} <= set(arr.dtype.names):
            arr = arr["real"] + 1j * arr["imag"]
        arr = arr.T
        if cls == "logical":
            arr = arr.astype(bool)
        if int(obj.attrs.get("MATLAB_object_decode", 0)) == 3:
            return ("opaque", cls, arr)
        return arr

    def _refs(self, ds):
        """A cell's object references (transposed back to MATLAB's order), refused unless references."""
        from ...files.safety import hdf5_class
        kind = hdf5_class(ds)
        if kind != "reference":
            raise InputError(f"variable '{self.var}': cell '{ds.name}' holds {kind} values, expected object "
                             "references", path=self.path)
        self.budget.charge(int(ds.size or 0) * 8, ds)
        self.elements += int(ds.size or 0)
        if self.elements > MAX_ELEMENTS:
            raise InputError(f"variable '{self.var}': cells and struct arrays hold more than {MAX_ELEMENTS} "
                             f"elements together (at '{ds.name}'); no network has as many", path=self.path)
        return np.asarray(ds[()]).T


def _header() -> bytes:
    text = ("MATLAB 7.3 MAT-file, Platform: rnnconvert, Created on: "
            + time.strftime("%a %b %d %H:%M:%S %Y") + " HDF5 schema 1.00 .").encode()
    head = text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM"
    return head.ljust(512, b"\0")


def _fields_attr(names):
    import h5py
    vlen = h5py.vlen_dtype(np.dtype("S1"))
    out = np.empty(len(names), dtype=vlen)
    for k, n in enumerate(names):
        out[k] = np.array([c.encode() for c in n], dtype="S1")
    return out


def _put(f, parent, name, value, refs):
    import h5py
    if callable(value):          # an array made as it is written (writer.from_canonical(lazy=True))
        value = value()
    if isinstance(value, dict):
        g = parent.create_group(name)
        g.attrs["MATLAB_class"] = np.bytes_("struct")
        g.attrs["MATLAB_fields"] = _fields_attr(list(value))
        for k, v in value.items():
            _put(f, g, k, v, refs)
        return g
    if isinstance(value, (list, tuple)):
        ref_data = np.empty((1, len(value)), dtype=h5py.ref_dtype)     # MATLAB n x 1, transposed
        for k, v in enumerate(value):
            key = f"r{len(refs.keys())}"
            obj = _put(f, refs, key, v, refs)
            ref_data[0, k] = obj.ref
        d = parent.create_dataset(name, data=ref_data)
        d.attrs["MATLAB_class"] = np.bytes_("cell")
        return d
    if isinstance(value, str):
        data = np.array([[ord(c)] for c in value], dtype=np.uint16) if value else np.array([0, 0], np.uint64)
        d = parent.create_dataset(name, data=data)
        d.attrs["MATLAB_class"] = np.bytes_("char")
        if value:
            d.attrs["MATLAB_int_decode"] = np.int32(2)
        else:
            d.attrs["MATLAB_empty"] = np.uint8(1)
        return d
    a = np.asarray(value)
    if a.ndim < 2:
        a = a.reshape(1, -1) if a.ndim == 1 else a.reshape(1, 1)
    d = parent.create_dataset(name, data=np.ascontiguousarray(a.T.astype(np.uint8) if a.dtype == bool else a.T))
    d.attrs["MATLAB_class"] = np.bytes_(_CLASSES.get(a.dtype, "double"))
    return d


def write_v73(path, variables: dict) -> None:
    import h5py
    with h5py.File(str(path), "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for name, value in variables.items():
            _put(f, f, name, value, refs)
    with open(str(path), "r+b") as fh:
        fh.write(_header())
