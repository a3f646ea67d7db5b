"""onnxruntime time per batch before and after `convert --in-place`: `python bench/in_place.py [MODEL.onnx ...]`.

Each model (default: fixtures/onnx_inplace/crnn_bigru/model.onnx) is rewritten into a temporary folder, then both
files run in one onnxruntime session each, interleaved, best of --repeat runs of --runs batches, on inputs built
from the declared input shapes (free dimensions --batch and --time).  Prints the load average with the table:
on a busy machine read the ratio, not the milliseconds.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "fixtures" / "onnx_inplace" / "crnn_bigru" / "model.onnx"


def feeds(path, batch: int, steps: int, ints: int = 0) -> dict:
    import onnx
    g = onnx.load(str(path)).graph
    init = {t.name for t in g.initializer}
    out, rng = {}, np.random.default_rng(0)
    for vi in g.input:
        if vi.name in init:
            continue
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else
                (batch if k == 0 else steps) for k, d in enumerate(t.shape.dim)]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)
        out[vi.name] = rng.standard_normal(dims).astype(dtype) if np.issubdtype(dtype, np.floating) else \
            np.full(dims, ints, dtype)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=[str(DEFAULT)])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--time", type=int, default=200)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--lengths", action="store_true",
                    help="integer inputs hold the free axis (sequence lengths that run to the end), not 0")
    args = ap.parse_args(argv)
    import onnxruntime as ort
    import rnnconvert
    print(f"load average {os.getloadavg()[0]:.2f}; batch {args.batch}, free axis {args.time}; best of "
          f"{args.repeat} x {args.runs} batches")
    print(f"{'model':40} {'before ms/batch':>16} {'after ms/batch':>15} {'after/before':>13}")
    for model in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            dst = Path(tmp) / "rewritten.onnx"
            rnnconvert.convert(model, dst, in_place=True)
            x = feeds(model, args.batch, args.time, args.time if args.lengths else 0)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            sessions = [ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"]) for p in (model, dst)]
            best = [float("inf"), float("inf")]
            for _ in range(args.repeat):
                for k, s in enumerate(sessions):          # interleaved: the same load on both
                    start = time.perf_counter()
                    for _ in range(args.runs):
                        s.run(None, x)
                    best[k] = min(best[k], (time.perf_counter() - start) / args.runs)
        label = f"{Path(model).parent.name}/{Path(model).name}"[-40:]
        print(f"{label:40} {best[0] * 1e3:16.3f} {best[1] * 1e3:15.3f} {best[1] / best[0]:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
