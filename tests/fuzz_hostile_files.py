"""Hostile files nested 10 to 100,000 deep (the `depth` class of tests/fuzz_hostile.py), and the
builders the other file classes share (fuzz_hostile_refs.py: DAGs, aliasing; fuzz_hostile_sizes.py).

Deep files are built in linear time from the inside out (prefixes, the innermost value, suffixes), so a
100,000-deep MATLAB cell or ONNX subgraph costs megabytes and milliseconds, not the quadratic copy of
nesting real objects.  Byte layouts: MAT v5 elements are (type, nbytes) tags padded to 8 bytes;
ONNX is protobuf (a GraphProto appended to a ModelProto's field 7 merges into its graph).
"""
from __future__ import annotations

import io
import shutil
import struct
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from fuzz_cases import _pick, _read, zip_with
from fuzz_hostile import HostileCase
from fuzz_inputs import _read_arch, _read_plan, _yaml_seeds
from fuzzing import FIXTURES

KERAS_H5 = FIXTURES / "keras3/lstm_last_softmax/model.h5"
KERAS_ZIP = FIXTURES / "keras3/lstm_last_softmax/model.keras"
ONNX_SEED = FIXTURES / "torch_onnx/lstm_last_linear/model.onnx"
TORCH_DIR = FIXTURES / "torch/gru_linear"


def _case(cls, i, label, make, read=None, huge=False):
    return HostileCase(cls, i, label, make, read or _read(), huge=huge)


def _with_yaml_seeds(d: Path, seeds: Path):
    for f in _yaml_seeds(seeds)["files"]:
        if not (d / f.name).exists():
            shutil.copyfile(f, d / f.name)


@lru_cache(maxsize=None)
def _rnnc_seed(seeds: Path) -> bytes:
    import rnnconvert
    p = seeds / "hostile_seed.rnnc"
    if not p.exists():
        rnnconvert.write(rnnconvert.read(KERAS_H5), p)
    return p.read_bytes()


# ------------------------------------------------------------------------------------ depth

