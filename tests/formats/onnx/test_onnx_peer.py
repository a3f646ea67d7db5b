"""The ONNX operator tests as a peer suite (bench/onnx_peer.py builds them from the installed onnx package):
the 18 LSTM/GRU/RNN node cases read, predicted as onnxruntime runs them (onnx's own reference evaluator for
layout=1, which onnxruntime has no kernels for) on the case's input and on batches of 3 sequences of 1, 4 and
9 steps, and converted to ONNX; the LSTM with peepholes is read (the canonical LSTM has them), and refused by the
writers whose LSTM has none, naming the layer and why."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import rnnconvert
from bench.onnx_peer import node_cases, peer_model, prediction_error, random_feeds
from rnnconvert.cli import cli
from rnnconvert.errors import UnsupportedError

pytest.importorskip("onnxruntime")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    CASES = {c[0]: c for c in node_cases()}

PEEPHOLES = "test_lstm_with_peepholes"
BATCHWISE = ("test_lstm_batchwise", "test_gru_batchwise", "test_simple_rnn_batchwise")


def _save(tmp_path, name):
    _, node, inputs, outputs = CASES[name]
    proto, feeds = peer_model(*CASES[name])
    path = tmp_path / f"{name}.onnx"
    onnx.save(proto, str(path))
    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    return path, feeds, layout, [o for o in node.output if o], node


def test_the_suite_is_whole():
    assert len(CASES) == 18


@pytest.mark.parametrize("name", sorted(CASES))
def test_peer_case_reads_and_predicts_as_onnxruntime(tmp_path, name):
    path, feeds, layout, outputs, node = _save(tmp_path, name)
    if name in BATCHWISE:    # a batch-major node's Y_h is [batch, dirs, H], no state port: one output at a time
        with pytest.raises(UnsupportedError, match=r"the graph has 2 outputs \(Y, Y_h\); the canonical model has "
                                                   r"one: pass --output NAME"):
            rnnconvert.read(path)
        models = [rnnconvert.read(path, output=o) for o in outputs]
    else:
        models = [rnnconvert.read(path)]
    inputs = [feeds] + random_feeds(feeds, layout, free="sequence_lens" not in node.input)
    for model in models:
        assert [type(layer).__name__ for layer in model.layers] == ["Recurrent"]
        for f in inputs:
            err, oracle = prediction_error(path, model, f)
            assert err <= 1e-5, (model.output_name, f["X"].shape, err)
            assert oracle == ("onnx.reference" if layout else "onnxruntime")


@pytest.mark.parametrize("name, output, states", [
    ("test_lstm_reverse", "Y_h", ["Y_c"]),          # Y_h and Y_c: the first is the output, Y_c a state output
    ("test_lstm_bidirectional", "Y_h", ["Y_c"]),    # [2, B, H] each
    ("test_gru_bidirectional", "Y", ["Y_h"]),       # the raw Y [T, 2, B, H]
    ("test_gru_reverse", "Y", ["Y_h"]),
    ("test_simple_rnn_bidirectional", "Y_h", []),
])
def test_raw_outputs_are_the_output_and_state_outputs(tmp_path, name, output, states):
    path, feeds, *_ = _save(tmp_path, name)
    model = rnnconvert.read(path)
    assert model.output_name == output and [p.name for p in model.state_outputs] == states
    assert model.layers[0].merge == "concat"


def test_raw_bidirectional_Y_is_the_concatenation_of_its_directions(tmp_path):
    import onnxruntime as ort
    path, feeds, *_ = _save(tmp_path, "test_gru_bidirectional")
    x = np.random.default_rng(1).standard_normal((6, 2, 2)).astype(np.float32)
    Y, Y_h = ort.InferenceSession(str(path)).run(None, {"X": x})       # [T, 2, B, H], [2, B, H]
    got, st = rnnconvert.predict(rnnconvert.read(path), x, return_states=True)
    np.testing.assert_allclose(got, np.concatenate([Y[:, 0], Y[:, 1]], axis=-1), atol=1e-5, rtol=0)
    np.testing.assert_allclose(st["Y_h"], Y_h, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_peer_case_round_trips_to_onnx(tmp_path, name):
    path, _, _, outputs, node = _save(tmp_path, name)
    for output in (outputs if name in BATCHWISE else [None]):
        dst = tmp_path / f"out_{output}.onnx"
        report = rnnconvert.convert(path, dst, read_options={"output": output} if output else None).to_dict()
        assert report["passed"] and "onnxruntime(dst)" in report["oracles"]["ran"]
        ops = [n.op_type for n in onnx.load(str(dst)).graph.node]
        assert ops.count(node.op_type) == 1 and "Loop" not in ops and "Scan" not in ops


def test_peepholes_are_read_and_refused_by_writers_without_them(tmp_path):
    path, feeds, *_ = _save(tmp_path, PEEPHOLES)
    model = rnnconvert.read(path)
    P = np.asarray(CASES[PEEPHOLES][2][7]).reshape(3, -1)            # ONNX order i, o, f
    np.testing.assert_array_equal(model.layers[0].weights[0].P, P[[0, 2, 1]])
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["LSTM"]
    for dst in ("out.c", "out.keras", "out.pt", "out.mat", "out.mjs", "out.py"):
        res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / dst)])
        fmt = {"c": "c", "keras": "keras", "pt": "torch", "mat": "matlab", "mjs": "js", "py": "numpy"}[dst[4:]]
        assert res.exit_code == 2, (dst, res.output)
        assert res.stderr == (f"rnnconvert: error: {tmp_path / dst}: layer 'LSTM_0': an LSTM with peepholes (ONNX P: "
                              f"the gates i, f, o also see the cell state), which {fmt} has no form for; write ONNX "
                              "or .rnnc\n")
        assert not (tmp_path / dst).exists()
    res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / "back.rnnc")])
    assert res.exit_code == 0, res.output
    again = rnnconvert.read(tmp_path / "back.rnnc")
    np.testing.assert_array_equal(again.layers[0].weights[0].P, model.layers[0].weights[0].P)


def test_an_unnamed_node_is_listed_by_its_synthesized_name(tmp_path):
    path, *_ = _save(tmp_path, "test_gru_defaults")
    res = CliRunner().invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 0, res.output
    assert "  0  GRU_0  gru" in res.output and "layer 0 'GRU_0'" in res.output
    res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / "one.onnx"), "--layer", "GRU_0"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("direction, clip", [("forward", None), ("bidirectional", None), ("reverse", 1.5)])
def test_peepholes_over_many_steps_match_onnxruntime(tmp_path, direction, clip):
    """Peepholes through a recurrence: 9 steps, batch 3, saturating inputs, both directions, the cell clip."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    D, H, F = (2 if direction == "bidirectional" else 1), 4, 3
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.7).astype(np.float32), n)
             for n, s in (("W", (D, 4 * H, F)), ("R", (D, 4 * H, H)), ("B", (D, 8 * H)), ("P", (D, 3 * H)))]
    attrs = {"hidden_size": H, "direction": direction} | ({"clip": clip} if clip else {})
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y", "Y_h"], name="peep", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", F])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "Y_h")], inits)
    path = tmp_path / "peep.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    x = (rng.standard_normal((9, 3, F)) * 3).astype(np.float32)
    Y, Y_h = ort.InferenceSession(str(path)).run(None, {"X": x})
    model = rnnconvert.read(path)
    got, states = rnnconvert.predict(model, x, return_states=True)
    np.testing.assert_allclose(got, np.concatenate([Y[:, d] for d in range(D)], axis=-1), atol=1e-5, rtol=0)
    np.testing.assert_allclose(states["Y_h"], Y_h, atol=1e-5, rtol=0)
    report = rnnconvert.convert(path, tmp_path / "back.onnx").to_dict()
    assert report["passed"] and "onnxruntime(dst)" in report["oracles"]["ran"]
