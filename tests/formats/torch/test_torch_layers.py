"""PyTorch state dicts with nn.Embedding, nn.Conv1d and nn.BatchNorm1d, and the emitted module with
Embedding/Conv1d/pooling/BatchNorm1d/Flatten.

Oracles: live torch modules built in the test (their state dicts read with --arch hints must predict
what the module computes); live Keras 3 models (torch backend) for what Keras computes ('same' and
'causal' padding, 'same' pooling), whose canonical model is assembled by hand from the weights
(`canonical_from_keras`) and written as .pt/.safetensors + emitted module; the real-world files in
../shared/wild with the y.npy their own framework produced.  Batch 3, several lengths, 1e-5.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import yaml
from conftest import WILD
from keras_models import canonical_from_keras, floats, ids, randomise

import rnnconvert
from rnnconvert.formats.torch import runtime

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional
os.environ.setdefault("KERAS_BACKEND", "torch")

TOL = 1e-5


def hints_file(tmp_path, hints: dict) -> str:
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(hints))
    return str(path)


def live(net, x):
    with torch.no_grad():
        return net.eval()(torch.from_numpy(x)).numpy()


def stats(bn, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) * 1.5 + 0.3)
        if bn.affine:
            bn.weight.copy_(torch.randn(bn.num_features, generator=g))
            bn.bias.copy_(torch.randn(bn.num_features, generator=g))


# ------------------------------------------------------------------------ reading state dicts

class EmbedConvLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(30, 8)
        self.conv = nn.Conv1d(8, 6, 3, padding=1, groups=2)
        self.bn = nn.BatchNorm1d(6)
        self.rnn = nn.LSTM(6, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        x = self.embedding(x).transpose(1, 2)
        x = torch.relu(self.bn(self.conv(x))).transpose(1, 2)
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_embedding_conv_batchnorm_state_dict_with_hints(tmp_path, suffix):
    torch.manual_seed(0)
    net = EmbedConvLSTM()
    stats(net.bn, 1)
    path = tmp_path / f"net{suffix}"
    if suffix == ".pt":
        torch.save(net.state_dict(), path)
    else:
        from safetensors.torch import save_file
        save_file(dict(net.state_dict()), str(path))
    # what a user writes: conv padding 1 and the relu after the norm (forward says so, the keys cannot)
    arch = hints_file(tmp_path, {"order": ["embedding", "conv", "bn", "rnn", "fc"],
                                 "modules": {"conv": {"padding": 1}}, "activations": {"bn": "relu"}})
    model = rnnconvert.read(path, arch=arch)
    assert [layer.kind for layer in model.layers] == ["embedding", "conv1d", "batch_norm", "activation", "lstm",
                                                      "dense"]
    assert model.input.dtype == "int64" and model.layers[1].groups == 2
    said = " ".join(model.source["assumptions"])
    assert "'embedding.weight' [30, 8] without a bias read as nn.Embedding(30, 8)" in said
    assert "nn.Conv1d 'conv' stride, dilation not stored in a state dict: assumed stride 1, dilation 1" in said
    assert "nn.BatchNorm1d 'bn' eps not stored in a state dict: assumed 1e-05" in said
    for T in (1, 6, 11):
        x = ids(3, T, 30, T, pad_right=False).astype(np.int64)
        want = live(net, x)
        assert np.abs(rnnconvert.predict(model, x) - want).max() < TOL
        assert np.abs(runtime.run(path, x, model) - want).max() < TOL


class ConvTimeMajor(nn.Module):
    """Asymmetric padding by F.pad, strides and dilation, a time-major GRU, a norm on the last step."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, stride=2, dilation=2)
        self.gru = nn.GRU(6, 5)
        self.norm = nn.BatchNorm1d(5, affine=False, eps=1e-3)
        self.head = nn.Linear(5, 3)

    def forward(self, x):                          # x [time, batch, 4]
        c = F.pad(x.permute(1, 2, 0), (2, 1))
        c = torch.tanh(self.conv(c)).permute(2, 0, 1)
        y, _ = self.gru(c)
        return self.head(self.norm(y[-1]))


