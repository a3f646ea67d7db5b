"""Fixtures made by Keras, PyTorch and the ONNX exporters -> .tflite, run by LiteRT against the SOURCE
framework's stored predictions (batch 3 and 2, lengths 1, 7 and 60, saturating last rows), with the ops
counted by LiteRT's own schema reader: one sequence op per recurrent layer, no WHILE.  The fast tier takes a
representative subset; `test_every_fixture` (slow) takes them all, refusals named.
"""
from __future__ import annotations

import numpy as np
import pytest

import rnnconvert
from conftest import cases
from litert_helpers import invoke, load, op_counts, run
from rnnconvert.errors import UnsupportedError

SEQUENCE_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
                "BIDIRECTIONAL_SEQUENCE_RNN")
ALL = (cases("tfkeras2", suffixes=(".h5",)) + cases("keras3", suffixes=(".keras",))
       + cases("torch_onnx", "tf2onnx", suffixes=(".onnx",)) + cases("torch", suffixes=(".pt",)))
FAST = ("tfkeras2/lstm_last_softmax", "tfkeras2/bilstm_mul_seq", "tfkeras2/simplernn_relu",
        "tfkeras2/lstm_go_backwards_seq", "tfkeras2/conv1d_causal_dilated_lstm", "keras3/embed_lstm_dense",
        "torch_onnx/lstm_time_major", "torch_onnx/lstm_initial_state_const", "tf2onnx/bilstm_concat_seq",
        "torch/lstm_2layer_bidir_linear", "torch/lstm_proj_linear", "tfkeras2/batchnorm_simplernn")
# What TFLite's sequence ops cannot hold (written as a WHILE loop later, or refused): case -> words of the refusal.
REFUSED = {"embed_mask": "mask_zero", "masking": "layer kind 'masking' has no TFLite form",
           "gru": "TFLite has no GRU op", "hard_sigmoid": "TFLite's LSTM gates are sigmoid",
           "sigmoid_sigmoid": "TFLite's LSTM takes one of tanh, relu, relu6, linear for both",
           "selu": "TFLite's RNN takes tanh, relu, relu6 or linear", "noise_dropout_stack": "TFLite has no GRU op"}


def arch_for(case):
    arch = case.folder / "arch.json"
    return {"arch": str(arch)} if arch.exists() else {}


def refusal(case) -> str | None:
    model = rnnconvert.read(case.path, **arch_for(case))
    named = next((words for key, words in REFUSED.items() if key in case.name), None)
    if named is None and any(layer.cell == "gru" for layer in model.recurrent_layers):
        return REFUSED["gru"]
    return named


def check(case, tmp_path):
    dst = tmp_path / "model.tflite"
    words = refusal(case)
    if words:
        with pytest.raises(UnsupportedError, match=words.replace("(", r"\(").replace(")", r"\)")):
            rnnconvert.convert(case.path, dst, read_options=arch_for(case))
        assert not dst.exists()
        return
    report = rnnconvert.convert(case.path, dst, read_options=arch_for(case))
    assert report.passed
    assert any(c.oracle == "litert(dst)" for c in report.checks)
    model = rnnconvert.read(case.path, **arch_for(case))
    counts = op_counts(dst)
    assert sum(counts[op] for op in SEQUENCE_OPS) == len(model.recurrent_layers), counts
    assert counts["WHILE"] == 0
    time_major = case.meta.get("input_layout") == "time_batch_feature"
    for key, x, y in case.io():
        out = run(dst, x)
        np.testing.assert_allclose(out, y, atol=1e-4, rtol=0, err_msg=f"{case.id} [{key}] shape {x.shape}")
        assert x.shape[1 if time_major else 0] > 1 or key == "t1"


@pytest.mark.parametrize("case", [c for c in ALL if f"{c.origin}/{c.name}" in FAST], ids=lambda c: c.id)
def test_fixture_runs_in_litert(case, tmp_path):
    check(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_every_fixture(case, tmp_path):
    check(case, tmp_path)


def test_fast_subset_is_real():
    assert len([c for c in ALL if f"{c.origin}/{c.name}" in FAST]) == len(FAST)


def test_each_invoke_starts_from_the_initial_state(tmp_path):
    """The sequence ops' states are variables that outlive an invoke: the file rewrites them before every
    run, so a second sequence on the same interpreter gives what it gives on a fresh one."""
    case = next(c for c in ALL if c.name == "stacked_lstm_dense" and c.origin == "tfkeras2")
    dst = tmp_path / "m.tflite"
    rnnconvert.convert(case.path, dst)
    (_, x1, _), (_, x2, y2) = case.io()[1], case.io()[2]
    it = load(dst)
    invoke(it, x2)
    invoke(it, x1)                         # a different batch and length in between
    again = invoke(it, x2)
    np.testing.assert_allclose(again, y2, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(again, run(dst, x2))


def test_batch_and_time_are_dynamic(tmp_path):
    case = next(c for c in ALL if c.name == "bilstm_concat_last" and c.origin == "tfkeras2")
    dst = tmp_path / "m.tflite"
    rnnconvert.convert(case.path, dst)
    inp = load(dst).get_input_details()[0]
    assert list(inp["shape_signature"]) == [-1, -1, int(inp["shape"][2])]
    model = rnnconvert.read(case.path)
    from rnnconvert.reference.network import forward
    x = np.random.default_rng(5).normal(size=(5, 23, model.input.features)).astype(np.float32) * 3
    np.testing.assert_allclose(run(dst, x), forward(model, x), atol=1e-5, rtol=0)
