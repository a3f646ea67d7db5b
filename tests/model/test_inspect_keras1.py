"""`inspect` names a Keras 1 file's tensors as the file does: one W, U, b per gate (`lstm_1_W_i` ...) in a
weights-only file, `forward_lstm_1_W`, `_U`, `_b` in a Bidirectional of consume_less='gpu', never the Keras 2
names (`kernel`, `forward_layer/kernel`) the file does not hold.

Oracle: the arrays as written into the .h5 here (Keras 1's layout: per-gate arrays of gate order i, c, f, o,
kernels [input, units]), compared with the reader's canonical blocks at positions counted by hand.
"""
from __future__ import annotations

import json

import h5py
import numpy as np

from rnnconvert.cli import cli

C, H = 3, 2
CANON_POS = {"i": 0, "f": 1, "c": 2, "o": 3}          # canonical LSTM order i, f, g, o; Keras's c is g


def _per_gate_arrays(rng, prefix):
    """Keras 1's LSTM arrays in the order it stored them: W, U, b of gate i, then c, f, o."""
    out = {}
    for g in "icfo":
        out[f"{prefix}_W_{g}:0"] = rng.standard_normal((C, H)).astype(np.float32)
        out[f"{prefix}_U_{g}:0"] = rng.standard_normal((H, H)).astype(np.float32)
        out[f"{prefix}_b_{g}:0"] = rng.standard_normal(H).astype(np.float32)
    return out


def _group(parent, name, arrays):
    g = parent.create_group(name)
    g.attrs["weight_names"] = np.array([n.encode() for n in arrays])
    for n, a in arrays.items():
        g[n] = a


def _weights_only(path):
    rng = np.random.default_rng(4)
    arrays = _per_gate_arrays(rng, "lstm_1")
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([b"lstm_1", b"dense_1"])
        _group(f, "lstm_1", arrays)
        _group(f, "dense_1", {"dense_1_W:0": rng.standard_normal((H, 2)).astype(np.float32),
                              "dense_1_b:0": rng.standard_normal(2).astype(np.float32)})
    return {k[:-2]: v for k, v in arrays.items()}


def _bidirectional_gpu(path):
    """A Keras 1.2 model file: Bidirectional(LSTM(consume_less='gpu')), each direction's W, U, b concatenated
    in gate order i, f, c, o."""
    rng = np.random.default_rng(5)
    arrays = {}
    for side in ("forward", "backward"):
        arrays[f"{side}_lstm_1_W:0"] = rng.standard_normal((C, 4 * H)).astype(np.float32)
        arrays[f"{side}_lstm_1_U:0"] = rng.standard_normal((H, 4 * H)).astype(np.float32)
        arrays[f"{side}_lstm_1_b:0"] = rng.standard_normal(4 * H).astype(np.float32)
    inner = {"name": "lstm_1", "output_dim": H, "activation": "tanh", "inner_activation": "hard_sigmoid",
             "return_sequences": True, "go_backwards": False, "stateful": False, "consume_less": "gpu"}
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Bidirectional", "config": {"name": "bidirectional_1", "merge_mode": "concat",
                                                   "batch_input_shape": [None, None, C],
                                                   "layer": {"class_name": "LSTM", "config": inner}}}]}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"], f.attrs["backend"] = b"1.2.2", b"theano"
        f.attrs["model_config"] = json.dumps(config).encode()
        _group(f.create_group("model_weights"), "bidirectional_1", arrays)
    return {k[:-2]: v for k, v in arrays.items()}


def _inspect(runner, path):
    res = runner.invoke(cli, ["inspect", str(path), "--json"])
    assert res.exit_code == 0, res.stderr
    text = runner.invoke(cli, ["inspect", str(path)])
    assert text.exit_code == 0, text.stderr
    return json.loads(res.stdout), text.stdout


def test_keras1_per_gate_arrays_are_named_as_the_file_names_them(runner, tmp_path):
    path = tmp_path / "weights.hdf5"
    stored = _weights_only(path)
    d, text = _inspect(runner, path)
    assert not d["whole_model"]["readable"]
    (lstm,) = d["layers"]
    assert sorted(t["name"] for t in lstm["tensors"]) == sorted(stored)
    from rnnconvert.formats.per_layer import extract
    w = extract(path, "lstm_1").layers[0].weights[0]
    for t in lstm["tensors"]:
        a = stored[t["name"]]
        assert t["shape"] == list(a.shape), t["name"]
        gate = t["name"][-1]
        assert t["gate"] == gate
        field = {"W": w.W, "U": w.R, "b": w.Wb + w.Rb}[t["name"].split("_")[-2]]
        block = field[CANON_POS[gate] * H:(CANON_POS[gate] + 1) * H]
        np.testing.assert_array_equal(a, block.T if a.ndim == 2 else block, err_msg=t["name"])
    assert "    f = recurrent_activation(x @ lstm_1_W_f + h @ lstm_1_U_f + lstm_1_b_f)" in text.splitlines()
    assert "kernel" not in text and "forward_layer" not in text


def test_keras1_bidirectional_concatenated_arrays_keep_their_names(runner, tmp_path):
    import rnnconvert
    path = tmp_path / "model.h5"
    stored = _bidirectional_gpu(path)
    d, text = _inspect(runner, path)
    assert d["whole_model"]["readable"]
    (bi,) = d["layers"]
    assert sorted(t["name"] for t in bi["tensors"]) == sorted(stored)
    layer = rnnconvert.read(path).layers[0]
    for t in bi["tensors"]:
        a = stored[t["name"]]
        assert t["shape"] == list(a.shape)
        w = layer.weights[0 if t["name"].startswith("forward_") else 1]
        field = {"W": w.W, "U": w.R, "b": w.Wb + w.Rb}[t["name"].split("_")[-1]]
        for g in t["gates"]:
            assert g["slice"].startswith(t["name"] + "[")
            idx = tuple(slice(*x) if isinstance(x, list) else slice(None) if x is None else x for x in g["index"])
            block = field[CANON_POS[g["gate"]] * H:(CANON_POS[g["gate"]] + 1) * H]
            np.testing.assert_array_equal(a[idx], block.T if a.ndim == 2 else block, err_msg=g["slice"])
    assert "    i = recurrent_activation(x @ forward_lstm_1_W[:, 0:H] + h @ forward_lstm_1_U[:, 0:H] + " \
           "forward_lstm_1_b[0:H])" in text.splitlines()
    assert "forward_layer/" not in text and "kernel" not in text


def test_a_file_rnnconvert_wrote_is_named_in_its_own_format(runner, tmp_path):
    """An ONNX file written from a Keras 1 file keeps the source's record in its metadata; inspect still names
    what the ONNX file holds: its LSTM node's W, R, B (read here with onnx itself)."""
    import onnx
    src = tmp_path / "model.h5"
    _bidirectional_gpu(src)
    dst = tmp_path / "model.onnx"
    res = runner.invoke(cli, [str(src), str(dst), "--no-verify"])
    assert res.exit_code == 0, res.stderr
    node = next(n for n in onnx.load(str(dst)).graph.node if n.op_type == "LSTM")
    d, text = _inspect(runner, dst)
    assert d["format"] == "onnx" and text.splitlines()[1].startswith("format  onnx")
    assert len(node.input) >= 4 and all(node.input[1:4])            # the node's W, R and B inputs
    assert [t["name"] for t in d["layers"][0]["tensors"]] == ["W", "R", "B"]
    assert "forward_lstm_1_W" not in text