def test_conv_padding_stride_dilation_time_major_and_norm_without_affine(tmp_path):
    torch.manual_seed(3)
    net = ConvTimeMajor()
    stats(net.norm, 4)
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    arch = hints_file(tmp_path, {"batch_first": False, "head": "last_step",
                                 "modules": {"conv": {"padding": [2, 1], "stride": 2, "dilation": 2},
                                             "norm": {"eps": 1e-3}},
                                 "activations": {"conv": "tanh"}})
    model = rnnconvert.read(path, arch=arch)
    conv = model.layers[0]
    assert (conv.padding, conv.pads, conv.strides, conv.dilation) == ("explicit", (2, 1), 2, 2)
    for T in (5, 9, 16):
        x = floats((T, 3, 4), T, 3.0)
        want = live(net, x)
        assert np.abs(rnnconvert.predict(model, x) - want).max() < TOL
        assert np.abs(runtime.run(path, x, model) - want).max() < TOL


def test_hint_problems_are_reported_at_once(runner, tmp_path):
    from rnnconvert.cli.commands import cli
    torch.manual_seed(0)
    path = tmp_path / "net.pt"
    torch.save(EmbedConvLSTM().state_dict(), path)
    arch = hints_file(tmp_path, {"modules": {"conv": {"padding": "full", "stride": 0}, "bn": {"kernel": 3}}})
    res = runner.invoke(cli, ["inspect", str(path), "--arch", arch])
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        f"rnnconvert: error: {arch}: invalid architecture hints: modules.bn: unknown setting(s) kernel; known: "
        "type, padding, stride, dilation, groups, eps; modules.conv.stride: 0, expected a positive integer; "
        "modules.conv.padding: 'full', expected an integer, [left, right], same, valid or causal")


# --------------------------------------------------------------- writing: emitted module vs Keras

keras = pytest.importorskip("keras")
L = keras.layers


def _written_matches_keras(km, model, xs, tmp_path):
    errors = {}
    for suffix in (".pt", ".safetensors"):
        path = tmp_path / f"model{suffix}"
        rnnconvert.write(model, path, emit_module=str(tmp_path / "module.py"))
        back = rnnconvert.read(path)
        assert [layer.kind for layer in back.layers] == [layer.kind for layer in model.layers]
        for x in xs:
            errors[(suffix, x.shape)] = float(np.abs(runtime.run(path, x, back) - km.predict(x, verbose=0)).max())
    assert max(errors.values()) < TOL, errors
    return errors


def test_emitted_module_conv_same_causal_pooling_batchnorm_flatten(tmp_path):
    km = randomise(keras.Sequential([
        keras.Input((12, 4)), L.Conv1D(8, 3, strides=2, padding="same", activation="relu"),
        L.Conv1D(8, 4, padding="same", groups=2), L.Conv1D(6, 2, padding="causal", dilation_rate=2),
        L.BatchNormalization(), L.MaxPooling1D(3, 1, padding="same"), L.AveragePooling1D(2, padding="same"),
        L.LSTM(3, return_sequences=True), L.Flatten()]), seed=31)
    _written_matches_keras(km, canonical_from_keras(km), [floats((3, 12, 4), 1), floats((5, 12, 4), 2, 5.0)],
                           tmp_path)


@pytest.mark.parametrize("pool", ["max", "average"])
def test_emitted_module_variable_length_pooling(tmp_path, pool):
    Pool, Global = ((L.MaxPooling1D, L.GlobalMaxPooling1D) if pool == "max" else
                    (L.AveragePooling1D, L.GlobalAveragePooling1D))
    km = randomise(keras.Sequential([
        keras.Input((None, 3)), L.Conv1D(5, 3, strides=3, padding="same"), Pool(3, 2, padding="same"),
        L.SimpleRNN(4, return_sequences=True), Pool(2), Global(), L.Dense(2)]), seed=41)
    xs = [floats((3, T, 3), T) for T in (9, 14, 20)]
    _written_matches_keras(km, canonical_from_keras(km), xs, tmp_path)


