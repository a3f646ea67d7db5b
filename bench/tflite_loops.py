"""LiteRT's time per sequence on the WHILE loops rnnconvert writes (GRU and other layers TFLite's sequence ops
cannot hold), side by side in one run: the old writer (a checkout of it, `--old-src`), the writer on
PYTHONPATH, and TensorFlow's own converter (`--tf-python` or RNNCONVERT_TF_PYTHON: a Python with tensorflow
and tf-keras; dev-only, never run by the tests or CI).

    python bench/tflite_loops.py [--old-src OLD_CHECKOUT] [--tf-python PY] [--steps 100 1000] [--quantize]

The Keras models (TF-Keras when a TensorFlow Python is given, else Keras 3) have a static batch of 1, the
workaround TensorFlow's converter needs; rnnconvert converts the same .h5 (without verification: only the
file is timed).  `--quantize`: rnnconvert with --quantize dynamic, TensorFlow with Optimize.DEFAULT
(dynamic-range int8 weights).  LiteRT with its builtin kernels, no delegate; median invoke time of each
file, the files taking turns, variables reset before each invoke; then the load average.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = {        # name: (features, layers as Keras code over L, return_sequences)
    "gru64_dense": (16, "[L.GRU(64), L.Dense(10)]"),
    "gru64_seq": (16, "[L.GRU(64, return_sequences=True)]"),
    "gru64_reset_before_seq": (16, "[L.GRU(64, reset_after=False, return_sequences=True)]"),
    "bigru32_seq": (16, "[L.Bidirectional(L.GRU(32, return_sequences=True))]"),
}

MAKE = """
import os, sys, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
if sys.argv[2] == "tf":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as keras
else:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras
L = keras.layers
for name, (F, layers) in json.loads(sys.argv[3]).items():
    keras.utils.set_random_seed(1)
    m = keras.Sequential([keras.Input(shape=(None, F), batch_size=1)] + eval(layers))
    m.save(os.path.join(sys.argv[1], name + ".h5"))
"""

TF_CONVERT = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"; os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf, tf_keras as keras
c = tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(sys.argv[1], compile=False))
if sys.argv[3] == "1":
    c.optimizations = [tf.lite.Optimize.DEFAULT]
open(sys.argv[2], "wb").write(c.convert())
"""

OURS = """
import sys, rnnconvert
rnnconvert.convert(sys.argv[1], sys.argv[2], verify=False, force=True,
                   write_options={"quantize": "dynamic"} if sys.argv[3] == "1" else None)
"""


def interpreter(path, shape):
    from ai_edge_litert import interpreter as lite
    it = lite.Interpreter(model_path=str(path),
                          experimental_op_resolver_type=lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(shape))
    it.allocate_tensors()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    it.set_tensor(inp["index"], x)
    it.invoke()                 # warm
    return it, inp["index"], x


def once(it, index, x) -> float:
    it.reset_all_variables()
    it.set_tensor(index, x)
    t = time.perf_counter()
    it.invoke()
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/tflite_loops.py")
    ap.add_argument("--old-src", help="a checkout of the old writer (its folder holding rnnconvert/)")
    ap.add_argument("--tf-python", default=os.environ.get("RNNCONVERT_TF_PYTHON"))
    ap.add_argument("--steps", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--quantize", action="store_true")
    ap.add_argument("--out", help="keep the models and files here (default: a temporary folder)")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="tflite_loops_"))
    out.mkdir(parents=True, exist_ok=True)
    import json
    models = {k: MODELS[k] for k in args.models}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([args.tf_python or sys.executable, "-c", MAKE, str(out), "tf" if args.tf_python else "keras3",
                    json.dumps(models)], check=True, env=env)
    q = "1" if args.quantize else "0"
    here = str(Path(__file__).resolve().parents[1])
    writers = {"old": args.old_src, "new": here} if args.old_src else {"new": here}
    files = {}
    for name in models:
        h5 = out / f"{name}.h5"
        for who, src in writers.items():
            f = out / f"{name}.{who}.tflite"
            subprocess.run([sys.executable, "-c", OURS, str(h5), str(f), q], check=True,
                           env={**env, "PYTHONPATH": src, "KERAS_BACKEND": "torch"}, cwd=out)
            files[name, who] = f
        if args.tf_python:
            f = out / f"{name}.tf.tflite"
            res = subprocess.run([args.tf_python, "-c", TF_CONVERT, str(h5), str(f), q], capture_output=True,
                                 text=True, env=env)
            if res.returncode == 0:
                files[name, "tf"] = f
            else:
                print(f"{name}: TensorFlow's converter failed: {(res.stderr.strip().splitlines() or [''])[-1]}")
    who_all = list(writers) + (["tf"] if args.tf_python else [])
    rows = []
    for name, (F, _) in models.items():
        for T in args.steps:
            runs = {w: interpreter(files[name, w], (1, T, F)) for w in who_all if (name, w) in files}
            times = {w: [] for w in runs}
            repeats = max(5, min(100, 20000 // T))
            for _ in range(repeats):
                for w, (it, index, x) in runs.items():
                    times[w].append(once(it, index, x))
            rows.append((name, T, {w: 1e3 * float(np.median(v)) for w, v in times.items()},
                         {w: os.path.getsize(files[name, w]) for w in runs}))
    load = os.getloadavg()
    print(f"LiteRT builtin kernels, batch 1, median ms per sequence{' (int8 weights)' if args.quantize else ''}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'model':<24} {'T':>5} " + " ".join(f"{w + ' ms':>10}" for w in who_all)
          + ("   new/old  new/tf" if True else ""))
    for name, T, ms, size in rows:
        ratio = []
        for a, b in (("new", "old"), ("new", "tf")):
            ratio.append(f"{ms[a] / ms[b]:7.2f}" if a in ms and b in ms else f"{'-':>7}")
        print(f"{name:<24} {T:>5} " + " ".join(f"{ms.get(w, float('nan')):>10.3f}" for w in who_all)
              + "  " + " ".join(ratio))
    print("file bytes: " + ", ".join(f"{n}.{w} {s}" for n, _, _, sz in rows[::len(args.steps)]
                                     for w, s in sz.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
