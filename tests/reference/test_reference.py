"""The reference forward pass against independent oracles.

PyTorch (nn.LSTM, nn.GRU, nn.RNN), Keras 3 on its torch backend and onnxruntime each compute the
model with their own code; the tests map their weights into the canonical model (the mapping lives
here, in the tests) and compare.  The frameworks run in float32 and the reference in float64, so
the comparison allows atol 1e-5, rtol 1e-4; the float64 PyTorch tests are tight.  Inputs have
batch > 1, lengths 1 to 100, and one batch row scaled x6 so that gates saturate.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

from rnnconvert.model import gates
from rnnconvert import model as model_module
from rnnconvert.errors import InputError, UnsupportedError
from rnnconvert.model import (HARD_SIGMOID_KERAS2, HARD_SIGMOID_KERAS3, LINEAR, RELU, SELU, SIGMOID, TANH,
    Activation, ActivationLayer, Dense, DirectionWeights, Dropout, InputSpec, Layer, Model, Recurrent)
from rnnconvert.reference.network import State, activate, forward, forward_with_states, run_layer

os.environ["KERAS_BACKEND"] = "torch"     # must be set before keras is first imported

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword"),
    pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN"),
]

ATOL, RTOL = 1e-5, 1e-4
F, B, H = 3, 3, 5                          # features, batch, hidden
LENGTHS = (1, 7, 100)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def keras():
    pytest.importorskip("torch")
    return pytest.importorskip("keras")


def sequence(T, batch=B, features=F, seed=0, saturate=True):
    x = np.random.default_rng(seed).standard_normal((batch, T, features)).astype(np.float32)
    if saturate:
        x[-1] *= 6
    return x


def stack(*layers, features=F, layout="batch_time_feature"):
    return Model(list(layers), InputSpec(features=features, layout=layout))


def assert_close(actual, expected, atol=ATOL, rtol=RTOL):
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol)


# ------------------------------------------------------------------------------------ PyTorch
# PyTorch's gate orders (LSTM ifgo, GRU rzn) are the canonical ones; GRU is reset_after with
# two biases; weight_ih is [gates*H, input] like W.

TORCH_ACTIVATIONS = {"lstm": [SIGMOID, TANH, TANH], "gru": [SIGMOID, TANH], "rnn_tanh": [TANH],
                     "rnn_relu": [RELU]}


def torch_module(torch, cell, bidirectional=False, num_layers=1, proj_size=0, batch_first=True,
                 seed=0):
    torch.manual_seed(seed)
    options = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    if cell == "lstm":
        module = torch.nn.LSTM(F, H, proj_size=proj_size, **options)
    elif cell == "gru":
        module = torch.nn.GRU(F, H, **options)
    else:
        module = torch.nn.RNN(F, H, nonlinearity=cell.split("_")[1], **options)
    return module.eval()


def torch_states(torch, module, batch=B, seed=1):
    """Non-zero initial states as PyTorch takes them: [layers*directions, batch, S] (and c)."""
    rng = np.random.default_rng(seed)
    n = module.num_layers * (2 if module.bidirectional else 1)
    S = getattr(module, "proj_size", 0) or H
    h0 = (0.5 * rng.standard_normal((n, batch, S))).astype(np.float32)
    c0 = (0.5 * rng.standard_normal((n, batch, H))).astype(np.float32)
    return h0, (c0 if isinstance(module, torch.nn.LSTM) else None)


def torch_run(torch, module, x, h0=None, c0=None):
    """PyTorch's output and final states (h_n, c_n) as numpy."""
    state = None
    if h0 is not None:
        state = torch.from_numpy(h0) if c0 is None else (torch.from_numpy(h0), torch.from_numpy(c0))
    with torch.no_grad():
        y, final = module(torch.from_numpy(np.ascontiguousarray(x)), state)
    if isinstance(final, tuple):
        return y.numpy(), final[0].numpy(), final[1].numpy()
    return y.numpy(), final.numpy(), None


