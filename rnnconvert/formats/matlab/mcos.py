"""MATLAB objects in MAT-files: the MCOS `FileWrapper__` subsystem, v5 (zlib) and v7.3 (HDF5).

A MATLAB object variable is an opaque array whose data is a uint32 column
`[0xDD000000, ndims, dims..., object ids..., class id]`.  The objects themselves live in the
file's subsystem: in v5 the `__function_workspace__` variable (a MAT stream in a uint8 array), in
v7.3 the `#subsystem#/MCOS` dataset.  Both hold one cell array: cell 0 a metadata blob (names,
class ids, object ids, property records), then the saved property values, and last one struct of
default property values per class.  Property records are (name, type, value) triples: type 1 is
an index into the saved values, type 0 a name, type 2 an integer.  Objects nested in property
values appear as uint32 columns with the same magic number and are resolved recursively.

`load(path) -> dict[name, value]`: every variable, objects as `MObject` (arrays of objects as
lists), structs as dicts (struct arrays as lists of dicts), cells as lists, char as str.  A v5 stream
(and the subsystem stream inside it) is walked by `v5scan.check` before scipy reads it; a v7.3 file
is read by `hdf5.V73Reader` after `safety.check_hdf5`.  Values and objects nest at most MAX_DEPTH.
"""
from __future__ import annotations

import io

import numpy as np

from ...errors import InputError
from .limits import MAX_DEPTH, _fortran_indices

MAGIC = 0xDD000000


class MObject:
    """One MATLAB object: its class name and its saved (plus default) properties."""

    def __init__(self, classname: str, props: dict):
        self.classname = classname
        self.props = props

    @property
    def short(self) -> str:
        return self.classname.rsplit(".", 1)[-1]

    def __repr__(self):
        return f"MObject({self.classname}, {sorted(self.props)})"


def is_object_ref(v) -> bool:
    return (isinstance(v, np.ndarray) and v.dtype == np.uint32 and v.size >= 3
            and v.reshape(-1, order="F")[0] == MAGIC)