def test_emitted_module_embedding(tmp_path):
    km = randomise(keras.Sequential([
        keras.Input((None,), dtype="int32"), L.Embedding(25, 6), L.Conv1D(4, 3, padding="causal"),
        L.LSTM(5), L.BatchNormalization(), L.Dense(2)]), seed=51)
    model = canonical_from_keras(km, "int32")
    _written_matches_keras(km, model, [ids(3, 7, 25, 1, pad_right=False), ids(2, 12, 25, 2, pad_right=False)],
                           tmp_path)
    code = (tmp_path / "module.py").read_text()
    assert "nn.Embedding(25, 6)" in code and "x.long()" in code and "token ids [batch, time]" in code


# ------------------------------------------------------------------------------------ refusals

@pytest.mark.parametrize("mask", ["masking", "mask_zero"])
def test_masks_are_refused_word_for_word(runner, tmp_path, mask):
    from rnnconvert.cli.commands import cli
    from rnnconvert.formats import keras as K
    if mask == "masking":
        km = keras.Sequential([keras.Input((None, 3)), L.Masking(0.0), L.LSTM(4)])
        want = ("layer 'masking': a Keras Masking layer makes the recurrent layers after it skip masked steps, and "
                "PyTorch modules carry no mask (their RNNs would compute those steps)")
        model = canonical_from_keras(km)
    else:
        km = keras.Sequential([keras.Input((None,), dtype="int32"), L.Embedding(9, 3, mask_zero=True), L.LSTM(4)])
        want = ("layer 'embedding': mask_zero makes the recurrent layers after it skip steps whose id is 0, and "
                "PyTorch modules carry no mask (nn.Embedding's padding_idx is no mask; their RNNs would compute "
                "those steps)")
        model = canonical_from_keras(km, "int32")
    model.layers[0].name = "masking" if mask == "masking" else "embedding"
    src = tmp_path / "model.keras"
    K.write(model, src)
    for dst in ("out.pt", "out.safetensors"):
        res = runner.invoke(cli, [str(src), str(tmp_path / dst)])
        assert res.exit_code == 2, res.output
        assert res.stderr.strip() == f"rnnconvert: error: cannot write as PyTorch modules: {want}"
        assert not (tmp_path / dst).exists()


# ---------------------------------------------------------------------------------- real files

def test_wild_glider_linear_tanh_before_a_time_major_lstm(tmp_path):
    """RL_CrossCountrySoaring's LSTMActor: x = tanh(input_layer(obs)); seq-first nn.LSTM(32, 32);
    output_layer at every step.  The hints are what a user reads off that forward."""
    case = WILD / "pt_glider_decision_maker_lstm32"
    arch = hints_file(tmp_path, {"batch_first": False, "order": ["input_layer", "lstm", "output_layer"],
                                 "activations": {"input_layer": "tanh"}, "head": "sequence"})
    model = rnnconvert.read(next(case.glob("*.pt")), arch=arch)
    x, y = np.load(case / "x.npy"), np.load(case / "y.npy")
    err = np.abs(rnnconvert.predict(model, x) - y).max()
    assert err < 1e-4, err


def test_wild_btc_relu_rnn(tmp_path):
    """bitcoin-rnn's RNNModel: nn.RNN(5, 64, batch_first=True, nonlinearity='relu'); fc(out[:, -1])."""
    case = WILD / "pt_btc_rnn_relu64"
    arch = hints_file(tmp_path, {"batch_first": True, "nonlinearity": "relu", "head": "last_step"})
    model = rnnconvert.read(case / "rnn_model.pth", arch=arch)
    x, y = np.load(case / "x.npy"), np.load(case / "y.npy")
    err = np.abs(rnnconvert.predict(model, x) - y).max()
    assert err < 1e-4, err
