"""Fuzz generators for MATLAB (.mat v5 and v7.3: MCOS objects written by mat-io, rnnconvert's layer
structs) and the YAML inputs (--arch hints, --mapping, batch plans); see fuzz_cases.py."""
from __future__ import annotations

import shutil

import numpy as np

from fuzz_cases import _pick, mutate_h5
from fuzzing import FIXTURES, evil_values, mutate_bytes, mutate_tree


def _bytes_or(rng, seed, name: str, p: float):
    from fuzz_formats import _bytes_or as impl
    return impl(rng, seed, name, p)


# ------------------------------------------------------------------------------------ MATLAB

def _learn(v):
    return {"Version": np.array([[2.0]]), "Value": np.asarray(v, np.float32)}


def _matio_layers(rng0=0):
    r = np.random.default_rng(rng0)
    C, H, K = 3, 4, 2
    return [("SequenceInputLayer", {"Name": "in", "InputSize": np.array([[float(C)]]),
                                    "Normalization": np.zeros((0, 0))}),
            ("LSTMLayer", {"Name": "lstm", "NumHiddenUnits": np.array([[float(H)]]),
                           "ReturnSequence": np.array([[False]]), "StateActivationFunction": "tanh",
                           "GateActivationFunction": "sigmoid", "InputWeights": _learn(r.normal(size=(4 * H, C))),
                           "RecurrentWeights": _learn(r.normal(size=(4 * H, H))),
                           "Bias": _learn(r.normal(size=(4 * H, 1)))}),
            ("FullyConnectedLayer", {"Name": "fc", "Weights": _learn(r.normal(size=(K, H))),
                                     "Bias": _learn(r.normal(size=(K, 1)))})]


def _save_matio(path, layers, version):
    from matio import save_to_mat
    from matio.utils.matclass import MatlabOpaque
    objs = np.empty((len(layers), 1), dtype=object)
    for k, (cls, props) in enumerate(layers):
        objs[k, 0] = MatlabOpaque(props, "nnet.cnn.layer." + cls)
    net = MatlabOpaque({"Version": np.array([[1.0]]), "Layers": objs}, "SeriesNetwork")
    save_to_mat(str(path), {"net": net}, version=version)


def _as_matlab(v):
    if v is None:
        return np.zeros((0, 0))
    if isinstance(v, (bool, int, float)):
        return np.array([[float(v)]])
    if isinstance(v, list):
        try:
            return np.array(v, dtype=float)
        except (ValueError, TypeError):
            return "list"
    if isinstance(v, dict):
        return {str(k): _as_matlab(x) for k, x in v.items()}
    return v


def _mutate_props(props: dict, rng) -> str:
    key = _pick(rng, list(props))
    v = props[key]
    op = int(rng.integers(5))
    if op == 0:
        del props[key]
        return f"drop {key}"
    if op == 1:
        props[key] = _as_matlab(evil_values(rng))
        return f"evil {key}"
    arr = v.get("Value") if isinstance(v, dict) else v
    if isinstance(arr, np.ndarray) and arr.dtype.kind == "f" and arr.size:
        a = arr.copy()
        if op == 2:
            a.reshape(-1)[0] = _pick(rng, [np.nan, np.inf])
            what = "nonfinite"
        elif op == 3:
            a = a[: max(0, a.shape[0] - 1)] if rng.random() < 0.5 else np.concatenate([a, a[:1]])
            what = "shape"
        else:
            a = a.astype(_pick(rng, [np.int32, np.uint8, np.complex128, np.float64]))
            what = "dtype"
        if isinstance(v, dict):
            v["Value"] = a
        else:
            props[key] = a
        return f"{what} {key}"
    props[f"Extra{int(rng.integers(9))}"] = _as_matlab(evil_values(rng))
    return "extra"


def _matlab_gen(version):
    def gen(rng, seeds, i):
        seed = _pick(rng, seeds["files"])
        early = _bytes_or(rng, seed, "net.mat", 0.35)
        if early:
            return early

        def make(d):
            out = d / "net.mat"
            if version == "v7.3" and rng.random() < 0.3:
                shutil.copyfile(seed, out)
                return out, "h5 " + mutate_h5(out, rng, None)
            if rng.random() < 0.5:
                layers = _matio_layers()
                k = int(rng.integers(len(layers)))
                cls, props = layers[k]
                label = _mutate_props(props, rng)
                if rng.random() < 0.15:
                    cls = _pick(rng, ["GRULayer", "BiLSTMLayer", "Nonsense", "ReLULayer"])
                layers[k] = (cls, props)
                try:
                    _save_matio(out, layers, version)
                except Exception:  # noqa: BLE001 - mat-io cannot write every mutation: fall back to bytes
                    out.write_bytes(mutate_bytes(seed.read_bytes(), rng)[1])
                    return out, "bytes (mat-io refused the mutation)"
                return out, f"mcos {cls} {label}"
            from rnnconvert.formats.matlab import writer
            layers = [dict(x) for x in seeds["structs"]]
            k = int(rng.integers(len(layers)))
            label = _mutate_props(layers[k], rng)
            try:
                _write_structs(out, layers, version)
            except Exception:  # noqa: BLE001
                out.write_bytes(mutate_bytes(seed.read_bytes(), rng)[1])
                return out, "bytes (the writer refused the mutation)"
            del writer
            return out, f"structs {label}"
        return "mat", make, False

    def prepare(seeds_dir):
        import rnnconvert
        from rnnconvert.formats.matlab.writer import from_canonical
        tag = version.replace(".", "")
        files = []
        mcos = seeds_dir / f"mcos_{tag}.mat"
        if not mcos.exists():
            _save_matio(mcos, _matio_layers(), version)
        files.append(mcos)
        written = seeds_dir / f"layers_{tag}.mat"
        model = rnnconvert.read(FIXTURES / "tfkeras2/lstm_last_softmax/model.h5")
        if not written.exists():
            rnnconvert.write(model, written, version="7.3" if version == "v7.3" else "7")
        files.append(written)
        return {"files": files, "structs": from_canonical(model)[0]}
    gen.prepare = prepare
    return gen


