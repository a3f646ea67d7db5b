"""Per-direction state ports of a bidirectional layer in ONNX (`formats/onnx/state_dirs.py`): Keras's
Bidirectional states, one [batch, size] tensor per direction, joined into initial_h/initial_c and taken
from Y_h/Y_c.  Oracles: Keras 3's stored predictions (fixtures/keras3/states) run in onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import FIXTURES

import rnnconvert
from rnnconvert.errors import UnsupportedError

pytest.importorskip("onnxruntime")


def _keras_case(origin, case):
    d = FIXTURES / origin / "states" / case
    return d, np.load(d / "inputs.npz"), np.load(d / "outputs.npz")


def _feeds(model, ins, label):
    return {p.name: ins[f"{label}.{p.name}"] for p in model.state_inputs}


def test_bidirectional_keras_states_to_onnx_and_back(tmp_path):
    """Keras's per-direction states of a Bidirectional LSTM, to ONNX (Unsqueeze + Concat into initial_h/c, Slice +
    Squeeze out of Y_h/Y_c): onnxruntime fed the stored states returns Keras's own predictions, the ONNX file
    reads back with the same ports, and Keras again keeps them."""
    from rnnconvert.formats.onnx.runtime import run_states as ort_states
    d, ins, outs = _keras_case("keras3", "bilstm_seq")
    rnnconvert.convert(str(d / "model.keras"), str(tmp_path / "m.onnx"))
    back = rnnconvert.read(tmp_path / "m.onnx")
    src = rnnconvert.read(d / "model.keras")
    assert back.state_inputs == src.state_inputs and back.state_outputs == src.state_outputs
    y, got = ort_states(tmp_path / "m.onnx", ins["t40.input"], back, _feeds(back, ins, "t40"))
    np.testing.assert_allclose(y, outs["t40.output"], atol=1e-4, rtol=1e-4)
    for k, p in enumerate(back.state_outputs):
        np.testing.assert_allclose(got[p.name], outs[f"t40.state{k + 1}"], atol=1e-4, rtol=1e-4)
    rnnconvert.write(back, tmp_path / "again.rnnc")
    assert rnnconvert.read(tmp_path / "again.rnnc").state_outputs == src.state_outputs


def test_onnx_refuses_one_direction_fed(tmp_path):
    model = rnnconvert.read(FIXTURES / "keras3" / "states" / "bilstm_seq" / "model.keras")
    model.state_inputs = [p for p in model.state_inputs if p.direction == 0]
    with pytest.raises(UnsupportedError) as info:
        rnnconvert.write(model, tmp_path / "m.onnx")
    assert str(info.value) == (f"{tmp_path / 'm.onnx'}: state input 'h_fw' gives the h state of one direction of the "
                               "bidirectional layer 'bi' and no state input gives the other's; ONNX's initial_h "
                               "takes both directions in one tensor")
