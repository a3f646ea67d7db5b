"""Code generation (C99, ES module, NumPy script), each run by its own toolchain on every fixture.

The oracle is the source framework's stored predictions (1e-5): the C file compiled with
gcc -std=c99 -Wall -Wextra -Werror -pedantic, the module under node, the script under python.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES, Case, cases
from rnnconvert.cli.commands import cli
from rnnconvert.formats.codegen import c as cgen
from rnnconvert.formats.codegen import js as jsgen
from rnnconvert.formats.codegen import numpy_script
from rnnconvert.model import (ACTIVATIONS, SELU, Activation, ActivationLayer, Dense, DirectionWeights, Dropout,
    InputSpec, Model, Recurrent)

ALL = (cases("tfkeras2", suffixes=(".h5",)) + cases("keras3", suffixes=(".keras",))
       + cases("torch_onnx", "tf2onnx", suffixes=(".onnx",)) + cases("torch", suffixes=(".pt",)))
GCC = shutil.which("gcc")
NODE = shutil.which("node")
TOL = 1e-5


def read(case: Case):
    arch = case.folder / "arch.json"
    return rnnconvert.read(case.path, **({"arch": str(arch)} if arch.exists() else {}))


def check_against_framework(case, run, path, model):
    for key, x, y in case.io():
        np.testing.assert_allclose(run(path, x, model), y, atol=TOL, rtol=0, err_msg=f"{case.id} [{key}]")


@pytest.mark.skipif(GCC is None, reason="gcc not installed")
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_c_matches_framework_and_its_golden_test_passes(case, tmp_path):
    model = read(case)
    path = tmp_path / "net.c"
    cgen.write(model, path, emit_test=True)
    assert sorted(os.listdir(tmp_path)) == ["net.c", "net.h", "net_test.c"]
    exe = tmp_path / "golden"
    subprocess.run([GCC, *cgen.CFLAGS, str(path), str(tmp_path / "net_test.c"), "-o", str(exe), "-lm"], check=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stdout
    header = (tmp_path / "net.h").read_text()
    streamable = all(layer.direction == "forward" for layer in model.recurrent_layers) and \
        not any(layer.kind in ("conv1d", "pooling1d", "flatten") for layer in model.layers)
    assert (" net_step(net_state *s, const " in header) == streamable
    assert f"#define NET_CAN_STREAM {int(streamable)}" in header
    check_against_framework(case, cgen.run, path, model)


@pytest.mark.skipif(GCC is None, reason="gcc not installed")
def test_golden_test_fails_when_the_weights_drift(tmp_path):
    model = read(next(c for c in ALL if c.name == "gru_reset_after_seq"))
    cgen.write(model, tmp_path / "m.c", emit_test=True)
    src = (tmp_path / "m.c").read_text()
    (tmp_path / "m.c").write_text(src.replace("= {\n    ", "= {\n    0.05f + ", 1))   # W[0][0] += 0.05
    exe = tmp_path / "t"
    subprocess.run([GCC, *cgen.CFLAGS, str(tmp_path / "m.c"), str(tmp_path / "m_test.c"), "-o", str(exe), "-lm"],
                   check=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True)
    assert res.returncode == 1 and "FAILED" in res.stdout


@pytest.mark.skipif(GCC is None, reason="gcc not installed")
def test_two_models_link_into_one_program(tmp_path):
    a = read(next(c for c in ALL if c.name == "stacked_lstm_dense"))
    b = read(next(c for c in ALL if c.name == "bigru_sum_seq"))
    cgen.write(a, tmp_path / "speech.c")
    cgen.write(b, tmp_path / "tagger.c")
    (tmp_path / "main.c").write_text("""#include "speech.h"
