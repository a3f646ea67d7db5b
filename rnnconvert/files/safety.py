"""Guards a reader applies before it trusts a file from a stranger, and the NaN/Inf weight check.

- HDF5 (Keras .h5, a .keras's model.weights.h5, MATLAB v7.3): external links, external raw storage
  and virtual datasets are refused (they make the library open other files); the datasets together
  may not declare more bytes than their file could hold compressed (`MAX_RATIO`, one budget per file,
  checked before anything is read), nor read more (`Hdf5Budget`); a weight must be an integer or
  floating-point dataset (`read_numeric`), and no axis may pass MAX_AXIS.
- Zip (.keras, .rnnc, .pt): member names that are absolute or climb out with `..` are refused, so are
  duplicate names and members expanding more than ZIP_RATIO:1, alone or together (zip bombs), or, stored, declaring
  another size than they hold.  Nothing is ever extracted to disk.
- ONNX external data: only files inside the model's own directory (after resolving symlinks), with
  offset and length inside the file and equal to what the tensor's shape needs.
- `.npy` members: the header's shape times the item size must fit in the member.
- YAML (batch plans, --arch, --mapping): `read_yaml` bounds the file's size, decodes it as UTF-8 and
  parses it with `yaml.safe_load` (plain data only: no Python objects), one message per failure.
  Anchors and aliases are refused: a plan or hints file never needs them, and aliases nested a few
  levels deep (a "billion laughs") expand a 1 KB file into billions of nodes when hashed or walked.
- JSON (safetensors headers, .rnnc manifests, .pt and ONNX metadata, Keras configs, vectors.json, the
  batch state): `read_json` bounds the size, decodes UTF-8 and checks the nesting depth with a
  vectorised bracket count (strings removed first) before `json.loads` runs, whose C parser would
  otherwise end in RecursionError on `[[[[...` 100,000 deep.
- `nonfinite(model)`: every weight tensor holding NaN or Inf; `check_finite` refuses them.
"""
from __future__ import annotations

import mmap
import os
import re
import struct
import tokenize

import numpy as np

from ..errors import InputError
from ..errors import one_line, short_repr
from .hdf5_headers import check_vlen_attributes

# Deflate cannot expand its input more than about 1032:1; an HDF5 dataset declaring more is a lie.
MAX_RATIO = 1100
# Model weights compress poorly (about 1.1:1, JSON about 10:1): a zip member over SLACK expanding more
# than ZIP_RATIO times is refused as a zip bomb before a byte of it is inflated.
ZIP_RATIO = 100
SLACK = 1 << 20                   # small datasets (or members) are never refused for their ratio
SKIP_BYTES = 1 << 16              # contiguous datasets this large are not searched for global heaps
MAX_AXIS = 1 << 31                # no weight (or MATLAB array) has an axis longer than this
MAX_NESTING = 64                  # HDF5 groups nested deeper than any model (Keras: about 10)


# ------------------------------------------------------------------------------------------- HDF5

def check_global_heaps(buf, path, what: str, skip=()) -> None:
    """Walk every HDF5 global heap collection ("GCOL": variable-length strings such as Keras's
    model_config): libhdf5 loops forever on a collection whose objects do not advance (a zeroed
    object header), so such a file is refused before h5py reads a string from it.  `skip`: sorted,
    disjoint (start, end) byte ranges holding datasets' raw data, which are not searched."""
    gaps, at = [], 0
    for a, b in skip:
        gaps.append((at, a))
        at = b
    gaps.append((at, len(buf)))
    for lo, hi in gaps:
        _check_heaps_in(buf, lo, hi, path, what)


def _check_heaps_in(buf, lo: int, hi: int, path, what: str) -> None:
    start = buf.find(b"GCOL", lo, hi)
    while start >= 0:
        if buf[start + 4:start + 5] == b"\x01" and start + 16 <= len(buf):
            size = struct.unpack("<Q", buf[start + 8:start + 16])[0]
            end, o = start + size, start + 16
            if size >= 4096 and end <= len(buf):
                while o + 16 <= end:
                    index, _, _, n = struct.unpack("<HHIQ", buf[o:o + 16])
                    step = n if index == 0 else 16 + (n + 7) // 8 * 8
                    if step < 16 or o + step > end:
                        raise InputError(f"{what} is damaged: global heap at byte {start} has an object at byte "
                                         f"{o} of size {n} that does not fit", path=str(path))
                    if index == 0:
                        break
                    o += step
        start = buf.find(b"GCOL", start + 4, hi)


