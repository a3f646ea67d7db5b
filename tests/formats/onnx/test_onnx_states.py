"""Streaming ONNX graphs: recurrent states as graph inputs and outputs.

Oracles: PyTorch and TF-Keras themselves.  fixtures/torch_onnx/states/ holds modules
`y, (hn, cn) = rnn(x, (h0, c0))` exported with torch.onnx.export (fixtures/make_torch_states.py) with torch's
own results for random and zero states and for a sequence fed in chunks with torch carrying its states;
fixtures/tf2onnx/states/ holds TF-Keras models with `initial_state` inputs and `return_state` converted with
tf2onnx (fixtures/make_tf2onnx_states.py), states [batch, size].  onnxruntime runs the source graph and the
converted one with the same states.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import FIXTURES

import rnnconvert
from rnnconvert.model import states
from rnnconvert.reference import forward_with_feeds
from rnnconvert.cli.commands import cli
from rnnconvert.errors import UnsupportedError
from rnnconvert.model import StatePort

ort = pytest.importorskip("onnxruntime")

CASES = sorted(p.name for p in (FIXTURES / "torch_onnx" / "states").iterdir() if p.is_dir())
KERAS_CASES = sorted(p.name for p in (FIXTURES / "tf2onnx" / "states").iterdir() if p.is_dir())
SETS = ("t1", "t7", "t40", "t7_zero")
TOL = 1e-5
PORTS = {   # case -> (state inputs, state outputs) as (name, state, number of layers)
    "lstm_linear_batch_first": ([("h0", "h", 1), ("c0", "c", 1)], [("hn", "h", 1), ("cn", "c", 1)]),
    "gru_time_major": ([("h0", "h", 1)], [("hn", "h", 1)]),
    "lstm_2layer": ([("h0", "h", 2), ("c0", "c", 2)], [("hn", "h", 2), ("cn", "c", 2)]),
    "gru_bidir": ([("h0", "h", 1)], [("hn", "h", 1)]),
    "rnn_tanh": ([("h0", "h", 1)], [("hn", "h", 1)]),
    "lstm_seq_states": ([("h0", "h", 1), ("c0", "c", 1)], [("lstm_1", "h", 1), ("lstm_2", "c", 1)]),
    "gru_last_dense_states": ([("h0", "h", 1)], [("gru", "h", 1)]),
}


def load(case):
    folder = FIXTURES / ("tf2onnx" if case in KERAS_CASES else "torch_onnx") / "states" / case
    meta = json.loads((folder / "case.json").read_text())
    return folder / "model.onnx", meta, np.load(folder / "inputs.npz"), np.load(folder / "outputs.npz")


def feeds_of(inputs, label):
    return {k[len(label) + 1:]: inputs[k] for k in inputs.files if k.startswith(label + ".")}


def session_run(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds))), [i.name for i in sess.get_inputs()], names


def max_err(got: dict, want, label, names) -> float:
    return max(float(np.abs(got[n] - want[f"{label}.{n}"]).max()) for n in names)


def test_every_case_has_its_ports():
    assert sorted(PORTS) == sorted(CASES + KERAS_CASES)


@pytest.mark.parametrize("case", CASES + KERAS_CASES)
def test_source_graph_in_onnxruntime_matches_torch(case):
    """The oracle's own consistency: the exported graph computes what torch computed."""
    path, meta, inputs, outputs = load(case)
    for label in SETS:
        got, _, names = session_run(path, feeds_of(inputs, label))
        assert max_err(got, outputs, label, names) < TOL, label


@pytest.mark.parametrize("case", CASES + KERAS_CASES)
def test_read_and_predict_with_states_matches_torch(case):
    path, meta, inputs, outputs = load(case)
    model = rnnconvert.read(path)
    want_in, want_out = PORTS[case]
    assert [(p.name, p.state, len(p.layers)) for p in model.state_inputs] == want_in
    assert [(p.name, p.state, len(p.layers)) for p in model.state_outputs] == want_out
    assert model.input.name == "input" and model.output_name == meta["graph_outputs"][0]
    assert model.input.layout == meta.get("input_layout", "batch_time_feature")
    layout = "batch_size" if case in KERAS_CASES else "rows_batch_size"
    assert {p.layout for p in model.state_inputs + model.state_outputs} == {layout}
    for label in SETS:
        feeds = feeds_of(inputs, label)
        x = feeds.pop("input")
        y, outs = rnnconvert.predict(model, x, states=feeds, return_states=True)
        assert max_err({model.output_name: y, **outs}, outputs, label, meta["graph_outputs"]) < TOL, label