#include "tagger.h"
#include <stdio.h>
static float work_a[SPEECH_WORK_FLOATS(4)], work_b[TAGGER_WORK_FLOATS(4)];
int main(void)
{
    float x[4 * SPEECH_INPUT_SIZE] = {0}, xb[4 * TAGGER_INPUT_SIZE] = {0};
    float ya[SPEECH_OUTPUT_SIZE], yb[4 * TAGGER_OUTPUT_SIZE];
    speech_state s;
    speech_init(&s, 0);
    speech_step(&s, x, ya);
    if (speech_predict(x, 4, ya, work_a) != 0 || tagger_predict(xb, 4, yb, work_b) != 0) return 1;
    printf("%d\\n", SPEECH_OUTPUT_SIZE + TAGGER_OUTPUT_SIZE);
    return 0;
}
""")
    exe = tmp_path / "both"
    subprocess.run([GCC, *cgen.CFLAGS, *(str(tmp_path / f) for f in ("speech.c", "tagger.c", "main.c")),
                    "-o", str(exe), "-lm"], check=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == str(a.layers[-1].units_out + b.layers[0].units_out)


@pytest.mark.skipif(NODE is None, reason="node not installed")
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_js_module_matches_framework_under_node(case, tmp_path):
    model = read(case)
    path = tmp_path / "model.mjs"
    jsgen.write(model, path)
    check_against_framework(case, jsgen.run, path, model)


@pytest.mark.skipif(NODE is None, reason="node not installed")
def test_js_streaming_and_refusal(tmp_path):
    uni = read(next(c for c in ALL if c.name == "gru_reset_after_seq"))
    bi = read(next(c for c in ALL if c.name == "bilstm_concat_last"))
    jsgen.write(uni, tmp_path / "uni.mjs")
    jsgen.write(bi, tmp_path / "bi.mjs")
    (tmp_path / "t.mjs").write_text("""
