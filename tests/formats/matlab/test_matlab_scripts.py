"""matlab/rnnconvert_import.m and matlab/rnnconvert_export.m run in Octave, and the CLI's --var/--mapping.

Octave has no Deep Learning Toolbox, so `tests/matlab_standins/` defines the toolbox functions the
scripts call (`lstmLayer`, `gruLayer`, `dlnetwork`, ...) returning objects of MATLAB's class names
with MATLAB's documented property names, which accept only those names and check weight shapes.  The
scripts run unmodified on them: rnnconvert writes a fixture as a `.mat` -> `rnnconvert_import` builds
the layer array and the network -> `rnnconvert_export` writes it back -> rnnconvert reads that file:
the weights must be the original model's, and the predictions the source framework's stored ones.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import rnnconvert
from rnnconvert.formats import matlab
from rnnconvert.model import Dense, Recurrent

from conftest import FIXTURES, ROOT, Case

OCTAVE = shutil.which("octave-cli") or shutil.which("octave")
needs_octave = pytest.mark.skipif(OCTAVE is None, reason="octave is not installed")
SCRIPTS = ROOT / "matlab"
STANDINS = ROOT / "tests" / "matlab_standins"

ROUND_TRIP = [
    "tfkeras2/lstm_last_softmax/model.h5",           # LSTM 'last' + Dense softmax (-> SoftmaxLayer)
    "tfkeras2/gru_reset_before_last/model.h5",       # GRU before-multiplication
    "tfkeras2/gru_reset_after_seq/model.h5",         # GRU recurrent-bias-after-multiplication (6H Bias)
    "tf2onnx/bilstm_concat_seq/model.onnx",          # BiLSTM (8H rows, 2H states)
    "torch_onnx/lstm_initial_state_expand/model.onnx",   # non-zero HiddenState/CellState
    "tfkeras2/lstm_dropout_activation_stack/model.h5",   # dropout, activation layers, two LSTMs
    "tfkeras2/lstm_hard_sigmoid/model.h5",           # GateActivationFunction hard-sigmoid (0.2x + 0.5)
    "keras3/gru_reset_after_seq/model.keras",
    "tfkeras2/stacked_lstm_dense/model.h5",
]


def _case(rel: str) -> Case:
    path = FIXTURES / rel
    return Case(path.parent, path)


def _close(a, b, tol=1e-4):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.all(np.abs(a - b) <= tol + tol * np.abs(b)), np.abs(a - b).max()


def _octave(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` with the stand-ins and matlab/ on the path (stand-ins first, as a toolbox would be)."""
    full = f"addpath('{SCRIPTS}'); addpath('{STANDINS}'); {code}"
    return subprocess.run([OCTAVE, "--no-gui", "--quiet", "--norc", "--eval", full], cwd=str(cwd),
                          capture_output=True, text=True, timeout=300)


def _ok(proc):
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _weighted(model):
    return [layer for layer in model.layers if isinstance(layer, (Recurrent, Dense))]


def _f32(a):
    return None if a is None else np.asarray(a, np.float32)


def _same_state(a, b, H):
    """A state rnnconvert leaves as None is MATLAB's zero HiddenState/CellState."""
    a = np.zeros(H) if a is None else np.ravel(a)
    b = np.zeros(H) if b is None else np.ravel(b)
    np.testing.assert_array_equal(_f32(a), _f32(b))


def _assert_same_weights(orig, back):
    wo, wb = _weighted(orig), _weighted(back)
    assert [(type(a), a.name) for a in wo] == [(type(b), b.name) for b in wb]
    for a, b in zip(wo, wb):
        if isinstance(a, Dense):
            np.testing.assert_array_equal(_f32(a.kernel), b.kernel)
            if a.bias is not None:
                np.testing.assert_array_equal(_f32(a.bias), b.bias)
            continue
        assert (a.cell, a.hidden, a.direction, len(a.weights)) == (b.cell, b.hidden, b.direction, len(b.weights))
        assert [x.name for x in a.activations] == [x.name for x in b.activations]
        if a.cell == "gru":
            assert a.reset_after == b.reset_after
        for da, db in zip(a.weights, b.weights):
            np.testing.assert_array_equal(_f32(da.W), db.W)
            np.testing.assert_array_equal(_f32(da.R), db.R)
            if a.cell == "gru" and a.reset_after:        # MATLAB keeps both biases (6H Bias)
                np.testing.assert_array_equal(_f32(da.Wb), db.Wb)
                np.testing.assert_array_equal(_f32(da.Rb), db.Rb)
            else:                                       # one Bias: the sum, rounded to float32 once
                np.testing.assert_allclose(np.asarray(da.Wb, np.float64) + da.Rb,
                                           np.asarray(db.Wb, np.float64) + db.Rb, rtol=1e-6, atol=1e-7)
            _same_state(da.h0, db.h0, a.hidden)
            if a.cell == "lstm":
                _same_state(da.c0, db.c0, a.hidden)