def torch_layers(module, cell, output="sequence", h0=None, c0=None, directions=None):
    """The canonical layers of a PyTorch module (one per num_layers); `directions` picks some."""
    kind = cell.split("_")[0]
    n_dirs = 2 if module.bidirectional else 1
    directions = directions or (("forward", "reverse") if n_dirs == 2 else ("forward",))
    layers = []
    for k in range(module.num_layers):
        weights = []
        for d, suffix in ((0, ""), (1, "_reverse"))[:n_dirs]:
            if ("forward", "reverse")[d] not in directions:
                continue

            def p(name):
                return getattr(module, f"{name}_l{k}{suffix}").detach().numpy().copy()

            weights.append(DirectionWeights(
                W=gates.to_canonical(p("weight_ih"), kind, "torch"),
                R=gates.to_canonical(p("weight_hh"), kind, "torch"),
                Wb=gates.to_canonical(p("bias_ih"), kind, "torch"),
                Rb=gates.to_canonical(p("bias_hh"), kind, "torch"),
                h0=None if h0 is None else h0[k * n_dirs + d],
                c0=None if c0 is None else c0[k * n_dirs + d],
                proj=p("weight_hr") if getattr(module, "proj_size", 0) else None))
        direction = "bidirectional" if len(weights) == 2 else directions[0]
        last = k == module.num_layers - 1
        layers.append(Recurrent(f"{kind}_{k}", kind, H, direction, weights, TORCH_ACTIVATIONS[cell],
                                output=output if last else "sequence"))
    return layers


