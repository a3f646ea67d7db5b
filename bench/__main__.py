"""Benchmarks: `python -m bench` prints operation | rnnconvert | peer | ratio.

Measured side by side in one run, never as timed tests.  Models are generated into a temporary
directory (Keras 3 makes the source file; nothing is committed).

    python -m bench                 # all
    python -m bench convert         # conversion of a >= 50M parameter stacked LSTM vs raw h5py+onnx I/O
    python -m bench forward         # reference forward pass vs onnxruntime, same LSTM/GRU
Options: --params-m 50 (conversion model size), --repeat 3.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def make_stacked_keras(path, params_m: float, features=256):
    """A stacked LSTM saved by Keras 3 with about `params_m` million parameters."""
    import keras
    hidden = 1024
    first = 4 * (features * hidden + hidden * hidden + hidden)
    per_layer = 4 * (2 * hidden * hidden + hidden)
    n_layers = 1 + max(1, int(np.ceil((params_m * 1e6 - first) / per_layer)))
    layers = [keras.Input((None, features))]
    for k in range(n_layers):
        layers.append(keras.layers.LSTM(hidden, return_sequences=k < n_layers - 1))
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.05 for w in model.get_weights()])
    model.save(path)
    return model.count_params(), n_layers


def raw_io(src_h5, dst_onnx):
    """The floor: read every weight tensor with h5py, write them all as ONNX initializers."""
    import h5py
    import onnx
    from onnx import helper, numpy_helper
    arrays = []
    with h5py.File(src_h5, "r") as f:
        f.visititems(lambda n, o: arrays.append(o[()]) if isinstance(o, h5py.Dataset) else None)
    inits = [numpy_helper.from_array(np.ascontiguousarray(a), f"t{k}") for k, a in enumerate(arrays)]
    graph = helper.make_graph([], "raw", [], [helper.make_tensor_value_info("t0", onnx.TensorProto.FLOAT, None)],
                              initializer=inits)
    onnx.save(helper.make_model(graph), dst_onnx)
    with open(dst_onnx, "rb") as f:       # and read it back, as a conversion does
        onnx.load_from_string(f.read())


def bench_convert(args, rows):
    import rnnconvert
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "big.h5")
        n, layers = make_stacked_keras(src, args.params_m)
        print(f"# model: {layers} stacked LSTM(1024) layers, {n / 1e6:.1f}M parameters, "
              f"{os.path.getsize(src) / 1e6:.0f} MB", file=sys.stderr)
        out = os.path.join(d, "big.onnx")

        def conv_noverify():
            rnnconvert.convert(src, out, verify=False, force=True)

        def conv_verify():
            rnnconvert.convert(src, out, force=True)

        raw = best_of(lambda: raw_io(src, os.path.join(d, "raw.onnx")), args.repeat)
        t_nov = best_of(conv_noverify, args.repeat)
        t_ver = best_of(conv_verify, 1)
        rows.append((f"convert {n / 1e6:.0f}M params .h5 -> .onnx (read+write+read back)", t_nov,
                     "raw h5py read + onnx write/read", raw))
        rows.append((f"  same, with verification (reference x2 + onnxruntime)", t_ver,
                     "raw h5py read + onnx write/read", raw))


def make_onnx_rnn(path, cell, hidden, features):
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


def bench_forward(args, rows):
    import onnxruntime as ort

    import rnnconvert
    from rnnconvert.reference import forward
    batch, time_steps, hidden, features = 32, 200, 512, 128
    with tempfile.TemporaryDirectory() as d:
        for cell in ("lstm", "gru"):
            path = os.path.join(d, f"{cell}.onnx")
            make_onnx_rnn(path, cell, hidden, features)
            model = rnnconvert.read(path)
            x = np.random.default_rng(0).standard_normal((batch, time_steps, features)).astype(np.float32)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = os.cpu_count() or 1
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            peer = best_of(lambda: sess.run(None, {"x": x}), args.repeat)
            t32 = best_of(lambda: forward(model, x, dtype=np.float32), args.repeat)
            t64 = best_of(lambda: forward(model, x, dtype=np.float64), args.repeat)
            label = f"{cell.upper()} h{hidden} b{batch} t{time_steps}"
            rows.append((f"reference forward float32, {label}", t32, "onnxruntime", peer))
            rows.append((f"reference forward float64, {label}", t64, "onnxruntime", peer))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("which", nargs="*", default=["convert", "forward"], choices=["convert", "forward"])
    ap.add_argument("--params-m", type=float, default=50.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    rows = []
    for which in args.which:
        {"convert": bench_convert, "forward": bench_forward}[which](args, rows)
    w = max(len(r[0]) for r in rows)
    print(f"{'operation':<{w}}  {'rnnconvert':>10}  {'peer':>9}  {'ratio':>6}  peer is")
    for op, ours, peer_name, peer in rows:
        print(f"{op:<{w}}  {ours:>9.3f}s  {peer:>8.3f}s  {ours / peer:>5.2f}x  {peer_name}")


if __name__ == "__main__":
    main()
