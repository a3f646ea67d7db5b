"""Hostile HDF5 and MATLAB files, made by hand: each builder writes one file into a folder and returns
its path.  `python -m tests.hostile_hdf5 DIR` writes them all.

- Declared-size bombs: a 1 MiB Keras .h5 (and the same in a .keras, and a weights-only .h5) whose
  weights are six unwritten 1 GiB chunked datasets, each under the old per-dataset budget; a .h5 that
  lists one such dataset six times in weight_names (materialised six times).
- MATLAB v7.3 cell references (#refs#) forming a DAG 24 levels deep (2**24 paths), a cycle, and a
  chain 5,000 deep; HDF5 groups nested 10,000 deep (a .mat struct, a Keras .h5).
- MATLAB v5 cells and structs nested 10,000 deep (written byte by byte: savemat recurses too), and a
  miCOMPRESSED element inflating about 1000:1 to 3 GiB; dimensions that are negative or absurd.
- Every odd HDF5 datatype (compound, opaque, string, variable-length, reference, enum, bitfield,
  array) where a weight is expected, in .h5, .keras and MATLAB v7.3; absurd HDF5 shapes.
"""
from __future__ import annotations

import shutil
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
H5 = FIXTURES / "tfkeras2" / "lstm_last_softmax" / "model.h5"
KERAS = FIXTURES / "keras3" / "lstm_last_softmax" / "model.keras"
KERNEL = "model_weights/lstm/lstm/lstm_cell/kernel:0"
KERAS_KERNEL = "layers/lstm/cell/vars/0"
GIB_SHAPE = (1 << 14, 1 << 14)        # float32: 1 GiB
PAD = 1 << 20                          # incompressible bytes that make the file 1 MiB


def _pad(f):
    f.create_dataset("padding", data=np.random.default_rng(0).integers(0, 256, PAD, dtype=np.uint8))


def _gib(group, name):
    if name in group:
        del group[name]
    group.create_dataset(name, shape=GIB_SHAPE, dtype="f4", chunks=(256, 256))


# ------------------------------------------------------------------------------ declared sizes

def h5_six_gib(d: Path) -> Path:
    """A Keras .h5 whose lstm layer lists six unwritten 1 GiB datasets (each under 1100 x 1 MiB)."""
    path = d / "six_gib.h5"
    shutil.copyfile(H5, path)
    with h5py.File(path, "r+") as f:
        g = f["model_weights/lstm"]
        names = [f"lstm/lstm_cell/w{k}:0" for k in range(6)]
        for n in names:
            _gib(g, n)
        g.attrs["weight_names"] = np.array([n.encode() for n in names])
        _pad(f)
    return path


def h5_listed_six_times(d: Path) -> Path:
    """A Keras .h5 listing one 512 MiB dataset of zeros (gzip: 0.5 MiB stored) six times in weight_names:
    each read is within the file's budget, the six are 3 GiB."""
    path = d / "listed_six_times.h5"
    shutil.copyfile(H5, path)
    with h5py.File(path, "r+") as f:
        del f[KERNEL]
        ds = f.create_dataset(KERNEL, shape=(1 << 13, 1 << 14), dtype="f4", chunks=(512, 1 << 14),
                              compression="gzip", compression_opts=9)
        block = np.zeros((512, 1 << 14), np.float32)
        for i in range(0, 1 << 13, 512):
            ds[i:i + 512] = block
        f["model_weights/lstm"].attrs["weight_names"] = np.array([b"lstm/lstm_cell/kernel:0"] * 6)
    return path


def h5_unwritten_gib(d: Path) -> Path:
    """One unwritten 1 GiB chunked kernel beside 1 MiB of data: under the file's budget, stores nothing."""
    path = d / "unwritten_gib.h5"
    shutil.copyfile(H5, path)
    with h5py.File(path, "r+") as f:
        _gib(f, KERNEL)
        _pad(f)
    return path


def h5_many_small(d: Path, count: int = 3000) -> Path:
    """A Keras .h5 whose lstm layer lists 3,000 unwritten 1 MiB datasets: each under the slack a small
    dataset is allowed, 3 GiB together."""
    path = d / "many_small.h5"
    shutil.copyfile(H5, path)
    with h5py.File(path, "r+") as f:
        g = f["model_weights/lstm"]
        names = [f"lstm/lstm_cell/w{k}:0" for k in range(count)]
        for n in names:
            g.create_dataset(n, shape=(256, 1024), dtype="f4", chunks=(256, 1024))
        del g.attrs["weight_names"]
        for k in range(0, count, 1000):            # Keras splits a long list the same way
            g.attrs[f"weight_names{k // 1000}"] = np.array([n.encode() for n in names[k:k + 1000]])
    return path


