"""The part of the `onnx` package this format uses, without `import onnx`: its protobuf messages
(`onnx/onnx_ml_pb2.py`) and its C++ checker and schemas (`onnx_cpp2py_export`), loaded as the same
modules `import onnx` later finds, plus the few `onnx.helper` / `numpy_helper` / `checker` / `defs`
functions the reader and writer call, with onnx's own semantics.

Why: `import onnx` runs `onnx/__init__.py`, which imports `onnx.helper` -> `ml_dtypes`, whose
initialisation alone takes ~0.6 s of a fresh process; a Keras -> ONNX conversion needs none of it.
Whatever is not here (`onnx.shape_inference`, `onnx.reference`, external data, bfloat16/float8/string
tensors, ...) comes from the real package, imported on first use: `lite.helper.make_tensor`,
`lite.numpy_helper.to_array` of a float8 tensor and `lite.shape_inference` all work, just not fast.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
from itertools import chain

import numpy as np

_lock = threading.Lock()


def _submodule(name: str, extension: bool = False):
    """onnx.<name> from onnx's folder without running onnx/__init__.py (or the one already imported).
    It is registered under its real name, so a later `import onnx` uses this very module."""
    full = f"onnx.{name}"
    with _lock:
        if full in sys.modules:
            return sys.modules[full]
        spec = importlib.util.find_spec("onnx")     # locates the package, runs nothing
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("No module named 'onnx'", name="onnx")
        folder = list(spec.submodule_search_locations)[0]
        suffixes = importlib.machinery.EXTENSION_SUFFIXES if extension else [".py"]
        for suffix in suffixes:
            path = os.path.join(folder, name + suffix)
            if os.path.isfile(path):
                break
        else:
            return importlib.import_module(full)       # an unusual layout: the ordinary way
        sub = importlib.util.spec_from_file_location(full, path)
        module = importlib.util.module_from_spec(sub)
        sys.modules[full] = module
        try:
            sub.loader.exec_module(module)
        except BaseException:
            del sys.modules[full]
            raise
        return module


pb = _submodule("onnx_ml_pb2")
_C = _submodule("onnx_cpp2py_export", extension=True)

AttributeProto = pb.AttributeProto
GraphProto = pb.GraphProto
ModelProto = pb.ModelProto
NodeProto = pb.NodeProto
OperatorSetIdProto = pb.OperatorSetIdProto
TensorProto = pb.TensorProto
TypeProto = pb.TypeProto
ValueInfoProto = pb.ValueInfoProto
IR_VERSION = pb.IR_VERSION


def full():
    """The real `onnx` package (imported now if it was not), with the submodules loaded here as its
    attributes (an import that finds a submodule in sys.modules does not set it on the package)."""
    import onnx
    for name, module in (("onnx_ml_pb2", pb), ("onnx_cpp2py_export", _C)):
        if getattr(onnx, name, None) is None:
            setattr(onnx, name, module)
    return onnx


def __getattr__(name: str):           # onnx.X that this module does not hold: the real package's
    if name.startswith("__") and name != "__version__":
        raise AttributeError(name)
    return getattr(full(), name)


class _Part:
    """A namespace holding some functions of one onnx submodule; the rest come from the real one."""

    def __init__(self, real: str, **functions):
        self.__dict__.update(functions)
        self._real = real

    def __getattr__(self, name: str):
        full()
        return getattr(importlib.import_module(self._real), name)


# ------------------------------------------------------------------------------------ onnx.helper

def make_attribute(key: str, value) -> AttributeProto:
    """onnx.helper.make_attribute for the values this package writes (numbers, strings, tensors,
    graphs and lists of those); anything else goes to onnx's own."""
    import numbers
    attr = AttributeProto()
    attr.name = key
    if isinstance(value, numbers.Integral):
        attr.i, attr.type = int(value), AttributeProto.INT
    elif isinstance(value, numbers.Real):
        attr.f, attr.type = float(value), AttributeProto.FLOAT
    elif isinstance(value, (str, bytes)):
        attr.s, attr.type = _to_bytes(value), AttributeProto.STRING
    elif isinstance(value, TensorProto):
        attr.t.CopyFrom(value)
        attr.type = AttributeProto.TENSOR
    elif isinstance(value, GraphProto):
        attr.g.CopyFrom(value)
        attr.type = AttributeProto.GRAPH
    elif isinstance(value, (list, tuple)) and value:
        types = {type(v) for v in value}
        if all(issubclass(t, numbers.Integral) for t in types):
            attr.ints.extend(value)
            attr.type = AttributeProto.INTS
        elif all(issubclass(t, numbers.Real) for t in types):
            attr.floats.extend(value)
            attr.type = AttributeProto.FLOATS
        elif all(issubclass(t, (str, bytes)) for t in types):
            attr.strings.extend(_to_bytes(v) for v in value)
            attr.type = AttributeProto.STRINGS
        else:
            return full().helper.make_attribute(key, value)
    else:
        return full().helper.make_attribute(key, value)
    return attr


