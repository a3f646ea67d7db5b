"""ONNX file -> canonical model.

The graph is the truth: weights, directions, activations and glue are read from the nodes
(`glue.Walker`).  The `rnnconvert` metadata entry of a file this package wrote only restores
what ONNX cannot carry (layer names, bias flags, exact activation parameters, Dropout layers,
explicit zero states) and only where it agrees with the graph (`metadata.py`).
Large initializers are read straight from the file into arrays (`wire.py`), onnx parsing the rest; the
parsed model is checked against the operator schemas (`validate.py`) before any tensor is decoded.
"""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
from . import lite as onnx
from .lite import numpy_helper

from ...errors import InputError, RnnConvertError, UnsupportedError
from ...model.validate import check_activation_numbers
from ...files.safety import check_onnx_external
from ...model import ActivationLayer, BatchNorm, Conv1D, Dense, Embedding, InputSpec, Model, Recurrent
from ._graph import name_unnamed
from .glue import RECURRENT, Walker
from .metadata import _initial_from_metadata, _metadata, _restore
from .lift import lift_model, might_lift
from .scan import is_scan_file, read_model
from . import states as state_io
from . import validate, wire
from .stateful import states_of

_CONTROL = ("If", "Loop", "Scan")


def sniff(path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1)
        if head != b"\x08":          # field 1 (ir_version), varint: how every ModelProto starts
            return False
        data, _ = wire.split(str(path))      # the weights are not parsed to tell the format
        return onnx.load_model_from_string(data).HasField("graph")
    except Exception:
        return False


def load(path) -> onnx.ModelProto:
    """The whole model, every tensor inside the proto (external data loaded)."""
    return load_lean(path, lean=False)[0]


def load_lean(path, lean: bool = True) -> tuple[onnx.ModelProto, dict[int, np.ndarray]]:
    """(the model without the main graph's large raw_data payloads and external data, {initializer index:
    values} of those): each read once, straight into its array (`wire.py`).  The stripped initializers
    keep name, type and dims; `initializer_values` gives every initializer's values by name.  Without
    `lean`: every tensor inside the proto, as onnx.load with its external data gives it."""
    path = str(path)
    try:
        try:
            data, payloads = wire.split(path)
        except wire.Unhandled:
            data, payloads = None, {}
        proto = onnx.load_model_from_string(data) if data is not None else onnx.load(path, load_external_data=False)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"not an ONNX model (cannot parse protobuf: {_short(exc)})", path=path) from None
    if not proto.HasField("graph") or proto.ir_version <= 0:
        raise InputError("not an ONNX model (cannot parse protobuf: no graph and no IR version; the file is "
                         "empty, truncated or another kind of protobuf)", path=path)
    validate.check(proto, path, os.path.getsize(path))      # schemas, dtypes, dims: before any allocation
    name_unnamed(proto.graph)
    arrays = wire.read_payloads(path, proto.graph, payloads, into_proto=not lean) if payloads else {}
    from .lite import all_tensors as _get_all_tensors         # initializers and Constant attributes
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in _get_all_tensors(proto)):
        check_onnx_external(proto, path)
        base = os.path.dirname(os.path.abspath(path))
        try:
            if lean:           # large initializers straight from the sidecar into arrays
                arrays.update(wire.read_external(proto.graph, base))
            from onnx.external_data_helper import load_external_data_for_model
            load_external_data_for_model(proto, base)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot load the external weight files next to it ({_short(exc)})", path=path) from None
    return proto, arrays


def initializer_values(graph: onnx.GraphProto, payloads: dict[int, np.ndarray], path) -> dict[str, np.ndarray]:
    """{name: values} of the graph's initializers (the last of several of one name, as onnxruntime
    takes it); `payloads` by index, as `load_lean` gives them, the others decoded by onnx."""
    out = {}
    for k, t in enumerate(graph.initializer):
        if k in payloads:
            out[t.name] = payloads[k]
            continue
        try:
            out[t.name] = numpy_helper.to_array(t)
            t.ClearField("raw_data")     # the array holds the values: free the proto's copy
        except InputError as exc:        # lite.to_array's own words: the tensor and why
            exc.path = path
            raise
        except Exception as exc:
            raise InputError(f"initializer '{t.name}' cannot be read ({type(exc).__name__}: {exc}); the file "
                             "is damaged", path=path) from None
    return out


def read(path, output: str | None = None, branches: dict | None = None, **options) -> Model:
    """Read an ONNX file; `output` picks one graph output when the graph has several; `branches` ({If node or
    condition: 'then' | 'else'}, --if) the branches If nodes take (`branches.py`; a constant condition decides
    without it), a graph input only a dropped branch used then being no input of the model.  An error that
    names no file (a damaged tensor found deep in a lift or a fold) names this one."""
    path = str(path)
    try:
        return _read(path, output, branches, **options)
    except RnnConvertError as exc:
        exc.path = exc.path or path
        raise


