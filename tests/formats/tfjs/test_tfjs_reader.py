"""The TF.js reader on models TensorFlow.js itself saved (fixtures/tfjs, make_tfjs.py): the reference pass on
the model read matches TF.js's stored predictions, and the model converts to ONNX that onnxruntime runs to
the same outputs.  Quantized weights are dequantized as TF.js does (TF.js runs the quantized file).  Files
from strangers: shards outside the model's folder, sizes that disagree, names that match no layer are
refused with one line and exit 2."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES, cases
from rnnconvert.cli import cli
from rnnconvert.errors import InputError
from rnnconvert.reference.network import forward
from tfjs_oracle import run_all

TFJS = cases("tfjs", suffixes=(".json",))
ort = pytest.importorskip("onnxruntime")


def test_every_tfjs_fixture_is_read():
    assert len(TFJS) == 12


@pytest.mark.parametrize("case", TFJS, ids=lambda c: c.id)
def test_read_model_predicts_what_tfjs_predicted(case):
    model = rnnconvert.read(case.path)
    assert model.source["format"] == "tfjs"
    for key, x, y in case.io():
        np.testing.assert_allclose(forward(model, x), y, atol=1e-5, rtol=0, err_msg=key)


@pytest.mark.parametrize("case", TFJS, ids=lambda c: c.id)
def test_tfjs_model_converts_to_onnx(case, tmp_path):
    rnnconvert.write(rnnconvert.read(case.path), tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    for key, x, y in case.io():
        x = x.astype(np.int64 if inp.type == "tensor(int64)" else np.int32 if "int32" in inp.type else np.float32)
        np.testing.assert_allclose(sess.run(None, {inp.name: x})[0], y, atol=1e-4, rtol=0, err_msg=key)


def _copy(case, tmp_path):
    for name in ("model.json", "group1-shard1of1.bin"):
        shutil.copy(case.folder / name, tmp_path / name)
    return tmp_path / "model.json", json.loads((tmp_path / "model.json").read_text())


def test_quantized_weights_read_as_tfjs_dequantizes_them(tmp_path):
    """uint8 (scale, min) for the kernels, float16 for the rest: TF.js runs the file, the reader matches it."""
    case = next(c for c in TFJS if c.name == "lstm_seq_dense")
    path, doc = _copy(case, tmp_path)
    raw = np.fromfile(case.folder / "group1-shard1of1.bin", dtype="<f4")
    out, offset = [], 0
    for w in doc["weightsManifest"][0]["weights"]:
        n = int(np.prod(w["shape"]))
        a = raw[offset:offset + n]
        offset += n
        if w["name"].endswith("kernel"):
            lo, hi = float(a.min()), float(a.max())
            scale = (hi - lo) / 255
            out.append(np.round((a - lo) / scale).astype("<u1"))
            w["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo}
        else:
            out.append(a.astype("<f2"))
            w["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
    (tmp_path / "group1-shard1of1.bin").write_bytes(b"".join(a.tobytes() for a in out))
    path.write_text(json.dumps(doc))
    model = rnnconvert.read(path)
    _, x, _ = case.io()[1]
    [y] = run_all([(path, x)])
    np.testing.assert_allclose(forward(model, x), y, atol=1e-5, rtol=0)
    assert np.abs(y - case.io()[1][2]).max() > 1e-4        # the quantization did change the outputs


def _refused(runner, path) -> str:
    res = runner.invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 2, res.output + res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr.strip()


@pytest.mark.parametrize("shard, why", [
    ("../outside.bin", "points outside the model's folder; rnnconvert reads only shards inside it"),
    ("/etc/passwd", "is not relative to the model; rnnconvert reads only shards inside the model's folder"),
    ("https://example.invalid/x.bin", "is not relative to the model; rnnconvert reads only shards inside the "
                                      "model's folder"),
    ("link.bin", "points outside the model's folder; rnnconvert reads only shards inside it"),
])
def test_shard_outside_the_folder_is_refused(runner, tmp_path, shard, why):
    case = TFJS[0]
    folder = tmp_path / "m"
    folder.mkdir()
    path, doc = _copy(case, folder)
    shutil.copy(case.folder / "group1-shard1of1.bin", tmp_path / "outside.bin")
    os.symlink(tmp_path / "outside.bin", folder / "link.bin")
    doc["weightsManifest"][0]["paths"] = [shard]
    path.write_text(json.dumps(doc))
    assert _refused(runner, path) == f"rnnconvert: error: {path}: weightsManifest: shard path '{shard}' {why}"


def test_shard_of_the_wrong_size_is_refused(runner, tmp_path):
    case = next(c for c in TFJS if c.name == "lstm_seq_dense")
    path, doc = _copy(case, tmp_path)
    with open(tmp_path / "group1-shard1of1.bin", "ab") as f:
        f.write(b"\0" * 4)
    assert _refused(runner, path) == (f"rnnconvert: error: {path}: weightsManifest[0]: the weights take 552 bytes, "
                                      "the shards (group1-shard1of1.bin) hold 556")


def test_weight_of_no_layer_is_refused(runner, tmp_path):
    case = next(c for c in TFJS if c.name == "lstm_seq_dense")
    path, doc = _copy(case, tmp_path)
    doc["weightsManifest"][0]["weights"][0]["name"] = "elsewhere/kernel"
    path.write_text(json.dumps(doc))
    assert _refused(runner, path) == (f"rnnconvert: error: {path}: weightsManifest: weight 'elsewhere/kernel' "
                                      "names no layer of the topology")


def test_absurd_shape_is_refused(runner, tmp_path):
    case = next(c for c in TFJS if c.name == "lstm_seq_dense")
    path, doc = _copy(case, tmp_path)
    doc["weightsManifest"][0]["weights"][0]["shape"] = [2**40, 3]
    path.write_text(json.dumps(doc))
    assert _refused(runner, path) == (f"rnnconvert: error: {path}: weightsManifest: weight "
                                      f"'{doc['weightsManifest'][0]['weights'][0]['name']}' has shape "
                                      "[1099511627776, 3], expected a list of non-negative integers")


def test_graph_model_is_refused(runner, tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": []}, "weightsManifest": []}))
    assert _refused(runner, path) == (f"rnnconvert: error: {path}: a TF.js 'graph-model' model; rnnconvert reads "
                                      "layers models (format 'layers-model')")


def test_layers_tfjs_cannot_hold_are_not_read_from_its_files(runner, tmp_path):
    """A Reshape that is not rnnconvert's padding triple is refused naming the layer."""
    case = next(c for c in TFJS if c.name == "lstm_seq_dense")
    path, doc = _copy(case, tmp_path)
    layers = doc["modelTopology"]["config"]["layers"]
    layers.insert(1, {"class_name": "Reshape", "config": {"name": "odd", "target_shape": [-1, 4]}})
    path.write_text(json.dumps(doc))
    msg = _refused(runner, path)
    assert msg.startswith(f"rnnconvert: error: {path}: layer 'odd': unsupported layer class Reshape; "), msg