def _to_bytes(value) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def make_node(op_type, inputs, outputs, name=None, doc_string=None, domain=None, overload=None,
              **kwargs) -> NodeProto:
    node = NodeProto()
    node.op_type = op_type
    node.input.extend(inputs)
    node.output.extend(outputs)
    if name:
        node.name = name
    if doc_string:
        node.doc_string = doc_string
    if domain is not None:
        node.domain = domain
    if overload is not None:
        node.overload = overload
    if kwargs:
        node.attribute.extend(make_attribute(k, v) for k, v in sorted(kwargs.items()) if v is not None)
    return node


def make_tensor_value_info(name: str, elem_type: int, shape, doc_string: str = "",
                           shape_denotation=None) -> ValueInfoProto:
    if shape_denotation:
        return full().helper.make_tensor_value_info(name, elem_type, shape, doc_string, shape_denotation)
    vi = ValueInfoProto()
    vi.name = name
    if doc_string:
        vi.doc_string = doc_string
    tensor_type = vi.type.tensor_type
    tensor_type.elem_type = elem_type
    if shape is not None:
        dims = tensor_type.shape.dim
        dims.extend([])                  # an explicitly empty shape stays in the proto (as onnx does)
        for d in shape:
            dim = dims.add()
            if d is None:
                pass
            elif isinstance(d, int):
                dim.dim_value = d
            elif isinstance(d, str):
                dim.dim_param = d
            else:
                raise ValueError(f"Invalid item in shape: {d}. Needs to be of int or str.")
    return vi


def make_graph(nodes, name: str, inputs, outputs, initializer=None, doc_string=None, value_info=None,
               sparse_initializer=None) -> GraphProto:
    graph = GraphProto()
    graph.node.extend(nodes)
    graph.name = name
    graph.input.extend(inputs)
    graph.output.extend(outputs)
    graph.initializer.extend(initializer or [])
    graph.sparse_initializer.extend(sparse_initializer or [])
    graph.value_info.extend(value_info or [])
    if doc_string:
        graph.doc_string = doc_string
    return graph


def make_model(graph: GraphProto, **kwargs) -> ModelProto:
    model = ModelProto()
    model.ir_version = IR_VERSION
    model.graph.CopyFrom(graph)
    opset_imports = kwargs.pop("opset_imports", None)
    if opset_imports is not None:
        model.opset_import.extend(opset_imports)
    else:
        model.opset_import.add().version = onnx_opset_version()
    functions = kwargs.pop("functions", None)
    if functions is not None:
        model.functions.extend(functions)
    for k, v in kwargs.items():
        setattr(model, k, v)
    return model


def make_opsetid(domain: str, version: int) -> OperatorSetIdProto:
    opsetid = OperatorSetIdProto()
    opsetid.domain = domain
    opsetid.version = version
    return opsetid


def set_model_props(model: ModelProto, dict_value: dict) -> None:
    del model.metadata_props[:]
    for k, v in dict_value.items():
        entry = model.metadata_props.add()
        entry.key = k
        entry.value = v


