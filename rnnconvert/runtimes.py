"""Independent runtimes: each format's own framework, run on a written file when installed.

`run(runtime, path, x, model)` returns the runtime's output for `x` (in the model's own layout), or raises
`RuntimeUnavailable` when the framework is not installed (the report then says so).
"""
from __future__ import annotations

import numpy as np


class RuntimeUnavailable(Exception):
    pass


def _onnxruntime(path, x, model):
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = np.int64 if "int64" in inp.type else np.float32
    return sess.run(None, {inp.name: np.ascontiguousarray(x.astype(dtype))})[0]


def _torch(path, x, model):
    from .formats import torch as torch_format
    return torch_format.run(path, x, model)


def _keras(path, x, model):
    from .formats import keras as keras_format
    return keras_format.run(path, x, model)


RUNTIMES = {"onnxruntime": _onnxruntime, "torch": _torch, "keras": _keras}


def run(runtime: str, path, x: np.ndarray, model) -> np.ndarray:
    fn = RUNTIMES.get(runtime)
    if fn is None:
        raise RuntimeUnavailable(f"no runtime '{runtime}' is known")
    return fn(path, x, model)


def available(runtime: str) -> bool:
    import importlib.util
    module = {"onnxruntime": "onnxruntime", "keras": "keras", "torch": "torch"}.get(runtime)
    return bool(module) and runtime in RUNTIMES and importlib.util.find_spec(module) is not None
