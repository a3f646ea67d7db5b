"""Rows of issue 18's table that other modules measure, run when those modules are present:
`bench/pt_read.py` (`bench_pt_read(ctx, rows, folder)`: a .pt state dict read without torch vs
torch.load) and `bench/codegen.py` (`bench_codegen_rows(ctx, rows, folder)`: generated C vs
onnxruntime, whole sequence T=100 and one step).  Absent, each adds a row saying it was not run."""
from __future__ import annotations

import importlib

from .table import Row

HOOKS = {"pt-read": ("bench.pt_read", "bench_pt_read", ".pt read without torch vs torch.load (100M params)",
                     "<= 1x time, <= 1.2x weights memory"),
         "codegen": ("bench.codegen", "bench_codegen_rows", "generated C vs onnxruntime (sequence T=100 / one step)",
                     "<= 1.0x / <= 0.5x")}


def bench_other(which: str, ctx, rows, folder):
    module, function, label, target = HOOKS[which]
    try:
        fn = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        rows.append(Row(label, None, None, "", target=target, note=f"not run: {module}.{function} is not present"))
        return
    fn(ctx, rows, folder)