def get_attribute_value(attr: AttributeProto):
    if attr.ref_attr_name:
        raise ValueError(f"Cannot get value of reference attribute: {attr}")
    scalar = {AttributeProto.FLOAT: "f", AttributeProto.INT: "i", AttributeProto.STRING: "s",
              AttributeProto.TENSOR: "t", AttributeProto.SPARSE_TENSOR: "sparse_tensor",
              AttributeProto.GRAPH: "g", AttributeProto.TYPE_PROTO: "tp"}
    repeated = {AttributeProto.FLOATS: "floats", AttributeProto.INTS: "ints", AttributeProto.STRINGS: "strings",
                AttributeProto.TENSORS: "tensors", AttributeProto.SPARSE_TENSORS: "sparse_tensors",
                AttributeProto.GRAPHS: "graphs", AttributeProto.TYPE_PROTOS: "type_protos"}
    if attr.type in scalar:
        return getattr(attr, scalar[attr.type])
    if attr.type in repeated:
        return list(getattr(attr, repeated[attr.type]))
    if attr.type == AttributeProto.UNDEFINED:
        return None
    raise ValueError(f"Unsupported ONNX attribute: {attr}")


# The numpy dtypes of the tensor types numpy has natively (the others need ml_dtypes: onnx's own code).
_NP = {TensorProto.FLOAT: np.dtype("float32"), TensorProto.DOUBLE: np.dtype("float64"),
       TensorProto.FLOAT16: np.dtype("float16"), TensorProto.INT8: np.dtype("int8"),
       TensorProto.UINT8: np.dtype("uint8"), TensorProto.INT16: np.dtype("int16"),
       TensorProto.UINT16: np.dtype("uint16"), TensorProto.INT32: np.dtype("int32"),
       TensorProto.UINT32: np.dtype("uint32"), TensorProto.INT64: np.dtype("int64"),
       TensorProto.UINT64: np.dtype("uint64"), TensorProto.BOOL: np.dtype("bool"),
       TensorProto.COMPLEX64: np.dtype("complex64"), TensorProto.COMPLEX128: np.dtype("complex128")}
_ONNX = {v: k for k, v in _NP.items()}


def tensor_dtype_to_np_dtype(tensor_dtype: int) -> np.dtype:
    dtype = _NP.get(tensor_dtype)
    return dtype if dtype is not None else full().helper.tensor_dtype_to_np_dtype(tensor_dtype)


helper = _Part("onnx.helper", make_attribute=make_attribute, make_node=make_node,
               make_tensor_value_info=make_tensor_value_info, make_graph=make_graph, make_model=make_model,
               make_opsetid=make_opsetid, set_model_props=set_model_props,
               get_attribute_value=get_attribute_value, tensor_dtype_to_np_dtype=tensor_dtype_to_np_dtype)


# ------------------------------------------------------------------------------ onnx.numpy_helper

def from_array(array: np.ndarray, name: str | None = None) -> TensorProto:
    """onnx.numpy_helper.from_array: raw little-endian bytes of a native numpy dtype."""
    dtype = _ONNX.get(array.dtype) if array.dtype.isnative and sys.byteorder == "little" else None
    if dtype is None:
        return full().numpy_helper.from_array(array, name)
    tensor = TensorProto()
    tensor.dims.extend(array.shape)
    if name:
        tensor.name = name
    tensor.raw_data = array.tobytes()
    tensor.data_type = dtype
    return tensor


def to_array(tensor: TensorProto, base_dir: str = "") -> np.ndarray:
    """onnx.numpy_helper.to_array for a tensor held in raw_data of a native numpy dtype; any other
    tensor (typed fields, external data, segments, strings, ml_dtypes types) is onnx's own.  A tensor
    whose bytes or values do not make its dtype and shape (a damaged file) is an InputError naming it,
    whichever reader, lifter or folder asked for it."""
    dtype = _NP.get(tensor.data_type)
    try:
        if dtype is None or sys.byteorder != "little" or not tensor.HasField("raw_data") or \
                tensor.HasField("segment") or _uses_external_data(tensor) or \
                tensor.data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128):
            return full().numpy_helper.to_array(tensor, base_dir)
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(tensor.dims)
    except (ValueError, TypeError, KeyError) as exc:
        from ...errors import InputError
        raise InputError(f"tensor '{tensor.name}' cannot be read as data type {tensor.data_type}, shape "
                         f"{list(tensor.dims)} ({type(exc).__name__}: {str(exc)[:120]}); the file is damaged") from None


