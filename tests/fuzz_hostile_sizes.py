"""Hostile files whose declared sizes are far beyond the bytes they hold (the `sizes` class of
tests/fuzz_hostile.py): several chunked HDF5 datasets declared at 512 MiB with nothing written,
--inputs .npy/.npz whose header or deflated member declares hundreds of MiB, a MAT v5 miCOMPRESSED
element inflating to 256 MiB, and ONNX dims that are huge, overflow int64 products or are negative.
Bombs are deflated in 1 MiB blocks (cached per process), so making them never holds what they declare.
"""
from __future__ import annotations

import io
import shutil
import struct
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from fuzz_hostile_files import KERAS_H5, ONNX_SEED, _case, _v5_head, _v5_header

BOMB_MIB = 256


@lru_cache(maxsize=None)
def _deflated_zeros(head: bytes, mib: int) -> bytes:
    z = zlib.compressobj(9)
    out = [z.compress(head)]
    block = bytes(1 << 20)
    out += [z.compress(block) for _ in range(mib)]
    return b"".join(out) + z.flush()


def v5_compressed_bomb(mib: int = BOMB_MIB) -> bytes:
    """A MAT v5 file: one miCOMPRESSED element inflating to a double matrix W of `mib` MiB of zeros."""
    rows = (mib << 20) // 8 // 1024
    head = _v5_head(6, b"W", (rows, 1024))
    nbytes = rows * 1024 * 8
    matrix_head = struct.pack("<II", 14, len(head) + 8 + nbytes) + head + struct.pack("<II", 9, nbytes)
    body = _deflated_zeros(matrix_head, mib)
    return _v5_header() + struct.pack("<II", 15, len(body)) + body


@lru_cache(maxsize=None)
def npz_bomb(mib: int = BOMB_MIB) -> bytes:
    """An .npz whose member x.npy is a deflated float32 [2, mib*2**16, 4] array of zeros."""
    buf = io.BytesIO()
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False,
                                               "shape": (2, mib << 15, 4)})
    info = zipfile.ZipInfo("x.npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open(info, "w", force_zip64=True) as w:
            w.write(head.getvalue())
            block = bytes(1 << 20)
            for _ in range(mib):
                w.write(block)
    return buf.getvalue()


def _npy_declared(shape) -> bytes:
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(head, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return head.getvalue() + bytes(64)


def _h5_declared(d: Path, extra: int, mode: str) -> Path:
    """The Keras .h5 with `extra` datasets of 512 MiB declared, chunked, unwritten: added to a layer's
    weight_names (mode "listed"), or replacing each weight and growing its first axis ("replace")."""
    import h5py
    out = d / "model.h5"
    shutil.copyfile(KERAS_H5, out)
    with h5py.File(out, "r+") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        if mode == "replace":
            for n in names:
                shape = f[n].shape
                del f[n]
                big = ((512 << 20) // 4 // max(1, int(np.prod(shape[1:]))),) + tuple(shape[1:])
                f.create_dataset(n, shape=big, dtype="f4", chunks=tuple(min(s, 64) for s in big) or None)
        else:
            group = f[names[0]].parent
            listed = list(group.attrs.get("weight_names", []))
            for k in range(extra):
                name = f"extra_{k}"
                group.create_dataset(name, shape=(1 << 13, 1 << 14), dtype="f4", chunks=(64, 64))
                listed.append(f"{group.name.split('/', 2)[-1]}/{name}".encode())
            if "weight_names" in group.attrs:
                group.attrs["weight_names"] = np.array(listed)
            else:
                f.attrs["extra_weights"] = np.array(listed)
    return out


def _onnx_dims(d: Path, how: str) -> Path:
    import onnx
    m = onnx.load(str(ONNX_SEED))
    g = m.graph
    inits = [t for t in g.initializer if len(t.dims) >= 2]
    for t in inits:
        if how == "huge-all":
            t.dims[:] = [1, 1 << 20, 1 << 12]
        elif how == "overflow":
            t.dims[:] = [1 << 32, 1 << 32, 1 << 2]
        elif how == "zero-axis":
            t.dims[:] = [10 ** 18, 0] + list(t.dims[2:])
            t.ClearField("raw_data")
            t.ClearField("float_data")
        elif how == "negative":
            t.dims[0] = -1
    if how == "input-dims":
        for dim in g.input[0].type.tensor_type.shape.dim:
            dim.ClearField("dim_param")
            dim.dim_value = 1 << 40
    (d / "model.onnx").write_bytes(m.SerializeToString())
    return d / "model.onnx"


def _cli_inputs(path: Path):
    """convert the seed to .rnnc with --inputs `path`, in-process (the CLI loads --inputs itself)."""
    from click.testing import CliRunner

    from rnnconvert.cli import cli
    from rnnconvert.errors import InputError
    res = CliRunner().invoke(cli, ["convert", str(KERAS_H5), str(path.parent / "out.rnnc"), "--force",
                                   "--inputs", str(path)])
    err = res.stderr if hasattr(res, "stderr") else res.output
    if res.exit_code == 2 and err.startswith("rnnconvert: error: ") and err.count("\n") == 1:
        raise InputError(err.strip()[len("rnnconvert: error: "):])
    if res.exit_code != 0:
        raise RuntimeError(f"CLI exit {res.exit_code}: {err[:300]!r}")


def sizes_gen(rng, i, seeds):
    kind = ("h5_chunked", "inputs_npz", "inputs_npy", "matlab_v5_compressed", "onnx_dims", "h5_chunked")[i % 6]
    step = i // 6 % 4
    if kind == "h5_chunked":
        mode = "listed" if i % 12 == 0 else "replace"
        extra = (2, 4, 6, 8)[step]
        label = f"{kind} {mode}" + (f" {extra} x 512 MiB" if mode == "listed" else " every weight 512 MiB")
        return _case("sizes", i, label, lambda d: _h5_declared(d, extra, mode), huge=True)
    if kind == "inputs_npz":
        mib = (64, 128, 256, 256)[step]

        def make(d):
            (d / "x.npz").write_bytes(npz_bomb(mib))
            return d / "x.npz"
        return _case("sizes", i, f"{kind} deflated member {mib} MiB", make, _cli_inputs, huge=True)
    if kind == "inputs_npy":
        shape = ((1 << 20, 1 << 10, 4), (2, 1 << 28, 4), (10 ** 30, 0, 4), (1 << 40, 1, 4))[step]

        def make(d):
            (d / "x.npy").write_bytes(_npy_declared(shape))
            return d / "x.npy"
        return _case("sizes", i, f"{kind} declared {shape}", make, _cli_inputs, huge=True)
    if kind == "matlab_v5_compressed":
        mib = (16, 64, 256, 256)[step]

        def make(d):
            (d / "net.mat").write_bytes(v5_compressed_bomb(mib))
            return d / "net.mat"
        return _case("sizes", i, f"{kind} inflates to {mib} MiB", make, huge=True)
    how = ("huge-all", "overflow", "zero-axis", "negative", "input-dims")[int(rng.integers(5))] if step == 3 else \
        ("huge-all", "overflow", "zero-axis")[step]
    return _case("sizes", i, f"{kind} {how}", lambda d: _onnx_dims(d, how), huge=True)


GENERATORS = {"sizes": sizes_gen}
