"""MATLAB .mat: MCOS network objects read (v5 and v7.3), the `layers` layout written, Octave as runtime.

Independent oracles: MCOS files are encoded here by mat-io's writer (not rnnconvert's code) from
weights whose outputs torch or Keras compute; written .mat files are run by Octave on
matlab/rnnconvert_predict.m (MATLAB's documented equations, not rnnconvert's reference pass) and
compared with the fixtures' stored framework predictions.
"""
from __future__ import annotations

import shutil

import numpy as np
import scipy.io
import pytest

import rnnconvert
from rnnconvert.errors import InputError, UnsupportedError
from rnnconvert.formats import matlab

from conftest import cases, matlab_cannot_express

OCTAVE = shutil.which("octave-cli") or shutil.which("octave")
needs_octave = pytest.mark.skipif(OCTAVE is None, reason="octave is not installed")
RNG_SEED = 7


# ------------------------------------------------------------------------- MCOS files via mat-io

def _matio():
    pytest.importorskip("matio", reason="mat-io (test oracle for MATLAB object files) is not installed")
    from matio import save_to_mat
    from matio.utils.matclass import MatlabOpaque, MatlabOpaqueArray
    return save_to_mat, MatlabOpaque, MatlabOpaqueArray


def _learn(v):
    return {"Version": np.array([[2.0]]), "Value": np.asarray(v, np.float32)}


def _input_layer(C, **norm):
    props = {"Name": "sequenceinput", "InputSize": np.array([[float(C)]]), "Normalization": np.zeros((0, 0))}
    props.update(norm)
    return ("SequenceInputLayer", props)


def _save_network(path, layers, version, as_array=False, name="net"):
    """A SeriesNetwork (or a bare heterogeneous Layer array) written by mat-io as MCOS objects."""
    save_to_mat, MatlabOpaque, MatlabOpaqueArray = _matio()
    objs = np.empty((len(layers), 1), dtype=object)
    for k, (cls, props) in enumerate(layers):
        objs[k, 0] = MatlabOpaque(props, "nnet.cnn.layer." + cls)
    if as_array:
        value = MatlabOpaqueArray(objs, "nnet.cnn.layer.Layer")
    else:
        value = MatlabOpaque({"Version": np.array([[1.0]]), "Layers": objs}, "SeriesNetwork")
    save_to_mat(str(path), {name: value, "unrelated": np.ones((2, 3))}, version=version)
    return path


def _torch_lstm(C, H, bidirectional=False, states=False):
    torch = pytest.importorskip("torch")
    torch.manual_seed(RNG_SEED)
    m = torch.nn.LSTM(C, H, batch_first=True, bidirectional=bidirectional).double()
    n = 2 if bidirectional else 1
    h0 = torch.randn(n, 1, H, dtype=torch.float64) if states else None
    c0 = torch.randn(n, 1, H, dtype=torch.float64) if states else None
    return m, h0, c0


def _lstm_layer(m, H, mode, h0=None, c0=None, bi=False):
    sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    sfx = ["", "_reverse"] if bi else [""]
    W = np.concatenate([sd[f"weight_ih_l0{s}"] for s in sfx])
    R = np.concatenate([sd[f"weight_hh_l0{s}"] for s in sfx])
    b = np.concatenate([sd[f"bias_ih_l0{s}"] + sd[f"bias_hh_l0{s}"] for s in sfx]).reshape(-1, 1)
    props = {"Name": "lstm_named_like_a_gru", "NumHiddenUnits": np.array([[float(H)]]),
             "ReturnSequence": np.array([[mode == "sequence"]]), "StateActivationFunction": "tanh",
             "GateActivationFunction": "sigmoid", "InputWeights": _learn(W),
             "RecurrentWeights": _learn(R), "Bias": _learn(b)}
    if h0 is not None:
        props["HiddenState"] = {"Value": h0.numpy().reshape(-1, 1).astype(np.float32), "Remember": np.array([[True]])}
        props["CellState"] = {"Value": c0.numpy().reshape(-1, 1).astype(np.float32), "Remember": np.array([[True]])}
    return ("BiLSTMLayer" if bi else "LSTMLayer", props)