def torch_expected(y, h_n, output, direction, S):
    """What PyTorch says the canonical layer returns: from y [B, T, dirs*S] and h_n [dirs, B, S]."""
    if direction == "reverse":
        y, h_n = y[..., S:], h_n[1:]
    if output == "sequence":
        return y
    if output == "last_step":
        return y[:, -1]
    return np.concatenate(list(h_n[-2:] if direction == "bidirectional" else h_n[-1:]), axis=-1)


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("output", ["sequence", "last_step", "final_state"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_torch(torch, cell, direction, output, T):
    module = torch_module(torch, cell, bidirectional=direction != "forward")
    h0, c0 = torch_states(torch, module)
    x = sequence(T)
    y, h_n, _ = torch_run(torch, module, x, h0, c0)
    layers = torch_layers(module, cell, output, h0, c0, directions=[direction] if direction == "reverse" else None)
    assert_close(forward(stack(*layers), x), torch_expected(y, h_n, output, direction, H))


@pytest.mark.parametrize("cell, options", [("lstm", {}), ("lstm", {"proj_size": 2}), ("gru", {}),
                                           ("rnn_tanh", {}), ("rnn_relu", {})])
def test_torch_float64_is_tight(torch, cell, options):
    module = torch_module(torch, cell, bidirectional=True, num_layers=2, **options).double()
    h0, c0 = (None if s is None else s.astype(np.float64) for s in torch_states(torch, module))
    x = sequence(40).astype(np.float64)
    y, _, _ = torch_run(torch, module, x, h0, c0)
    assert_close(forward(stack(*torch_layers(module, cell, "sequence", h0, c0)), x), y, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("output", ["sequence", "last_step", "final_state"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_torch_lstm_projection(torch, bidirectional, output):
    module = torch_module(torch, "lstm", bidirectional=bidirectional, proj_size=2)
    h0, c0 = torch_states(torch, module)
    x = sequence(30)
    y, h_n, _ = torch_run(torch, module, x, h0, c0)
    (layer,) = torch_layers(module, "lstm", output, h0, c0)
    assert layer.state_size == 2 and layer.weights[0].R.shape == (4 * H, 2)
    direction = "bidirectional" if bidirectional else "forward"
    assert_close(forward(stack(layer), x), torch_expected(y, h_n, output, direction, 2))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_torch_two_layers(torch, cell):
    module = torch_module(torch, cell, bidirectional=True, num_layers=2)
    h0, c0 = torch_states(torch, module)
    x = sequence(25)
    y, _, _ = torch_run(torch, module, x, h0, c0)
    assert_close(forward(stack(*torch_layers(module, cell, "last_step", h0, c0)), x), y[:, -1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_initial_state_of_shape_state_broadcasts_over_the_batch(torch, cell):
    module = torch_module(torch, cell, bidirectional=True)
    h0, c0 = torch_states(torch, module)
    h0 = np.broadcast_to(h0[:, :1], h0.shape).copy()          # one state for the whole batch
    c0 = None if c0 is None else np.broadcast_to(c0[:, :1], c0.shape).copy()
    x = sequence(12)
    y, _, _ = torch_run(torch, module, x, h0, c0)
    (layer,) = torch_layers(module, cell, "sequence", h0[:, 0], None if c0 is None else c0[:, 0])
    assert layer.weights[0].h0.shape == (H,)
    assert_close(forward(stack(layer), x), y)


def test_time_major_layout(torch):
    module = torch_module(torch, "lstm", bidirectional=True, batch_first=False)
    x = sequence(9).transpose(1, 0, 2).copy()                   # [time, batch, features]
    y, _, _ = torch_run(torch, module, x)
    model = stack(*torch_layers(module, "lstm"), layout="time_batch_feature")
    assert_close(forward(model, x), y)
    assert_close(forward(model, x.transpose(1, 0, 2), layout="batch_time_feature"), y.transpose(1, 0, 2))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_float32_mode(torch, cell):
    module = torch_module(torch, cell, bidirectional=True)
    h0, c0 = torch_states(torch, module)
    x = sequence(100)
    y, _, _ = torch_run(torch, module, x, h0, c0)
    got = forward(stack(*torch_layers(module, cell, "sequence", h0, c0)), x, dtype=np.float32)
    assert got.dtype == np.float32
    assert_close(got, y)


@pytest.mark.parametrize("cell, options", [("lstm", {}), ("lstm", {"proj_size": 2}), ("gru", {})])
def test_final_states_match_torch(torch, cell, options):
    module = torch_module(torch, cell, bidirectional=True, num_layers=2, **options)
    h0, c0 = torch_states(torch, module)
    x = sequence(15)
    _, h_n, c_n = torch_run(torch, module, x, h0, c0)
    _, states = forward_with_states(stack(*torch_layers(module, cell, "sequence", h0, c0)), x)
    got_h = [s.h for layer_states in states for s in layer_states]
    assert_close(np.stack(got_h), h_n)
    if cell == "lstm":
        assert_close(np.stack([s.c for layer_states in states for s in layer_states]), c_n)
    else:
        assert all(s.c is None for layer_states in states for s in layer_states)


def test_streaming_with_final_states_continues_like_torch(torch):
    """Feeding a chunk's final states back as h0/c0 continues the sequence as PyTorch does."""
    module = torch_module(torch, "lstm", proj_size=2)
    x = sequence(20)
    _, h_n, c_n = torch_run(torch, module, x[:, :8])
    y2, _, _ = torch_run(torch, module, x[:, 8:], h_n, c_n)
    (layer,) = torch_layers(module, "lstm")
    _, [[state]] = forward_with_states(stack(layer), x[:, :8])
    layer.weights[0].h0, layer.weights[0].c0 = state.h, state.c
    assert_close(forward(stack(layer), x[:, 8:]), y2)


def test_run_layer_is_batch_major_with_states(torch):
    module = torch_module(torch, "gru", bidirectional=True)
    x = sequence(10)
    y, h_n, _ = torch_run(torch, module, x)
    (layer,) = torch_layers(module, "gru")
    got, states = run_layer(layer, x)
    assert_close(got, y)
    assert [type(s) for s in states] == [State, State]
    assert_close(np.stack([s.h for s in states]), h_n)


# -------------------------------------------------------------------------------------- Keras 3
# Keras kernels are [input, gates*H] with LSTM blocks ifco and GRU blocks zrh; a reset_after GRU
# has bias (2, 3H) = [input bias, recurrent bias].  go_backwards returns the sequence in the order
# it was processed; Bidirectional re-aligns its backward half with the input.

KERAS_TO_CANONICAL = {"lstm": gates.ifco_to_ifgo, "gru": gates.zrh_to_rzn, "rnn": lambda a: a}

KERAS_ACTIVATIONS = {
    "linear": LINEAR, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "selu": SELU,
    "hard_sigmoid": HARD_SIGMOID_KERAS3, "elu": Activation("elu", 1.0),
    "leaky_relu": Activation("leaky_relu", 0.2), "relu6": Activation("relu6"),
    "softsign": Activation("softsign"), "softplus": Activation("softplus"),
    "exponential": Activation("exponential"), "swish": Activation("swish"),
    "gelu": Activation("gelu"), "softmax": Activation("softmax"),
    "log_softmax": Activation("log_softmax"),
}


def keras_rnn(keras, cell, activation="tanh", recurrent_activation="sigmoid", **options):
    """A Keras recurrent layer; `cell` is lstm, gru_after, gru_before or rnn."""
    if cell == "rnn":
        return keras.layers.SimpleRNN(H, activation=activation, **options)
    gate_options = dict(activation=activation, recurrent_activation=recurrent_activation, **options)
    if cell == "lstm":
        return keras.layers.LSTM(H, **gate_options)
    return keras.layers.GRU(H, reset_after=cell == "gru_after", **gate_options)


def keras_model(keras, *layers, seed=0, scale=0.6):
    """A built Sequential model with every weight drawn from a seeded uniform (biases non-zero)."""
    model = keras.Sequential([keras.Input((None, F)), *layers])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-scale, scale, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def keras_predict(keras, model, x):
    return keras.ops.convert_to_numpy(model(x))


def keras_direction(layer, kind) -> DirectionWeights:
    kernel, recurrent_kernel, bias = layer.get_weights()
    Wb, Rb = (bias[0], bias[1]) if bias.ndim == 2 else (bias, np.zeros_like(bias))
    to_canonical = KERAS_TO_CANONICAL[kind]
    return DirectionWeights(W=to_canonical(kernel.T), R=to_canonical(recurrent_kernel.T),
                            Wb=to_canonical(Wb), Rb=to_canonical(Rb))


def keras_recurrent(keras, layer, cell, activation="tanh", recurrent_activation="sigmoid") -> Recurrent:
    kind = cell.split("_")[0]
    if isinstance(layer, keras.layers.Bidirectional):
        inner, merge = layer.forward_layer, layer.merge_mode
        direction, weights = "bidirectional", [keras_direction(layer.forward_layer, kind),
                                               keras_direction(layer.backward_layer, kind)]
    else:
        inner, merge = layer, "concat"
        direction, weights = ("reverse" if layer.go_backwards else "forward"), [keras_direction(layer, kind)]
    act, rec = KERAS_ACTIVATIONS[activation], KERAS_ACTIVATIONS.get(recurrent_activation)
    activations = {"lstm": [rec, act, act], "gru": [rec, act], "rnn": [act]}[kind]
    sequences = inner.return_sequences
    return Recurrent(layer.name, kind, H, direction, weights, activations,
                     output="sequence" if sequences else "final_state", merge=merge,
                     time_order="processing" if direction == "reverse" and sequences else "input",
                     reset_after=cell != "gru_before", has_recurrent_bias=cell == "gru_after")


KERAS_CELLS = ["lstm", "gru_after", "gru_before", "rnn"]


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("cell", KERAS_CELLS)
def test_keras(keras, cell, go_backwards, return_sequences, T):
    layer = keras_rnn(keras, cell, return_sequences=return_sequences, go_backwards=go_backwards)
    model = keras_model(keras, layer)
    x = sequence(T)
    canonical = stack(keras_recurrent(keras, layer, cell))
    assert_close(forward(canonical, x), keras_predict(keras, model, x))


@pytest.mark.parametrize("T", [1, 50])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("cell", KERAS_CELLS)
def test_keras_bidirectional(keras, cell, merge, return_sequences, T):
    layer = keras.layers.Bidirectional(keras_rnn(keras, cell, return_sequences=return_sequences),
                                       merge_mode=merge)
    model = keras_model(keras, layer)
    x = sequence(T)
    canonical = stack(keras_recurrent(keras, layer, cell))
    assert_close(forward(canonical, x), keras_predict(keras, model, x))


# (cell, activation, recurrent_activation): every Keras activation in the candidate role of a
# SimpleRNN and a reset-before GRU, and in the gate role of an LSTM (softmax there is per gate).
ACTIVATION_CASES = [case for name in KERAS_ACTIVATIONS for case in
                    (("rnn", name, None), ("gru_before", name, "hard_sigmoid"), ("lstm", "tanh", name))]


@pytest.mark.parametrize("cell, activation, recurrent_activation", ACTIVATION_CASES)
def test_keras_activations(keras, cell, activation, recurrent_activation):
    options = {} if recurrent_activation is None else {"recurrent_activation": recurrent_activation}
    layer = keras_rnn(keras, cell, activation=activation, return_sequences=True, **options)
    explodes = "exponential" in (activation, recurrent_activation)     # exp feeds back into exp
    model = keras_model(keras, layer, scale=0.1 if explodes else 0.4)
    x = sequence(20, saturate=not explodes)
    expected = keras_predict(keras, model, x)
    assert np.isfinite(expected).all()
    canonical = stack(keras_recurrent(keras, layer, cell, activation, recurrent_activation or "sigmoid"))
    assert_close(forward(canonical, x), expected)


def test_keras_dense_softmax_head(keras):
    lstm = keras_rnn(keras, "lstm", activation="relu", recurrent_activation="hard_sigmoid")
    model = keras_model(keras, lstm, keras.layers.Dropout(0.5), keras.layers.Dense(4, activation="softmax"))
    dense = model.layers[-1]
    x = sequence(30)
    canonical = stack(keras_recurrent(keras, lstm, "lstm", "relu", "hard_sigmoid"), Dropout("drop", 0.5),
                      Dense("dense", *dense.get_weights(), activation=Activation("softmax")))
    got = forward(canonical, x)
    assert got.shape == (B, 4)
    assert_close(got, keras_predict(keras, model, x))


def test_keras_dense_per_time_step_and_activation_layer(keras):
    gru = keras.layers.Bidirectional(keras_rnn(keras, "gru_after", return_sequences=True), merge_mode="ave")
    model = keras_model(keras, gru, keras.layers.Dense(6, activation="selu"), keras.layers.Dense(4),
                        keras.layers.Activation("log_softmax"))
    d1, d2 = model.layers[1], model.layers[2]
    x = sequence(12)
    canonical = stack(keras_recurrent(keras, gru, "gru_after"), Dense("d1", *d1.get_weights(), activation=SELU),
                      Dense("d2", *d2.get_weights()), ActivationLayer("act", Activation("log_softmax")))
    got = forward(canonical, x)
    assert got.shape == (B, 12, 4)
    assert_close(got, keras_predict(keras, model, x))


def test_keras_initial_state(keras):
    lstm = keras_rnn(keras, "lstm", return_sequences=True)
    keras_model(keras, lstm)
    rng = np.random.default_rng(3)
    h0, c0 = (rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
    x = sequence(15)
    expected = keras.ops.convert_to_numpy(lstm(x, initial_state=[h0, c0]))
    layer = keras_recurrent(keras, lstm, "lstm")
    layer.weights[0].h0, layer.weights[0].c0 = h0, c0
    assert_close(forward(stack(layer), x), expected)


# --------------------------------------------------------------------------------- onnxruntime
# The only oracle here for `clip` and for the ONNX-only activations.  ONNX stacks directions:
# W [dirs, gates*H, input] (LSTM iofc, GRU zrh), B [dirs, 2*gates*H] = [Wb, Rb], Y [T, dirs, B, H].

ONNX_OPS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
ONNX_TO_CANONICAL = {"lstm": gates.iofc_to_ifgo, "gru": gates.zrh_to_rzn, "rnn": lambda a: a}
ONNX_NAMES = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "hard_sigmoid": "HardSigmoid",
              "affine": "Affine", "scaled_tanh": "ScaledTanh", "thresholded_relu": "ThresholdedRelu",
              "leaky_relu": "LeakyRelu", "elu": "Elu", "softsign": "Softsign", "softplus": "Softplus"}


def onnxruntime_run(kind, direction, activations, x, seed=0, clip=None, reset_after=True, scale=1.5):
    """Build a one-node ONNX graph with seeded weights, run it, return (Y [B, T, dirs*H], layer)."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    n_dirs, G = (2 if direction == "bidirectional" else 1), gates.GATE_COUNT[kind]
    rng = np.random.default_rng(seed)
    W = rng.uniform(-scale, scale, (n_dirs, G * H, F)).astype(np.float32)
    R = rng.uniform(-scale / 2, scale / 2, (n_dirs, G * H, H)).astype(np.float32)
    Bias = rng.uniform(-scale, scale, (n_dirs, 2 * G * H)).astype(np.float32)
    attrs = dict(hidden_size=H, direction=direction,
                 activations=[ONNX_NAMES[a.name] for a in activations] * n_dirs)
    alphas = [a.alpha for a in activations if a.alpha is not None]
    betas = [a.beta for a in activations if a.beta is not None]
    if alphas:
        attrs["activation_alpha"] = alphas * n_dirs
    if betas:
        attrs["activation_beta"] = betas * n_dirs
    if clip is not None:
        attrs["clip"] = clip
    if kind == "gru":
        attrs["linear_before_reset"] = int(reset_after)
    node = helper.make_node(ONNX_OPS[kind], ["X", "W", "R", "B"], ["Y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["time", "batch", F])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (Bias, "B"))])
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
                                   .SerializeToString(), providers=["CPUExecutionProvider"])
    Y = session.run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2))})[0]
    T = x.shape[1]
    y = Y.transpose(2, 0, 1, 3).reshape(x.shape[0], T, n_dirs * H)
    to_canonical = ONNX_TO_CANONICAL[kind]
    weights = [DirectionWeights(W=to_canonical(W[d]), R=to_canonical(R[d]), Wb=to_canonical(Bias[d, :G * H]),
                                Rb=to_canonical(Bias[d, G * H:])) for d in range(n_dirs)]
    layer = Recurrent("onnx_layer", kind, H, direction, weights, list(activations), clip=clip,
                      reset_after=reset_after)
    return y, layer


ONNX_CELLS = {"lstm": [SIGMOID, TANH, TANH], "gru": [SIGMOID, TANH], "rnn": [TANH]}


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("cell", ["lstm", "gru_after", "gru_before", "rnn"])
def test_onnxruntime_clip(cell, direction):
    kind = cell.split("_")[0]
    x = sequence(20)
    y, layer = onnxruntime_run(kind, direction, ONNX_CELLS[kind], x, clip=0.8,
                               reset_after=cell != "gru_before")
    assert_close(forward(stack(layer), x), y)
    layer.clip = None
    assert not np.allclose(forward(stack(layer), x), y, atol=1e-3)     # the clip mattered


ONNX_ONLY = [Activation("affine", 0.7, 0.2), Activation("scaled_tanh", 1.3, 0.6),
             Activation("thresholded_relu", 0.3), HARD_SIGMOID_KERAS2, Activation("leaky_relu", 0.05),
             Activation("elu", 0.4)]


@pytest.mark.parametrize("activation", ONNX_ONLY, ids=str)
@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_onnxruntime_activations(kind, activation):
    x = sequence(12, saturate=False)
    activations = {"rnn": [activation], "gru": [SIGMOID, activation],
                   "lstm": [activation, TANH, TANH]}[kind]
    y, layer = onnxruntime_run(kind, "bidirectional", activations, x, scale=0.5)
    assert_close(forward(stack(layer), x), y)


# ---------------------------------------------------------------------------------- activations

def test_hard_sigmoid_keras2_and_keras3_by_hand():
    """A 1-unit SimpleRNN over two steps, worked out on paper; Keras 2 and Keras 3 must differ."""
    def layer(activation):
        w = DirectionWeights(W=np.array([[2.0]]), R=np.array([[0.5]]), Wb=np.array([0.1]), Rb=np.zeros(1))
        return Recurrent("rnn", "rnn", 1, "forward", [w], [activation])

    x = np.array([[[0.3], [-1.0]]])
    # Keras 2: 0.2*0.7+0.5 = 0.64; then 0.2*(-2.0 + 0.5*0.64 + 0.1)+0.5 = 0.2*(-1.58)+0.5 = 0.184
    np.testing.assert_allclose(forward(stack(layer(HARD_SIGMOID_KERAS2), features=1), x)[0, :, 0],
                               [0.64, 0.184], atol=1e-12)
    # Keras 3: 0.7/6+0.5 = 0.6166...; then (-2.0 + 0.5*0.61666.. + 0.1)/6+0.5
    first = 0.7 / 6 + 0.5
    np.testing.assert_allclose(forward(stack(layer(HARD_SIGMOID_KERAS3), features=1), x)[0, :, 0],
                               [first, (-1.9 + 0.5 * first) / 6 + 0.5], atol=1e-12)


def torch_functionals(torch):
    fn = torch.nn.functional
    return {
        "linear": lambda v: v, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": fn.relu,
        "softsign": fn.softsign, "softplus": lambda v: fn.softplus(v, threshold=40),
        "exponential": torch.exp, "swish": fn.silu, "gelu": fn.gelu, "softmax": lambda v: fn.softmax(v, -1),
        "log_softmax": lambda v: fn.log_softmax(v, -1), "relu6": fn.relu6, "selu": fn.selu,
        "hard_sigmoid": fn.hardsigmoid, "elu": lambda v: fn.elu(v, 0.7),
        "leaky_relu": lambda v: fn.leaky_relu(v, 0.1), "thresholded_relu": lambda v: fn.threshold(v, 0.5, 0.0),
        "affine": lambda v: 0.7 * v + 0.2, "scaled_tanh": lambda v: 1.3 * torch.tanh(0.6 * v),
    }


TORCH_PARAMETERS = {"hard_sigmoid": (1 / 6, 0.5), "elu": (0.7,), "leaky_relu": (0.1,), "selu": (
    model_module.SELU_ALPHA, model_module.SELU_GAMMA), "thresholded_relu": (0.5,), "affine": (0.7, 0.2),
    "scaled_tanh": (1.3, 0.6)}


@pytest.mark.parametrize("name", sorted(model_module.ACTIVATIONS))
def test_every_activation_against_torch_functional(torch, name):
    """Including |x| up to 1000, where an unstable sigmoid, softplus or softmax overflows."""
    x = np.concatenate([np.linspace(-8, 8, 33), [-1000, -100, -30, 30, 100, 1000]]).reshape(3, 13)
    if name == "exponential":
        x = np.clip(x, -500, 500)
    expected = torch_functionals(torch)[name](torch.from_numpy(x)).numpy()
    activation = Activation(name, *TORCH_PARAMETERS.get(name, ()))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        got = activate(activation, x)
        got32 = activate(activation, x.astype(np.float32)) if name != "exponential" else None
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    if got32 is not None:
        assert got32.dtype == np.float32
        np.testing.assert_allclose(got32, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------- what it refuses

def rnn_layer(name="rnn", activations=(TANH,), **settings):
    rng = np.random.default_rng(0)
    w = DirectionWeights(W=rng.standard_normal((H, F)), R=rng.standard_normal((H, H)), Wb=np.zeros(H), Rb=np.zeros(H))
    settings = {"cell": "rnn", **settings}
    return Recurrent(name, hidden=H, direction="forward", weights=[w], activations=list(activations), **settings)


@dataclass
class Conv1D(Layer):
    name: str
    kind = "conv1d"


def test_unknown_layer_kind_is_refused_naming_the_layer():
    with pytest.raises(UnsupportedError) as e:
        forward(stack(rnn_layer(), Conv1D("conv")), sequence(4))
    assert str(e.value) == "layer 'conv': layer kind 'conv1d' is not implemented by the reference forward pass"


def test_activation_without_an_implementation_is_refused(monkeypatch):
    monkeypatch.setitem(model_module.ACTIVATIONS, "mish", ())
    with pytest.raises(UnsupportedError) as e:
        forward(stack(rnn_layer("rnn_1", [Activation("mish")])), sequence(4))
    assert str(e.value) == "layer 'rnn_1': activation 'mish' is not implemented by the reference forward pass"


@pytest.mark.parametrize("setting, value, message", [
    ("cell", "indrnn", "cell 'indrnn' is not implemented by the reference forward pass; known: lstm, gru, rnn"),
    ("merge", "max", "merge 'max' is not implemented by the reference forward pass; known: concat, sum, mul, ave"),
    ("output", "all_states", "output 'all_states' is not implemented by the reference forward pass; "
                             "known: sequence, last_step, final_state"),
])
def test_unknown_recurrent_settings_are_refused(setting, value, message):
    with pytest.raises(UnsupportedError) as e:
        forward(stack(rnn_layer(**{setting: value})), sequence(4))
    assert str(e.value) == f"layer 'rnn': {message}"


def test_missing_activation_parameter_is_an_input_error():
    with pytest.raises(InputError) as e:
        forward(stack(rnn_layer(activations=[Activation("hard_sigmoid")])), sequence(4))
    assert str(e.value) == "layer 'rnn': activation 'hard_sigmoid' needs alpha, the model gives none"


def test_malformed_layer_reports_every_problem():
    layer = rnn_layer()
    layer.weights[0].R = np.zeros((H, 2))
    layer.weights[0].h0 = np.zeros((7, H))
    with pytest.raises(InputError) as e:
        forward(stack(layer), sequence(4))
    assert not isinstance(e.value, UnsupportedError)
    assert str(e.value) == ("layer 'rnn': forward.R: shape (5, 2), expected (5, 5); "
                            "forward.h0: shape (7, 5), expected (state,) or (batch=3, state)")


def test_wrong_input_shape_is_an_input_error():
    with pytest.raises(InputError, match=r"input has 2 features, the model expects 3"):
        forward(stack(rnn_layer()), sequence(4, features=2))
    with pytest.raises(InputError, match=r"input of shape \(3, 4\), expected \[batch, time, features\]"):
        forward(stack(rnn_layer()), np.zeros((3, 4)))


def test_recurrent_layer_after_a_single_step_is_an_input_error():
    with pytest.raises(InputError) as e:
        forward(stack(rnn_layer("first", output="last_step"), rnn_layer("second")), sequence(4))
    assert str(e.value) == ("layer 'second': a recurrent layer needs a sequence [batch, time, features], "
                            "got shape (3, 5) (does the layer before return one step?)")


def test_processing_order_on_a_forward_layer_is_an_input_error():
    with pytest.raises(InputError, match="time_order 'processing' is only meaningful for a reverse layer"):
        forward(stack(rnn_layer(time_order="processing")), sequence(4))


def test_inputs_and_weights_are_left_untouched():
    layer = rnn_layer(activations=[Activation("softmax")])
    layer.weights[0].h0 = np.ones(H)
    before = {k: v.copy() for k, v in layer.arrays().items()}
    x = sequence(5)
    x_before = x.copy()
    forward(stack(layer, ActivationLayer("act", RELU)), x)
    assert np.array_equal(x, x_before)
    assert all(np.array_equal(v, before[k]) for k, v in layer.arrays().items())
