"""onnxruntime on a written file: the independent runtime verification uses for ONNX.

The output compared is the graph output the model was read from (`model.output_name`), in the canonical
shape: a graph whose output is a recurrent node's raw Y [T, 1, B, H] or Y_h [1, B, H] loses that
direction axis (`dropped_output_axis`, recorded by the reader), as the canonical model does; a
bidirectional node's raw Y [T, 2, B, H] or Y_h [2, B, H] is compared as the canonical concatenation
([T, B, 2H], [B, 2H]: `directions_last`).
"""
from __future__ import annotations

import re

import numpy as np

from ...errors import RuntimeUnavailable


def import_onnxruntime():
    """The onnxruntime module, or RuntimeUnavailable (verification then reports its checks as not run)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise RuntimeUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
    return ort


def _session(path):
    ort = import_onnxruntime()
    try:
        return ort.InferenceSession(str(path), quiet_options(ort), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
        raise RuntimeError(f"onnxruntime cannot load this file: {ort_error(exc)}") from None


# onnxruntime's error text around what it says: '[ONNXRuntimeError] : 1 : FAIL : Load model from PATH failed:',
# then the C++ source line and function signature that raised ('/onnxruntime_src/.../model.cc:256 ns::f(...)').
_ORT_PREFIX = re.compile(r"^\s*\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*(Load model from .*? failed:)?")
_ORT_SOURCE = re.compile(r"\S*/\S+\.(?:cc|cpp|h):\d+\s+(?:[\w:~<>]+\([^()]*\)\s*(?:const\s*)?)?")


def ort_error(exc) -> str:
    """What onnxruntime says went wrong, without its error-code prefix, the file's path and its C++ source line."""
    return " ".join(_ORT_SOURCE.sub(" ", _ORT_PREFIX.sub("", str(exc))).split()) or type(exc).__name__


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
    axis = 1 if model.input.layout == "time_batch_feature" else 0
    batch = x.shape[axis]
    fixed = inp.shape[axis] if len(inp.shape) > axis else None
    if isinstance(fixed, int) and 0 < fixed != batch and not (feeds or model.state_inputs or model.state_outputs) \
            and len(sess.get_inputs()) == 1:
        return _in_fixed_batches(path, x, model, sess, axis, fixed), {}
    dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(inp.type, np.float32)   # token ids
    all_feeds = {inp.name: np.ascontiguousarray(x.astype(dtype))}
    if model.state_inputs:                # a streaming graph: unfed states start at the model's initial values
        from ...model.states import default_feeds
        all_feeds.update(default_feeds(model, batch))
    elif len(sess.get_inputs()) > 1:      # a --stateful file: its states start at their initial values
        from .stateful import initial_feeds
        all_feeds.update(initial_feeds(sess.get_modelmeta().custom_metadata_map, batch))
    all_feeds.update({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in (feeds or {}).items()})
    names = [o.name for o in sess.get_outputs()]
    try:
        res = sess.run(None, all_feeds)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
        raise RuntimeError(f"onnxruntime cannot run this file: {ort_error(exc)}") from None
    out = res[names.index(model.output_name)] if model.output_name in names else res[0]
    dropped = model.source.get("dropped_output_axis")     # the graph output is a recurrent node's Y or Y_h:
    if dropped and out.ndim == dropped[1] and out.shape[dropped[0]] == 1:   # its direction axis of 1 goes
        out = np.squeeze(out, axis=dropped[0])
    elif dropped and out.ndim == dropped[1] and out.shape[dropped[0]] == 2:  # two: [.., 2, .., H] -> [.., 2H]
        out = directions_last(out, dropped[0])
    return out, {p.name: res[names.index(p.name)] for p in model.state_outputs if p.name in names}


def directions_last(out: np.ndarray, axis: int) -> np.ndarray:
    """A raw Y [T, 2, B, H] / Y_h [2, B, H] (or batch-major) as the canonical concatenation: the direction
    axis moved next to the features and merged with them, forward first ([T, B, 2H] / [B, 2H])."""
    moved = np.moveaxis(out, axis, -2)
    return moved.reshape(moved.shape[:-2] + (-1,))


def _in_fixed_batches(path, x, model, sess, axis: int, fixed: int) -> np.ndarray:
    """A graph whose input declares a fixed batch size (an export without dynamic axes) run on `fixed` rows at
    a time, the last group padded with copies of its last row; the rows are independent."""
    outs = []
    for start in range(0, x.shape[axis], fixed):
        rows = np.take(x, range(start, min(start + fixed, x.shape[axis])), axis=axis)
        n = rows.shape[axis]
        if n < fixed:
            pad = np.repeat(np.take(rows, [n - 1], axis=axis), fixed - n, axis=axis)
            rows = np.concatenate([rows, pad], axis=axis)
        y = run_states(path, rows, model, session=sess)[0]
        out_axis = axis if y.ndim == 3 else 0            # [T, B, F] / [B, T, F], or [B, F]
        outs.append(np.take(y, range(n), axis=out_axis))
    return np.concatenate(outs, axis=out_axis)
