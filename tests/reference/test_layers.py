"""Front-end layers and Keras masks: the Keras reader plus the reference pass against real Keras.

Every tfkeras2/keras3 fixture with an Embedding, Masking, Conv1D, pooling, Flatten, BatchNormalization
or noise layer matches its stored framework predictions within 1e-5; masks are checked against Keras 3
models built here (LSTM/GRU/SimpleRNN, forward, go_backwards, Bidirectional, sequences or not, left-
and right-padded batches); what the reader refuses is checked word for word through the CLI.
"""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

import rnnconvert
from conftest import keras_cases
from rnnconvert.reference import network as reference
from rnnconvert.cli import cli

FRONT_END = {"embedding", "masking", "conv1d", "max_pooling", "average_pooling", "global_average_pooling",
             "global_max_pooling", "flatten", "batch_norm", "spatial_dropout1d", "gaussian_noise"}
LAYER_CASES = [c for c in keras_cases() if FRONT_END & set(c.meta.get("features", []))]


def test_every_front_end_kind_has_fixtures():
    kinds = {layer.kind for c in LAYER_CASES for layer in rnnconvert.read(c.path).layers}
    assert kinds >= {"embedding", "masking", "conv1d", "pooling1d", "flatten", "batch_norm", "dropout"}
    assert {c.origin for c in LAYER_CASES} == {"tfkeras2", "keras3"} and len(LAYER_CASES) >= 39


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.id)
def test_reference_matches_framework(case):
    model = rnnconvert.read(case.path)
    tokens = case.meta.get("input_dtype") == "int64"
    assert model.input.dtype == ("int64" if tokens else "float32")
    for key, x, y in case.io():
        assert (x.dtype == np.int64) == tokens
        np.testing.assert_allclose(reference.forward(model, x), y, atol=1e-5, rtol=0, err_msg=key)


KINDS = {"Embedding": "embedding", "Masking": "masking", "Conv1D": "conv1d", "MaxPooling1D": "pooling1d",
         "AveragePooling1D": "pooling1d", "GlobalMaxPooling1D": "pooling1d", "GlobalAveragePooling1D": "pooling1d",
         "Flatten": "flatten", "BatchNormalization": "batch_norm", "LSTM": "lstm", "GRU": "gru",
         "SimpleRNN": "rnn", "Dense": "dense", "SpatialDropout1D": "dropout", "GaussianNoise": "dropout",
         "GaussianDropout": "dropout", "AlphaDropout": "dropout"}


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: c.id)
def test_fixture_structure(case):
    model = rnnconvert.read(case.path)
    classes = [d.removeprefix("Bidirectional(").split("(")[0] for d in case.meta["layers"]]
    assert [layer.kind for layer in model.layers] == [KINDS[c] for c in classes]
    assert model.source["keras_version"] == case.meta["framework"]["version"]
    assert model.input.features == (0 if case.meta["input_dtype"] == "int64" else case.meta["input_shape"][-1])
    assert model.input.time_steps == case.meta["input_shape"][1]
    variants = [layer.variant for layer in model.layers if layer.kind == "dropout"]
    assert variants == [c.lower().replace("spatialdropout1d", "spatial_dropout1d").replace("gaussian", "gaussian_")
                        .replace("alphadropout", "alpha_dropout") for c in classes if KINDS[c] == "dropout"]


def test_masked_fixtures_record_what_keras_does():
    bi_seq = rnnconvert.read(next(c.path for c in LAYER_CASES if c.name == "embed_mask_bilstm_seq"))
    backwards = rnnconvert.read(next(c.path for c in LAYER_CASES if c.name == "embed_mask_gru_backwards_seq_dense"))
    assert bi_seq.layers[0].mask_zero and bi_seq.layers[1].masked_output == "zero"
    assert backwards.layers[1].masked_output == "previous" and backwards.layers[1].time_order == "processing"


# ---------------------------------------------------------------------------------------------
# Masks against Keras 3, live

keras = pytest.importorskip("keras")
L = keras.layers
T, VOCAB = 9, 11


def _ids(rng, batch=5):
    """Left-padded, right-padded, padded in the middle, unpadded and one step only."""
    x = rng.integers(1, VOCAB, (batch, T))
    x[0, :4] = 0
    x[1, 5:] = 0
    x[2, 3:6] = 0
    x[4, :-1] = 0
    return x


