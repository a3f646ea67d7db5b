"""Recurrent state ports in TF.js layers models: the Keras functional form (an input per state row,
`initial_state`, `return_state` outputs through linear Activation layers) written, run by @tensorflow/tfjs
under Node with the states fed, and read back.  Oracles: PyTorch's and Keras 3's stored predictions."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import FIXTURES
from tfjs_oracle import require_tfjs

import rnnconvert
from rnnconvert.formats.tfjs.runtime import states_runner

TOL = 1e-4


@pytest.mark.parametrize("case", ["gru_bidir", "lstm_2layer", "gru_time_major"])
def test_written_tfjs_runs_with_states_fed(case, tmp_path):
    """PyTorch's streaming ONNX graphs written as TF.js: TF.js, fed the stored states row by row, returns
    PyTorch's output and states (batch 2-3, 1 to 40 steps; bidirectional, two layers, time-major)."""
    require_tfjs()
    d = FIXTURES / "torch_onnx" / "states" / case
    ins, outs = np.load(d / "inputs.npz"), np.load(d / "outputs.npz")
    src = rnnconvert.read(d / "model.onnx")
    notes = rnnconvert.write(src, tmp_path / "m.json")
    assert any("kept as TF.js inputs and outputs [batch, size]" in n for n in notes)
    run = states_runner(tmp_path / "m.json", src)
    for label in ("t1", "t7", "t40", "t7_zero"):
        y, got = run(ins[f"{label}.input"], {p.name: ins[f"{label}.{p.name}"] for p in src.state_inputs})
        np.testing.assert_allclose(y, outs[f"{label}.output"], atol=TOL, rtol=TOL)
        for p in src.state_outputs:
            np.testing.assert_allclose(got[p.name], outs[f"{label}.{p.name}"], atol=TOL, rtol=TOL)
    back = rnnconvert.read(tmp_path / "m.json")
    rows = sum(len(w.weights) for w in back.recurrent_layers)
    assert len(back.state_inputs) == len(back.state_outputs) == rows * (2 if case.startswith("lstm") else 1)


def test_keras_streaming_model_to_tfjs(tmp_path):
    """A Keras 3 Bidirectional LSTM with its four states as inputs and outputs, to TF.js: Keras's own
    predictions, ports kept by name and direction."""
    require_tfjs()
    d = FIXTURES / "keras3" / "states" / "bilstm_seq"
    ins, outs = np.load(d / "inputs.npz"), np.load(d / "outputs.npz")
    rnnconvert.convert(str(d / "model.keras"), str(tmp_path / "m.json"))
    back = rnnconvert.read(tmp_path / "m.json")
    assert [(p.name, p.direction) for p in back.state_inputs] == [("h_fw", 0), ("c_fw", 0), ("h_bw", 1), ("c_bw", 1)]
    assert [p.name for p in back.state_outputs] == ["bi_forward_h", "bi_forward_c", "bi_backward_h", "bi_backward_c"]
    y, got = states_runner(tmp_path / "m.json", back)(ins["t40.input"],
                                                      {p.name: ins[f"t40.{p.name}"] for p in back.state_inputs})
    np.testing.assert_allclose(y, outs["t40.output"], atol=TOL, rtol=TOL)
    for k, p in enumerate(back.state_outputs):
        np.testing.assert_allclose(got[p.name], outs[f"t40.state{k + 1}"], atol=TOL, rtol=TOL)
