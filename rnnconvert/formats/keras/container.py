"""Open a Keras file without Keras: the legacy HDF5 file (`.h5`) and the Keras 3 zip (`.keras`).

Legacy HDF5 (Keras 1 and 2, tf.keras 2.x, Keras 3 `model.save('x.h5')`): root attributes
`model_config` (JSON), `keras_version`, `backend`; one group per layer in `model_weights/`, whose
`weight_names` attribute (split into `weight_names0`, `weight_names1`, ... when long) lists the
arrays in order as paths relative to the group: `lstm_1/kernel:0` (Keras 2),
`lstm/lstm_cell/kernel:0` (tf.keras 2.x), `sequential/lstm/lstm_cell/kernel` (Keras 3).

`.keras` zip (Keras 3, tf.keras >= 2.13): `config.json`, `metadata.json` and `model.weights.h5`,
where a layer's group is named after its CLASS, numbered per class in model order (`layers/lstm`,
`layers/lstm_1`), not after the layer; arrays are `<object>/vars/0..n` with sub-objects below
(`cell`, `forward_layer`, `backward_layer`, `layer`).  tf.keras 2.x on Windows wrote backslashes
into those group names (`layers\\lstm\\cell`), which Keras cannot load: refused unless
`accept_windows_paths`, then read as slashes.
"""
from __future__ import annotations

import io
import mmap
import os
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Callable

import h5py
import numpy as np

from ...errors import InputError, UnsupportedError
from ...files.safety import check_hdf5, check_zip, read_numeric
from ...files.text import read_json

ZIP_CONFIG, ZIP_METADATA, ZIP_WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
WEIGHTS_ONLY_HINT = ("A weights-only file (save_weights) holds no architecture: build the model in Keras, "
                     "call model.load_weights() on it and save it with model.save('model.keras')")


@dataclass
class Saved:
    """What a Keras file holds, read into memory: config, versions and per-layer weight lookup."""
    container: str                       # "h5" or "keras"
    config: dict                         # {"class_name": "Sequential" | "Functional" | "Model", "config": ...}
    keras_version: str | None
    backend: str | None
    layer_weights: Callable              # (entry) -> (list[(name, array)], where they were looked up)
    notes: list[str] = field(default_factory=list)
    read_notes: list[str] = field(default_factory=list)    # how the file was read (not an assumption)
    empty_reason: str | None = None       # why no layer has weights (a weights file without layer groups)
    windows_groups: list[str] = field(default_factory=list)   # refused Windows-separated groups
    release: Callable = lambda entry: None   # (entry): its arrays are converted, the container may drop them

    def windows_refusal(self, keys: list[str], path) -> InputError | None:
        """The refusal of weights stored under Windows path separators, naming the first layer's group."""
        if not self.windows_groups:
            return None
        def layer_of(group):
            return group.replace("\\", "/").split("/")[1]
        ordered = sorted(self.windows_groups, key=lambda g: keys.index(layer_of(g)) if layer_of(g) in keys
                         else len(keys))
        found = ordered[0]
        return InputError(f"{ZIP_WEIGHTS} has no weights under the names Keras reads "
                          f"({found.replace(chr(92), '/')}); it has them under Windows path separators "
                          f"({found}), which Keras cannot load; pass --accept-windows-paths to read them",
                          path=path)

    def missing_weights(self, problems, path) -> InputError | None:
        """One error naming every layer whose weights are missing, when the file holds no layer weights."""
        if self.empty_reason is None:
            return None
        names = [p.layer for p in problems if p.layer]
        return InputError(f"{ZIP_WEIGHTS} holds no layer weights ({self.empty_reason}): the weights of layers "
                          f"{', '.join(repr(n) for n in names)} are missing; re-save the trained model with "
                          "model.save('model.keras')", path=path)