def check_hdf5(f, path, file_size: int | None = None, what: str = "HDF5 file", raw=None) -> "Hdf5Budget":
    """Refuse external links, external storage, virtual datasets, axes no weight has (MAX_AXIS),
    datatypes with no NumPy equivalent and datasets declaring together more bytes than the file
    could hold compressed (MAX_RATIO times what they store, one budget for the whole file: unwritten
    chunks read as fill values), groups nested past MAX_NESTING, and damaged global heaps (`raw`: the
    file's bytes, else read from `path` through mmap).  Returns the file's Hdf5Budget, which the reader
    charges as it reads."""
    import h5py
    if file_size is None:
        file_size = os.path.getsize(path)
    budget = Hdf5Budget(file_size, path, what)
    problems: list[str] = []
    extents: list[tuple[int, int]] = []      # contiguous datasets' raw bytes: no heap is searched there
    seen: set[int] = set()                   # datasets by address: a hard link twice is one dataset
    declared_total, stored_total, largest = 0, 0, (0, "")
    unstored: list[str] = []                 # datasets declaring far more than they store
    headers = [h5py.h5o.get_info(f.id).addr]  # every object's header: their attributes are checked too

    def visit(name, link):
        nonlocal declared_total, stored_total, largest
        if name.count("/") >= MAX_NESTING:        # stops the walk: each name is the whole path
            top = "/".join(name.split("/")[:3])
            problems.append(f"groups nested more than {MAX_NESTING} deep (under '{top}/...'), deeper than any model")
            return True
        if isinstance(link, h5py.ExternalLink):
            problems.append(f"'{name}' is an external link to '{link.filename}:{link.path}'")
            return
        if not isinstance(link, h5py.HardLink):
            return
        obj = f.get(name)
        if obj is not None:
            headers.append(h5py.h5o.get_info(obj.id).addr)
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.is_virtual:
            problems.append(f"'{name}' is a virtual dataset (it maps data from other files)")
            return
        if obj.external:
            files = ", ".join(sorted({str(e[0]) for e in obj.external}))
            problems.append(f"'{name}' stores its data in external file(s) {files}")
            return
        addr = h5py.h5o.get_info(obj.id).addr
        if addr in seen:
            return
        seen.add(addr)
        shape = obj.shape or ()
        if any(n > MAX_AXIS for n in shape):
            problems.append(f"'{name}' has shape {list(shape)}, an axis longer than {MAX_AXIS} (no weight has one)")
            return
        try:
            itemsize = obj.dtype.itemsize
        except (TypeError, ValueError):          # an HDF5 datatype NumPy cannot hold
            problems.append(f"'{name}' holds {hdf5_class(obj)} values that NumPy cannot represent")
            return
        declared = int(np.prod(shape, dtype=object) or 0) * itemsize
        if declared > budget.total:
            problems.append(f"'{name}' declares {_size(declared)} ({list(shape)} {obj.dtype}), more "
                            f"than a {_size(file_size)} file can hold")
            return
        stored = obj.id.get_storage_size()
        declared_total, stored_total = declared_total + declared, stored_total + stored
        largest = max(largest, (declared, name))
        if declared > MAX_RATIO * stored + SLACK:      # unwritten chunks read as fill values, slowly
            unstored.append(f"'{name}' declares {_size(declared)} ({list(shape)} {obj.dtype}) but stores "
                            f"{_size(stored)}")
            return
        if obj.chunks is None and declared >= SKIP_BYTES:
            try:
                offset = obj.id.get_offset()
            except Exception:  # noqa: BLE001 - no known offset: the dataset's bytes are searched too
                offset = None
            if offset is not None and 0 < offset and offset + declared <= file_size:
                extents.append((offset, offset + declared))
    try:
        f.visititems_links(visit)     # reads object headers and link names only, never a global heap
    except (OSError, RuntimeError, KeyError, ValueError, SystemError) as exc:   # HDF5's errors on damaged files
        raise InputError(f"{what} is damaged: its object tree cannot be walked ({one_line(exc)})",
                         path=str(path)) from None
    if declared_total > MAX_RATIO * min(stored_total, file_size) + SLACK:
        size, name = largest
        problems.insert(0, f"its datasets declare {_size(declared_total)} in all (the largest, '{name}', "
                           f"{_size(size)}) and store {_size(stored_total)}, more than a {_size(file_size)} "
                           "file can hold")
    else:
        problems.extend(unstored)
    skip, end = [], 0
    for a, b in sorted(extents):
        if a < end:              # overlapping storage: a damaged file, so search everything
            skip = []
            break
        skip.append((a, b))
        end = b
    if raw is not None:
        check_global_heaps(raw, path, what, skip)
        check_vlen_attributes(raw, headers, path, what)
    elif file_size:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            check_global_heaps(m, path, what, skip)
            check_vlen_attributes(m, headers, path, what)
    if problems:
        raise InputError(f"{what} refused: " + "; ".join(problems[:3])
                         + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
                         + "; rnnconvert reads only data stored inside the file itself", path=str(path))
    return budget