def _write_structs(path, layers, version):
    if version == "v7.3":
        from rnnconvert.formats.matlab.hdf5 import write_v73
        write_v73(path, {"layers": layers})
        return
    import scipy.io
    cell = np.empty((len(layers), 1), dtype=object)
    for k, layer in enumerate(layers):
        cell[k, 0] = layer
    scipy.io.savemat(str(path), {"layers": cell}, do_compression=True, oned_as="column")


# ------------------------------------------------------------------------------------ YAML inputs

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi"))


def _yaml_text(doc, rng) -> str:
    import yaml
    op = int(rng.integers(10))
    if op == 0:
        return _pick(rng, ["{", "- [", "!!python/object/apply:os.system ['true']", "a: !!binary xx",
                           BILLION_LAUGHS + "layers: *i\njobs: *i\n", "\t- x", "? [a]\n: b", "a: 1\na: 2",
                           "!!python/name:os.system", "", "~", "[]", "42", "[" * 5000, "a: {b: " * 2000,
                           rng.bytes(int(rng.integers(1, 300))).decode("latin-1")])
    if op == 1:
        return yaml.safe_dump(evil_values(rng))
    text = yaml.safe_dump(mutate_tree(doc, rng, int(rng.integers(1, 4))))
    return text


def _yaml_gen(doc_fn, name, reader_fn):
    def gen(rng, seeds, i):
        def make(d):
            for f in seeds["files"]:
                target = d / f.name
                if not target.exists():
                    shutil.copyfile(f, target)
            data = _yaml_text(doc_fn(), rng).encode()
            if rng.random() < 0.15:     # bytes as well as text: bit flips leave invalid UTF-8
                label, data = mutate_bytes(data or b"x", rng)
                (d / name).write_bytes(data)
                return d / name, f"bytes {label}"
            (d / name).write_bytes(data)
            return d / name
        return "yaml", make, False
    gen.reader = reader_fn
    return gen


def _arch_doc():
    return {"batch_first": True, "nonlinearity": "tanh", "head": "last_step", "order": ["rnn", "fc"],
            "activations": {"fc": "softmax"}, "input_features": 4, "ignore": ["x"]}


def _mapping_doc():
    return {"layers": [{"layer": "lstmLayer", "InputWeights": "W", "RecurrentWeights": "R", "Bias": "b",
                        "OutputMode": "last"},
                       {"layer": "fullyConnectedLayer", "Weights": "Wfc", "Bias": ["bfc"]}], "var": "W"}


def _plan_doc():
    return {"defaults": {"atol": 1e-4, "seed": 1},
            "jobs": [{"src": "model.pt", "dst": ["out.onnx", "out.safetensors"], "arch": {"head": "last_step"}},
                     {"src": "model.pt", "dst": "b.rnnc", "rtol": 1e-3, "keras_version": 3}]}


def _yaml_seeds(seeds_dir):
    import scipy.io
    pt = seeds_dir / "model.pt"
    if not pt.exists():
        shutil.copyfile(FIXTURES / "torch/gru_linear/model.pt", pt)
    bare = seeds_dir / "bare.mat"
    if not bare.exists():
        r = np.random.default_rng(0)
        scipy.io.savemat(str(bare), {"W": r.normal(size=(16, 3)), "R": r.normal(size=(16, 4)),
                                     "b": r.normal(size=(16, 1)), "Wfc": r.normal(size=(2, 4)),
                                     "bfc": r.normal(size=(2, 1))})
    return {"files": [pt, bare]}


def _read_arch(path):
    import rnnconvert
    return rnnconvert.read(path.parent / "model.pt", arch=str(path))


def _read_mapping(path):
    import rnnconvert
    return rnnconvert.read(path.parent / "bare.mat", mapping=str(path))


def _read_plan(path):
    from rnnconvert.batch.run import load_plan
    return load_plan(path)


arch_gen = _yaml_gen(_arch_doc, "arch.yaml", _read_arch)
mapping_gen = _yaml_gen(_mapping_doc, "map.yaml", _read_mapping)
plan_gen = _yaml_gen(_plan_doc, "plan.yaml", _read_plan)
for _g in (arch_gen, mapping_gen, plan_gen):
    _g.prepare = _yaml_seeds

matlab_v5_gen, matlab_v73_gen = _matlab_gen("v7"), _matlab_gen("v7.3")
