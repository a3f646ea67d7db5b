"""Hostile containers: JSON, YAML, PyTorch, safetensors and .rnnc files made by hand to attack the readers,
and models whose work would grow faster than the file (issue 21).

Each `make_*` function writes one hostile file (or folder) into a directory and returns its path;
`python -m tests.hostile_containers DIR` writes them all.  The files are small: what they attack is
the work or memory a reader would spend on them (JSON nested 100,000 deep, YAML aliases, views that
repeat one storage, odd dtypes, absurd shapes, thousands of layers).
"""
from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np

DEEP = 100_000
DEEP_JSON = "[" * DEEP + "]" * DEEP
MANY = 6000                      # small recurrent layers in one stack
CHAIN = 600                      # chained activation layers


# -------------------------------------------------------------------------------- small models

def _model(layers: int = 1, features: int = 2, hidden: int = 3, cell: str = "lstm"):
    from rnnconvert.model import gates
    from rnnconvert.model import Activation, DirectionWeights, InputSpec, Model, Recurrent
    G = gates.GATE_COUNT[cell]
    acts = {"lstm": ["sigmoid", "tanh", "tanh"], "gru": ["sigmoid", "tanh"], "rnn": ["tanh"]}[cell]
    rng = np.random.default_rng(0)
    out, n_in = [], features
    for k in range(layers):
        w = DirectionWeights(W=rng.normal(0, .3, (G * hidden, n_in)).astype(np.float32),
                             R=rng.normal(0, .3, (G * hidden, hidden)).astype(np.float32),
                             Wb=np.zeros(G * hidden, np.float32), Rb=np.zeros(G * hidden, np.float32))
        out.append(Recurrent(name=f"r{k}", cell=cell, hidden=hidden, direction="forward", weights=[w],
                             activations=[Activation(a) for a in acts]))
        n_in = hidden
    return Model(layers=out, input=InputSpec(features=features), name="small")


def make_small_rnnc(d: Path) -> Path:
    import rnnconvert
    path = Path(d) / "small.rnnc"
    rnnconvert.write(_model(), path)
    return path


def _rnnc_with(d: Path, name: str, manifest_text=None, members: dict | None = None, edit=None) -> Path:
    """small.rnnc rewritten: its manifest replaced or edited, members replaced or added."""
    src = make_small_rnnc(d)
    path = Path(d) / name
    with zipfile.ZipFile(src) as z:
        files = {n: z.read(n) for n in z.namelist()}
    if edit is not None:
        manifest = json.loads(files["model.json"])
        edit(manifest)
        files["model.json"] = json.dumps(manifest).encode()
    if manifest_text is not None:
        files["model.json"] = manifest_text.encode()
    files.update(members or {})
    with zipfile.ZipFile(path, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    return path


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=True)
    return buf.getvalue()


def _npy_header(shape, descr="<f4") -> bytes:
    """A .npy file of zero data bytes declaring `shape` (numpy cannot make such an array itself)."""
    header = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


# ------------------------------------------------------------------------------- state dicts

def _state_dict(hidden=3, features=2):
    import torch
    g = torch.Generator().manual_seed(0)
    return {"lstm.weight_ih_l0": torch.randn(4 * hidden, features, generator=g),
            "lstm.weight_hh_l0": torch.randn(4 * hidden, hidden, generator=g),
            "lstm.bias_ih_l0": torch.zeros(4 * hidden), "lstm.bias_hh_l0": torch.zeros(4 * hidden)}


def _save_pt(sd, path, metadata_json=None) -> Path:
    import collections

    import torch
    sd = collections.OrderedDict(sd)
    if metadata_json is not None:
        sd._metadata = {"__rnnconvert__": {"json": metadata_json}}
    torch.save(sd, path)
    return Path(path)


def _safetensors(path, header: dict, data: bytes) -> Path:
    text = json.dumps(header).encode()
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + data)
    return Path(path)


def _st_entries(hidden=3, features=2, dtype="F32", itemsize=4):
    shapes = {"lstm.weight_ih_l0": [4 * hidden, features], "lstm.weight_hh_l0": [4 * hidden, hidden],
              "lstm.bias_ih_l0": [4 * hidden], "lstm.bias_hh_l0": [4 * hidden]}
    header, at = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * itemsize
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + n]}
        at += n
    return header, at


# ------------------------------------------------------------------------------ JSON too deep

def make_deep_safetensors(d: Path) -> Path:
    path = Path(d) / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(DEEP_JSON)) + DEEP_JSON.encode())
    return path


def make_deep_rnnc(d: Path) -> Path:
    return _rnnc_with(d, "deep.rnnc", manifest_text=DEEP_JSON)


