"""Generated C vs onnxruntime on the same model and inputs: one streamed time step, and a whole sequence.

    python -m bench.codegen [--cells lstm,gru] [--hidden 128] [--features 64] [--layers 2] [--time 100]
                            [--rounds 7] [--flags "-O3 -march=native"] [--cblas]

The models are seeded stacked LSTM / GRU layers with a Dense head (canonical, written by rnnconvert to
both).  C: compiled with --flags (no fast-math), `<p>_step` with the state carried and `<p>_predict` on
[T, F], timed in-process with clock_gettime; --cblas adds -DRNNC_USE_CBLAS and links -lopenblas.
onnxruntime: the --stateful ONNX file, one session.run per step with the states fed back, and one
session.run on [1, T, F] (intra_op_num_threads=1, CPUExecutionProvider).  Batch 1, one thread each.
Each round runs the C program then onnxruntime, each taking the fastest of 50 blocks of 10 steps and of
30 sequences (the least disturbed run: the machine may be shared); the table gives the ratio
C / onnxruntime per round as median [min, max], with the load average (`uptime`).
"""
from __future__ import annotations

import argparse
import os
import statistics
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
    for (r = 0; r < %(N)d; ++r) {   /* the fastest of N blocks of 10 steps, and of M sequences */
        t0 = now();
        for (i = 0; i < 10; ++i) bm_step(&s, x + ((r * 10 + i) %% %(T)d) * BM_INPUT_SIZE, y);
        t0 = (now() - t0) / 10;
        if (t0 < best_step) best_step = t0;
    }
    for (r = 0; r < %(M)d; ++r) {
        t0 = now();
        bm_predict(x, %(T)d, y, work);
        t0 = now() - t0;
        if (t0 < best_seq) best_seq = t0;
    }
    printf("%%.9g %%.9g %%g\n", best_step, best_seq, y[0]);
    return 0;
}
"""


def make_model(features, hidden, layers, cell="lstm", seed=0) -> Model:
    rng = np.random.default_rng(seed)
    stack, width = [], features
    G = {"lstm": 4, "gru": 3}[cell]
    for k in range(layers):
        s = 1 / np.sqrt(hidden)
        w = DirectionWeights(rng.uniform(-s, s, (G * hidden, width)), rng.uniform(-s, s, (G * hidden, hidden)),
                             rng.uniform(-s, s, G * hidden), rng.uniform(-s, s, G * hidden))
        acts = [SIGMOID, TANH, TANH] if cell == "lstm" else [SIGMOID, TANH]
        extra = {"reset_after": True} if cell == "gru" else {}
        stack.append(Recurrent(f"{cell}_{k}", cell, hidden, "forward", [w], acts, **extra))
        width = hidden
    stack.append(Dense("head", rng.normal(0, 0.1, (hidden, 10)), np.zeros(10)))
    return Model(stack, InputSpec(features=features), name="bench")


def build_c(model, d, T, N, M, flags, cblas=False) -> str:
    cgen.write(model, os.path.join(d, "bm.c"), prefix="bm")
    with open(os.path.join(d, "main.c"), "w") as f:
        f.write(HARNESS % {"T": T, "N": N, "M": M})
    exe = os.path.join(d, "bm")
    extra = (["-DRNNC_USE_CBLAS"], ["-lopenblas"]) if cblas else ([], [])
    subprocess.run(["gcc", *cgen.CFLAGS, *flags, *extra[0], os.path.join(d, "bm.c"), os.path.join(d, "main.c"),
                    "-o", exe, *extra[1], "-lm"], check=True)
    return exe


def time_c(exe):
    """(seconds per step, seconds per sequence), each the fastest the program saw."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([exe], capture_output=True, text=True, check=True, env=env).stdout.split()
    return float(out[0]), float(out[1])


