"""ONNX writer and reader for the layers around the recurrent ones: Embedding, Conv1D, pooling, Flatten,
BatchNorm, Masking, Dropout variants.

Oracles: Keras 3 (torch backend) and torch models built here, run live on the same inputs; stored
predictions of the torch.onnx.export / tf2onnx fixtures.  Every written file runs in onnxruntime.
The canonical models of the live frameworks are built by `from_keras` / `from_torch` below straight
from the frameworks' weights (plumbing, not an oracle: a wrong mapping fails against the framework).
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from conftest import FIXTURES

from rnnconvert.model import gates
from rnnconvert import model as M
from rnnconvert.errors import UnsupportedError
from rnnconvert.formats import onnx as ox

ort = pytest.importorskip("onnxruntime")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

TOL = 1e-5


# ---------------------------------------------------------------------------------------------
# helpers

def run_ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(inp.type, np.float32)
    return sess.run(None, {inp.name: np.asarray(x, dtype)})[0]


def op_counts(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


_ACT = {"tanh": M.TANH, "sigmoid": M.SIGMOID, "relu": M.RELU, "linear": M.LINEAR}


def _rec(layer, name=None) -> M.Recurrent:
    """A Keras 3 LSTM/GRU/SimpleRNN (or Bidirectional of one) as a canonical layer."""
    if isinstance(layer, keras.layers.Bidirectional):
        f, r = _rec(layer.forward_layer), _rec(layer.backward_layer)
        return M.Recurrent(layer.name, f.cell, f.hidden, "bidirectional", f.weights + r.weights, f.activations,
                           f.output, layer.merge_mode, "input", f.reset_after, masked_output=f.masked_output)
    cell = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}[type(layer).__name__]
    w = [np.asarray(v) for v in layer.get_weights()]
    kernel, rec, bias = w[0].T, w[1].T, w[2]
    n = kernel.shape[0]
    reset_after = bool(getattr(layer, "reset_after", True))
    if cell == "gru" and reset_after:
        wb, rb = bias[0], bias[1]
    else:
        wb, rb = bias, np.zeros(n, np.float32)
    dw = M.DirectionWeights(gates.to_canonical(kernel, cell, "keras"), gates.to_canonical(rec, cell, "keras"),
                            gates.to_canonical(wb, cell, "keras"), gates.to_canonical(rb, cell, "keras"))
    acts = [_ACT[layer.recurrent_activation.__name__]] if cell != "rnn" else []
    acts += [_ACT[layer.activation.__name__]] * {"lstm": 2, "gru": 1, "rnn": 1}[cell]
    output = "sequence" if layer.return_sequences else "final_state"
    direction = "reverse" if layer.go_backwards else "forward"
    return M.Recurrent(name or layer.name, cell, layer.units, direction, [dw], acts, output,
                       time_order="processing" if layer.go_backwards and layer.return_sequences else "input",
                       reset_after=reset_after,
                       masked_output="zero" if getattr(layer, "zero_output_for_mask", False) else "previous")


def from_keras(model, dtype="float32", time_steps=None) -> M.Model:
    layers = []
    for layer in model.layers:
        t = type(layer).__name__
        w = [np.asarray(v) for v in layer.get_weights()]
        if t == "InputLayer":
            continue
        if t in ("LSTM", "GRU", "SimpleRNN", "Bidirectional"):
            layers.append(_rec(layer))
        elif t == "Dense":
            layers.append(M.Dense(layer.name, w[0], w[1] if len(w) > 1 else None,
                                  _ACT[layer.activation.__name__]))
        elif t == "Embedding":
            layers.append(M.Embedding(layer.name, w[0], bool(layer.mask_zero)))
        elif t == "Masking":
            layers.append(M.Masking(layer.name, float(layer.mask_value)))
        elif t == "Conv1D":
            pad = layer.padding
            layers.append(M.Conv1D(layer.name, w[0], w[1] if len(w) > 1 else None, int(layer.strides[0]),
                                   int(layer.dilation_rate[0]), pad, (0, 0), int(layer.groups),
                                   _ACT[layer.activation.__name__]))
        elif t in ("MaxPooling1D", "AveragePooling1D"):
            layers.append(M.Pooling1D(layer.name, "max" if t.startswith("Max") else "average",
                                      int(layer.pool_size[0]), int(layer.strides[0]), layer.padding))
        elif t in ("GlobalMaxPooling1D", "GlobalAveragePooling1D"):
            layers.append(M.Pooling1D(layer.name, "max" if "Max" in t else "average"))
        elif t == "Flatten":
            layers.append(M.Flatten(layer.name))
        elif t == "BatchNormalization":
            gamma, beta, mean, var = w
            layers.append(M.BatchNorm(layer.name, mean, var, gamma, beta, float(layer.epsilon)))
        elif t in ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout"):
            variant = {"Dropout": "dropout", "SpatialDropout1D": "spatial_dropout1d",
                       "GaussianNoise": "gaussian_noise", "GaussianDropout": "gaussian_dropout",
                       "AlphaDropout": "alpha_dropout"}[t]
            layers.append(M.Dropout(layer.name, float(getattr(layer, "rate", getattr(layer, "stddev", 0.0))),
                                    variant))
        else:
            raise AssertionError(f"test helper does not map {t}")
    first = model.layers[0] if type(model.layers[0]).__name__ != "InputLayer" else model.layers[1]
    features = 0 if dtype != "float32" else int(model.inputs[0].shape[-1])
    return M.Model(layers, M.InputSpec("input", features, dtype, time_steps=time_steps), name=first.name).validate()


def seq(*layers, shape=(None, 3), dtype="float32"):
    keras.utils.set_random_seed(7)
    inp = keras.Input(shape, dtype=dtype)
    y = inp
    for layer in layers:
        y = layer(y)
    m = keras.Model(inp, y)
    rng = np.random.default_rng(3)
    for layer in m.layers:      # non-zero biases and statistics: every weight matters
        ws = layer.get_weights()
        if ws:
            new = [w + rng.normal(0, 0.3, w.shape).astype(np.float32) for w in ws]
            if type(layer).__name__ == "BatchNormalization":
                new[3] = np.abs(new[3]) + 0.5
            layer.set_weights(new)
    return m


def tokens(batch, T, vocab, seed=0, pad=None):
    """Token ids with 0 as padding: pad 'right', 'left' or 'holes' (zeros inside the sequence)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, (batch, T)).astype(np.int64)
    for i in range(batch):
        n = (i * 2 + 1) % T
        if pad == "right":
            x[i, T - n:] = 0
        elif pad == "left":
            x[i, :n] = 0
        elif pad == "holes":
            x[i, rng.choice(T, n, replace=False)] = 0
    return x