def make_deep_pt(d: Path) -> Path:
    return _save_pt(_state_dict(), Path(d) / "deep.pt", metadata_json=DEEP_JSON)


def make_deep_st_metadata(d: Path) -> Path:
    header, size = _st_entries()
    header["__metadata__"] = {"rnnconvert": DEEP_JSON}
    return _safetensors(Path(d) / "deep_meta.safetensors", header, bytes(size))


def make_deep_h5(d: Path) -> Path:
    import h5py
    path = Path(d) / "deep.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = DEEP_JSON
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.create_group("model_weights")
    return path


def make_deep_keras(d: Path) -> Path:
    path = Path(d) / "deep.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", DEEP_JSON)
        z.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        z.writestr("model.weights.h5", b"")
    return path


def make_deep_onnx_metadata(d: Path) -> Path:
    """An ONNX model rnnconvert wrote, its 'rnnconvert' metadata entry replaced by deep JSON."""
    import onnx

    import rnnconvert
    path = Path(d) / "deep_meta.onnx"
    rnnconvert.write(_model(), path)
    proto = onnx.load(path)
    for p in proto.metadata_props:
        if p.key == "rnnconvert":
            p.value = DEEP_JSON
    onnx.save(proto, path)
    return path


def make_deep_vectors(d: Path) -> Path:
    folder = Path(d) / "deep_vectors"
    folder.mkdir(exist_ok=True)
    (folder / "vectors.json").write_text(DEEP_JSON)
    return folder


def make_deep_state(d: Path) -> Path:
    """A plan of one job beside a batch state file nested 100,000 deep."""
    folder = Path(d) / "deep_state"
    folder.mkdir(exist_ok=True)
    make_small_rnnc(folder)
    plan = folder / "plan.yaml"
    plan.write_text("jobs:\n  - src: small.rnnc\n    dst: out.onnx\n")
    (folder / ".plan.yaml.rnnconvert-state.json").write_text(DEEP_JSON)
    return plan


# ---------------------------------------------------------------------------- YAML aliases

LAUGHS = "".join(f"  l{k + 1}: &l{k + 1} [" + ",".join([f"*l{k}"] * 9) + "]\n" for k in range(9))
BOMB = "  l0: &l0 lol\n" + LAUGHS             # l9: 9**9 = 387 million leaves from under 1 KB


def make_laughs_plan(d: Path) -> Path:
    """A plan whose inline `arch` is a billion laughs."""
    folder = Path(d) / "laughs"
    folder.mkdir(exist_ok=True)
    (folder / "model.pt").write_bytes(b"")
    text = "jobs:\n  - src: model.pt\n    dst: out.onnx\n    arch:\n" + "".join(
        "      " + line.strip() + "\n" for line in BOMB.splitlines())
    (folder / "plan.yaml").write_text(text)
    return folder / "plan.yaml"


def make_laughs_yaml(d: Path) -> Path:
    """An --arch / --mapping file that is a billion laughs."""
    path = Path(d) / "laughs.yaml"
    path.write_text(BOMB.replace("\n  ", "\n").lstrip())
    return path


# ----------------------------------------------------------------- bytes made beyond the file

def make_shared_range_safetensors(d: Path, entries: int = 1000, size: int = 4 << 20) -> Path:
    """`entries` tensors all on one `size`-byte range: 4 GB of arrays from a 4 MB file."""
    n = size // 4
    header = {f"t{k}": {"dtype": "F32", "shape": [n], "data_offsets": [0, size]} for k in range(entries)}
    return _safetensors(Path(d) / "shared_range.safetensors", header, bytes(size))


def make_stride0_pt(d: Path, hidden: int = 1 << 14) -> Path:
    """LSTM weights that are stride-0 views of one float: 4 x 4 GiB when materialised, a 2 KB file."""
    import torch
    one = torch.zeros(1)
    sd = {"lstm.weight_ih_l0": one.as_strided((4 * hidden, hidden), (0, 0)),
          "lstm.weight_hh_l0": one.as_strided((4 * hidden, hidden), (0, 0)),
          "lstm.bias_ih_l0": one.as_strided((4 * hidden,), (0,)),
          "lstm.bias_hh_l0": one.as_strided((4 * hidden,), (0,))}
    return _save_pt(sd, Path(d) / "stride0.pt")


