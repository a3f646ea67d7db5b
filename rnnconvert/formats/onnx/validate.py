"""An ONNX model checked against the operator schemas of its opset, before anything is folded or allocated.

One place for what a file from a stranger must satisfy before the reader trusts a number in it:
- the default domain's opset is one this onnx knows (at most `onnx.defs.onnx_opset_version()`);
- every node of the default domain (main graph and subgraphs) has the attribute types and required
  attributes and inputs its schema gives for that opset (`onnx.defs.get_schema`);
- recurrent nodes (LSTM/GRU/RNN) have enumerated attributes in range: layout 0/1, a known direction,
  hidden_size > 0, activations the op knows (as many as its directions need), flags 0/1, clip > 0;
- every tensor (initializers, tensor attributes such as Constant's value) has a type the readers
  convert (floats, integers, bool; not INT4/UINT4, float4/float8, complex or string), dims >= 0, and no
  more elements or any longer axis than its file has bytes;
- declared shapes (graph inputs, outputs, value_info) have dims >= 0, and an input fed at run time at most
  MAX_DECLARED elements in its known dims (verification makes inputs of that shape).
All problems are reported at once on one line (the first MAX_LISTED), as an InputError (exit 2).
"""
from __future__ import annotations

import functools

import numpy as np
from . import lite as onnx
from .lite import AttributeProto, TensorProto, defs

from ...errors import InputError

MAX_DECLARED = 1 << 28          # elements of one declared shape (its known dims)
MAX_LISTED = 6
READABLE = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.INT8,
            TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32, TensorProto.UINT32,
            TensorProto.INT64, TensorProto.UINT64, TensorProto.BOOL}
RECURRENT_GATES = {"LSTM": 3, "GRU": 2, "RNN": 1}      # activations per direction
ONNX_ACTIVATIONS = {"relu", "tanh", "sigmoid", "affine", "leakyrelu", "thresholdedrelu", "scaledtanh",
                    "hardsigmoid", "elu", "softsign", "softplus"}
_FLAGS = {"LSTM": ("layout", "input_forget"), "GRU": ("layout", "linear_before_reset"), "RNN": ("layout",)}


def dtype_name(elem: int) -> str:
    try:
        return TensorProto.DataType.Name(elem)
    except ValueError:
        return f"data type {elem}"


def opset(proto: onnx.ModelProto, path) -> int:
    """The default domain's opset, refused when this onnx does not know it."""
    versions = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    version = versions[0] if versions else 9
    top = defs.onnx_opset_version()
    if not 1 <= version <= top:
        raise InputError(f"the model imports opset {version} of the default ONNX domain; this installation knows "
                         f"opsets 1 to {top} (onnx {onnx.__version__}): re-export the model with opset {top} or "
                         "lower", path=path)
    return version


def check(proto: onnx.ModelProto, path, file_bytes: int) -> None:
    """Raise InputError listing every problem found (see the module docstring)."""
    version = opset(proto, path)
    problems: list[str] = []
    limit = max(int(file_bytes), 1)

    def walk(graph: onnx.GraphProto):
        for t in graph.initializer:
            _tensor(t, f"initializer '{t.name}'", limit, problems)
        inits = {t.name for t in graph.initializer}
        for kind, infos in (("graph input", graph.input), ("graph output", graph.output),
                            ("value_info", graph.value_info)):
            for vi in infos:        # what is fed at run time is bounded; an initializer's size is its own
                _declared(vi, kind, problems, bounded=kind == "graph input" and vi.name not in inits)
        for n in graph.node:
            for a in n.attribute:
                if a.type == AttributeProto.TENSOR or a.HasField("t"):
                    _tensor(a.t, f"{_label(n)}: attribute '{a.name}'", limit, problems)
                for k, t in enumerate(a.tensors):
                    _tensor(t, f"{_label(n)}: attribute '{a.name}'[{k}]", limit, problems)
                for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    walk(sub)
            if n.domain in ("", "ai.onnx"):
                _node(n, version, problems)

    walk(proto.graph)
    if problems:
        more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise InputError("; ".join(problems[:MAX_LISTED]) + more, path=path)


def _tensor(t: onnx.TensorProto, what: str, limit: int, problems: list) -> None:
    if t.data_type not in READABLE:
        problems.append(f"{what} is {dtype_name(t.data_type)}; rnnconvert reads float16/32/64, bfloat16, "
                        "integer and bool tensors (export the weights as float32)")
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        problems.append(f"{what} has dims {dims}; dims are never negative")
        return
    count = int(np.prod(dims, dtype=object)) if dims else 1
    if t.data_location != TensorProto.EXTERNAL and (count > limit or any(d > limit for d in dims)):
        problems.append(f"{what} declares dims {dims} ({count} elements) in a file of {limit} bytes")


