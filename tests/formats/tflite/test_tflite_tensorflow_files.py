""".tflite files written by TensorFlow's own TFLiteConverter (fixtures/tflite, fixtures/make_tflite.py, static
batch 1), read by rnnconvert and predicted against TensorFlow Lite's stored outputs; converted on to ONNX and
run by onnxruntime.  TensorFlow's fused LSTM carries cell_clip 10 (Keras never clips): read without it, an
assumption the report lists.  Its dynamic-range file: the int8 weights dequantized exactly as LiteRT states
them (its predictions, LiteRT's hybrid arithmetic: test_tflite_hybrid.py).
Its SimpleRNN became a WHILE loop, read by test_tflite_tf_while.py."""
from __future__ import annotations

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from litert_helpers import load
from rnnconvert.reference.network import forward

TFL = FIXTURES / "tflite"


def io(case):
    xs, ys = np.load(TFL / case / "inputs.npz"), np.load(TFL / case / "outputs.npz")
    return [(k, xs[k], ys[k]) for k in xs.files]


@pytest.mark.parametrize("case,layers", [("lstm_dense", ["lstm", "dense"]), ("bilstm_seq", ["lstm"])])
def test_read_and_predicted_within_1e5_of_litert(case, layers):
    model = rnnconvert.read(TFL / case / "model.tflite")
    assert [layer.kind for layer in model.layers] == layers
    assert any("cell_clip" in a for a in model.source["assumptions"])
    for key, x, y in io(case):
        np.testing.assert_allclose(forward(model, x), y, atol=1e-5, rtol=0, err_msg=f"{case} [{key}]")


def test_bidirectional_written_as_two_ops_reads_as_one_layer():
    layer = rnnconvert.read(TFL / "bilstm_seq" / "model.tflite").layers[0]
    assert (layer.direction, layer.merge, layer.output) == ("bidirectional", "concat", "sequence")


def test_tensorflow_lstm_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    dst = tmp_path / "m.onnx"
    rnnconvert.convert(TFL / "lstm_dense" / "model.tflite", dst)
    report = rnnconvert.verify(TFL / "lstm_dense" / "model.tflite", dst)      # LiteRT on the source file too
    assert report.passed and any(c.oracle == "litert(src)" for c in report.checks)
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    for key, x, y in io("lstm_dense"):
        out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(out, y, atol=1e-5, rtol=0, err_msg=key)


def test_dynamic_range_weights_dequantized_exactly():
    path = TFL / "lstm_seq_quantized" / "model.tflite"
    it = load(path)
    it.allocate_tensors()
    model = rnnconvert.read(path)
    lstm = model.layers[0]
    H = lstm.hidden
    int8 = [d for d in it.get_tensor_details() if d["dtype"] == np.int8 and d["name"].startswith("tfl.pseudo_qconst")]
    by_shape = {}
    for d in sorted(int8, key=lambda d: d["index"]):
        p = d["quantization_parameters"]
        q = it.get_tensor(d["index"]).astype(np.float32)
        axis = p["quantized_dimension"]
        shape = [1] * q.ndim
        shape[axis] = -1 if len(p["scales"]) > 1 else 1
        deq = (q - p["zero_points"].astype(np.float32).reshape(shape)) * p["scales"].astype(np.float32).reshape(shape)
        by_shape.setdefault(q.shape[1], []).append(deq)
    # LiteRT's operand order: input weights of gates i, f, c, o, then the recurrent ones.
    np.testing.assert_array_equal(lstm.weights[0].W, np.concatenate(by_shape[model.input.features]))
    np.testing.assert_array_equal(lstm.weights[0].R, np.concatenate(by_shape[H]))


def test_tensorflow_file_keeps_its_state_across_invoke():
    """The quirk the writer avoids: TensorFlow's fused LSTM starts the second sequence from the first one's
    final state unless the interpreter is reset (rnnconvert's runtime resets; its own files need no reset)."""
    from litert_helpers import invoke
    (_, x, y), = [c for c in io("lstm_dense") if c[0] == "t7"]
    it = load(TFL / "lstm_dense" / "model.tflite")
    first = invoke(it, x[:1])
    second = invoke(it, x[:1])
    np.testing.assert_allclose(first, y[:1], atol=1e-6)
    assert np.abs(second - y[:1]).max() > 1e-4         # past the tolerance (6.8e-4 here)


@pytest.mark.slow
@pytest.mark.parametrize("target,oracle", [("m.pt", "torch(dst)"), ("m.c", "gcc(dst)")])
def test_tensorflow_lstm_to_other_formats(tmp_path, target, oracle):
    """model.tflite -> .pt / .c, each checked by its own runtime in the conversion's verification."""
    import shutil
    if target.endswith(".c") and not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    pytest.importorskip("torch")
    report = rnnconvert.convert(TFL / "lstm_dense" / "model.tflite", tmp_path / target)
    assert report.passed and any(c.oracle == oracle for c in report.checks)
