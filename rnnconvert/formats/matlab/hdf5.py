"""MATLAB v7.3 (HDF5) writing for the `layers` cell of structs, and its conversion to v7 for Octave.

MATLAB's HDF5 layout: a 512-byte user block with the MAT header; each variable a dataset or group
with the attribute MATLAB_class; arrays stored transposed (HDF5 is row-major); char as uint16 with
MATLAB_int_decode 2; a cell a dataset of object references into `#refs#`; a scalar struct a group
with one member per field and MATLAB_fields listing them in order.
"""
from __future__ import annotations

import time

import numpy as np

_CLASSES = {np.dtype(np.float64): "double", np.dtype(np.float32): "single", np.dtype(np.uint8): "uint8",
            np.dtype(np.int32): "int32", np.dtype(np.int64): "int64", np.dtype(np.uint32): "uint32",
            np.dtype(bool): "logical"}


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


def v73_to_v7(src: str, dst: str, compress: bool = False) -> None:
    """Rewrite a v7.3 `layers` file as v7 (what Octave loads); uncompressed unless `compress`."""
    import scipy.io
    from . import mcos
    variables = mcos.load(src)
    out = {}
    for name, value in variables.items():
        out[name] = _to_scipy(value)
    scipy.io.savemat(dst, out, do_compression=compress, oned_as="column")


def _to_scipy(v):
    if isinstance(v, list):
        cell = np.empty((len(v), 1), dtype=object)
        for k, x in enumerate(v):
            cell[k, 0] = _to_scipy(x)
        return cell
    if isinstance(v, dict):
        return {k: _to_scipy(x) for k, x in v.items()}
    return v