def is_zip(path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def sniff(path) -> bool:
    """True for a Keras model or weights file; never raises."""
    try:
        if is_zip(path):
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
            return ZIP_CONFIG in names and bool(names & {ZIP_METADATA, ZIP_WEIGHTS, "model.weights.npz"})
        if not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as f:
            return ("model_config" in f.attrs or "layer_names" in f.attrs
                    or ("layers" in f and "vars" in f))
    except Exception:  # noqa: BLE001 - sniffing must answer, not raise
        return False


def text(value) -> str | None:
    """An HDF5 attribute or JSON value as str (attributes may be bytes or 0-d arrays)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    # h5py hands invalid UTF-8 over as lone surrogates, which cannot be printed: replace them
    return str(value).encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def attr_list(group, name: str) -> list[str]:
    """A list attribute, joined from its chunks `name0`, `name1`, ... when Keras split it."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks, k = [], 0
        while f"{name}{k}" in group.attrs:
            chunks.append(group.attrs[f"{name}{k}"])
            k += 1
    return [text(n) for c in chunks for n in np.atleast_1d(c)]


def _json(raw, what: str, path) -> dict:
    obj = read_json(text(raw) if not isinstance(raw, str) else raw, path, what, not_json="is not valid JSON")
    if not isinstance(obj, dict):
        raise InputError(f"{what} is JSON but not an object (found {type(obj).__name__})", path=path)
    return obj


def open_file(path, accept_windows_paths: bool = False) -> Saved:
    """Open by content (a renamed file still reads); the error names what the suffix promised."""
    if is_zip(path):
        return open_zip(path, accept_windows_paths)
    if str(path).lower().endswith(".keras") and not h5py.is_hdf5(path):
        try:
            zipfile.ZipFile(path).close()
            reason = "unknown"
        except Exception as exc:  # noqa: BLE001 - the reason is reported, whatever zipfile raised
            reason = str(exc)
        raise InputError(f"not a Keras model file (cannot open as a .keras zip archive: {reason})", path=path)
    return open_h5(path)


# ---------------------------------------------------------------------------------------------
# Legacy HDF5

def open_h5(path) -> Saved:
    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, sometimes others
        raise InputError(f"not a Keras model file (cannot open as HDF5: {exc})", path=path) from None
    with f:
        budget = check_hdf5(f, path, what="Keras HDF5 file")
        if "model_config" not in f.attrs:
            raise InputError(_no_config_message(f), path=path)
        config = _json(f.attrs["model_config"], "the 'model_config' attribute", path)
        version = text(f.attrs.get("keras_version"))
        backend = text(f.attrs.get("backend"))
        root = f.get("model_weights")
        if not isinstance(root, h5py.Group):
            raise InputError("the file holds a model_config but no 'model_weights' group: it has no weights "
                             "to convert; save the trained model with model.save()", path=path)
        weights, arrays = {}, []
        try:
            for lname, group in root.items():
                if not isinstance(group, h5py.Group):
                    continue
                arrays = []
                for wname in attr_list(group, "weight_names"):
                    ds = group.get(wname)
                    if not isinstance(ds, h5py.Dataset):
                        raise InputError(f"weight '{wname}' is listed in weight_names but missing from "
                                         f"model_weights/{lname}; the file is damaged", path=path, layer=lname)
                    arrays.append((wname, read_numeric(ds, path, budget, layer=lname)))
                weights[lname] = arrays
        except InputError:        # the arrays read go now: the error's traceback would keep them alive
            weights.clear()
            arrays.clear()
            raise
    notes = []
    if version is None:
        notes.append("no keras_version attribute (Keras 1 files have none)")

    def lookup(entry):
        return weights.get(entry.name), f"model_weights/{entry.name}"

    def release(entry):       # a converted layer's source arrays go, so they are not held twice
        weights.pop(entry.name, None)

    return Saved("h5", config, version, backend, lookup, notes, release=release)


def _no_config_message(f) -> str:
    msg = ("HDF5 file has no 'model_config' attribute; it is not a Keras model saved with model.save(). "
           + WEIGHTS_ONLY_HINT)
    names = attr_list(f, "layer_names")
    if names:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        msg += f" (this file looks weights-only: it lists layers {shown})"
    elif "layers" in f and "vars" in f:
        msg += " (this file looks like a Keras 3 weights file, model.weights.h5)"
    return msg


# ---------------------------------------------------------------------------------------------
# Keras 3 zip

def open_zip(path, accept_windows_paths: bool = False) -> Saved:
    try:
        with zipfile.ZipFile(path) as z:
            check_zip(z, path, what=".keras archive")
            names = z.namelist()
            if ZIP_CONFIG not in names:
                shown = ", ".join(names[:10]) or "nothing"
                raise InputError(f"zip archive has no config.json; it is not a Keras .keras model "
                                 f"(it holds {shown})", path=path)
            config = _json(z.read(ZIP_CONFIG), "config.json", path)
            meta = _json(z.read(ZIP_METADATA), "metadata.json", path) if ZIP_METADATA in names else {}
            if ZIP_WEIGHTS not in names:
                if "model.weights.npz" in names:
                    raise UnsupportedError("the weights are stored as model.weights.npz; rnnconvert reads "
                                           "model.weights.h5: re-save with model.save('model.keras')", path=path)
                raise InputError("the archive has no model.weights.h5: it holds no weights to convert",
                                 path=path)
            member = z.getinfo(ZIP_WEIGHTS)
            data = None if member.compress_type == zipfile.ZIP_STORED else z.read(ZIP_WEIGHTS)
        # a stored member (what Keras writes) is read in place, not copied into memory first
        data = data if data is not None else StoredMember(path, member)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, zlib.error) as exc:
        raise InputError(f"not a Keras model file (cannot read the .keras zip archive: {exc})",
                         path=path) from None
    try:
        return _read_weights(path, data, config, meta, accept_windows_paths)
    finally:
        if isinstance(data, StoredMember):
            data.close()