import * as uni from './uni.mjs';
import * as bi from './bi.mjs';
const T = 6, x = Float32Array.from({length: T * uni.INPUT_SIZE}, (_, i) => Math.sin(i));
const whole = uni.predict(x, T);
const s = uni.init();
let worst = 0;
for (let t = 0; t < T; ++t) {
  const y = uni.step(s, x.subarray(t * uni.INPUT_SIZE, (t + 1) * uni.INPUT_SIZE));
  y.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - whole[t * uni.OUTPUT_SIZE + j])); });
}
let refused = '';
try { bi.init(); } catch (e) { refused = e.message; }
console.log(JSON.stringify({worst, refused, can: [uni.CAN_STREAM, bi.CAN_STREAM]}));
""")
    res = subprocess.run([NODE, str(tmp_path / "t.mjs")], capture_output=True, text=True, check=True)
    import json
    out = json.loads(res.stdout)
    assert out["worst"] < 1e-6
    assert out["can"] == [True, False]
    assert out["refused"] == ("step: this model has a reverse or bidirectional layer, which needs the whole "
                              "sequence; use predict")


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_numpy_script_matches_framework(case, tmp_path):
    model = read(case)
    path = tmp_path / "model_numpy.py"
    numpy_script.write(model, path)
    assert (tmp_path / "model_numpy.npz").exists()
    check_against_framework(case, numpy_script.run, path, model)


def test_numpy_script_names_the_gate_slices(tmp_path):
    numpy_script.write(read(next(c for c in ALL if c.name == "stacked_lstm_dense")), tmp_path / "m.py")
    text = (tmp_path / "m.py").read_text()
    for name in ("input_gate = f(z[:, 0 * H:1 * H])", "forget_gate", "cell_candidate", "output_gate",
                 "reset_gate", "update_gate"):
        assert name in text
    assert "import rnnconvert" not in text and "scipy" not in text


# ------------------------------------------------------------ every activation, every cell, vs reference

PARAMS = {"hard_sigmoid": (0.2, 0.5), "elu": (0.7, None), "selu": (SELU.alpha, SELU.beta),
          "leaky_relu": (0.1, None), "thresholded_relu": (0.3, None), "affine": (0.8, 0.1),
          "scaled_tanh": (0.9, 1.1)}


def _act(name):
    a, b = PARAMS.get(name, (None, None))
    return Activation(name, a, b)


def _activation_model(name, cell):
    rng = np.random.default_rng(zlib.crc32(f"{name} {cell}".encode()))     # hash() differs per process
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    H, F = 4, 3
    act = _act(name)
    gate = act if name != "exponential" else Activation("sigmoid")   # exp gates overflow float32 in 3 steps
    acts = {"lstm": [gate, act, act], "gru": [gate, act], "rnn": [act]}[cell]
    r = 0.3 if name != "exponential" else 0.05
    w = DirectionWeights(rng.normal(0, 0.3, (G * H, F)), rng.normal(0, r, (G * H, H)),
                         rng.normal(0, 0.2, G * H), rng.normal(0, 0.2, G * H), h0=rng.normal(0, 0.3, H),
                         c0=rng.normal(0, 0.3, H) if cell == "lstm" else None)
    layers = [Recurrent("rec", cell, H, "forward", [w], acts, clip=3.0 if cell == "lstm" else None,
                        reset_after=name != "relu"),
              Dropout("drop", 0.5), Dense("dense", rng.normal(0, 0.5, (H, 3)), rng.normal(0, 0.1, 3), act if name != "exponential" else
                    Activation("linear")),
              ActivationLayer("act", _act(name))]
    for layer in layers:          # float32 weights: every language computes with exactly these
        for owner in getattr(layer, "weights", [layer]):
            for key in ("W", "R", "Wb", "Rb", "h0", "c0", "kernel", "bias"):
                if getattr(owner, key, None) is not None:
                    setattr(owner, key, np.asarray(getattr(owner, key), np.float32))
    return Model(layers, InputSpec(features=F), name=f"{cell}_{name}")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_in_every_language(name, cell, tmp_path):
    model = _activation_model(name, cell)
    x = np.random.default_rng(1).standard_normal((2, 4, 3)).astype(np.float32) * 1.5   # unbounded gates stay finite
    expected = rnnconvert.predict(model, x)
    runs = [(numpy_script, "m.py")]
    if GCC:
        runs.append((cgen, "m.c"))
    if NODE:
        runs.append((jsgen, "m.mjs"))
    for module, fname in runs:
        module.write(model, tmp_path / fname)
        np.testing.assert_allclose(module.run(tmp_path / fname, x, model), expected, atol=TOL, rtol=TOL,
                                   err_msg=f"{fname} {cell} {name}")


# ------------------------------------------------------------------------------------- through the CLI

@pytest.mark.skipif(GCC is None, reason="gcc not installed")
def test_cli_writes_c_with_header_and_test(runner, tmp_path):
    src = FIXTURES / "tfkeras2" / "simplernn_selu_dense" / "model.h5"
    res = runner.invoke(cli, [str(src), str(tmp_path / "selu_net.c"), "--emit-test"])
    assert res.exit_code == 0, res.stderr
    assert "gcc(dst)" in res.output and "EQUIVALENT" in res.output
    assert sorted(os.listdir(tmp_path)) == ["selu_net.c", "selu_net.h", "selu_net_test.c"]
    assert "int selu_net_predict(const float *x, int T, float *y, float *work);" in \
        (tmp_path / "selu_net.h").read_text()


def test_cli_writes_numpy_script_with_weights(runner, tmp_path):
    src = FIXTURES / "keras3" / "lstm_last_softmax" / "model.keras"
    res = runner.invoke(cli, [str(src), str(tmp_path / "net.py")])
    assert res.exit_code == 0, res.stderr
    assert "python(dst)" in res.output
    assert sorted(os.listdir(tmp_path)) == ["net.npz", "net.py"]
    model = rnnconvert.read(src)
    x = np.random.default_rng(0).standard_normal((2, 5, model.input.features)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    subprocess.run([sys.executable, str(tmp_path / "net.py"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                   check=True, cwd="/")
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), rnnconvert.predict(model, x), atol=TOL)