def _fc(K, b, name="fc"):
    return ("FullyConnectedLayer", {"Name": name, "Weights": _learn(K), "Bias": _learn(b.reshape(-1, 1))})


def _x(batch=3, T=9, C=4, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, T, C))


def _close(a, b, tol=1e-4):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.all(np.abs(a - b) <= tol + tol * np.abs(b)), np.abs(a - b).max()


@pytest.mark.parametrize("version", ["v7", "v7.3"])
@pytest.mark.parametrize("as_array", [False, True])
def test_lstm_network_object_matches_torch(tmp_path, version, as_array):
    torch = pytest.importorskip("torch")
    C, H = 4, 5
    m, _, _ = _torch_lstm(C, H)
    fc = np.random.default_rng(1).normal(size=(3, H))
    fb = np.random.default_rng(2).normal(size=3)
    path = _save_network(tmp_path / "net.mat", [_input_layer(C), _lstm_layer(m, H, "last"), _fc(fc, fb),
                                                ("SoftmaxLayer", {"Name": "sm"}),
                                                ("ClassificationOutputLayer", {"Name": "classoutput"})],
                         version, as_array=as_array)
    x = _x(C=C)
    with torch.no_grad():
        y_seq, _ = m(torch.from_numpy(x))
    logits = y_seq[:, -1].numpy().astype(np.float32) @ fc.T.astype(np.float32) + fb.astype(np.float32)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    model = rnnconvert.read(path)
    assert [layer.kind for layer in model.layers] == ["lstm", "dense", "activation"]
    assert model.layers[0].name == "lstm_named_like_a_gru"          # the kind came from the class
    assert model.source["ignored_layers"] == ["classoutput (ClassificationOutputLayer)"]
    _close(rnnconvert.predict(model, x), expected)


def test_bilstm_last_and_nonzero_states_match_torch(tmp_path):
    torch = pytest.importorskip("torch")
    C, H = 3, 4
    m, h0, c0 = _torch_lstm(C, H, bidirectional=True, states=True)
    path = _save_network(tmp_path / "bi.mat", [_input_layer(C), _lstm_layer(m, H, "last", h0, c0, bi=True)], "v7")
    x = _x(C=C)
    with torch.no_grad():
        y, _ = m(torch.from_numpy(x), (h0.expand(2, 3, H).contiguous(), c0.expand(2, 3, H).contiguous()))
    model = rnnconvert.read(path)
    layer = model.layers[0]
    assert layer.direction == "bidirectional" and layer.output == "last_step"
    assert layer.weights[1].h0 is not None and layer.weights[1].c0 is not None
    _close(rnnconvert.predict(model, x), y[:, -1].numpy())       # backward half: after one step


def _gru_layer(W, R, b, mode, H):
    return ("GRULayer", {"Name": "gru", "NumHiddenUnits": np.array([[float(H)]]),
                         "ReturnSequence": np.array([[True]]), "ResetGateMode": mode,
                         "StateActivationFunction": "tanh", "GateActivationFunction": "sigmoid",
                         "InputWeights": _learn(W), "RecurrentWeights": _learn(R), "Bias": _learn(b.reshape(-1, 1))})


@pytest.mark.parametrize("mode", ["after-multiplication", "recurrent-bias-after-multiplication"])
def test_gru_reset_after_modes_match_torch(tmp_path, mode):
    torch = pytest.importorskip("torch")
    C, H = 3, 4
    torch.manual_seed(3)
    m = torch.nn.GRU(C, H, batch_first=True).double()
    if mode == "after-multiplication":
        with torch.no_grad():
            m.bias_hh_l0.zero_()
    sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    b = sd["bias_ih_l0"] if mode == "after-multiplication" else np.concatenate([sd["bias_ih_l0"], sd["bias_hh_l0"]])
    path = _save_network(tmp_path / "gru.mat", [_input_layer(C), _gru_layer(
        sd["weight_ih_l0"], sd["weight_hh_l0"], b, mode, H)], "v7.3")
    x = _x(C=C)
    with torch.no_grad():
        y, _ = m(torch.from_numpy(x))
    model = rnnconvert.read(path)
    assert model.layers[0].reset_after and model.layers[0].has_recurrent_bias == (mode != "after-multiplication")
    _close(rnnconvert.predict(model, x), y.numpy())


