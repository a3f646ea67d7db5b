"""Models the benchmarks generate (in a temporary directory; nothing is committed)."""
from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")


def bilstm_layers(params_m: float, hidden: int, features: int) -> int:
    """How many Bidirectional(LSTM(hidden)) layers make about `params_m` million parameters."""
    first = 2 * 4 * (features * hidden + hidden * hidden + hidden)
    per_layer = 2 * 4 * (2 * hidden * hidden + hidden * hidden + hidden)
    return 1 + max(0, int(np.ceil((params_m * 1e6 - first) / per_layer)))


def make_stacked_bilstm(path, params_m: float, hidden: int = 1024, features: int = 256, weights_npz=None,
                        sequence_out: bool = False):
    """A stack of Bidirectional(LSTM) layers (sequences between them, the last returns one step unless
    `sequence_out`) and a Dense head, saved by Keras 3; returns (parameters, layers).  `weights_npz`:
    also save the weights in Keras order, for building the same model in another Keras."""
    import keras
    n_layers = bilstm_layers(params_m, hidden, features)
    layers = [keras.Input((None, features))]
    for k in range(n_layers):
        sequences = sequence_out or k < n_layers - 1
        layers.append(keras.layers.Bidirectional(keras.layers.LSTM(hidden, return_sequences=sequences)))
    layers.append(keras.layers.Dense(10))
    model = keras.Sequential(layers)
    rng = np.random.default_rng(0)
    weights = []
    for w in model.get_weights():
        weights.append((rng.standard_normal(w.shape, dtype=np.float32) * np.float32(0.5 / np.sqrt(hidden))))
    model.set_weights(weights)
    model.save(path)
    if weights_npz:
        np.savez(weights_npz, *weights)
    n = model.count_params()
    del model, weights
    keras.backend.clear_session()
    return n, n_layers


def make_onnx_rnn(path, cell, hidden, features):
    """torch.onnx.export of one nn.LSTM / nn.GRU: what onnxruntime runs in the forward benchmark."""
    import torch
    torch.manual_seed(0)
    mod = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](features, hidden, batch_first=True)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = mod

        def forward(self, x):
            return self.rnn(x)[0]

    x = torch.zeros(2, 5, features)
    torch.onnx.export(M().eval(), (x,), path, input_names=["x"], output_names=["y"], opset_version=17,
                      dynamic_axes={"x": {0: "b", 1: "t"}, "y": {0: "b", 1: "t"}}, dynamo=False)
