"""Canonical model -> ONNX graph (opset 17) with one native LSTM/GRU/RNN node per recurrent layer.

A layer no native node can compute (an activation outside ONNX's list, an LSTM projection) becomes a
`Scan` over a cell of standard ops (`scan.py`); `stateful=True` exposes states as graph inputs and
outputs (`stateful.py`).

Glue keeps the graph time-major between recurrent nodes and turns the result back into what the
source framework's predict returns: `[batch, time, dirs*H]` (or merged), one step `[batch, H']`.
Settings ONNX cannot carry (names, bias flags, exact activation parameters, Dropout) go into the
`rnnconvert` metadata entry so that a file read back restores the canonical model; weights come
only from the graph.

A protobuf cannot exceed 2 GB: a model whose weights pass EXTERNAL_DATA_BYTES (or any model with
`external_data=True`) keeps its tensors in a sidecar `<name>.onnx.data` beside the file, named by a
relative location (ONNX external data), so the two files travel together.  Either way each weight
tensor is built in one copy and streamed from its buffer into the file (`initializers.py`).
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

from ...version import __version__
from ...model import gates
from ...errors import InputError, UnsupportedError
from ...model import ActivationLayer, Dense, Dropout, Embedding, Model, Recurrent, json_default
from ...files.text import read_json
from . import _acts
from . import initializers as _init
from . import frontend as _front
from . import scan as _scan

OPSET = 17
META_KEY = "rnnconvert"
META_VERSION = 1
_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
_REDUCE = {"sum": "ReduceSum", "mul": "ReduceProd", "ave": "ReduceMean"}
# Initializer bytes above which tensors go to the sidecar: well below protobuf's 2 GB limit.
EXTERNAL_DATA_BYTES = 1 << 30
EXTERNAL_DATA_SUFFIX = ".data"
EXTERNAL_MIN_TENSOR_BYTES = _init.EXTERNAL_MIN_TENSOR_BYTES
_Builder = _init.Builder


def write(model: Model, path, stateful: bool = False, external_data: bool | None = None,
          **options) -> list[str]:
    """Write `model` to `path`; returns notes on what changed in form.

    stateful: each recurrent layer's state as extra graph inputs and outputs (`stateful.py`).
    external_data: tensors in the sidecar `<path>.data`; None (default) when the weights pass
    EXTERNAL_DATA_BYTES.
    """
    path = str(path)
    if stateful and model.has_state_io:
        raise UnsupportedError("--stateful adds state inputs and outputs, but the model already has its own "
                               f"({', '.join(p.name for p in model.state_inputs + model.state_outputs)}), which are "
                               "written as they are; write it without --stateful", path=path)
    if external_data is None:
        external_data = 4 * model.parameter_count() > EXTERNAL_DATA_BYTES
    if external_data:
        location = os.path.basename(path) + EXTERNAL_DATA_SUFFIX
        sidecar = os.path.join(os.path.dirname(os.path.abspath(path)), location)
        with open(sidecar, "wb") as fh:
            proto, notes, b = _to_onnx(model, (fh, location))
        notes.append(f"weights ({b.external_bytes / 1e6:.0f} MB) written as ONNX external data to {location} "
                     "beside the .onnx file: keep the two files together")
    else:
        proto, notes, b = _to_onnx(model, defer=True)
    if stateful:
        from .stateful import make_stateful
        notes += make_stateful(proto, model, path)
    if model.has_state_io:
        from .states import add_state_io
        meta = read_json(next(p.value for p in proto.metadata_props if p.key == META_KEY), path, "metadata")
        nodes_of = {e["name"]: e["node"] for e in meta["layers"] if e.get("node") and e.get("form") != "scan"}
        notes += add_state_io(proto, model, nodes_of, path)
    try:
        _init.check(proto, b)
    except Exception as exc:   # a bug of ours, not the user's: say so plainly
        if external_data and os.path.exists(sidecar):
            os.remove(sidecar)
        raise InputError(f"the ONNX graph written for this model does not pass onnx.checker ({exc})",
                         path=path) from None
    _init.save(proto, b, path)
    return notes


def to_onnx(model: Model) -> tuple[onnx.ModelProto, list[str]]:
    """The graph with every tensor inside it."""
    proto, notes, _ = _to_onnx(model)
    return proto, notes


def _to_onnx(model: Model, sidecar: tuple | None = None, defer: bool = False):
    model.validate()
    masked = _front.masked_layers(model)
    scan = {k for k, layer in enumerate(model.layers)
            if isinstance(layer, Recurrent) and (_scan.reasons(layer) or k in masked)}
    front = any(isinstance(layer, _front.FRONT_KINDS) for layer in model.layers)
    b = _Builder(sidecar, defer)
    notes: list[str] = []
    in_name = b.unique(model.input.name or "input")
    out_name = model.output_name or "output"
    if out_name == in_name:
        raise InputError(f"the model's input and output are both named '{in_name}'; ONNX needs two names")
    b.unique(out_name)      # reserved: no internal tensor may take the output's name
    time_major_in = model.input.layout == "time_batch_feature"
    dims = ["time", "batch", model.input.features] if time_major_in else ["batch", "time", model.input.features]
    elem = TensorProto.FLOAT
    ids_dtype = None
    if model.layers and isinstance(model.layers[0], Embedding):     # token ids: [batch, time] integers
        ids_dtype = "int32" if model.input.dtype == "int32" else "int64"
        elem, dims = (TensorProto.INT32 if ids_dtype == "int32" else TensorProto.INT64), dims[:2]
    graph_input = helper.make_tensor_value_info(in_name, elem, dims)
    state = _State(cur=in_name, major="time" if time_major_in else "batch", has_time=True,
                   graph_input=in_name, batch_axis=1 if time_major_in else 0)
    state.ids_dtype = ids_dtype
    record = bool(scan) or front
    meta_layers = []
    for k, layer in enumerate(model.layers):
        if isinstance(layer, Recurrent):
            meta_layers.append(_write_recurrent(b, state, layer, k, k in scan, record))
            if scan or front:
                why = _scan.reasons(layer) + (["masked steps are skipped, which native nodes cannot do for any "
                                               "mask"] if k in masked else [])
                form = ("a Scan over a cell of standard ops (" + "; ".join(why) + ")"
                        if k in scan else f"one native {_OP[layer.cell]} node")
                notes.append(f"layer '{layer.name}': written as {form}")
        elif isinstance(layer, _front.FRONT_KINDS):
            entry, form = _front.write_layer(b, state, layer, k, _base(layer.name, k, layer.kind), _activation)
            meta_layers.append(entry)
            notes.append(f"layer '{layer.name}': written as {form}")
        elif isinstance(layer, Dense):
            base = _base(layer.name, k, "dense")
            if state.major == "channel":
                _front.to_layout(b, state, "batch", base)
            arrays = {"kernel": b.const(f"{base}/kernel", layer.kernel)}
            state.cur = b.op("MatMul", [state.cur, arrays["kernel"]], f"{base}/MatMul")
            if layer.bias is not None:
                arrays["bias"] = b.const(f"{base}/bias", layer.bias)
                state.cur = b.op("Add", [state.cur, arrays["bias"]], f"{base}/BiasAdd")
            state.cur = _activation(b, layer.activation, state.cur, base)
            meta_layers.append({"kind": "dense", "name": layer.name, "activation": layer.activation.to_dict(),
                                "bias": layer.bias is not None, **({"arrays": arrays} if record else {})})
        elif isinstance(layer, ActivationLayer):
            if state.major == "channel" and layer.activation.name in ("softmax", "log_softmax"):
                _front.to_layout(b, state, "batch", _base(layer.name, k, "activation"))
            state.cur = _activation(b, layer.activation, state.cur, _base(layer.name, k, "activation"))
            meta_layers.append({"kind": "activation", "name": layer.name,
                                "activation": layer.activation.to_dict()})
        elif isinstance(layer, Dropout):
            meta_layers.append(_front.dropout_entry(layer))
            notes.append(f"layer '{layer.name}': Dropout is the identity at inference and is not written "
                         "as a node (kept in the metadata)")
        else:
            raise UnsupportedError(f"the ONNX writer does not know layer kind '{layer.kind}'", layer=layer.name)
    want_major = "time" if time_major_in else "batch"
    _front.to_layout(b, state, want_major, "output")
    if state.cur == in_name or not b.nodes or b.nodes[-1].output[0] != state.cur:
        b.nodes.append(helper.make_node("Identity", [state.cur], [out_name], name=b.unique("output/Identity")))
    else:
        b.nodes[-1].output[0] = out_name
    width = _units(model)
    out_dims = (["time", "batch", width] if time_major_in else ["batch", "time", width]) if state.has_time \
        else ["batch", width]
    graph_output = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_dims)
    graph = helper.make_graph(b.nodes, _safe(model.name) or "model", [graph_input], [graph_output],
                              [t for t in b.inits if t.name not in b.deferred])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rnnconvert", producer_version=__version__)
    proto.ir_version = 8
    meta = {"rnnconvert": __version__, "version": META_VERSION, "name": model.name,
            "input": dict(vars(model.input)), "output_name": model.output_name,
            "source": model.source, "layers": meta_layers, **({"scan": True} if scan or front else {})}
    helper.set_model_props(proto, {META_KEY: json.dumps(meta, default=json_default, sort_keys=True)})
    return proto, notes, b


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
    cell, H = layer.cell, layer.state_size
    D = len(layer.weights)
    if st.major != "time":
        _front.to_layout(b, st, "time", f"{base}/X")
    x = st.cur
    if scan:
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
    while ins and ins[-1] == "":
        ins.pop()
    names, alphas, betas = _acts.to_onnx(layer.activations)
    attrs = {"hidden_size": H, "direction": layer.direction, "activations": names * D}
    if alphas:
        attrs["activation_alpha"] = alphas * D
    if betas:
        attrs["activation_beta"] = betas * D
    if layer.clip is not None:
        attrs["clip"] = float(layer.clip)
    if cell == "gru":
        attrs["linear_before_reset"] = int(bool(layer.reset_after))
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


def _activation(b: _Builder, act, x: str, base: str) -> str:
    n = act.name
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softplus": "Softplus",
              "softsign": "Softsign", "exponential": "Exp"}
    f32 = lambda name, v: b.const(f"{base}/{name}", np.float32(v))  # noqa: E731
    if n == "linear":
        return x
    if n in simple:
        return b.op(simple[n], [x], f"{base}/{simple[n]}")
    if n in ("softmax", "log_softmax"):
        op = "Softmax" if n == "softmax" else "LogSoftmax"
        return b.op(op, [x], f"{base}/{op}", axis=-1)
    if n == "hard_sigmoid":
        return b.op("HardSigmoid", [x], f"{base}/HardSigmoid", alpha=float(act.alpha), beta=float(act.beta))
    if n == "elu":
        return b.op("Elu", [x], f"{base}/Elu", alpha=float(act.alpha))
    if n == "selu":
        return b.op("Selu", [x], f"{base}/Selu", alpha=float(act.alpha), gamma=float(act.beta))
    if n == "leaky_relu":
        return b.op("LeakyRelu", [x], f"{base}/LeakyRelu", alpha=float(act.alpha))
    if n == "thresholded_relu":
        return b.op("ThresholdedRelu", [x], f"{base}/ThresholdedRelu", alpha=float(act.alpha))
    if n == "relu6":
        return b.op("Clip", [x, f32("zero", 0.0), f32("six", 6.0)], f"{base}/Relu6")
    if n == "affine":
        y = b.op("Mul", [x, f32("alpha", act.alpha)], f"{base}/affine_scale")
        return b.op("Add", [y, f32("beta", act.beta)], f"{base}/affine_shift")
    if n == "scaled_tanh":
        y = b.op("Mul", [x, f32("beta", act.beta)], f"{base}/scaled_tanh_in")
        y = b.op("Tanh", [y], f"{base}/Tanh")
        return b.op("Mul", [y, f32("alpha", act.alpha)], f"{base}/scaled_tanh_out")
    if n == "swish":
        return b.op("Mul", [x, b.op("Sigmoid", [x], f"{base}/Sigmoid")], f"{base}/swish")
    if n == "gelu":   # exact form: 0.5 * x * (1 + erf(x / sqrt(2)))
        e = b.op("Erf", [b.op("Div", [x, f32("sqrt2", math.sqrt(2.0))], f"{base}/gelu_scale")], f"{base}/Erf")
        e = b.op("Add", [e, f32("one", 1.0)], f"{base}/gelu_add")
        return b.op("Mul", [b.op("Mul", [x, f32("half", 0.5)], f"{base}/gelu_half"), e], f"{base}/gelu")
    raise UnsupportedError(f"the ONNX writer cannot express the activation '{n}'")


def _units(model: Model):
    width = model.input.features
    for layer in model.layers:
        if isinstance(layer, (Recurrent, Dense)):
            width = layer.units_out
        else:
            width = _front.width_after(layer, width, model.input.time_steps)
    return width if width else "features"


def _base(name: str, k: int, kind: str) -> str:
    return _safe(name) or f"{kind}_{k}"


def _safe(name) -> str:
    return str(name or "").strip()

