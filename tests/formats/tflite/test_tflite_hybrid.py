"""Int8 weights as LiteRT runs them (its hybrid kernels quantize the activations on the fly): a file's
FULLY_CONNECTED and sequence LSTM / RNN ops with int8 weights read as layers with a `hybrid` setting, and the
reference pass computing that arithmetic, checked against LiteRT itself (the TensorFlow-written fixture,
rnnconvert's own --quantize dynamic files with batch 3, saturating inputs, initial states, both directions and
a projection).  Writers that cannot hold it write the float weights and the report says the arithmetic
changed.  Without the emulation every prediction test here fails (the float model of the same weights is
2.2e-2 from LiteRT on the fixture)."""
from __future__ import annotations

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from litert_helpers import load, run
from rnnconvert.cli import cli
from rnnconvert.errors import InputError, UnsupportedError
from rnnconvert.model import SIGMOID, TANH, Dense, DirectionWeights, InputSpec, Model, Recurrent
from rnnconvert.model.hybrid import dequantized
from rnnconvert.reference.network import forward

TFL = FIXTURES / "tflite"
TFQ = TFL / "lstm_seq_quantized"


def _fixture(case):
    xs, ys = np.load(TFL / case / "inputs.npz"), np.load(TFL / case / "outputs.npz")
    return [(k, xs[k], ys[k]) for k in xs.files]


# TensorFlow-quantized files: (layer kind, direction, hybrid scales: None or {array: distinct scales})
TF_CASES = {
    "lstm_seq_quantized": [("lstm", "forward", {"forward.W": 4, "forward.R": 4}), ("dense", None, None)],
    # its two unidirectional LSTM ops read as one layer, the Dense(64, relu) int8 per channel, its relu fused
    # into the bias ADD (TensorFlow's Tensordot)
    "bilstm_dense_quantized": [("lstm", "bidirectional", {"forward.W": 4, "forward.R": 4, "reverse.W": 4,
                                                          "reverse.R": 4}),
                               ("dense", None, {"kernel": 64}), ("dense", None, None)],
    # a causal Conv1D: PAD, EXPAND_DIMS(-3), CONV_2D with an int8 filter of a scale per filter, RESHAPE
    "conv_lstm_quantized": [("conv1d", None, {"kernel": 48}), ("lstm", "forward", {"forward.W": 4, "forward.R": 4}),
                            ("dense", None, None)],
}


@pytest.mark.parametrize("case", sorted(TF_CASES))
def test_tensorflow_quantized_file_predicted_within_1e5_of_litert(case):
    path = TFL / case / "model.tflite"
    model = rnnconvert.read(path)
    got = [(layer.kind, getattr(layer, "direction", None),
            None if layer.hybrid is None else {k: len(set(v)) for k, v in layer.hybrid["scales"].items()})
           for layer in model.layers]
    assert got == TF_CASES[case]
    assert all(layer.hybrid["asymmetric_inputs"] for layer in model.layers if layer.hybrid)
    load  # LiteRT present (skips, or under CI fails, otherwise)
    for key, x, y in _fixture(case):
        pred = forward(model, x)
        np.testing.assert_allclose(pred, y, atol=1e-5, rtol=0, err_msg=f"TF Lite's stored outputs [{key}]")
        litert = np.concatenate([run(path, row[None]) for row in x])    # static batch 1
        np.testing.assert_allclose(pred, litert, atol=1e-5, rtol=0, err_msg=f"LiteRT [{key}]")
        # the same weights in float arithmetic are far off: what the emulation accounts for
        assert np.abs(forward(dequantized(model), x) - y).max() > 1e-3


def _lstm(rng, F, H, direction, proj=None, states=False):
    dirs = 2 if direction == "bidirectional" else 1
    S = proj or H
    ws = [DirectionWeights(rng.normal(0, 0.4, (4 * H, F)).astype(np.float32),
                           rng.normal(0, 0.4, (4 * H, S)).astype(np.float32),
                           rng.normal(0, 0.3, 4 * H).astype(np.float32), np.zeros(4 * H, np.float32),
                           h0=rng.normal(0, 0.5, S).astype(np.float32) if states else None,
                           c0=rng.normal(0, 0.5, H).astype(np.float32) if states else None,
                           proj=None if proj is None else rng.normal(0, 0.4, (S, H)).astype(np.float32))
          for _ in range(dirs)]
    return Recurrent("lstm", "lstm", H, direction, ws, [SIGMOID, TANH, TANH], has_recurrent_bias=False)


