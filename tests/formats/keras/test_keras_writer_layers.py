"""The Keras writer with the front-end layers real recurrent models carry: Embedding (mask_zero),
Conv1D (valid/same/causal/explicit padding, strides, dilation, groups, activation), pooling (windowed
and global), Flatten, BatchNormalization, Masking and the Dropout variants.

Oracle: a Keras 3 model (torch backend) built live in the test with random weights; the canonical
model is assembled by hand from its weights (`canonical_from_keras`, no rnnconvert reader involved);
the written .keras, .h5 and tf.keras 2 .h5 files are loaded by Keras 3 and must predict what the live
model predicts, batch 3, several lengths, within 1e-5.  Explicit convolution padding, which Keras has
no setting for, is checked against a live torch nn.Conv1d.
"""
from __future__ import annotations

import json
import os
import zipfile

import h5py
import numpy as np
import pytest

from rnnconvert import model as M
from rnnconvert.formats import keras as K

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
L = keras.layers
from keras_models import act, canonical_from_keras, floats, ids, randomise  # noqa: E402

TOL = 1e-5
TARGETS = [("model.keras", 3), ("model.h5", 3), ("model.h5", 2)]


def written_matches(km, model, xs, tmp_path, targets=TARGETS):
    """Write `model` to every target, load each with Keras 3, compare with the live model on `xs`."""
    errors = {}
    for name, major in targets:
        path = tmp_path / f"v{major}_{name}"
        K.write(model, path, keras_version=major)
        loaded = keras.saving.load_model(str(path), compile=False)
        err = max(float(np.abs(loaded.predict(x, verbose=0) - km.predict(x, verbose=0)).max()) for x in xs)
        errors[path.name] = err
    assert max(errors.values()) < TOL, errors
    return errors


# ------------------------------------------------------------------------------- embeddings

def test_embedding_mask_zero_lstm_and_dropout_variants(tmp_path):
    km = randomise(keras.Sequential([
        keras.Input((None,), dtype="int32"), L.Embedding(20, 6, mask_zero=True), L.LSTM(5, return_sequences=True),
        L.Dropout(0.1), L.SpatialDropout1D(0.2), L.GaussianNoise(0.3), L.GaussianDropout(0.1),
        L.AlphaDropout(0.1), L.LSTM(4), L.Dense(3, activation="tanh")]))
    model = canonical_from_keras(km, "int32")
    xs = [ids(3, 7, 20, 1), ids(3, 11, 20, 2), ids(4, 1, 20, 3, pad_right=False)]
    written_matches(km, model, xs, tmp_path)
    config = json.loads(zipfile.ZipFile(tmp_path / "v3_model.keras").read("config.json"))
    layers = config["config"]["layers"]
    assert layers[0]["config"]["dtype"] == "int32" and layers[0]["config"]["batch_shape"] == [None, None]
    assert [e["class_name"] for e in layers[1:]] == [
        "Embedding", "LSTM", "Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
        "LSTM", "Dense"]
    assert layers[1]["config"]["mask_zero"] is True
    with h5py.File(tmp_path / "v2_model.h5") as f:
        names = list(f["model_weights"][km.layers[0].name].attrs["weight_names"])
    assert names == [f"{km.layers[0].name}/embeddings:0"]


def test_embedding_without_mask_into_zero_output_lstm(tmp_path):
    km = randomise(keras.Sequential([
        keras.Input((9,), dtype="int32"), L.Embedding(30, 4), L.LSTM(6, return_sequences=True),
        L.GlobalAveragePooling1D(), L.Dense(2)]), seed=4)
    written_matches(km, canonical_from_keras(km, "int32"), [ids(3, 9, 30, 5), ids(5, 9, 30, 6)], tmp_path)


def test_masking_with_zero_output_for_mask(tmp_path):
    km = randomise(keras.Sequential([
        keras.Input((None, 3)), L.Masking(0.0), L.LSTM(5, return_sequences=True, zero_output_for_mask=True),
        L.Dense(4), L.LSTM(3, return_sequences=True)]), seed=7)
    x = floats((3, 8, 3), 8)
    x[1, 5:] = 0.0
    x[2, 2] = 0.0
    written_matches(km, canonical_from_keras(km), [x, floats((3, 4, 3), 9)], tmp_path)


# ------------------------------------------------------------------------------ convolutions

def test_conv_paddings_strides_dilation_groups_pooling_batchnorm_flatten(tmp_path):
    km = randomise(keras.Sequential([
        keras.Input((12, 4)), L.Conv1D(8, 3, strides=2, activation="relu"),
        L.Conv1D(8, 3, padding="same", groups=2, activation="tanh"),
        L.Conv1D(6, 2, padding="causal", dilation_rate=2), L.BatchNormalization(epsilon=1e-3),
        L.MaxPooling1D(2, 1, padding="same"), L.AveragePooling1D(2), L.LSTM(3, return_sequences=True),
        L.Flatten(), L.Dense(2)]), seed=11)
    written_matches(km, canonical_from_keras(km), [floats((3, 12, 4), 12), floats((5, 12, 4), 13, 6.0)], tmp_path)


@pytest.mark.parametrize("padding,strides,dilation", [("same", 2, 1), ("same", 3, 1), ("causal", 1, 3),
                                                      ("causal", 2, 1), ("valid", 2, 1), ("valid", 1, 2)])
