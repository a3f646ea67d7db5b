"""The globals torch.load(weights_only=True) allows (torch 2.x `_get_allowed_globals`), each as a stand-in of ours.

A stand-in is called by the pickle machine (`unpickle.py`) where torch would call the real global; it checks
its arguments and returns plain data: `TensorRef` for a tensor (bytes unread), `Dtype`, tuples, strings.
Tensors torch rebuilds some other way (quantized, sparse, nested, meta, wrapper subclasses) become
`Unreadable`, refused only if the state dict holds one.  Nothing here imports torch or calls what a file names.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from ...errors import short_repr


class Damaged(Exception):
    """The pickle is not one torch.save writes (truncated, wrong types, opcodes out of place)."""


class Foreign(Exception):
    """The pickle names a global torch.load(weights_only=True) refuses; the message is its full name."""


@dataclass(frozen=True)
class Dtype:
    name: str                 # torch's name without "torch.": float32, bfloat16, ...
    itemsize: int | None      # None: sub-byte or bit types, never read


@dataclass(frozen=True)
class StorageType:
    dtype: Dtype


@dataclass
class Storage:
    """Bytes `start`..`start + nbytes` of the record `key` (a zip member or a legacy storage)."""
    key: str
    dtype: Dtype
    start: int
    nbytes: int


@dataclass
class TensorRef:
    storage: Storage
    offset: int               # in elements of dtype
    shape: tuple
    stride: tuple
    dtype: Dtype

    def set_state(self, state) -> None:          # BUILD on a rebuilt tensor or Parameter: attributes only
        pass


@dataclass
class Unreadable:
    """A tensor torch rebuilds in a form rnnconvert does not read: the kind is said in the refusal."""
    kind: str
    extra: dict = field(default_factory=dict)

    def set_state(self, state) -> None:
        pass


class Reducer:
    """An allowed global: `fn(*args)` is what REDUCE (or NEWOBJ when `newobj`) makes of it."""

    def __init__(self, name: str, fn, newobj: bool = False):
        self.name, self.fn, self.newobj = name, fn, newobj

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return f"<{self.name}>"


def _ints(value, what: str) -> tuple:
    if type(value) not in (tuple, list) or not all(type(v) is int for v in value):
        raise Damaged(f"{what} is {type(value).__name__} {short_repr(value)}, not a tuple of integers")
    return tuple(value)


def _rebuild(storage, offset, size, stride, dtype=None):
    if not isinstance(storage, Storage):
        raise Damaged(f"a tensor is rebuilt from a {type(storage).__name__}, not a storage")
    if type(offset) is not int:
        raise Damaged(f"a tensor's storage offset is {type(offset).__name__}, not an integer")
    if dtype is not None and not isinstance(dtype, Dtype):
        raise Damaged(f"a tensor's dtype is {type(dtype).__name__}, not a torch dtype")
    return TensorRef(storage, offset, _ints(size, "a tensor's size"), _ints(stride, "a tensor's stride"),
                     dtype or storage.dtype)


def _tensor(storage, offset, size, stride, *rest):
    return _rebuild(storage, offset, size, stride)


def _tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, *rest):
    return _rebuild(storage, offset, size, stride, dtype)


def _parameter(data, *rest):
    return data


def _from_type(func, new_type, args, state=None):
    if not isinstance(func, Reducer) or type(args) is not tuple:
        raise Damaged("a tensor subclass is rebuilt by something other than an allowed global")
    return func(*args)


def _unreadable(kind):
    return lambda *args: Unreadable(kind)


def _from_cpu(data, dtype, device, requires_grad=False):
    return data if isinstance(data, TensorRef) and data.dtype == dtype else Unreadable("converted on load")


def _size(dims=()):
    return _ints(dims, "a torch.Size")


def _device(kind, index=None):
    if type(kind) is not str or (index is not None and type(index) is not int):
        raise Damaged("a torch.device is not made from a name and an index")
    return kind if index is None else f"{kind}:{index}"


def _encode(text, encoding="utf-8"):
    if type(text) is not str or encoding not in ("latin1", "latin-1", "utf-8", "ascii"):
        raise Damaged("_codecs.encode is called on something other than text in latin1, utf-8 or ascii")
    return text.encode(encoding)


def _bytearray(value=b"", *encoding):
    if type(value) is str and encoding:
        return bytearray(_encode(value, *encoding))
    if type(value) not in (bytes, bytearray):
        raise Damaged("bytearray is made from something other than bytes")     # bytearray(10**12) allocates
    return bytearray(value)


def _set(items=()):
    if type(items) not in (list, tuple, set):
        raise Damaged("set is made from something other than a list")
    return set(items)


def _complex(real=0.0, imag=0.0):
    if type(real) not in (int, float) or type(imag) not in (int, float):
        raise Damaged("complex is made from something other than numbers")
    return complex(real, imag)


def _mapping(cls):
    def make(items=()):
        if type(items) not in (list, tuple, dict, OrderedDict):
            raise Damaged(f"{cls.__name__} is made from a {type(items).__name__}")
        return cls(items)
    return make


# torch dtypes: name -> bytes per element (None: sub-byte and bit types)
_DTYPES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "complex128": 16, "complex64": 8,
           "complex32": 4, "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "uint16": 2, "uint32": 4,
           "uint64": 8, "bool": 1, "qint8": 1, "quint8": 1, "qint32": 4, "quint4x2": 1, "quint2x4": 1,
           "float8_e4m3fn": 1, "float8_e4m3fnuz": 1, "float8_e5m2": 1, "float8_e5m2fnuz": 1, "float8_e8m0fnu": 1,
           "float4_e2m1fn_x2": 1, **{f"bits{b}": None for b in ("8", "16", "1x8", "2x4", "4x2")},
           **{f"int{b}": None for b in range(1, 8)}, **{f"uint{b}": None for b in range(1, 8)}}
DTYPES = {name: Dtype(name, size) for name, size in _DTYPES.items()}
_STORAGES = {"Double": "float64", "Float": "float32", "Half": "float16", "BFloat16": "bfloat16", "Long": "int64",
             "Int": "int32", "Short": "int16", "Char": "int8", "Byte": "uint8", "Bool": "bool",
             "ComplexDouble": "complex128", "ComplexFloat": "complex64"}
_QSTORAGES = {"QInt8": "qint8", "QUInt8": "quint8", "QInt32": "qint32", "QUInt4x2": "quint4x2",
              "QUInt2x4": "quint2x4"}
_TENSORS = ("Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")


def _table() -> dict:
    t: dict = {}

    def add(name, fn, newobj=False):
        t[name] = Reducer(name, fn, newobj)
    add("collections.OrderedDict", _mapping(OrderedDict), newobj=True)
    add("collections.Counter", _mapping(Counter), newobj=True)
    add("torch.nn.parameter.Parameter", _parameter, newobj=True)
    add("torch.serialization._get_layout", lambda name: f"layout:{name}")
    add("torch.Size", _size, newobj=True)
    add("torch.Tensor", _unreadable("torch.Tensor called"), newobj=True)
    add("torch.device", _device, newobj=True)
    add("_codecs.encode", _encode)
    add("builtins.bytearray", _bytearray, newobj=True)
    add("builtins.set", _set, newobj=True)
    add("builtins.complex", _complex, newobj=True)
    for name, dtype in DTYPES.items():
        t[f"torch.{name}"] = dtype
    for prefix, names in (("torch", {**_STORAGES, **_QSTORAGES}), ("torch.cuda", _STORAGES)):
        for stem, dtype in names.items():
            t[f"{prefix}.{stem}Storage"] = StorageType(DTYPES[dtype])
    t["torch.storage.UntypedStorage"] = StorageType(DTYPES["uint8"])
    t["torch.storage.TypedStorage"] = StorageType(Dtype("TypedStorage", None))
    for prefix in ("torch", "torch.cuda", "torch.sparse", "torch.cuda.sparse"):
        for stem in _TENSORS:
            if not (prefix.endswith("sparse") and stem == "Bool"):
                add(f"{prefix}.{stem}Tensor", _unreadable(f"{prefix}.{stem}Tensor called"), newobj=True)
    for scheme in ("per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric",
                   "per_channel_affine_float_qparams"):
        t[f"torch.{scheme}"] = f"qscheme:{scheme}"
    add("torch._utils._rebuild_tensor", _tensor)
    add("torch._utils._rebuild_tensor_v2", _tensor)
    add("torch._utils._rebuild_tensor_v3", _tensor_v3)
    add("torch._utils._rebuild_parameter", _parameter)
    add("torch._utils._rebuild_parameter_with_state", _parameter)
    add("torch._tensor._rebuild_from_type_v2", _from_type)
    add("torch._utils._rebuild_device_tensor_from_cpu_tensor", _from_cpu)
    for fn, kind in (("qtensor", "quantized"), ("sparse_tensor", "sparse"), ("meta_tensor_no_storage", "meta"),
                     ("nested_tensor", "nested"), ("wrapper_subclass", "a tensor subclass"),
                     ("device_tensor_from_numpy", "rebuilt from NumPy")):
        add(f"torch._utils._rebuild_{fn}", _unreadable(kind))
    return t


ALLOWED = _table()