def test_fixture_folder_holds_what_tfjs_saved():
    doc = json.loads((FIXTURES / "tfjs" / "lstm_seq_dense" / "model.json").read_text())
    assert doc["generatedBy"].startswith("TensorFlow.js tfjs-layers")


@pytest.mark.parametrize("name", ["bilstm_concat_last", "gru_reset_before_last", "lstm_hard_sigmoid",
                                  "embed_lstm_dense"])
def test_the_tfjs_converters_layout_of_a_keras_file(tmp_path, name):
    """What tensorflowjs_converter --input_format keras writes for a tf.keras 2 .h5: modelTopology wrapping the
    file's model_config, weights named as the .h5 names them (`bi/forward_lstm/lstm_cell/kernel`), written in
    reverse order here (TF.js loads by name).  TF.js itself runs the file (the layout is one it loads); the
    reader reads it; both give the Keras fixture's outputs."""
    import h5py
    folder = FIXTURES / "tfkeras2" / name
    with h5py.File(folder / "model.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
        weights = [(n.decode() if isinstance(n, bytes) else n, np.asarray(f["model_weights"][layer][n]))
                   for layer in f["model_weights"].attrs["layer_names"]
                   for n in f["model_weights"][layer].attrs["weight_names"]]
    weights.reverse()
    doc = {"format": "layers-model", "generatedBy": "keras v2.21.0", "convertedBy": "TensorFlow.js Converter",
           "modelTopology": {"keras_version": "2.21.0", "backend": "tensorflow", "model_config": config},
           "weightsManifest": [{"paths": ["group1-shard1of1.bin"],
                                "weights": [{"name": n.split(":")[0], "shape": list(a.shape), "dtype": "float32"}
                                            for n, a in weights]}]}
    (tmp_path / "group1-shard1of1.bin").write_bytes(b"".join(a.astype("<f4").tobytes() for _, a in weights))
    (tmp_path / "model.json").write_text(json.dumps(doc))
    model = rnnconvert.read(tmp_path / "model.json")
    io = list(np.load(folder / "inputs.npz").items())
    ys = np.load(folder / "outputs.npz")
    outs = run_all([(tmp_path / "model.json", x) for _, x in io])
    for (key, x), out in zip(io, outs):
        np.testing.assert_allclose(out, ys[key], atol=1e-4, rtol=0, err_msg=f"TF.js {key}")
        np.testing.assert_allclose(forward(model, x), ys[key], atol=1e-5, rtol=0, err_msg=f"reader {key}")


def test_the_tfjs_runtime_fetches_nothing_outside_the_models_folder(tmp_path):
    """A second guard behind the reader's: Node's fetch for TF.js reads only inside the model's folder."""
    case = next(c for c in TFJS if c.name == "lstm_seq_dense")
    folder = tmp_path / "m"
    folder.mkdir()
    path, doc = _copy(case, folder)
    shutil.copy(case.folder / "group1-shard1of1.bin", tmp_path / "outside.bin")
    os.symlink(tmp_path / "outside.bin", folder / "link.bin")
    for shard in ("../outside.bin", "link.bin"):
        doc["weightsManifest"][0]["paths"] = [shard]
        path.write_text(json.dumps(doc))
        with pytest.raises(InputError) as exc:
            run_all([(path, case.io()[0][1])])
        assert str(exc.value) == ("TF.js (@tensorflow/tfjs under node) failed: Error: the model asks for "
                                  f"'{folder / shard}', outside its folder")


def test_a_keras_3_topology_naming_hard_sigmoid_is_read_as_tfjs_runs_it(tmp_path):
    """TF.js computes hard_sigmoid as clip(0.2x+0.5) whatever Keras the topology names: TF.js runs the file
    so, the reader reads it so and says so in a note."""
    case = next(c for c in TFJS if c.name == "bigru_sum_seq")       # TF.js's default hard_sigmoid gates
    path, doc = _copy(case, tmp_path)
    doc["modelTopology"]["keras_version"] = "3.4.1"
    path.write_text(json.dumps(doc))
    model = rnnconvert.read(path)
    assert model.source["notes"] == ["the topology names Keras 3.4.1, whose hard_sigmoid is clip(x/6+0.5); TF.js "
                                     "computes clip(0.2x+0.5) for it, and the model is read as TF.js runs it"]
    _, x, y = case.io()[1]
    [out] = run_all([(path, x)])
    np.testing.assert_allclose(out, y, atol=1e-6, rtol=0)
    np.testing.assert_allclose(forward(model, x), y, atol=1e-5, rtol=0)
