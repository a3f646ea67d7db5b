"""Fixtures made by Keras, PyTorch and the ONNX exporters -> .tflite, run by LiteRT against the SOURCE
framework's stored predictions (batch 3 and 2, lengths 1, 7 and 60, saturating last rows), with the ops
counted by LiteRT's own schema reader: one sequence op per recurrent layer TFLite's ops can hold, a WHILE per
direction of the others (GRU, LSTM gates other than sigmoid, activations the ops lack: `while_needed`).  The
fast tier takes a representative subset; `test_every_fixture` (slow) takes them all, refusals named.
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
FAST = ("tfkeras2/lstm_last_softmax", "tfkeras2/bilstm_mul_seq", "torch_onnx/lstm_time_major",
        "torch/lstm_2layer_bidir_linear", "tfkeras2/lstm_sigmoid_sigmoid", "tfkeras2/gru_reset_before_last",
        "keras3/embed_mask_bilstm_seq", "tfkeras2/conv1d_causal_dilated_lstm")
# What no TFLite op rnnconvert writes can hold: case -> words of the refusal (none left among the fixtures).
REFUSED: dict[str, str] = {}
FUSED_ACTIVATIONS = ("tanh", "relu", "relu6", "linear")     # TFLite's ActivationFunctionType, bar SIGN_BIT


def masked_layers(model) -> set:
    """Recurrent layers a Keras mask reaches (Embedding mask_zero, Masking; it passes Dropout, Dense,
    Activation, BatchNorm and recurrent layers returning sequences): TFLite's sequence ops take no mask."""
    live, out = False, set()
    for layer in model.layers:
        if layer.kind in ("lstm", "gru", "rnn"):
            if live:
                out.add(layer.name)
            live = live and layer.output == "sequence"
        else:
            live = (layer.kind == "masking" or (layer.kind == "embedding" and layer.mask_zero)
                    or (live and layer.kind in ("dropout", "dense", "activation", "batch_norm")))
    return out


def while_needed(layer, masked=()) -> bool:
    """TFLite has no GRU op; its LSTM gates are sigmoid, with one fused activation for cell and output, and
    it clips the cell, not the pre-activations; its RNN takes one fused activation; its ops take no mask."""
    if layer.name in masked:
        return True
    acts = [a.name for a in layer.activations]
    if layer.cell == "gru" or layer.clip is not None:
        return True
    if layer.cell == "lstm":
        return acts[0] != "sigmoid" or acts[1] != acts[2] or acts[1] not in FUSED_ACTIVATIONS
    return acts[0] not in FUSED_ACTIVATIONS


def arch_for(case):
    arch = case.folder / "arch.json"
    return {"arch": str(arch)} if arch.exists() else {}


def refusal(case) -> str | None:
    return next((words for key, words in REFUSED.items() if key in case.name), None)


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
    looped, after = [], False        # after a WHILE loop every recurrent layer is one (see test_fused_after_loop)
    for layer in model.recurrent_layers:
        if after or while_needed(layer, masked_layers(model)):
            looped.append(layer)
            after = True
    assert sum(counts[op] for op in SEQUENCE_OPS) == len(model.recurrent_layers) - len(looped), counts
    assert op_counts(dst, main_only=True)["WHILE"] == sum(len(layer.weights) for layer in looped), counts
    said = " ".join(report.conversion["changed_in_form"])
    for layer in looped:                    # the note says which form each layer took, and why
        assert f"layer '{layer.name}': written as a WHILE loop over the cell" in said
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


@pytest.mark.slow
def test_fused_op_after_a_loop_does_not_corrupt_litert(tmp_path):
    """LiteRT 2.3 aborted ('munmap_chunk(): invalid pointer') freeing an interpreter that had run a fused LSTM(64)
    on a GRU loop's output: the writer makes every recurrent layer after a loop a loop too.  In a subprocess,
    since the failure is a native abort."""
    import subprocess
    import sys
    code = f"""
import numpy as np, keras, rnnconvert
from rnnconvert.formats.tflite.runtime import interpreter, invoke
L = keras.layers
m = keras.Sequential([keras.Input((None, 3)), L.GRU(8, return_sequences=True), L.LSTM(64)])
m.save({str(tmp_path / "m.keras")!r})
model = rnnconvert.read({str(tmp_path / "m.keras")!r})
rnnconvert.write(model, {str(tmp_path / "m.tflite")!r})
x = np.random.default_rng(0).normal(size=(3, 17, 3)).astype(np.float32)
for shape in [(3, 17, 3), (3, 1, 3)]:
    it = interpreter({str(tmp_path / "m.tflite")!r})
    np.testing.assert_allclose(invoke(it, x[:, :shape[1]], model), m.predict(x[:, :shape[1]], verbose=0), atol=1e-4)
    del it
print("done")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "done" in res.stdout, res.stderr[-2000:]
    assert op_counts(tmp_path / "m.tflite", main_only=True)["WHILE"] == 2
