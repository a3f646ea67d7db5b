"""Hostile inputs of the command line itself (issue 21): the files `tests/test_hostile_cli.py` runs.

Each function writes its files into a given directory and returns the main path:
- `small_model`: a valid LSTM (.rnnc), the model the `--inputs` cases are aimed at;
- `overflow_pair`: a relu RNN whose float32 pass overflows on the seeded long inputs (float64 does
  not), and a copy whose output is wrong by ~1e90 only where float32 overflows;
- `empty_vectors`: a vectors folder (vectors.json + vectors.npz) listing no vector;
- `inputs_*`: `--inputs` files: batch 0, time 0, strings, complex, bool, NaN, wrong features, an .npz
  whose member declares 2 GB from a few KB (deflated zeros), a .npy declaring more than it holds;
- `slow_model`: a wide LSTM (.rnnc) whose verification takes seconds, for the signal tests.

    python -m tests.hostile_cli DIR      # writes them all
"""
from __future__ import annotations

import json
import os
import sys
import zipfile

import numpy as np

F, H = 3, 4


def _write(model, path):
    from rnnconvert import api
    api.write(model, path)
    return str(path)


def _lstm(F_: int, H_: int, seed: int = 0):
    from rnnconvert.model import SIGMOID, TANH, DirectionWeights, InputSpec, Model, Recurrent
    rng = np.random.default_rng(seed)
    w = DirectionWeights(rng.normal(0, 0.3, (4 * H_, F_)).astype(np.float32),
                         rng.normal(0, 0.3, (4 * H_, H_)).astype(np.float32),
                         rng.normal(0, 0.1, 4 * H_).astype(np.float32), np.zeros(4 * H_, np.float32))
    return Model([Recurrent("lstm", "lstm", H_, "forward", [w], [SIGMOID, TANH, TANH])],
                 InputSpec(features=F_), name="small")


def small_model(d) -> str:
    return _write(_lstm(F, H), os.path.join(d, "small.rnnc"))


def slow_model(d) -> str:
    """About 4M parameters: seconds of reference passes over the 300-step inputs."""
    return _write(_lstm(256, 512, seed=1), os.path.join(d, "slow.rnnc"))


def _relu_rnn(dense_kernel: float):
    from rnnconvert.model import RELU, Dense, DirectionWeights, InputSpec, Model, Recurrent
    one = np.ones((1, 1), np.float32)
    w = DirectionWeights(one, 2 * one, np.zeros(1, np.float32), np.zeros(1, np.float32))
    # h_t = relu(x_t + 2 h_{t-1}): 2^300 (1e90) after 300 steps, past float32's 3.4e38 after about 128;
    # the Dense layer's output is 0 until h passes 1e38 (after some 125 steps), so the short inputs agree exactly.
    return Model([Recurrent("rnn", "rnn", 1, "forward", [w], [RELU]),
                  Dense("dense", np.full((1, 1), dense_kernel, np.float32), np.full(1, -1e38, np.float32), RELU)],
                 InputSpec(features=1), name="overflow")


def overflow_pair(d) -> tuple[str, str]:
    """(source, wrong): the wrong file's Dense kernel is 2 instead of 1, so on the long inputs its output
    is off by as much as the output itself (about 1e90), where the float32 pass is inf."""
    return (_write(_relu_rnn(1.0), os.path.join(d, "overflow.rnnc")),
            _write(_relu_rnn(2.0), os.path.join(d, "overflow_wrong.rnnc")))


def empty_vectors(d) -> str:
    folder = os.path.join(d, "empty_vectors")
    os.makedirs(folder, exist_ok=True)
    np.savez(os.path.join(folder, "vectors.npz"))
    with open(os.path.join(folder, "vectors.json"), "w") as f:
        json.dump({"kind": "rnnconvert-vectors", "version": 1, "model": {"path": "small.rnnc"},
                   "arrays": "vectors.npz", "tolerance": {"atol": 1e-4, "rtol": 1e-4}, "seed": 0,
                   "vectors": []}, f)
    return folder


# ------------------------------------------------------------------------------------- --inputs

INPUTS = {
    "batch0": np.zeros((0, 5, F), np.float32),
    "time0": np.zeros((2, 0, F), np.float32),
    "strings": np.array([[["a", "b", "c"]]]),
    "complex": np.zeros((1, 2, F), np.complex64),
    "bool": np.zeros((1, 2, F), bool),
    "nan": np.array([[[0.0, np.nan, 1.0]]], np.float32),
    "huge": np.array([[[0.0, 1.0, 2.0], [3.0, 4.0, 1e39]]], np.float64),      # inf in float32
    "features": np.zeros((1, 2, F + 2), np.float32),
    "axes4": np.zeros((1, 1, 2, F), np.float32),
}


def inputs_file(d, name: str) -> str:
    path = os.path.join(d, f"inputs_{name}.npy")
    np.save(path, INPUTS[name])
    return path


def inputs_npz_bomb(d) -> str:
    """An .npz whose one member inflates to 2 GB of float32 zeros from a few MB: written by streaming
    the .npy header and zeros through zipfile, never holding the array."""
    from numpy.lib import format as npy
    path = os.path.join(d, "inputs_bomb.npz")
    shape = (2, 1 << 26, 4)                          # 2 * 67M * 4 float32 = 2 GiB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("input.npy", "w", force_zip64=True) as f:
            npy.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
            chunk = bytes(1 << 24)
            for _ in range(2 * (1 << 26) * 4 * 4 // len(chunk)):
                f.write(chunk)
    return path


def inputs_npy_liar(d) -> str:
    """A .npy whose header declares [1, 2**40, 3] float32 (12 TiB) in a file of 128 bytes."""
    from numpy.lib import format as npy
    path = os.path.join(d, "inputs_liar.npy")
    with open(path, "wb") as f:
        npy.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (1, 1 << 40, F)})
        f.write(bytes(12))
    return path


def fixed_length_onnx(d, steps: int = 50_000_000) -> str:
    """A 300-byte ONNX LSTM whose input is fixed to [steps, 1, 1]: the seeded suite would run every pass of
    the reference over that many steps (hours, and GBs of inputs)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    W = numpy_helper.from_array(np.full((1, 8, 1), 0.5, np.float32), "W")
    R = numpy_helper.from_array(np.full((1, 8, 2), 0.5, np.float32), "R")
    node = helper.make_node("LSTM", ["X", "W", "R"], ["Y", "Y_h"], hidden_size=2, name="lstm")
    graph = helper.make_graph([node], "long", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [steps, 1, 1])],
                              [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 1, 2])], [W, R])
    path = os.path.join(d, "fixed_length.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    return path


def write_all(d) -> list[str]:
    os.makedirs(d, exist_ok=True)
    out = [small_model(d), *overflow_pair(d), empty_vectors(d), inputs_npz_bomb(d), inputs_npy_liar(d),
           fixed_length_onnx(d)]
    out += [inputs_file(d, name) for name in INPUTS]
    return out


if __name__ == "__main__":
    for p in write_all(sys.argv[1] if len(sys.argv) > 1 else "hostile_cli"):
        print(p)