@pytest.mark.parametrize("case", CASES + KERAS_CASES)
def test_converted_to_onnx_keeps_names_order_and_numbers(case, tmp_path):
    path, meta, inputs, outputs = load(case)
    dst = tmp_path / "model.onnx"
    report = rnnconvert.convert(path, dst)
    assert report.passed
    labels = {c.input for c in report.checks}
    assert any(label.endswith("+ random states") for label in labels)
    assert any(label.endswith("+ zero states") for label in labels)
    for label in SETS:
        got, ins, outs = session_run(dst, feeds_of(inputs, label))
        assert ins == meta["graph_inputs"] and outs == meta["graph_outputs"]
        assert max_err(got, outputs, label, outs) < TOL, label
    def count(f):
        return sum(n.op_type in ("LSTM", "GRU", "RNN") for n in onnx.load(str(f)).graph.node)
    assert count(dst) == count(path)


@pytest.mark.parametrize("case", [c for c in CASES if c != "gru_bidir"])
def test_streaming_chunk_by_chunk_equals_one_call(case, tmp_path):
    """Torch fed chunks 1+4+7 with its states carried equals torch on the whole sequence; so do the
    converted file in onnxruntime and the reference pass, carrying the state outputs themselves."""
    path, meta, inputs, outputs = load(case)
    feeds = feeds_of(inputs, "stream")
    x = feeds.pop("input")
    full = outputs["stream.full.output"]
    assert np.abs(outputs["stream.chunked.output"] - full).max() < TOL
    dst = tmp_path / "model.onnx"
    rnnconvert.convert(path, dst)
    model = rnnconvert.read(dst)
    from rnnconvert.formats.onnx.runtime import run_states
    for run in (lambda v, f: run_states(dst, v, model, f), lambda v, f: forward_with_feeds(model, v, f)):
        y, last = states.stream(run, model, x, feeds, [1, 4, 7])
        assert np.abs(y - full).max() < TOL
        for name in meta["graph_outputs"][1:]:
            want_in = {"hn": "h0", "cn": "c0"}[name]
            assert np.abs(last[want_in] - outputs[f"stream.full.{name}"]).max() < TOL


def test_bidirectional_streaming_is_not_claimed(tmp_path):
    path = load("gru_bidir")[0]
    report = rnnconvert.convert(path, tmp_path / "model.onnx")
    assert not any(c.oracle.startswith("streaming") for c in report.checks)
    assert "streaming(reference): not defined (layers[0] '/rnn/GRU' is bidirectional)" in report.unavailable


def test_canonical_round_trip_keeps_the_ports(tmp_path):
    path, meta, inputs, outputs = load("lstm_2layer")
    dst = tmp_path / "model.rnnc"
    rnnconvert.convert(path, dst)
    model = rnnconvert.read(dst)
    assert model.state_inputs == [StatePort("h0", "h", ["/rnn/LSTM", "/rnn/LSTM_1"]),
                                  StatePort("c0", "c", ["/rnn/LSTM", "/rnn/LSTM_1"])]
    feeds = feeds_of(inputs, "t7")
    y, outs = rnnconvert.predict(model, feeds.pop("input"), states=feeds, return_states=True)
    assert max_err({"output": y, **outs}, outputs, "t7", meta["graph_outputs"]) < TOL


def test_predict_cli_takes_and_writes_npz(runner, tmp_path):
    path, meta, inputs, outputs = load("lstm_linear_batch_first")
    np.savez(tmp_path / "in.npz", **feeds_of(inputs, "t7"))
    res = runner.invoke(cli, ["predict", str(path), "--inputs", str(tmp_path / "in.npz"),
                              "--output", str(tmp_path / "out.npz")])
    assert res.exit_code == 0, res.output + res.stderr
    assert res.output == f"wrote {tmp_path / 'out.npz'}: output [3, 7, 3], hn [1, 3, 5], cn [1, 3, 5]\n"
    got = np.load(tmp_path / "out.npz")
    assert max_err({k: got[k] for k in got.files}, outputs, "t7", meta["graph_outputs"]) < TOL
    np.savez(tmp_path / "bad.npz", x=inputs["t7.input"])
    res = runner.invoke(cli, ["predict", str(path), "--inputs", str(tmp_path / "bad.npz"),
                              "--output", str(tmp_path / "out.npz")])
    assert res.exit_code == 2
    assert res.stderr == (f"rnnconvert: error: {tmp_path / 'bad.npz'}: the .npz holds x; expected the input 'input' "
                          "and optionally the state inputs h0, c0\n")


@pytest.mark.parametrize("dst,target", [("model.pt", "PyTorch state dict"), ("model.mat", "MATLAB")])
def test_targets_without_states_refuse_naming_them(dst, target, runner, tmp_path):
    path = load("lstm_2layer")[0]
    res = runner.invoke(cli, [str(path), str(tmp_path / dst)])
    assert res.exit_code == 2
    assert res.stderr == (f"rnnconvert: error: {tmp_path / dst}: {target} files cannot take recurrent states as "
                          "inputs or return them, and the model has state inputs h0, c0 and state outputs hn, cn (of "
                          "'/rnn/LSTM', '/rnn/LSTM_1'); write ONNX, Keras 3, TF.js or .rnnc to keep them, or C/JavaScript/NumPy code "
                          "whose step API carries the states\n")
    assert not (tmp_path / dst).exists()