def signal(batch, T, F=3, seed=0, masked=None, value=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, T, F)).astype(np.float32)
    x[-1] *= 6
    for i in range(batch):
        n = (i * 2 + 1) % T
        if masked == "right":
            x[i, T - n:] = value
        elif masked == "left":
            x[i, :n] = value
        elif masked == "holes":
            x[i, np.random.default_rng(seed + i).choice(T, n, replace=False)] = value
    return x


def write_and_check(tmp_path, km, model, xs, name="m.onnx"):
    """Write `model`, run it in onnxruntime on every x and compare with Keras's own predictions."""
    path = tmp_path / name
    notes = ox.write(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    worst = 0.0
    for x in xs:
        want = np.asarray(km.predict(x, verbose=0) if hasattr(km, "predict") else km(x))
        got = run_ort(path, x)
        assert got.shape == want.shape, (got.shape, want.shape)
        worst = max(worst, float(np.max(np.abs(got - want))))
    assert worst < TOL, worst
    return path, notes


def round_trip(tmp_path, path, xs):
    """ONNX -> canonical -> ONNX: the same layers, the same outputs."""
    back = ox.read(path)
    again = tmp_path / "again.onnx"
    ox.write(back, again)
    for x in xs:
        np.testing.assert_array_equal(run_ort(again, x), run_ort(path, x))
    assert op_counts(again) == op_counts(path)
    if "Scan" not in op_counts(path):      # the graph alone (no rnnconvert metadata) reads the same model
        proto = onnx.load(str(path))
        del proto.metadata_props[:]
        bare = tmp_path / "bare.onnx"
        onnx.save(proto, str(bare))
        graph_only = ox.read(bare)
        assert [layer.kind for layer in graph_only.layers] == [layer.kind for layer in back.layers
                                                               if layer.kind != "dropout"]
        ox.write(graph_only, again)
        for x in xs:
            np.testing.assert_allclose(run_ort(again, x), run_ort(path, x), atol=TOL, rtol=0)
    return back


# ---------------------------------------------------------------------------------------------
# Embedding and masks

def test_embedding_without_mask_is_gather_and_one_native_node(tmp_path):
    L = keras.layers
    km = seq(L.Embedding(20, 4), L.LSTM(5), L.Dense(2), shape=(None,), dtype="int64")
    model = from_keras(km, "int64")
    xs = [tokens(3, 7, 20, 1), tokens(2, 12, 20, 2)]
    path, notes = write_and_check(tmp_path, km, model, xs)
    counts = op_counts(path)
    assert counts["Gather"] == 1 and counts["LSTM"] == 1 and "Scan" not in counts
    g = onnx.load(str(path)).graph
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim] == ["batch", "time"]
    assert any("Gather" in n for n in notes)
    back = round_trip(tmp_path, path, xs)
    assert [type(layer).__name__ for layer in back.layers] == ["Embedding", "Recurrent", "Dense"]
    np.testing.assert_array_equal(back.layers[0].table, model.layers[0].table)


