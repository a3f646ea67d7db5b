"""Conversion of a large stacked bidirectional LSTM, Keras .h5 -> ONNX: time, memory, tf2onnx,
and what verification costs.  The peer of a conversion is the raw I/O floor (`raw_io`)."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .models import make_stacked_bilstm
from .table import Row, best_of, judge

ROOT = Path(__file__).resolve().parent.parent
# The python of a development venv with TensorFlow, tf-keras and tf2onnx (never a dependency), if any.
TF_PYTHON = Path(os.environ.get("RNNCONVERT_TF_PYTHON", "") or "tf-venv-not-set")


class BigModel:
    """The generated Keras 3 .h5 model, made once per run in `folder`."""

    def __init__(self, folder, params_m, hidden, features, sequence_out=False):
        self.folder, self.params_m, self.hidden, self.features = folder, params_m, hidden, features
        self.src = os.path.join(folder, "big.h5")
        self.npz = os.path.join(folder, "big_weights.npz")
        self.params, self.layers = make_stacked_bilstm(self.src, params_m, hidden, features, self.npz,
                                                         sequence_out)
        self.weight_mb = self.params * 4 / 2**20
        self.label = f"{self.params / 1e6:.3g}M-param {self.layers}x BiLSTM({hidden})"
        print(f"# model: {self.layers} Bidirectional(LSTM({hidden})) layers + Dense, {self.params / 1e6:.1f}M "
              f"parameters, {self.weight_mb:.0f} MB of float32 weights", file=sys.stderr)


def raw_io(src_h5, dst_onnx):
    """The floor: every weight tensor read with h5py, written as ONNX initializers, read back."""
    import h5py
    import onnx
    from onnx import helper, numpy_helper
    arrays = []
    with h5py.File(src_h5, "r") as f:
        f.visititems(lambda n, o: arrays.append(o[()]) if isinstance(o, h5py.Dataset) else None)
    inits = [numpy_helper.from_array(np.ascontiguousarray(a), f"t{k}") for k, a in enumerate(arrays)]
    del arrays
    graph = helper.make_graph([], "raw", [], [helper.make_tensor_value_info("t0", onnx.TensorProto.FLOAT, None)],
                              initializer=inits)
    del inits
    onnx.save(helper.make_model(graph), dst_onnx)
    del graph
    back = onnx.load(dst_onnx)
    [numpy_helper.to_array(t) for t in back.graph.initializer]


def bench_convert(ctx, big: BigModel, rows):
    import rnnconvert
    out = os.path.join(big.folder, "big.onnx")
    raw_out = os.path.join(big.folder, "raw.onnx")
    best = best_of({"raw": lambda: raw_io(big.src, raw_out),
                    "noverify": lambda: rnnconvert.convert(big.src, out, verify=False, force=True),
                    "verify": lambda: rnnconvert.convert(big.src, out, force=True)}, ctx.repeat)
    peer = "h5py read + onnx write + read back"
    rows.append(judge(Row(f"convert {big.label} .h5 -> .onnx, verified", best["verify"], best["raw"], peer),
                      max_ratio=1.5))
    rows.append(judge(Row("  same, --no-verify (read + write)", best["noverify"], best["raw"], peer),
                      max_ratio=1.5))


def child(job, src, dst, *flags) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "bench.child", job, src, dst, *flags], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"bench.child {job} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_memory(ctx, big: BigModel, rows):
    dst = os.path.join(big.folder, "mem.onnx")
    runs = {"raw": child("raw", big.src, dst), "verify": child("convert", big.src, dst),
            "noverify": child("convert", big.src, dst, "--no-verify"),
            "external": child("convert", big.src, dst, "--external-data")}
    peer = f"weight bytes ({big.weight_mb:.0f} MB)"
    raw = f"raw I/O floor peaks at {runs['raw']['peak_mb']:.0f} MB"
    rows.append(judge(Row(f"peak memory, convert {big.label}, verified", runs["verify"]["peak_mb"], big.weight_mb,
                          peer, unit="MB", note=raw), max_ratio=2))
    rows.append(judge(Row("  same, --no-verify", runs["noverify"]["peak_mb"], big.weight_mb, peer, unit="MB"),
                      max_ratio=2))
    rows.append(judge(Row("  same, verified, weights as ONNX external data", runs["external"]["peak_mb"],
                          big.weight_mb, peer, unit="MB"), max_ratio=2))


TF2ONNX_SCRIPT = r"""
import json, sys, time
import numpy as np
import tf_keras as K
import tensorflow as tf
import tf2onnx
npz, n_layers, hidden, features, h5, out = sys.argv[1:]
n_layers, hidden, features = int(n_layers), int(hidden), int(features)
layers = [K.Input((None, features))]
for k in range(n_layers):
    layers.append(K.layers.Bidirectional(K.layers.LSTM(hidden, return_sequences=k < n_layers - 1)))