def test_gru_before_multiplication_matches_keras(tmp_path):
    keras = pytest.importorskip("keras")
    C, H = 3, 4
    keras.utils.set_random_seed(5)
    k = keras.Sequential([keras.Input((None, C)), keras.layers.GRU(H, reset_after=False, return_sequences=True)])
    kernel, rec, bias = [np.asarray(w) for w in k.layers[0].get_weights()]
    zrh_to_rzh = lambda a: np.concatenate([a[..., H:2 * H], a[..., :H], a[..., 2 * H:]], axis=-1)  # noqa: E731
    W, R, b = zrh_to_rzh(kernel).T, zrh_to_rzh(rec).T, zrh_to_rzh(bias)
    bias_rng = np.random.default_rng(4).normal(size=b.shape) * 0.3
    k.layers[0].set_weights([kernel, rec, bias + np.concatenate(
        [bias_rng[H:2 * H], bias_rng[:H], bias_rng[2 * H:]])])
    path = _save_network(tmp_path / "gru.mat", [_input_layer(C), _gru_layer(W, R, b + bias_rng,
                                                                            "before-multiplication", H)], "v7")
    x = _x(C=C).astype(np.float32)
    model = rnnconvert.read(path)
    assert model.layers[0].reset_after is False
    _close(rnnconvert.predict(model, x), np.asarray(k.predict(x, verbose=0)))


NORMALIZATIONS = {
    "zerocenter": ({"Mean": [0.5, -1.0, 2.0]}, lambda x, s: x - s["Mean"]),
    "zscore": ({"Mean": [0.5, -1.0, 2.0], "StandardDeviation": [2.0, 0.5, 4.0]},
               lambda x, s: (x - s["Mean"]) / s["StandardDeviation"]),
    "rescale-symmetric": ({"Min": [-3.0, 0.0, 1.0], "Max": [3.0, 2.0, 9.0]},
                          lambda x, s: -1 + 2 * (x - s["Min"]) / (s["Max"] - s["Min"])),
    "rescale-zero-one": ({"Min": [-3.0, 0.0, 1.0], "Max": [3.0, 2.0, 9.0]},
                         lambda x, s: (x - s["Min"]) / (s["Max"] - s["Min"])),
}


@pytest.mark.parametrize("kind", sorted(NORMALIZATIONS))
def test_input_normalization_matches_torch_on_normalized_input(tmp_path, kind):
    torch = pytest.importorskip("torch")
    stats, formula = NORMALIZATIONS[kind]
    C, H = 3, 4
    m, _, _ = _torch_lstm(C, H)
    arrays = {k: np.asarray(v, np.float32).reshape(-1, 1) for k, v in stats.items()}
    path = _save_network(tmp_path / "n.mat", [_input_layer(C, Normalization=kind, **arrays),
                                              _lstm_layer(m, H, "sequence")], "v7")
    x = _x(C=C) * 3
    normalized = formula(x, {k: np.asarray(v, np.float64) for k, v in stats.items()})
    with torch.no_grad():
        y, _ = m(torch.from_numpy(normalized))
    model = rnnconvert.read(path)
    assert "input normalization folded" in model.source["notes"][0]
    _close(rnnconvert.predict(model, x), y.numpy())


def _two_networks(path, C=2, H=3):
    """A v7 file holding the same LSTM SeriesNetwork twice, as variables a and b."""
    m, _, _ = _torch_lstm(C, H)
    save_to_mat, MatlabOpaque, _ = _matio()
    layers = np.empty((2, 1), dtype=object)
    layers[0, 0] = MatlabOpaque(_input_layer(C)[1], "nnet.cnn.layer.SequenceInputLayer")
    layers[1, 0] = MatlabOpaque(_lstm_layer(m, H, "last")[1], "nnet.cnn.layer.LSTMLayer")
    net = MatlabOpaque({"Layers": layers}, "SeriesNetwork")
    save_to_mat(str(path), {"a": net, "b": net}, version="v7")
    return path