def _keras_with(d: Path, name: str, edit) -> Path:
    src = zipfile.ZipFile(KERAS)
    inner = d / (name + ".weights.h5")
    inner.write_bytes(src.read("model.weights.h5"))
    with h5py.File(inner, "r+") as f:
        edit(f)
    path = d / (name + ".keras")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for n in src.namelist():
            z.writestr(n, inner.read_bytes() if n == "model.weights.h5" else src.read(n))
    inner.unlink()
    return path


def keras_six_gib(d: Path) -> Path:
    """The same inside a .keras: six unwritten 1 GiB vars under layers/lstm/cell."""
    def edit(f):
        g = f["layers/lstm/cell/vars"]
        for k in range(6):
            _gib(g, str(k))
        _pad(f)
    return _keras_with(d, "six_gib", edit)


def weights_only_six_gib(d: Path) -> Path:
    """A Keras 3 weights-only file (model.weights.h5 alone) with the six 1 GiB vars."""
    path = d / "six_gib.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        g = f.create_group("layers/lstm/cell/vars")
        for k in range(6):
            _gib(g, str(k))
        _pad(f)
    return path


# --------------------------------------------------------------------------- odd dtypes, shapes

def _odd(kind: str):
    """(create(group, name)) making a small dataset of HDF5 class `kind`."""
    def make(g, name):
        shape = g[name].shape if name in g else (4, 20)
        if name in g:
            del g[name]
        if kind == "compound":
            g.create_dataset(name, data=np.zeros(shape, dtype=[("a", "f4"), ("b", "i4")]))
        elif kind == "opaque":
            g.create_dataset(name, data=np.zeros(shape, dtype="V4"))
        elif kind == "string":
            g.create_dataset(name, data=np.full(shape, b"abc", dtype="S3"))
        elif kind == "vlen string":
            g.create_dataset(name, data=np.full(shape, "abc", dtype=object), dtype=h5py.string_dtype())
        elif kind == "vlen":
            ds = g.create_dataset(name, shape=shape, dtype=h5py.vlen_dtype(np.float32))
            for idx in np.ndindex(*shape):
                ds[idx] = np.ones(3, np.float32)
        elif kind == "reference":
            ds = g.create_dataset(name, shape=shape, dtype=h5py.ref_dtype)
            ds[0, 0] = g.ref
        elif kind == "enum":
            g.create_dataset(name, data=np.zeros(shape, np.int8),
                             dtype=h5py.enum_dtype({"a": 0, "b": 1}, basetype="i1"))
        elif kind in ("bitfield", "array"):
            t = h5py.h5t.STD_B32LE if kind == "bitfield" else h5py.h5t.array_create(h5py.h5t.IEEE_F32LE, (2,))
            h5py.h5d.create(g.id, name.encode(), t, h5py.h5s.create_simple(shape))
        else:
            raise ValueError(kind)
    return make


ODD_KINDS = ("compound", "opaque", "string", "vlen string", "vlen", "reference", "enum", "bitfield", "array")


def h5_odd_kernel(d: Path, kind: str) -> Path:
    path = d / f"odd_{kind.replace(' ', '_')}.h5"
    shutil.copyfile(H5, path)
    with h5py.File(path, "r+") as f:
        _odd(kind)(f, KERNEL)
    return path


def keras_odd_kernel(d: Path, kind: str) -> Path:
    return _keras_with(d, f"odd_{kind.replace(' ', '_')}", lambda f: _odd(kind)(f, KERAS_KERNEL))


def h5_absurd_shape(d: Path, shape=(1 << 62, 0)) -> Path:
    """A kernel whose shape has an axis no weight has, holding no bytes at all."""
    path = d / f"shape_{'x'.join(map(str, shape))}.h5"
    shutil.copyfile(H5, path)
    with h5py.File(path, "r+") as f:
        del f[KERNEL]
        f.create_dataset(KERNEL, shape=shape, dtype="f4", chunks=None if 0 in shape else (1,) * len(shape))
    return path


# ------------------------------------------------------------------------------- MATLAB v7.3