def make_shared_array_rnnc(d: Path, layers: int = 1000) -> Path:
    """A 1 MB array named by `layers` layers of the manifest: 1 GB of weights from a 1 MB file."""
    hidden = 256

    def edit(m):
        layer = m["layers"][0]
        layer["hidden"] = hidden
        w = layer["weights"][0]
        w["W"] = {"array": "big", "shape": [4 * hidden, hidden], "dtype": "float32"}
        w["R"] = {"array": "big", "shape": [4 * hidden, hidden], "dtype": "float32"}
        w["Wb"] = {"array": "b", "shape": [4 * hidden], "dtype": "float32"}
        w["Rb"] = {"array": "b", "shape": [4 * hidden], "dtype": "float32"}
        m["input"]["features"] = hidden
        m["layers"] = [dict(layer, name=f"r{k}") for k in range(layers)]
    return _rnnc_with(d, "shared_array.rnnc", edit=edit,
                      members={"big.npy": _npy(np.zeros((4 * hidden, hidden), np.float32)),
                               "b.npy": _npy(np.zeros(4 * hidden, np.float32))})


# ------------------------------------------------------------------------------- odd dtypes

PT_DTYPES = ("float8_e4m3fn", "float8_e5m2", "complex64", "bool", "int32", "uint8")
ST_DTYPES = ("I32", "BOOL", "U8", "I64")
NPY_DTYPES = {"complex": np.complex64, "record": [("a", "<f4"), ("b", "<i4")], "string": "U3", "int": np.int32,
              "bool": np.bool_}


def make_odd_pt(d: Path, dtype: str) -> Path:
    import torch
    sd = _state_dict()
    sd["lstm.weight_ih_l0"] = sd["lstm.weight_ih_l0"].to(getattr(torch, dtype))
    return _save_pt(sd, Path(d) / f"odd_{dtype}.pt")


def make_odd_safetensors(d: Path, dtype: str) -> Path:
    item = {"I32": 4, "BOOL": 1, "U8": 1, "I64": 8}[dtype]
    header, size = _st_entries(dtype=dtype, itemsize=item)
    return _safetensors(Path(d) / f"odd_{dtype}.safetensors", header, bytes(size))


def make_odd_rnnc(d: Path, kind: str) -> Path:
    """small.rnnc with its first W replaced by an array of the same shape and an odd dtype."""
    src = make_small_rnnc(d)
    with zipfile.ZipFile(src) as z:
        name = next(n for n in z.namelist() if "/W_" in n)
        shape = np.load(io.BytesIO(z.read(name))).shape
    return _rnnc_with(d, f"odd_{kind}.rnnc", members={name: _npy(np.zeros(shape, NPY_DTYPES[kind]))})


def make_object_rnnc(d: Path) -> Path:
    src = make_small_rnnc(d)
    with zipfile.ZipFile(src) as z:
        name = next(n for n in z.namelist() if "/W_" in n)
    return _rnnc_with(d, "odd_object.rnnc", members={name: _npy(np.array([None, 1], dtype=object))})


# ----------------------------------------------------------------------------- absurd shapes

SHAPES = {"1e30": [10 ** 30, 0], "2e40": [1 << 40, 0]}


def make_shape_safetensors(d: Path, key: str) -> Path:
    header, size = _st_entries()
    header["lstm.weight_ih_l0"] = {"dtype": "F32", "shape": SHAPES[key], "data_offsets": [0, 0]}
    return _safetensors(Path(d) / f"shape_{key}.safetensors", header, bytes(size))


def make_shape_rnnc(d: Path, key: str) -> Path:
    src = make_small_rnnc(d)
    with zipfile.ZipFile(src) as z:
        name = next(n for n in z.namelist() if "/W_" in n)
    return _rnnc_with(d, f"shape_{key}.rnnc", members={name: _npy_header(SHAPES[key])})


def make_negative_steps_rnnc(d: Path) -> Path:
    return _rnnc_with(d, "negative_steps.rnnc", edit=lambda m: m["input"].update(time_steps=-5))


def make_negative_steps_pt(d: Path) -> Path:
    """A .pt rnnconvert wrote, its metadata's input time steps made negative."""
    import torch

    import rnnconvert
    path = Path(d) / "negative_steps.pt"
    rnnconvert.write(_model(), path)
    sd = torch.load(path, weights_only=True)
    meta = json.loads(sd._metadata["__rnnconvert__"]["json"])
    meta["input"]["time_steps"] = -5
    sd._metadata["__rnnconvert__"]["json"] = json.dumps(meta)
    torch.save(sd, path)
    return path


# ----------------------------------------------------------------------- many layers, deep chains

def make_many_rnnc(d: Path, n: int = MANY) -> Path:
    import rnnconvert
    path = Path(d) / f"many{n}.rnnc"
    rnnconvert.write(_model(layers=n, features=1, hidden=1, cell="rnn"), path)
    return path