def test_several_networks_need_var(tmp_path):
    H = 3
    path = _two_networks(tmp_path / "two.mat", H=H)
    with pytest.raises(InputError) as e:
        rnnconvert.read(path)
    assert e.value.message == ("several variables hold networks: a, b; choose one with --var NAME")
    assert rnnconvert.read(path, var="b").layers[0].hidden == H
    with pytest.raises(InputError) as e:
        rnnconvert.read(path, var="c")
    assert e.value.message == "no variable 'c'; the file holds: a, b"


def test_untrained_layer_array_is_refused(tmp_path):
    empty = {"Value": np.zeros((0, 0))}
    path = _save_network(tmp_path / "layers.mat", [
        _input_layer(3),
        ("LSTMLayer", {"Name": "lstm", "NumHiddenUnits": np.array([[8.0]]), "InputWeights": empty,
                       "RecurrentWeights": empty, "Bias": empty}),
        ("FullyConnectedLayer", {"Name": "fc", "Weights": empty, "Bias": empty})], "v7", as_array=True,
        name="layers_1")
    with pytest.raises(InputError) as e:
        rnnconvert.read(path)
    assert e.value.message == (
        "variable 'layers_1' has no learned weights (layers lstm, fc are untrained layer definitions); "
        "train the network first and save the trained network (save('net.mat','net')) or export it with "
        "matlab/rnnconvert_export.m")


def _workspace(path, version, trained_names=("net",), untrained_name="layers"):
    """What `save` writes after training: the untrained Layer array given to trainNetwork (`layers`) and
    the trained SeriesNetwork(s) it returned, as MCOS objects written by mat-io."""
    save_to_mat, MatlabOpaque, MatlabOpaqueArray = _matio()
    C, H = 3, 4
    m, _, _ = _torch_lstm(C, H)
    empty = {"Version": np.array([[2.0]]), "Value": np.zeros((0, 0), np.float32)}
    untrained = np.empty((3, 1), dtype=object)
    untrained[0, 0] = MatlabOpaque(_input_layer(C)[1], "nnet.cnn.layer.SequenceInputLayer")
    untrained[1, 0] = MatlabOpaque({"Name": "lstm", "NumHiddenUnits": np.array([[float(H)]]), "InputWeights": empty,
                                    "RecurrentWeights": empty, "Bias": empty}, "nnet.cnn.layer.LSTMLayer")
    untrained[2, 0] = MatlabOpaque({"Name": "regressionoutput"}, "nnet.cnn.layer.RegressionOutputLayer")
    trained = np.empty((2, 1), dtype=object)
    trained[0, 0] = MatlabOpaque(_input_layer(C)[1], "nnet.cnn.layer.SequenceInputLayer")
    trained[1, 0] = MatlabOpaque(_lstm_layer(m, H, "sequence")[1], "nnet.cnn.layer.LSTMLayer")
    net = MatlabOpaque({"Version": np.array([[1.0]]), "Layers": trained}, "SeriesNetwork")
    variables = {untrained_name: MatlabOpaqueArray(untrained, "nnet.cnn.layer.Layer"), "unrelated": np.ones((2, 3))}
    variables.update({name: net for name in trained_names})
    save_to_mat(str(path), variables, version=version)
    return path, m, C


@pytest.mark.parametrize("version", ["v7", "v7.3"])
def test_workspace_with_untrained_layers_and_trained_net_reads_the_net(runner, tmp_path, version):
    """`save` after training holds `layers` (no weights) and `net`: the trained one is read, a note says so,
    and the ONNX written from it computes what torch computes with the same weights."""
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from rnnconvert.cli import cli
    path, m, C = _workspace(tmp_path / "workspace.mat", version)
    note = ("read variable 'net', the one trained network in the file; 'layers' holds untrained layer "
            "definitions (no learned weights), left out (--var NAME picks another)")
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "net.onnx")])
    assert res.exit_code == 0, res.stderr
    assert f"  note: {note}" in res.output.splitlines()
    x = _x(C=C)
    with torch.no_grad():
        y, _ = m(torch.from_numpy(x))
    sess = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    _close(sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0], y.numpy())
    res = runner.invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 0, res.stderr
    assert f"rnnconvert: note: {note}" in res.stderr.splitlines()
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "layers.onnx"), "--var", "layers"])
    assert res.exit_code == 2
    assert "variable 'layers' has no learned weights (layers lstm are untrained layer definitions)" in res.stderr


