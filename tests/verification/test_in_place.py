"""convert --in-place: an ONNX graph the canonical model cannot hold (fixtures/onnx_inplace/crnn_bigru: Conv2d over a
4-axis image, a BiGRU, two outputs; torch.onnx.export) kept whole, its recurrent node rewritten as a native
node, verified by onnxruntime on both graphs; the file written matches the torch module's own outputs."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import FIXTURES

from rnnconvert.cli import cli

ort = pytest.importorskip("onnxruntime")

CASE = FIXTURES / "onnx_inplace" / "crnn_bigru"
SRC = CASE / "model.onnx"


def _run(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def test_the_whole_model_is_refused_and_in_place_rewrites_it(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["convert", str(SRC), str(tmp_path / "a.onnx")])
    assert res.exit_code == 2 and "the graph input 'image' has 4 axes" in res.stderr
    dst = tmp_path / "b.onnx"
    res = runner.invoke(cli, ["convert", str(SRC), str(dst), "--in-place", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] and report["conversion"]["changed_in_form"] == ["/rnn/GRU"]
    oracles = {c["oracle"] for c in report["checks"]}
    assert oracles == {"onnxruntime(dst) output 'log_probs'", "onnxruntime(dst) output 'h_n'",
                       "onnxruntime(src node '/rnn/GRU') vs reference"}
    inputs, outputs = np.load(CASE / "inputs.npz"), np.load(CASE / "outputs.npz")
    for key in inputs:                           # the torch module's own outputs
        got = _run(dst, {"image": inputs[key]})
        for name in ("log_probs", "h_n"):
            np.testing.assert_allclose(got[name], outputs[f"{key}.{name}"], atol=1e-5, rtol=0)
    a, b = onnx.load(str(SRC)).graph, onnx.load(str(dst)).graph
    assert [(n.op_type, n.name) for n in a.node] == [(n.op_type, n.name) for n in b.node]
    assert [n.op_type for n in b.node].count("GRU") == 1 and "Loop" not in [n.op_type for n in b.node]
    for x, y in zip(a.node, b.node):
        if x.op_type != "GRU":
            assert x == y                                       # every other node unchanged
    kept = {t.name: t for t in b.initializer}
    gru = next(n for n in a.node if n.op_type == "GRU")
    for t in a.initializer:
        if t.name not in gru.input:
            assert kept[t.name] == t                            # every other initializer unchanged
    assert [o.name for o in a.output] == [o.name for o in b.output]


def test_stateful_gives_the_state_as_a_graph_input(tmp_path):
    dst = tmp_path / "s.onnx"
    res = CliRunner().invoke(cli, ["convert", str(SRC), str(dst), "--in-place", "--stateful"])
    assert res.exit_code == 0, res.output
    g = onnx.load(str(dst)).graph
    assert [i.name for i in g.input] == ["image", "/rnn/GRU/initial_h"]
    assert [o.name for o in g.output] == ["log_probs", "h_n"]
    x = np.load(CASE / "inputs.npz")["t7"]
    zeros = _run(dst, {"image": x, "/rnn/GRU/initial_h": np.zeros((2, 3, 6), np.float32)})
    want = np.load(CASE / "outputs.npz")
    np.testing.assert_allclose(zeros["log_probs"], want["t7.log_probs"], atol=1e-5, rtol=0)
    h0 = np.random.default_rng(0).standard_normal((2, 3, 6)).astype(np.float32)
    moved = _run(dst, {"image": x, "/rnn/GRU/initial_h": h0})
    assert np.abs(moved["h_n"] - zeros["h_n"]).max() > 1e-3     # the state input reaches the node


def test_in_place_refusals(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["convert", str(SRC), str(tmp_path / "x.keras"), "--in-place"])
    assert (res.exit_code, res.stderr) == (2, f"rnnconvert: error: {tmp_path / 'x.keras'}: --in-place rewrites an "
                                              "ONNX graph into an ONNX file: SRC and DST must both be ONNX, without "
                                              "--layer\n")
    from bench.onnx_peer import node_cases, peer_model
    case = next(c for c in node_cases() if c[0] == "test_gru_batchwise")
    src = tmp_path / "batchwise.onnx"
    onnx.save(peer_model(*case)[0], str(src))
    res = runner.invoke(cli, ["convert", str(src), str(tmp_path / "p.onnx"), "--in-place"])
    assert (res.exit_code, res.stderr) == (2, f"rnnconvert: error: {src}: layer 'Y': GRU node 'Y' (main graph): "
                                              "layout=1 (batch-major node); re-export with layout 0\n")
    assert not (tmp_path / "p.onnx").exists()


def test_a_huge_declared_input_asks_for_inputs(tmp_path):
    g = onnx.load(str(SRC))
    dims = g.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value, dims[3].dim_value = 10000, 1000             # [10000, 1, 8, 1000]: 8e7 values
    src = tmp_path / "huge.onnx"
    onnx.save(g, str(src))
    res = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "h.onnx"), "--in-place"])
    assert (res.exit_code, res.stderr) == (2, f"rnnconvert: error: {src}: the graph input 'image' declares "
                                              "[10000, 1, 8, 1000] (80000000 values, past 67108864); pass "
                                              "--inputs with the arrays to verify on\n")
