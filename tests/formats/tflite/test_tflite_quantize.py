"""--quantize dynamic: int8 weights and float activations.  Its error against the float model is measured
and reported; past the tolerance the conversion is NOT EQUIVALENT (exit 1, nothing written), and a looser
--atol the user chooses lets it through.  The reader dequantizes the int8 weights exactly as LiteRT states
them (its tensor details' scale and zero point)."""
from __future__ import annotations

import numpy as np

import rnnconvert
from conftest import FIXTURES
from litert_helpers import load, op_counts, run
from rnnconvert.cli import cli

SRC = FIXTURES / "tfkeras2" / "stacked_lstm_dense" / "model.h5"


def test_quantized_file_is_not_called_equivalent(runner, tmp_path):
    dst = tmp_path / "q.tflite"
    res = runner.invoke(cli, ["convert", str(SRC), str(dst), "--quantize", "dynamic"])
    assert res.exit_code == 1
    assert "NOT EQUIVALENT: litert(dst)" in res.stderr and "exceeds atol=0.0001" in res.stderr
    assert not dst.exists()


def test_quantized_file_within_a_chosen_tolerance(runner, tmp_path):
    load  # LiteRT present (skips or, under CI, fails otherwise)
    dst = tmp_path / "q.tflite"
    res = runner.invoke(cli, ["convert", str(SRC), str(dst), "--quantize", "dynamic", "--atol", "0.02"])
    assert res.exit_code == 0, res.stderr
    assert "stored as int8" in res.output + res.stderr
    it = load(dst)
    it.allocate_tensors()
    weights = [d for d in it.get_tensor_details() if d["name"].split("/")[-1][:2] in ("W_", "R_", "ke")]
    assert len(weights) == 2 * 4 * 2 + 1       # two LSTMs: W and R per gate; the Dense kernel
    assert all(d["dtype"] == np.int8 for d in weights)
    assert op_counts(dst)["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2
    xs, ys = np.load(SRC.parent / "inputs.npz"), np.load(SRC.parent / "outputs.npz")
    err = max(float(np.abs(run(dst, xs[k]) - ys[k]).max()) for k in xs.files)
    assert 1e-5 < err < 0.02                   # int8 weights cost something, and not much


def test_reader_dequantizes_as_litert_states(tmp_path):
    dst = tmp_path / "q.tflite"
    rnnconvert.convert(SRC, dst, write_options={"quantize": "dynamic"}, atol=0.02)
    it = load(dst)
    it.allocate_tensors()
    details = {d["name"]: d for d in it.get_tensor_details()}
    model = rnnconvert.read(dst)
    lstm = model.layers[0]
    d = details["lstm/W_f"]
    q = it.get_tensor(d["index"]).astype(np.float32)
    scale, zero = d["quantization_parameters"]["scales"], d["quantization_parameters"]["zero_points"]
    expected = (q - np.float32(zero[0])) * np.float32(scale[0])
    H = lstm.hidden
    np.testing.assert_array_equal(lstm.weights[0].W[H:2 * H], expected)


def test_quantize_is_for_tflite_destinations(runner, tmp_path):
    dst = tmp_path / "q.onnx"
    res = runner.invoke(cli, ["convert", str(SRC), str(dst), "--quantize", "dynamic"])
    assert res.exit_code == 2
    assert res.stderr.strip().endswith(f"{dst}: --quantize is for tflite destinations, not onnx")
