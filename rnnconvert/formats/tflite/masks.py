"""Keras masks in a TFLite graph (semantics in reference/layers.py): a bool mask [batch, time] made from the
token ids (Embedding mask_zero: NOT_EQUAL 0) or the features (Masking: REDUCE_ANY of NOT_EQUAL mask_value,
the masked steps zeroed), read by the recurrent layers after it, each then a WHILE loop that keeps its
state where a step is masked (`loop.py`: SELECT_V2, exact), and by a global average pooling, which
averages the unmasked steps.  Each construct's ops are recorded as a span in the file's metadata
("rnnconvert.spans") so the reader takes the layer back without pattern-matching them.
"""
from __future__ import annotations

import numpy as np

from ...model import Masking, Pooling1D
from . import schema as s
from .emit import Emitter, Value

SPANS_KEY = "rnnconvert.spans"


def _span(e: Emitter, first: int, record: dict) -> None:
    e.spans.append({**record, "ops": [first, len(e.g.ops) - 1]})


def zero_ids(e: Emitter, ids: Value, layer_name: str) -> Value:
    first = len(e.g.ops)
    zero = e.g.const(f"{layer_name}/mask_id", np.asarray(0, {s.INT64: np.int64}.get(ids.dtype, np.int32)))
    mask = e.op("NOT_EQUAL", [ids.index, zero], e.new(f"{layer_name}/mask", ids.dims[:2], s.BOOL))
    _span(e, first, {"kind": "mask_zero", "layer": layer_name})
    return mask


def masking(e: Emitter, x: Value, layer: Masking) -> tuple[Value, Value]:
    first, name = len(e.g.ops), layer.name
    differs = e.op("NOT_EQUAL", [x.index, e.scalar(f"{name}/mask_value", layer.mask_value)],
                   e.new(f"{name}/differs", x.dims, s.BOOL))
    mask = e.op("REDUCE_ANY", [differs.index, e.ints(f"{name}/feature_axis", [2])],
                e.new(f"{name}/mask", x.dims[:2], s.BOOL), "ReducerOptions", keep_dims=False)
    keep = e.op("CAST", [mask.index], e.new(f"{name}/mask_float", x.dims[:2]))
    keep = e.op("EXPAND_DIMS", [keep.index, e.ints(f"{name}/axis", 2)], e.new(f"{name}/mask_3d", x.dims[:2] + [1]))
    y = e.op("MUL", [x.index, keep.index], e.new(f"{name}/output", x.dims), "MulOptions")
    _span(e, first, {"kind": "masking", "layer": name, "mask_value": float(layer.mask_value),
                     "input": x.index, "output": y.index})
    return y, mask


def masked_mean(e: Emitter, x: Value, mask: Value, layer: Pooling1D) -> Value:
    """sum over unmasked steps / their count (Keras's GlobalAveragePooling1D under a mask)."""
    first, name = len(e.g.ops), layer.name
    m3 = e.op("EXPAND_DIMS", [mask.index, e.ints(f"{name}/axis", 2)], e.new(f"{name}/mask_3d", x.dims[:2] + [1],
                                                                           s.BOOL))
    kept = e.op("SELECT_V2", [m3.index, x.index, e.scalar(f"{name}/zero", 0.0)], e.new(f"{name}/kept", x.dims))
    total = e.op("SUM", [kept.index, e.ints(f"{name}/time_axis", [1])], e.new(f"{name}/sum", [x.dims[0], x.dims[2]]),
                 "ReducerOptions", keep_dims=False)
    mf = e.op("CAST", [mask.index], e.new(f"{name}/mask_float", x.dims[:2]))
    count = e.op("SUM", [mf.index, e.ints(f"{name}/time_axis2", [1])], e.new(f"{name}/count", [x.dims[0], 1]),
                 "ReducerOptions", keep_dims=True)
    y = e.op("DIV", [total.index, count.index], e.new(f"{name}/output", [x.dims[0], x.dims[2]]))
    _span(e, first, {"kind": "masked_mean", "layer": name, "input": x.index, "output": y.index})
    return y
