"""One recurrent layer -> ONNX: a native LSTM/GRU/RNN node (weights in ONNX's gate order: LSTM iofc,
GRU zrh), or the Scan nodes of `scan.py` where no native node computes it; then the glue that turns
its `[time, dirs, batch, H]` output into what the source framework returns (reversed or last step,
merged directions) and its initial states into constants.
"""
from __future__ import annotations

import numpy as np
from .lite import TensorProto, helper

from ...model import gates
from ...errors import InputError, UnsupportedError
from ...model import Recurrent
from . import _acts
from . import frontend as _front
from . import scan as _scan
from .initializers import Builder as _Builder
from .writer_common import _activation, _base

_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
_REDUCE = {"sum": "ReduceSum", "mul": "ReduceProd", "ave": "ReduceMean"}


class _State:
    def __init__(self, cur, major, has_time, graph_input, batch_axis):
        self.cur, self.major, self.has_time = cur, major, has_time
        self.graph_input, self.batch_axis = graph_input, batch_axis
        self.batch_dim: str | None = None     # [B] int64 tensor, built on first use
        self.mask: tuple[str, str] | None = None   # (bool [.., 1] tensor, 'batch' or 'time' major)
        self.ids_dtype: str | None = None


def _roles(cell: str) -> list[str]:
    return {"lstm": ["gate (f)", "cell (g)", "output (h)"], "gru": ["gate (f)", "candidate (g)"],
            "rnn": ["hidden (f)"]}[cell]


def _write_recurrent(b: _Builder, st: _State, layer: Recurrent, k: int, scan: bool = False,
                     record: bool = False) -> dict:
    """The layer as one native node (or Scan nodes); `record` names its arrays in the metadata entry."""
    base = _base(layer.name, k, layer.cell)
    H, D = layer.state_size, len(layer.weights)
    if st.major != "time":
        _front.to_layout(b, st, "time", f"{base}/X")
    x = st.cur
    if scan:
        if any(w.P is not None for w in layer.weights):
            raise UnsupportedError(f"layer '{layer.name}': LSTM peepholes need a native LSTM node, and "
                                   + "; ".join(_scan.reasons(layer)) + "; the Scan form has no peepholes")
        mask = _front.mask_in(b, st, "time", base) if st.mask is not None else None
        y_all, y_h, arrays, node_name = _scan.write_layer(b, st, layer, x, base, _activation, _initial_state,
                                                          mask)
        if layer.output != "sequence":    # a returned sequence keeps the mask as it is (as Keras does,
            st.mask = None                # even in processing order)
        outs = ["", y_h] if layer.output == "final_state" else [y_all]
    else:
        outs, arrays, node_name = _native(b, st, layer, x, base)
    return _glue(b, st, layer, base, outs, node_name, D, H, arrays if record else None, "scan" if scan else "native")


def _native(b: _Builder, st: _State, layer: Recurrent, x: str, base: str):
    cell, H = layer.cell, layer.hidden
    D = len(layer.weights)
    order = gates.ORDERS["onnx"][cell]
    ins = [x] + [b.tensor(f"{base}/{key}_{order}", (D,) + np.shape(getattr(layer.weights[0], key)),
                          [_to_onnx_order(getattr(w, key), cell) for w in layer.weights]) for key in ("W", "R")]
    arrays = {"W": ins[1], "R": ins[2]}
    Wb = [np.asarray(w.Wb) for w in layer.weights]
    Rb = [np.asarray(w.Rb) for w in layer.weights]
    no_bias = not layer.has_input_bias and not layer.has_recurrent_bias and \
        not any(np.any(a) for a in Wb + Rb)
    if no_bias:
        ins.append("")
    else:
        B = np.stack([np.concatenate([gates.from_canonical(wb, cell, "onnx"), gates.from_canonical(rb, cell, "onnx")])
                      for wb, rb in zip(Wb, Rb)]).astype(np.float32)
        ins.append(b.const(f"{base}/B_{order}", B))
        arrays["B"] = ins[-1]
    ins.append("")   # sequence_lens
    for key in ("h0", "c0")[:2 if cell == "lstm" else 1]:
        ins.append(_initial_state(b, st, layer, key, base))
        if ins[-1]:     # the [D, 1 or n, size] constant, expanded or not
            arrays[key] = next(t.name for t in reversed(b.inits) if t.name.startswith(f"{base}/{key}")
                               and t.data_type == TensorProto.FLOAT)
    if any(w.P is not None for w in layer.weights):     # peepholes: input P [D, 3H] (i, o, f)
        P = np.stack([gates.peepholes_from_canonical(w.P) if w.P is not None else np.zeros(3 * H, np.float32)
                      for w in layer.weights]).astype(np.float32)
        ins.append(b.const(f"{base}/P_iof", P))
        arrays["P"] = ins[-1]
    while ins and ins[-1] == "":
        ins.pop()
    attrs = _acts.node_attributes(layer, D)
    node_name = b.unique(base)
    if layer.output == "sequence":
        outs = [b.unique(f"{node_name}/Y")]
    else:
        outs = ["", b.unique(f"{node_name}/Y_h")] if layer.output == "final_state" else [b.unique(f"{node_name}/Y")]
    b.nodes.append(helper.make_node(_OP[cell], ins, outs, name=node_name, **attrs))
    return outs, arrays, node_name


