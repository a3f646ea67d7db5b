"""One measured job in a fresh interpreter: `python -m bench.child JOB ARGS...` prints JSON.

Peak memory is VmHWM (the process's high-water resident set) minus the same figure after the job's
modules are imported, so the interpreter and its libraries do not count.

    convert SRC DST [--no-verify] [--external-data] [--mat73]   rnnconvert.convert
    raw SRC DST                                       h5py read + onnx write + read back (the floor)
"""
from __future__ import annotations

import json
import os
import sys
import time


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv):
    job, src, dst, *flags = argv
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import h5py  # noqa: F401
    import numpy  # noqa: F401
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import scipy.special  # noqa: F401

    import rnnconvert
    from rnnconvert.reference import network as reference
    from rnnconvert.verification import convert as verification  # noqa: F401
    base = vm_hwm_mb()
    t = time.perf_counter()
    if job == "convert":
        write_options = ({"external_data": True} if "--external-data" in flags else {}) | \
            ({"version": "7.3"} if "--mat73" in flags else {})
        rnnconvert.convert(src, dst, verify="--no-verify" not in flags, force=True,
                           write_options=write_options or None)
    elif job == "raw":
        from bench.convert import raw_io
        raw_io(src, dst)
    else:
        raise SystemExit(f"unknown job {job}")
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "peak_mb": vm_hwm_mb() - base, "baseline_mb": base}))


if __name__ == "__main__":
    main(sys.argv[1:])
