"""ONNX recurrent nodes with what only ONNX has, written as TF.js with rnnconvert's classes and run by
@tensorflow/tfjs: LSTM peepholes (P), the cell clip on LSTM, GRU (both linear_before_reset modes) and RNN,
forward, reverse and bidirectional, batch 3 over 9 steps with a saturating row, against onnxruntime
within 1e-4; and activations TF.js has no name for (HardSigmoid with another slope beside a clip and
peepholes, an LSTM output activation other than its candidate's, LeakyRelu, Elu, ScaledTanh,
ThresholdedRelu, Affine), computed exactly by the classes.  Read back with the same P, clip and
activations.  Softmax inside a cell is refused naming the layer."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnconvert
from rnnconvert.errors import UnsupportedError
from rnnconvert.model import Activation
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


def acts(names, alpha=(), beta=()):
    return {"activations": list(names), **({"activation_alpha": list(alpha)} if alpha else {}),
            **({"activation_beta": list(beta)} if beta else {})}


# name: (op, direction, clip, peepholes, linear_before_reset, ONNX activations or None)
CASES = {"lstm_peepholes_clip_bidirectional": ("LSTM", "bidirectional", 1.5, True, 0, None),
         "lstm_peepholes_forward": ("LSTM", "forward", None, True, 0, None),
         "lstm_clip_reverse": ("LSTM", "reverse", 0.7, False, 0, None),
         "gru_clip_reset_before_reverse": ("GRU", "reverse", 0.8, False, 0, None),
         "gru_clip_reset_after_bidirectional": ("GRU", "bidirectional", 0.8, False, 1, None),
         "rnn_clip_forward": ("RNN", "forward", 0.5, False, 0, None),
         # activations TF.js has no name for, or that Keras's LSTM cannot pair, computed exactly by the class
         "lstm_peepholes_clip_hard_sigmoid": ("LSTM", "forward", 1.0, True, 0,
                                              acts(["HardSigmoid", "Tanh", "Tanh"], [0.3], [0.4])),
         "lstm_output_softsign": ("LSTM", "reverse", None, False, 0, acts(["Sigmoid", "Tanh", "Softsign"])),
         "gru_leaky_relu_bidirectional": ("GRU", "bidirectional", None, False, 1,
                                          acts(["Sigmoid", "LeakyRelu", "Sigmoid", "LeakyRelu"], [0.1, 0.1])),
         "gru_elu_clip": ("GRU", "forward", 1.2, False, 0, acts(["HardSigmoid", "Elu"], [0.25, 0.5], [0.45])),
         "rnn_scaled_tanh": ("RNN", "forward", None, False, 0, acts(["ScaledTanh"], [1.5], [0.7])),
         "rnn_thresholded_relu_clip": ("RNN", "reverse", 2.0, False, 0, acts(["ThresholdedRelu"], [0.2])),
         "rnn_affine": ("RNN", "forward", None, False, 0, acts(["Affine"], [0.5], [0.1]))}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """{case: (onnxruntime's Y as [T, B, D*H], TF.js's output, the model read back)}, one Node process."""
    root = tmp_path_factory.mktemp("cells")
    x = np.random.default_rng(1).standard_normal((T, B, F)).astype(np.float32)
    x[:, 2] *= 4                                                 # a saturating row
    out, jobs = {}, []
    for name, args in CASES.items():
        src, dst = root / f"{name}.onnx", root / f"{name}.json"
        op, direction, clip, peepholes, lbr, activations = args
        src.write_bytes(onnx_cell(op, direction, clip, peepholes, lbr, activations).SerializeToString())
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
    op, _, clip, peepholes, lbr, activations = CASES[name]
    layer = back.layers[0]
    assert layer.clip == (None if clip is None else pytest.approx(clip))
    assert all((w.P is not None) == peepholes for w in layer.weights)
    if op == "GRU":
        assert layer.reset_after == bool(lbr)
    if activations:
        names = [a.lower() for a in activations["activations"][:{"LSTM": 3, "GRU": 2, "RNN": 1}[op]]]
        assert [a.name.replace("_", "") for a in layer.activations] == names


def test_softmax_inside_a_cell_is_refused(tmp_path):
    model = rnnconvert.read(_onnx(tmp_path, "LSTM"))
    model.layers[0].activations[2] = Activation("softmax")      # the output's, not the candidate's: exact
    with pytest.raises(UnsupportedError) as exc:
        rnnconvert.write(model, tmp_path / "sm.json")
    assert exc.value.message == (
        "cannot write this model as TF.js (whose layers are tf.keras 2's): layer 'lstm': softmax inside the cell: "
        "rnnconvert's TF.js classes apply activations elementwise")


def _onnx(tmp_path, op):
    src = tmp_path / f"{op}.onnx"
    src.write_bytes(onnx_cell(op).SerializeToString())
    return src