def test_workspace_with_two_trained_networks_needs_var(runner, tmp_path):
    from rnnconvert.cli import cli
    path, _, _ = _workspace(tmp_path / "workspace.mat", "v7", trained_names=("net", "net2"))
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"rnnconvert: error: {path}: several variables hold trained networks: net, net2; "
                                 "choose one with --var NAME")
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "out.onnx"), "--var", "net2"])
    assert res.exit_code == 0, res.stderr


def test_unsupported_layer_and_normalization_are_refused(tmp_path):
    C, H = 3, 4
    m, _, _ = _torch_lstm(C, H)
    path = _save_network(tmp_path / "u.mat", [
        _input_layer(C, Normalization="custom-function"), _lstm_layer(m, H, "last"),
        ("Convolution2DLayer", {"Name": "conv"})], "v7")
    with pytest.raises(UnsupportedError) as e:
        rnnconvert.read(path)
    assert e.value.message == (
        "layers(1) 'sequenceinput' (SequenceInputLayer): Normalization 'custom-function' is not supported "
        "(none, zerocenter, zscore, rescale-symmetric, rescale-zero-one are); a function handle cannot be "
        "converted; layers(3) 'conv' (Convolution2DLayer): layer class not supported (supported: "
        "sequenceInputLayer, lstmLayer, bilstmLayer, gruLayer, fullyConnectedLayer, relu/tanh/sigmoid/softmax "
        "layers, dropoutLayer, flattenLayer, wordEmbeddingLayer, convolution1dLayer, max/average/global pooling "
        "1-D layers, batchNormalizationLayer, output layers)")


def test_plain_matrices_without_mapping_are_refused(tmp_path):
    import scipy.io
    path = tmp_path / "w.mat"
    scipy.io.savemat(str(path), {"W": np.ones((8, 2)), "R": np.ones((8, 2))})
    with pytest.raises(InputError) as e:
        rnnconvert.read(path)
    assert e.value.message == ("no MATLAB network or layer array in the file (variables: W, R); for plain "
                               "matrices give a mapping file (--mapping map.yaml; schemas/matlab.md)")


# --------------------------------------------------------------------------------- bare matrices

def test_bare_matrices_with_mapping_match_torch(tmp_path):
    torch = pytest.importorskip("torch")
    import scipy.io
    C, H = 3, 5
    m, _, _ = _torch_lstm(C, H)
    sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    gates = "ifgo"
    mats = {}
    for k, g in enumerate(gates):
        mats[f"w_i{g}"] = sd["weight_ih_l0"][k * H:(k + 1) * H]
        mats[f"w_h{g}"] = sd["weight_hh_l0"][k * H:(k + 1) * H]
        mats[f"b_i{g}"] = sd["bias_ih_l0"][k * H:(k + 1) * H][None]
        mats[f"b_h{g}"] = sd["bias_hh_l0"][k * H:(k + 1) * H][None]
    path = tmp_path / "w.mat"
    scipy.io.savemat(str(path), mats)
    mapping = tmp_path / "map.yaml"
    mapping.write_text(
        "layers:\n"
        "  - {layer: lstmLayer, InputWeights: [w_ii, w_if, w_ig, w_io], RecurrentWeights: [w_hi, w_hf, w_hg, w_ho],\n"
        "     Bias: [b_ii, b_if, b_ig, b_io], RecurrentBias: [b_hi, b_hf, b_hg, b_ho], OutputMode: sequence}\n")
    x = _x(C=C)
    with torch.no_grad():
        y, _ = m(torch.from_numpy(x))
    _close(rnnconvert.predict(rnnconvert.read(path, mapping=str(mapping)), x), y.numpy())
    _close(rnnconvert.predict(rnnconvert.read(path, arch=str(mapping)), x), y.numpy())


