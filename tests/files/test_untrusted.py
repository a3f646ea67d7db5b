"""Files from strangers: crafted files that try to make a reader run code, open other files or allocate
what the file cannot hold, each refused through the CLI (exit 2, the message word for word); and NaN/Inf
weights shown by `inspect` and refused by convert, verify and predict unless --allow-nonfinite."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import struct
import zipfile

import h5py
import numpy as np
import pytest

from conftest import FIXTURES, ROOT
from rnnconvert.cli import cli

H5 = FIXTURES / "tfkeras2" / "lstm_last_softmax" / "model.h5"
KERAS = FIXTURES / "keras3" / "lstm_last_softmax" / "model.keras"
ONNX = FIXTURES / "torch_onnx" / "lstm_last_linear" / "model.onnx"
KERNEL = "model_weights/lstm/lstm/lstm_cell/kernel:0"


def invoke(runner, *args):
    res = runner.invoke(cli, [str(a) for a in args])
    return res.exit_code, res.stderr


def _refused(runner, path, message, *extra):
    code, err = invoke(runner, "inspect", path, *extra)
    assert (code, err) == (2, f"rnnconvert: error: {path}: {message}\n")


# ----------------------------------------------------------------------------------------- HDF5

def _h5_with(tmp_path, how):
    path = tmp_path / "model.h5"
    shutil.copyfile(H5, path)
    with h5py.File(path, "r+") as f:
        a = f[KERNEL][()]
        del f[KERNEL]
        if how == "external link":
            with h5py.File(tmp_path / "other.h5", "w") as o:
                o["x"] = a
            f[KERNEL] = h5py.ExternalLink("other.h5", "/x")
        elif how == "external storage":
            (tmp_path / "raw.bin").write_bytes(a.tobytes())
            f.create_dataset(KERNEL, shape=a.shape, dtype=a.dtype, external=[("raw.bin", 0, a.nbytes)])
        elif how == "virtual":
            with h5py.File(tmp_path / "src.h5", "w") as o:
                o["x"] = a
            layout = h5py.VirtualLayout(shape=a.shape, dtype=a.dtype)
            layout[...] = h5py.VirtualSource(str(tmp_path / "src.h5"), "x", shape=a.shape)
            f.create_virtual_dataset(KERNEL, layout)
        else:
            f.create_dataset(KERNEL, shape=(1 << 20, 1 << 20), dtype="f4", chunks=(64, 64))
    return path


H5_MESSAGES = {
    "external link": f"Keras HDF5 file refused: '{KERNEL}' is an external link to 'other.h5:/x'",
    "external storage": f"Keras HDF5 file refused: '{KERNEL}' stores its data in external file(s) raw.bin",
    "virtual": f"Keras HDF5 file refused: '{KERNEL}' is a virtual dataset (it maps data from other files)",
    "huge": f"Keras HDF5 file refused: '{KERNEL}' declares 4096.0 GiB ([1048576, 1048576] float32), "
            "more than a {size} file can hold",
}


@pytest.mark.parametrize("how", list(H5_MESSAGES))
def test_hdf5_pointing_outside_itself_is_refused(runner, tmp_path, how):
    path = _h5_with(tmp_path, how)
    size = f"{os.path.getsize(path) / 1024:.1f} KiB"
    _refused(runner, path, H5_MESSAGES[how].format(size=size)
             + "; rnnconvert reads only data stored inside the file itself")


def test_keras_zip_weights_with_an_external_link_are_refused(runner, tmp_path):
    src = zipfile.ZipFile(KERAS)
    inner = tmp_path / "inner.h5"
    inner.write_bytes(src.read("model.weights.h5"))
    with h5py.File(inner, "r+") as f:
        name = next(n for n in _datasets(f))
        del f[name]
        f[name] = h5py.ExternalLink("/etc/hostname", "/x")
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as z:
        for n in src.namelist():
            z.writestr(n, inner.read_bytes() if n == "model.weights.h5" else src.read(n))
    _refused(runner, path, f"model.weights.h5 in the .keras archive refused: '{name}' is an external link to "
             "'/etc/hostname:/x'; rnnconvert reads only data stored inside the file itself")


def _datasets(f):
    out = []
    f.visititems(lambda n, o: out.append(n) if isinstance(o, h5py.Dataset) else None)
    return out


def test_matlab_v73_with_an_external_link_is_refused(runner, tmp_path):
    import rnnconvert
    path = tmp_path / "net.mat"
    rnnconvert.write(rnnconvert.read(H5), path, version="7.3")
    with h5py.File(path, "r+") as f:
        name = _datasets(f)[-1]
        del f[name]
        f[name] = h5py.ExternalLink("/etc/hostname", "/x")
    _refused(runner, path, f"MATLAB v7.3 file refused: '{name}' is an external link to '/etc/hostname:/x'; "
             "rnnconvert reads only data stored inside the file itself")


# ------------------------------------------------------------------------------------------ zip

def _rezip(src, path, rename=None, duplicate=None):
    z = zipfile.ZipFile(src)
    with zipfile.ZipFile(path, "w") as out:
        for n in z.namelist():
            out.writestr((rename or {}).get(n, n), z.read(n))
        if duplicate:
            out.writestr(duplicate, z.read(duplicate))
    return path


def _bomb(src, path, name):
    """`name` replaced by 64 MiB of zeros, deflated (about 64 KiB)."""
    z = zipfile.ZipFile(src)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for n in z.namelist():
            if n != name:
                out.writestr(n, z.read(n))
        with out.open(name, "w", force_zip64=True) as w:
            for _ in range(64):
                w.write(bytes(1 << 20))
    return path


@pytest.mark.parametrize("suffix,what", [(".keras", ".keras archive"), (".rnnc", ".rnnc archive")])
def test_zip_members_are_bounded(runner, tmp_path, suffix, what):
    import rnnconvert
    src = KERAS if suffix == ".keras" else tmp_path / "seed.rnnc"
    if suffix == ".rnnc":
        rnnconvert.write(rnnconvert.read(H5), src)
    first = "config.json" if suffix == ".keras" else "model.json"
    bad = _rezip(src, tmp_path / f"climb{suffix}", rename={first: "../" + first})
    _refused(runner, bad, f"{what} refused: member '../{first}' has an absolute path or climbs out with '..'")
    bad = _rezip(src, tmp_path / f"abs{suffix}", rename={first: "/tmp/" + first})
    _refused(runner, bad, f"{what} refused: member '/tmp/{first}' has an absolute path or climbs out with '..'")
    bad = _rezip(src, tmp_path / f"dup{suffix}", duplicate=first)
    _refused(runner, bad, f"{what} refused: member '{first}' appears twice")
    bad = _bomb(src, tmp_path / f"bomb{suffix}", first)
    info = zipfile.ZipFile(bad).getinfo(first)
    _refused(runner, bad, f"{what} refused: member '{first}' declares 64.0 MiB from "
             f"{info.compress_size / 1024:.1f} KiB compressed (ratio over 100:1, a zip bomb)")
    assert not any(p.name.startswith(first) for p in tmp_path.parent.iterdir())   # nothing extracted


def test_rnnc_array_declaring_more_than_it_holds_is_refused(runner, tmp_path):
    import rnnconvert
    seed = tmp_path / "seed.rnnc"
    rnnconvert.write(rnnconvert.read(H5), seed)
    z = zipfile.ZipFile(seed)
    name = next(n for n in z.namelist() if n.endswith(".npy"))
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (1 << 31, 16)})
    path = tmp_path / "huge.rnnc"
    with zipfile.ZipFile(path, "w") as out:
        for n in z.namelist():
            out.writestr(n, buf.getvalue() + b"\0" * 64 if n == name else z.read(n))
    _refused(runner, path, f"member '{name}' declares shape [2147483648, 16] float32 (128.0 GiB) but holds "
             f"{len(buf.getvalue()) + 64} bytes")


# ----------------------------------------------------------------------------------- ONNX external

def _external(tmp_path, location, target=None):
    import onnx
    from onnx import numpy_helper
    proto = onnx.load(str(ONNX))
    t = max(proto.graph.initializer, key=lambda t: len(numpy_helper.to_array(t).tobytes()))
    raw = numpy_helper.to_array(t).tobytes()
    (target or tmp_path / "w.bin").write_bytes(raw)
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(len(raw)))):
        e = t.external_data.add()
        e.key, e.value = k, v
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    path = d / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    return path, t.name


def test_onnx_external_data_inside_the_model_directory_is_read(runner, tmp_path):
    import rnnconvert
    (tmp_path / "model").mkdir()
    path, _ = _external(tmp_path, "w.bin", tmp_path / "model" / "w.bin")
    a, b = rnnconvert.read(path), rnnconvert.read(ONNX)
    np.testing.assert_array_equal(a.layers[0].weights[0].W, b.layers[0].weights[0].W)


@pytest.mark.parametrize("location", ["../w.bin", "/etc/hostname", "sub/../../w.bin", "link.bin"])
def test_onnx_external_data_outside_the_model_directory_is_refused(runner, tmp_path, location):
    (tmp_path / "model").mkdir()
    path, name = _external(tmp_path, location)
    if location == "link.bin":
        os.symlink(tmp_path / "w.bin", tmp_path / "model" / "link.bin")
        why = (f"external data 'link.bin' resolves to '{os.path.realpath(tmp_path / 'w.bin')}', outside the "
               "model's directory")
    else:
        why = f"external data location '{location}' is not a plain path inside the model's directory"
    _refused(runner, path, f"ONNX external data refused: tensor '{name}': {why}")


# -------------------------------------------------------------------------------- code execution

def test_pickled_code_in_a_pt_file_never_runs(runner, tmp_path):
    import pickle
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    path = tmp_path / "model.pt"
    with open(path, "wb") as f:
        pickle.dump({"weight_ih_l0": Evil()}, f)
    code, err = invoke(runner, "inspect", path)
    assert code == 2 and err.startswith(f"rnnconvert: error: {path}: ") and err.count("\n") == 1
    assert not marker.exists()


@pytest.mark.parametrize("option,name", [("--arch", "arch.yaml"), ("--mapping", "map.yaml")])
def test_yaml_python_tags_are_refused(runner, tmp_path, option, name):
    marker = tmp_path / "pwned"
    hints = tmp_path / name
    hints.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    target = FIXTURES / "torch" / "gru_linear" / "model.pt" if option == "--arch" else tmp_path / "w.mat"
    if option == "--mapping":
        import scipy.io
        scipy.io.savemat(str(target), {"W": np.ones((4, 2))})
    code, err = invoke(runner, "inspect", target, option, hints)
    assert code == 2 and "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:" \
        "os.system'" in err and err.count("\n") == 1
    assert not marker.exists()


def test_sources_use_only_safe_loaders():
    text = {p: p.read_text() for p in (ROOT / "rnnconvert").rglob("*.py")}
    for p, s in text.items():
        assert not re.search(r"yaml\.(load|unsafe_load|full_load)\(", s), p
        assert "pickle.load" not in s and "allow_pickle=True" not in s, p
        for call in re.findall(r"torch\.load\([^)]*\)", s):
            assert "weights_only=True" in call, (p, call)


# ----------------------------------------------------------------------------------- NaN and Inf

@pytest.fixture
def nan_model(tmp_path):
    path = tmp_path / "nan.h5"
    shutil.copyfile(H5, path)
    with h5py.File(path, "r+") as f:
        k = f["model_weights/dense/dense/bias:0"]
        b = k[()]
        b[1] = np.nan
        k[...] = b
    return path


def test_inspect_reports_nonfinite_per_tensor(runner, nan_model):
    res = runner.invoke(cli, ["inspect", str(nan_model)])
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert lines[3:5] == ["params  218   !! 1 NaN/Inf", "  !! layer 'dense' tensor 'bias': 1 NaN/Inf of 3 values"]
    assert "  1  dense  dense             3                   softmax              18 !! 1 NaN/Inf" in lines
    desc = json.loads(runner.invoke(cli, ["inspect", str(nan_model), "--json"]).output)
    dense = next(x for x in desc["layers"] if x["name"] == "dense")
    assert [(t["name"], t["nonfinite"]) for t in dense["tensors"]] == [("kernel", 0), ("bias", 1)]


NAN_MESSAGE = ("layer 'dense': tensor 'bias' holds 1 NaN/Inf value of 3; the weights are not finite, so the "
               "conversion cannot be verified: fix the model, or pass --allow-nonfinite to convert it anyway")


def test_convert_verify_predict_refuse_nonfinite_weights(runner, nan_model, tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 5, 4), np.float32))
    for args in ([nan_model, tmp_path / "m.onnx"], ["verify", nan_model, H5],
                 ["predict", nan_model, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy"]):
        code, err = invoke(runner, *args)
        assert (code, err) == (2, f"rnnconvert: error: {nan_model}: {NAN_MESSAGE}\n")
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "y.npy").exists()


def test_allow_nonfinite_converts_and_keeps_the_nan(runner, nan_model, tmp_path):
    import onnxruntime as ort
    dst = tmp_path / "m.onnx"
    code, err = invoke(runner, nan_model, dst, "--allow-nonfinite")
    assert code == 0, err
    x = np.random.default_rng(0).normal(size=(3, 6, 4)).astype(np.float32)
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.isnan(y).all()           # softmax over a NaN logit: every output NaN, as in Keras
    np.save(tmp_path / "x.npy", x)
    code, err = invoke(runner, "predict", nan_model, "--inputs", tmp_path / "x.npy", "--output",
                       tmp_path / "y.npy", "--allow-nonfinite")
    assert code == 0 and np.isnan(np.load(tmp_path / "y.npy")).all()


def test_batch_plan_key_allow_nonfinite(tmp_path, nan_model):
    from rnnconvert.batch.run import load_plan, run_plan
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"jobs:\n  - {{src: {nan_model.name}, dst: a.onnx}}\n"
                    f"  - {{src: {nan_model.name}, dst: b.onnx, allow_nonfinite: true}}\n")
    result = run_plan(load_plan(plan), jobs=1)
    status = [r["status"] for _, r in result.results]
    assert status == ["error", "ok"], result.to_dict()
    assert not (tmp_path / "a.onnx").exists() and (tmp_path / "b.onnx").exists()
    plan.write_text(f"jobs:\n  - {{src: {nan_model.name}, dst: a.onnx, allow_nonfinite: 'yes'}}\n")
    with pytest.raises(Exception) as info:
        load_plan(plan)
    assert "jobs[0].allow_nonfinite: expected true or false, found str 'yes'" in str(info.value)


def test_onnx_constant_with_external_data_outside_is_refused(runner, tmp_path):
    """External data may hide in a Constant node's tensor, not only in the initializers."""
    import onnx
    proto = onnx.load(str(ONNX))
    value = onnx.helper.make_tensor("c", onnx.TensorProto.FLOAT, [1], [0.0])
    value.ClearField("float_data")
    value.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", "../../secret.bin"), ("offset", "0"), ("length", "4")):
        e = value.external_data.add()
        e.key, e.value = k, v
    proto.graph.node.insert(0, onnx.helper.make_node("Constant", [], ["unused_c"], value=value))
    path = tmp_path / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    _refused(runner, path, "ONNX external data refused: tensor 'c': external data location '../../secret.bin' "
             "is not a plain path inside the model's directory")


