"""Fuzz case generators, one per reader: seed files (committed fixtures, or files written here by
mat-io, torch and rnnconvert's writers) and format-aware mutations on top of `fuzzing.mutate_bytes`.

`cases(fmt, n, seeds_dir)` returns n deterministic cases (numpy Generator seeded by format and index).
"""
from __future__ import annotations

import io
import json
import shutil
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from fuzzing import FIXTURES, Case, mutate_bytes, mutate_tree, structured_random

SEED = 20261123
FORMATS = ("keras_h5", "keras_zip", "onnx", "torch_pt", "safetensors", "matlab_v5", "matlab_v73", "rnnc",
           "arch_yaml", "mapping_yaml", "batch_plan", "tfjs")
H5_SEEDS = ["tfkeras2/lstm_last_softmax/model.h5", "tfkeras2/bigru_ave_last/model.h5",
            "tfkeras2/gru_reset_before_last/model.h5", "keras3/stacked_lstm_dense/model.h5",
            # functional models with state ports (initial_state inputs, return_state outputs)
            "tfkeras2/states/bilstm_seq/model.h5", "keras3/states/rnn_gru_two_layers/model.h5"]
ZIP_SEEDS = ["keras3/lstm_last_softmax/model.keras", "keras3/bigru_sum_seq/model.keras",
             "keras3/gru_reset_after_seq/model.keras", "keras3/states/bilstm_seq/model.keras",
             "keras3/states/gru_backwards_last/model.keras"]
ONNX_SEEDS = ["torch_onnx/lstm_last_linear/model.onnx", "torch_onnx/gru_2layer_bidir_seq/model.onnx",
              "tf2onnx/gru_dense/model.onnx", "torch_onnx/lstm_initial_state_const/model.onnx",
              # graphs the reader lifts or folds: a masked Loop, a Loop stopped by lengths (read per layer),
              # a plain tf2onnx Loop, a time window, a Dense on a sequence
              "tf2onnx_mask/masking_gru_reset_before_seq/model.onnx", "torch_lengths/gru_lengths_seq/model.onnx",
              "tf2onnx_loop/gru_reset_before_seq/model.onnx", "torch_window/rnn_steps_2_6/model.onnx",
              "tf2onnx_dense_seq/bilstm_seq_dense_seq/model.onnx",
              # state ports: a bidirectional layer's stacked initial_h / Y_h, two layers' rows
              "torch_onnx/states/gru_bidir/model.onnx", "torch_onnx/states/lstm_2layer/model.onnx"]
TORCH_SEEDS = ["torch/gru_linear", "torch/lstm_2layer_bidir_linear", "torch/lstm_proj_linear",
               "torch/rnn_relu_linear"]