@needs_octave
@pytest.mark.parametrize("rel", ROUND_TRIP)
def test_import_export_round_trip_in_octave(rel, tmp_path):
    case = _case(rel)
    model = rnnconvert.read(case.path)
    src = tmp_path / "model.mat"
    notes = matlab.write(model, src)
    assert not any("slope" in n for n in notes), notes     # no rescaled weights: compared bit for bit
    written = matlab.read(src)
    _ok(_octave(
        "[layers, net] = rnnconvert_import('model.mat');"
        "classes = cell(numel(layers), 1);"
        "for k = 1:numel(layers), classes{k} = class(layers(k)); end;"
        "netclass = class(net);"
        "save('-v7', 'classes.mat', 'classes', 'netclass');"
        "rnnconvert_export(net, 'from_net.mat');"
        "rnnconvert_export(layers, 'from_layers.mat');", tmp_path))
    import scipy.io
    info = scipy.io.loadmat(str(tmp_path / "classes.mat"))
    stored = scipy.io.loadmat(str(src))["layers"]
    assert [str(c[0][0]) for c in info["classes"]] == [str(s[0, 0]["Class"][0]) for s in stored.ravel()]
    assert str(info["netclass"][0]) == "dlnetwork"
    for name in ("from_net.mat", "from_layers.mat"):
        back = matlab.read(tmp_path / name)
        assert [(type(a), a.name) for a in back.layers] == [(type(b), b.name) for b in written.layers]
        _assert_same_weights(model, back)
        for a, b in zip(_weighted(written), _weighted(back)):     # what was imported is what is exported
            for da, db in zip(getattr(a, "weights", [a]), getattr(b, "weights", [b])):
                for field in ("W", "R", "Wb", "Rb", "h0", "c0", "kernel", "bias"):
                    va, vb = getattr(da, field, None), getattr(db, field, None)
                    assert (va is None) == (vb is None), field
                    if va is not None:
                        np.testing.assert_array_equal(va, vb)
        for key, x, y in case.io():
            _close(rnnconvert.predict(back, x), y)
    # what the export wrote also runs in Octave's implementation of MATLAB's equations
    key, x, y = case.io()[0]
    _close(matlab.run(tmp_path / "from_net.mat", x, back), y)


def _zscore_file(path):
    import scipy.io
    rng = np.random.default_rng(11)
    C, H = 3, 4
    cell = np.empty((4, 1), dtype=object)
    cell[0, 0] = {"Name": "in", "Class": "nnet.cnn.layer.SequenceInputLayer", "InputSize": float(C),
                  "Normalization": "zscore", "Mean": rng.normal(size=(C, 1)),
                  "StandardDeviation": rng.uniform(0.5, 2, size=(C, 1))}
    cell[1, 0] = {"Name": "lstm", "Class": "nnet.cnn.layer.LSTMLayer", "NumHiddenUnits": float(H),
                  "InputSize": float(C), "OutputMode": "sequence", "StateActivationFunction": "softsign",
                  "GateActivationFunction": "sigmoid",
                  "InputWeights": rng.normal(size=(4 * H, C)).astype(np.float32),
                  "RecurrentWeights": rng.normal(size=(4 * H, H)).astype(np.float32),
                  "Bias": rng.normal(size=(4 * H, 1)).astype(np.float32),
                  "HiddenState": rng.normal(size=(H, 1)).astype(np.float32),
                  "CellState": rng.normal(size=(H, 1)).astype(np.float32)}
    cell[2, 0] = {"Name": "drop", "Class": "nnet.cnn.layer.DropoutLayer", "Probability": 0.25}
    cell[3, 0] = {"Name": "fc", "Class": "nnet.cnn.layer.FullyConnectedLayer", "InputSize": float(H),
                  "OutputSize": 2.0, "Weights": rng.normal(size=(2, H)).astype(np.float32),
                  "Bias": rng.normal(size=(2, 1)).astype(np.float32)}
    scipy.io.savemat(str(path), {"layers": cell})
    return cell


