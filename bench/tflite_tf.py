"""rnnconvert -> .tflite against TensorFlow's own TFLiteConverter (dev-only: needs a second Python with
tensorflow and tf-keras, `--tf-python`; never run by the tests or CI).

    python bench/tflite_tf.py --tf-python PATH/TO/venv-tf/bin/python [--out DIR] [--steps 100]

For each Keras model (built by TF-Keras with a static batch of 1, the workaround TensorFlow's converter needs,
and saved as .h5): TensorFlow's converter and `rnnconvert convert` (with and without verification) each in
a fresh process, wall time and peak resident memory (the process's VmHWM: interpreter and libraries
included, as a user pays them); whether TensorFlow converts the same model with a dynamic batch; then LiteRT
(builtin kernels, no delegate) running both files: one step (T=1) and a whole sequence (T=--steps), median
invoke time, variables reset before each invoke (TensorFlow's file needs it, rnnconvert's does not).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PEAK = """\
import atexit, os, sys, runpy
def _peak():
    with open('/proc/self/status') as f:
        kb = next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))
    with open(os.environ['PEAK_FILE'], 'w') as f:
        f.write(str(kb))
atexit.register(_peak)
"""

MAKE = """
import os, sys, json
os.environ["TF_USE_LEGACY_KERAS"] = "1"; os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tf_keras as keras
L = keras.layers
out = sys.argv[1]
def seq(F, batch, *layers):
    return keras.Sequential([keras.Input(shape=(None, F), batch_size=batch)] + list(layers))
MODELS = {
  "lstm64_dense": (16, lambda: [L.LSTM(64), L.Dense(10)]),
  "bilstm32_seq": (16, lambda: [L.Bidirectional(L.LSTM(32, return_sequences=True))]),
  "gru64_dense": (16, lambda: [L.GRU(64), L.Dense(10)]),
  "simplernn32_dense": (8, lambda: [L.SimpleRNN(32), L.Dense(4)]),
  "lstm128x2_dense": (32, lambda: [L.LSTM(128, return_sequences=True), L.LSTM(128), L.Dense(10)]),
  "conv1d_lstm64": (8, lambda: [L.Conv1D(32, 3, padding="causal", activation="relu"), L.LSTM(64), L.Dense(4)]),
}
info = {}
for name, (F, layers) in MODELS.items():
    keras.utils.set_random_seed(1)
    m = seq(F, 1, *layers()); m.save(os.path.join(out, name + ".h5"))
    info[name] = {"features": F}
    keras.utils.set_random_seed(1)
    seq(F, None, *layers()).save(os.path.join(out, name + "_dynamic.h5"))
json.dump(info, open(os.path.join(out, "models.json"), "w"))
"""

TF_CONVERT = PEAK + """
os.environ["TF_USE_LEGACY_KERAS"] = "1"; os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf, tf_keras as keras
model = keras.models.load_model(sys.argv[1], compile=False)
open(sys.argv[2], "wb").write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
"""

RNNCONVERT = PEAK + """
sys.argv = ['rnnconvert'] + sys.argv[1:]
runpy.run_module('rnnconvert', run_name='__main__', alter_sys=True)
"""


def measured(python, code, args, env=None) -> dict:
    with tempfile.NamedTemporaryFile() as peak:
        e = {**os.environ, "PEAK_FILE": peak.name, "KERAS_BACKEND": "torch", **(env or {})}
        t = time.perf_counter()
        res = subprocess.run([python, "-c", code, *map(str, args)], capture_output=True, text=True, env=e)
        wall = time.perf_counter() - t
        try:
            mb = int(Path(peak.name).read_text()) / 1024
        except ValueError:
            mb = float("nan")
    err = (res.stderr.strip().splitlines() or [""])[-1]
    return {"ok": res.returncode == 0, "wall_s": wall, "peak_mb": mb, "error": "" if res.returncode == 0 else err}


def latency(path, shape, repeats) -> float:
    from ai_edge_litert import interpreter as lite
    it = lite.Interpreter(model_path=str(path),
                          experimental_op_resolver_type=lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(shape))
    it.allocate_tensors()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    times = []
    for _ in range(repeats):
        it.reset_all_variables()
        it.set_tensor(inp["index"], x)
        t = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/tflite_tf.py")
    ap.add_argument("--tf-python", required=True, help="a Python with tensorflow and tf-keras")
    ap.add_argument("--out", help="keep the models and files here (default: a temporary folder)")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="tflite_tf_"))
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([args.tf_python, "-c", MAKE, str(out)], check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    models = json.loads((out / "models.json").read_text())
    rows = []
    for name, info in models.items():
        h5 = out / f"{name}.h5"
        row = {"model": name}
        row["tf"] = measured(args.tf_python, TF_CONVERT, [h5, out / f"{name}.tf.tflite"])
        row["tf_dynamic_batch"] = measured(args.tf_python, TF_CONVERT, [out / f"{name}_dynamic.h5",
                                                                        out / f"{name}.tf_dynamic.tflite"])
        row["ours"] = measured(sys.executable, RNNCONVERT, ["convert", h5, out / f"{name}.ours.tflite", "--force"])
        row["ours_no_verify"] = measured(sys.executable, RNNCONVERT,
                                         ["convert", h5, out / f"{name}.fast.tflite", "--force", "--no-verify"])
        F = info["features"]
        for who in ("tf", "ours"):
            f = out / f"{name}.{who}.tflite"
            if f.exists():
                row[f"{who}_step_ms"] = 1e3 * latency(f, (1, 1, F), 300)
                row[f"{who}_seq_ms"] = 1e3 * latency(f, (1, args.steps, F), 30)
        rows.append(row)
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; LiteRT builtin kernels; T={args.steps}")
    print(f"{'model':<18} {'TF convert':>16} {'rnnconvert':>16} {'(no verify)':>16} {'TF dyn batch':>12} "
          f"{'step ms TF/ours':>16} {'seq ms TF/ours':>16}")
    for r in rows:
        def cell(m):
            return f"{m['wall_s']:.1f}s {m['peak_mb']:.0f}MB" if m["ok"] else "refused"
        lat = [f"{r.get(f'{w}_step_ms', float('nan')):.3f}" for w in ("tf", "ours")]
        seq = [f"{r.get(f'{w}_seq_ms', float('nan')):.2f}" for w in ("tf", "ours")]
        print(f"{r['model']:<18} {cell(r['tf']):>16} {cell(r['ours']):>16} {cell(r['ours_no_verify']):>16} "
              f"{'converts' if r['tf_dynamic_batch']['ok'] else 'refused':>12} {'/'.join(lat):>16} {'/'.join(seq):>16}")
    for r in rows:
        for k in ("tf", "tf_dynamic_batch", "ours"):
            if not r[k]["ok"]:
                print(f"  {r['model']} {k}: {r[k]['error'][:150]}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
