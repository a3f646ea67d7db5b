"""onnxruntime on a written file: the independent runtime verification uses for ONNX."""
from __future__ import annotations

import numpy as np

from ...runtimes import RuntimeUnavailable


def run(path, x, model) -> np.ndarray:
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