numpy_helper = _Part("onnx.numpy_helper", from_array=from_array, to_array=to_array)


# ------------------------------------------------------------------------- onnx.checker, onnx.defs

MAXIMUM_PROTOBUF = 2147483648


def check_model(model, full_check: bool = False, skip_opset_compatibility_check: bool = False,
                check_custom_domain: bool = False) -> None:
    """onnx.checker.check_model of an in-memory model (a path goes to onnx's own)."""
    if not isinstance(model, (ModelProto, bytes)):
        return full().checker.check_model(model, full_check, skip_opset_compatibility_check, check_custom_domain)
    data = model if isinstance(model, bytes) else model.SerializeToString()
    if len(data) > MAXIMUM_PROTOBUF:
        raise ValueError("This protobuf of onnx model is too large (>2GiB). Call check_model with model path "
                         "instead.")
    _C.checker.check_model(data, full_check, skip_opset_compatibility_check, check_custom_domain)


checker = _Part("onnx.checker", check_model=check_model, ValidationError=_C.checker.ValidationError,
                MAXIMUM_PROTOBUF=MAXIMUM_PROTOBUF)


def onnx_opset_version() -> int:
    return _C.defs.schema_version_map()[""][1]


defs = _Part("onnx.defs", onnx_opset_version=onnx_opset_version, get_schema=_C.defs.get_schema,
             OpSchema=_C.defs.OpSchema, SchemaError=_C.defs.SchemaError)


# ---------------------------------------------------------------------------------- load, tensors

_OTHER_FORMATS = {".txtpb", ".textproto", ".prototxt", ".pbtxt", ".json", ".onnxjson", ".onnxtxt", ".onnxtext"}


def load_model_from_string(data: bytes) -> ModelProto:
    """onnx.load_model_from_string of binary protobuf."""
    if not isinstance(data, bytes):
        return full().load_model_from_string(data)
    proto = ModelProto()
    decoded = proto.ParseFromString(data)
    if decoded is not None and decoded != len(data):
        from google.protobuf.message import DecodeError
        raise DecodeError(f"Protobuf decoding consumed too few bytes: {decoded} out of {len(data)}")
    return proto


def load(path, load_external_data: bool = True) -> ModelProto:
    """onnx.load of a binary protobuf file without its external data; anything else is onnx's own."""
    if load_external_data or not isinstance(path, (str, os.PathLike)) or \
            os.path.splitext(os.fspath(path))[1] in _OTHER_FORMATS:
        return full().load(path, load_external_data=load_external_data)
    with open(path, "rb") as fh:
        return load_model_from_string(fh.read())


def _uses_external_data(tensor: TensorProto) -> bool:
    return tensor.HasField("data_location") and tensor.data_location == TensorProto.EXTERNAL


def all_tensors(model: ModelProto):
    """onnx.external_data_helper._get_all_tensors: initializers (subgraphs' too), then attribute tensors."""
    return chain(_initializers(model.graph), _attribute_tensors(model.graph),
                 chain.from_iterable(_attribute_tensors(f) for f in model.functions))


def _subgraphs(attribute: AttributeProto):
    if attribute.type == AttributeProto.GRAPH:
        yield attribute.g
    if attribute.type == AttributeProto.GRAPHS:
        yield from attribute.graphs


def _initializers(graph: GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            for g in _subgraphs(attribute):
                yield from _initializers(g)


def _attribute_tensors(graph):
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for g in _subgraphs(attribute):
                yield from _attribute_tensors(g)
