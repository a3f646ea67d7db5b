"""Benchmarks: `python -m bench` prints one table: operation | rnnconvert | peer | ratio | target | met?

rnnconvert and its peer are measured in the same run, interleaved, best of --repeat; the load average
is printed with the table (on a busy machine the ratios, not the seconds, are what to read).  Models
are generated into a temporary directory (Keras 3 makes the source file; nothing is committed).

    python -m bench                 # every operation below except `large`
    python -m bench convert memory  # named operations
    python -m bench --quick         # tiny sizes: a smoke run (CI), not a measurement
    python -m bench large           # a > 2 GB model: ONNX external data, .mat v7.3, .keras (~12 GB RAM)
    python -m bench large --no-verify   # the same, read + write only (verification of 2 GB takes long)

Operations: convert (a >= 100M-parameter stacked BiLSTM, Keras .h5 -> ONNX, vs raw h5py + onnx I/O),
memory (peak RSS of that conversion vs the weight bytes), forward (reference pass vs onnxruntime, LSTM
and GRU), startup (`rnnconvert --help`, `formats`), tf2onnx (on the same Keras model, when the dev venv
with TensorFlow exists; a 30M-parameter model by default: on 111M parameters tf2onnx was killed at 22.6 GB
RSS), verification (its parts as convert runs them for a large model), verify-cost (verification beside the
conversion on a 4001-step streaming ONNX graph: the time budget of verification/budget.py).
pt-read: a 100M-parameter .pt state dict read without torch vs torch.load (wall, peak RSS; bench/pt_read.py).
Issue 18's rows: latency (fresh-process `rnnconvert model.h5 model.onnx` on the wild Keras `convert` cases
and the fixtures, verified and --no-verify, vs tf2onnx; bench/latency.py), import-help (`import
rnnconvert.cli` + `--help`), pt-read and codegen (bench/others.py: run when their modules are present).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

DEFAULT = ["convert", "memory", "forward", "startup", "tf2onnx", "verification", "verify-cost"]
DEFAULT += ["latency", "import-help", "pt-read", "codegen"]      # issue 18
ALL = DEFAULT + ["large"]
NEEDS_BIG = {"convert", "memory", "verification"}


def parse(argv):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("which", nargs="*", choices=ALL + [[]], default=[])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat: checks the bench runs")
    ap.add_argument("--params-m", type=float, default=100.0, help="conversion model size, million parameters")
    ap.add_argument("--tf2onnx-params-m", type=float, default=30.0,
                    help="tf2onnx's model size (tf2onnx needed over 22 GB of RAM for 111M parameters)")
    ap.add_argument("--large-params-m", type=float, default=560.0, help="`large` model size (> 537 = 2 GiB)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--state-hidden", type=int, default=256, help="verify-cost: the LSTM's hidden size")
    ap.add_argument("--no-verify", action="store_true", help="`large` only: convert without verification")
    ap.add_argument("--wild", default="../shared/wild", help="latency: the folder of real published models")
    ap.add_argument("--latency-files", type=int, default=0, help="latency: this many files, spread (0: all)")
    args = ap.parse_args(argv)
    args.which = args.which or DEFAULT
    args.hidden, args.features = 1024, 256
    args.forward_shape = (32, 200, 512, 128)     # batch, steps, hidden, features
    if args.quick:
        args.params_m, args.large_params_m, args.repeat = 0.05, 0.2, 1
        args.tf2onnx_params_m = args.params_m
        args.hidden, args.features = 32, 16
        args.forward_shape = (4, 20, 32, 8)
        args.latency_files = 2
    return args


def run(args) -> list:
    from .table import Row
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rnnconvert-bench-") as folder:
        big = None
        for which in args.which:
            t = time.perf_counter()
            if which in NEEDS_BIG and big is None:
                from .convert import BigModel
                big = BigModel(folder, args.params_m, args.hidden, args.features)
            if which == "convert":
                from .convert import bench_convert
                bench_convert(args, big, rows)
            elif which == "memory":
                from .convert import bench_memory
                bench_memory(args, big, rows)
            elif which == "tf2onnx":
                from .convert import BigModel, bench_tf2onnx
                sub = os.path.join(folder, "tf2onnx")
                os.makedirs(sub)
                small = big if args.tf2onnx_params_m == args.params_m else \
                    BigModel(sub, args.tf2onnx_params_m, args.hidden, args.features)
                bench_tf2onnx(args, small, rows)
            elif which == "verification":
                from .convert import bench_verification
                bench_verification(args, big, rows)
            elif which == "verify-cost":
                from .verify_cost import bench_verify_cost
                bench_verify_cost(args, rows, folder)
            elif which == "forward":
                from .forward import bench_forward
                bench_forward(args, rows, folder)
            elif which == "startup":
                from .startup import bench_startup
                bench_startup(args, rows)
            elif which == "latency":
                from .latency import bench_latency
                bench_latency(args, rows, folder)
            elif which == "import-help":
                from .latency import bench_import_help
                bench_import_help(args, rows)
            elif which in ("pt-read", "codegen"):
                from .others import bench_other
                bench_other(which, args, rows, folder)
            elif which == "large":
                from .large import bench_large
                sub = os.path.join(folder, "large")
                os.makedirs(sub)
                bench_large(args, rows, sub)
            print(f"# {which}: {time.perf_counter() - t:.0f} s; rows so far:", file=sys.stderr)
            from .table import render
            print(render(rows, []), file=sys.stderr, flush=True)     # survives an interrupted run
    return rows


def main(argv=None):
    args = parse(argv)
    from .table import load_average, render
    before = load_average()
    rows = run(args)
    print(render(rows, [f"# python -m bench {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
                        f"# before: {before}; after: {load_average()}"]))
    return rows


if __name__ == "__main__":
    main()