@pytest.mark.parametrize("rnn", ["LSTM", "GRU", "SimpleRNN", "GRU_reset_before", "BiGRU"])
@pytest.mark.parametrize("pad", ["right", "left", "holes"])
def test_mask_zero_skips_masked_steps_exactly(tmp_path, rnn, pad):
    L = keras.layers
    cls = {"LSTM": lambda **k: L.LSTM(5, **k), "GRU": lambda **k: L.GRU(5, **k),
           "SimpleRNN": lambda **k: L.SimpleRNN(5, **k), "GRU_reset_before": lambda **k: L.GRU(5, reset_after=False, **k),
           "BiGRU": lambda **k: L.Bidirectional(L.GRU(4, **k))}[rnn]
    km = seq(L.Embedding(30, 4, mask_zero=True), cls(return_sequences=True), cls(), L.Dense(2),
             shape=(None,), dtype="int64")
    model = from_keras(km, "int64")
    xs = [tokens(4, 7, 30, 1, pad), tokens(5, 10, 30, 2, pad), tokens(3, 1, 30, 3)]
    path, notes = write_and_check(tmp_path, km, model, xs)
    counts = op_counts(path)
    assert counts["Scan"] == 2 * (2 if rnn == "BiGRU" else 1) and not counts.keys() & {"LSTM", "GRU", "RNN"}
    assert sum("masked steps are skipped" in n for n in notes) == 2
    round_trip(tmp_path, path, xs)


@pytest.mark.parametrize("pad", ["right", "left", "holes"])
@pytest.mark.parametrize("value", [0.0, 0.5])
def test_masking_sequence_output_repeats_previous_output(tmp_path, pad, value):
    """Masked steps of a returned sequence: Keras repeats the previous output (zeros before the first)."""
    L = keras.layers
    km = seq(L.Masking(value), L.LSTM(4, return_sequences=True), L.Dense(3, activation="tanh"),
             L.SimpleRNN(3, return_sequences=True, go_backwards=True))
    model = from_keras(km)
    xs = [signal(4, 6, masked=pad, value=value), signal(3, 9, seed=5, masked=pad, value=value)]
    path, _ = write_and_check(tmp_path, km, model, xs)
    assert op_counts(path)["Scan"] == 2
    round_trip(tmp_path, path, xs)


def test_masking_with_batchnorm_dropout_between(tmp_path):
    L = keras.layers
    km = seq(L.Masking(0.0), L.BatchNormalization(), L.SpatialDropout1D(0.2), L.GRU(4), L.Dense(2))
    model = from_keras(km)
    xs = [signal(4, 6, masked="holes"), signal(3, 8, seed=2, masked="left")]
    path, _ = write_and_check(tmp_path, km, model, xs)
    counts = op_counts(path)
    assert counts["BatchNormalization"] == 1 and counts["Scan"] == 1
    back = round_trip(tmp_path, path, xs)
    assert back.layers[2].variant == "spatial_dropout1d"


def test_bidirectional_sequence_outputs_zeros_at_masked_steps(tmp_path):
    """Keras's Bidirectional returning sequences zeroes masked steps (zero_output_for_mask)."""
    L = keras.layers
    km = seq(L.Embedding(30, 4, mask_zero=True), L.Bidirectional(L.LSTM(3, return_sequences=True)),
             shape=(None,), dtype="int64")
    model = from_keras(km, "int64")
    assert model.layers[1].masked_output == "zero"
    xs = [tokens(4, 7, 30, 1, pad) for pad in ("right", "left", "holes")]
    path, _ = write_and_check(tmp_path, km, model, xs)
    assert op_counts(path)["Scan"] == 2
    assert round_trip(tmp_path, path, xs).layers[1].masked_output == "zero"


def test_masked_global_average_and_a_convolution_dropping_the_mask(tmp_path):
    """The mean of the unmasked steps only; a Conv1D after Masking drops the mask, as Keras does."""
    L = keras.layers
    km = seq(L.Masking(0.0), L.LSTM(4, return_sequences=True), L.GlobalAveragePooling1D(), L.Dense(2))
    xs = [signal(4, 6, masked=pad) for pad in ("right", "left", "holes")]
    path, _ = write_and_check(tmp_path, km, from_keras(km), xs)
    assert op_counts(path)["Scan"] == 1 and op_counts(path)["ReduceSum"] == 2
    round_trip(tmp_path, path, xs)
    km = seq(L.Masking(0.0), L.Conv1D(3, 2, padding="causal"), L.GRU(4), L.Dense(2))
    path, _ = write_and_check(tmp_path, km, from_keras(km), xs, "conv.onnx")
    assert op_counts(path)["GRU"] == 1 and "Scan" not in op_counts(path)


