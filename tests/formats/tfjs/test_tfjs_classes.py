"""rnnconvert's TF.js layer classes (`NAME.layers.mjs`): a model written with them is read back from model.json
and the shard alone to the source framework's outputs; a page that imports the module as the README says
(`import './NAME.layers.mjs'`, @tensorflow/tfjs resolved by Node) loads and runs it, and one that does not
gets TF.js's unknown-layer error; the runtime never imports JavaScript a stranger put beside a model; a
topology naming a class rnnconvert does not define, or extra weights its config does not name, is refused."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES, Case
from rnnconvert.cli import cli
from rnnconvert.formats.tfjs import layers_js, runtime
from rnnconvert.model import Recurrent
from rnnconvert.reference.network import forward
from tfjs_oracle import require_tfjs, resave, run_all

# One model of each kind of class: reset_after GRU (bidirectional), initial states (batch-fixed and broadcast),
# an LSTM projection (PyTorch proj_size), masked zero outputs (Bidirectional), masked global average pooling.
KINDS = {"tfkeras2/bigru_sum_seq": ("model.h5", "RnnconvertGRU"),
         "torch_onnx/lstm_initial_state_const": ("model.onnx", "RnnconvertLSTM"),
         "torch_onnx/lstm_initial_state_expand": ("model.onnx", "RnnconvertLSTM"),
         "torch/lstm_proj_linear": ("model.pt", "RnnconvertLSTM"),
         "keras3/embed_mask_bilstm_seq": ("model.keras", "RnnconvertLSTM"),
         "keras3/embed_mask_lstm_seq_gap_dense": ("model.keras", "RnnconvertGlobalAveragePooling1D")}


def case_of(key: str) -> Case:
    return Case(FIXTURES / key, FIXTURES / key / KINDS[key][0])


def source(key: str):
    case = case_of(key)
    arch = case.folder / "arch.json"
    return rnnconvert.read(case.path, **({"arch": str(arch)} if arch.exists() else {}))


@pytest.mark.parametrize("key", KINDS)
def test_written_classes_read_back_to_the_framework_outputs(key, tmp_path):
    model = source(key)
    rnnconvert.write(model, tmp_path / "m.json")
    assert KINDS[key][1] in (tmp_path / "m.json").read_text()
    back = rnnconvert.read(tmp_path / "m.json")
    for a, b in zip(model.layers, back.layers):
        assert a.kind == b.kind
        if isinstance(a, Recurrent):
            assert (a.reset_after, a.masked_output, a.direction) == (b.reset_after, b.masked_output, b.direction)
            for wa, wb in zip(a.weights, b.weights):
                for name in ("h0", "c0", "proj"):
                    x, y = getattr(wa, name), getattr(wb, name)
                    assert (x is None) == (y is None), name
                    if x is not None:
                        np.testing.assert_array_equal(np.broadcast_to(x, y.shape), y.astype(np.float32))
    for k, x, y in case_of(key).io():
        if back.input.layout == "time_batch_feature":
            x = np.swapaxes(x, 0, 1)
        out = forward(back, x)
        if back.input.layout == "time_batch_feature" and out.ndim == 3:
            out = np.swapaxes(out, 0, 1)
        np.testing.assert_allclose(out, y, atol=1e-5, rtol=0, err_msg=f"{key} {k}")


PAGE = """
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
%s
const fetchFunc = async (url) => new Response(readFileSync(String(url)));
await tf.setBackend('cpu');
const model = await tf.loadLayersModel(tf.io.http(process.argv[2], {fetchFunc}));
const x = tf.tensor(JSON.parse(process.argv[3]));
process.stdout.write(JSON.stringify(model.predict(x).arraySync()));
"""


def run_page(folder, importing: bool, x) -> subprocess.CompletedProcess:
    """A Node script beside the model, as an app would have it: its own `import * as tf from '@tensorflow/tfjs'`
    (found through a node_modules beside it), then the module, then tf.loadLayersModel."""
    require_tfjs()
    os.symlink(os.path.dirname(os.path.dirname(runtime.find_tfjs())), folder / "node_modules")
    (folder / "page.mjs").write_text(PAGE % ("import './model.layers.mjs';" if importing else ""))
    return subprocess.run([shutil.which("node"), "page.mjs", str(folder / "model.json"), json.dumps(x.tolist())],
                          cwd=folder, capture_output=True, text=True, timeout=120)


def test_a_page_importing_the_module_runs_the_model(tmp_path):
    rnnconvert.write(source("tfkeras2/bigru_sum_seq"), tmp_path / "model.json")
    x = np.load(FIXTURES / "tfkeras2/bigru_sum_seq/inputs.npz")["t7"]
    y = np.load(FIXTURES / "tfkeras2/bigru_sum_seq/outputs.npz")["t7"]
    res = run_page(tmp_path, True, x)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(np.array(json.loads(res.stdout)), y, atol=1e-4, rtol=0)


def test_a_page_without_the_module_gets_tfjs_unknown_layer_error(tmp_path):
    rnnconvert.write(source("tfkeras2/bigru_sum_seq"), tmp_path / "model.json")
    res = run_page(tmp_path, False, np.zeros((1, 2, 3), dtype=np.float32))
    assert res.returncode != 0
    assert "Unknown layer: RnnconvertGRU" in res.stderr


def test_the_runtime_never_imports_a_strangers_module(tmp_path):
    """A `NAME.layers.mjs` that is not rnnconvert's own, byte for byte, is not imported: the runtime's own copy
    registers the classes and the model still runs."""
    key = "tfkeras2/bigru_sum_seq"
    rnnconvert.write(source(key), tmp_path / "model.json")
    marker = tmp_path / "ran"
    (tmp_path / "model.layers.mjs").write_text(
        f"import {{ writeFileSync }} from 'node:fs';\nwriteFileSync({json.dumps(str(marker))}, 'x');\n")
    x = np.load(FIXTURES / key / "inputs.npz")["t7"]
    [out] = run_all([(tmp_path / "model.json", x)])
    assert not marker.exists()
    np.testing.assert_allclose(out, np.load(FIXTURES / key / "outputs.npz")["t7"], atol=1e-4, rtol=0)


def test_the_runtime_imports_the_module_written_beside_the_model(tmp_path):
    """rnnconvert's own module beside the model is the one imported: the same text, made to fail, fails."""
    rnnconvert.write(source("tfkeras2/bigru_sum_seq"), tmp_path / "model.json")
    assert runtime._layers_module(str(tmp_path / "run"), tmp_path / "model.json") == str(tmp_path / "model.layers.mjs")
    (tmp_path / "model.layers.mjs").write_text(layers_js.SOURCE + " ")
    assert runtime._layers_module(str(tmp_path / "run"), tmp_path / "model.json") == str(
        tmp_path / "run" / runtime.OWN_LAYERS)


