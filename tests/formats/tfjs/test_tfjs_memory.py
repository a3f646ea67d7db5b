"""The TF.js writer and reader hold the weights once (traced numpy allocations): the writer makes each kernel
as it writes it into the shard, the reader reads each layer's arrays from the shards when it converts them."""
from __future__ import annotations

import json
import tracemalloc

import numpy as np
import rnnconvert
from conftest import FIXTURES
from rnnconvert import model as M


def stacked_bilstm(hidden=128, features=128, layers=8, seed=5) -> M.Model:
    """8 bidirectional LSTM(128) layers: 12.6 MB of weights, no array over 1 MB."""
    rng = np.random.default_rng(seed)
    f32 = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    stack, width = [], features
    for k in range(layers):
        ws = [M.DirectionWeights(W=f32(4 * hidden, width), R=f32(4 * hidden, hidden), Wb=f32(4 * hidden),
                                 Rb=f32(4 * hidden)) for _ in range(2)]
        stack.append(M.Recurrent(name=f"lstm_{k}", cell="lstm", hidden=hidden, direction="bidirectional",
                                 weights=ws, activations=[M.SIGMOID, M.TANH, M.TANH], output="sequence"))
        width = stack[-1].units_out
    return M.Model(layers=stack, input=M.InputSpec(name="x", features=features), name="net")


def test_writing_and_reading_hold_each_weight_once(tmp_path):
    model = stacked_bilstm()
    weights = sum(a.nbytes for layer in model.layers for a in layer.arrays().values())
    path = tmp_path / "m.json"
    tracemalloc.start()
    try:
        rnnconvert.write(model, path)
        written = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        back = rnnconvert.read(path)
        read = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written < 0.4 * weights, (written, weights)      # was 1.16x: every array converted first
    assert read < 1.5 * weights, (read, weights)            # was 2.09x: the shards and every array read first
    x = np.random.default_rng(0).standard_normal((2, 5, model.input.features)).astype(np.float32)
    np.testing.assert_allclose(rnnconvert.predict(back, x), rnnconvert.predict(model, x), atol=1e-6)


def test_a_weight_straddling_two_shards_is_read_whole(tmp_path):
    """TF.js's converter cuts shards at 4 MB whatever the weights: one array may begin in a shard and end
    in the next."""
    folder = FIXTURES / "tfjs" / "lstm_seq_dense"
    doc = json.loads((folder / "model.json").read_text())
    data = (folder / "group1-shard1of1.bin").read_bytes()
    cut = 4 * 7 + 2                         # inside the first kernel, not on a float boundary
    (tmp_path / "group1-shard1of2.bin").write_bytes(data[:cut])
    (tmp_path / "group1-shard2of2.bin").write_bytes(data[cut:])
    doc["weightsManifest"][0]["paths"] = ["group1-shard1of2.bin", "group1-shard2of2.bin"]
    (tmp_path / "model.json").write_text(json.dumps(doc))
    x = np.load(folder / "inputs.npz")["t7"]
    np.testing.assert_array_equal(rnnconvert.predict(rnnconvert.read(tmp_path / "model.json"), x),
                                  rnnconvert.predict(rnnconvert.read(folder / "model.json"), x))