class Subsystem:
    """The FileWrapper__ cell: metadata blob, saved values, per-class defaults."""

    def __init__(self, cells: list, path: str):
        self.path = path
        meta = np.asarray(cells[0], dtype=np.uint8).reshape(-1, order="F").tobytes()
        u32 = np.frombuffer(meta[: len(meta) // 4 * 4], "<u4")
        self.version = int(u32[0])
        if self.version not in (2, 3, 4):
            raise InputError(f"MATLAB object storage version {self.version} is not known (2 to 4 are)",
                             path=path)
        offs = [int(o) for o in u32[2:10]]
        self.names = [s.decode("latin-1") for s in meta[40:offs[0]].split(b"\0") if s]
        region = lambda k: u32[offs[k] // 4: offs[k + 1] // 4]  # noqa: E731
        self.class_meta, self.saveobj_meta = region(0), region(1)
        self.object_meta, self.nobj_meta = region(2), region(3)
        tail = {2: 1, 3: 2, 4: 3}[self.version]
        self.values = cells[2:len(cells) - tail]
        self.defaults = cells[-1]
        self._cache: dict[int, MObject] = {}
        self._records: dict[str, list[int]] = {}
        self._resolved: dict[int, tuple] = {}

    def classname(self, class_id: int) -> str:
        ns, name = int(self.class_meta[4 * class_id]), int(self.class_meta[4 * class_id + 1])
        cls = self.names[name - 1]
        return f"{self.names[ns - 1]}.{cls}" if ns else cls

    def _record(self, region: str, meta, rec_id: int) -> np.ndarray:
        offsets = self._records.setdefault(region, [0])
        while len(offsets) <= rec_id:
            o = offsets[-1]
            o += 1 + 3 * int(meta[o])
            o += o % 2
            offsets.append(o)
        o = offsets[rec_id]
        n = int(meta[o])
        return np.asarray(meta[o + 1: o + 1 + 3 * n]).reshape(n, 3)

    def objects(self, ref: np.ndarray, depth: int = 0):
        """The object(s) a uint32 reference column names: one MObject, or a list for an array."""
        ref = ref.reshape(-1, order="F").astype(np.int64)
        ndims = int(ref[1])
        dims = [int(d) for d in ref[2:2 + ndims]]
        count = int(np.prod(dims))
        ids = ref[2 + ndims: 2 + ndims + count]
        array_class = self.classname(int(ref[-1]))
        objs = [self.object(int(i), array_class, depth) for i in ids]
        if count == 1:
            return objs[0]
        return objs

    def object(self, object_id: int, array_class: str, depth: int = 0) -> MObject | None:
        if object_id == 0:
            return None
        if object_id in self._cache:
            return self._cache[object_id]
        row = self.object_meta[6 * object_id: 6 * object_id + 6]
        class_id, saveobj_id, nobj_id = int(row[0]), int(row[3]), int(row[4])
        classname = self.classname(class_id) if class_id else array_class
        obj = MObject(classname, {})
        self._cache[object_id] = obj
        defaults = self.defaults[class_id] if class_id < len(self.defaults) else None
        if isinstance(defaults, dict):
            obj.props.update({k: self.resolve(v, depth + 1) for k, v in defaults.items()})
        if saveobj_id:
            records = self._record("saveobj", self.saveobj_meta, saveobj_id)
        else:
            records = self._record("nobj", self.nobj_meta, nobj_id)
        for name_idx, kind, value in records:
            name = self.names[int(name_idx) - 1]
            if kind == 1:
                obj.props[name] = self.resolve(self.values[int(value)], depth + 1)
            elif kind == 0:
                obj.props[name] = self.names[int(value) - 1]
            else:
                obj.props[name] = int(value)
        return obj

    def resolve(self, v, depth: int = 0):
        """`v` with every nested object reference replaced by its object(s).  A list or dict met again
        (a v7.3 file's shared cells) is resolved once; objects and values nested past MAX_DEPTH are
        refused (objects may hold objects without end: each is read once, a chain is not)."""
        if depth > MAX_DEPTH:
            raise InputError(f"MATLAB objects and values nested more than {MAX_DEPTH} deep; no network is "
                             "nested that deep", path=self.path)
        if is_object_ref(v):
            return self.objects(v, depth)
        if not isinstance(v, (dict, list)):
            return v
        done = self._resolved.get(id(v))
        if done is not None:
            return done[1]
        if isinstance(v, dict):
            out = {k: self.resolve(x, depth + 1) for k, x in v.items()}
        else:
            out = [self.resolve(x, depth + 1) for x in v]
        self._resolved[id(v)] = (v, out)         # `v` kept alive: its id is not reused while memoised
        return out


# ------------------------------------------------------------------------------------------- v5

def _from_scipy(v):
    """A value scipy.io read (process=True, struct_as_record) in the forms `load` returns."""
    from scipy.io.matlab import MatlabOpaque
    if isinstance(v, MatlabOpaque):
        return _from_scipy(v[0]["arr"])
    if isinstance(v, np.ndarray):
        if v.dtype.names:
            items = [{n: _from_scipy(v[idx][n]) for n in v.dtype.names}
                     for idx in _fortran_indices(v.shape)]
            return items[0] if v.size == 1 else items
        if v.dtype.kind == "U":
            return "".join(str(s) for s in v.reshape(-1))
        if v.dtype == object:
            return [_from_scipy(v[idx]) for idx in _fortran_indices(v.shape)]
    return v


def _v5_reader(stream):
    try:
        from scipy.io.matlab._mio5 import MatFile5Reader
    except ImportError:      # pragma: no cover - older scipy
        from scipy.io.matlab.mio5 import MatFile5Reader
    return MatFile5Reader(stream, struct_as_record=True, squeeze_me=False, chars_as_strings=True)


def _v5_variables(stream, size: int) -> list[tuple[str, object]]:
    reader = _v5_reader(stream)
    reader.initialize_read()
    stream.seek(128)
    out = []
    while stream.tell() < size - 8:
        header, next_pos = reader.read_var_header()
        value = reader.read_var_array(header, process=True)
        name = header.name.decode("latin-1") if isinstance(header.name, bytes) else (header.name or "")
        if type(value).__name__ == "MatlabOpaque":
            name = value[0]["s0"].decode("latin-1") if isinstance(value[0]["s0"], bytes) else str(value[0]["s0"])
            cls = value[0]["s2"].decode("latin-1") if isinstance(value[0]["s2"], bytes) else str(value[0]["s2"])
            out.append((name, ("opaque", cls, np.asarray(value[0]["arr"]))))
        else:
            out.append((name, value))
        stream.seek(next_pos)
    return out


def _load_v5(path: str) -> dict:
    from . import v5scan
    with open(path, "rb") as f:
        data = f.read()
    budget = v5scan.check(data, path)      # nesting, inflated sizes, dimensions: before scipy sees them
    variables = _v5_variables(io.BytesIO(data), len(data))
    sub = None
    result = {}
    for name, value in variables:
        if name in ("", "__function_workspace__") and isinstance(value, np.ndarray) and value.dtype == np.uint8:
            ws = value.reshape(-1).tobytes()
            inner = ws[0:4] + ws[8:]
            stream = io.BytesIO(b" " * 116 + b"\0" * 8 + inner)
            with stream.getbuffer() as view:
                v5scan.check(view, path, budget)
            (_, wrapper), = _v5_variables(stream, len(stream.getvalue()))[:1]
            mcos = wrapper[0, 0]["MCOS"] if wrapper.dtype.names and "MCOS" in wrapper.dtype.names else None
            if mcos is not None:
                sub = Subsystem(_from_scipy(mcos[0]["arr"]), path)
        else:
            result[name] = value
    return _finish(result, sub, path)


# ----------------------------------------------------------------------------------------- v7.3

def _load_v73(path: str) -> dict:
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"not a readable MATLAB v7.3 (HDF5) file: {e}", path=path) from None
    with f:
        from ...files.safety import check_hdf5
        from .hdf5 import V73Reader
        reader = V73Reader(f, path, check_hdf5(f, path, what="MATLAB v7.3 file"))
        sub = None
        if "#subsystem#" in f and "MCOS" in f["#subsystem#"]:
            cells = reader.variable("#subsystem#/MCOS")
            if isinstance(cells, tuple):
                cells = cells[2]
            sub = Subsystem(cells, path)
        result = {k: reader.variable(k) for k in f.keys() if k not in ("#refs#", "#subsystem#")}
    return _finish(result, sub, path)


# ---------------------------------------------------------------------------------------- shared

def _finish(variables: dict, sub: Subsystem | None, path: str) -> dict:
    out = {}
    for name, value in variables.items():
        if isinstance(value, tuple) and value and value[0] == "opaque":
            _, cls, ref = value
            if sub is None or not is_object_ref(np.asarray(ref)):
                raise InputError(f"variable '{name}' is a MATLAB {cls} object but the file holds no "
                                 "object data (a truncated or non-MCOS file); re-save it with save(...) "
                                 "or export it with matlab/rnnconvert_export.m", path=path)
            out[name] = sub.objects(np.asarray(ref, dtype=np.uint32))
        elif isinstance(value, np.ndarray) and not isinstance(value, tuple):
            out[name] = sub.resolve(_from_scipy(value)) if sub else _from_scipy(value)
        else:
            out[name] = sub.resolve(value) if sub else value
    return out


def is_v73(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(128)
    return head[:19] == b"MATLAB 7.3 MAT-file" or head[:8] == b"\x89HDF\r\n\x1a\n" or (
        len(head) >= 128 and head[124:126] == b"\x00\x02")


def load(path: str) -> dict:
    """Every variable of a MAT-file (v5/v6/v7 or v7.3) with MATLAB objects decoded."""
    path = str(path)
    return _load_v73(path) if is_v73(path) else _load_v5(path)