# ----------------------------------------------------------------------------- writing + Octave

def _writable_cases():
    out = []
    for c in cases("keras3", "tfkeras2", suffixes=(".keras", ".h5")) + cases("tf2onnx", "torch_onnx",
                                                                           suffixes=(".onnx",)):
        out.append(c)
    return out


WRITE_CASES = _writable_cases()




@pytest.mark.parametrize("case", WRITE_CASES, ids=[c.id for c in WRITE_CASES])
def test_fixture_to_mat_runs_in_octave_like_the_source_framework(case, tmp_path):
    model = rnnconvert.read(case.path)
    dst = tmp_path / "model.mat"
    reason = matlab_cannot_express(model)
    if reason:
        with pytest.raises(UnsupportedError) as exc:
            matlab.write(model, dst)
        assert exc.value.message.startswith("cannot write MATLAB layers: layers[")
        assert reason in exc.value.message
        assert not dst.exists()
        return
    notes = matlab.write(model, dst)
    back = matlab.read(dst)
    split = {f"{a.name}_{a.activation.name}" for a in model.layers     # activations written as their own layer
             if a.kind in ("dense", "conv1d") and a.activation.name != "linear"}
    for a, b in zip(model.layers, [b for b in back.layers if b.name not in split]):   # lossless where MATLAB has it
        assert a.kind == b.kind and a.name == b.name and type(a) is type(b)
        if a.kind in ("lstm", "gru") and not any("slope" in n for n in notes):
            assert (a.output == b.output or a.output == "final_state" and b.output == "last_step")
            for wa, wb in zip(a.weights, b.weights):
                np.testing.assert_array_equal(wa.W, wb.W)
                np.testing.assert_array_equal(wa.R, wb.R)
                np.testing.assert_allclose(wa.Wb + wa.Rb, wb.Wb + wb.Rb, rtol=1e-6, atol=1e-7)
        if a.kind == "dense":
            np.testing.assert_array_equal(a.kernel, b.kernel)
    x, y = case.io()[0][1], rnnconvert.predict(model, case.io()[0][1])
    if model.input.layout == "time_batch_feature":          # a .mat is read batch-major
        x, y = x.transpose(1, 0, 2), (y.transpose(1, 0, 2) if y.ndim == 3 else y)
    _close(rnnconvert.predict(back, x), y, tol=1e-6)
    if OCTAVE is None:
        pytest.skip("octave is not installed")
    for key, x, y in case.io():
        _close(matlab.run(dst, x, model), y)


def test_enough_fixtures_are_writable(tmp_path):
    written = 0
    for case in WRITE_CASES:
        try:
            matlab.write(rnnconvert.read(case.path), tmp_path / "m.mat")
            written += 1
        except UnsupportedError:
            pass
    assert written >= 28


@needs_octave
def v73_to_v7_independently(src, dst):
    """Octave cannot load v7.3 cells of structs: rewrite as v7 with hdf5storage and scipy, not rnnconvert."""
    hdf5storage = pytest.importorskip("hdf5storage")
    cells = hdf5storage.loadmat(str(src))["layers"]
    out = np.empty(cells.shape, dtype=object)
    for idx, record in np.ndenumerate(cells):
        fields = {}
        for name in record.dtype.names:
            v = record[name][0]
            fields[name] = str(v.flat[0]) if v.dtype.kind == "U" else v
        out[idx] = fields
    scipy.io.savemat(str(dst), {"layers": out})


def test_v73_write_reads_back_and_runs(tmp_path):
    case = next(c for c in cases("tfkeras2", suffixes=(".h5",)) if c.name == "gru_reset_before_last")
    model = rnnconvert.read(case.path)
    dst = tmp_path / "m73.mat"
    matlab.write(model, dst, version="7.3")
    assert open(dst, "rb").read(19) == b"MATLAB 7.3 MAT-file"
    back = matlab.read(dst)
    np.testing.assert_array_equal(back.layers[0].weights[0].W, model.layers[0].weights[0].W)
    v7 = tmp_path / "m7.mat"
    v73_to_v7_independently(dst, v7)
    if OCTAVE is None:
        pytest.skip("octave is not installed")
    for key, x, y in case.io():
        _close(matlab.run(v7, x, model), y)


