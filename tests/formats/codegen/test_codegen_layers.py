"""Code generation of the front-end layers (Embedding, Masking, Conv1D, pooling, Flatten, BatchNorm, Dropout
variants), each language run by its own toolchain against live Keras 3 (torch backend) predictions.

Every model is built and run by Keras in the test, saved, read by rnnconvert's Keras reader and
written as C (gcc -std=c99 -Wall -Wextra -Werror -pedantic), an ES module (node) and a NumPy script
(python); batch 3, two lengths (the fixed one for a Flatten), masked steps at the start, the end and
the middle of rows.  Oracle: Keras's predict, 1e-5.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

import rnnconvert
from rnnconvert.cli.commands import cli
from rnnconvert.formats.codegen import c as cgen
from rnnconvert.formats.codegen import js as jsgen
from rnnconvert.formats.codegen import numpy_script
from rnnconvert.model import SIGMOID, TANH, DirectionWeights, Flatten, InputSpec, Model, Recurrent

keras = pytest.importorskip("keras")
K = keras.layers
GCC = shutil.which("gcc")
NODE = shutil.which("node")
TOL = 1e-5


def _models():
    """name -> (build(), input kind: 'f' floats, 'm' floats with masked steps, 'i' token ids; lengths)."""
    return {
        "conv_causal_pool_bn": (lambda: keras.Sequential([
            keras.Input((None, 3)), K.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
            K.MaxPooling1D(2, padding="same"), K.BatchNormalization(), K.LSTM(5, return_sequences=True),
            K.GlobalAveragePooling1D(), K.Dense(2)]), "f", (9, 14)),
        "conv_same_strided_groups": (lambda: keras.Sequential([
            keras.Input((None, 4)), K.Conv1D(6, 4, strides=2, padding="same", groups=2),
            K.AveragePooling1D(3, strides=1, padding="same"), K.GRU(5, return_sequences=True),
            K.SpatialDropout1D(0.3), K.AveragePooling1D(2)]), "f", (11, 16)),
        "conv_valid_flatten": (lambda: keras.Sequential([
            keras.Input((10, 3)), K.Conv1D(4, 3, activation="tanh"), K.MaxPooling1D(2, strides=1),
            K.GRU(3, return_sequences=True), K.GaussianNoise(0.5), K.Flatten()]), "f", (10,)),
        "embedding_lstm": (lambda: keras.Sequential([
            keras.Input((None,), dtype="int32"), K.Embedding(20, 4), K.LSTM(5), K.Dense(3)]), "i", (6, 9)),
        "embedding_mask_gru_lstm": (lambda: keras.Sequential([
            keras.Input((None,), dtype="int32"), K.Embedding(20, 4, mask_zero=True),
            K.GRU(5, return_sequences=True), K.Dropout(0.2), K.LSTM(3)]), "i", (7, 10)),
        "embedding_mask_rnn_globalmax": (lambda: keras.Sequential([
            keras.Input((None,), dtype="int32"), K.Embedding(20, 4, mask_zero=True),
            K.SimpleRNN(5, return_sequences=True), K.GlobalMaxPooling1D()]), "i", (7,)),
        "masking_lstm_dense_seq": (lambda: keras.Sequential([
            keras.Input((None, 3)), K.Masking(0.0), K.LSTM(4, return_sequences=True), K.Dense(2)]), "m", (6, 9)),
        "masking_bilstm_globalaverage": (lambda: keras.Sequential([
            keras.Input((None, 3)), K.Masking(0.0), K.Bidirectional(K.LSTM(4, return_sequences=True)),
            K.GlobalAveragePooling1D()]), "m", (6, 8)),
        "masking_bigru_last": (lambda: keras.Sequential([
            keras.Input((None, 3)), K.Masking(0.0), K.BatchNormalization(), K.Bidirectional(K.GRU(4))]), "m", (7,)),
    }


MODELS = _models()
STREAMABLE = {"embedding_lstm", "embedding_mask_gru_lstm", "masking_lstm_dense_seq"}
_BUILT: dict = {}


def _inputs(kind: str, T: int, features: int, rng) -> np.ndarray:
    if kind == "i":
        x = rng.integers(1, 20, (3, T)).astype(np.int32)
    else:
        x = (rng.standard_normal((3, T, features)) * 3.0).astype(np.float32)    # saturating magnitudes
    if kind in "im":        # masked steps at the end, the start and in the middle of rows
        x[0, -2:] = 0
        x[1, :2] = 0
        x[2, 3] = 0
    return x


def built(name, tmp_path_factory):
    """(path of the saved .keras, canonical model, [(x, Keras's y)]), made once per model."""
    if name not in _BUILT:
        build, kind, lengths = MODELS[name]
        keras.utils.set_random_seed(7)
        m = build()
        rng = np.random.default_rng(3)
        for layer in m.layers:
            if isinstance(layer, K.BatchNormalization):      # statistics away from the identity
                layer.set_weights([w + rng.uniform(0.3, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])
            if isinstance(layer, K.Embedding):               # rows of order 1, not Keras's +-0.05
                layer.set_weights([rng.standard_normal(layer.get_weights()[0].shape).astype(np.float32)])
        path = tmp_path_factory.mktemp(name) / "model.keras"
        m.save(path)
        features = m.input_shape[-1] if kind != "i" else 0
        io = []
        for T in lengths:
            x = _inputs(kind, T, features, rng)
            io.append((x, np.asarray(m.predict(x, verbose=0), np.float64)))
        _BUILT[name] = (path, rnnconvert.read(path), io)
    return _BUILT[name]


LANGUAGES = [pytest.param(cgen, "net.c", marks=pytest.mark.skipif(GCC is None, reason="gcc not installed")),
             pytest.param(jsgen, "net.mjs", marks=pytest.mark.skipif(NODE is None, reason="node not installed")),
             pytest.param(numpy_script, "net.py")]


@pytest.mark.parametrize("module,fname", LANGUAGES, ids=["c", "js", "numpy"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_generated_code_matches_keras(name, module, fname, tmp_path, tmp_path_factory):
    _, model, io = built(name, tmp_path_factory)
    module.write(model, tmp_path / fname)
    for x, y in io:
        got = module.run(tmp_path / fname, x, model)
        assert got.shape == y.shape
        np.testing.assert_allclose(got, y, atol=TOL, rtol=0, err_msg=f"{name} {fname} T={x.shape[1]}")


@pytest.mark.skipif(GCC is None, reason="gcc not installed")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_c_golden_program_streams_exactly_where_it_can(name, tmp_path, tmp_path_factory):
    _, model, _ = built(name, tmp_path_factory)
    notes = cgen.write(model, tmp_path / "net.c", emit_test=True)
    exe = tmp_path / "golden"
    subprocess.run([GCC, *cgen.CFLAGS, str(tmp_path / "net.c"), str(tmp_path / "net_test.c"), "-o", str(exe), "-lm"],
                   check=True)
    res = subprocess.run([str(exe)], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stdout     # predict, and step where emitted
    header = (tmp_path / "net.h").read_text()
    ids = MODELS[name][1] == "i"
    xtype = {"int32": "int32_t", "int64": "int64_t"}.get(model.input.dtype, "int64_t") if ids else "float"
    assert f"int net_predict(const {xtype} *x, int T, float *y, float *work);" in header
    step = f"{'int' if ids else 'void'} net_step(net_state *s, const {xtype} *x, float *y);"
    assert (step in header) == (name in STREAMABLE)
    assert f"#define NET_CAN_STREAM {int(name in STREAMABLE)}" in header
    if name.startswith("conv"):
        conv = next(layer.name for layer in model.layers if layer.kind == "conv1d")
        assert f"net_step is not generated: layer '{conv}' (Conv1D) reads neighbouring time steps (net_predict only)" \
            in notes


@pytest.mark.skipif(GCC is None, reason="gcc not installed")
def test_c_refuses_a_token_id_outside_the_vocabulary(tmp_path, tmp_path_factory):
    _, model, io = built("embedding_lstm", tmp_path_factory)
    cgen.write(model, tmp_path / "net.c")
    x = io[0][0].copy()
    x[1, 2] = 20
    with pytest.raises(rnnconvert.errors.InputError, match="token id outside the embedding's vocabulary"):
        cgen.run(tmp_path / "net.c", x, model)


@pytest.mark.skipif(NODE is None, reason="node not installed")
def test_js_streams_masked_steps_and_refuses_a_convolution(tmp_path, tmp_path_factory):
    _, masked, io = built("masking_lstm_dense_seq", tmp_path_factory)
    _, conv, _ = built("conv_causal_pool_bn", tmp_path_factory)
    jsgen.write(masked, tmp_path / "masked.mjs")
    jsgen.write(conv, tmp_path / "conv.mjs")
    x, y = io[0]
    (tmp_path / "x.json").write_text(json.dumps(x[1].tolist()))     # row 1: its first two steps are masked
    (tmp_path / "t.mjs").write_text("""
import * as masked from './masked.mjs';
import * as conv from './conv.mjs';
import { readFileSync } from 'node:fs';
const rows = JSON.parse(readFileSync(new URL('./x.json', import.meta.url)));
const s = masked.init(), ys = rows.map(r => Array.from(masked.step(s, Float32Array.from(r))));
let refused = '';
try { conv.init(); } catch (e) { refused = e.message; }
console.log(JSON.stringify({ys, refused, can: [masked.CAN_STREAM, conv.CAN_STREAM]}));
""")
    out = json.loads(subprocess.run([NODE, str(tmp_path / "t.mjs")], capture_output=True, text=True, check=True).stdout)
    np.testing.assert_allclose(np.array(out["ys"]), y[1], atol=TOL, rtol=0)
    assert out["can"] == [True, False]
    name = next(layer.name for layer in conv.layers if layer.kind == "conv1d")
    assert out["refused"] == (f"step: layer '{name}' (Conv1D) reads neighbouring time steps, which needs the whole "
                              "sequence; use predict")


def test_numpy_script_spells_out_the_front_end(tmp_path, tmp_path_factory):
    _, model, _ = built("conv_same_strided_groups", tmp_path_factory)
    numpy_script.write(model, tmp_path / "m.py")
    text = (tmp_path / "m.py").read_text()
    assert "padding same" in text and "groups=2" in text and "pool_window(x.shape[1], 3, 1, True)" in text
    assert "import rnnconvert" not in text and "scipy" not in text


# ------------------------------------------------------------------------------------------- refusals

def _flatten_without_length(tmp_path):
    rng = np.random.default_rng(0)
    w = DirectionWeights(*(rng.normal(0, 0.3, s).astype(np.float32) for s in ((12, 2), (12, 3), (12,), (12,))))
    model = Model([Recurrent("lstm", "lstm", 3, "forward", [w], [SIGMOID, TANH, TANH]), Flatten("flat")],
                  InputSpec(features=2))
    src = tmp_path / "flat.rnnc"
    rnnconvert.write(model, src)
    return src


@pytest.mark.parametrize("suffix", [".c", ".mjs", ".py"])
def test_cli_refuses_a_flatten_without_a_fixed_length(suffix, runner, tmp_path):
    src = _flatten_without_length(tmp_path)
    dst = tmp_path / f"out{suffix}"
    res = runner.invoke(cli, [str(src), str(dst)])
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"rnnconvert: error: {dst}: layer 'flat' (Flatten): needs a fixed sequence length "
                                  "and the model's input has none; give the input a fixed number of time steps")
    assert not dst.exists()


@pytest.mark.skipif(NODE is None, reason="node not installed")
def test_cli_writes_a_convolution_model_as_js_and_says_it_cannot_stream(runner, tmp_path, tmp_path_factory):
    path, model, _ = built("conv_same_strided_groups", tmp_path_factory)
    res = runner.invoke(cli, [str(path), str(tmp_path / "net.mjs")])
    assert res.exit_code == 0, res.stderr
    conv = next(layer.name for layer in model.layers if layer.kind == "conv1d")
    assert f"step() throws for this model: layer '{conv}' (Conv1D) reads neighbouring time steps" in res.output
    assert "EQUIVALENT" in res.output
