"""Layer variants the fixtures do not reach, built as canonical models (seeded), written as TF.js and run by
@tensorflow/tfjs under Node (one process for all) against the float64 reference pass of the model written,
on a batch of 3 with 1, 7 and 40 steps (one saturating row): explicit Conv1D padding (Reshape +
ZeroPadding2D + Reshape), Keras 3's hard_sigmoid slope folded into TF.js's, a backward layer's output at
the last step and in input order (identity SimpleRNN selectors), selu and relu SimpleRNNs, a reset-before
bidirectional GRU averaged, a mask repeating the previous output.  Each read back keeps its structure."""
from __future__ import annotations

import numpy as np
import pytest

import rnnconvert
from rnnconvert import model as M
from rnnconvert.reference.network import forward
from tfjs_oracle import run_all

F, H = 3, 4


def _rng(seed):
    rng = np.random.default_rng(seed)
    return lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)


def _rnn(f32, cell, direction, acts, width, **kw):
    g = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    D = 2 if direction == "bidirectional" else 1
    ws = [M.DirectionWeights(W=f32(g * H, width), R=f32(g * H, H) * 0.5, Wb=f32(g * H), Rb=f32(g * H))
          for _ in range(D)]
    return M.Recurrent(name=f"{cell}_{direction}", cell=cell, hidden=H, direction=direction, weights=ws,
                       activations=acts, **kw)


def models() -> dict:
    f32 = _rng(7)
    LSTM_ACTS = [M.SIGMOID, M.TANH, M.TANH]
    out = {
        "conv_explicit_pads": [M.Conv1D("conv", f32(3, F, 5), f32(5), padding="explicit", pads=(2, 1)),
                               _rnn(f32, "lstm", "forward", LSTM_ACTS, 5, output="last_step")],
        "lstm_keras3_hard_sigmoid": [_rnn(f32, "lstm", "forward", [M.HARD_SIGMOID_KERAS3, M.TANH, M.TANH], F)],
        "reverse_lstm_last_step": [_rnn(f32, "lstm", "reverse", LSTM_ACTS, F, output="last_step")],
        "reverse_gru_sequence_input_order": [_rnn(f32, "gru", "reverse", [M.SIGMOID, M.TANH], F, reset_after=False)],
        "selu_rnn_dense": [_rnn(f32, "rnn", "forward", [M.SELU], F, output="final_state"),
                           M.Dense("head", f32(H, 2), f32(2), M.Activation("softmax"))],
        "bigru_reset_before_ave": [_rnn(f32, "gru", "bidirectional", [M.SIGMOID, M.TANH], F, reset_after=False,
                                        merge="ave", output="final_state")],
        "masking_lstm_previous": [M.Masking("mask", 0.0), _rnn(f32, "lstm", "forward", LSTM_ACTS, F)],
    }
    return {k: M.Model(layers=v, input=M.InputSpec(name="x", features=F), name=k) for k, v in out.items()}


def inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    xs = []
    for steps in (1, 7, 40):
        x = rng.standard_normal((3, steps, F)).astype(np.float32)
        x[-1] *= 6
        if steps > 3:
            x[1, -2:] = 0.0                 # masked steps for the Masking model (no effect elsewhere)
        xs.append(x)
    return xs


MODELS = models()


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    root = tmp_path_factory.mktemp("layers")
    jobs, where = [], []
    for name, model in MODELS.items():
        rnnconvert.write(model, root / f"{name}.json")
        for k, x in enumerate(inputs()):
            jobs.append((root / f"{name}.json", x))
            where.append((name, k))
    out = {}
    for (name, k), y in zip(where, run_all(jobs)):
        out[(name, k)] = y
    return root, out


@pytest.mark.parametrize("name", list(MODELS))
def test_layer_variant_runs_in_tfjs(name, ran):
    root, out = ran
    model = MODELS[name]
    for k, x in enumerate(inputs()):
        np.testing.assert_allclose(out[(name, k)], forward(model, x), atol=1e-4, rtol=1e-4, err_msg=f"{name} {k}")
    back = rnnconvert.read(root / f"{name}.json")
    assert [layer.kind for layer in back.layers] == [layer.kind for layer in model.layers]
    if name == "conv_explicit_pads":
        assert back.layers[0].padding == "explicit" and tuple(back.layers[0].pads) == (2, 1)