def _read(**options):
    def read(path):
        import rnnconvert
        return rnnconvert.read(path, **options)
    return read


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _writer(name, data: bytes):
    def make(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name
    return make


# ------------------------------------------------------------------------------------ HDF5

def _datasets(f):
    import h5py
    out = []
    f.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
    return out


def mutate_h5(path: Path, rng, config_attr: str | None = "model_config") -> str:
    """One structural edit of an HDF5 file in place; returns its label."""
    import h5py
    d = path.parent
    with h5py.File(path, "r+") as f:
        names = _datasets(f) or ["nothing"]
        name = _pick(rng, names)
        ds = f.get(name)
        op = int(rng.integers(12))
        if op == 0 and config_attr and config_attr in f.attrs:
            cfg = json.loads(f.attrs[config_attr])
            f.attrs[config_attr] = json.dumps(mutate_tree(cfg, rng, int(rng.integers(1, 4))))
            return "config"
        if ds is None:
            f.attrs["extra"] = np.arange(3)
            return "extra-root-attr"
        shape, dtype = ds.shape, ds.dtype
        if op == 1:         # wrong shape
            new = tuple(max(0, s + int(rng.integers(-1, 2))) for s in shape) + ((2,) if rng.random() < 0.2 else ())
            del f[name]
            f.create_dataset(name, data=rng.normal(size=new).astype(np.float32))
            return f"shape {name} {new}"
        if op == 2:         # wrong dtype
            kind = _pick(rng, ["i4", "f2", "c8", "?", "S3", "u1", "f8"])
            del f[name]
            f.create_dataset(name, data=np.ones(shape, dtype=kind))
            return f"dtype {name} {kind}"
        if op == 3 and dtype.kind == "f" and ds.size:  # NaN / Inf
            a = ds[()].copy()
            a.reshape(-1)[int(rng.integers(a.size))] = _pick(rng, [np.nan, np.inf, -np.inf])
            ds[...] = a
            return f"nonfinite {name}"
        if op == 4:
            del f[name]
            return f"delete {name}"
        if op == 5:         # huge declared size, nothing stored
            del f[name]
            big = _pick(rng, [(1 << 20, 1 << 20), (1 << 31,), (1 << 16, 1 << 16, 64)])
            f.create_dataset(name, shape=big, dtype="f4", chunks=tuple(min(s, 64) for s in big))
            return f"huge {name} {big}"
        if op == 6:         # external link to a file that holds a valid array
            with h5py.File(d / "other.h5", "w") as o:
                o.create_dataset("x", data=ds[()])
            del f[name]
            f[name] = h5py.ExternalLink("other.h5", "/x")
            return f"external-link {name}"
        if op == 7 and ds.size:   # external raw storage
            a = np.ascontiguousarray(ds[()])
            (d / "raw.bin").write_bytes(a.tobytes())
            del f[name]
            f.create_dataset(name, shape=a.shape, dtype=a.dtype, external=[("raw.bin", 0, a.nbytes)])
            return f"external-storage {name}"
        if op == 8 and ds.size:   # virtual dataset over another file
            with h5py.File(d / "src.h5", "w") as o:
                o.create_dataset("x", data=ds[()])
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            layout[...] = h5py.VirtualSource(str(d / "src.h5"), "x", shape=shape)
            del f[name]
            f.create_virtual_dataset(name, layout)
            return f"virtual {name}"
        if op == 9:         # weight_names / group attributes
            grp = ds.parent
            keys = list(grp.attrs) or ["weight_names"]
            key = _pick(rng, keys)
            grp.attrs[key] = _pick(rng, [np.array([b"nope:0"]), np.int64(7), np.array([], dtype="S1"),
                                         np.array([b"x" * 10] * 50)])
            return f"attr {grp.name}.{key}"
        if op == 10:        # a group where a dataset was
            del f[name]
            f.create_group(name)
            return f"group-for-dataset {name}"
        for k in list(f.attrs)[:1]:
            f.attrs[k] = _pick(rng, [np.int64(3), np.array([1.0, 2.0]), b"\xff\xfe", "3.1.x"])
        f.attrs["unknown_attr"] = b"x"
        return "root-attrs"


def _h5_case(seed: Path, rng, d: Path, name: str, config_attr="model_config") -> tuple[str, Path]:
    out = d / name
    shutil.copyfile(seed, out)
    return mutate_h5(out, rng, config_attr), out


# ------------------------------------------------------------------------------------ zip

@lru_cache(maxsize=None)
def _bomb_zip(name: str) -> bytes:
    """A zip holding one deflated member `name` of 256 MiB of zeros (about 250 KiB), streamed so that
    making it never allocates the 256 MiB (the suite measures peak RSS)."""
    buf = io.BytesIO()
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED      # a ZipInfo passed to open() ignores the archive's default
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open(info, "w", force_zip64=True) as w:
            block = bytes(1 << 20)
            for _ in range(256):
                w.write(block)
    return buf.getvalue()


def zip_with(members: list[tuple[str, bytes]], bomb: str | None = None) -> bytes:
    """A stored zip of `members`, dated 1980-01-01 (writestr with a bare name stamps the current time,
    so a case's bytes would change from minute to minute)."""
    buf = io.BytesIO(_bomb_zip(bomb) if bomb else b"")
    with zipfile.ZipFile(buf, "a" if bomb else "w", zipfile.ZIP_STORED) as z:
        for n, data in members:
            z.writestr(zipfile.ZipInfo(n), data)
    return buf.getvalue()


def mutate_zip(data: bytes, rng, d: Path, json_members=(), h5_member=None) -> tuple[str, bytes]:
    z = zipfile.ZipFile(io.BytesIO(data))
    members = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    op = int(rng.integers(8))
    k = int(rng.integers(len(members)))
    name, body = members[k]
    if op == 0 and json_members:
        k = next((i for i, (n, _) in enumerate(members) if n == _pick(rng, list(json_members))), k)
        name, body = members[k]
        try:
            members[k] = (name, json.dumps(mutate_tree(json.loads(body), rng, int(rng.integers(1, 4)))).encode())
        except ValueError:
            pass
        return f"json {name}", zip_with(members)
    if op == 1 and h5_member:
        k = next((i for i, (n, _) in enumerate(members) if n == h5_member), k)
        tmp = d / "inner.h5"
        tmp.write_bytes(members[k][1])
        label = mutate_h5(tmp, rng, None)
        members[k] = (members[k][0], tmp.read_bytes())
        tmp.unlink()
        for extra in ("other.h5", "raw.bin", "src.h5"):
            if (d / extra).exists():
                members.append((extra, (d / extra).read_bytes()))
        return f"inner {label}", zip_with(members)
    if op == 2:
        new = _pick(rng, ["../" + name, "/" + name, name.upper(), name + ".bak", "a/../" + name,
                          "..\\" + name, "x/" + name])
        members[k] = (new, body)
        return f"rename {name} -> {new}", zip_with(members)
    if op == 3:
        del members[k]
        return f"drop {name}", zip_with(members)
    if op == 4:
        return f"bomb {name}", zip_with([m for i, m in enumerate(members) if i != k], bomb=name)
    if op == 5:             # a member's declared size in the central directory is a lie
        out = bytearray(zip_with(members))
        cd = out.rfind(b"PK\x01\x02")
        out[cd + 24:cd + 28] = (0xFFFFFFF0).to_bytes(4, "little")
        return "central-size-lie", bytes(out)
    if op == 6:
        label, new = mutate_bytes(body, rng)
        members[k] = (name, new)
        return f"member-bytes {name} {label}", zip_with(members)
    members.append((_pick(rng, ["extra.bin", "config.json", "model.json"]), rng.bytes(int(rng.integers(100)))))
    return "extra-member", zip_with(members)


# ------------------------------------------------------------------------------------ per format

def _keras_h5(rng, seeds, i):
    seed = FIXTURES / _pick(rng, H5_SEEDS)
    if rng.random() < 0.4:
        label, data = mutate_bytes(seed.read_bytes(), rng)
        return label, _writer("model.h5", data), False

    def make(d):
        label, path = _h5_case(seed, rng, d, "model.h5")
        return path, label
    return "h5", make, False


def _keras_zip(rng, seeds, i):
    seed = FIXTURES / _pick(rng, ZIP_SEEDS)
    if rng.random() < 0.3:
        label, data = mutate_bytes(seed.read_bytes(), rng)
        return label, _writer("model.keras", data), False

    def make(d):
        label, data = mutate_zip(seed.read_bytes(), rng, d, ("config.json", "metadata.json"), "model.weights.h5")
        return _writer("model.keras", data)(d), label
    return "zip", make, False


def generic_cases(fmt, n, seeds_dir) -> list[Case]:
    from fuzz_formats import GENERATORS
    seeds_dir.mkdir(parents=True, exist_ok=True)
    gen, reader, magic, name = {"keras_h5": (_keras_h5, _read(), b"\x89HDF\r\n\x1a\n", "model.h5"),
                                "keras_zip": (_keras_zip, _read(), b"PK\x03\x04", "model.keras"),
                                **GENERATORS}[fmt]
    seeds = gen.__dict__.get("prepare", lambda s: s)(seeds_dir)
    out = []
    for i in range(n):
        rng = np.random.default_rng([SEED, FORMATS.index(fmt), i])
        if i % 20 == 19 and magic:
            data = structured_random(rng, magic if rng.random() < 0.7 else b"")
            out.append(Case(fmt, i, "random", _writer(name, data), reader))
            continue
        label, make, huge = gen(rng, seeds, i)
        out.append(Case(fmt, i, label, make, reader, huge=huge or "huge" in label or "bomb" in label))
    return out


def cases(fmt, n, seeds_dir) -> list[Case]:
    return generic_cases(fmt, n, Path(seeds_dir))