def _to_onnx_order(a, cell: str):
    """A fill writing one direction's canonical W or R in ONNX gate order (one copy, any layout)."""
    return lambda out: gates.permute_into(out, a, cell, gates.CANONICAL[cell], gates.ORDERS["onnx"][cell])


def _glue(b: _Builder, st: _State, layer: Recurrent, base: str, outs: list[str], node_name: str, D: int, H: int,
          arrays: dict | None, form: str) -> dict:
    """Around the recurrent outputs Y [T, D, B, H] / Y_h [D, B, H]: what the layer returns."""
    cell = layer.cell
    if layer.output == "sequence":
        y = outs[0]                                           # [T, D, B, H]
        if D == 1:
            y = b.op("Squeeze", [y, b.const(f"{base}/axis1", [1], np.int64)], f"{base}/Squeeze_dirs")
        elif layer.merge == "concat":
            y = b.op("Transpose", [y], f"{base}/Y_TBDH", perm=[0, 2, 1, 3])
            y = b.op("Reshape", [y, b.const(f"{base}/shape_TB_DH", [0, 0, D * H], np.int64)], f"{base}/concat_dirs")
        else:
            y = _reduce(b, layer.merge, y, 1, base)
        if layer.time_order == "processing":
            y = _reverse_time(b, y, base)
        st.cur, st.major, st.has_time = y, "time", True
    else:
        if layer.output == "last_step":                     # Y[T-1]: [D, B, H]
            y = b.op("Gather", [outs[0], b.const(f"{base}/last", -1, np.int64)], f"{base}/last_step", axis=0)
        else:
            y = outs[1]                                       # Y_h: [D, B, H]
        if D == 1:
            y = b.op("Squeeze", [y, b.const(f"{base}/axis0", [0], np.int64)], f"{base}/Squeeze_dirs")
        elif layer.merge == "concat":
            y = b.op("Transpose", [y], f"{base}/BDH", perm=[1, 0, 2])
            y = b.op("Reshape", [y, b.const(f"{base}/shape_B_DH", [0, D * H], np.int64)], f"{base}/concat_dirs")
        else:
            y = _reduce(b, layer.merge, y, 0, base)
        st.cur, st.has_time = y, False
    entry = {"kind": cell, "name": layer.name, "node": node_name,
             "activations": [a.to_dict() for a in layer.activations], "output": layer.output,
             "merge": layer.merge, "time_order": layer.time_order, "clip": layer.clip,
             "has_input_bias": layer.has_input_bias, "has_recurrent_bias": layer.has_recurrent_bias,
             "masked_output": layer.masked_output}
    for s in ("h0", "c0"):
        v = getattr(layer.weights[0], s)
        entry[s] = None if v is None else list(np.shape(v))
    if arrays is not None:
        entry.update(form=form, arrays=arrays, hidden=layer.hidden, direction=layer.direction,
                     reset_after=bool(layer.reset_after))
    return entry


def _reverse_time(b: _Builder, y: str, base: str) -> str:
    return b.op("Slice", [y, b.const(f"{base}/rev_start", [-1], np.int64),
                          b.const(f"{base}/rev_end", [np.iinfo(np.int64).min], np.int64),
                          b.const(f"{base}/axis0", [0], np.int64),
                          b.const(f"{base}/rev_step", [-1], np.int64)], f"{base}/processing_order")


def _reduce(b: _Builder, merge: str, y: str, axis: int, base: str) -> str:
    op = _REDUCE[merge]
    if op == "ReduceSum":   # axes is an input from opset 13, an attribute for the others until 18
        return b.op(op, [y, b.const(f"{base}/axis{axis}", [axis], np.int64)], f"{base}/{merge}_dirs", keepdims=0)
    return b.op(op, [y], f"{base}/{merge}_dirs", axes=[axis], keepdims=0)


def _initial_state(b: _Builder, st: _State, layer: Recurrent, key: str, base: str) -> str:
    values = [getattr(w, key) for w in layer.weights]
    if all(v is None for v in values):
        return ""
    H = layer.state_size if key == "h0" else layer.hidden
    if all(v is None or np.ndim(v) == 1 for v in values):
        # [D, 1, H] broadcast to the runtime batch: Expand(base, [D, B, H]), B from Shape(input)
        arr = np.stack([np.zeros(H) if v is None else np.asarray(v) for v in values])[:, None, :]
        if st.batch_dim is None:
            st.batch_dim = b.op("Shape", [st.graph_input], "batch_size", start=st.batch_axis,
                                end=st.batch_axis + 1)
        shape = b.op("Concat", [b.const(f"{base}/{key}_dirs", [len(values)], np.int64), st.batch_dim,
                                b.const(f"{base}/{key}_size", [H], np.int64)], f"{base}/{key}_shape", axis=0)
        return b.op("Expand", [b.const(f"{base}/{key}", arr), shape], f"{base}/{key}_broadcast")
    batch = {np.shape(v)[0] for v in values if v is not None and np.ndim(v) == 2}
    if len(batch) != 1:
        raise InputError(f"{key} of the directions have different batch sizes {sorted(batch)}", layer=layer.name)
    n = batch.pop()
    arr = np.stack([np.zeros((n, H)) if v is None else np.broadcast_to(np.asarray(v), (n, H)) for v in values])
    return b.const(f"{base}/{key}", arr)
