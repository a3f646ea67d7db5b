"""convert --in-place over recurrences without native nodes: fixtures/onnx_inplace/crnn_bigru_tf2onnx (Conv2D over a
4-axis image, Bidirectional(GRU reset_after=False) that tf2onnx writes as two Loops, a Dense softmax; TF-Keras 2.x)
rewritten with native GRU nodes in the Loops' places, verified by onnxruntime on both graphs; the file written
matches TF-Keras's own predictions.  A Loop that is almost a GRU cell is refused, naming the op."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, WILD

from rnnconvert.cli import cli

ort = pytest.importorskip("onnxruntime")

CASE = FIXTURES / "onnx_inplace" / "crnn_bigru_tf2onnx"
SRC = CASE / "model.onnx"
LOOPS = ["model/bidirectional/forward_gru/while_loop", "model/bidirectional/backward_gru/while_loop"]


def _run(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def test_tf2onnx_loops_are_rewritten_as_native_gru_nodes(tmp_path):
    dst = tmp_path / "native.onnx"
    res = CliRunner().invoke(cli, ["convert", str(SRC), str(dst), "--in-place", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and report["conversion"]["changed_in_form"] == LOOPS
    assert {c["oracle"] for c in report["checks"]} == {"onnxruntime(dst) output 'probs'"} | \
        {f"onnxruntime(lifted node '{name}') vs reference" for name in LOOPS}
    assert f"Loop '{LOOPS[0]}' (a GRU cell) rewritten in place as a native GRU node" in report["notes"]
    a, b = onnx.load(str(SRC)).graph, onnx.load(str(dst)).graph
    ops_a, ops_b = Counter(n.op_type for n in a.node), Counter(n.op_type for n in b.node)
    assert (ops_a["Loop"], ops_a["GRU"], ops_b["Loop"], ops_b["GRU"]) == (2, 0, 0, 2)
    for op in ("Conv", "MaxPool", "MatMul", "Softmax", "ReverseSequence"):    # the rest of the graph kept
        assert ops_b[op] == ops_a[op], op
    source = {n.name: n for n in a.node}
    for n in b.node:
        if n.name in source and n.op_type != "GRU":
            assert n == source[n.name]                                # a node kept is kept unchanged
    for n in a.node:
        if n.op_type in ("Conv", "MatMul", "Softmax"):
            assert n in list(b.node)
    inits = {t.name: t for t in b.initializer}
    conv = next(n for n in a.node if n.op_type == "Conv")
    assert all(inits[t.name] == t for t in a.initializer if t.name in conv.input)
    assert [(i.name, o.name) for i, o in zip(a.input, a.output)] == [(i.name, o.name) for i, o in zip(b.input, b.output)]
    inputs, outputs = np.load(CASE / "inputs.npz"), np.load(CASE / "outputs.npz")
    for key in inputs:
        feeds = {"image": inputs[key]}
        got = _run(dst, feeds)["probs"]
        np.testing.assert_allclose(got, _run(SRC, feeds)["probs"], atol=1e-5, rtol=0)    # the source graph
        np.testing.assert_allclose(got, outputs[f"{key}.probs"], atol=1e-4, rtol=0)     # TF-Keras itself


def test_stateful_gives_each_lifted_gru_a_state_input(tmp_path):
    dst = tmp_path / "s.onnx"
    res = CliRunner().invoke(cli, ["convert", str(SRC), str(dst), "--in-place", "--stateful"])
    assert res.exit_code == 0, res.output
    g = onnx.load(str(dst)).graph
    states = [f"{name}/initial_h" for name in LOOPS]
    assert [i.name for i in g.input] == ["image"] + states
    assert [o.name for o in g.output] == ["probs"] + [f"{name}/Y_h" for name in LOOPS]
    x = np.load(CASE / "inputs.npz")["t7"]
    zeros = _run(dst, {"image": x} | {s: np.zeros((1, 3, 6), np.float32) for s in states})
    np.testing.assert_allclose(zeros["probs"], np.load(CASE / "outputs.npz")["t7.probs"], atol=1e-4, rtol=0)
    h0 = np.random.default_rng(0).standard_normal((1, 3, 6)).astype(np.float32)
    moved = _run(dst, {"image": x, states[0]: h0, states[1]: np.zeros((1, 3, 6), np.float32)})
    assert np.abs(moved["probs"] - zeros["probs"]).max() > 1e-3           # the state input reaches the node


def test_a_loop_that_is_almost_a_gru_cell_is_refused_naming_the_op(tmp_path):
    m = onnx.load(str(SRC))
    loop = next(n for n in m.graph.node if n.name == LOOPS[0])
    body = next(a.g for a in loop.attribute if a.name == "body")
    gate = next(n for n in body.node if n.name == "model/bidirectional/forward_gru/while/gru_cell/Sigmoid")
    gate.op_type = "Tanh"                                                  # one op changed
    src = tmp_path / "almost.onnx"
    onnx.save(m, str(src))
    res = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "a.onnx"), "--in-place"])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"rnnconvert: error: {src}: layer '{LOOPS[0]}': Loop node '{LOOPS[0]}' does not "
                                 "compute an LSTM, GRU or RNN cell: its Tanh node "
                                 "'model/bidirectional/forward_gru/while/gru_cell/Sigmoid' does not fit")
    assert res.stderr.rstrip().endswith("nothing was lifted")
    assert not (tmp_path / "a.onnx").exists()


WATER = WILD / "onnx_water_gru_loop_tf2onnx117"


@pytest.mark.skipif(not WATER.is_dir(), reason=f"{WATER} is missing")
def test_wild_water_model_three_loop_grus_then_attention(tmp_path):
    dst = tmp_path / "water.onnx"
    res = CliRunner().invoke(cli, ["convert", str(WATER / "gru_model.onnx"), str(dst), "--in-place"])
    assert res.exit_code == 0, res.output
    ops = Counter(n.op_type for n in onnx.load(str(dst)).graph.node)
    assert (ops["GRU"], ops["Loop"], ops["Softmax"]) == (3, 0, 1)
    got = _run(dst, {"input": np.load(WATER / "x.npy")})["output"]
    np.testing.assert_allclose(got, np.load(WATER / "y.npy"), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("case", ["tf2onnx_loop/bigru_reset_before_seq", "tf2onnx_loop/lstm_softsign_seq",
                                  "torch_script/lstm_seq", "torch_traced/gru_traced_seq", "unrolled/lstm_seq",
                                  "scan/gru_scan_reverse"])
def test_each_exporters_recurrence_is_rewritten_in_place(case, tmp_path):
    folder, dst = FIXTURES / case, tmp_path / "native.onnx"
    res = CliRunner().invoke(cli, ["convert", str(folder / "model.onnx"), str(dst), "--in-place",
                                   "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    changed = json.loads((tmp_path / "r.json").read_text())["conversion"]["changed_in_form"]
    before, after = Counter(n.op_type for n in onnx.load(str(folder / "model.onnx")).graph.node), \
        Counter(n.op_type for n in onnx.load(str(dst)).graph.node)
    native = sum(after[op] for op in ("LSTM", "GRU", "RNN"))
    assert after["Loop"] == after["Scan"] == 0 and native == len(changed) == max(1, before["Loop"] + before["Scan"])
    inputs, outputs = np.load(folder / "inputs.npz"), np.load(folder / "outputs.npz")
    name = onnx.load(str(dst)).graph.input[0].name
    for key in inputs:
        got = next(iter(_run(dst, {name: inputs[key]}).values()))
        np.testing.assert_allclose(got, next(iter(_run(folder / "model.onnx", {name: inputs[key]}).values())),
                                   atol=1e-5, rtol=0)
        np.testing.assert_allclose(got, outputs[key], atol=1e-4, rtol=0)          # the framework's own output


def test_a_graph_without_any_recurrence_is_refused(tmp_path):
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 3])
    src = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])), str(src))
    res = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "r.onnx"), "--in-place"])
    assert (res.exit_code, res.stderr) == (2, f"rnnconvert: error: {src}: no LSTM, GRU or RNN node, and no Loop, Scan "
                                              "or unrolled cell computing one, in the main graph to rewrite in place\n")


def test_a_loop_that_is_no_recurrence_is_kept_with_a_note(tmp_path):
    from onnx import TensorProto, helper, numpy_helper
    m = onnx.load(str(FIXTURES / "onnx_inplace" / "crnn_bigru" / "model.onnx"))     # a native GRU, and a counter Loop
    scalar = lambda name, t: helper.make_tensor_value_info(name, t, [])                # noqa: E731
    body = helper.make_graph([helper.make_node("Identity", ["c_in"], ["c_out"]),
                              helper.make_node("Add", ["acc", "one"], ["acc_out"])], "body",
                             [scalar("i", TensorProto.INT64), scalar("c_in", TensorProto.BOOL),
                              scalar("acc", TensorProto.FLOAT)],
                             [scalar("c_out", TensorProto.BOOL), scalar("acc_out", TensorProto.FLOAT)],
                             [numpy_helper.from_array(np.array(1, np.float32), "one")])
    m.graph.initializer.extend([numpy_helper.from_array(np.array(3, np.int64), "trip"),
                                numpy_helper.from_array(np.array(True), "c0"),
                                numpy_helper.from_array(np.array(0, np.float32), "a0")])
    m.graph.node.append(helper.make_node("Loop", ["trip", "c0", "a0"], ["count"], name="counter", body=body))
    m.graph.output.append(scalar("count", TensorProto.FLOAT))
    src, dst = tmp_path / "counter.onnx", tmp_path / "out.onnx"
    onnx.save(m, str(src))
    res = CliRunner().invoke(cli, ["convert", str(src), str(dst), "--in-place", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert "Loop node 'counter' left as it is: not a recurrence lifting reads" in report["notes"]
    assert report["conversion"]["changed_in_form"] == ["/rnn/GRU"]
    loop = next(n for n in onnx.load(str(dst)).graph.node if n.op_type == "Loop")
    assert loop == m.graph.node[-1]
    assert _run(dst, {"image": np.load(FIXTURES / "onnx_inplace" / "crnn_bigru" / "inputs.npz")["t7"]})["count"] == 3
