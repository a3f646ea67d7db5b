"""A time window (model.TimeWindow) in generated code: the torch.onnx and tf2onnx window fixtures written as C
(gcc), an ES module (node) and a NumPy script (python), each run on the fixture's inputs against the framework's
own outputs (torch, TF-Keras), 1e-4; a window is never streamed, and a sequence it keeps no step of is refused by
the generated code."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from rnnconvert.formats.codegen import c as cgen
from rnnconvert.formats.codegen import js as jsgen
from rnnconvert.formats.codegen import numpy_script
from rnnconvert.formats.codegen._plan import plan

GCC, NODE = shutil.which("gcc"), shutil.which("node")
TOL = 1e-4
SLOW = pytest.mark.slow      # gcc per case: three cases (slice from the end, one step, time-major) in the README tier
CASES = ["torch_window/lstm_last5_dense", "torch_window/gru_bi_step3_dense", "torch_window/lstm_time_major_last5",
         pytest.param("torch_window/lstm_step_minus2", marks=SLOW), pytest.param("torch_window/rnn_steps_2_6", marks=SLOW),
         pytest.param("tf2onnx_window/lstm_crop_2_1_gru_dense", marks=SLOW),
         pytest.param("tf2onnx_window/bigru_crop_3_0_seq", marks=SLOW)]
LANGUAGES = [pytest.param(cgen, "net.c", marks=pytest.mark.skipif(GCC is None, reason="gcc not installed")),
             pytest.param(jsgen, "net.mjs", marks=pytest.mark.skipif(NODE is None, reason="node not installed")),
             pytest.param(numpy_script, "net.py")]


@pytest.mark.parametrize("gen,name", LANGUAGES)
@pytest.mark.parametrize("case", CASES)
def test_generated_code_cuts_the_window_as_the_framework(case, gen, name, tmp_path):
    d = FIXTURES / case
    model = rnnconvert.read(str(d / "model.onnx"))
    assert any(layer.kind == "time_window" for layer in model.layers)
    p = plan(model)
    assert not p.streamable and ("picks steps of the whole sequence" in p.stream_blocker
                                 or model.layers[0].direction != "forward")
    gen.write(model, tmp_path / name)
    xs, ys = np.load(d / "inputs.npz"), np.load(d / "outputs.npz")
    for k in xs.files:
        np.testing.assert_allclose(gen.run(tmp_path / name, xs[k], model), ys[k], atol=TOL, rtol=TOL, err_msg=k)


@pytest.mark.parametrize("gen,name", LANGUAGES)
def test_generated_code_refuses_a_sequence_the_window_keeps_nothing_of(gen, name, tmp_path):
    model = rnnconvert.read(str(FIXTURES / "torch_window" / "gru_bi_step3_dense" / "model.onnx"))   # x[:, 3]
    gen.write(model, tmp_path / name)
    with pytest.raises(Exception) as exc:
        gen.run(tmp_path / name, np.ones((2, 3, 3), np.float32), model)
    assert type(exc.value).__name__ in ("InputError", "RuntimeError", "ValueError"), exc.value
