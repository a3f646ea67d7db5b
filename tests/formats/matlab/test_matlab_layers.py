"""MATLAB .mat with the front-end layers: wordEmbeddingLayer, convolution1dLayer, max/average/global
pooling, batchNormalizationLayer, against live Keras 3 (torch backend) and torch.

Oracles: Keras's predict (and a torch module for explicit convolution padding); written files run by
Octave on matlab/rnnconvert_predict.m (MATLAB's documented equations, 1e-4); MCOS object files
encoded by mat-io (not rnnconvert) from the Keras weights and read back (1e-5).  Refusals are
checked word for word through the CLI.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import rnnconvert
from rnnconvert.cli.commands import cli
from rnnconvert.formats import matlab
from rnnconvert.model import SIGMOID, TANH, Conv1D, DirectionWeights, InputSpec, Model, Recurrent

keras = pytest.importorskip("keras")
K = keras.layers
OCTAVE = shutil.which("octave-cli") or shutil.which("octave")
needs_octave = pytest.mark.skipif(OCTAVE is None, reason="octave is not installed")


def _models():
    return {
        "conv_causal_maxpool_bn_lstm_gap": (lambda: keras.Sequential([
            keras.Input((None, 3)), K.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu", name="conv"),
            K.MaxPooling1D(2, padding="same", name="pool"), K.BatchNormalization(name="bn"),
            K.LSTM(5, return_sequences=True, name="lstm"), K.GlobalAveragePooling1D(name="gap"),
            K.Dense(2, name="out")]), (9, 14)),
        "conv_same_strided_avgpool_gru_last": (lambda: keras.Sequential([
            keras.Input((None, 4)), K.Conv1D(6, 4, strides=2, padding="same", name="conv"),
            # stride 1: an even total padding (Keras 3's torch backend replicates an edge step where the
            # total is odd, unlike its TensorFlow backend and the reference pass)
            K.AveragePooling1D(3, strides=1, padding="same", name="pool"), K.GRU(5, name="gru")]), (11, 16)),
        "conv_valid_tanh_avgpool_lstm_gmp": (lambda: keras.Sequential([
            keras.Input((None, 3)), K.Conv1D(4, 3, dilation_rate=2, activation="tanh", name="conv"),
            K.AveragePooling1D(2, name="pool"), K.LSTM(4, return_sequences=True, name="lstm"),
            K.Dropout(0.3, name="drop"), K.GlobalMaxPooling1D(name="gmp")]), (10, 13)),
        "embedding_lstm_dense": (lambda: keras.Sequential([
            keras.Input((None,), dtype="int32"), K.Embedding(20, 4, name="embed"), K.LSTM(5, name="lstm"),
            K.Dense(3, name="out")]), (6, 9)),
    }


MODELS = _models()
_BUILT: dict = {}


def built(name, tmp_path_factory):
    """(saved .keras, Keras model, canonical model, [(x, Keras's y)]), once per model."""
    if name not in _BUILT:
        build, lengths = MODELS[name]
        keras.utils.set_random_seed(11)
        m = build()
        rng = np.random.default_rng(5)
        for layer in m.layers:
            if isinstance(layer, K.BatchNormalization):
                layer.set_weights([w + rng.uniform(0.3, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])
            if isinstance(layer, K.Embedding):
                layer.set_weights([rng.standard_normal(layer.get_weights()[0].shape).astype(np.float32)])
        path = tmp_path_factory.mktemp(name) / "model.keras"
        m.save(path)
        io = []
        for T in lengths:
            if name.startswith("embedding"):
                x = rng.integers(0, 20, (3, T)).astype(np.int32)
            else:
                x = (rng.standard_normal((3, T, m.input_shape[-1])) * 3.0).astype(np.float32)
            io.append((x, np.asarray(m.predict(x, verbose=0), np.float64)))
        _BUILT[name] = (path, m, rnnconvert.read(path), io)
    return _BUILT[name]


def _close(a, b, tol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.all(np.abs(a - b) <= tol), np.abs(a - b).max()


@pytest.mark.parametrize("version", ["7", "7.3"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_written_layers_read_back_and_run_in_octave_like_keras(name, version, tmp_path, tmp_path_factory):
    _, _, model, io = built(name, tmp_path_factory)
    dst = tmp_path / "model.mat"
    matlab.write(model, dst, version=version)
    back = matlab.read(dst)
    kinds = [layer.kind for layer in model.layers]
    assert [layer.kind for layer in back.layers if layer.kind != "activation" or "activation" in kinds] == kinds
    for x, y in io:
        _close(rnnconvert.predict(back, x), y, 1e-5)
    if version == "7.3":
        return                  # Octave reads v7 only; the v7 file is run below
    if OCTAVE is None:
        pytest.skip("octave is not installed")
    for x, y in io:
        _close(matlab.run(dst, x, model), y, 1e-4)


def test_written_structs_use_matlab_names_and_shapes(tmp_path, tmp_path_factory):
    import scipy.io
    _, _, model, _ = built("conv_causal_maxpool_bn_lstm_gap", tmp_path_factory)
    matlab.write(model, tmp_path / "m.mat")
    cells = scipy.io.loadmat(tmp_path / "m.mat", simplify_cells=True)["layers"]
    by_class = {c["Class"].rsplit(".", 1)[-1]: c for c in cells}
    conv = by_class["Convolution1DLayer"]
    assert conv["Weights"].shape == (3, 3, 4) and conv["PaddingMode"] == "causal" and conv["DilationFactor"] == 2
    assert by_class["MaxPooling1DLayer"]["PaddingMode"] == "same" and by_class["MaxPooling1DLayer"]["Stride"] == 2
    assert by_class["BatchNormalizationLayer"]["TrainedVariance"].shape == (4,)
    assert "GlobalAveragePooling1DLayer" in by_class and "ReLULayer" in by_class


@needs_octave
def test_explicit_padding_runs_in_octave_like_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    conv, lstm = torch.nn.Conv1d(3, 4, 3, stride=2, padding=2), torch.nn.LSTM(4, 5, batch_first=True)
    x = np.random.default_rng(0).normal(size=(3, 11, 3)).astype(np.float32) * 3
    with torch.no_grad():
        y = lstm(conv(torch.from_numpy(x).transpose(1, 2)).transpose(1, 2))[0].numpy()
    sd = {k: v.detach().numpy() for k, v in (conv.state_dict() | lstm.state_dict()).items()}
    model = Model([Conv1D("conv", sd["weight"].transpose(2, 1, 0).copy(), sd["bias"], strides=2, padding="explicit",
                          pads=(2, 2)),
                   Recurrent("lstm", "lstm", 5, "forward", [DirectionWeights(sd["weight_ih_l0"], sd["weight_hh_l0"],
                                                                            sd["bias_ih_l0"], sd["bias_hh_l0"])],
                             [SIGMOID, TANH, TANH])], InputSpec(features=3))
    matlab.write(model, tmp_path / "m.mat")
    _close(matlab.run(tmp_path / "m.mat", x, model), y, 1e-4)
    _close(rnnconvert.predict(matlab.read(tmp_path / "m.mat"), x), y, 1e-5)


# ------------------------------------------------------------------ MCOS objects encoded by mat-io

def _learn(v):
    return {"Version": np.array([[2.0]]), "Value": np.asarray(v, np.float32)}


def test_matlab_objects_read_like_keras(tmp_path, tmp_path_factory):
    pytest.importorskip("matio", reason="mat-io (test oracle for MATLAB object files) is not installed")
    from matio import save_to_mat
    from matio.utils.matclass import MatlabOpaque
    _, m, _, io = built("conv_causal_maxpool_bn_lstm_gap", tmp_path_factory)
    w = {layer.name: [np.asarray(a) for a in layer.get_weights()] for layer in m.layers}
    kernel, bias = w["conv"]
    gamma, beta, mean, var = w["bn"]
    Wk, Rk, bk = w["lstm"]        # Keras LSTM: [in, 4H] / [H, 4H], gates i f c o = MATLAB's i f g o
    dense_k, dense_b = w["out"]
    num = lambda v: np.array([[float(v)]])  # noqa: E731
    layers = [
        ("SequenceInputLayer", {"Name": "in", "InputSize": num(3), "Normalization": np.zeros((0, 0))}),
        ("Convolution1DLayer", {"Name": "conv", "FilterSize": num(3), "NumChannels": num(3), "NumFilters": num(4),
                                "Stride": num(1), "DilationFactor": num(2), "PaddingMode": "causal",
                                "PaddingSize": np.array([[4.0, 0.0]]), "Weights": _learn(kernel),
                                "Bias": _learn(bias.reshape(1, -1))}),
        ("ReLULayer", {"Name": "relu"}),
        ("MaxPooling1DLayer", {"Name": "pool", "PoolSize": num(2), "Stride": num(2), "PaddingMode": "same",
                               "PaddingSize": np.zeros((1, 2))}),
        ("BatchNormalizationLayer", {"Name": "bn", "TrainedMean": mean.reshape(-1, 1), "TrainedVariance":
                                     var.reshape(-1, 1), "Offset": _learn(beta.reshape(-1, 1)),
                                     "Scale": _learn(gamma.reshape(-1, 1)), "Epsilon": num(1e-3)}),
        ("LSTMLayer", {"Name": "lstm", "NumHiddenUnits": num(5), "ReturnSequence": np.array([[True]]),
                       "StateActivationFunction": "tanh", "GateActivationFunction": "sigmoid",
                       "InputWeights": _learn(Wk.T), "RecurrentWeights": _learn(Rk.T),
                       "Bias": _learn(bk.reshape(-1, 1))}),
        ("GlobalAveragePooling1DLayer", {"Name": "gap"}),
        ("FullyConnectedLayer", {"Name": "out", "Weights": _learn(dense_k.T), "Bias": _learn(dense_b.reshape(-1, 1))}),
    ]
    objs = np.empty((len(layers), 1), dtype=object)
    for k, (cls, props) in enumerate(layers):
        objs[k, 0] = MatlabOpaque(props, "nnet.cnn.layer." + cls)
    path = tmp_path / "net.mat"
    save_to_mat(str(path), {"net": MatlabOpaque({"Version": num(1), "Layers": objs}, "SeriesNetwork")}, version="v7")
    model = rnnconvert.read(path)
    assert [layer.kind for layer in model.layers] == ["conv1d", "activation", "pooling1d", "batch_norm", "lstm",
                                                      "pooling1d", "dense"]
    for x, y in io:
        _close(rnnconvert.predict(model, x), y, 1e-5)


# ------------------------------------------------------------------------------------- refusals

REFUSED = {
    "masking": (lambda: keras.Sequential([keras.Input((None, 3)), K.Masking(0.0, name="mask"),
                                          K.LSTM(4, name="lstm")]),
                "layers[0] 'mask': Masking: MATLAB layers take no mask (masked steps would be computed as real "
                "steps)"),
    "mask_zero": (lambda: keras.Sequential([keras.Input((None,), dtype="int32"),
                                            K.Embedding(9, 3, mask_zero=True, name="embed"), K.LSTM(4, name="lstm")]),
                  "layers[0] 'embed': mask_zero masks padding steps; MATLAB layers take no mask (padding would be "
                  "computed as real steps)"),
    "flatten": (lambda: keras.Sequential([keras.Input((6, 3)), K.LSTM(4, return_sequences=True, name="lstm"),
                                          K.Flatten(name="flat")]),
                "layers[1] 'flat': Flatten folds time into features; MATLAB's flattenLayer collapses only spatial "
                "dimensions, never time"),
    "groups": (lambda: keras.Sequential([keras.Input((None, 4)), K.Conv1D(4, 3, groups=2, name="conv"),
                                         K.GRU(3, name="gru")]),
               "layers[0] 'conv': groups 2: convolution1dLayer has no groups (MATLAB groups only 2-D convolutions)"),
}


@pytest.mark.parametrize("what", sorted(REFUSED))
def test_cli_refuses_what_matlab_cannot_express(what, runner, tmp_path):
    build, message = REFUSED[what]
    src, dst = tmp_path / "model.keras", tmp_path / "model.mat"
    build().save(src)
    res = runner.invoke(cli, [str(src), str(dst)])
    assert res.exit_code == 2
    assert res.stderr.strip() == f"rnnconvert: error: {dst}: cannot write MATLAB layers: {message}"
    assert not dst.exists()


# ------------------------------------------- rnnconvert_import.m / rnnconvert_export.m in Octave

@needs_octave
@pytest.mark.parametrize("name", sorted(MODELS))
def test_import_builds_matlab_layers_and_export_writes_them_back(name, tmp_path, tmp_path_factory):
    """The scripts run unmodified on tests/matlab_standins (MATLAB's constructors, property names and
    shape checks): written .mat -> rnnconvert_import -> dlnetwork -> rnnconvert_export -> read, like Keras."""
    import subprocess
    from conftest import ROOT
    _, _, model, io = built(name, tmp_path_factory)
    matlab.write(model, tmp_path / "model.mat")
    code = (f"addpath('{ROOT / 'matlab'}'); addpath('{ROOT / 'tests' / 'matlab_standins'}'); "
            "[layers, net] = rnnconvert_import('model.mat'); "
            "classes = cell(numel(layers), 1); for k = 1:numel(layers), classes{k} = class(layers(k)); end; "
            "save('-v7', 'classes.mat', 'classes'); rnnconvert_export(net, 'exported.mat');")
    proc = subprocess.run([OCTAVE, "--no-gui", "--quiet", "--norc", "--eval", code], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import scipy.io
    classes = [str(c[0][0]) for c in scipy.io.loadmat(tmp_path / "classes.mat")["classes"]]
    written = [str(s[0, 0]["Class"][0]) for s in scipy.io.loadmat(tmp_path / "model.mat")["layers"].ravel()]
    assert classes == written
    back = matlab.read(tmp_path / "exported.mat")
    assert [(type(a), a.name) for a in back.layers] == [(type(b), b.name) for b in matlab.read(tmp_path / "model.mat").layers]
    for x, y in io:
        _close(rnnconvert.predict(back, x), y, 1e-5)
    _close(matlab.run(tmp_path / "exported.mat", io[0][0], model), io[0][1], 1e-4)