# ---------------------------------------------------------------------------------------------
# Conv1D, pooling, Flatten, BatchNorm

CONVS = [dict(padding="valid"), dict(padding="same"), dict(padding="causal"),
         dict(padding="valid", strides=2), dict(padding="same", strides=2), dict(padding="same", strides=3),
         dict(padding="causal", dilation_rate=2), dict(padding="same", dilation_rate=2),
         dict(padding="valid", groups=2, kernel_size=2), dict(padding="same", kernel_size=1, strides=2),
         dict(padding="same", kernel_size=4, strides=2), dict(padding="same", kernel_size=4)]


@pytest.mark.parametrize("cfg", CONVS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_conv1d_matches_keras(tmp_path, cfg):
    L = keras.layers
    cfg = {"kernel_size": 3, **cfg}
    km = seq(L.Conv1D(4, activation="relu", **cfg), L.LSTM(5, return_sequences=True), L.Dense(2), shape=(None, 4))
    model = from_keras(km)
    xs = [signal(3, T, 4, seed=T) for T in (7, 8, 9, 12)]
    path, notes = write_and_check(tmp_path, km, model, xs)
    counts = op_counts(path)
    # into [batch, channels, time], into time-major for the LSTM, back to [batch, time, features]
    assert counts["Conv"] == 1 and counts["LSTM"] == 1 and counts["Transpose"] == 3 and "Scan" not in counts
    back = round_trip(tmp_path, path, xs)
    conv = back.layers[0]
    assert (conv.padding, conv.strides, conv.dilation, conv.groups) == (
        cfg["padding"], cfg.get("strides", 1), cfg.get("dilation_rate", 1), cfg.get("groups", 1))


POOLS = [("MaxPooling1D", dict(pool_size=2)), ("MaxPooling1D", dict(pool_size=3, strides=2, padding="same")),
         ("AveragePooling1D", dict(pool_size=2, padding="same")),
         ("AveragePooling1D", dict(pool_size=3, strides=1, padding="valid"))]


@pytest.mark.parametrize("kind,cfg", POOLS, ids=lambda c: str(c))
def test_conv_pool_chain_shares_channels_first_layout(tmp_path, kind, cfg):
    L = keras.layers
    km = seq(L.Conv1D(4, 2, padding="causal"), L.BatchNormalization(), getattr(L, kind)(**cfg), L.GRU(3),
             shape=(None, 3))
    model = from_keras(km)
    xs = [signal(3, T, seed=T) for T in (6, 7, 9)]
    path, _ = write_and_check(tmp_path, km, model, xs)
    counts = op_counts(path)
    op = "MaxPool" if kind.startswith("Max") else "AveragePool"
    assert counts[op] == 1 and counts["Conv"] == 1 and counts["BatchNormalization"] == 1 and counts["GRU"] == 1
    assert counts["Transpose"] == 2       # into [batch, channels, time] once, out to time-major once
    round_trip(tmp_path, path, xs)


@pytest.mark.parametrize("mode", ["average", "max"])
def test_same_pooling_with_strides_leaves_padding_out(tmp_path, mode):
    """'same' windows past the end take no padded steps (TensorFlow and tf.keras 2 do this; Keras 3 on
    the torch backend averages differently there).  Oracle: torch pooling over the padded sequence,
    the mean divided by the count of real steps, the max padded with -inf."""
    F = torch.nn.functional
    model = M.Model([M.Pooling1D("pool", mode, 3, 2, "same")], M.InputSpec("x", 3))
    path = tmp_path / "pool.onnx"
    ox.write(model, path)
    assert op_counts(path)["MaxPool" if mode == "max" else "AveragePool"] == 1
    for T in (5, 6, 7, 8):
        x = signal(3, T, seed=T)
        out = -(-T // 2)
        total = max((out - 1) * 2 + 3 - T, 0)
        pads = (total // 2, total - total // 2)
        t = torch.from_numpy(x).transpose(1, 2).double()
        if mode == "max":
            want = F.max_pool1d(F.pad(t, pads, value=-np.inf), 3, 2)
        else:
            want = F.avg_pool1d(F.pad(t, pads), 3, 2) / F.avg_pool1d(F.pad(torch.ones_like(t), pads), 3, 2)
        np.testing.assert_allclose(run_ort(path, x), want.transpose(1, 2).numpy(), atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", ["GlobalMaxPooling1D", "GlobalAveragePooling1D"])
def test_global_pooling_over_recurrent_sequence(tmp_path, kind):
    L = keras.layers
    km = seq(L.LSTM(5, return_sequences=True), getattr(L, kind)(), L.Dense(2))
    model = from_keras(km)
    xs = [signal(3, 5), signal(2, 8, seed=1)]
    path, _ = write_and_check(tmp_path, km, model, xs)
    assert op_counts(path)["ReduceMax" if "Max" in kind else "ReduceMean"] == 1
    round_trip(tmp_path, path, xs)


def test_flatten_after_recurrent_sequence(tmp_path):
    L = keras.layers
    km = seq(L.GRU(4, return_sequences=True), L.Flatten(), L.Dense(3), shape=(6, 3))
    model = from_keras(km, time_steps=6)
    xs = [signal(4, 6), signal(1, 6, seed=3)]
    path, _ = write_and_check(tmp_path, km, model, xs)
    assert op_counts(path)["Reshape"] == 1
    out = onnx.load(str(path)).graph.output[0]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 3]
    round_trip(tmp_path, path, xs)


def test_batchnorm_after_final_state_and_dropout_variants(tmp_path):
    L = keras.layers
    km = seq(L.GaussianNoise(0.3), L.LSTM(5), L.BatchNormalization(epsilon=0.01), L.Dropout(0.5), L.Dense(2))
    model = from_keras(km)
    xs = [signal(3, 5), signal(2, 9, seed=1)]
    path, notes = write_and_check(tmp_path, km, model, xs)
    counts = op_counts(path)
    assert counts["BatchNormalization"] == 1 and counts["LSTM"] == 1 and counts["Transpose"] == 1
    back = round_trip(tmp_path, path, xs)
    assert [getattr(layer, "variant", None) for layer in back.layers if isinstance(layer, M.Dropout)] == \
        ["gaussian_noise", "dropout"]
    assert back.layers[2].epsilon == pytest.approx(0.01)


# ---------------------------------------------------------------------------------------------
# torch modules, live

def _torch_rec(mod: "torch.nn.Module", name: str, output="sequence") -> M.Recurrent:
    cell = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}[type(mod).__name__]
    sd = {k: v.detach().numpy() for k, v in mod.state_dict().items()}
    w = M.DirectionWeights(sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"], sd["bias_hh_l0"])
    acts = {"lstm": [M.SIGMOID, M.TANH, M.TANH], "gru": [M.SIGMOID, M.TANH], "rnn": [M.TANH]}[cell]
    return M.Recurrent(name, cell, mod.hidden_size, "forward", [w], acts, output)


def _torch_conv(conv, name) -> M.Conv1D:
    pad = conv.padding
    kernel = np.ascontiguousarray(conv.weight.detach().numpy().transpose(2, 1, 0))
    bias = None if conv.bias is None else conv.bias.detach().numpy()
    if pad == "same":
        return M.Conv1D(name, kernel, bias, 1, conv.dilation[0], "same", (0, 0), conv.groups, M.RELU)
    return M.Conv1D(name, kernel, bias, conv.stride[0], conv.dilation[0], "explicit", (pad[0], pad[0]), conv.groups,
                    M.RELU)


class EmbedLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.lstm, self.fc = torch.nn.Embedding(40, 6), torch.nn.LSTM(6, 5, batch_first=True), torch.nn.Linear(5, 3)

    def forward(self, ids):
        return self.fc(self.lstm(self.emb(ids))[0][:, -1])


class ConvGRU(torch.nn.Module):
    def __init__(self, **conv):
        super().__init__()
        self.conv, self.gru = torch.nn.Conv1d(4, 6, 3, **conv), torch.nn.GRU(6, 5, batch_first=True)

    def forward(self, x):
        return self.gru(torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2))[0]


class NormLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bn, self.lstm = torch.nn.BatchNorm1d(4), torch.nn.LSTM(4, 5, batch_first=True)

    def forward(self, x):
        return self.lstm(self.bn(x.transpose(1, 2)).transpose(1, 2))[0]


def _torch_seeded(mod):
    torch.manual_seed(11)
    mod = mod.eval()
    with torch.no_grad():
        for name, p in mod.named_parameters():
            if "bias" in name:
                p.add_(torch.randn_like(p) * 0.3)
        for m in mod.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
    return mod


def _torch_check(tmp_path, mod, model, xs):
    path = tmp_path / "t.onnx"
    ox.write(model, path)
    with torch.no_grad():
        for x in xs:
            want = mod(torch.from_numpy(x)).numpy()
            np.testing.assert_allclose(run_ort(path, x), want, atol=TOL, rtol=0)
    return path


def test_torch_embedding_lstm_linear(tmp_path):
    mod = _torch_seeded(EmbedLSTM())
    model = M.Model([M.Embedding("emb", mod.emb.weight.detach().numpy()), _torch_rec(mod.lstm, "lstm", "last_step"),
                     M.Dense("fc", mod.fc.weight.detach().numpy().T, mod.fc.bias.detach().numpy())],
                    M.InputSpec("ids", 0, "int64")).validate()
    path = _torch_check(tmp_path, mod, model, [tokens(3, 7, 40, 1), tokens(2, 10, 40, 2)])
    assert op_counts(path)["LSTM"] == 1 and op_counts(path)["Gather"] == 2    # the table, then out[:, -1]


@pytest.mark.parametrize("conv", [dict(padding=1, stride=2), dict(padding=2, dilation=2), dict(padding="same"),
                                  dict(padding=0, groups=2), dict(padding="same", dilation=3)], ids=str)
def test_torch_conv1d_relu_gru(tmp_path, conv):
    mod = _torch_seeded(ConvGRU(**conv))
    model = M.Model([_torch_conv(mod.conv, "conv"), _torch_rec(mod.gru, "gru")], M.InputSpec("x", 4)).validate()
    path = _torch_check(tmp_path, mod, model, [signal(3, T, 4, seed=T) for T in (7, 8, 11)])
    assert op_counts(path)["Conv"] == 1 and op_counts(path)["GRU"] == 1


def test_torch_batchnorm1d_lstm(tmp_path):
    mod = _torch_seeded(NormLSTM())
    bn = mod.bn
    model = M.Model([M.BatchNorm("bn", bn.running_mean.numpy(), bn.running_var.numpy(), bn.weight.detach().numpy(),
                                 bn.bias.detach().numpy(), bn.eps), _torch_rec(mod.lstm, "lstm")],
                    M.InputSpec("x", 4)).validate()
    path = _torch_check(tmp_path, mod, model, [signal(3, 6, 4), signal(2, 9, 4, seed=1)])
    assert op_counts(path)["BatchNormalization"] == 1 and op_counts(path)["LSTM"] == 1


# ---------------------------------------------------------------------------------------------
# reading torch.onnx.export and tf2onnx files with front-end layers

LAYER_FIXTURES = {
    "torch_onnx/embed_lstm_last_linear": ["embedding", "lstm", "dense"],
    "torch_onnx/conv1d_relu_gru": ["conv1d", "gru"],
    "torch_onnx/batchnorm_lstm": ["batch_norm", "lstm"],
    "tf2onnx/embed_lstm_dense": ["embedding", "lstm", "dense"],
    "tf2onnx/conv1d_causal_lstm": ["conv1d", "lstm", "dense"],
}


@pytest.mark.parametrize("case", sorted(LAYER_FIXTURES))
def test_reading_exported_front_layers_predicts_stored_outputs(tmp_path, case):
    from rnnconvert.reference import network as reference
    folder = FIXTURES / case
    model = ox.read(folder / "model.onnx")
    assert [layer.kind for layer in model.layers] == LAYER_FIXTURES[case]
    xs, ys = np.load(folder / "inputs.npz"), np.load(folder / "outputs.npz")
    path = tmp_path / "again.onnx"
    ox.write(model, path)
    for k in xs.files:
        np.testing.assert_allclose(reference.forward(model, xs[k]), ys[k], atol=TOL, rtol=0, err_msg=k)
        np.testing.assert_allclose(run_ort(path, xs[k]), ys[k], atol=TOL, rtol=0, err_msg=k)
    assert "Scan" not in op_counts(path)


def test_reading_exported_conv_and_embedding_settings():
    conv = ox.read(FIXTURES / "torch_onnx/conv1d_relu_gru/model.onnx").layers[0]
    assert (conv.padding, conv.pads, conv.strides, conv.activation.name) == ("explicit", (1, 1), 2, "relu")
    conv = ox.read(FIXTURES / "tf2onnx/conv1d_causal_lstm/model.onnx").layers[0]
    assert (conv.padding, conv.strides, conv.kernel.shape, conv.activation.name) == ("causal", 1, (3, 3, 4), "relu")
    model = ox.read(FIXTURES / "tf2onnx/embed_lstm_dense/model.onnx")
    assert (model.input.dtype, model.input.features, model.layers[0].table.shape) == ("int64", 0, (50, 6))


# ---------------------------------------------------------------------------------------------
# real-world Keras files with embeddings and convolutions (only when ../shared/wild is present)

WILD_KERAS = ["k209_imdb_embed_lstm", "k224_embed_bigru_reset_before", "k3132_h5_embed_gru",
              "tf214_sunspot_conv1d_lstm3"]


@pytest.mark.parametrize("name", WILD_KERAS)
def test_wild_keras_front_layers_convert_to_onnx(name, runner, tmp_path):
    import json

    from conftest import WILD

    from rnnconvert.cli.commands import cli
    folder = WILD / name
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    src = folder / json.loads((folder / "case.json").read_text())["path"].split("/")[-1]
    dst = tmp_path / "model.onnx"
    res = runner.invoke(cli, [str(src), str(dst)])
    assert res.exit_code == 0, res.output + (res.stderr if res.stderr_bytes else "")
    assert "EQUIVALENT" in res.output
    counts = op_counts(dst)
    assert counts["Gather" if name.startswith("k") else "Conv"] >= 1 and not counts.keys() & {"Loop", "If"}
    x, y = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    np.testing.assert_allclose(run_ort(dst, x), y, atol=1e-4, rtol=0)


def test_int32_time_major_token_ids(tmp_path):
    """A time-major model over int32 ids: the graph input is int32 [time, batch]; torch computes the oracle."""
    mod = _torch_seeded(EmbedLSTM())
    model = M.Model([M.Embedding("emb", mod.emb.weight.detach().numpy()), _torch_rec(mod.lstm, "lstm", "last_step"),
                     M.Dense("fc", mod.fc.weight.detach().numpy().T, mod.fc.bias.detach().numpy())],
                    M.InputSpec("ids", 0, "int32", layout="time_batch_feature")).validate()
    path = tmp_path / "t.onnx"
    ox.write(model, path)
    inp = onnx.load(str(path)).graph.input[0]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["time", "batch"]
    for x in (tokens(3, 7, 40, 1), tokens(2, 4, 40, 2)):
        with torch.no_grad():
            want = mod(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(run_ort(path, x.T.astype(np.int32)), want, atol=TOL, rtol=0)
    back = ox.read(path)
    assert (back.input.dtype, back.input.layout) == ("int32", "time_batch_feature")


def _conv_graph(tmp_path, **attrs):
    """torch.onnx.export-like graph: Transpose, Conv (attrs), Transpose, LSTM, with one odd Conv setting."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=a).astype(np.float32), n) for n, a in
             (("w", (4, 3, 3)), ("W", (1, 2, 4)), ("R", (1, 2, 2)))]
    nodes = [helper.make_node("Transpose", ["x"], ["xc"], perm=[0, 2, 1]),
             helper.make_node("Conv", ["xc", "w"], ["c"], name="conv", kernel_shape=[3], **attrs),
             helper.make_node("Transpose", ["c"], ["ct"], perm=[2, 0, 1]),
             helper.make_node("RNN", ["ct", "W", "R"], ["y"], hidden_size=2, name="rnn"),
             helper.make_node("Squeeze", ["y", "one"], ["yb"]),
             helper.make_node("Transpose", ["yb"], ["out"], perm=[1, 0, 2])]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", 3])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["b", "t", 2])], inits)
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("attrs,message", [
    (dict(auto_pad="SAME_LOWER"), "Conv node 'conv': auto_pad SAME_LOWER (after a Pad: False); rnnconvert reads "
                                  "convolutions with explicit pads, VALID, or SAME_UPPER (Keras 'same') on an "
                                  "unpadded signal; to convert one recurrent layer on its own, pass --layer NAME "
                                  "(recurrent layers found: rnn (rnn))"),
    (dict(pads=[1, 1]), None),
])
def test_conv_settings_read_or_refused_through_the_cli(tmp_path, runner, attrs, message):
    from rnnconvert.cli.commands import cli
    src = _conv_graph(tmp_path, **attrs)
    res = runner.invoke(cli, [str(src), str(tmp_path / "out.rnnc")])
    if message is None:
        assert res.exit_code == 0, res.output
        assert ox.read(src).layers[0].pads == (1, 1)
    else:
        assert res.exit_code == 2
        assert res.stderr.strip() == f"rnnconvert: error: {src}: {message}"


def test_same_padding_with_strides_and_dilation_refused_through_the_cli(tmp_path, runner):
    import rnnconvert
    from rnnconvert.cli.commands import cli
    rng = np.random.default_rng(0)
    conv = M.Conv1D("conv", rng.normal(size=(3, 3, 4)).astype(np.float32), None, 2, 2, "same")
    rnn = M.Recurrent("rnn", "rnn", 2, "forward", [M.DirectionWeights(
        rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(2, 2)).astype(np.float32),
        np.zeros(2, np.float32), np.zeros(2, np.float32))], [M.TANH])
    src = tmp_path / "m.rnnc"
    rnnconvert.write(M.Model([conv, rnn], M.InputSpec("x", 3)), src)
    res = runner.invoke(cli, [str(src), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert res.stderr.strip() == ("rnnconvert: error: layer 'conv': 'same' padding with both strides and dilation "
                                  "above 1 has pads that depend on the length, and onnxruntime's auto_pad takes no "
                                  "dilation; Keras and PyTorch do not build such a layer")


def test_wild_torch_conv_prelu_lstm_reads_and_converts(tmp_path):
    """Conv1d (stride 2) + PReLU twice, LSTM, Gemm, exported by torch 1.11 (opset 11)."""
    from conftest import WILD

    from rnnconvert.reference import network as reference
    folder = WILD / "onnx_fairtalk_conv_lstm_pt111"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    model = ox.read(folder / "lstm.onnx", output="output")
    assert [layer.kind for layer in model.layers] == ["conv1d", "conv1d", "lstm", "dense"]
    assert model.layers[0].activation.name == "leaky_relu" and model.layers[0].strides == 2
    x, y = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    np.testing.assert_allclose(reference.forward(model, x), y, atol=1e-4, rtol=0)
    out = tmp_path / "again.onnx"
    ox.write(model, out)
    assert op_counts(out)["Conv"] == 2 and op_counts(out)["LSTM"] == 1
    np.testing.assert_allclose(run_ort(out, x), y, atol=1e-4, rtol=0)


class _PoolHead(torch.nn.Module):
    """Conv1d -> MaxPool1d/AvgPool1d -> GRU -> global pooling over time -> Linear, as a torch forward writes it."""

    def __init__(self, pool, glob):
        super().__init__()
        self.conv, self.gru, self.fc = torch.nn.Conv1d(3, 4, 2), torch.nn.GRU(4, 5, batch_first=True), torch.nn.Linear(5, 2)
        self.pool, self.glob = pool, glob

    def forward(self, x):
        y = self.pool(self.conv(x.transpose(1, 2))).transpose(1, 2)
        y = self.gru(y)[0]
        if self.glob == "mean":
            y = y.mean(dim=1)
        elif self.glob == "max":
            y = y.max(dim=1)[0]
        else:
            y = self.glob(y.transpose(1, 2)).squeeze(-1)
        return self.fc(y)


@pytest.mark.parametrize("pool,glob,ops", [
    (torch.nn.MaxPool1d(2), "mean", {"MaxPool", "ReduceMean"}),
    (torch.nn.AvgPool1d(3, 2), torch.nn.AdaptiveAvgPool1d(1), {"AveragePool", "GlobalAveragePool"}),
    (torch.nn.MaxPool1d(2, 1), torch.nn.AdaptiveMaxPool1d(1), {"MaxPool", "GlobalMaxPool"}),
    (torch.nn.Identity(), "max", {"ReduceMax"}),
], ids=["maxpool-mean", "avgpool-adaptiveavg", "maxpool-adaptivemax", "max-over-time"])
def test_reading_torch_exported_pooling(tmp_path, pool, glob, ops):
    import warnings

    from rnnconvert.reference import network as reference
    mod = _torch_seeded(_PoolHead(pool, glob))
    src = tmp_path / "pool.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(mod, (torch.from_numpy(signal(2, 9)),), str(src), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch", 1: "time"}, "y": {0: "batch"}}, opset_version=14,
                          dynamo=False)
    assert ops <= set(op_counts(src))
    model = ox.read(src)
    kinds = [layer.kind for layer in model.layers]
    assert kinds[-3:] == ["gru", "pooling1d", "dense"] and kinds.count("pooling1d") == 2 - (glob == "max")
    out = tmp_path / "again.onnx"
    ox.write(model, out)
    for x in (signal(3, 9), signal(2, 12, seed=4)):
        with torch.no_grad():
            want = mod(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(reference.forward(model, x), want, atol=TOL, rtol=0)
        np.testing.assert_allclose(run_ort(out, x), want, atol=TOL, rtol=0)


def test_stateful_refuses_layers_that_mix_time_steps_and_keeps_embeddings(tmp_path):
    import rnnconvert
    L = keras.layers
    km = seq(L.Conv1D(3, 2, padding="causal", name="conv1d"), L.MaxPooling1D(2, name="max_pooling1d"), L.LSTM(4), shape=(None, 3))
    with pytest.raises(UnsupportedError) as e:
        rnnconvert.write(from_keras(km), tmp_path / "s.onnx", stateful=True)
    assert str(e.value) == (f"{tmp_path / 's.onnx'}: --stateful streams one step at a time, but layer 'conv1d' (conv1d), layer "
                            "'max_pooling1d' (pooling1d) combine several time steps (or a mask over the whole "
                            "sequence), so chunks would not add up to the whole call; write this model without "
                            "--stateful")
    km = seq(L.Embedding(20, 4), L.BatchNormalization(), L.GRU(3, return_sequences=True), shape=(None,),
             dtype="int64")
    path = tmp_path / "e.onnx"
    rnnconvert.write(from_keras(km, "int64"), path, stateful=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = tokens(2, 6, 20, 3)
    h = np.zeros((1, 2, 3), np.float32)
    names = [i.name for i in sess.get_inputs()]
    chunks = []
    for lo, hi in ((0, 1), (1, 4), (4, 6)):
        y, h = sess.run(None, {names[0]: x[:, lo:hi], names[1]: h})[:2]
        chunks.append(y)
    np.testing.assert_allclose(np.concatenate(chunks, axis=1), km.predict(x, verbose=0), atol=TOL, rtol=0)