@needs_octave
def test_normalization_states_and_dropout_survive_import_and_export(tmp_path):
    """The input layer's zscore statistics, the states and a dropout layer go through the stand-in
    layers unchanged (rnnconvert's own writer never writes a normalization, MATLAB's files do)."""
    import scipy.io
    cell = _zscore_file(tmp_path / "norm.mat")
    _ok(_octave("[layers, net] = rnnconvert_import('norm.mat'); rnnconvert_export(net, 'back.mat');", tmp_path))
    back = scipy.io.loadmat(str(tmp_path / "back.mat"))["layers"].ravel()
    assert str(back[0][0, 0]["Normalization"][0]) == "zscore"
    for k, field in [(0, "Mean"), (0, "StandardDeviation"), (1, "InputWeights"), (1, "HiddenState"),
                     (1, "CellState"), (3, "Weights")]:
        np.testing.assert_array_equal(back[k][0, 0][field], cell[k, 0][field])
    assert back[2][0, 0]["Probability"].item() == 0.25
    assert back[1][0, 0]["InputSize"].item() == 3.0
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    _close(rnnconvert.predict(rnnconvert.read(tmp_path / "back.mat"), x),
           rnnconvert.predict(rnnconvert.read(tmp_path / "norm.mat"), x), tol=1e-12)


@needs_octave
def test_export_of_an_unassembled_layer_array_derives_input_sizes(tmp_path):
    """A Layer array never put in a network has InputSize 'auto'; the export writes the weights' width."""
    _zscore_file(tmp_path / "norm.mat")
    _ok(_octave("layers = rnnconvert_import('norm.mat'); assert(ischar(layers(2).InputSize));"
                "rnnconvert_export(layers, 'back.mat');", tmp_path))
    import scipy.io
    back = scipy.io.loadmat(str(tmp_path / "back.mat"))["layers"].ravel()
    assert back[1][0, 0]["InputSize"].item() == 3.0 and back[3][0, 0]["InputSize"].item() == 4.0


@needs_octave
def test_scripts_refuse_with_their_error_ids(tmp_path):
    import scipy.io
    cell = np.empty((2, 1), dtype=object)
    cell[0, 0] = {"Name": "in", "Class": "nnet.cnn.layer.SequenceInputLayer", "InputSize": 2.0,
                  "Normalization": "none"}
    cell[1, 0] = {"Name": "conv", "Class": "nnet.cnn.layer.Convolution2DLayer"}
    scipy.io.savemat(str(tmp_path / "conv.mat"), {"layers": cell})
    scipy.io.savemat(str(tmp_path / "plain.mat"), {"W": np.ones((2, 2))})
    (tmp_path / "run_ids.m").write_text(
        "1;\n"
        "function r = id_of(f)\n  try\n    f();\n    r = 'none';\n  catch e\n    r = e.identifier;\n  end\nend\n"
        "ids = {id_of(@() rnnconvert_import('conv.mat')), id_of(@() rnnconvert_import('plain.mat')), "
        "id_of(@() rnnconvert_export([sequenceInputLayer(3); lstmLayer(4)], 'x.mat'))};\n"
        "save('-v7', 'ids.mat', 'ids');\n")
    _ok(_octave("run_ids", tmp_path))
    ids = [str(i[0]) for i in scipy.io.loadmat(str(tmp_path / "ids.mat"))["ids"].ravel()]
    assert ids == ["rnnconvert_import:layer", "rnnconvert_import:layout", "rnnconvert_export:untrained"]


@needs_octave
def test_standins_accept_only_matlab_properties_and_shapes(tmp_path):
    """The stand-ins are strict, so the import is checked against MATLAB's names and shapes."""
    calls = ["lstmLayer(4, 'Weights', ones(16, 3))",
             "lstmLayer(4, 'InputWeights', ones(12, 3))",
             "gruLayer(4, 'Bias', ones(12, 1), 'ResetGateMode', 'recurrent-bias-after-multiplication')",
             "bilstmLayer(2, 'HiddenState', ones(2, 1))",
             "fullyConnectedLayer(2, 'Weights', ones(3, 4))",
             "lstmLayer(4, 'OutputMode', 'final')",
             "dlnetwork([sequenceInputLayer(3); fullyConnectedLayer(2, 'Weights', ones(2, 4), 'Bias', ones(2, 1))])"]
    body = "".join(f"ids{{end+1}} = id_of(@() {c});\n" for c in calls)
    (tmp_path / "run_ids.m").write_text(
        "1;\n"
        "function r = id_of(f)\n  try\n    f();\n    r = 'none';\n  catch e\n    r = e.identifier;\n  end\nend\n"
        "ids = {};\n" + body + "ok = id_of(@() lstmLayer(2, 'InputWeights', ones(8, 3), 'HiddenState', ones(2, 1)));\n"
        "save('-v7', 'ids.mat', 'ids', 'ok');\n")
    _ok(_octave("run_ids", tmp_path))
    import scipy.io
    out = scipy.io.loadmat(str(tmp_path / "ids.mat"))
    ids = [str(i[0]) if i.size else "" for i in out["ids"].ravel()]
    assert ids == ["standin:nv"] + ["standin:size"] * 4 + ["standin:value", "standin:size"], ids
    assert str(out["ok"][0]) == "none"


# --------------------------------------------------------------------------- CLI --var and --mapping