def _with_blob(tmp_path, blob: bytes):
    """The .h5 fixture with an extra 100 kB dataset (searched no more for global heaps) holding `blob`."""
    path = tmp_path / "model.h5"
    shutil.copyfile(H5, path)
    data = np.zeros(100_000, np.uint8)
    data[5000:5000 + len(blob)] = np.frombuffer(blob, np.uint8)
    with h5py.File(path, "r+") as f:
        f.create_dataset("model_weights/extra_blob", data=data)
    return path


def _damaged_heap(size=4096, index=1, n=1 << 40) -> bytes:
    return b"GCOL\x01\x00\x00\x00" + struct.pack("<Q", size) + struct.pack("<HHIQ", index, 0, 0, n)


def test_weight_bytes_that_spell_a_global_heap_are_not_searched(runner, tmp_path):
    path = _with_blob(tmp_path, _damaged_heap())
    assert path.read_bytes().count(_damaged_heap()) == 1
    code, err = invoke(runner, "inspect", path)
    assert code == 0, err


def test_damaged_global_heap_beside_large_datasets_is_refused(runner, tmp_path):
    path = _with_blob(tmp_path, b"")
    data = bytearray(path.read_bytes())
    start = data.find(b"GCOL")
    index = struct.unpack_from("<H", data, start + 16)[0]
    assert data[start + 4] == 1 and index != 0
    struct.pack_into("<Q", data, start + 24, 1 << 40)        # the first object's size: past the collection
    path.write_bytes(bytes(data))
    _refused(runner, path, f"Keras HDF5 file is damaged: global heap at byte {start} has an object at byte "
                           f"{start + 16} of size {1 << 40} that does not fit")