def _edit(path, change):
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_a_class_rnnconvert_does_not_define_is_refused_naming_it(runner, tmp_path):
    dst = tmp_path / "m.json"
    rnnconvert.write(source("keras3/embed_mask_lstm_seq_gap_dense"), dst)

    def rename(doc):
        for layer in doc["modelTopology"]["config"]["layers"]:
            if layer["class_name"] == "RnnconvertGlobalAveragePooling1D":
                layer["class_name"] = "RnnconvertAttention"
    _edit(dst, rename)
    res = runner.invoke(cli, ["inspect", str(dst)])
    assert res.exit_code == 2
    assert (f"rnnconvert: error: {dst}: layer 'global_average_pooling1d': unsupported layer class "
            "RnnconvertAttention; supported: InputLayer, LSTM,") in res.stderr


def test_initial_state_weights_without_their_setting_are_refused(runner, tmp_path):
    dst = tmp_path / "m.json"
    rnnconvert.write(source("torch_onnx/lstm_initial_state_expand"), dst)

    def drop(doc):
        layer = doc["modelTopology"]["config"]["layers"][1]
        layer["config"]["initial_state"] = False
    _edit(dst, drop)
    res = runner.invoke(cli, ["inspect", str(dst)])
    assert res.exit_code == 2
    name = json.loads(dst.read_text())["modelTopology"]["config"]["layers"][1]["config"]["name"]
    assert res.stderr.strip().endswith(
        f"layer '{name}': weights initial_h, initial_c that its config does not use"), res.stderr


def test_what_tfjs_saves_of_the_classes_is_read_back(tmp_path):
    """TF.js loads each model written with the classes and saves it again (model.save: the classes' getConfig,
    TF.js's own weight names and order); rnnconvert reads what TF.js wrote to the framework outputs."""
    stems = [str(tmp_path / f"m{k}") for k in range(len(KINDS))]
    for stem, key in zip(stems, KINDS):
        rnnconvert.write(source(key), stem + ".json")
    resave(tmp_path, stems)
    for stem, key in zip(stems, KINDS):
        saved = json.loads(open(stem + ".saved.json").read())
        assert KINDS[key][1] in json.dumps(saved["modelTopology"])
        back = rnnconvert.read(stem + ".saved.json")
        for k, x, y in case_of(key).io():
            if back.input.layout == "time_batch_feature":
                x = np.swapaxes(x, 0, 1)
            out = forward(back, x)
            if back.input.layout == "time_batch_feature" and out.ndim == 3:
                out = np.swapaxes(out, 0, 1)
            np.testing.assert_allclose(out, y, atol=1e-5, rtol=0, err_msg=f"{key} {k}")