def _read_weights(path, data, config: dict, meta: dict, accept_windows_paths: bool) -> Saved:
    try:
        f = h5py.File(data.file() if isinstance(data, StoredMember) else io.BytesIO(data), "r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"model.weights.h5 in the archive cannot be opened as HDF5 ({exc})", path=path) from None
    arrays: dict[str, np.ndarray] = {}
    var_names: dict[str, str] = {}        # layer name (attribute of Keras >= 3.10 vars groups) -> key
    windows: list[str] = []               # datasets under layers\\... (Windows path separators)
    top: set[str] = set()
    with f:
        budget = check_hdf5(f, path, len(data), what="model.weights.h5 in the .keras archive", raw=data)

        def visit(name, obj):
            norm = name.replace("\\", "/")
            top.add(norm.split("/")[0])
            if not norm.startswith("layers/"):
                return
            if isinstance(obj, h5py.Dataset):
                arrays[norm] = read_numeric(obj, path, budget)
                if norm != name:
                    windows.append(name)
            elif norm.endswith("/vars") and norm.count("/") == 2 and "name" in obj.attrs:
                var_names[text(obj.attrs["name"])] = norm[: -len("/vars")]
        try:
            f.visititems(visit)
        except InputError:        # the arrays read go now: the error's traceback would keep them alive
            arrays.clear()
            raise
    notes, read_notes = [], []
    if windows and accept_windows_paths:
        read_notes.append(f"{ZIP_WEIGHTS} names its groups with Windows path separators (layers\\lstm\\cell), which "
                     "Keras cannot load; read as layers/lstm/cell (--accept-windows-paths)")
    empty = None
    if not arrays:
        held = ", ".join(sorted(top - {"layers"})) or "nothing"
        empty = f"no arrays under layers/; it holds {held}"
    version = text(meta.get("keras_version"))

    def lookup(entry):
        key = var_names.get(entry.name) or f"layers/{entry.key}"
        found = _vars_under(arrays, key)
        if not found and entry.key != entry.name and _vars_under(arrays, f"layers/{entry.name}"):
            key = f"layers/{entry.name}"
            found = _vars_under(arrays, key)
        looked_up[entry.name] = [name for name, _ in found]
        return found, f"model.weights.h5:{key}"

    looked_up: dict[str, list[str]] = {}

    def release(entry):       # a converted layer's source arrays go, so they are not held twice
        for name in looked_up.pop(entry.name, ()):
            arrays.pop(name, None)

    saved = Saved("keras", config, version, text(meta.get("backend")), lookup, notes, read_notes, empty,
                  release=release)
    if windows and not accept_windows_paths:
        saved.windows_groups = sorted({n.rsplit("/", 1)[0] for n in windows})
    return saved


class StoredMember:
    """An uncompressed zip member in place, its CRC-32 checked: `file()` a read-only file object over its
    bytes (for h5py), and what check_hdf5 uses of bytes (`find`, slices, `len`) over a memory map."""

    def __init__(self, path, info: zipfile.ZipInfo):
        self.fh = open(path, "rb")
        self.fh.seek(info.header_offset)
        local = self.fh.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise zipfile.BadZipFile(f"bad local header for {info.filename}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        self.start = info.header_offset + 30 + name_len + extra_len
        self.size = info.file_size
        if self.start + self.size > os.fstat(self.fh.fileno()).st_size:
            raise zipfile.BadZipFile(f"{info.filename} runs past the end of the archive")
        crc, left = 0, self.size         # what zipfile's read checks, in 1 MiB pieces
        self.fh.seek(self.start)
        while left:
            piece = self.fh.read(min(left, 1 << 20))
            if not piece:
                raise zipfile.BadZipFile(f"{info.filename} is truncated")
            crc, left = zlib.crc32(piece, crc), left - len(piece)
        if crc != info.CRC:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file '{info.filename}'")
        self.map = mmap.mmap(self.fh.fileno(), 0, access=mmap.ACCESS_READ) if self.size else b""

    def file(self):
        return _Window(self.fh, self.start, self.size)

    def close(self):
        if isinstance(self.map, mmap.mmap):
            self.map.close()
        self.fh.close()

    def __len__(self):
        return self.size

    def find(self, sub, start=0, end=None):
        end = self.size if end is None else min(end, self.size)
        at = self.map.find(sub, self.start + start, self.start + end)
        return at - self.start if at >= 0 else -1

    def __getitem__(self, k: slice):
        lo, hi, _ = k.indices(self.size)
        return self.map[self.start + lo:self.start + max(lo, hi)]


class _Window(io.RawIOBase):
    """Bytes [start, start + size) of an open file, as a seekable read-only file."""

    def __init__(self, fh, start: int, size: int):
        super().__init__()
        self.fh, self.start, self.size, self.pos = fh, start, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, b):
        n = max(0, min(len(b), self.size - self.pos))
        if n == 0:
            return 0
        self.fh.seek(self.start + self.pos)
        got = self.fh.readinto(memoryview(b)[:n])
        self.pos += got
        return got


_SUB_ORDER = {"forward_layer": 0, "backward_layer": 1}


def _vars_under(arrays: dict, key: str) -> list[tuple[str, np.ndarray]]:
    """Arrays of one layer in the order Keras lists its weights: own vars, then sub-objects
    (forward before backward), each `vars/<i>` in numeric order."""
    prefix = key + "/"
    rows = []
    for name, a in arrays.items():
        if not name.startswith(prefix):
            continue
        m = re.fullmatch(r"(?:(.*)/)?vars/(\d+)", name[len(prefix):])
        if not m:
            continue
        sub = m.group(1) or ""
        first = sub.split("/")[0]
        rows.append(((sub != "", _SUB_ORDER.get(first, 2), sub, int(m.group(2))), name, a))
    return [(name, a) for _, name, a in sorted(rows, key=lambda r: r[0])]