def deep_json(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "list" else '{"a": ' * depth + "1" + "}" * depth


def _insert_json(text: str, deep: str) -> str:
    return '{"deep": ' + deep + ", " + text.lstrip()[1:]


def _v5_header() -> bytes:
    return b"MATLAB 5.0 MAT-file, Platform: fuzz".ljust(116, b" ") + b"\0" * 8 + b"\x00\x01IM"


def _el(mtype: int, data: bytes) -> bytes:
    return struct.pack("<II", mtype, len(data)) + data + b"\0" * (-len(data) % 8)


def _v5_head(cls: int, name: bytes = b"", dims=(1, 1)) -> bytes:
    """Array flags, dims and name of a miMATRIX (without its tag)."""
    return _el(6, struct.pack("<II", cls, 0)) + _el(5, struct.pack("<ii", *dims)) + _el(1, name)


def v5_nested(depth: int, kind: str, name: bytes = b"net") -> bytes:
    """A MAT v5 file whose variable is a cell (or struct with field 'a') nesting `depth` levels."""
    leaf = _el(14, _v5_head(6) + _el(9, struct.pack("<d", 1.0)))
    fields = b"" if kind == "cell" else _el(5, struct.pack("<i", 32)) + _el(1, b"a".ljust(32, b"\0"))
    cls = 1 if kind == "cell" else 2
    level, top = _v5_head(cls) + fields, _v5_head(cls, name) + fields
    prefixes, size = [], len(leaf)
    for k in range(depth):
        head = level if k < depth - 1 else top
        prefixes.append(struct.pack("<II", 14, len(head) + size) + head)
        size += len(prefixes[-1])
    return _v5_header() + b"".join(reversed(prefixes)) + leaf


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(tag: int, data: bytes) -> bytes:
    return _varint(tag << 3 | 2) + _varint(len(data)) + data


def onnx_nested(depth: int) -> bytes:
    """A GraphProto field (ModelProto field 7) adding one If node whose then_branch nests `depth` Ifs."""
    leaf_graph = _field(2, b"leaf") + _field(12, _field(1, b"y"))
    attr_head = _field(1, b"then_branch") + _varint(20 << 3) + _varint(5)
    else_attr = _field(5, _field(1, b"else_branch") + _varint(20 << 3) + _varint(5) + _field(6, leaf_graph))
    node_head = _field(1, b"cond") + _field(2, b"y") + _field(4, b"If")
    tail = _field(12, _field(1, b"y"))
    pre, suf, size = [], [], len(leaf_graph)
    for k in range(depth):
        attr_len = len(attr_head) + 1 + len(_varint(size)) + size
        node_len = len(node_head) + 1 + len(_varint(attr_len)) + attr_len + len(else_attr)
        g_tail = tail if k < depth - 1 else b""
        pre.append(b"\x0a" + _varint(node_len) + node_head + b"\x2a" + _varint(attr_len) + attr_head + b"\x32"
                   + _varint(size))
        suf.append(else_attr + g_tail)
        size = 1 + len(_varint(node_len)) + node_len + len(g_tail)
    return b"\x3a" + _varint(size) + b"".join(reversed(pre)) + leaf_graph + b"".join(suf)


def _h5_chain(group, depth: int, attrs: dict | None = None):
    for _ in range(depth):
        group = group.create_group("a")
        for k, v in (attrs or {}).items():
            group.attrs[k] = v


def _v73_file(path: Path, fill) -> None:
    import h5py
    with h5py.File(path, "w", userblock_size=512) as f:
        fill(f)
    with open(path, "r+b") as fh:           # MATLAB's header, without the date (the case stays the same bytes)
        fh.write(b"MATLAB 7.3 MAT-file, Platform: fuzz, HDF5 schema 1.00 .".ljust(116, b" ") + b"\0" * 8
                 + b"\x00\x02IM")


DEPTH_FORMATS = ("safetensors", "rnnc", "keras_h5", "keras_zip", "arch_yaml", "batch_plan", "matlab_v5_cell",
                 "matlab_v5_struct", "matlab_v73_groups", "keras_h5_groups", "onnx_subgraph")
DEPTHS = (10, 1000, 10000, 100000)
HDF5_DEPTHS = (10, 100, 1000, 3000)       # a group per level: 3000 takes a second to write


def depth_gen(rng, i, seeds):
    fmt = DEPTH_FORMATS[i % len(DEPTH_FORMATS)]
    step = i // len(DEPTH_FORMATS) % len(DEPTHS)
    depth = (HDF5_DEPTHS if "groups" in fmt else DEPTHS)[step]
    kind = _pick(rng, ["list", "dict"])
    label = f"{fmt} depth {depth} {kind if fmt in DEPTH_FORMATS[:6] else ''}".rstrip()
    deep = deep_json(depth, kind)

    def make(d):
        if fmt == "safetensors":
            data = (TORCH_DIR / "model.safetensors").read_bytes()
            n = struct.unpack("<Q", data[:8])[0]
            head = _insert_json(data[8:8 + n].decode(), deep).encode()
            (d / "model.safetensors").write_bytes(struct.pack("<Q", len(head)) + head + data[8 + n:])
            return d / "model.safetensors"
        if fmt == "rnnc":
            z = zipfile.ZipFile(io.BytesIO(_rnnc_seed(seeds)))
            members = [(m, z.read(m)) for m in z.namelist()]
            members = [(m, _insert_json(b.decode(), deep).encode() if m == "model.json" else b) for m, b in members]
            (d / "model.rnnc").write_bytes(zip_with(members))
            return d / "model.rnnc"
        if fmt in ("keras_h5", "keras_h5_groups"):
            import h5py
            shutil.copyfile(KERAS_H5, d / "model.h5")
            with h5py.File(d / "model.h5", "r+") as f:
                if fmt == "keras_h5":
                    f.attrs["model_config"] = _insert_json(f.attrs["model_config"], deep)
                else:
                    _h5_chain(f["model_weights"], depth)
            return d / "model.h5"
        if fmt == "keras_zip":
            z = zipfile.ZipFile(KERAS_ZIP)
            members = [(m, z.read(m)) for m in z.namelist()]
            members = [(m, _insert_json(b.decode(), deep).encode() if m == "config.json" else b) for m, b in members]
            (d / "model.keras").write_bytes(zip_with(members))
            return d / "model.keras"
        if fmt in ("arch_yaml", "batch_plan"):
            _with_yaml_seeds(d, seeds)
            flow = "[" * depth + "]" * depth if kind == "list" else "{a: " * depth + "1" + "}" * depth
            if fmt == "arch_yaml":
                (d / "arch.yaml").write_text(f"head: last_step\nignore: {flow}\n")
                return d / "arch.yaml"
            (d / "plan.yaml").write_text(f"jobs:\n- src: model.pt\n  dst: out.onnx\n  arch: {{head: last_step, "
                                         f"ignore: {flow}}}\n")
            return d / "plan.yaml"
        if fmt.startswith("matlab_v5"):
            (d / "net.mat").write_bytes(v5_nested(depth, fmt.rsplit("_", 1)[1]))
            return d / "net.mat"
        if fmt == "matlab_v73_groups":
            _v73_file(d / "net.mat", lambda f: _h5_chain(f, depth, {"MATLAB_class": np.bytes_(b"struct")}))
            return d / "net.mat"
        (d / "model.onnx").write_bytes(ONNX_SEED.read_bytes() + onnx_nested(depth))
        return d / "model.onnx"
    read = {"arch_yaml": _read_arch, "batch_plan": _read_plan}.get(fmt)
    return _case("depth", i, label, make, read)


GENERATORS = {"depth": depth_gen}     # dag, alias: fuzz_hostile_refs.py; sizes: fuzz_hostile_sizes.py
