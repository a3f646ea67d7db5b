"""`rnnconvert SRC model.json` end to end: the TF.js model verified by tfjs(dst) (@tensorflow/tfjs under Node)
and installed with its shard (and rnnconvert's layer classes where the model names them); a layer TF.js cannot
compute refused with one line, exit 2, nothing written;
without node the TF.js check is listed as not run."""
from __future__ import annotations

import numpy as np

import rnnconvert
from conftest import FIXTURES
from progress_lines import without_progress
from rnnconvert.cli import cli
from rnnconvert.formats.tfjs import layers_js, runtime
from rnnconvert.model import Activation
from tfjs_oracle import require_tfjs

LSTM = FIXTURES / "tfkeras2" / "conv1d_causal_dilated_lstm" / "model.h5"
GRU = FIXTURES / "keras3" / "gru_reset_after_seq" / "model.keras"


def test_convert_verifies_with_tfjs_and_installs_the_shard(runner, tmp_path):
    require_tfjs()
    dst = tmp_path / "model.json"
    res = runner.invoke(cli, [str(LSTM), str(dst)])
    assert res.exit_code == 0, res.output + res.stderr
    assert "EQUIVALENT" in res.output
    checks = [line.split() for line in res.output.splitlines() if line.strip().startswith("tfjs(dst)")]
    assert len(checks) >= 3 and all(c[-1] == "ok" for c in checks), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.json"]
    x = np.load(LSTM.parent / "inputs.npz")["t7"]
    y = np.load(LSTM.parent / "outputs.npz")["t7"]
    [out] = runtime.run_many([(dst, x)])
    np.testing.assert_allclose(out, y, atol=1e-4, rtol=0)


def test_reset_after_gru_is_written_with_rnnconvert_classes(runner, tmp_path):
    """A GRU TF.js's own layer refuses (reset_after=True) converts, verified by tfjs(dst) importing the module
    written beside the model, which is installed with it."""
    require_tfjs()
    dst = tmp_path / "model.json"
    res = runner.invoke(cli, [str(GRU), str(dst)])
    assert res.exit_code == 0, res.output + res.stderr
    assert ("changed in form: written with rnnconvert's TF.js layer classes, for what TF.js's own layers do not "
            "compute: 'gru' as RnnconvertGRU; they are defined in model.layers.mjs beside the model: import it once "
            "before tf.loadLayersModel (import './model.layers.mjs';)") in res.output
    checks = [line.split() for line in res.output.splitlines() if line.strip().startswith("tfjs(dst)")]
    assert len(checks) >= 3 and all(c[-1] == "ok" for c in checks), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.json", "model.layers.mjs"]
    assert (tmp_path / "model.layers.mjs").read_text() == layers_js.SOURCE


def test_an_activation_tfjs_lacks_outside_a_cell_is_refused_naming_the_layer(runner, tmp_path):
    """Inside a recurrent cell rnnconvert's classes compute any activation; a Dense's must be TF.js's."""
    source = tmp_path / "exp.rnnc"
    model = rnnconvert.read(FIXTURES / "tfkeras2" / "simplernn_selu_dense" / "model.h5")
    model.layers[-1].activation = Activation("exponential")
    rnnconvert.write(model, source)
    dst = tmp_path / "model.json"
    res = runner.invoke(cli, [str(source), str(dst)])
    assert res.exit_code == 2
    assert without_progress(res.stderr).strip() == (
        f"rnnconvert: error: {dst}: cannot write this model as TF.js (whose layers are tf.keras 2's): layer 'dense': "
        "activation 'exponential' has no TF.js activation; for JavaScript, write an ES module (.mjs) instead, which "
        "computes it")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.rnnc"]