def test_generated_code_says_where_the_states_went(runner, tmp_path):
    path = load("gru_time_major")[0]
    res = runner.invoke(cli, [str(path), str(tmp_path / "model.mjs")])
    assert res.exit_code == 0, res.output + res.stderr
    assert ("note: the model's state inputs h0 and state outputs hn (of '/rnn/GRU') are not arguments of the "
            "generated predict") in res.output.replace("changed in form:", "note:")
    assert ("not run: state inputs/outputs: js files do not take them (only the initial states were checked)"
            in res.output)


def test_own_stateful_export_reads_back_with_its_ports(tmp_path):
    src = FIXTURES / "tfkeras2" / "lstm_last_softmax" / "model.h5"
    rnnconvert.convert(src, tmp_path / "s.onnx", write_options={"stateful": True})
    model = rnnconvert.read(tmp_path / "s.onnx")
    assert [(p.name, p.state, p.layers) for p in model.state_inputs] == [("lstm/h_in", "h", ["lstm"]),
                                                                         ("lstm/c_in", "c", ["lstm"])]
    assert [p.name for p in model.state_outputs] == ["lstm/h_out", "lstm/c_out"]
    report = rnnconvert.convert(tmp_path / "s.onnx", tmp_path / "again.onnx")
    assert report.passed
    sess = ort.InferenceSession(str(tmp_path / "again.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input_1", "lstm/h_in", "lstm/c_in"]


def test_states_packed_into_one_tensor_refused(tmp_path):
    """keras2onnx packs states into one tensor and takes them apart with Slice/Squeeze/Unsqueeze."""
    proto = onnx.load(str(load("rnn_tanh")[0]))
    g = proto.graph
    node = next(n for n in g.node if n.op_type == "RNN")
    axes = onnx.helper.make_tensor("axes0", onnx.TensorProto.INT64, [1], [0])
    g.initializer.append(axes)
    g.node.insert(0, onnx.helper.make_node("Squeeze", ["h0", "axes0"], ["h0_sq"], name="sq"))
    g.node.insert(1, onnx.helper.make_node("Unsqueeze", ["h0_sq", "axes0"], ["h0_un"], name="unsq"))
    node.input[5] = "h0_un"
    onnx.save(proto, str(tmp_path / "packed.onnx"))
    with pytest.raises(UnsupportedError) as err:
        rnnconvert.read(tmp_path / "packed.onnx")
    assert str(err.value) == (f"{tmp_path / 'packed.onnx'}: the graph input 'h0' reaches the initial_h of RNN node "
                              "'/rnn/RNN' through Squeeze, Unsqueeze (several states packed into one tensor); "
                              "rnnconvert reads state inputs shaped [directions, batch, size] that feed "
                              "initial_h/initial_c directly or sliced per layer along their first axis; convert its "
                              "recurrent layers one by one with --layer")


def test_identity_between_state_input_and_node_is_glue(tmp_path):
    path, meta, inputs, outputs = load("gru_time_major")
    proto = onnx.load(str(path))
    g = proto.graph
    node = next(n for n in g.node if n.op_type == "GRU")
    g.node.insert(0, onnx.helper.make_node("Identity", ["h0"], ["h0_id"], name="id"))
    node.input[5] = "h0_id"
    onnx.save(proto, str(tmp_path / "id.onnx"))
    model = rnnconvert.read(tmp_path / "id.onnx")
    assert [p.name for p in model.state_inputs] == ["h0"]
    feeds = feeds_of(inputs, "t7")
    y, outs = rnnconvert.predict(model, feeds.pop("input"), states=feeds, return_states=True)
    assert max_err({"output": y, **outs}, outputs, "t7", meta["graph_outputs"]) < TOL


def test_a_model_with_state_outputs_only_is_refused_naming_only_those(runner, tmp_path):
    """An LSTM node whose Y_h and Y_c are graph outputs and whose initial states are not inputs: the refusal
    names its state outputs, without an empty 'state inputs none'."""
    import onnx
    from onnx import TensorProto, helper
    rng = np.random.default_rng(0)
    weights = [helper.make_tensor(n, TensorProto.FLOAT, s, rng.standard_normal(s).astype(np.float32).ravel())
               for n, s in (("W", [1, 12, 2]), ("R", [1, 12, 3]))]
    node = helper.make_node("LSTM", ["X", "W", "R"], ["", "Y_h", "Y_c"], hidden_size=3, name="lstm")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", 2])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "B", 3]) for n in ("Y_h", "Y_c")],
                              weights)
    src = tmp_path / "states_out.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(src))
    res = runner.invoke(cli, [str(src), str(tmp_path / "m.pt")])
    assert res.exit_code == 2, res.output + res.stderr
    assert "and the model has state outputs Y_c (of 'lstm'); write ONNX" in res.stderr, res.stderr
