"""Per-layer conversion (`--layer NAME`, `select.py`) against independent oracles: onnxruntime running
graphs built here with onnx.helper (an LSTM and a GRU inside If branches), torch running the LSTM of
a CNN+LSTM module it exported itself, Keras 3 running the layers of a two-input functional model with
a custom layer, and a Keras 3 `save_weights` file read without its architecture."""
from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnconvert
import rnnconvert.formats.per_layer
from conftest import ROOT, WILD
from rnnconvert.cli.commands import cli

ort = pytest.importorskip("onnxruntime")
ATOL = 1e-4


def _err(res):
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr.strip()


def _x(batch, time, features, seed=0, scale=1.0):
    x = np.random.default_rng(seed).standard_normal((batch, time, features)).astype(np.float32)
    x[-1] *= 6.0 * scale            # one row that saturates the gates
    return x


# --------------------------------------------------------------------------- ONNX If subgraphs

F, H = 5, 4


def _if_model(path):
    """input X [T, B, F] and a bool `cond`: then -> LSTM (W, R from the MAIN graph's initializers, B a
    Constant node inside the branch, a constant initial_h), else -> GRU (all weights Constant nodes)."""
    rng = np.random.default_rng(1)
    W = rng.standard_normal((1, 4 * H, F)).astype(np.float32) * 0.5
    R = rng.standard_normal((1, 4 * H, H)).astype(np.float32) * 0.5
    B = rng.standard_normal((1, 8 * H)).astype(np.float32) * 0.3
    h0 = rng.standard_normal((1, 1, H)).astype(np.float32)
    GW = rng.standard_normal((2, 3 * H, F)).astype(np.float32) * 0.5
    GR = rng.standard_normal((2, 3 * H, H)).astype(np.float32) * 0.5
    GB = rng.standard_normal((2, 6 * H)).astype(np.float32) * 0.3

    def const(name, a):
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(a, name + "_v"))

    then_g = helper.make_graph(
        [const("lstm_B", B), const("lstm_h0", h0),
         helper.make_node("LSTM", ["X", "lstm_W", "lstm_R", "lstm_B", "", "lstm_h0"], ["Y_lstm"],
                          hidden_size=H),
         helper.make_node("Squeeze", ["Y_lstm", "axis1"], ["then_out"])],
        "then", [], [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [None, None, None])])
    else_g = helper.make_graph(
        [const("gru_W", GW), const("gru_R", GR), const("gru_B", GB),
         helper.make_node("GRU", ["X", "gru_W", "gru_R", "gru_B"], ["Y_gru"], hidden_size=H,
                          direction="bidirectional", linear_before_reset=1),
         helper.make_node("Transpose", ["Y_gru"], ["Y_t"], perm=[0, 2, 1, 3]),
         helper.make_node("Reshape", ["Y_t", "shape3"], ["else_out"])],
        "else", [], [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [None, None, None])])
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["Y"], name="branch", then_branch=then_g, else_branch=else_g)], "if_rnn",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 1, F]),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, None, None])],
        initializer=[numpy_helper.from_array(W, "lstm_W"), numpy_helper.from_array(R, "lstm_R"),
                     numpy_helper.from_array(np.array([1], np.int64), "axis1"),
                     numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape3")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    import onnx
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _ort_if(path, x_tb, cond):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x_tb, "cond": np.array(cond)})[0]


@pytest.fixture
def if_model(tmp_path):
    return _if_model(tmp_path / "if_rnn.onnx")


def test_if_subgraph_layers_are_listed_and_match_onnxruntime(if_model, tmp_path):
    from rnnconvert.formats import per_layer as select
    s = select.scan(if_model)
    assert [(f.name, f.kind, f.bidirectional) for f in s.layers] == [("Y_gru", "gru", True),
                                                                     ("Y_lstm", "lstm", False)]
    # The graph's batch is 1 (its initial_h is [1, 1, H]): onnxruntime on the whole graph is the oracle.
    x = _x(1, 9, F)
    lstm = select.extract(if_model, "Y_lstm")
    assert lstm.layers[0].weights[0].h0 is not None
    got = rnnconvert.predict(lstm, x)                                   # [1, T, H]
    want = _ort_if(if_model, np.swapaxes(x, 0, 1).copy(), True)          # [T, 1, H]
    np.testing.assert_allclose(got, np.swapaxes(want, 0, 1), atol=ATOL)
    gru = select.extract(if_model, "Y_gru")
    got = rnnconvert.predict(gru, x)                                    # [1, T, 2H]
    want = _ort_if(if_model, np.swapaxes(x, 0, 1).copy(), False)         # [T, 1*2H] after the reshape
    np.testing.assert_allclose(got[0], want.reshape(9, 2 * H), atol=ATOL)


