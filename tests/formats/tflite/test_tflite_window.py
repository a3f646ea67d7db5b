"""A time window in TFLite: TensorFlow's TFLiteConverter writes a Keras Cropping1D as a STRIDED_SLICE of the
time axis (fixtures/tflite_window), read as a TimeWindow within 1e-4 of LiteRT; the torch.onnx window fixtures
written as .tflite (one STRIDED_SLICE, shrinking time for one step) run in LiteRT within 1e-4 of torch, and read
back as the same window."""
from __future__ import annotations

import copy

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from litert_helpers import op_counts, run
from rnnconvert.model import TimeWindow

TOL = 1e-4


def _window(model):
    (w,) = [layer for layer in model.layers if isinstance(layer, TimeWindow)]
    return w.start, w.stop, w.single


@pytest.mark.parametrize("case,window", [("lstm_crop_2_1_dense", (2, -1, False)), ("bilstm_crop_3_0_seq", (3, None, False))])
def test_tensorflow_cropping1d_reads_as_a_window(case, window):
    d = FIXTURES / "tflite_window" / case
    assert op_counts(d / "model.tflite")["STRIDED_SLICE"] >= 1
    model = rnnconvert.read(str(d / "model.tflite"))
    assert _window(model) == window
    xs, ys = np.load(d / "inputs.npz"), np.load(d / "outputs.npz")
    for k in xs.files:
        np.testing.assert_allclose(rnnconvert.predict(model, xs[k]), ys[k], atol=TOL, rtol=TOL, err_msg=k)


@pytest.mark.parametrize("case,window", [("lstm_last5_dense", (-5, None, False)), ("lstm_step_minus2", (-2, None, True)),
                                         ("rnn_steps_2_6", (2, 6, False)), ("lstm_time_major_last5", (-5, None, False))])
def test_window_written_as_strided_slice_runs_in_litert(case, window, tmp_path):
    d = FIXTURES / "torch_window" / case
    model = rnnconvert.read(str(d / "model.onnx"))
    rnnconvert.write(model, str(tmp_path / "m.tflite"))
    whole = copy.copy(model)
    whole.layers = [layer for layer in model.layers if not isinstance(layer, TimeWindow)]
    rnnconvert.write(whole, str(tmp_path / "whole.tflite"))
    ops, before = op_counts(tmp_path / "m.tflite"), op_counts(tmp_path / "whole.tflite")
    assert ops - before == {"STRIDED_SLICE": 1} and not before - ops        # the window is one STRIDED_SLICE
    xs, ys = np.load(d / "inputs.npz"), np.load(d / "outputs.npz")
    for k in xs.files:          # a time-major model's .tflite takes and returns time-major tensors, as torch did
        np.testing.assert_allclose(run(tmp_path / "m.tflite", xs[k]), ys[k], atol=TOL, rtol=TOL, err_msg=k)
    assert _window(rnnconvert.read(str(tmp_path / "m.tflite"))) == window