def _two_networks(tmp_path):
    import scipy.io
    a = _case("tfkeras2/lstm_last_softmax/model.h5")
    b = _case("tfkeras2/gru_reset_before_last/model.h5")
    for name, case in (("a", a), ("b", b)):
        matlab.write(rnnconvert.read(case.path), tmp_path / f"{name}.mat")
    path = tmp_path / "two.mat"
    scipy.io.savemat(str(path), {name: scipy.io.loadmat(str(tmp_path / f"{name}.mat"))["layers"]
                                 for name in ("a", "b")})
    return path, a, b


def test_cli_var_picks_the_network(runner, tmp_path):
    from rnnconvert.cli.commands import cli
    path, a, b = _two_networks(tmp_path)
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "none.onnx")])
    assert res.exit_code == 2
    assert "several variables hold networks: a, b" in res.stderr
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "b.onnx"), "--var", "b"])
    assert res.exit_code == 0, res.stderr
    assert [l.kind for l in rnnconvert.read(tmp_path / "b.onnx").layers] == ["gru", "dense"]
    res = runner.invoke(cli, ["inspect", str(path), "--var", "a", "--json"])
    assert res.exit_code == 0, res.stderr
    assert "lstm" in res.stdout and "gru" not in res.stdout
    for name, case in (("a", a), ("b", b)):
        key, x, y = case.io()[0]
        np.save(tmp_path / "x.npy", x)
        res = runner.invoke(cli, ["predict", str(path), "--var", name, "--inputs", str(tmp_path / "x.npy"),
                                  "--output", str(tmp_path / f"y_{name}.npy")])
        assert res.exit_code == 0, res.stderr
        _close(np.load(tmp_path / f"y_{name}.npy"), y)
    res = runner.invoke(cli, ["inspect", str(path), "--var", "zz"])
    assert res.exit_code == 2
    assert "no variable 'zz'; the file holds: a, b" in res.stderr


def _bare(tmp_path):
    import scipy.io
    rng = np.random.default_rng(5)
    C, H = 3, 4
    mats = {"W": rng.normal(size=(4 * H, C)), "R": rng.normal(size=(4 * H, H)), "b": rng.normal(size=(4 * H, 1)),
            "Wfc": rng.normal(size=(2, H)), "bfc": rng.normal(size=(2, 1))}
    path = tmp_path / "w.mat"
    scipy.io.savemat(str(path), mats)
    mapping = tmp_path / "map.yaml"
    mapping.write_text("layers:\n"
                       "  - {layer: lstmLayer, InputWeights: W, RecurrentWeights: R, Bias: b, OutputMode: last}\n"
                       "  - {layer: fullyConnectedLayer, Weights: Wfc, Bias: bfc}\n")
    return path, mapping, mats


def _lstm_last(mats, x):
    """MATLAB's documented LSTM (i, f, g, o rows) then the fully connected layer, in numpy."""
    sig = lambda v: 1 / (1 + np.exp(-v))        # noqa: E731
    H = mats["R"].shape[1]
    h = np.zeros((x.shape[0], H))
    c = np.zeros_like(h)
    for t in range(x.shape[1]):
        z = x[:, t] @ mats["W"].T + h @ mats["R"].T + mats["b"].ravel()
        i, f, g, o = sig(z[:, :H]), sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
    return h @ mats["Wfc"].T + mats["bfc"].ravel()


def test_cli_mapping_reads_bare_matrices(runner, tmp_path):
    from rnnconvert.cli.commands import cli
    path, mapping, mats = _bare(tmp_path)
    res = runner.invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 2
    assert "no MATLAB network or layer array in the file" in res.stderr
    res = runner.invoke(cli, ["inspect", str(path), "--mapping", str(mapping)])
    assert res.exit_code == 0, res.stderr
    assert "lstm" in res.stdout.lower()
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "out.onnx"), "--mapping", str(mapping)])
    assert res.exit_code == 0, res.stderr
    x = np.random.default_rng(1).normal(size=(2, 6, 3))
    np.save(tmp_path / "x.npy", x)
    res = runner.invoke(cli, ["predict", str(path), "--mapping", str(mapping), "--inputs", str(tmp_path / "x.npy"),
                              "--output", str(tmp_path / "y.npy")])
    assert res.exit_code == 0, res.stderr
    _close(np.load(tmp_path / "y.npy"), _lstm_last(mats, x), tol=1e-5)
    _close(rnnconvert.predict(rnnconvert.read(tmp_path / "out.onnx"), x), _lstm_last(mats, x), tol=1e-5)
    res = runner.invoke(cli, ["predict", str(path), "--mapping", str(tmp_path / "missing.yaml"),
                              "--inputs", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y2.npy")])
    assert res.exit_code == 2
    assert res.stderr == f"rnnconvert: error: {tmp_path / 'missing.yaml'}: no such mapping file\n"