def test_without_node_the_tfjs_check_is_not_run(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    res = runner.invoke(cli, [str(LSTM), str(tmp_path / "model.json")])
    assert res.exit_code == 0, res.output + res.stderr
    assert "not run: tfjs(dst): node is not on PATH" in res.output
    assert "EQUIVALENT" in res.output


def test_without_the_npm_package_the_tfjs_check_is_not_run(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "PACKAGE", "node_modules/@tensorflow/no-such-package")
    res = runner.invoke(cli, [str(LSTM), str(tmp_path / "model.json")])
    assert res.exit_code == 0, res.output + res.stderr
    assert ("not run: tfjs(dst): the npm package @tensorflow/tfjs is not installed (npm install --prefix DIR "
            "@tensorflow/tfjs and set RNNCONVERT_TFJS=DIR)") in res.output


def test_the_npm_package_is_found_where_RNNCONVERT_TFJS_says(tmp_path, monkeypatch):
    package = tmp_path / "prefix" / "node_modules" / "@tensorflow" / "tfjs"
    package.mkdir(parents=True)
    (package / "package.json").write_text("{}")
    for given in (tmp_path / "prefix", tmp_path / "prefix" / "node_modules"):
        monkeypatch.setenv(runtime.ENV, str(given))
        assert runtime.find_tfjs() == str(package)


def test_a_broken_npm_package_is_a_check_not_run(runner, tmp_path, monkeypatch):
    """TF.js itself failing to start says nothing of the model: the check is not run (not failed), with
    Node's error on one line."""
    require_tfjs()
    package = tmp_path / "prefix" / "node_modules" / "@tensorflow" / "tfjs"
    package.mkdir(parents=True)
    (package / "package.json").write_text('{"main": "index.js"}')
    (package / "index.js").write_text("throw new Error('broken on purpose');\n")
    monkeypatch.setenv(runtime.ENV, str(tmp_path / "prefix"))
    res = runner.invoke(cli, [str(LSTM), str(tmp_path / "model.json")])
    assert res.exit_code == 0, res.output + res.stderr
    assert "not run: tfjs(dst): TF.js (@tensorflow/tfjs under node) failed to start: Error: broken on purpose" in res.output


def test_the_runner_keeps_one_node_process_for_every_input(tmp_path):
    """Verification's runner answers each input as one-shot runs do, and a model Node cannot run is an
    error naming TF.js's own message."""
    require_tfjs()
    import rnnconvert
    folder = FIXTURES / "tfjs" / "embed_mask_lstm_last"
    model = rnnconvert.read(folder / "model.json")
    run = runtime.runner(folder / "model.json", model)
    xs = np.load(folder / "inputs.npz")
    for key in xs.files:
        np.testing.assert_array_equal(run(xs[key]), runtime.run(folder / "model.json", xs[key], model))
    np.testing.assert_allclose(run(xs["t7"]), np.load(folder / "outputs.npz")["t7"], atol=1e-6)
    bad = tmp_path / "model.json"
    bad.write_text((folder / "model.json").read_text())          # no shard beside it
    broken = runtime.runner(bad, model)
    try:
        broken(xs["t1"])
    except Exception as exc:    # noqa: BLE001 - the message is what is checked
        assert str(exc).startswith("TF.js (@tensorflow/tfjs under node) failed: Error: "), str(exc)
    else:
        raise AssertionError("a model without its shard ran")


def test_verify_runs_a_tfjs_source_in_tfjs(runner, tmp_path):
    """A model TF.js saved, converted to ONNX: verify runs it in TF.js (tfjs(src)) and onnxruntime (dst)."""
    require_tfjs()
    src = FIXTURES / "tfjs" / "bigru_sum_seq" / "model.json"
    dst = tmp_path / "m.onnx"
    res = runner.invoke(cli, [str(src), str(dst)])
    assert res.exit_code == 0, res.output + res.stderr
    res = runner.invoke(cli, ["verify", str(src), str(dst)])
    assert res.exit_code == 0, res.output + res.stderr
    src_checks = [line.split() for line in res.output.splitlines() if line.strip().startswith("tfjs(src)")]
    assert len(src_checks) >= 3 and all(c[-1] == "ok" for c in src_checks), res.output
