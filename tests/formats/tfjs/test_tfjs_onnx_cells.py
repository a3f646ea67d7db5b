"""ONNX recurrent nodes with what only ONNX has, written as TF.js with rnnconvert's classes and run by
@tensorflow/tfjs: LSTM peepholes (P), the cell clip on LSTM, GRU (both linear_before_reset modes) and RNN,
forward, reverse and bidirectional, batch 3 over 9 steps with a saturating row, against onnxruntime
within 1e-4; read back with the same P and clip.  A clip or peepholes meeting a hard_sigmoid whose slope
would be folded into the weights is refused naming the layer."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnconvert
from rnnconvert.errors import UnsupportedError
from tfjs_oracle import run_all

ort = pytest.importorskip("onnxruntime")
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
H, F, T, B = 4, 3, 9, 3


def onnx_cell(op, direction="forward", clip=None, peepholes=False, lbr=0, acts=None, seed=0):
    rng = np.random.default_rng(seed)
    D = 2 if direction == "bidirectional" else 1

    def arr(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.6).astype(np.float32), name)
    inits = [arr("W", D, GATES[op] * H, F), arr("R", D, GATES[op] * H, H), arr("B", D, 2 * GATES[op] * H)]
    ins = ["X", "W", "R", "B"]
    if peepholes:
        inits.append(arr("P", D, 3 * H))
        ins += ["", "", "", "P"]
    attrs = {"hidden_size": H, "direction": direction, **(acts or {})}
    if clip is not None:
        attrs["clip"] = clip
    if op == "GRU":
        attrs["linear_before_reset"] = lbr
    node = helper.make_node(op, ins, ["Y"], name=op.lower(), **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", F])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


CASES = {"lstm_peepholes_clip_bidirectional": ("LSTM", "bidirectional", 1.5, True),
         "lstm_peepholes_forward": ("LSTM", "forward", None, True),
         "lstm_clip_reverse": ("LSTM", "reverse", 0.7, False),
         "gru_clip_reset_before_reverse": ("GRU", "reverse", 0.8, False, 0),
         "gru_clip_reset_after_bidirectional": ("GRU", "bidirectional", 0.8, False, 1),
         "rnn_clip_forward": ("RNN", "forward", 0.5, False)}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """{case: (onnxruntime's Y as [T, B, D*H], TF.js's output, the model read back)}, one Node process."""
    root = tmp_path_factory.mktemp("cells")
    x = np.random.default_rng(1).standard_normal((T, B, F)).astype(np.float32)
    x[:, 2] *= 4                                                 # a saturating row
    out, jobs = {}, []
    for name, args in CASES.items():
        src, dst = root / f"{name}.onnx", root / f"{name}.json"
        src.write_bytes(onnx_cell(*args).SerializeToString())
        y = ort.InferenceSession(str(src)).run(None, {"X": x})[0]
        rnnconvert.write(rnnconvert.read(src), dst)
        out[name] = [y.transpose(0, 2, 1, 3).reshape(T, B, -1), None, rnnconvert.read(dst)]
        jobs.append((dst, np.swapaxes(x, 0, 1)))                # TF.js takes [batch, time, features]
    for name, y in zip(CASES, run_all(jobs)):
        out[name][1] = np.swapaxes(y, 0, 1)
    return out


@pytest.mark.parametrize("name", CASES)
def test_onnx_cell_runs_in_tfjs_as_in_onnxruntime(name, ran):
    expected, got, back = ran[name]
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    op, _, clip, peepholes = CASES[name][:4]
    layer = back.layers[0]
    assert layer.clip == (None if clip is None else pytest.approx(clip))
    assert all((w.P is not None) == peepholes for w in layer.weights)
    if op == "GRU":
        assert layer.reset_after == bool(CASES[name][4])


def test_peepholes_with_a_folded_hard_sigmoid_are_refused(tmp_path):
    src = tmp_path / "hs.onnx"
    acts = {"activations": ["HardSigmoid", "Tanh", "Tanh"], "activation_alpha": [0.3], "activation_beta": [0.4]}
    src.write_bytes(onnx_cell("LSTM", peepholes=True, acts=acts).SerializeToString())
    with pytest.raises(UnsupportedError) as exc:
        rnnconvert.write(rnnconvert.read(src), tmp_path / "hs.json")
    assert exc.value.message == (
        "cannot write this model as TF.js (whose layers are tf.keras 2's): layer 'lstm': peepholes with "
        "hard_sigmoid(alpha=0.3, beta=0.4): TF.js's hard_sigmoid is clip(0.2x+0.5), and this slope can be folded "
        "into the kernels and biases only, not into the peepholes")
