"""The reference forward pass (what verification runs) beside onnxruntime on the same LSTM/GRU."""
from __future__ import annotations

import os
import time

import numpy as np

from .models import make_onnx_rnn
from .table import Row, best_of, judge


def bench_forward(ctx, rows, folder):
    import onnxruntime as ort

    import rnnconvert
    from rnnconvert.reference import blas
    from rnnconvert.reference.network import forward
    batch, steps, hidden, features = ctx.forward_shape
    threads = blas.threads() or os.cpu_count() or 1
    for cell in ("lstm", "gru"):
        path = os.path.join(folder, f"{cell}.onnx")
        make_onnx_rnn(path, cell, hidden, features)
        model = rnnconvert.read(path)
        x = np.random.default_rng(0).standard_normal((batch, steps, features)).astype(np.float32)
        sess, sess1 = (session(ort, path, n) for n in (threads, 1))

        def one_thread():
            with blas.single_threaded():
                forward(model, x, dtype=np.float32)
        repeat = max(ctx.repeat, 3)
        rounds = max(ctx.repeat, 7) if not ctx.quick else 1
        spread = ratio_spread({"ort": lambda: sess.run(None, {"x": x}),
                               "f32": lambda: forward(model, x, dtype=np.float32)}, "f32", "ort", rounds)
        best = best_of({"ort": lambda: sess.run(None, {"x": x}),
                        "f32": lambda: forward(model, x, dtype=np.float32),
                        "f64": lambda: forward(model, x, dtype=np.float64)}, repeat)
        # One thread each, timed by CPU time: what the load changes least.
        best.update(best_of({"ort1": lambda: sess1.run(None, {"x": x}), "f32_1": one_thread}, repeat,
                            clock=time.process_time))
        label = f"{cell.upper()} h{hidden} b{batch} t{steps}"
        peer = f"onnxruntime float32, {threads} threads = numpy's BLAS threads"
        rows.append(judge(Row(f"reference forward float32, {label}", best["f32"], best["ort"], peer,
                              note=spread), max_ratio=1.5))
        rows.append(Row(f"reference forward float64, {label}", best["f64"], best["ort"], peer,
                        note="reported (verification's mode)"))
        rows.append(judge(Row(f"reference forward float32, {label}, 1 thread, CPU time", best["f32_1"],
                              best["ort1"], "onnxruntime float32, 1 thread",
                              note="CPU seconds, both on one thread: what the load changes least"), max_ratio=1.5))


def session(ort, path, threads):
    """onnxruntime on `threads` threads that do not spin once a run is over: its spinning threads took the
    cores from the pass timed right after it (our LSTM h512 b32 t200: 0.127 s right after an onnxruntime
    run, 0.109 s 0.3 s later; without spinning 0.109 s either way), and onnxruntime's own time is the same
    (0.067 s against 0.069 s, median of 7, load 0.7)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def ratio_spread(fns: dict, ours: str, peer: str, rounds: int) -> str:
    """The ratio ours/peer of each round (the two run back to back, alternating which goes first), as
    'ratio per round: median [min, max] over N'."""
    ratios = []
    for k in range(rounds):
        t = {}
        for name in (list(fns) if k % 2 == 0 else list(fns)[::-1]):
            start = time.perf_counter()
            fns[name]()
            t[name] = time.perf_counter() - start
        ratios.append(t[ours] / t[peer])
    ratios.sort()
    return f"ratio per round: median {ratios[len(ratios) // 2]:.2f}x [{ratios[0]:.2f}, {ratios[-1]:.2f}] over {rounds}"