class Hdf5Budget:
    """The bytes readers may take from one HDF5 file, all datasets together: MAX_RATIO times the file's
    size plus SLACK.  check_hdf5 holds the declared sizes to it; `read_numeric` charges each read, so a
    dataset read twice (listed twice, referenced from many cells) is paid for twice."""

    def __init__(self, file_size: int, path, what: str):
        self.file_size, self.path, self.what = file_size, str(path), what
        self.total = self.left = MAX_RATIO * file_size + SLACK

    def charge(self, nbytes: int, dataset) -> None:
        """Take `nbytes` read from `dataset` (its name asked only for the message: h5py finds the name of a
        dataset reached by reference by searching the file)."""
        if nbytes > self.left:
            raise InputError(f"{self.what} refused: reading '{dataset.name}' ({_size(nbytes)}) takes the bytes "
                             f"read from it past {_size(self.total)}, more than a {_size(self.file_size)} file "
                             "can hold (a dataset listed or referenced again and again)", path=self.path)
        self.left -= nbytes


_HDF5_CLASSES = {0: "integer", 1: "floating-point", 2: "time", 3: "string", 4: "bitfield", 5: "opaque",
                 6: "compound", 7: "reference", 8: "enum", 9: "variable-length", 10: "array"}


def hdf5_class(ds) -> str:
    """The HDF5 datatype class of dataset `ds` in words ("compound", "variable-length", ...)."""
    try:
        return _HDF5_CLASSES.get(ds.id.get_type().get_class(), "unknown")
    except Exception:  # noqa: BLE001 - a type HDF5 cannot describe
        return "unknown"


def read_numeric(ds, path, budget: Hdf5Budget | None, layer: str | None = None, complex_ok: bool = False):
    """Dataset `ds` as a NumPy array when its HDF5 datatype is integer or floating point (`complex_ok`:
    also a compound of numeric `real` and `imag`, MATLAB's complex), charged to `budget`; anything
    else (compound, opaque, string, variable-length, reference, enum, bitfield, array) is refused
    naming the dataset, before a byte of it is read."""
    kind = hdf5_class(ds)
    ok = kind in ("integer", "floating-point")
    if not ok and complex_ok and kind == "compound":
        names = ds.dtype.names or ()
        ok = set(names) == {"real", "imag"} and all(ds.dtype[n].kind in "iuf" for n in names)
    if not ok:
        try:
            dtype = f" ({ds.dtype})"
        except Exception:  # noqa: BLE001 - no NumPy equivalent
            dtype = ""
        raise InputError(f"dataset '{ds.name}' holds {kind} values{dtype}, expected numbers (an integer or "
                         "floating-point array)", path=str(path), layer=layer)
    if budget is not None:
        budget.charge(int(ds.size or 0) * ds.dtype.itemsize, ds)
    return np.asarray(ds[()])


# -------------------------------------------------------------------------------------------- zip

def _unsafe_name(name: str) -> bool:
    parts = re.split(r"[\\/]", name)
    return name.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", name)) or ".." in parts


def check_zip(z, path, archive_size: int | None = None, what: str = "zip archive") -> None:
    """Refuse unsafe member names, duplicates and members declaring sizes their bytes cannot give."""
    import zipfile
    if archive_size is None:
        archive_size = os.path.getsize(path)
    problems, seen = [], set()
    for info in z.infolist():
        name = info.filename
        if _unsafe_name(name):
            problems.append(f"member '{name}' has an absolute path or climbs out with '..'")
        if name in seen:
            problems.append(f"member '{name}' appears twice")
        seen.add(name)
        if info.flag_bits & 0x61:            # encrypted, patched data, strong encryption
            problems.append(f"member '{name}' is encrypted or patched (zip flags {info.flag_bits:#x}); rnnconvert "
                            "reads plain stored or deflated members")
        elif info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) \
                or info.extract_version > zipfile.MAX_EXTRACT_VERSION:
            problems.append(f"member '{name}' needs zip version {info.extract_version / 10:.1f} or compression "
                            f"method {info.compress_type}; rnnconvert reads stored or deflated members")
        elif info.compress_size > archive_size:
            problems.append(f"member '{name}' declares {_size(info.compress_size)} of compressed data in a "
                            f"{_size(archive_size)} archive")
        elif info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            problems.append(f"member '{name}' is stored uncompressed but declares {_size(info.file_size)} "
                            f"from {_size(info.compress_size)}")
        elif info.file_size > ZIP_RATIO * info.compress_size + SLACK:
            problems.append(f"member '{name}' declares {_size(info.file_size)} from {_size(info.compress_size)} "
                            f"compressed (ratio over {ZIP_RATIO}:1, a zip bomb)")
    total = sum(info.file_size for info in z.infolist())       # many members each just under the ratio
    if not problems and total > ZIP_RATIO * archive_size + SLACK:
        problems.append(f"members declare {_size(total)} in all from a {_size(archive_size)} archive (ratio over "
                        f"{ZIP_RATIO}:1, a zip bomb)")
    if problems:
        raise InputError(f"{what} refused: " + "; ".join(problems[:3])
                         + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""), path=str(path))


