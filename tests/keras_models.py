"""Live Keras 3 models and their canonical models assembled by hand from the Keras weights (no rnnconvert
reader involved), shared by the Keras and PyTorch writer tests of the front-end layers; random inputs."""
from __future__ import annotations

import os

import numpy as np
import pytest

from rnnconvert import model as M

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
L = keras.layers



def act(name):
    return M.Activation(name)


def canonical_from_keras(km, input_dtype="float32") -> M.Model:
    """The canonical model of a live Keras Sequential, built from its weights by hand."""
    layers = []
    for layer in km.layers:
        c, w = layer.get_config(), [np.asarray(v) for v in layer.get_weights()]
        cls = type(layer).__name__
        if cls == "Embedding":
            layers.append(M.Embedding(layer.name, w[0], mask_zero=c["mask_zero"]))
        elif cls == "Conv1D":
            layers.append(M.Conv1D(layer.name, w[0], w[1] if c["use_bias"] else None, strides=c["strides"][0],
                                   dilation=c["dilation_rate"][0], padding=c["padding"], groups=c["groups"],
                                   activation=act(c["activation"])))
        elif cls in ("MaxPooling1D", "AveragePooling1D"):
            layers.append(M.Pooling1D(layer.name, "max" if cls.startswith("Max") else "average",
                                      pool_size=c["pool_size"][0], strides=c["strides"][0], padding=c["padding"]))
        elif cls in ("GlobalMaxPooling1D", "GlobalAveragePooling1D"):
            layers.append(M.Pooling1D(layer.name, "max" if "Max" in cls else "average"))
        elif cls == "Flatten":
            layers.append(M.Flatten(layer.name))
        elif cls == "BatchNormalization":
            ws = list(w)
            scale = ws.pop(0) if c["scale"] else None
            offset = ws.pop(0) if c["center"] else None
            layers.append(M.BatchNorm(layer.name, ws[0], ws[1], scale, offset, epsilon=c["epsilon"]))
        elif cls == "Masking":
            layers.append(M.Masking(layer.name, c["mask_value"]))
        elif cls in ("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "AlphaDropout"):
            variant = {"Dropout": "dropout", "SpatialDropout1D": "spatial_dropout1d",
                       "GaussianNoise": "gaussian_noise", "GaussianDropout": "gaussian_dropout",
                       "AlphaDropout": "alpha_dropout"}[cls]
            layers.append(M.Dropout(layer.name, c.get("rate", c.get("stddev")), variant=variant))
        elif cls == "Dense":
            layers.append(M.Dense(layer.name, w[0], w[1], activation=act(c["activation"])))
        elif cls == "LSTM":              # Keras ifco == canonical ifgo: blocks need no permutation
            H = c["units"]
            weights = M.DirectionWeights(W=w[0].T, R=w[1].T, Wb=w[2], Rb=np.zeros(4 * H, np.float32))
            layers.append(M.Recurrent(layer.name, "lstm", H, "forward", [weights],
                                      [act("sigmoid"), act("tanh"), act("tanh")],
                                      output="sequence" if c["return_sequences"] else "final_state",
                                      masked_output="zero" if c["zero_output_for_mask"] else "previous"))
        elif cls == "SimpleRNN":
            H = c["units"]
            weights = M.DirectionWeights(W=w[0].T, R=w[1].T, Wb=w[2], Rb=np.zeros(H, np.float32))
            layers.append(M.Recurrent(layer.name, "rnn", H, "forward", [weights], [act(c["activation"])],
                                      output="sequence" if c["return_sequences"] else "final_state"))
        else:
            raise AssertionError(f"test helper: no canonical form for {cls}")
    shape = km.inputs[0].shape
    features = 0 if input_dtype.startswith("int") else int(shape[-1])
    return M.Model(layers, M.InputSpec(features=features, dtype=input_dtype, time_steps=shape[1]))


def randomise(km, seed=0):
    """Weights with non-trivial magnitudes (BatchNorm statistics and scales included)."""
    rng = np.random.default_rng(seed)
    for layer in km.layers:
        ws = layer.get_weights()
        new = []
        for v, var in zip(ws, layer.weights):
            if "variance" in var.path:
                new.append(rng.uniform(0.3, 2.0, v.shape).astype(np.float32))
            else:
                new.append(rng.normal(0, 0.6, v.shape).astype(np.float32))
        layer.set_weights(new)
    return km


def floats(shape, seed, scale=2.0):
    return np.random.default_rng(seed).normal(0, scale, shape).astype(np.float32)


def ids(batch, steps, vocab, seed, pad_right=True):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, (batch, steps)).astype(np.int32)
    for b in range(batch):              # right padding of varied length, one zero in the middle of row 0
        if pad_right and b:
            x[b, steps - 2 * b:] = 0
    x[0, steps // 2] = 0
    return x