layers.append(K.layers.Dense(10))
m = K.Sequential(layers)
w = np.load(npz)
m.set_weights([w[f"arr_{k}"] for k in range(len(w.files))])
m.save(h5)
del m
K.backend.clear_session()
t = time.perf_counter()
m = K.models.load_model(h5, compile=False)
spec = (tf.TensorSpec((None, None, features), tf.float32, name="x"),)
tf2onnx.convert.from_keras(m, input_signature=spec, opset=17, output_path=out)
print(json.dumps({"seconds": time.perf_counter() - t, "tf2onnx": tf2onnx.__version__, "tf": tf.__version__}))
"""


def bench_tf2onnx(ctx, big: BigModel, rows):
    """tf2onnx converts the same model (same architecture and weights, saved by tf.keras 2.x)."""
    import rnnconvert
    name = f"convert {big.label} tf.keras .h5 -> .onnx, verified"
    if not TF_PYTHON.exists():
        rows.append(Row(name, None, None, "tf2onnx", target=">= 10x faster", note="tf2onnx not installed: set RNNCONVERT_TF_PYTHON to a venv python with it"))
        return
    h5 = os.path.join(big.folder, "big_tfkeras.h5")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)
    env.pop("KERAS_BACKEND", None)
    t = time.perf_counter()
    out = subprocess.run([str(TF_PYTHON), "-c", TF2ONNX_SCRIPT, big.npz, str(big.layers), str(big.hidden),
                          str(big.features), h5, os.path.join(big.folder, "tf2onnx.onnx")],
                         env=env, capture_output=True, text=True)
    # the largest child so far: tf2onnx's process, the bench's own children being far smaller
    peak = f"peak RSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20:.1f} GB"
    if out.returncode:
        rows.append(Row(name, None, None, "tf2onnx", target=">= 10x faster",
                        note=f"tf2onnx failed after {time.perf_counter() - t:.0f} s, {peak} (exit {out.returncode}; "
                             "-9: killed, e.g. out of memory)"))
        return
    peer = json.loads(out.stdout.strip().splitlines()[-1])
    ours = best_of({"v": lambda: rnnconvert.convert(h5, os.path.join(big.folder, "tf.onnx"), force=True)},
                   1)["v"]
    rows.append(judge(Row(name, ours, peer["seconds"], f"tf2onnx {peer['tf2onnx']} (TF {peer['tf']}), load + "
                          "convert + save, TF import excluded", note=f"tf2onnx {peak}"), min_speedup=10))


def bench_verification(ctx, big: BigModel, rows):
    """Each part of the large model's verification (rnnconvert/verification/large.py) timed on its own, beside the
    read + write it follows, and the float64 full-suite pass of the general path it replaces."""
    import numpy as np

    import rnnconvert
    from rnnconvert import formats
    from rnnconvert.verification import runtimes, suite
    from rnnconvert.verification.diagnose import skeleton
    from rnnconvert.reference.network import forward
    dst = os.path.join(big.folder, "parts.onnx")
    t = time.perf_counter()
    src_model = rnnconvert.read(big.src)
    rnnconvert.write(src_model, dst)
    io = time.perf_counter() - t
    inputs = suite.input_suite(src_model)
    parts = {}

    def timed(key, fn):
        t = time.perf_counter()
        r = fn()
        parts[key] = time.perf_counter() - t
        return r

    timed("reference(src) float32, large-model suite", lambda: [forward(src_model, x, dtype=np.float32)
                                                                for _, x in inputs])
    timed("SHA-1 digests of the source's arrays", lambda: skeleton(src_model))
    fmt = formats.for_reading(dst)
    timed("onnxruntime(dst): one session, every input",
          lambda: [run(x) for run in [runtimes.runner(fmt, dst, src_model)] for _, x in inputs])
    back = timed("read back", lambda: rnnconvert.read(dst))
    timed("SHA-1 digests of the read-back", lambda: skeleton(back))
    shapes = ", ".join(f"b{x.shape[0]} t{x.shape[1]}" for _, x in inputs)
    rows.append(Row("verification of the large model, its parts", sum(parts.values()), io,
                    "read + write without it", note=f"inputs {shapes}"))
    for key, seconds in parts.items():
        rows.append(Row(f"  {key}", seconds, io, ""))
    saved = suite.LARGE_MODEL_PARAMS
    suite.LARGE_MODEL_PARAMS = float("inf")
    try:
        full = suite.input_suite(src_model)
    finally:
        suite.LARGE_MODEL_PARAMS = saved
    timed("full", lambda: [forward(src_model, x) for _, x in full])
    rows.append(Row("  (general path: reference(src) float64 on the full suite, one of its three passes)",
                    parts["full"], io, "", note=", ".join(f"b{x.shape[0]} t{x.shape[1]}" for _, x in full)))