def read_member(z, name: str, path, limit: int = 100_000_000) -> bytes:
    """The bytes of zip member `name` (a manifest or config), refused past `limit` before it is inflated."""
    info = z.getinfo(name)
    if info.file_size > limit:
        raise InputError(f"member '{name}' is {_size(info.file_size)}, over the {_size(limit)} rnnconvert reads",
                         path=str(path))
    with _open_member(z, name, path) as f:
        return f.read(limit + 1)[:limit]


def _open_member(z, name: str, path):
    """z.open(name), its local header's own refusals (an encryption or patch flag the central directory did
    not show: RuntimeError, NotImplementedError; a damaged header: BadZipFile) as an InputError."""
    import zipfile
    try:
        return z.open(name)
    except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"member '{name}' cannot be read ({one_line(exc)})", path=str(path)) from None


def read_npy(z, name: str, path):
    """A `.npy` member of zip `z`, its header checked against the member's size before allocating."""
    from numpy.lib import format as npy
    info = z.getinfo(name)
    with _open_member(z, name, path) as f:
        try:
            version = npy.read_magic(f)
            shape, fortran, dtype = (npy.read_array_header_1_0(f) if version == (1, 0)
                                     else npy.read_array_header_2_0(f))
        except (ValueError, OSError, EOFError, SyntaxError, tokenize.TokenError) as exc:
            raise InputError(f"member '{name}' is not a .npy array ({one_line(exc)})", path=str(path)) from None
        if dtype.hasobject:
            raise InputError(f"member '{name}' holds Python objects; rnnconvert reads numeric arrays only",
                             path=str(path))
        if dtype.kind not in "fiub":
            raise InputError(f"member '{name}' has dtype {short_repr(dtype.descr if dtype.names else dtype.str)} "
                             "(records, strings, complex or dates); rnnconvert reads numeric arrays only",
                             path=str(path))
        need = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if need > info.file_size:
            raise InputError(f"member '{name}' declares shape {list(shape)} {dtype} ({_size(need)}) but holds "
                             f"{_size(info.file_size)}", path=str(path))
        if any(d > (1 << 31) - 1 for d in shape):         # an empty array: [10**30, 0]
            raise InputError(f"member '{name}' declares shape {short_repr(list(shape))}, an axis over 2**31-1",
                             path=str(path))
        data = f.read(need)
    if len(data) != need:
        raise InputError(f"member '{name}' is truncated: {len(data)} of {need} bytes", path=str(path))
    a = np.frombuffer(data, dtype=dtype)
    return (a.reshape(shape[::-1]).T if fortran else a.reshape(shape)).copy()


# ------------------------------------------------------------------------------- ONNX external data

def check_onnx_external(proto, path) -> None:
    """Every external tensor's file inside the model's directory, its bytes inside that file."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors
    base = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    problems = []
    for t in _get_all_tensors(proto):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        where = f"tensor '{t.name}'"
        if not loc or os.path.isabs(loc) or _unsafe_name(loc):
            problems.append(f"{where}: external data location '{loc}' is not a plain path inside the model's "
                            "directory")
            continue
        full = os.path.realpath(os.path.join(base, loc))
        if os.path.commonpath([full, base]) != base:
            problems.append(f"{where}: external data '{loc}' resolves to '{full}', outside the model's directory")
            continue
        if not os.path.isfile(full):
            problems.append(f"{where}: external data file '{loc}' is missing")
            continue
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
        except ValueError:
            problems.append(f"{where}: external data offset/length are not integers")
            continue
        size = os.path.getsize(full)
        try:
            need = int(np.prod(list(t.dims), dtype=object)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        except (KeyError, TypeError, ValueError):
            need = None
        if length < 0:
            length = size - offset
        if offset < 0 or offset + length > size:
            problems.append(f"{where}: external data '{loc}' bytes {offset}..{offset + length} are outside the "
                            f"file ({size} bytes)")
        elif need is not None and need != length:
            problems.append(f"{where}: shape {list(t.dims)} needs {need} bytes, external data gives {length}")
    if problems:
        raise InputError("ONNX external data refused: " + "; ".join(problems[:3])
                         + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""), path=str(path))


# ------------------------------------------------------------------------------------------- YAML

# ------------------------------------------------------------------------------------------- JSON

# ----------------------------------------------------------------------------------- NaN and Inf

def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
