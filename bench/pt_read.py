"""pt-read: a 100M-parameter PyTorch state dict read without torch (rnnconvert's own unpickler, the arrays
the converter takes) beside torch.load(weights_only=True), each in a fresh process, wall time of the read
and peak RSS above the process's size once its modules are imported (best of --repeat, interleaved; CPU time
and the median wall time in the note); the zip format and the legacy one.

    python -m bench pt-read
    python -m bench.pt_read ours|torch FILE     one measured read, printed as JSON
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .table import Row, judge

ROOT = Path(__file__).resolve().parent.parent


def make_state_dict(path, params_m: float, zipped: bool = True) -> int:
    """An nn.LSTM(3 layers) + nn.Linear state dict of about `params_m` million float32 parameters,
    saved by torch.save; returns the weight bytes."""
    import numpy as np
    import torch
    hidden = max(8, int((params_m * 1e6 / 24) ** 0.5) // 8 * 8)    # 6 + 8 + 8 (layers) + 2 (head) hidden^2
    features = hidden // 2
    shapes = {}
    for k in range(3):
        shapes[f"lstm.weight_ih_l{k}"] = (4 * hidden, features if k == 0 else hidden)
        shapes[f"lstm.weight_hh_l{k}"] = (4 * hidden, hidden)
        shapes[f"lstm.bias_ih_l{k}"] = (4 * hidden,)
        shapes[f"lstm.bias_hh_l{k}"] = (4 * hidden,)
    shapes["fc.weight"], shapes["fc.bias"] = (2 * hidden, hidden), (2 * hidden,)
    rng = np.random.default_rng(18)
    sd = {k: torch.from_numpy(rng.standard_normal(s, dtype=np.float32)) for k, s in shapes.items()}
    torch.save(sd, path, _use_new_zipfile_serialization=zipped)
    return sum(t.numel() * 4 for t in sd.values())


def _measure(who: str, path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "bench.pt_read", who, str(path)], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def bench_pt_read(ctx, rows, folder):
    params_m = ctx.params_m                    # 100 by default, --params-m; --quick: 0.05
    for zipped in (True, False):
        path = Path(folder) / f"state_dict_{'zip' if zipped else 'legacy'}.pt"
        weights = make_state_dict(path, params_m, zipped)
        runs: dict = {"ours": [], "torch": []}
        for _ in range(max(ctx.repeat, 1)):
            for who in runs:                               # interleaved: load hits both
                runs[who].append(_measure(who, path))
        best = {who: {k: min(r[k] for r in rs) for k in ("seconds", "cpu", "peak_mb")} for who, rs in runs.items()}
        median = {who: statistics.median(r["seconds"] for r in rs) for who, rs in runs.items()}
        form = "zip" if zipped else "legacy"
        size = f"{weights / 4e6:.0f}M params"
        rows.append(judge(Row(f".pt read without torch ({form}, {size}), wall", best["ours"]["seconds"],
                              best["torch"]["seconds"], "torch.load(weights_only=True)",
                              note=f"CPU {best['ours']['cpu']:.3f} s vs {best['torch']['cpu']:.3f} s; median wall "
                                   f"{median['ours']:.3f} s vs {median['torch']:.3f} s"), max_ratio=1.0))
        rows.append(judge(Row(f".pt read without torch ({form}), peak RSS", best["ours"]["peak_mb"],
                              weights / 2 ** 20, "weight bytes", unit="MB",
                              note=f"torch.load peak {best['torch']['peak_mb']:.0f} MB"), max_ratio=1.2))
        path.unlink()


def _vm_hwm_mb() -> float:
    from .child import vm_hwm_mb
    return vm_hwm_mb()


def main(argv):
    who, path = argv
    cpu = time.process_time
    if who == "ours":
        from rnnconvert.formats.torch import loading
        base = _vm_hwm_mb()
        t, c = time.perf_counter(), cpu()
        arrays, _, _ = loading.load(path)
        seconds, c = time.perf_counter() - t, cpu() - c
        if "torch" in sys.modules:
            raise SystemExit("reading the .pt imported torch")
    else:
        import torch
        torch.set_num_threads(1)        # the read is one thread in both; torch's pool would count idle spinning
        base = _vm_hwm_mb()
        t, c = time.perf_counter(), cpu()
        arrays = torch.load(path, map_location="cpu", weights_only=True)
        seconds, c = time.perf_counter() - t, cpu() - c
    print(json.dumps({"seconds": seconds, "cpu": c, "peak_mb": _vm_hwm_mb() - base, "tensors": len(arrays)}))


if __name__ == "__main__":
    main(sys.argv[1:])