def _read(path: str, output, branches, **options) -> Model:
    original, payloads = load_lean(path)
    if_notes: list = []
    if any(n.op_type == "If" for n in original.graph.node):
        from . import branches as if_branches       # imports onnx itself: only for a graph with If nodes
        fixed, if_notes = if_branches.fix(original, branches or {}, path)
        if fixed is not original:
            original = if_branches.without_unused_inputs(fixed)
    elif branches:
        raise InputError(f"--if names {', '.join(repr(n) for n in branches)}, but the main graph has no If node",
                         path=path)
    masks: dict = {}                  # lifted Loops that read a mask: {native node: lift_mask.MaskInfo}
    if might_lift(original):          # cells written as Loops or unrolled: native nodes (lift.py)
        original, _ = lift_model(original, path, load(path), masks=masks)
    proto, state_ins, state_outs = state_io.detach(original, path, keep=output)   # states as graph inputs/outputs
    # detach copies the graph and only appends to its initializers: the payloads' indices still hold
    values = initializer_values(proto.graph, payloads, path)
    own = {t.name for k, t in enumerate(proto.graph.initializer) if k in payloads and values[t.name] is payloads[k]}
    del payloads
    meta = _metadata(proto)
    if is_scan_file(meta):                # layers written as Scan: from the initializers the metadata names
        try:
            model = read_model(proto, meta, path, values)
            check_activation_numbers(model, path)
            return model
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"the rnnconvert metadata does not match the graph's initializers "
                             f"({type(exc).__name__}: {exc}); the file was changed after rnnconvert wrote it",
                             path=path) from None
    g = proto.graph
    _check_recurrent_ops(g, path)
    init = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in init]
    if len(inputs) != 1:
        names = ", ".join(f"'{i.name}'" for i in inputs) or "none"
        raise UnsupportedError(f"the graph has {len(inputs)} inputs ({names}); rnnconvert reads models with one "
                               "input [batch, time, features] and state inputs that feed initial_h/initial_c",
                               path=path)
    elem = inputs[0].type.tensor_type.elem_type
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.INT32):
        raise UnsupportedError(f"the graph input '{inputs[0].name}' is "
                               f"{validate.dtype_name(elem)}, rnnconvert reads float32 inputs (or "
                               "int64/int32 token ids into an embedding)", path=path)
    outputs = [o.name for o in g.output]
    if output is None:
        if len(outputs) != 1:
            raise UnsupportedError(f"the graph has {len(outputs)} outputs ({', '.join(outputs)}); the canonical "
                                   "model has one: pass --output NAME (read option output=) to read one of them",
                                   path=path)
        output = outputs[0]
    elif output not in outputs:
        raise InputError(f"no graph output '{output}'; outputs: {', '.join(o.name for o in original.graph.output)}",
                         path=path)
    walker = Walker(proto, path, output, values, own)
    del values
    try:
        final = walker.run(inputs[0].name)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise UnsupportedError(f"cannot follow the graph ({type(exc).__name__}: {exc})", path=path) from None
    layers = list(final.stack)
    node_layers = _node_layers(walker, layers)
    if not any(isinstance(layer, Recurrent) for layer in layers):
        raise UnsupportedError(f"the output '{output}' does not depend on the values of any recurrent node",
                               path=path)
    time = walker.time
    batch = "A1" if time == "A0" else "A0"
    axes = final.axes
    if final.rev:
        raise UnsupportedError(f"the output '{output}' is a sequence in reversed time order that no recurrent "
                               "layer returns that way", path=path)
    if time in axes and axes != ("A0", "A1", "F"):
        raise UnsupportedError(f"the output '{output}' has its axes as {_axes_names(axes, time)}; the canonical "
                               "model returns [batch, time, features] in the layout of its input", path=path)
    if time not in axes and axes != (batch, "F"):
        raise UnsupportedError(f"the output '{output}' has its axes as {_axes_names(axes, time)}, expected "
                               "[batch, features]", path=path)
    ids = isinstance(layers[0], Embedding)
    spec = InputSpec(name=inputs[0].name, features=0 if ids else _input_features(layers),
                     dtype=("int32" if elem == onnx.TensorProto.INT32 else "int64") if ids else "float32",
                     layout="time_batch_feature" if time == "A0" else "batch_time_feature",
                     time_steps=walker.static.get(time))
    source = {"format": "onnx",
              "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
              "opset": walker.opset, "ir_version": int(proto.ir_version)}
    if if_notes:
        source["picked"] = list(if_notes)
    if walker.dropped_axis is not None:      # [axis, rank] of the graph output the canonical one lacks
        source["dropped_output_axis"] = list(walker.dropped_axis)
    used = {walker.recs[k].key for k in walker.used}
    unused = [n.name or n.output[0] for n in g.node if n.op_type in RECURRENT and (n.name or n.output[0]) not in used]
    if unused:
        more = f" and {len(unused) - 10} more" if len(unused) > 10 else ""    # one line, not 50,000 names
        source["notes"] = f"recurrent nodes not on the way to '{output}': {', '.join(unused[:10])}{more}"
    model = Model(layers=_fold_activations(layers), input=spec, output_name=output,
                  name=g.name or os.path.splitext(os.path.basename(path))[0], source=source)
    meta = _metadata(proto)
    if meta is not None:
        model = _restore(model, layers, meta)
    if masks:
        from .lift_mask import apply as apply_masks
        model = apply_masks(model, masks, node_layers, path)
    if state_ins or state_outs:
        names = dict(zip((layer.name for layer in layers if isinstance(layer, Recurrent)),
                         (layer.name for layer in model.recurrent_layers)))
        node_layers = {k: (names.get(n, n), d) for k, (n, d) in node_layers.items()}
        model = state_io.attach(model, state_ins, state_outs, node_layers, path)
        _initial_from_metadata(model, states_of(original))
    return model.validate(path)