def test_conv_variable_length(tmp_path, padding, strides, dilation):
    km = randomise(keras.Sequential([
        keras.Input((None, 3)), L.Conv1D(5, 3, strides=strides, dilation_rate=dilation, padding=padding,
                                         use_bias=False),
        L.AveragePooling1D(2, padding="same"), L.SimpleRNN(4, return_sequences=True),
        L.GlobalMaxPooling1D()]), seed=strides * 10 + dilation)
    xs = [floats((3, T, 3), T) for T in (7, 10, 16)]
    written_matches(km, canonical_from_keras(km), xs, tmp_path)


def test_batchnorm_without_scale_and_center_after_last_step(tmp_path):
    km = randomise(keras.Sequential([
        keras.Input((None, 2)), L.LSTM(4), L.BatchNormalization(center=False, scale=False, epsilon=0.01),
        L.Dense(3)]), seed=21)
    written_matches(km, canonical_from_keras(km), [floats((3, 6, 2), 22), floats((2, 13, 2), 23)], tmp_path)


def test_explicit_conv_padding_is_zero_padding_then_valid_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=1, groups=2).eval()
    kernel = conv.weight.detach().numpy().transpose(2, 1, 0)
    layer = M.Conv1D("conv", kernel, conv.bias.detach().numpy(), strides=2, dilation=1, padding="explicit",
                     pads=(2, 2), groups=2, activation=act("relu"))
    model = M.Model([layer], M.InputSpec(features=4))
    for name, major in TARGETS:
        path = tmp_path / f"v{major}_{name}"
        notes = K.write(model, path, keras_version=major)
        assert "explicit padding (2, 2) written as ZeroPadding1D 'conv_padding' before a 'valid' Conv1D" \
            in " ".join(notes)
        loaded = keras.saving.load_model(str(path), compile=False)
        assert [type(x).__name__ for x in loaded.layers] == ["ZeroPadding1D", "Conv1D"]
        for T in (5, 9, 14):
            x = floats((3, T, 4), T)
            want = torch.relu(conv(torch.from_numpy(x).transpose(1, 2))).transpose(1, 2).detach().numpy()
            assert np.abs(loaded.predict(x, verbose=0) - want).max() < TOL


@pytest.mark.parametrize("width,dilation,pads,keras_padding", [(3, 1, (1, 1), "same"), (4, 1, (1, 2), "same"),
                                                               (3, 2, (4, 0), "causal"), (3, 1, (1, 0), None)])
def test_explicit_padding_that_keras_padding_adds_is_written_as_it(tmp_path, width, dilation, pads, keras_padding):
    """PyTorch's padding=(k-1)/2 is Keras's 'same' at stride 1; (k-1)*d zeros on the left are 'causal'."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(width + dilation)
    conv = torch.nn.Conv1d(3, 4, width, dilation=dilation).eval()
    layer = M.Conv1D("conv", conv.weight.detach().numpy().transpose(2, 1, 0), conv.bias.detach().numpy(),
                     dilation=dilation, padding="explicit", pads=pads)
    model = M.Model([layer], M.InputSpec(features=3))
    path = tmp_path / "model.keras"
    K.write(model, path)
    loaded = keras.saving.load_model(str(path), compile=False)
    classes = [type(x).__name__ for x in loaded.layers]
    if keras_padding:
        assert classes == ["Conv1D"] and loaded.layers[0].padding == keras_padding
    else:
        assert classes == ["ZeroPadding1D", "Conv1D"]
    for T in (4, 9):
        x = floats((3, T, 3), T)
        want = conv(F_pad(torch.from_numpy(x).transpose(1, 2), pads)).transpose(1, 2).detach().numpy()
        assert np.abs(loaded.predict(x, verbose=0) - want).max() < TOL


def F_pad(x, pads):
    import torch.nn.functional as F
    return F.pad(x, pads)


# ---------------------------------------------------------------------------------- refusals

def _lstm(name, features, hidden, seed, output="sequence", direction="forward", masked_output="previous"):
    rng = np.random.default_rng(seed)
    n = 2 if direction == "bidirectional" else 1
    weights = [M.DirectionWeights(W=rng.normal(size=(4 * hidden, features)), R=rng.normal(size=(4 * hidden, hidden)),
                                  Wb=np.zeros(4 * hidden), Rb=np.zeros(4 * hidden)) for _ in range(n)]
    return M.Recurrent(name, "lstm", hidden, direction, weights, [act("sigmoid"), act("tanh"), act("tanh")],
                       output=output, masked_output=masked_output)


@pytest.mark.parametrize("what", ["bidirectional", "selector"])
def test_mask_refusals_through_the_cli(runner, tmp_path, what):
    from rnnconvert.cli.commands import cli
    from rnnconvert.formats import canonical
    if what == "bidirectional":
        layer = _lstm("bi", 3, 4, 1, direction="bidirectional")
        want = ("layer 'bi': a mask reaches this layer and Keras's Bidirectional outputs zeros at masked steps "
                "(it forces zero_output_for_mask on); this layer repeats the previous output there")
    else:
        layer = _lstm("rev", 3, 4, 2, direction="reverse")
        want = ("layer 'rev': a mask reaches this layer and the identity SimpleRNN that would select its output "
                "steps would skip the masked steps too")
    src = tmp_path / "model.rnnc"
    canonical.write(M.Model([M.Masking("masking"), layer], M.InputSpec(features=3)), src)
    for dst, major in (("out.keras", 3), ("out.h5", 3), ("out2.h5", 2)):
        args = [str(src), str(tmp_path / dst)] + (["--keras-version", "2"] if major == 2 else [])
        res = runner.invoke(cli, args)
        assert res.exit_code == 2, res.output
        assert res.stderr.strip() == (f"rnnconvert: error: {tmp_path / dst}: cannot write this model as "
                                      f"Keras {major}: {want}")
        assert not (tmp_path / dst).exists()
