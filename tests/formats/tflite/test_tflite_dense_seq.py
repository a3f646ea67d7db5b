"""A Dense on every step of a sequence written as TFLite: FULLY_CONNECTED keeps the time axis, and an
activation LiteRT does not take fused there (tanh: fully_connected.cc refuses it) is a TANH op of its own.
tf2onnx's Dense-on-a-sequence fixtures (fixtures/tf2onnx_dense_seq) run in LiteRT within 1e-4 of TF-Keras."""
from __future__ import annotations

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from litert_helpers import op_counts, run

TOL = 1e-4
CASES = sorted(p.name for p in (FIXTURES / "tf2onnx_dense_seq").iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES)
def test_dense_on_a_sequence_runs_in_litert(case, tmp_path):
    d = FIXTURES / "tf2onnx_dense_seq" / case
    dst = tmp_path / "m.tflite"
    report = rnnconvert.convert(str(d / "model.onnx"), str(dst))
    assert report.passed and any(c.oracle == "litert(dst)" for c in report.checks)
    xs, ys = np.load(d / "inputs.npz"), np.load(d / "outputs.npz")
    for k in xs.files:
        np.testing.assert_allclose(run(dst, xs[k]), ys[k], atol=TOL, rtol=TOL, err_msg=k)


def test_a_tanh_after_a_dense_is_its_own_op(tmp_path):
    d = FIXTURES / "tf2onnx_dense_seq" / "lstm_seq_dense_seq"
    model = rnnconvert.read(str(d / "model.onnx"))
    from rnnconvert.model import Dense
    assert [str(layer.activation) for layer in model.layers if isinstance(layer, Dense)] == ["tanh"]
    dst = tmp_path / "m.tflite"
    rnnconvert.convert(str(d / "model.onnx"), str(dst))
    ops = op_counts(dst)
    assert ops["FULLY_CONNECTED"] == 1 and ops["TANH"] == 1 and ops["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 1, ops