def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.6 for w in model.get_weights()])


def _check(model, x, tmp_path, atol=1e-5):
    _randomize(model, 7)
    path = tmp_path / "model.keras"
    model.save(path)
    expected = np.asarray(model.predict(x, verbose=0))
    got = reference.forward(rnnconvert.read(path), x)
    np.testing.assert_allclose(got, expected, atol=atol, rtol=0)


RNNS = {"lstm": L.LSTM, "gru": L.GRU, "rnn": L.SimpleRNN}


@pytest.mark.parametrize("sequences", [True, False], ids=["seq", "last"])
@pytest.mark.parametrize("wrap", ["forward", "go_backwards", "bidirectional"])
@pytest.mark.parametrize("cell", sorted(RNNS))
def test_mask_zero_through_recurrent_layer(cell, wrap, sequences, tmp_path):
    rnn = RNNS[cell](4, return_sequences=sequences, go_backwards=wrap == "go_backwards")
    layer = L.Bidirectional(rnn) if wrap == "bidirectional" else rnn
    model = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(VOCAB, 3, mask_zero=True), layer])
    _check(model, _ids(np.random.default_rng(1)), tmp_path)


@pytest.mark.parametrize("cell", sorted(RNNS))
def test_mask_through_dropout_dense_activation_and_stacked_layers(cell, tmp_path):
    model = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(VOCAB, 3, mask_zero=True),
                              L.Dropout(0.2), L.Dense(4), L.Activation("tanh"), L.GaussianNoise(0.1),
                              RNNS[cell](4, return_sequences=True, go_backwards=True),
                              L.Bidirectional(RNNS[cell](3, return_sequences=True), merge_mode="sum"),
                              RNNS[cell](3), L.Dense(2)])
    _check(model, _ids(np.random.default_rng(2)), tmp_path)


def test_masking_with_a_value_zeroes_masked_steps_and_skips_them(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, T, 3)).astype(np.float32)
    x[0, :4] = -1.5                    # left-padded
    x[1, 6:] = -1.5                    # right-padded
    x[2, 4, :2] = -1.5                 # not every feature: not masked
    model = keras.Sequential([keras.Input((None, 3)), L.Masking(-1.5), L.Dense(3),
                              L.LSTM(4, return_sequences=True), L.TimeDistributed(L.Dense(2))])
    _check(model, x, tmp_path)


def test_mask_dropped_by_convolution_and_used_by_global_average(tmp_path):
    model = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(VOCAB, 3, mask_zero=True),
                              L.GRU(4, return_sequences=True), L.GlobalAveragePooling1D(), L.Dense(2)])
    _check(model, _ids(np.random.default_rng(4)), tmp_path)
    model = keras.Sequential([keras.Input((T,), dtype="int32"), L.Embedding(VOCAB, 3, mask_zero=True),
                              L.Conv1D(4, 2, padding="causal"), L.LSTM(4)])
    _check(model, _ids(np.random.default_rng(5)), tmp_path)


@pytest.mark.parametrize("padding, strides, dilation", [("valid", 1, 1), ("valid", 3, 1), ("same", 2, 1),
                                                        ("same", 1, 3), ("causal", 1, 2)])