@needs_octave
@pytest.mark.parametrize("gate,state", [("hard-sigmoid", "softsign"), ("sigmoid", "relu")])
def test_matlab_activations_octave_matches_onnxruntime(tmp_path, gate, state):
    """A MATLAB-layout file with other activations: Octave on the .mat vs onnxruntime on the ONNX."""
    ort = pytest.importorskip("onnxruntime")
    import scipy.io
    rng = np.random.default_rng(11)
    C, H = 3, 4
    layer = {"Name": "lstm", "Class": "nnet.cnn.layer.LSTMLayer", "NumHiddenUnits": float(H),
             "OutputMode": "sequence", "StateActivationFunction": state, "GateActivationFunction": gate,
             "InputWeights": rng.normal(size=(4 * H, C)).astype(np.float32),
             "RecurrentWeights": rng.normal(size=(4 * H, H)).astype(np.float32),
             "Bias": rng.normal(size=(4 * H, 1)).astype(np.float32),
             "HiddenState": rng.normal(size=(H, 1)).astype(np.float32),
             "CellState": rng.normal(size=(H, 1)).astype(np.float32)}
    cell = np.empty((2, 1), dtype=object)
    cell[0, 0] = {"Name": "in", "Class": "nnet.cnn.layer.SequenceInputLayer", "InputSize": float(C),
                  "Normalization": "none"}
    cell[1, 0] = layer
    src = tmp_path / "layers.mat"
    scipy.io.savemat(str(src), {"layers": cell})
    model = rnnconvert.read(src)
    onnx_path = tmp_path / "m.onnx"
    rnnconvert.write(model, onnx_path)
    x = _x(C=C).astype(np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    y_ort = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    _close(matlab.run(src, x, model), y_ort)


def test_write_refusals_name_the_layer(tmp_path):
    rnn = next(c for c in cases("tfkeras2", suffixes=(".h5",)) if c.name == "simplernn_tanh")
    with pytest.raises(UnsupportedError) as e:
        matlab.write(rnnconvert.read(rnn.path), tmp_path / "m.mat")
    assert e.value.message == ("cannot write MATLAB layers: layers[0] 'simple_rnn': MATLAB has no built-in "
                               "simple RNN layer")
    bi = next(c for c in cases("keras3", suffixes=(".keras",)) if c.name == "bilstm_concat_last")
    with pytest.raises(UnsupportedError) as e:
        matlab.write(rnnconvert.read(bi.path), tmp_path / "m.mat")
    assert e.value.message == (
        "cannot write MATLAB layers: layers[0] 'bidirectional': the backward direction's final state (Keras "
        "return_sequences=False) is not bilstmLayer OutputMode 'last', which takes the backward state after "
        "one step")


def test_runtime_unavailable_without_octave(tmp_path, monkeypatch):
    from rnnconvert.formats.matlab import runtime
    from rnnconvert.errors import RuntimeUnavailable
    monkeypatch.setattr(runtime.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeUnavailable, match="octave is not installed"):
        runtime.run(tmp_path / "x.mat", np.zeros((1, 2, 3)), None)


def test_sniff():
    from rnnconvert.formats import for_reading
    assert for_reading("net.mat").name == "matlab"


def test_dag_network_must_be_a_chain(tmp_path):
    C, H = 2, 3
    m, _, _ = _torch_lstm(C, H)
    save_to_mat, MatlabOpaque, _ = _matio()
    layers = np.empty((3, 1), dtype=object)
    layers[0, 0] = MatlabOpaque(_input_layer(C)[1], "nnet.cnn.layer.SequenceInputLayer")
    layers[1, 0] = MatlabOpaque(_lstm_layer(m, H, "last")[1], "nnet.cnn.layer.LSTMLayer")
    layers[2, 0] = MatlabOpaque(_fc(np.ones((2, H)), np.ones(2))[1], "nnet.cnn.layer.FullyConnectedLayer")
    chain = MatlabOpaque({"Layers": layers, "Connections": np.array([[1.0, 2.0], [2.0, 3.0]])}, "DAGNetwork")
    skip = MatlabOpaque({"Layers": layers, "Connections": np.array([[1.0, 2.0], [1.0, 3.0]])}, "DAGNetwork")
    save_to_mat(str(tmp_path / "dag.mat"), {"chain": chain, "skip": skip}, version="v7")
    assert [x.kind for x in rnnconvert.read(tmp_path / "dag.mat", var="chain").layers] == ["lstm", "dense"]
    with pytest.raises(UnsupportedError) as e:
        rnnconvert.read(tmp_path / "dag.mat", var="skip")
    assert e.value.message == ("variable 'skip' is a DAGNetwork whose layers do not form a chain (connections "
                               "[(1, 2), (1, 3)]); rnnconvert converts layer stacks")


@needs_octave
def test_written_layout_normalization_reader_matches_octave(tmp_path):
    """A `layers` file with zscore input statistics (as rnnconvert_export.m writes it): the reader
    folds the normalization into the weights, Octave applies the documented formula."""
    import scipy.io
    rng = np.random.default_rng(3)
    C, H = 3, 4
    cell = np.empty((3, 1), dtype=object)
    cell[0, 0] = {"Name": "in", "Class": "nnet.cnn.layer.SequenceInputLayer", "InputSize": float(C),
                  "Normalization": "zscore", "Mean": rng.normal(size=(C, 1)),
                  "StandardDeviation": rng.uniform(0.5, 2, size=(C, 1))}
    cell[1, 0] = {"Name": "gru", "Class": "nnet.cnn.layer.GRULayer", "NumHiddenUnits": float(H),
                  "OutputMode": "last", "ResetGateMode": "before-multiplication",
                  "StateActivationFunction": "tanh", "GateActivationFunction": "sigmoid",
                  "InputWeights": rng.normal(size=(3 * H, C)), "RecurrentWeights": rng.normal(size=(3 * H, H)),
                  "Bias": rng.normal(size=(3 * H, 1)), "HiddenState": rng.normal(size=(H, 1))}
    cell[2, 0] = {"Name": "fc", "Class": "nnet.cnn.layer.FullyConnectedLayer", "Weights": rng.normal(size=(2, H)),
                  "Bias": rng.normal(size=(2, 1))}
    src = tmp_path / "layers.mat"
    scipy.io.savemat(str(src), {"layers": cell})
    model = rnnconvert.read(src)
    x = _x(C=C)
    _close(rnnconvert.predict(model, x), matlab.run(src, x, model))


def test_cli_converts_a_network_and_refuses_untrained_layers(runner, tmp_path):
    from rnnconvert.cli.commands import cli
    C, H = 2, 3
    m, _, _ = _torch_lstm(C, H)
    path = _save_network(tmp_path / "net.mat", [_input_layer(C), _lstm_layer(m, H, "sequence")], "v7.3")
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "out.onnx")])
    assert res.exit_code == 0, res.stderr
    assert (tmp_path / "out.onnx").is_file()
    empty = {"Value": np.zeros((0, 0))}
    bad = _save_network(tmp_path / "layers.mat", [
        _input_layer(3), ("GRULayer", {"Name": "gru", "NumHiddenUnits": np.array([[8.0]]), "InputWeights": empty})],
        "v7", as_array=True, name="L")
    res = runner.invoke(cli, ["convert", str(bad), str(tmp_path / "bad.onnx")])
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        f"rnnconvert: error: {bad}: variable 'L' has no learned weights (layers gru are untrained layer "
        "definitions); train the network first and save the trained network (save('net.mat','net')) or "
        "export it with matlab/rnnconvert_export.m")


def test_cli_var_through_arch_yaml(runner, tmp_path):
    from rnnconvert.cli.commands import cli
    _two_networks(tmp_path / "two.mat")
    (tmp_path / "pick.yaml").write_text("var: b\n")
    res = runner.invoke(cli, ["convert", str(tmp_path / "two.mat"), str(tmp_path / "b.onnx"),
                              "--arch", str(tmp_path / "pick.yaml")])
    assert res.exit_code == 0, res.stderr
