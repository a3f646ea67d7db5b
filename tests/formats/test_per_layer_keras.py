"""Per-layer conversion of Keras files against Keras 3 itself (live): a two-input functional model with
a custom layer (unreadable whole), a `save_weights` file without architecture (per layer, refused whole,
whole with an --arch YAML), and the Keras 1 weights-only file of the wild set with its architecture."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rnnconvert
import rnnconvert.formats.per_layer as select
from conftest import ROOT, WILD
from rnnconvert.cli.commands import cli

keras = pytest.importorskip("keras")
ATOL = 1e-4


def _err(res):
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr.strip()


def _x(batch, time, features, seed=0):
    x = np.random.default_rng(seed).standard_normal((batch, time, features)).astype(np.float32)
    x[-1] *= 6.0
    return x


def _fresh(layer_factory, weights, features):
    layer = layer_factory()
    layer.build((None, None, features))
    layer.set_weights(weights)
    return layer


@keras.saving.register_keras_serializable(package="rnnconvert_tests")
class Doubler(keras.layers.Layer):
    def call(self, x):
        return x * 2.0


@pytest.fixture(scope="module")
def two_input_model(tmp_path_factory):
    keras.utils.set_random_seed(3)
    a = keras.Input((None, 3), name="a")
    b = keras.Input((None, 2), name="b")
    z = keras.layers.Concatenate(name="cat")([Doubler(name="double")(a), b])
    enc = keras.layers.LSTM(4, go_backwards=True, name="enc")(z)
    bi = keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True), merge_mode="sum", name="bi")(z)
    model = keras.Model([a, b], [keras.layers.Dense(2, name="head")(enc), bi])
    path = tmp_path_factory.mktemp("two") / "two_inputs.keras"
    model.save(path)
    return model, path


def test_two_input_custom_layer_model_layers_match_keras(two_input_model, tmp_path):
    model, path = two_input_model
    s = select.scan(path)
    assert s.whole is None
    assert [(f.name, f.kind, f.bidirectional) for f in s.layers] == [("enc", "lstm", False), ("bi", "gru", True)]
    z = _x(3, 9, 5, seed=1)
    enc = _fresh(lambda: keras.layers.LSTM(4, go_backwards=True, return_sequences=True),
                 model.get_layer("enc").get_weights(), 5)
    want = keras.ops.convert_to_numpy(enc(z))              # go_backwards: Keras's processing order
    np.testing.assert_allclose(rnnconvert.predict(select.extract(path, "enc"), z), want, atol=ATOL)
    bi = _fresh(lambda: keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True), merge_mode="sum"),
                model.get_layer("bi").get_weights(), 5)
    want = keras.ops.convert_to_numpy(bi(z))
    np.testing.assert_allclose(rnnconvert.predict(select.extract(path, "bi"), z), want, atol=ATOL)
    report = rnnconvert.convert(path, tmp_path / "bi.onnx", layer="bi")
    assert report.passed and "onnxruntime(dst)" in report.oracles()
    import onnxruntime as ort
    sess = ort.InferenceSession(str(tmp_path / "bi.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: z})[0], want, atol=ATOL)


def test_two_input_model_whole_refused_with_layer_suggestion(two_input_model, tmp_path, runner):
    _, path = two_input_model
    res = runner.invoke(cli, [str(path), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert _err(res) == (
        f"rnnconvert: error: {path}: the model has 2 inputs and 2 outputs; rnnconvert reads models with one input "
        "and one output (and recurrent states as inputs and outputs); to convert one recurrent layer on its own, pass --layer NAME (recurrent layers found: "
        "enc (lstm), bi (gru, bidirectional))")


@pytest.fixture(scope="module")
def weights_only(tmp_path_factory):
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((None, 4)), keras.layers.LSTM(5, return_sequences=True, name="lstm"),
                              keras.layers.GRU(3, name="gru"), keras.layers.Dense(2, activation="softmax",
                                                                                  name="dense")])
    path = tmp_path_factory.mktemp("wo") / "model.weights.h5"
    model.save_weights(path)
    return model, path


def test_weights_only_layers_without_architecture_match_keras(weights_only, tmp_path, runner):
    model, path = weights_only
    s = select.scan(path)
    assert [(f.name, f.kind) for f in s.layers] == [("gru", "gru"), ("lstm", "lstm")]     # as stored
    x = _x(3, 7, 4, seed=2)
    lstm = _fresh(lambda: keras.layers.LSTM(5, return_sequences=True), model.get_layer("lstm").get_weights(), 4)
    np.testing.assert_allclose(rnnconvert.predict(select.extract(path, "lstm"), x),
                               keras.ops.convert_to_numpy(lstm(x)), atol=ATOL)
    h = _x(3, 7, 5, seed=3)
    gru = _fresh(lambda: keras.layers.GRU(3, return_sequences=True), model.get_layer("gru").get_weights(), 5)
    np.testing.assert_allclose(rnnconvert.predict(select.extract(path, "gru"), h),
                               keras.ops.convert_to_numpy(gru(h)), atol=ATOL)
    res = runner.invoke(cli, [str(path), str(tmp_path / "gru.onnx"), "--layer", "gru"])
    assert res.exit_code == 0, res.stderr
    assert "layer 'gru': activation 'tanh', recurrent_activation 'sigmoid': the Keras 3 defaults" in res.stdout


def test_weights_only_whole_model_refused_without_architecture(weights_only, tmp_path, runner):
    _, path = weights_only
    res = runner.invoke(cli, [str(path), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert _err(res) == (
        f"rnnconvert: error: {path}: a weights-only Keras file (save_weights: no model_config) holding dense "
        "(dense), gru (gru), lstm (lstm); the whole model needs its architecture: pass --arch arch.yaml listing "
        "the layers in order (layers: [{name: ...}, ...]; README 'Keras weights-only files'), or convert one "
        "recurrent layer with --layer NAME")


def test_weights_only_whole_model_with_architecture_matches_keras(weights_only, tmp_path, runner):
    model, path = weights_only
    arch = tmp_path / "arch.yaml"
    arch.write_text("keras_version: 3\ninput_shape: [null, 4]\nlayers:\n  - {name: lstm, return_sequences: true}\n"
                    "  - gru\n  - {name: dense, activation: softmax}\n")
    x = _x(4, 11, 4, seed=6)
    read = rnnconvert.read(path, arch=str(arch))
    got = rnnconvert.predict(read, x)
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=ATOL)
    # the Dense activation given in the architecture is no longer assumed; the recurrent defaults are
    assert [(a.kind, a.assumed, a.hint) for a in read.source["assumptions"]] == [
        ("activation", "layer 'lstm' activation tanh, recurrent_activation sigmoid",
         "--arch layers entry {name: lstm, activation: tanh, recurrent_activation: sigmoid}"),
        ("activation", "layer 'gru' activation tanh, recurrent_activation sigmoid",
         "--arch layers entry {name: gru, activation: tanh, recurrent_activation: sigmoid}")]
    res = runner.invoke(cli, [str(path), str(tmp_path / "model.onnx"), "--arch", str(arch)])
    assert res.exit_code == 0, res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers:\n  - lstm\n  - nope\n")
    res = runner.invoke(cli, [str(path), str(tmp_path / "bad.onnx"), "--arch", str(bad)])
    assert res.exit_code == 2
    assert _err(res) == (
        f"rnnconvert: error: {bad}: invalid architecture for a weights-only file: layers[1] 'nope': no such layer in "
        "the file (layers: dense (dense), gru (gru), lstm (lstm)); a layer without weights needs its class "
        "(class: Activation, ...)")


K1 = WILD / "k1_aind2rnn_weights"


@pytest.mark.skipif(not K1.is_dir(), reason="no ../shared/wild")
def test_keras1_weights_only_wild_file_with_architecture_predicts_y(tmp_path, runner):
    meta = json.loads((K1 / "case.json").read_text())
    assert meta["layers"] == ["LSTM", "Dense", "Activation"]
    path = next(K1.glob("*.hdf5"))
    arch = tmp_path / "arch.yaml"           # LSTM(200, input_shape=(100, 33)) -> Dense(33) -> softmax
    arch.write_text("keras_version: 1\ninput_shape: [100, 33]\nlayers:\n  - lstm_1\n  - dense_1\n"
                    "  - {name: activation_1, class: Activation, activation: softmax}\n")
    x, y = np.load(K1 / "x.npy"), np.load(K1 / "y.npy")
    np.testing.assert_allclose(rnnconvert.predict(rnnconvert.read(path, arch=str(arch)), x), y, atol=1e-4)
    res = runner.invoke(cli, [str(path), str(tmp_path / "m.onnx"), "--arch", str(arch)])
    assert res.exit_code == 0, res.stderr
    import onnxruntime as ort
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], y, atol=1e-4)
    res = runner.invoke(cli, [str(path), str(tmp_path / "l.onnx"), "--layer", "lstm_1"])
    assert res.exit_code == 0, res.stderr
    assert ("layer 'lstm_1': activation 'tanh', inner_activation 'hard_sigmoid' (0.2x+0.5): the Keras 1 "
            "defaults (the weights do not store activations)") in res.stdout


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_layer_of_a_nested_model_matches_keras(suffix, tmp_path):
    keras.utils.set_random_seed(7)
    inner = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, return_sequences=True, name="deep")],
                             name="inner")
    i = keras.Input((None, 3))
    model = keras.Model(i, keras.layers.GRU(2, name="top")(inner(i)))
    path = tmp_path / f"nested{suffix}"
    model.save(path)
    s = select.scan(path)
    assert s.whole is None and [f.name for f in s.layers] == ["deep", "top"]
    x = _x(2, 6, 3, seed=8)
    np.testing.assert_allclose(rnnconvert.predict(select.extract(path, "deep"), x),
                               keras.ops.convert_to_numpy(inner(x)), atol=ATOL)


def test_layer_of_an_onnx_file_written_as_scan_matches_keras(tmp_path):
    """A selu SimpleRNN has no native ONNX node (rnnconvert writes a Scan): --layer still finds it."""
    from conftest import keras_cases
    case = next(c for c in keras_cases() if c.name == "simplernn_selu_dense")
    onnx_path = tmp_path / "selu.onnx"
    rnnconvert.convert(case.path, onnx_path)
    report = rnnconvert.convert(onnx_path, tmp_path / "layer.rnnc", layer="simple_rnn")
    assert report.passed and not any(c.oracle == "onnxruntime(src node)" for c in report.checks)
    import h5py
    with h5py.File(case.path, "r") as f:           # the Keras file's own arrays, read with h5py
        group = f["model_weights"]["simple_rnn"]
        weights = [np.asarray(group[n][()]) for n in [n.decode() if isinstance(n, bytes) else n
                                                     for n in group.attrs["weight_names"]]]
    assert len(weights) == 3            # kernel, recurrent_kernel, bias
    features = weights[0].shape[0]
    rnn = _fresh(lambda: keras.layers.SimpleRNN(weights[1].shape[0], activation="selu", return_sequences=True),
                 weights, features)
    x = _x(2, 8, features, seed=9)
    np.testing.assert_allclose(rnnconvert.predict(rnnconvert.read(tmp_path / "layer.rnnc"), x),
                               keras.ops.convert_to_numpy(rnn(x)), atol=ATOL)


TFW = ROOT / "fixtures" / "weights_only" / "tfkeras2_lstm_bigru_rnn"     # fixtures/make_weights_only.py


@pytest.mark.parametrize("name", ["lstm_a", "bi", "rnn_c"])
def test_tfkeras2_weights_only_layers_match_tfkeras(name):
    path = TFW / "weights.h5"
    s = select.scan(path)
    assert [(f.name, f.kind, f.bidirectional) for f in s.layers] == [
        ("lstm_a", "lstm", False), ("bi", "gru", True), ("rnn_c", "rnn", False)]
    x, y = np.load(TFW / "x.npz")[name], np.load(TFW / "y.npz")[name]
    np.testing.assert_allclose(rnnconvert.predict(select.extract(path, name), x), y, atol=ATOL)
