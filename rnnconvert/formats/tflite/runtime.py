"""LiteRT (`ai-edge-litert`) on a .tflite file: the independent runtime verification uses for TFLite.

The interpreter runs without its default delegate (XNNPACK), on TFLite's own builtin kernels, as a phone
without an accelerator would; the input is resized to each input's batch and length before it runs, and its
variables reset: TensorFlow's converter leaves the fused LSTM's state in variables that outlive `invoke`
(rnnconvert's own files rewrite them inside the graph, so a reset changes nothing for them).
"""
from __future__ import annotations

import numpy as np

from ...errors import RuntimeUnavailable


def import_litert():
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        raise RuntimeUnavailable("LiteRT is not installed (pip install ai-edge-litert)") from None
    return interpreter


def interpreter(path):
    lite = import_litert()
    try:
        it = lite.Interpreter(model_path=str(path), experimental_op_resolver_type=
                              lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except Exception as exc:  # noqa: BLE001 - LiteRT's own errors
        raise RuntimeError(f"LiteRT cannot load this file: {_first_line(exc)}") from None
    if len(it.get_input_details()) > 1:     # a --stateful file: its states' initial values, from its metadata
        from .parse import parse
        from .reader_loop import STATES_KEY
        from ...files.text import read_json
        with open(path, "rb") as fh:
            meta = parse(fh.read(), str(path))[1]
        ports = read_json(meta.get(STATES_KEY, b"[]"), path, f"metadata '{STATES_KEY}'")
        it._rnnconvert_initial = {p["name"]: p.get("initial") for p in ports if isinstance(p, dict)}
    return it


def _first_line(exc) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def invoke(it, x: np.ndarray, model=None) -> np.ndarray:
    """The loaded interpreter on `x`: the input resized to x's shape, the first output.  A file whose batch
    is fixed (TensorFlow's converter writes batch 1) runs on that many rows at a time."""
    inp = it.get_input_details()[0]
    axis = 1 if model is not None and model.input.layout == "time_batch_feature" else 0
    sig = list(inp.get("shape_signature", inp["shape"]))
    fixed = int(inp["shape"][axis]) if len(sig) > axis and sig[axis] != -1 else None
    if fixed and x.ndim > axis and x.shape[axis] != fixed:
        return _in_fixed_batches(it, x, axis, fixed)
    return _invoke(it, x)


def _in_fixed_batches(it, x, axis: int, fixed: int) -> np.ndarray:
    outs = []
    for start in range(0, x.shape[axis], fixed):
        rows = np.take(x, range(start, min(start + fixed, x.shape[axis])), axis=axis)
        n = rows.shape[axis]
        if n < fixed:
            rows = np.concatenate([rows, np.repeat(np.take(rows, [n - 1], axis=axis), fixed - n, axis=axis)], axis)
        y = _invoke(it, rows)
        out_axis = axis if y.ndim == 3 else 0
        outs.append(np.take(y, range(n), axis=out_axis))
    return np.concatenate(outs, axis=out_axis)


def _invoke(it, x: np.ndarray, states: dict | None = None) -> np.ndarray:
    """One invoke; a --stateful file's state inputs fed `states` {input name: array}, else their initial values."""
    inp = it.get_input_details()[0]
    x = np.ascontiguousarray(x.astype(inp["dtype"]))
    try:
        if list(inp["shape"]) != list(x.shape):
            it.resize_tensor_input(inp["index"], list(x.shape), strict=True)
        ports = it.get_input_details()[1:]
        for port in ports:
            it.resize_tensor_input(port["index"], [x.shape[0], int(port["shape"][-1])], strict=True)
        it.allocate_tensors()
        it.reset_all_variables()    # a file TensorFlow wrote keeps its LSTM states in variables across invokes
        it.set_tensor(inp["index"], x)
        for port in ports:
            it.set_tensor(port["index"], _state_feed(it, port, x.shape[0], states))
        it.invoke()
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(f"LiteRT cannot run this file on an input of shape {list(x.shape)}: "
                           f"{_first_line(exc)}") from None
    return np.array(it.get_tensor(it.get_output_details()[0]["index"]))


def _state_feed(it, port, batch: int, states: dict | None) -> np.ndarray:
    if states and port["name"] in states:
        return np.ascontiguousarray(states[port["name"]], np.float32)
    initial = getattr(it, "_rnnconvert_initial", {}).get(port["name"])
    size = int(port["shape"][-1])
    if initial is None:
        return np.zeros((batch, size), np.float32)
    return np.ascontiguousarray(np.broadcast_to(np.asarray(initial, np.float32), (batch, size)))


def run(path, x, model) -> np.ndarray:
    return invoke(interpreter(path), x, model)


def runner(path, model):
    """x -> output.  A file with WHILE loops gets a fresh interpreter per input: LiteRT 2.3 aborted once
    ('double free or corruption') in allocate_tensors after resizing such a file in a long-running process
    (bench/wild.py, not reproduced alone); loading a file again costs milliseconds.  So does a file with int8
    hybrid ops: resized to another batch, LiteRT 2.3 kept a hybrid CONV_2D's row sums (computed once, in the
    persistent arena) as stale memory (a Conv1D + LSTM file 0.23 off from its own first run at that shape)."""
    from ...model.hybrid import any_hybrid
    if _has_loops(path) or any_hybrid(model):
        return lambda x: invoke(interpreter(path), x, model)
    it = interpreter(path)
    return lambda x: invoke(it, x, model)


def _has_loops(path) -> bool:
    """Does the file hold rnnconvert's WHILE loops (its metadata key is in the file)?"""
    with open(path, "rb") as fh:
        return b"rnnconvert.loops" in fh.read()