def _node_layers(walker: Walker, layers: list) -> dict:
    """{recurrent node key: (layer name, its first direction in the layer)} for the layers read."""
    by_weights = {id(layer.weights): layer.name for layer in layers if isinstance(layer, Recurrent)}
    out = {}
    for info in walker.recs:
        for stack in info.cache.values():
            name = by_weights.get(id(stack[-1].weights))
            if name is None:
                continue
            if info.members:
                out[walker.recs[info.members[0]].key] = (name, 0)
                out[walker.recs[info.members[1]].key] = (name, 1)
            else:
                out[info.key] = (name, 0)
    return out


def _check_recurrent_ops(g: onnx.GraphProto, path: str) -> None:
    top = [n for n in g.node if n.op_type in RECURRENT]
    nested = []      # (control node, recurrent op type)

    def walk(graph, owner):
        for n in graph.node:
            for a in n.attribute:
                subs = list(a.g and [a.g] or []) + list(a.graphs)
                for sub in subs:
                    walk(sub, owner or n)
            if owner is not None and n.op_type in RECURRENT:
                nested.append((owner, n.op_type))

    walk(g, None)
    if top and nested:
        return       # the walker refuses the control-flow node if it lies on the way to the output
    if nested:
        owners = sorted({f"{o.op_type} node '{o.name}'" for o, _ in nested})
        kinds = sorted({k for _, k in nested})
        raise UnsupportedError(f"the {'/'.join(kinds)} nodes sit inside the subgraphs of {', '.join(owners)}; "
                               "rnnconvert reads recurrent nodes of the main graph only", path=path)
    if not top:
        counts: dict[str, int] = {}
        for n in g.node:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
        found = ", ".join(f"{k} x{v}" if v > 1 else k for k, v in sorted(counts.items())) or "no nodes"
        loops = [n for n in g.node if n.op_type in _CONTROL]
        if loops:
            names = ", ".join(f"{n.op_type} node '{n.name}'" for n in loops[:3])
            raise UnsupportedError(f"no LSTM, GRU or RNN node found; the graph computes its recurrence with "
                                   f"{names} (an unrolled or looped cell), which rnnconvert does not read; re-export "
                                   f"with native recurrent ops (tf2onnx fuses Keras layers it recognises); "
                                   f"found ops: {found}", path=path)
        raise InputError(f"no LSTM, GRU or RNN node found; found ops: {found}", path=path)


def _input_features(layers: list) -> int:
    for layer in layers:
        if isinstance(layer, Recurrent):
            return int(layer.weights[0].W.shape[1])
        if isinstance(layer, Dense):
            return int(layer.kernel.shape[0])
        if isinstance(layer, Conv1D):
            return int(layer.kernel.shape[1] * layer.groups)
        if isinstance(layer, BatchNorm):
            return int(layer.mean.shape[0])
    return 0


def _fold_activations(layers: list) -> list:
    """Dense (Conv1D) with a linear activation followed by an activation is one layer, as Keras writes it."""
    out: list = []
    for layer in layers:
        if isinstance(layer, ActivationLayer) and out and isinstance(out[-1], (Dense, Conv1D)) \
                and out[-1].activation.name == "linear":
            out[-1] = replace(out[-1], activation=layer.activation)
        else:
            out.append(layer)
    return out


def _axes_names(axes, time) -> str:
    names = {time: "time", "D": "directions", "F": "features", "1": "1"}
    return "[" + ", ".join("batch*time" if "*" in a else names.get(a, "batch") for a in axes) + "]"


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