def test_conv1d_and_pooling_settings(padding, strides, dilation, tmp_path):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 17, 4)).astype(np.float32)
    x[-1] *= 6
    model = keras.Sequential([keras.Input((None, 4)), L.Conv1D(6, 4, strides=strides, dilation_rate=dilation,
                                                              padding=padding, activation="relu", groups=2),
                              L.MaxPooling1D(2, padding="same"), L.BatchNormalization(epsilon=0.01),
                              L.GRU(3, return_sequences=True), L.AveragePooling1D(2), L.GlobalMaxPooling1D()])
    _randomize(model, 8)
    bn = model.layers[2]
    bn.set_weights([w if k < 2 else np.abs(w) + 0.5 for k, w in enumerate(bn.get_weights())])
    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_allclose(reference.forward(rnnconvert.read(path), x), model.predict(x, verbose=0),
                               atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Refusals through the CLI, word for word

def _case(origin, name):
    return next(c for c in LAYER_CASES if c.origin == origin and c.name == name)


def _edited(case, tmp_path, config=None, attrs=None):
    p = tmp_path / "edited.h5"
    shutil.copy(case.path, p)
    with h5py.File(p, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        if config:
            config(cfg["config"]["layers"])
        f.attrs["model_config"] = json.dumps(cfg)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return p


def _refused(runner, args):
    """The reader's refusal through `predict`, without the --layer suggestion every whole-model refusal of a
    file with readable recurrent layers ends with (tests/cli/test_predict_layer.py checks it word for word)."""
    res = runner.invoke(cli, [str(a) for a in args])
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr.strip().split("; to convert one recurrent layer on its own, pass --layer NAME")[0]


def _cfg(layers, cls):
    return next(layer["config"] for layer in layers if layer["class_name"] == cls)


def test_theano_convolution_refused(runner, tmp_path):
    path = _edited(_case("tfkeras2", "conv1d_causal_dilated_lstm"), tmp_path, attrs={"backend": "theano"})
    assert _refused(runner, ["predict", path, "--inputs", "x.npy", "--output", "y.npy"]) == (
        f"rnnconvert: error: {path}: layer 'conv1d': a convolution saved with the Theano backend: Theano "
        "computes a true convolution (kernels flipped in time), which rnnconvert does not convert unverified; "
        "load the model in Keras with Theano, convert the kernels with "
        "keras.utils.conv_utils.convert_all_kernels_in_model, and save it with the TensorFlow backend")


@pytest.mark.parametrize("name, edit, message", [
    ("conv1d_causal_dilated_lstm", lambda ls: _cfg(ls, "Conv1D").update(padding="full"),
     "layer 'conv1d': padding='full'; supported: valid, same, causal"),
    ("conv1d_same_strides_maxpool_gru", lambda ls: _cfg(ls, "MaxPooling1D").update(data_format="channels_first"),
     "layer 'max_pooling1d': data_format='channels_first': rnnconvert reads [batch, time, features] "
     "(channels_last) sequences; re-save the model with data_format='channels_last'"),
    ("batchnorm_simplernn", lambda ls: _cfg(ls, "BatchNormalization").update(axis=[1]),
     "layer 'batch_normalization': axis=[1]: rnnconvert reads batch normalization over the last (feature) "
     "axis only"),
    ("lstm_seq_gap_dense", lambda ls: _cfg(ls, "GlobalAveragePooling1D").update(keepdims=True),
     "layer 'global_average_pooling1d': keepdims=True (the output keeps a time axis of 1); re-save with "
     "keepdims=False"),
])
def test_unsupported_settings_refused(runner, tmp_path, name, edit, message):
    path = _edited(_case("tfkeras2", name), tmp_path, config=edit)
    assert _refused(runner, ["predict", path, "--inputs", "x.npy", "--output", "y.npy"]) == f"rnnconvert: error: {path}: {message}"


def test_flatten_without_a_fixed_length_refused(runner, tmp_path):
    def variable(layers):
        layers[0]["config"]["batch_input_shape"] = [None, None, 3]
    path = _edited(_case("tfkeras2", "lstm_seq_flatten_dense"), tmp_path, config=variable)
    assert _refused(runner, ["predict", path, "--inputs", "x.npy", "--output", "y.npy"]) == (
        f"rnnconvert: error: {path}: layer 'flatten': Flatten over the time axis needs a fixed number of time "
        "steps, and the model's input has none; rebuild the model with a fixed input length "
        "(Input(shape=(steps, features)))")


def test_token_ids_out_of_range_and_float_inputs_refused(runner, tmp_path):
    case = _case("keras3", "embed_lstm_dense")
    x = case.io()[1][1].copy()
    x[1, 2] = 12
    np.save(tmp_path / "x.npy", x)
    assert _refused(runner, ["predict", case.path, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy"]) \
        == (f"rnnconvert: error: {tmp_path / 'x.npy'}: --inputs hold token ids from 0 to 12; the embedding "
            "'embedding' has ids 0 to 11")
    np.save(tmp_path / "x.npy", np.full((2, 5), 0.5))
    assert _refused(runner, ["predict", case.path, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy"]) \
        == (f"rnnconvert: error: {tmp_path / 'x.npy'}: --inputs hold fractional token ids; expected integers")
    np.save(tmp_path / "x.npy", np.zeros((2, 5, 4), np.float32))
    assert _refused(runner, ["predict", case.path, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy"]) \
        == (f"rnnconvert: error: {tmp_path / 'x.npy'}: inputs have shape [2, 5, 4], expected 2 axes "
            "[batch, time] of token ids")


def test_keras1_convolution1d_names_and_kernel_layout(tmp_path):
    """Keras 1 spelled Conv1D `Convolution1D(nb_filter, filter_length, border_mode, subsample_length)`
    with a kernel [width, 1, in, filters] and pooling `pool_length`/`stride`/`border_mode`."""
    case = _case("tfkeras2", "conv1d_same_strides_maxpool_gru")

    def keras1(layers):
        conv = next(layer for layer in layers if layer["class_name"] == "Conv1D")
        c = conv["config"]
        conv["class_name"] = "Convolution1D"
        conv["config"] = {"name": c["name"], "nb_filter": c.pop("filters"), "filter_length": c["kernel_size"][0],
                          "border_mode": c["padding"], "subsample_length": c["strides"][0],
                          "activation": c["activation"], "bias": c["use_bias"]}
        pool = next(layer for layer in layers if layer["class_name"] == "MaxPooling1D")
        p = pool["config"]
        pool["config"] = {"name": p["name"], "pool_length": p["pool_size"][0], "stride": None,
                          "border_mode": p["padding"]}
    path = _edited(case, tmp_path, config=keras1)
    with h5py.File(path, "r+") as f:
        g = f["model_weights/conv1d"]
        name = next(str(n, "utf-8") if isinstance(n, bytes) else str(n) for n in g.attrs["weight_names"]
                    if "kernel" in (str(n, "utf-8") if isinstance(n, bytes) else str(n)))
        kernel = g[name][()]
        del g[name]
        g[name] = kernel[:, None]
    model = rnnconvert.read(path)
    assert model.layers[0].kernel.shape == (3, 3, 4) and model.layers[1].pool_size == 2
    for key, x, y in case.io():
        np.testing.assert_allclose(reference.forward(model, x), y, atol=1e-5, rtol=0, err_msg=key)


def test_zero_padding_before_a_valid_convolution_is_its_explicit_padding(tmp_path):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 8, 3)).astype(np.float32)
    model = keras.Sequential([keras.Input((None, 3)), L.ZeroPadding1D((2, 1)), L.Conv1D(4, 3, strides=2),
                              L.LSTM(4)])
    _check(model, x, tmp_path)
    conv = rnnconvert.read(tmp_path / "model.keras").layers[0]
    assert (conv.padding, conv.pads) == ("explicit", (2, 1))


def test_zero_padding_without_a_convolution_refused(runner, tmp_path):
    model = keras.Sequential([keras.Input((None, 3)), L.ZeroPadding1D(2, name="pad"), L.LSTM(4)])
    model.save(tmp_path / "model.keras")
    assert _refused(runner, ["predict", tmp_path / "model.keras", "--inputs", "x.npy", "--output", "y.npy"]) == (
        f"rnnconvert: error: {tmp_path / 'model.keras'}: layer 'pad': ZeroPadding1D is not followed by a 'valid' "
        "Conv1D; the canonical model pads the time axis only inside a convolution")


@pytest.mark.parametrize("case", [c for c in LAYER_CASES if c.path.suffix == ".h5"], ids=lambda c: c.id)
def test_canonical_round_trip_is_lossless_and_valid(case, tmp_path):
    import zipfile

    jsonschema = pytest.importorskip("jsonschema")
    from conftest import ROOT
    from rnnconvert.model import layer_fields
    model = rnnconvert.read(case.path)
    rnnconvert.write(model, tmp_path / "m.rnnc")
    manifest = json.loads(zipfile.ZipFile(tmp_path / "m.rnnc").read("model.json"))
    jsonschema.validate(manifest, json.loads((ROOT / "schemas" / "model.schema.json").read_text()))
    back = rnnconvert.read(tmp_path / "m.rnnc")
    assert back.input == model.input
    for a, b in zip(model.layers, back.layers, strict=True):
        assert layer_fields(a) == layer_fields(b)
        assert a.arrays().keys() == b.arrays().keys()
        for key, v in a.arrays().items():
            assert v.dtype == b.arrays()[key].dtype and np.array_equal(v, b.arrays()[key])