def _attr_text(a: AttributeProto) -> str:
    """'FLOAT 2.0', "STRING '2'" or 'of undefined type 99'."""
    if a.type not in AttributeProto.AttributeType.values() or a.type == AttributeProto.UNDEFINED:
        return f"of undefined type {a.type}"
    value = onnx.helper.get_attribute_value(a)
    text = repr(value.decode("utf-8", "replace") if isinstance(value, bytes) else value) \
        if isinstance(value, (bytes, int, float)) else ""
    return f"{AttributeProto.AttributeType.Name(a.type)} {text[:40]}".strip()


def _declared(vi: onnx.ValueInfoProto, kind: str, problems: list, bounded: bool) -> None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return
    shape = vi.type.tensor_type.shape.dim
    dims = [d.dim_value for d in shape if d.HasField("dim_value")]
    shown = "[" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else repr(d.dim_param or "?")
                            for d in shape) + "]"
    if any(d < 0 for d in dims):
        problems.append(f"{kind} '{vi.name}' declares shape {shown}; dims are never negative")
    elif bounded and int(np.prod(dims, dtype=object)) > MAX_DECLARED:
        problems.append(f"{kind} '{vi.name}' declares shape {shown}, more than {MAX_DECLARED} elements")


def _label(n: onnx.NodeProto) -> str:
    return f"node '{n.name or (n.output[0] if n.output else '')}' ({n.op_type})"


@functools.lru_cache(maxsize=512)
def _schema(op_type: str, version: int, domain: str):
    """What the checks need of onnx's schema, taken once per op (not once per node of a graph of 50,000:
    the schema's attributes and inputs are new Python objects at each access): ({attribute: (type, type
    name)}, required attributes, [(index, name)] of required inputs)."""
    schema = defs.get_schema(op_type, version, domain)
    types = {name: (int(spec.type), spec.type.name) for name, spec in schema.attributes.items()}
    required = tuple(name for name, spec in schema.attributes.items() if spec.required)
    single = defs.OpSchema.FormalParameterOption.Single
    inputs = tuple((k, p.name) for k, p in enumerate(schema.inputs) if p.option == single)
    return types, required, inputs


def _node(n: onnx.NodeProto, version: int, problems: list) -> None:
    try:
        types, required, inputs = _schema(n.op_type, version, n.domain)
    except (defs.SchemaError, TypeError):    # an op this opset does not have (or a name that is not UTF-8):
        return                               # refused by name if the reader needs it
    attrs = {}
    for a in n.attribute:
        spec = types.get(a.name)
        if spec is None:
            if n.op_type in RECURRENT_GATES:
                problems.append(f"{_label(n)}: attribute '{a.name}' is not one {n.op_type} has at opset {version}")
            continue
        if int(a.type) != spec[0]:
            problems.append(f"{_label(n)}: attribute '{a.name}' is {_attr_text(a)}; expected {spec[1]}")
            continue
        attrs[a.name] = onnx.helper.get_attribute_value(a)
    for name in required:
        if name not in attrs and not any(a.name == name for a in n.attribute):
            problems.append(f"{_label(n)}: required attribute '{name}' is missing")
    if inputs:
        given = n.input
        for k, name in inputs:
            if k >= len(given) or not given[k]:
                problems.append(f"{_label(n)}: required input '{name}' (input {k}) is missing")
    if n.op_type in RECURRENT_GATES:
        label = _label(n)
        _recurrent(n, label, attrs, problems)


def _recurrent(n, label: str, a: dict, problems: list) -> None:
    for flag in _FLAGS[n.op_type]:
        if flag in a and a[flag] not in (0, 1):
            problems.append(f"{label}: attribute '{flag}' is {a[flag]}; expected 0 or 1")
    direction = a.get("direction", b"forward")
    direction = direction.decode("utf-8", "replace") if isinstance(direction, bytes) else direction
    if direction not in ("forward", "reverse", "bidirectional"):
        problems.append(f"{label}: attribute 'direction' is {direction!r}; expected 'forward', 'reverse' or "
                        "'bidirectional'")
    if "hidden_size" in a and a["hidden_size"] <= 0:
        problems.append(f"{label}: attribute 'hidden_size' is {a['hidden_size']}; expected a positive integer")
    if "clip" in a and not a["clip"] > 0:
        problems.append(f"{label}: attribute 'clip' is {a['clip']}; expected a positive threshold")
    if "activations" in a:
        names = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in a["activations"]]
        unknown = [x for x in names if x.lower() not in ONNX_ACTIVATIONS]
        if unknown:
            problems.append(f"{label}: attribute 'activations' names {unknown}, which {n.op_type} does not know")
        D = 2 if direction == "bidirectional" else 1
        per = RECURRENT_GATES[n.op_type]
        if len(names) not in (per, per * D):
            problems.append(f"{label}: attribute 'activations' lists {len(names)}; expected {per * D}")
