"""Generated C vs onnxruntime on the same model and inputs: one time step, and a whole sequence.

    python -m bench.codegen [--hidden 64] [--features 16] [--layers 2] [--time 100] [--repeat 2000]

The model is a seeded stacked LSTM with a Dense head (canonical, written by rnnconvert to both).
C: gcc -O2, `<p>_step` with the state carried, `<p>_predict` on [T, F], timed in-process with
clock_gettime.  onnxruntime: the --stateful ONNX file, one session.run per step with the state fed
back, and one session.run on [1, T, F] (single thread, CPUExecutionProvider).  Batch 1 throughout.
Prints a table: operation | C | onnxruntime | ratio (onnxruntime / C).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rnnconvert.formats.codegen import c as cgen  # noqa: E402
from rnnconvert.formats.onnx import stateful, writer  # noqa: E402
from rnnconvert.model import SIGMOID, TANH, Dense, DirectionWeights, InputSpec, Model, Recurrent  # noqa: E402

HARNESS = r"""#define _POSIX_C_SOURCE 199309L
#include "bm.h"
#include <stdio.h>
#include <time.h>
static float work[BM_WORK_FLOATS(%(T)d)];
static float x[%(T)d * BM_INPUT_SIZE], y[%(T)d * BM_OUTPUT_SIZE];
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(void)
{
    int i, r;
    double t0, best_step = 1e9, best_seq = 1e9;
    bm_state s;
    for (i = 0; i < %(T)d * BM_INPUT_SIZE; ++i) x[i] = (float)((i * 7919) %% 200) / 100.0f - 1.0f;
    bm_init(&s, 0);
    for (r = 0; r < 5; ++r) {
        t0 = now();
        for (i = 0; i < %(N)d; ++i) bm_step(&s, x + (i %% %(T)d) * BM_INPUT_SIZE, y);
        t0 = (now() - t0) / %(N)d;
        if (t0 < best_step) best_step = t0;
        t0 = now();
        for (i = 0; i < %(M)d; ++i) bm_predict(x, %(T)d, y, work);
        t0 = (now() - t0) / %(M)d;
        if (t0 < best_seq) best_seq = t0;
    }
    printf("%%.9g %%.9g %%g\n", best_step, best_seq, y[0]);
    return 0;
}
"""


def make_model(features, hidden, layers, seed=0) -> Model:
    rng = np.random.default_rng(seed)
    stack, width = [], features
    for k in range(layers):
        s = 1 / np.sqrt(hidden)
        w = DirectionWeights(rng.uniform(-s, s, (4 * hidden, width)), rng.uniform(-s, s, (4 * hidden, hidden)),
                             rng.uniform(-s, s, 4 * hidden), rng.uniform(-s, s, 4 * hidden))
        stack.append(Recurrent(f"lstm_{k}", "lstm", hidden, "forward", [w], [SIGMOID, TANH, TANH]))
        width = hidden
    stack.append(Dense("head", rng.normal(0, 0.1, (hidden, 10)), np.zeros(10)))
    return Model(stack, InputSpec(features=features), name="bench")


def bench_c(model, d, T, N, M):
    cgen.write(model, os.path.join(d, "bm.c"), prefix="bm")
    with open(os.path.join(d, "main.c"), "w") as f:
        f.write(HARNESS % {"T": T, "N": N, "M": M})
    exe = os.path.join(d, "bm")
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", os.path.join(d, "bm.c"),
                    os.path.join(d, "main.c"), "-o", exe, "-lm"], check=True)
    out = subprocess.run([exe], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def bench_ort(model, d, T, N, M):
    import onnx
    import onnxruntime as ort
    path = os.path.join(d, "bm.onnx")
    proto, _ = writer.to_onnx(model)
    stateful.make_stateful(proto, model)
    onnx.save(proto, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    ins = [i.name for i in sess.get_inputs()]
    x = ((np.arange(T * model.input.features) * 7919) % 200 / 100.0 - 1.0).astype(np.float32)
    x = x.reshape(1, T, model.input.features)
    best_step = best_seq = 1e9
    for _ in range(5):
        feeds = stateful.initial_feeds(meta, 1)
        t0 = time.perf_counter()
        for i in range(N):
            res = sess.run(None, {ins[0]: x[:, i % T:i % T + 1], **feeds})
            feeds = dict(zip(ins[1:], res[1:]))
        best_step = min(best_step, (time.perf_counter() - t0) / N)
        feeds = stateful.initial_feeds(meta, 1)
        t0 = time.perf_counter()
        for _ in range(M):
            sess.run(None, {ins[0]: x, **feeds})
        best_seq = min(best_seq, (time.perf_counter() - t0) / M)
    return best_step, best_seq


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--time", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2000, help="single steps per timing round")
    a = ap.parse_args(argv)
    model = make_model(a.features, a.hidden, a.layers)
    M = max(5, a.repeat // a.time)
    with tempfile.TemporaryDirectory(prefix="rnnconvert-bench-") as d:
        c_step, c_seq = bench_c(model, d, a.time, a.repeat, M)
        o_step, o_seq = bench_ort(model, d, a.time, a.repeat, M)
    print(f"model: {a.layers} x LSTM({a.hidden}) on {a.features} features + Dense(10), "
          f"{model.parameter_count():,} parameters; batch 1, float32, best of 5 rounds")
    rows = [("single step (state carried)", c_step, o_step), (f"whole sequence T={a.time}", c_seq, o_seq)]
    print(f"| {'operation':<30} | {'C (gcc -O2)':>12} | {'onnxruntime':>12} | {'ratio':>6} |")
    print(f"|{'-' * 32}|{'-' * 14}|{'-' * 14}|{'-' * 8}|")
    for name, c, o in rows:
        print(f"| {name:<30} | {c * 1e6:>9.1f} us | {o * 1e6:>9.1f} us | {o / c:>5.1f}x |")


if __name__ == "__main__":
    main()