def make_many_onnx(d: Path, n: int = MANY) -> Path:
    import rnnconvert
    path = Path(d) / f"many{n}.onnx"
    rnnconvert.write(_model(layers=n, features=1, hidden=1, cell="rnn"), path)
    return path


def make_many_h5(d: Path, n: int = MANY) -> Path:
    """A Keras 3 .h5 of `n` SimpleRNN(1) layers: a two-layer file Keras saved, its second layer repeated
    (config and weight groups) with h5py, since Keras itself takes minutes to build such a model."""
    import copy

    import h5py
    import keras
    seed = Path(d) / "seed2.h5"
    keras.Sequential([keras.Input((None, 1)), keras.layers.SimpleRNN(1, return_sequences=True, name="simple_rnn"),
                      keras.layers.SimpleRNN(1, return_sequences=True, name="simple_rnn_1")],
                     name="sequential").save(seed)
    path = Path(d) / f"many{n}.h5"
    with h5py.File(seed, "r") as s, h5py.File(path, "w") as f:
        for k, v in s.attrs.items():
            f.attrs[k] = v
        config = json.loads(s.attrs["model_config"])
        first, template = config["config"]["layers"][:2], config["config"]["layers"][2]
        names = ["simple_rnn"] + [f"simple_rnn_{k}" for k in range(1, n)]
        layers = [first[0]]
        for name in names:
            layer = copy.deepcopy(template)
            layer["config"]["name"] = name
            layers.append(layer)
        config["config"]["layers"] = layers
        f.attrs["model_config"] = json.dumps(config)
        src = s["model_weights/simple_rnn"]
        mw = f.create_group("model_weights")
        for k, v in s["model_weights"].attrs.items():
            mw.attrs[k] = v
        for k in range(0, n, 1000):            # Keras splits a long attribute the same way
            mw.attrs[f"layer_names{k // 1000}"] = np.array(names[k:k + 1000], dtype=object)
        s.copy(s["model_weights/top_level_model_weights"], mw, "top_level_model_weights")
        for name in names:
            g = mw.create_group(name)
            weights = [f"sequential/{name}/simple_rnn_cell/{w}" for w in ("kernel", "recurrent_kernel", "bias")]
            g.attrs["weight_names"] = np.array(weights, dtype=object)
            for w, full in zip(("kernel", "recurrent_kernel", "bias"), weights):
                g[full] = src[f"sequential/simple_rnn/simple_rnn_cell/{w}"][()]
    seed.unlink()
    return path


def make_chain_rnnc(d: Path, n: int = CHAIN) -> Path:
    """One LSTM and `n` activation layers after it."""
    import rnnconvert
    from rnnconvert.model import Activation, ActivationLayer
    m = _model()
    m.layers += [ActivationLayer(name=f"act{k}", activation=Activation("tanh")) for k in range(n)]
    path = Path(d) / f"chain{n}.rnnc"
    rnnconvert.write(m, path)
    return path


def make_chain_keras(d: Path, n: int = CHAIN) -> Path:
    """A Keras functional model (written with Keras itself): LSTM then `n` chained Activation layers."""
    import keras
    x = inp = keras.Input((None, 2))
    x = keras.layers.LSTM(3, return_sequences=True)(x)
    for _ in range(n):
        x = keras.layers.Activation("tanh")(x)
    path = Path(d) / f"chain{n}.keras"
    keras.Model(inp, x).save(path)
    return path


ALL = [make_deep_safetensors, make_deep_rnnc, make_deep_pt, make_deep_st_metadata, make_deep_h5, make_deep_keras,
       make_deep_onnx_metadata, make_deep_vectors, make_deep_state, make_laughs_plan, make_laughs_yaml,
       make_shared_range_safetensors, make_stride0_pt, make_shared_array_rnnc, make_object_rnnc,
       make_negative_steps_rnnc, make_negative_steps_pt, make_many_rnnc, make_many_onnx, make_many_h5, make_chain_rnnc,
       make_chain_keras]
PARAMETRISED = [(make_odd_pt, PT_DTYPES), (make_odd_safetensors, ST_DTYPES), (make_odd_rnnc, tuple(NPY_DTYPES)),
                (make_shape_safetensors, tuple(SHAPES)), (make_shape_rnnc, tuple(SHAPES))]


def main(argv) -> None:
    d = Path(argv[0] if argv else "hostile_containers")
    d.mkdir(parents=True, exist_ok=True)
    for make in ALL:
        print(make(d))
    for make, keys in PARAMETRISED:
        for key in keys:
            print(make(d, key))


if __name__ == "__main__":
    main(sys.argv[1:])
