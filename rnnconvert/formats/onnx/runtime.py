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
    dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(inp.type, np.float32)   # token ids
    feeds = {inp.name: np.ascontiguousarray(x.astype(dtype))}
    if len(sess.get_inputs()) > 1:        # a --stateful file: its states start at their initial values
        from .stateful import initial_feeds
        batch = x.shape[1 if model.input.layout == "time_batch_feature" else 0]
        feeds.update(initial_feeds(sess.get_modelmeta().custom_metadata_map, batch))
    return sess.run(None, feeds)[0]