def _mat73_header() -> bytes:
    text = b"MATLAB 7.3 MAT-file, Platform: hostile, Created on: Sun Dec  6 00:00:00 2026 HDF5 schema 1.00 ."
    return (text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM").ljust(512, b"\0")


def _mat73(path: Path, build) -> Path:
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        build(f, refs)
    with open(path, "r+b") as fh:
        fh.write(_mat73_header())
    return path


def _cell(parent, name, targets):
    ds = parent.create_dataset(name, shape=(1, len(targets)), dtype=h5py.ref_dtype)
    for k, t in enumerate(targets):
        ds[0, k] = t.ref
    ds.attrs["MATLAB_class"] = np.bytes_("cell")
    return ds


def mat73_dag(d: Path, levels: int = 24) -> Path:
    """`net` a cell whose two entries are the same cell, 24 levels down: 2**24 paths to one leaf."""
    def build(f, refs):
        leaf = refs.create_dataset("leaf", data=np.ones((1, 1)))
        leaf.attrs["MATLAB_class"] = np.bytes_("double")
        below = leaf
        for k in range(levels, 0, -1):
            below = _cell(refs, f"a{k}", [below, below])
        _cell(f, "net", [below, below])
    return _mat73(d / "dag.mat", build)


def mat73_cycle(d: Path) -> Path:
    """`net` a cell holding a cell that holds itself."""
    def build(f, refs):
        ds = refs.create_dataset("c0", shape=(1, 1), dtype=h5py.ref_dtype)
        ds.attrs["MATLAB_class"] = np.bytes_("cell")
        ds[0, 0] = ds.ref
        _cell(f, "net", [ds])
    return _mat73(d / "cycle.mat", build)


def mat73_chain(d: Path, depth: int = 5000) -> Path:
    """`net` a cell of a cell of ... 5,000 deep (no sharing): a recursion bomb, not a DAG."""
    def build(f, refs):
        below = refs.create_dataset("leaf", data=np.ones((1, 1)))
        below.attrs["MATLAB_class"] = np.bytes_("double")
        for k in range(depth):
            below = _cell(refs, f"c{k}", [below])
        _cell(f, "net", [below])
    return _mat73(d / "chain.mat", build)


def mat73_wide_cell(d: Path, count: int = 1_200_000) -> Path:
    """`net` one cell of 1.2 million references to one leaf (gzip: 40 KiB): each element a Python object."""
    def build(f, refs):
        leaf = refs.create_dataset("leaf", data=np.ones((1, 1)))
        leaf.attrs["MATLAB_class"] = np.bytes_("double")
        ds = f.create_dataset("net", shape=(1, count), dtype=h5py.ref_dtype, chunks=(1, 1 << 16), compression="gzip")
        ds[0, :] = np.array([leaf.ref] * count, dtype=h5py.ref_dtype)
        ds.attrs["MATLAB_class"] = np.bytes_("cell")
    return _mat73(d / "wide_cell_v73.mat", build)


def _nest(group, depth: int):
    for _ in range(depth):
        group = group.create_group("a")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
    return group


def mat73_deep_groups(d: Path, depth: int = 10_000) -> Path:
    """`net` a struct of a struct of ... 10,000 groups deep (each name in HDF5's walk is the whole path)."""
    def build(f, refs):
        net = f.create_group("net")
        net.attrs["MATLAB_class"] = np.bytes_("struct")
        _nest(net, depth - 1).create_dataset("x", data=np.ones((1, 1)))
    return _mat73(d / "groups_10000.mat", build)


def h5_deep_groups(d: Path, depth: int = 10_000) -> Path:
    """A Keras .h5 with 10,000 nested groups under model_weights."""
    path = d / "groups_10000.h5"
    shutil.copyfile(H5, path)
    with h5py.File(path, "r+") as f:
        _nest(f["model_weights"], depth).create_dataset("x", data=np.ones(1))
    return path


def mat73_odd_weights(d: Path, kind: str) -> Path:
    """rnnconvert's own v7.3 `layers` file with InputWeights of an odd HDF5 class."""
    import rnnconvert
    from rnnconvert.formats import matlab
    path = d / f"odd_{kind.replace(' ', '_')}.mat"
    matlab.write(rnnconvert.read(H5), path, version="7.3")
    with h5py.File(path, "r+") as f:
        found = []
        f.visititems(lambda n, o: found.append(n) if n.endswith("/InputWeights") else None)
        parent, name = found[0].rsplit("/", 1)
        _odd(kind)(f[parent], name)
        f[parent][name].attrs["MATLAB_class"] = np.bytes_("single")
    return path


# --------------------------------------------------------------------------------- MATLAB v5

MI_INT8, MI_INT32, MI_UINT32, MI_DOUBLE, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 9, 14, 15
CELL, STRUCT, DOUBLE = 1, 2, 6


def _element(kind: int, data: bytes) -> bytes:
    return struct.pack("<II", kind, len(data)) + data + b"\0" * (-len(data) % 8)


def _matrix(cls: int, dims, name: bytes, body: bytes) -> bytes:
    flags = _element(MI_UINT32, struct.pack("<II", cls, 0))
    dims_el = _element(MI_INT32, struct.pack(f"<{len(dims)}i", *dims))
    return _element(MI_MATRIX, flags + dims_el + _element(MI_INT8, name) + body)


def _v5(path: Path, elements: bytes) -> Path:
    head = b"MATLAB 5.0 MAT-file, Platform: hostile, Created on: Sun Dec  6 00:00:00 2026".ljust(116, b" ")
    path.write_bytes(head + b"\0" * 8 + b"\x00\x01" + b"IM" + elements)
    return path


def _double(name=b"", value=1.0) -> bytes:
    return _matrix(DOUBLE, (1, 1), name, _element(MI_DOUBLE, struct.pack("<d", value)))


def v5_nested_cells(d: Path, depth: int = 10_000) -> Path:
    inner = _double()
    for k in range(depth):
        inner = _matrix(CELL, (1, 1), b"net" if k == depth - 1 else b"", inner)
    return _v5(d / "cells_10000.mat", inner)


def v5_nested_structs(d: Path, depth: int = 10_000) -> Path:
    field = b"a".ljust(32, b"\0")
    inner = _double()
    for k in range(depth):
        body = struct.pack("<HHi", MI_INT32, 4, 32) + _element(MI_INT8, field) + inner
        inner = _matrix(STRUCT, (1, 1), b"net" if k == depth - 1 else b"", body)
    return _v5(d / "structs_10000.mat", inner)


def v5_wide_cell(d: Path, count: int = 200_000) -> Path:
    """`net` a compressed cell of 200,000 empty arrays (12 MiB inflated) behind 1 MiB of incompressible
    data, so it inflates within 100 times the file: each element costs scipy a Python object."""
    empty = _matrix(DOUBLE, (0, 0), b"", _element(MI_DOUBLE, b""))
    flags = _element(MI_UINT32, struct.pack("<II", CELL, 0))
    body = flags + _element(MI_INT32, struct.pack("<2i", count, 1)) + _element(MI_INT8, b"net")
    head = struct.pack("<II", MI_MATRIX, len(body) + count * len(empty)) + body
    z = zlib.compressobj(9)
    data = z.compress(head) + z.compress(empty * count) + z.flush()
    pad = _matrix(8, (PAD, 1), b"pad", _element(2, np.random.default_rng(1).integers(0, 256, PAD, np.uint8).tobytes()))
    return _v5(d / "wide_cell.mat", pad + _element(MI_COMPRESSED, data))


def v5_arrays_without_data(d: Path, count: int = 1000) -> Path:
    """`net` a cell of 1,000 empty double arrays that lack their data element: scipy read on into the
    next array for each and crashed the process (SIGSEGV)."""
    empty = _matrix(DOUBLE, (0, 0), b"", b"")
    body = _element(MI_UINT32, struct.pack("<II", CELL, 0)) + _element(MI_INT32, struct.pack("<2i", count, 1))
    body += _element(MI_INT8, b"net")
    return _v5(d / "no_data.mat", struct.pack("<II", MI_MATRIX, len(body) + count * len(empty)) + body + empty * count)


def v5_compressed_bomb(d: Path, gib: int = 3) -> Path:
    """One miCOMPRESSED element inflating to a [N, 1] double array of `gib` GiB of zeros (about 1000:1)."""
    n = (gib << 30) // 8
    # the matrix header with its real part's tag, then the zeros streamed through the compressor
    flags = _element(MI_UINT32, struct.pack("<II", DOUBLE, 0))
    dims_el = _element(MI_INT32, struct.pack("<2i", n, 1))
    name = _element(MI_INT8, b"net")
    body_len = len(flags) + len(dims_el) + len(name) + 8 + n * 8
    head = struct.pack("<II", MI_MATRIX, body_len) + flags + dims_el + name + struct.pack("<II", MI_DOUBLE, n * 8)
    z = zlib.compressobj(9)
    out = [z.compress(head)]
    block = bytes(64 << 20)
    for _ in range((n * 8) // len(block)):
        out.append(z.compress(block))
    out.append(z.flush())
    data = b"".join(out)
    return _v5(d / f"compressed_{gib}gib.mat", _element(MI_COMPRESSED, data))


def v5_dims(d: Path, cls: str, dims) -> Path:
    """A v5 variable `net` with the given dimensions and (almost) no data: a cell or a double."""
    tag = "neg" if min(dims) < 0 else "x".join(map(str, dims))
    body = _double() if cls == "cell" else _element(MI_DOUBLE, struct.pack("<d", 1.0))
    return _v5(d / f"dims_{cls}_{tag}.mat", _matrix(CELL if cls == "cell" else DOUBLE, dims, b"net", body))


V5_DIMS = (("cell", (-1, 1)), ("double", (-5, 2)), ("cell", ((1 << 31) - 1, (1 << 31) - 1)),
           ("double", ((1 << 31) - 1, 1 << 10)))


# ---------------------------------------------------------------------------------- all of them

def builders():
    """(label, builder(dir) -> path) of every hostile file."""
    out = [("h5_six_gib", h5_six_gib), ("h5_listed_six_times", h5_listed_six_times),
           ("h5_unwritten_gib", h5_unwritten_gib), ("h5_many_small", h5_many_small),
           ("keras_six_gib", keras_six_gib), ("weights_only_six_gib", weights_only_six_gib),
           ("mat73_dag", mat73_dag), ("mat73_cycle", mat73_cycle), ("mat73_chain", mat73_chain),
           ("mat73_deep_groups", mat73_deep_groups), ("h5_deep_groups", h5_deep_groups),
           ("v5_nested_cells", v5_nested_cells), ("v5_nested_structs", v5_nested_structs),
           ("v5_compressed_bomb", v5_compressed_bomb), ("v5_wide_cell", v5_wide_cell),
           ("v5_arrays_without_data", v5_arrays_without_data),
           ("mat73_wide_cell", mat73_wide_cell),
           ("h5_shape_2**62x0", h5_absurd_shape),
           ("h5_shape_2**40", lambda d: h5_absurd_shape(d, (1 << 40, 1)))]
    for kind in ODD_KINDS:
        out += [(f"h5_{kind}", lambda d, k=kind: h5_odd_kernel(d, k)),
                (f"keras_{kind}", lambda d, k=kind: keras_odd_kernel(d, k)),
                (f"mat73_{kind}", lambda d, k=kind: mat73_odd_weights(d, k))]
    for cls, dims in V5_DIMS:
        out.append((f"v5_{cls}_{dims}", lambda d, c=cls, s=dims: v5_dims(d, c, s)))
    return out


def main(argv) -> None:
    d = Path(argv[1] if len(argv) > 1 else "hostile_hdf5")
    d.mkdir(parents=True, exist_ok=True)
    for label, make in builders():
        print(label, make(d))


if __name__ == "__main__":
    main(sys.argv)


def h5_vlen_length_lie(d: Path, attribute: str = "keras_version") -> Path:
    """A Keras 3 .h5 whose root attribute `attribute` (a variable-length string) declares 2**32 - 1 bytes in its
    on-disk descriptor: libhdf5 allocates that before it reads the heap object (the fuzz suite: 4 GiB)."""
    src = ROOT / "fixtures" / "keras3" / "stacked_lstm_dense" / "model.h5"
    with h5py.File(src, "r") as f:
        value = f.attrs[attribute]
        addr = h5py.h5o.get_info(f.id).addr
    data = bytearray(src.read_bytes())
    name = attribute.encode() + b"\0"
    at = data.index(name, addr)              # the attribute message, in the root group's object header
    length = len(value.encode() if isinstance(value, str) else value)
    descriptor = data.index(struct.pack("<I", length), at)   # its value: length, heap address, object index
    data[descriptor:descriptor + 4] = struct.pack("<I", (1 << 32) - 1)
    path = d / "model.h5"
    path.write_bytes(bytes(data))
    return path


def mat73_fields_length_lie(d: Path) -> Path:
    """`net` a struct whose MATLAB_fields (variable-length sequences of characters, as MATLAB writes them)
    declares 2**31 - 1 characters for its first field name: the user block moves every address by 512."""
    vlen = h5py.vlen_dtype(np.dtype("S1"))

    def build(f, refs):
        net = f.create_group("net")
        net.attrs["MATLAB_class"] = np.bytes_("struct")
        names = np.empty(2, dtype=object)
        names[0], names[1] = np.array(list(b"Layers"), dtype="S1"), np.array(list(b"Name"), dtype="S1")
        net.attrs.create("MATLAB_fields", names, dtype=vlen)
    path = _mat73(d / "fields.mat", build)
    data = bytearray(path.read_bytes())
    with h5py.File(path, "r") as f:
        header = 512 + h5py.h5o.get_info(f["net"].id).addr
    at = data.index(b"MATLAB_fields\0", header)
    descriptor = data.index(struct.pack("<I", 6), at)        # the first name's length, 6 ('Layers')
    data[descriptor:descriptor + 4] = struct.pack("<I", (1 << 31) - 1)
    path.write_bytes(bytes(data))
    return path
