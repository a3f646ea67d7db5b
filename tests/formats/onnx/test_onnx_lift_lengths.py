"""Loops stopped by per-sequence lengths (rnnconvert/formats/onnx/lift_lengths.py): torch.jit.script'ed GRU and
LSTM cells that keep their states and output zeros from step lengths[b] on, exported by torch.onnx
(fixtures/torch_lengths).  --in-place rewrites each into one native node with sequence_lens, run by onnxruntime
against the torch module's outputs; the whole model (two inputs) is refused with the reason, and the layer
alone converts (to ONNX, Keras and PyTorch, each run by its runtime) and matches the rows that run to full
length; a body that outputs other than zeros past a length is refused naming the node."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import rnnconvert
from conftest import FIXTURES
from rnnconvert.cli import cli

ort = pytest.importorskip("onnxruntime")
TOL = 1e-4
CASES = {"gru_lengths_seq": "GRU", "lstm_lengths_seq": "LSTM"}


def _data(case):
    d = FIXTURES / "torch_lengths" / case
    xs, ys = np.load(d / "inputs.npz"), np.load(d / "outputs.npz")
    sets = sorted({k.split(".")[0] for k in xs.files})
    return d / "model.onnx", {s: (xs[f"{s}.input"], xs[f"{s}.lengths"], ys[f"{s}.output"]) for s in sets}


@pytest.mark.parametrize("case", list(CASES))
def test_in_place_gives_one_native_node_with_sequence_lens(case, tmp_path):
    path, sets = _data(case)
    x, lengths, _ = sets["t7"]
    np.savez(tmp_path / "x.npz", input=x, lengths=lengths)
    dst = tmp_path / "native.onnx"
    res = CliRunner().invoke(cli, ["convert", str(path), str(dst), "--in-place", "--inputs", str(tmp_path / "x.npz")])
    assert res.exit_code == 0, res.output
    assert f"Loop '/Loop' (a {CASES[case]} cell) rewritten in place as a native {CASES[case]} node" in res.output
    g = onnx.load(str(dst)).graph
    ops = Counter(n.op_type for n in g.node)
    assert ops[CASES[case]] == 1 and not ops["Loop"], ops
    node = next(n for n in g.node if n.op_type == CASES[case])
    cast = next(n for n in g.node if n.output[0] == node.input[4])         # sequence_lens
    assert cast.op_type == "Cast" and list(cast.input) == ["lengths"]
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    for key, (x, lengths, y) in sets.items():
        assert (lengths < x.shape[1]).any() or x.shape[1] == 1
        np.testing.assert_allclose(sess.run(None, {"input": x, "lengths": lengths})[0], y, atol=TOL, rtol=TOL,
                                   err_msg=key)


@pytest.mark.parametrize("case", list(CASES))
def test_whole_model_refused_and_the_layer_alone_converts(case, tmp_path):
    path, sets = _data(case)
    res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / "m.onnx")])
    assert res.exit_code == 2
    assert "the graph has 2 inputs ('input', 'lengths'); rnnconvert reads models with one input" in res.output
    import keras
    for dst, oracle in (("l.onnx", "onnxruntime(dst)"), ("l.keras", "keras(dst)"), ("l.pt", "torch(dst)")):
        report = rnnconvert.convert(path, tmp_path / dst, layer="/Loop").to_dict()
        assert report["passed"] and oracle in report["oracles"]["ran"], report["oracles"]
    sess = ort.InferenceSession(str(tmp_path / "l.onnx"), providers=["CPUExecutionProvider"])
    km = keras.models.load_model(tmp_path / "l.keras", compile=False)
    for key, (x, lengths, y) in sets.items():
        full = lengths == x.shape[1]         # rows that run to their full length: the layer alone gives them
        assert full.any()
        np.testing.assert_allclose(sess.run(None, {"input": x})[0][full], y[full], atol=TOL, rtol=TOL, err_msg=key)
        np.testing.assert_allclose(np.asarray(km.predict(x, verbose=0))[full], y[full], atol=TOL, rtol=TOL)


def test_a_body_that_keeps_other_than_zeros_past_a_length_is_refused(tmp_path):
    path, _ = _data("gru_lengths_seq")
    m = onnx.load(str(path))
    loop = next(n for n in m.graph.node if n.op_type == "Loop")
    body = loop.attribute[0].g
    h_in = body.input[2].name
    out_where = next(n for n in body.node if n.op_type == "Where" and n.input[2] != h_in)
    out_where.input[2] = h_in                 # the output past a length: the old h, not zeros
    bad = tmp_path / "bad.onnx"
    onnx.save(m, str(bad))
    res = CliRunner().invoke(cli, ["convert", str(bad), str(tmp_path / "o.onnx"), "--in-place"])
    assert res.exit_code == 2
    assert (f"Loop node '/Loop' stops sequences at their lengths, but Where node '{out_where.name}' keeps on steps "
            "past a sequence's length a value that is neither the old state nor zeros in the output; nothing was "
            "lifted") in res.output
