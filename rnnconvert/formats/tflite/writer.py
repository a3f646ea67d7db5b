"""The canonical model as one TFLite subgraph, written as the FlatBuffer LiteRT reads (no TensorFlow).

Input [batch, time, features] (token ids [batch, time] before an Embedding) with batch and time dynamic
(shape_signature -1; LiteRT resizes them with `resize_tensor_input`), unless the model fixes its length.
A time-major model gets a TRANSPOSE at each end.  float32 throughout; `quantize="dynamic"` stores the
recurrent and Dense weights as int8 with one scale per tensor (`quantize.py`).
"""
from __future__ import annotations

import json
import os

import numpy as np

from ...errors import UnsupportedError
from ...model import (ActivationLayer, BatchNorm, Dense, Dropout, Embedding, Masking, Model, Pooling1D,
                      Recurrent)
from . import masks
from . import schema as s
from .emit import Emitter
from .front import emit_front
from .graph import TFLiteModel
from .recurrent import emit_recurrent, fused_form

QUANTIZE_MODES = ("dynamic",)
LOOPS_KEY = "rnnconvert.loops"
STATES_KEY = "rnnconvert.states"
_KEEP_MASK = (Dropout, Dense, ActivationLayer, BatchNorm)      # a mask passes these (reference/layers.py)


def write(model: Model, path, quantize: str | None = None, stateful: bool = False, **options) -> list[str]:
    """Write `model` to `path` as .tflite; returns notes on what changed in form.

    stateful: each recurrent layer's state as extra inputs `<layer>/h_in` (`c_in`) [batch, size] and outputs
    `<layer>/h_out` (`c_out`), for streaming; every recurrent layer is then a WHILE loop (the fused ops keep
    their states in variables, not tensors a caller feeds)."""
    path = os.fspath(path)
    if options:
        raise UnsupportedError(f"the TFLite writer does not take {', '.join(sorted(options))}", path=path)
    data, notes = to_tflite(model, quantize, path, stateful)
    with open(path, "wb") as fh:
        fh.write(data)
    return notes


def to_tflite(model: Model, quantize: str | None = None, path: str | None = None,
              stateful: bool = False) -> tuple[bytes, list[str]]:
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise UnsupportedError(f"quantize '{quantize}'; known: {', '.join(QUANTIZE_MODES)}", path=path)
    if model.has_state_io:
        raise UnsupportedError("the model has state inputs or outputs ("
                               + ", ".join(p.name for p in model.state_inputs + model.state_outputs)
                               + "), which the TFLite writer does not write yet", path=path)
    tm = TFLiteModel("rnnconvert")
    e = Emitter(tm.subgraph("main"))
    if stateful:
        e.stateful = []
        bad = [r.name for r in model.recurrent_layers if r.direction != "forward"]
        if bad:
            raise UnsupportedError("--stateful streams forward layers only: a reverse or bidirectional layer's first "
                                   f"output depends on the last input ({', '.join(bad)})", path=path)
    time_major = model.input.layout == "time_batch_feature"
    T = model.input.time_steps
    ids = model.input.dtype in ("int64", "int32")
    dtype = {"int64": s.INT64, "int32": s.INT32}.get(model.input.dtype, s.FLOAT32)
    batch = _fixed_batch(model)
    dims = [T, batch] if time_major else [batch, T]
    if not ids:
        dims.append(model.input.features or model.layers[0].input_size if model.layers else model.input.features)
    x = e.new(model.input.name or "input", dims, dtype)
    e.g.inputs = [x.index]
    if time_major:
        x = e.transpose_time_batch(x, "input/batch_major")
    notes = []
    mask = None                     # bool [batch, time] while a Keras mask is live
    after_loop = stateful           # a WHILE loop written before: every recurrent layer after it is one too
    for layer in model.layers:
        try:
            if isinstance(layer, Recurrent):
                x = emit_recurrent(e, layer, x, quantize, mask, force_loop=after_loop)
                notes.append(_form_note(layer, mask is not None, after_loop))
                after_loop = after_loop or mask is not None or bool(fused_form(layer))
                mask = mask if layer.output == "sequence" else None
            elif isinstance(layer, Masking):
                x, mask = masks.masking(e, x, layer)
            elif mask is not None and isinstance(layer, Pooling1D) and layer.pool_size is None \
                    and layer.mode == "average":
                x, mask = masks.masked_mean(e, x, mask, layer), None
            else:
                ids = x
                x = emit_front(e, layer, x, quantize)
                if isinstance(layer, Embedding) and layer.mask_zero:
                    mask = masks.zero_ids(e, ids, layer.name)
                elif not (isinstance(layer, _KEEP_MASK) and len(x.dims) == 3):
                    mask = None
        except UnsupportedError as exc:
            exc.path = exc.path or path
            raise
        if layer.kind == "dropout":
            notes.append(f"layer '{layer.name}': Dropout is the identity at inference and is not written")
        if layer.kind == "batch_norm":
            notes.append(f"layer '{layer.name}': BatchNorm folded into one scale and one offset (MUL, ADD)")
    if e.loops:
        tm.metadata[LOOPS_KEY] = json.dumps(e.loops).encode()
    if e.spans:
        tm.metadata[masks.SPANS_KEY] = json.dumps(e.spans).encode()
    if e.stateful:
        tm.metadata[STATES_KEY] = json.dumps(e.stateful).encode()
        e.g.inputs += [p["input"] for p in e.stateful]
    if time_major and len(x.dims) == 3:
        x = e.transpose_time_batch(x, "output/time_major")
    e.g.outputs = [x.index] + [p["output"] for p in e.stateful or []]
    tm.subgraphs[0].tensors[x.index]["name"] = model.output_name or "output"
    if quantize:
        notes.append("recurrent and Dense weights stored as int8, one scale per tensor (dynamic-range quantization): "
                     "outputs differ from the float model; verification reports by how much")
    return tm.to_bytes(), notes


def _fixed_batch(model: Model) -> int | None:
    """The batch size initial states given per row ([batch, state] h0/c0) fix, else None (dynamic)."""
    for layer in model.recurrent_layers:
        for w in layer.weights:
            for a in (w.h0, w.c0):
                if a is not None and np.ndim(a) == 2:
                    return int(a.shape[0])
    return None


def _form_note(layer: Recurrent, masked: bool = False, after_loop: bool = False) -> str:
    why = ("a mask reaches it: TFLite's sequence ops take none" if masked else fused_form(layer)
           or ("it follows a WHILE loop: LiteRT 2.3 corrupts its heap running a fused LSTM on a loop's output "
               "(a GRU(8) then an LSTM(64) aborts when the interpreter is freed), or --stateful: the fused ops keep "
               "their states in variables" if after_loop else None))
    if why:
        return (f"layer '{layer.name}': written as a WHILE loop over the cell, one per direction, as TensorFlow "
                f"lowers it ({why})")
    op = {"lstm": "LSTM", "rnn": "RNN"}[layer.cell]
    kind = "BIDIRECTIONAL" if layer.direction == "bidirectional" else "UNIDIRECTIONAL"
    extra = ", between two REVERSE_V2" if layer.direction == "reverse" else ""
    bias = "; its input and recurrent biases summed into one (float32)" if layer.has_recurrent_bias else ""
    return f"layer '{layer.name}': written as {kind}_SEQUENCE_{op}{extra}{bias}"