def _rnn(rng, F, H, direction):
    dirs = 2 if direction == "bidirectional" else 1
    ws = [DirectionWeights(rng.normal(0, 0.4, (H, F)).astype(np.float32), rng.normal(0, 0.4, (H, H)).astype(np.float32),
                           rng.normal(0, 0.3, H).astype(np.float32), np.zeros(H, np.float32),
                           h0=rng.normal(0, 0.5, H).astype(np.float32))
          for _ in range(dirs)]
    return Recurrent("rnn", "rnn", H, direction, ws, [TANH], has_recurrent_bias=False)


CASES = {
    "lstm_states_dense": lambda r: [_lstm(r, 6, 9, "forward", states=True)],
    "bilstm": lambda r: [_lstm(r, 6, 7, "bidirectional")],
    "reverse_lstm_projection": lambda r: [_lstm(r, 6, 8, "reverse", proj=5)],
    "birnn_states": lambda r: [_rnn(r, 6, 7, "bidirectional")],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_own_quantized_files_predicted_within_1e5_of_litert(tmp_path, case):
    rng = np.random.default_rng(len(case))
    layers = CASES[case](rng)
    units = layers[-1].units_out
    layers.append(Dense("head", rng.normal(0, 0.4, (units, 3)).astype(np.float32), np.float32([0.1, -0.2, 0.3])))
    model = Model(layers, InputSpec("x", 6)).validate()
    dst = tmp_path / "q.tflite"
    rnnconvert.write(model, dst, quantize="dynamic")
    back = rnnconvert.read(dst)
    assert all(layer.hybrid is not None for layer in back.layers)
    x = rng.normal(0, 1, (3, 11, 6)).astype(np.float32)
    x[2] *= 6                                       # saturating
    x[1, 4] = 0                                     # an all-zero step
    got, litert = forward(back, x), run(dst, x)
    np.testing.assert_allclose(got, litert, atol=1e-5, rtol=0)
    assert np.abs(forward(model, x) - litert).max() > 1e-4     # and int8 weights do change the outputs


def test_quantize_dynamic_report_says_both_numbers(tmp_path):
    src = FIXTURES / "tfkeras2" / "stacked_lstm_dense" / "model.h5"
    xs = np.load(src.parent / "inputs.npz")
    report = rnnconvert.convert(src, tmp_path / "q.tflite", write_options={"quantize": "dynamic"}, atol=0.02,
                                inputs=xs[xs.files[0]])
    vs_float = [c for c in report.checks if c.oracle == "litert(dst)"]
    vs_litert = [c for c in report.checks if c.oracle == "litert(dst) vs reference(dst)"]
    assert vs_float and len(vs_float) == len(vs_litert)
    assert all(c.passed and c.max_abs < 1e-5 for c in vs_litert)
    assert all(c.max_abs > 1e-4 for c in vs_float)           # the quantization error, judged at --atol 0.02
    assert any("run LiteRT's hybrid int8 kernels" in n and "(atol=0.0001 rtol=0.0001)" in n for n in report.notes)


def test_hybrid_source_to_onnx_says_the_arithmetic_changed(runner, tmp_path):
    pytest.importorskip("onnxruntime")
    dst = tmp_path / "q.onnx"
    res = runner.invoke(cli, ["convert", str(TFQ / "model.tflite"), str(dst)])
    assert res.exit_code == 1 and not dst.exists()
    out = res.output + res.stderr
    assert "arithmetic changed: layers tfl.unidirectional_sequence_lstm of the source run LiteRT's hybrid int8 " \
           "kernels (activations quantized on the fly)" in out
    assert "NOT EQUIVALENT: " in res.stderr
    report = tmp_path / "report.json"
    res = runner.invoke(cli, ["convert", str(TFQ / "model.tflite"), str(dst), "--atol", "0.05", "--report", str(report)])
    assert res.exit_code == 0, res.stderr
    import json
    checks = json.loads(report.read_text())["checks"]
    floats = [c for c in checks if c["oracle"] == "onnxruntime(dst) vs reference(float weights)"]
    assert floats and all(c["passed"] and c["max_abs"] < 1e-5 for c in floats)


@pytest.mark.parametrize("case", sorted(TF_CASES))
def test_hybrid_tflite_to_tflite_keeps_the_int8_weights(tmp_path, case):
    dst = tmp_path / "q.tflite"
    report = rnnconvert.convert(TFL / case / "model.tflite", dst)
    assert report.passed
    src, back = rnnconvert.read(TFL / case / "model.tflite"), rnnconvert.read(dst)
    for a, b in zip(src.layers, back.layers):
        assert a.hybrid == b.hybrid
        for key, v in a.arrays().items():
            np.testing.assert_array_equal(b.arrays()[key], v)


def test_hybrid_weights_off_their_grid_are_refused():
    model = rnnconvert.read(TFQ / "model.tflite")
    model.layers[0].weights[0].W[0, 0] *= 1.001
    with pytest.raises(InputError, match=r"layers\[0\] 'tfl.unidirectional_sequence_lstm': hybrid weights "
                                         r"'forward.W' are not int8 values times their scales"):
        model.validate()


def test_litert_runs_hybrid_files_on_a_fresh_interpreter_per_input(tmp_path):
    """LiteRT 2.3, one interpreter resized from batch 3 to batch 2, on a Conv1D + LSTM file with int8 weights:
    the second run was 0.23 off its own first run at that shape (stale row sums of the hybrid CONV_2D);
    rnnconvert's runtime loads the file again for each input."""
    load  # LiteRT present (skips, or under CI fails, otherwise)
    from rnnconvert.formats.tflite.runtime import runner
    model = rnnconvert.read(TFL / "conv_lstm_quantized" / "model.tflite")
    dst = tmp_path / "c.tflite"
    rnnconvert.write(model, dst)
    run_file = runner(dst, rnnconvert.read(dst))
    rng = np.random.default_rng(3)
    for shape in ((3, 7, 24), (2, 120, 24), (2, 300, 24)):
        x = rng.normal(0, 1, shape).astype(np.float32)
        np.testing.assert_allclose(run_file(x), forward(model, x), atol=1e-5, rtol=0, err_msg=str(shape))


def _quantized_file(tmp_path, monkeypatch, weight):
    """An LSTM + Dense file whose int8 weights `weight(e, name, array, original)` writes."""
    from rnnconvert.formats.tflite import quantize
    original = quantize.weight
    monkeypatch.setattr(quantize, "weight", lambda e, name, array, *a, **k: weight(e, name, array, original, *a, **k))
    rng = np.random.default_rng(5)
    model = Model([_lstm(rng, 6, 8, "forward")], InputSpec("x", 6)).validate()
    dst = tmp_path / "q.tflite"
    rnnconvert.write(model, dst, quantize="dynamic")
    return dst


def test_an_op_with_int8_and_float_weights_is_refused(tmp_path, monkeypatch):
    def weight(e, name, array, original, *a, **k):
        return e.const(name, np.asarray(array, np.float32)) if "/R_" in name else original(e, name, array, *a, **k)
    dst = _quantized_file(tmp_path, monkeypatch, weight)
    with pytest.raises(UnsupportedError, match=r"main: output: UNIDIRECTIONAL_SEQUENCE_LSTM: some weights int8 and "
                                               r"others float32; LiteRT's hybrid kernel takes all of them int8"):
        rnnconvert.read(dst)


def test_int8_weights_with_a_zero_point_are_refused(tmp_path, monkeypatch):
    from rnnconvert.formats.tflite.quantize import int8
    def weight(e, name, array, original, *a, **k):
        q, scale = int8(array)
        return e.g.const(name, q, quant={"scale": [scale], "zero_point": [3], "axis": 0})
    dst = _quantized_file(tmp_path, monkeypatch, weight)
    with pytest.raises(UnsupportedError, match=r"main: output: UNIDIRECTIONAL_SEQUENCE_LSTM: int8 weights 'lstm/W_i' "
                                               r"with a non-zero zero point; LiteRT's hybrid kernels multiply the "
                                               r"int8 values as they are, rnnconvert reads zero point 0"):
        rnnconvert.read(dst)