def test_if_subgraph_layer_converts_and_is_checked_against_the_extracted_node(if_model, tmp_path, runner):
    out = tmp_path / "gru.onnx"
    report = rnnconvert.convert(if_model, out, layer="Y_gru")
    node = [c for c in report.checks if c.oracle == "onnxruntime(src node)"]
    assert len(node) >= 4 and all(c.passed for c in node)
    x = _x(3, 11, F)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    for b in range(3):          # the whole source graph, one batch row at a time
        want = _ort_if(if_model, np.swapaxes(x[b:b + 1], 0, 1).copy(), False)
        np.testing.assert_allclose(got[b], want.reshape(11, 2 * H), atol=ATOL)
    res = runner.invoke(cli, [str(if_model), str(tmp_path / "lstm.pt"), "--layer", "Y_lstm"])
    assert res.exit_code == 0, res.stderr
    assert "onnxruntime(src node)" in res.stdout and "EQUIVALENT" in res.stdout


def test_whole_if_model_refused_with_layer_suggestion(if_model, tmp_path, runner):
    res = runner.invoke(cli, [str(if_model), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert _err(res) == (
        f"rnnconvert: error: {if_model}: the GRU/LSTM nodes sit inside the subgraphs of If node 'branch'; "
        "rnnconvert reads recurrent nodes of the main graph only; to convert one recurrent "
        "layer on its own, pass --layer NAME (recurrent layers found: Y_gru (gru, bidirectional), Y_lstm (lstm))")
    assert not (tmp_path / "out.onnx").exists()


def test_unknown_layer_name_lists_the_layers(if_model, tmp_path, runner):
    res = runner.invoke(cli, [str(if_model), str(tmp_path / "out.onnx"), "--layer", "nope"])
    assert res.exit_code == 2
    assert _err(res) == (f"rnnconvert: error: {if_model}: no recurrent layer 'nope'; recurrent layers found: "
                         "Y_gru (gru, bidirectional), Y_lstm (lstm)")


def _schema():
    return json.loads((ROOT / "schemas" / "inspect.schema.json").read_text())


def test_inspect_json_lists_nested_layers_and_matches_schema(if_model, runner):
    jsonschema = pytest.importorskip("jsonschema")
    res = runner.invoke(cli, ["inspect", str(if_model), "--json"])
    assert res.exit_code == 0, res.stderr
    desc = json.loads(res.stdout)
    jsonschema.validate(desc, _schema())
    assert [(x["name"], x["kind"], x["bidirectional"]) for x in desc["layers"]] == [
        ("Y_gru", "gru", True), ("Y_lstm", "lstm", False)]
    assert desc["whole_model"]["readable"] is False
    assert "If 'If" not in desc["layers"][0]["where"] and "else_branch" in desc["layers"][0]["where"]


def test_inspect_schema_on_fixtures(runner):
    jsonschema = pytest.importorskip("jsonschema")
    from conftest import cases
    files = [c.path for c in cases("tfkeras2")[:2] + cases("torch_onnx")[:2]]
    for path in files:
        res = runner.invoke(cli, ["inspect", str(path), "--json"])
        assert res.exit_code == 0, res.stderr
        desc = json.loads(res.stdout)
        jsonschema.validate(desc, _schema())
        assert desc["whole_model"]["readable"] is True
        assert any(x["kind"] in ("lstm", "gru", "rnn") for x in desc["layers"])


@pytest.mark.skipif(not (WILD / "onnx_silero_vad_v4_pt112_if").is_dir(), reason="no ../shared/wild")
def test_inspect_silero_lists_the_lstms_inside_if(runner):
    jsonschema = pytest.importorskip("jsonschema")
    path = next((WILD / "onnx_silero_vad_v4_pt112_if").glob("*.onnx"))
    res = runner.invoke(cli, ["inspect", str(path), "--json"])
    assert res.exit_code == 0, res.stderr
    desc = json.loads(res.stdout)
    jsonschema.validate(desc, _schema())
    lstms = [x for x in desc["layers"] if x["kind"] == "lstm"]
    assert len(lstms) == 8 and all(x["bidirectional"] is False and x["hidden"] == 64 for x in lstms)


# --------------------------------------------------------------------------- torch CNN + LSTM

def test_torch_cnn_lstm_onnx_export_lstm_layer_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(3, 6, 3, padding=1)
            self.lstm = torch.nn.LSTM(6, 5, batch_first=True, bidirectional=True)
            self.fc = torch.nn.Linear(10, 2)

        def forward(self, x):
            z = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
            y, _ = self.lstm(z)
            return self.fc(y[:, -1])

    net = Net().eval()
    path = tmp_path / "cnn_lstm.onnx"
    torch.onnx.export(net, (torch.randn(2, 7, 3),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b", 1: "t"}, "y": {0: "b"}}, opset_version=14, dynamo=False)
    from rnnconvert.formats import per_layer as select
    s = select.scan(path)
    assert len(s.layers) == 1 and s.layers[0].bidirectional      # (the whole model reads too, since Conv support)
    name = s.layers[0].name
    dst = tmp_path / "lstm.pt"
    report = rnnconvert.convert(path, dst, layer=name)
    assert any(c.oracle == "onnxruntime(src node)" for c in report.checks) and report.passed
    z = _x(3, 13, 6, seed=4)
    with torch.no_grad():
        want = net.lstm(torch.from_numpy(z))[0].numpy()
    np.testing.assert_allclose(rnnconvert.predict(select.extract(path, name), z), want, atol=ATOL)
    np.testing.assert_allclose(rnnconvert.predict(rnnconvert.read(dst), z), want, atol=ATOL)


def test_torch_state_dict_layer_of_a_multilayer_gru(tmp_path, runner):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    gru = torch.nn.GRU(4, 6, num_layers=2, batch_first=True)
    conv = torch.nn.Conv2d(4, 4, 3)     # a front end the state dict reader does not take
    sd = {**{f"enc.{k}": v for k, v in gru.state_dict().items()},
          **{f"front.{k}": v for k, v in conv.state_dict().items()}}
    path = tmp_path / "model.pt"
    torch.save(sd, str(path))
    res = runner.invoke(cli, [str(path), str(tmp_path / "all.onnx")])
    assert res.exit_code == 2
    assert _err(res).endswith("; to convert one recurrent layer on its own, pass --layer NAME (recurrent layers "
                              "found: enc_l0 (gru), enc_l1 (gru))")
    res = runner.invoke(cli, [str(path), str(tmp_path / "l1.onnx"), "--layer", "enc.l1"])
    assert res.exit_code == 0, res.stderr
    one = torch.nn.GRU(6, 6, batch_first=True)
    one.load_state_dict({k.replace("_l1", "_l0"): v for k, v in gru.state_dict().items() if k.endswith("_l1")})
    h = _x(3, 8, 6, seed=2)
    with torch.no_grad():
        want = one(torch.from_numpy(h))[0].numpy()
    sess = ort.InferenceSession(str(tmp_path / "l1.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: h})[0], want, atol=ATOL)
    stack = rnnconvert.formats.per_layer.extract(path, "enc")            # the module: both layers
    x = _x(2, 5, 4, seed=3)
    with torch.no_grad():
        np.testing.assert_allclose(rnnconvert.predict(stack, x), gru(torch.from_numpy(x))[0].numpy(), atol=ATOL)


# --------------------------------------------------------------------------- MATLAB bare matrices

def test_matlab_bare_per_gate_matrices_without_mapping_match_torch(tmp_path, runner):
    torch = pytest.importorskip("torch")
    scipy_io = pytest.importorskip("scipy.io")
    torch.manual_seed(2)
    lstm = torch.nn.LSTM(3, 4, batch_first=True)
    sd = {k: v.numpy() for k, v in lstm.state_dict().items()}
    mats = {"w_input": np.ones((3, 2), np.float32)}        # another layer's matrix, not part of the LSTM
    for part, key in (("w_i", "weight_ih_l0"), ("w_h", "weight_hh_l0"), ("b_i", "bias_ih_l0"), ("b_h", "bias_hh_l0")):
        for g, block in zip("ifgo", np.split(sd[key], 4)):
            mats[f"{part}{g}"] = block if block.ndim == 2 else block[None, :]
    path = tmp_path / "plain.mat"
    scipy_io.savemat(str(path), mats)
    res = runner.invoke(cli, [str(path), str(tmp_path / "all.onnx")])
    assert res.exit_code == 2 and _err(res).endswith(
        "to convert one recurrent layer on its own, pass --layer NAME (recurrent layers found: lstm (lstm))")
    res = runner.invoke(cli, [str(path), str(tmp_path / "lstm.onnx"), "--layer", "lstm"])
    assert res.exit_code == 0, res.stderr
    x = _x(3, 10, 3, seed=5)
    with torch.no_grad():
        want = lstm(torch.from_numpy(x))[0].numpy()
    sess = ort.InferenceSession(str(tmp_path / "lstm.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], want, atol=ATOL)


def test_inspect_text_lists_a_layer_that_does_not_build_beside_one_that_does(tmp_path, runner):
    """A MATLAB network whose first layer is an untrained BiLSTMLayer definition: the text report lists
    both layers and says why the whole model does not convert (was KeyError 'tensors', exit 3, in the
    text rendering of a layer that cannot be built; found by the fuzz suite, matlab_v5 case 770)."""
    pytest.importorskip("matio", reason="mat-io writes the MATLAB object file")
    from fuzz_inputs import _matio_layers, _save_matio
    layers = _matio_layers()
    layers[0] = ("BiLSTMLayer", {"InputSize": layers[0][1]["InputSize"]})
    path = tmp_path / "net.mat"
    _save_matio(path, layers, "v7")
    res = runner.invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 0, res.stderr
    assert res.output.endswith(
        f"whole model: not convertible: {path}: variable 'net' has no learned weights (layers layer0 are untrained "
        "layer definitions); train the network first and save the trained network (save('net.mat','net')) or "
        "export it with matlab/rnnconvert_export.m\n"
        "per layer (--layer NAME):\n"
        "  layer0  lstm bidirectional  (variable 'net' layers(1) (BiLSTMLayer))\n"
        "  lstm  lstm  (variable 'net' layers(2) (LSTMLayer))\n\n")
    assert "  0  layer0  lstm" in res.output and "layer 1 'lstm': LSTM forward, H=4, input 3" in res.output