class Ort:
    def __init__(self, model, d, T):
        import onnx
        import onnxruntime as ort
        path = os.path.join(d, "bm.onnx")
        proto, _ = writer.to_onnx(model)
        stateful.make_stateful(proto, model)
        onnx.save(proto, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.meta = self.sess.get_modelmeta().custom_metadata_map
        self.ins = [i.name for i in self.sess.get_inputs()]
        x = ((np.arange(T * model.input.features) * 7919) % 200 / 100.0 - 1.0).astype(np.float32)
        self.x, self.T = x.reshape(1, T, model.input.features), T

    def time(self, N, M):
        """The fastest of N blocks of 10 streamed steps (states fed back), and of M whole sequences."""
        best_step = best_seq = 1e9
        sess, ins, x, T = self.sess, self.ins, self.x, self.T
        feeds = stateful.initial_feeds(self.meta, 1)
        clock = time.perf_counter
        for r in range(N):
            t0 = clock()
            for i in range(r * 10, r * 10 + 10):
                res = sess.run(None, {ins[0]: x[:, i % T:i % T + 1], **feeds})
                feeds = dict(zip(ins[1:], res[1:]))
            best_step = min(best_step, (clock() - t0) / 10)
        feeds = stateful.initial_feeds(self.meta, 1)
        for _ in range(M):
            t0 = clock()
            sess.run(None, {ins[0]: x, **feeds})
            best_seq = min(best_seq, clock() - t0)
        return best_step, best_seq


def measure(cell="lstm", features=64, hidden=128, layers=2, T=100, rounds=7, blocks=50, sequences=30,
            flags=("-O3", "-march=native"), cblas=False) -> dict:
    """Per round: the C program, then onnxruntime, each the fastest of `blocks` blocks of 10 steps and of
    `sequences` whole sequences (the least disturbed run on a shared machine); times and ratios
    C / onnxruntime per round."""
    model = make_model(features, hidden, layers, cell)
    steps, M = blocks, sequences
    res = {"c_step": [], "c_seq": [], "ort_step": [], "ort_seq": [], "model": model}
    with tempfile.TemporaryDirectory(prefix="rnnconvert-bench-") as d:
        exe = build_c(model, d, T, steps, M, list(flags), cblas)
        ort = Ort(model, d, T)
        for _ in range(rounds):
            for key, v in zip(("c_step", "c_seq"), time_c(exe)):
                res[key].append(v)
            for key, v in zip(("ort_step", "ort_seq"), ort.time(steps, M)):
                res[key].append(v)
    res["step_ratio"] = [c / o for c, o in zip(res["c_step"], res["ort_step"])]
    res["seq_ratio"] = [c / o for c, o in zip(res["c_seq"], res["ort_seq"])]
    return res


def _spread(v, scale=1.0, fmt="{:.2f}") -> str:
    return f"{fmt.format(statistics.median(v) * scale)} [{fmt.format(min(v) * scale)}, {fmt.format(max(v) * scale)}]"


def table(results, T, flags, cblas) -> list[str]:
    cc = " ".join(flags) + (" -DRNNC_USE_CBLAS" if cblas else "")
    lines = [f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}",
             f"C: gcc {cc}; onnxruntime: intra_op_num_threads=1; batch 1; median [min, max] over rounds",
             "| model | operation | C (us) | onnxruntime (us) | C / onnxruntime | target |",
             "|---|---|---|---|---|---|"]
    for name, r in results:
        lines.append(f"| {name} | whole sequence T={T} | {_spread(r['c_seq'], 1e6, '{:.1f}')} | "
                     f"{_spread(r['ort_seq'], 1e6, '{:.1f}')} | {_spread(r['seq_ratio'])} | <= 1.0 |")
        lines.append(f"| {name} | one streamed step | {_spread(r['c_step'], 1e6, '{:.2f}')} | "
                     f"{_spread(r['ort_step'], 1e6, '{:.2f}')} | {_spread(r['step_ratio'])} | <= 0.5 |")
    return lines


def bench_codegen_rows(ctx, rows, folder):
    """`python -m bench codegen`: the generated C (gcc -O3 -march=native) beside onnxruntime (one thread),
    2-layer LSTM(128) and GRU(128) over 64 features, batch 1: the whole sequence T=100 and one streamed
    step, each the median over rounds of C / onnxruntime (min and max in the note)."""
    from .table import Row, judge
    rounds = 2 if ctx.quick else 7
    for cell in ("lstm", "gru"):
        r = measure(cell, 16 if ctx.quick else 64, 16 if ctx.quick else 128, 2, 100, rounds,
                    5 if ctx.quick else 50, 3 if ctx.quick else 30)
        name = f"generated C, 2 x {cell.upper()}({16 if ctx.quick else 128})"
        for what, c, o, ratio, bound in (("whole sequence T=100", "c_seq", "ort_seq", "seq_ratio", 1.0),
                                         ("one streamed step", "c_step", "ort_step", "step_ratio", 0.5)):
            c_med, o_med = statistics.median(r[c]), statistics.median(r[o])
            rows.append(judge(Row(f"{name}, {what}", c_med, o_med, "onnxruntime, 1 thread",
                                  note=f"{c_med * 1e6:.1f} vs {o_med * 1e6:.1f} us; C / onnxruntime per round "
                                       f"{_spread(r[ratio])}"), max_ratio=bound))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--time", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--blocks", type=int, default=50, help="blocks of 10 streamed steps per round")
    ap.add_argument("--sequences", type=int, default=30, help="whole sequences per round")
    ap.add_argument("--flags", default="-O3 -march=native", help="gcc flags besides the C writer's CFLAGS")
    ap.add_argument("--cblas", action="store_true", help="compile with -DRNNC_USE_CBLAS, link -lopenblas")
    a = ap.parse_args(argv)
    flags = a.flags.split()
    results = []
    for cell in a.cells.split(","):
        r = measure(cell, a.features, a.hidden, a.layers, a.time, a.rounds, a.blocks, a.sequences, flags,
                    a.cblas)
        name = f"{a.layers} x {cell.upper()}({a.hidden}) on {a.features} + Dense(10)"
        results.append((name, r))
    for line in table(results, a.time, flags, a.cblas):
        print(line)
    la = os.getloadavg()
    print(f"load average after: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}")


if __name__ == "__main__":
    main()
