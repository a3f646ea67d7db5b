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
