"""onnxruntime on a graph whose recurrences are Loops or unrolled steps, before and after rnnconvert lifts
them into native nodes (rnnconvert/formats/onnx/lift.py: every other node kept), side by side in one run:
`python bench/lift_speed.py FILE.onnx [X.npy] [--runs N]` prints ms per batch for both and their ratio, the
largest output difference, and the load average (the machine is shared: compare ratios, not times).
Without X.npy the input is random, [3, 60, features] (or the graph's fixed time length)."""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/lift_speed.py")
    ap.add_argument("model")
    ap.add_argument("x", nargs="?")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args(argv)
    import onnx
    import onnxruntime as ort
    from rnnconvert.formats.onnx.lift import lift_model
    proto = onnx.load(args.model)
    lifted, names = lift_model(proto, args.model)
    if not names:
        print(f"{args.model}: nothing to lift", file=sys.stderr)
        return 2
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sessions = [ort.InferenceSession(p.SerializeToString(), opts, providers=["CPUExecutionProvider"])
                for p in (proto, lifted)]
    inp = sessions[0].get_inputs()[0]
    if args.x:
        x = np.load(args.x)
    else:
        dims = [d if isinstance(d, int) else None for d in inp.shape]
        x = np.random.default_rng(0).standard_normal((3, dims[1] or 60, dims[2])).astype(np.float32)
    times, outs = [], []
    for s in sessions:
        outs.append(s.run(None, {inp.name: x})[0])
    for s in sessions * 1:
        t0 = time.perf_counter()
        for _ in range(args.runs):
            s.run(None, {inp.name: x})
        times.append((time.perf_counter() - t0) / args.runs * 1000)
    print(f"{os.path.basename(args.model)}: lifted {len(names)} ({', '.join(names)}); x {list(x.shape)}; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"  as written {times[0]:.2f} ms/batch, lifted {times[1]:.2f} ms/batch: {times[0] / times[1]:.1f}x; "
          f"max |difference| {float(np.max(np.abs(outs[0] - outs[1]))):.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
