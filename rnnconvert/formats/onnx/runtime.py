"""onnxruntime on a written file: the independent runtime verification uses for ONNX."""
from __future__ import annotations

import numpy as np

from ...runtimes import RuntimeUnavailable


def _session(path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
    return ort.InferenceSession(str(path), quiet_options(ort), providers=["CPUExecutionProvider"])


def quiet_options(ort):
    """Session options logging errors only: onnxruntime's warnings (its coloured log lines on stderr)
    are not the user's business; what goes wrong reaches the report as an exception."""
    ort.set_default_logger_severity(3)          # the process-wide logger, used before a session has its own
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return opts


def run(path, x, model) -> np.ndarray:
    return run_states(path, x, model)[0]


def runner(path, model):
    """x -> output with one session for every input (a session of a 400 MB model takes seconds)."""
    sess = _session(path)
    return lambda x: run_states(path, x, model, session=sess)[0]


def run_states(path, x, model, feeds: dict | None = None, session=None) -> tuple[np.ndarray, dict]:
    """The file on `x` with the state inputs `feeds` (the rest at their initial values);
    returns (output, {state output name: array})."""
    sess = session or _session(path)
    inp = sess.get_inputs()[0]
    dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(inp.type, np.float32)   # token ids
    all_feeds = {inp.name: np.ascontiguousarray(x.astype(dtype))}
    batch = x.shape[1 if model.input.layout == "time_batch_feature" else 0]
    if model.state_inputs:                # a streaming graph: unfed states start at the model's initial values
        from ...states import default_feeds
        all_feeds.update(default_feeds(model, batch))
    elif len(sess.get_inputs()) > 1:      # a --stateful file: its states start at their initial values
        from .stateful import initial_feeds
        all_feeds.update(initial_feeds(sess.get_modelmeta().custom_metadata_map, batch))
    all_feeds.update({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in (feeds or {}).items()})
    names = [o.name for o in sess.get_outputs()]
    res = sess.run(None, all_feeds)
    return res[0], {p.name: res[names.index(p.name)] for p in model.state_outputs if p.name in names}
