"""Canonical model -> ONNX graph (opset 17) with one native LSTM/GRU/RNN node per recurrent layer.

A layer no native node can compute (an activation outside ONNX's list, an LSTM projection) becomes a
`Scan` over a cell of standard ops (`scan.py`; recurrent layers: `writer_recurrent.py`); `stateful=True` exposes states as graph inputs and
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
import copy
import os

from . import lite as onnx
from .lite import TensorProto, helper

from ...version import __version__
from ...errors import InputError, UnsupportedError
from ...model import ActivationLayer, Dense, Dropout, Embedding, Model, Recurrent, json_default
from ...files.text import read_json
from . import initializers as _init
from . import frontend as _front
from . import scan as _scan
from .writer_common import _activation, _base, _safe
from .writer_recurrent import _OP, _State, _write_recurrent

OPSET = 17
META_KEY = "rnnconvert"
META_VERSION = 1
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
        whole = copy.copy(model)            # per-direction ports (Keras's Bidirectional) go by state_dirs.py
        whole.state_inputs = [p for p in model.state_inputs if p.direction is None]
        whole.state_outputs = [p for p in model.state_outputs if p.direction is None]
        notes += add_state_io(proto, whole, nodes_of, path) if whole.has_state_io else []
        from .state_dirs import add_direction_ports
        notes += add_direction_ports(proto, model, nodes_of, path)
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


def _units(model: Model):
    width = model.input.features
    for layer in model.layers:
        if isinstance(layer, (Recurrent, Dense)):
            width = layer.units_out
        else:
            width = _front.width_after(layer, width, model.input.time_steps)
    return width if width else "features"
