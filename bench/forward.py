"""The reference forward pass (what verification runs) beside onnxruntime on the same LSTM/GRU."""
from __future__ import annotations

import ctypes
import os

import numpy as np

from .models import make_onnx_rnn
from .table import Row, best_of, judge


def blas_threads() -> int | None:
    """The thread count of the BLAS numpy calls (OpenBLAS), read from the loaded library."""
    try:
        with open("/proc/self/maps") as fh:
            libs = {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for lib in libs:
        handle = ctypes.CDLL(lib)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                     "openblas_get_num_threads"):
            if hasattr(handle, name):
                return int(getattr(handle, name)())
    return None


def bench_forward(ctx, rows, folder):
    import onnxruntime as ort

    import rnnconvert
    from rnnconvert.reference import forward
    batch, steps, hidden, features = ctx.forward_shape
    threads = blas_threads() or os.cpu_count() or 1
    for cell in ("lstm", "gru"):
        path = os.path.join(folder, f"{cell}.onnx")
        make_onnx_rnn(path, cell, hidden, features)
        model = rnnconvert.read(path)
        x = np.random.default_rng(0).standard_normal((batch, steps, features)).astype(np.float32)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        best = best_of({"ort": lambda: sess.run(None, {"x": x}),
                        "f32": lambda: forward(model, x, dtype=np.float32),
                        "f64": lambda: forward(model, x, dtype=np.float64)}, max(ctx.repeat, 3))
        label = f"{cell.upper()} h{hidden} b{batch} t{steps}"
        peer = f"onnxruntime float32, {threads} threads = numpy's BLAS threads"
        rows.append(judge(Row(f"reference forward float32, {label}", best["f32"], best["ort"], peer), max_ratio=1.5))
        rows.append(Row(f"reference forward float64, {label}", best["f64"], best["ort"], peer,
                        note="reported (verification's mode)"))
