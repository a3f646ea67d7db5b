"""TensorFlow's own WHILE lowering of Keras recurrent layers (TFLiteConverter, static batch 1: fixtures/tflite,
fixtures/make_tflite.py) read as the canonical layer: the cell found from the body's weights and accepted only
after one step of it equals the body evaluated on random inputs; predicted within 1e-5 of TF Lite's stored
outputs and of LiteRT, and converted on to ONNX (onnxruntime).  A body that matches no cell rnnconvert knows
is refused naming the WHILE op."""
from __future__ import annotations

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from litert_helpers import load, op_counts, run
from rnnconvert.errors import UnsupportedError
from rnnconvert.reference.network import forward

TFL = FIXTURES / "tflite"
# case: (kind, direction, output, activations, reset_after) of the lifted layer
CASES = {
    "simplernn_dense": ("rnn", "forward", "final_state", ["tanh"], True),
    "gru_seq_dense": ("gru", "forward", "sequence", ["sigmoid", "tanh"], True),
    "gru_reset_before_last": ("gru", "forward", "final_state", ["sigmoid", "tanh"], False),
    "lstm_hard_sigmoid_seq": ("lstm", "forward", "sequence", ["hard_sigmoid", "tanh", "tanh"], True),
    # go_backwards: REVERSE_V2 of the time-major input before the loop
    "gru_backwards_last": ("gru", "reverse", "final_state", ["sigmoid", "tanh"], True),
    # Bidirectional: two loops, the backward one's outputs reversed back, concatenated: one layer
    "bigru_seq": ("gru", "bidirectional", "sequence", ["sigmoid", "tanh"], True),
    # dynamic range: the bodies' FULLY_CONNECTED int8 (a scale per row), LiteRT's hybrid arithmetic
    "gru_quantized": ("gru", "forward", "final_state", ["sigmoid", "tanh"], True),
    "bigru_reset_before_quantized": ("gru", "bidirectional", "sequence", ["sigmoid", "tanh"], False),
}


def _io(case):
    xs, ys = np.load(TFL / case / "inputs.npz"), np.load(TFL / case / "outputs.npz")
    return [(k, xs[k], ys[k]) for k in xs.files]


@pytest.mark.parametrize("case", sorted(CASES))
def test_tensorflow_while_lowering_read_within_1e5_of_litert(case):
    path = TFL / case / "model.tflite"
    assert op_counts(path)["WHILE"] == (2 if case.startswith("bi") else 1)
    layer = rnnconvert.read(path).layers[0]
    assert (layer.kind, layer.direction, layer.output, [a.name for a in layer.activations],
            layer.reset_after) == CASES[case]
    model = rnnconvert.read(path)
    assert (layer.hybrid is not None) == case.endswith("quantized")
    for key, x, y in _io(case):
        pred = forward(model, x)
        np.testing.assert_allclose(pred, y, atol=1e-5, rtol=0, err_msg=f"TF Lite's stored outputs [{key}]")
        litert = np.concatenate([run(path, row[None]) for row in x])       # static batch 1
        np.testing.assert_allclose(pred, litert, atol=1e-5, rtol=0, err_msg=f"LiteRT [{key}]")
        if layer.hybrid is not None:        # the same weights in float arithmetic: far off
            from rnnconvert.model.hybrid import dequantized
            assert np.abs(forward(dequantized(model), x) - y).max() > 1e-3


def test_tensorflow_while_gru_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    load  # LiteRT present (skips, or under CI fails, otherwise)
    dst = tmp_path / "gru.onnx"
    report = rnnconvert.convert(TFL / "gru_seq_dense" / "model.tflite", dst)
    assert report.passed
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    for key, x, y in _io("gru_seq_dense"):
        np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], y, atol=1e-5, err_msg=key)


def test_a_body_matching_no_known_cell_is_refused(monkeypatch):
    from rnnconvert.formats.tflite import lift_while
    from rnnconvert.model import RELU
    monkeypatch.setattr(lift_while, "CANDIDATES", (RELU,))        # a tanh RNN then matches no candidate
    with pytest.raises(UnsupportedError, match=r"main: op WHILE \(output 'sequential_2/simple_rnn/while'\): "
                                               r"TensorFlow's loop over a recurrent cell, its body has the sizes "
                                               r"of a RNN but matches none of its forms \(closest: [0-9.e-]+ from "
                                               r"the body, random x_t and states\); rnnconvert reads it when its "
                                               r"body is an LSTM, GRU or simple RNN cell it checks"):
        rnnconvert.read(TFL / "simplernn_dense" / "model.tflite")

