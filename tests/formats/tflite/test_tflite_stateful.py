"""--stateful: each recurrent layer's state as inputs `<layer>/h_in` (`c_in`) and outputs `<layer>/h_out`
(`c_out`).  LiteRT fed a sequence in chunks, each chunk's state outputs fed back as the next chunk's
inputs, ends where the whole sequence does and where TF-Keras did (the fixture's stored outputs)."""
from __future__ import annotations

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from litert_helpers import load
from rnnconvert.errors import UnsupportedError

SRC = FIXTURES / "tfkeras2" / "stacked_lstm_dense" / "model.h5"


def _stream(it, x, chunks):
    ins, outs = it.get_input_details(), it.get_output_details()
    by_name = {o["name"]: o for o in outs}
    states = {p["name"]: np.zeros((x.shape[0], int(p["shape"][-1])), np.float32) for p in ins[1:]}
    start, y = 0, None
    for n in chunks:
        part = x[:, start:start + n]
        start += n
        it.resize_tensor_input(ins[0]["index"], list(part.shape), strict=True)
        for p in ins[1:]:
            it.resize_tensor_input(p["index"], list(states[p["name"]].shape), strict=True)
        it.allocate_tensors()
        it.set_tensor(ins[0]["index"], part)
        for p in ins[1:]:
            it.set_tensor(p["index"], states[p["name"]])
        it.invoke()
        y = it.get_tensor(outs[0]["index"]).copy()
        states = {p["name"]: it.get_tensor(by_name[p["name"].replace("_in", "_out")]["index"]).copy()
                  for p in ins[1:]}
    return y


def test_streamed_in_chunks_ends_where_the_sequence_does(tmp_path):
    dst = tmp_path / "s.tflite"
    report = rnnconvert.convert(SRC, dst, write_options={"stateful": True})
    assert report.passed
    it = load(dst)
    names = [p["name"] for p in it.get_input_details()]
    assert names[1:] == ["lstm/h_in", "lstm/c_in", "lstm_1/h_in", "lstm_1/c_in"]
    xs, ys = np.load(SRC.parent / "inputs.npz"), np.load(SRC.parent / "outputs.npz")
    x, y = xs["t60"], ys["t60"]
    np.testing.assert_allclose(_stream(it, x, [1, 6, 23, 30]), y, atol=1e-4, rtol=0)
    np.testing.assert_allclose(_stream(load(dst), x, [60]), y, atol=1e-4, rtol=0)
    assert rnnconvert.read(dst).input.features == x.shape[2]        # reads back as the model it streams


def test_stateful_refuses_a_bidirectional_layer(tmp_path):
    with pytest.raises(UnsupportedError, match=r"--stateful streams forward layers only: .*\(bidirectional\)"):
        rnnconvert.convert(FIXTURES / "tfkeras2" / "bilstm_mul_seq" / "model.h5", tmp_path / "b.tflite",
                           write_options={"stateful": True})
