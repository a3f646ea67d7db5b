"""torch.save files read without torch: the zip format (torch >= 1.6) and the legacy pickle stream (earlier,
or `_use_new_zipfile_serialization=False`), CPU- or CUDA-saved alike (the location is ignored, as map_location='cpu').

Zip: `<archive>/data.pkl` is the pickle, each storage the member `<archive>/data/<key>` (stored, never
compressed by torch), `<archive>/byteorder` says little or big.  Legacy: pickles of the magic number,
the protocol version and the system info, the object's pickle, the list of storage keys, then each storage
as an int64 element count and its raw little-endian bytes.  The pickle runs in `unpickle.Machine`; a tensor
stays a `TensorRef` until `PtFile.array` reads exactly its bytes into its own array (read straight into it
when contiguous), so unused tensors are never read and a file is never held twice in memory.  Every offset,
size and stride is checked against the record it points into.

    with PtFile(path) as pt: obj = pt.obj; pt.array(tensor_ref, name) -> np.ndarray
"""
from __future__ import annotations

import mmap
import os
import struct
import sys
import zipfile
import zlib

import numpy as np

from ...errors import short_repr
from .globals_table import Damaged, Foreign, Storage, StorageType, Unreadable
from .unpickle import Machine

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
# torch dtypes read into NumPy; bfloat16 is widened to float32
NUMPY = {"float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": "u2", "complex128": "c16",
         "complex64": "c8", "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1", "bool": "?"}
_CHUNK = 1 << 30


class PtFile:
    """An open torch.save file: `obj` is the unpickled object (tensors as TensorRef), `kind` zip or legacy."""

    def __init__(self, path):
        self.path = str(path)
        self.fh = open(self.path, "rb", buffering=0)
        self.size = os.fstat(self.fh.fileno()).st_size
        self.records: dict[str, tuple[int, int]] = {}       # storage key -> (file offset, bytes) or zip name
        self.inflated: dict[str, bytes] = {}
        self.swap = sys.byteorder == "big"         # legacy storages and zips without a byteorder: little-endian
        self.zip = None
        try:
            head = self.fh.read(4)
            if head.startswith(b"PK"):
                self.kind = "zip"
                self._open_zip()
            else:
                self.kind = "legacy"
                self._open_legacy()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()
        self.fh.close()

    # ------------------------------------------------------------------------ zip

    def _open_zip(self) -> None:
        from ...files.safety import check_zip
        self.fh.seek(0)
        try:
            self.zip = zipfile.ZipFile(self.fh)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise Damaged(f"not a zip archive: {exc}") from None
        check_zip(self.zip, self.path, what="PyTorch zip archive")
        self.concat = _prepended(self.fh)
        names = self.zip.namelist()
        self.members = {i.filename: i for i in self.zip.infolist()}
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            from ...errors import InputError
            raise InputError("is a TorchScript archive (torch.jit.save); rnnconvert reads state dicts: "
                             "torch.save(model.state_dict(), 'model.pt')", path=self.path)
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise Damaged("the zip archive holds no data.pkl")
        self.prefix = pkl[:-len("data.pkl")]
        order = self.prefix + "byteorder"
        if order in self.members:
            mark = self._member(order, limit=16)
            if mark not in (b"little", b"big"):
                raise Damaged(f"its byteorder record says {mark[:16]!r}, not little or big")
            self.swap = (mark == b"big") != (sys.byteorder == "big")
        data = self._member(pkl)
        self.storages: dict = {}
        self.obj, _ = Machine(data, self._zip_storage).load(0)

    def _member(self, name: str, limit: int = 100_000_000) -> bytes:
        """A member's bytes read as torch's zip reader (miniz) reads them: no CRC check, the local header
        where the central directory says (`_local`), deflate bounded by the size the header declares."""
        info = self.members[name]
        if info.file_size > limit:
            raise Damaged(f"zip member '{name}' is {info.file_size:,} bytes, over the {limit:,} rnnconvert reads")
        start = self._local(info)
        raw = self._pread(start, info.compress_size)
        if info.compress_type == zipfile.ZIP_STORED:
            return raw
        try:
            out = zlib.decompressobj(-15).decompress(raw, info.file_size)
        except zlib.error as exc:
            raise Damaged(f"zip member '{name}' does not inflate ({exc})") from None
        if len(out) != info.file_size:
            raise Damaged(f"zip member '{name}' inflates to {len(out)} bytes, its header says {info.file_size}")
        return out

    def _local(self, info) -> int:
        """Where the member's bytes start, after its local header, found where the central directory says
        as miniz (torch's zip reader) finds it: Python's zipfile shifts every offset by the bytes it believes
        precede the archive (`concat`), miniz does not, and refuses a member whose header is not there."""
        at = info.header_offset - self.concat
        if 0 <= at <= self.size - 30:
            local = self._pread(at, 30)
            if local[:4] == b"PK\x03\x04":
                n, m = struct.unpack("<HH", local[26:30])
                start = at + 30 + n + m
                if start + info.compress_size > self.size:
                    raise Damaged(f"zip member '{info.filename}' runs past the end of the file")
                return start
        raise Damaged(f"zip member '{info.filename}' has no local header at byte {at}")

    def _pread(self, at: int, n: int) -> bytes:
        out = bytearray(n)
        self._read_at(memoryview(out), at, "the zip archive")
        return bytes(out)

    def _zip_storage(self, pid):
        if type(pid) is not tuple or len(pid) != 5 or _text(pid[0]) != "storage":
            raise _not_storage(pid)
        storage_type, key, _location, numel = pid[1:]
        if not isinstance(storage_type, StorageType) or storage_type.dtype.itemsize is None:
            raise Damaged(f"storage {short_repr(key)} has type {short_repr(storage_type)}, not a torch storage type")
        if type(numel) is not int or numel < 0 or type(key) not in (str, int):
            raise Damaged(f"storage {short_repr(key)} has {short_repr(numel)} elements")
        key = str(key)
        if key not in self.storages:
            name = f"{self.prefix}data/{key}"
            info = self.members.get(name)
            nbytes = numel * storage_type.dtype.itemsize
            if info is None:
                raise Damaged(f"storage record 'data/{key}' is missing")
            if info.file_size != nbytes:          # torch.load refuses any other size too
                raise Damaged(f"storage record 'data/{key}' holds {info.file_size} bytes, not the {nbytes} of "
                              f"its {numel} {storage_type.dtype.name} elements")
            self.records[key] = self._member_data(info)
            self.storages[key] = Storage(key, storage_type.dtype, 0, nbytes)
        return self.storages[key]

    def _member_data(self, info):
        """(offset of the member's bytes in the file, size), or the member's name when it is compressed."""
        if info.compress_type != zipfile.ZIP_STORED:
            return info.filename
        return self._local(info), info.file_size

    # ------------------------------------------------------------------------ legacy

    def _open_legacy(self) -> None:
        if self.size == 0:
            raise Damaged("the file is empty")
        self.map = mmap.mmap(self.fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._read_legacy(self.map)
        finally:
            self.map.close()

    def _read_legacy(self, data) -> None:
        def header(pos):
            return Machine(data, _no_storage).load(pos)
        magic, pos = header(0)
        if magic != LEGACY_MAGIC:
            raise Damaged("invalid magic number (neither a zip archive nor a legacy torch.save pickle)")
        version, pos = header(pos)
        if version != LEGACY_PROTOCOL:
            raise Damaged(f"invalid legacy protocol version {short_repr(version)}")
        _, pos = header(pos)                                  # system info: torch ignores it too
        self.roots: dict = {}
        self.views: dict = {}
        self.obj, pos = Machine(data, self._legacy_storage).load(pos)
        keys, pos = header(pos)
        if type(keys) is not list or not all(type(k) is str for k in keys):
            raise Damaged("the list of storage keys is not a list of strings")
        for key in keys:
            root = self.roots.get(key)
            if root is None:
                raise Damaged(f"storage key {key[:40]!r} names no storage of the pickle")
            if pos + 8 > self.size:
                raise Damaged(f"storage {key[:40]!r} starts past the end of the file")
            count = struct.unpack("<q", data[pos:pos + 8])[0]
            if count * root.dtype.itemsize != root.nbytes:
                raise Damaged(f"storage {key[:40]!r} holds {count} elements, the pickle says "
                              f"{root.nbytes // root.dtype.itemsize}")
            if pos + 8 + root.nbytes > self.size:
                raise Damaged(f"storage {key[:40]!r} ({root.nbytes} bytes) runs past the end of the file")
            self.records.setdefault(key, (pos + 8, root.nbytes))
            pos += 8 + root.nbytes
        missing = [k for k in self.roots if k not in self.records]
        if missing:
            raise Damaged(f"storage {missing[0][:40]!r} has no data in the file")

    def _legacy_storage(self, pid):
        if type(pid) is not tuple or len(pid) != 6 or _text(pid[0]) != "storage":
            raise _not_storage(pid)
        storage_type, key, _location, numel, view = pid[1:]
        if not isinstance(storage_type, StorageType) or storage_type.dtype.itemsize is None:
            raise Damaged(f"storage {short_repr(key)} has type {short_repr(storage_type)}, not a torch storage type")
        if type(key) is not str or type(numel) is not int or numel < 0:
            raise Damaged(f"storage {short_repr(key)} has {short_repr(numel)} elements")
        dtype = storage_type.dtype
        root = self.roots.setdefault(key, Storage(key, dtype, 0, numel * dtype.itemsize))
        if view is None:
            return root
        if type(view) is not tuple or len(view) != 3 or type(view[0]) is not str \
                or not all(type(v) is int and v >= 0 for v in view[1:]):
            raise Damaged(f"storage {key[:40]!r} has a view described as {short_repr(view)}")
        view_key, offset, size = view
        item = root.dtype.itemsize
        if (offset + size) * item > root.nbytes:
            raise Damaged(f"a view of storage {key[:40]!r} takes elements {offset}..{offset + size} of its "
                          f"{root.nbytes // item}")
        return self.views.setdefault(view_key, Storage(key, root.dtype, offset * item, size * item))

    # ------------------------------------------------------------------------ arrays

    def array(self, ref, name: str) -> np.ndarray:
        """The tensor's elements as a new C-contiguous array (bfloat16 as float32, native byte order)."""
        from ...errors import UnsupportedError
        if isinstance(ref, Unreadable):
            raise UnsupportedError(f"tensor '{name}' is {ref.kind}; only dense tensors are read", path=self.path)
        dtype = ref.dtype
        if dtype.name not in NUMPY or dtype.itemsize is None:
            raise UnsupportedError(f"tensor '{name}' has dtype {dtype.name}; rnnconvert reads float16, bfloat16, "
                                   "float32 and float64 weights (and integer buffers)", path=self.path)
        shape, stride, item = ref.shape, ref.stride, dtype.itemsize
        if len(shape) != len(stride) or min(shape + stride, default=0) < 0 or ref.offset < 0:
            raise Damaged(f"tensor '{name}' has size {list(shape)}, stride {list(stride)} and offset {ref.offset}")
        np_dtype = np.dtype(NUMPY[dtype.name])
        numel = 1
        for n in shape:
            numel *= n
        if numel == 0:
            return np.empty(shape, np.float32 if dtype.name == "bfloat16" else np_dtype)
        last = ref.offset + sum((n - 1) * s for n, s in zip(shape, stride))
        if (last + 1) * item > ref.storage.nbytes:
            raise Damaged(f"tensor '{name}' reads elements {ref.offset}..{last} of a storage holding "
                          f"{ref.storage.nbytes // item} {dtype.name} elements")
        start = ref.storage.start + ref.offset * item
        if _contiguous(shape, stride):
            out = _empty(shape, np_dtype, numel)
            self._read(ref.storage.key, start, memoryview(out.reshape(-1).view(np.uint8)))
        else:
            raw = np.empty((last - ref.offset + 1) * item, np.uint8)
            self._read(ref.storage.key, start, memoryview(raw))
            view = np.lib.stride_tricks.as_strided(raw.view(np_dtype), shape, [s * item for s in stride])
            out = np.ascontiguousarray(view)
        if self.swap and item > 1:
            out.byteswap(inplace=True)
        if dtype.name == "bfloat16":
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out

    def _read(self, key: str, start: int, dst: memoryview) -> None:
        """Bytes start.. of record `key` into `dst` (its whole length)."""
        where = self.records[key]
        if isinstance(where, str):                      # a compressed zip member: inflated once
            if where not in self.inflated:
                self.inflated[where] = self._member(where, limit=self.size * 1100)
            data = self.inflated[where]
            if start + len(dst) > len(data):
                raise Damaged(f"record '{where}' holds {len(data)} bytes, fewer than its header says")
            dst[:] = data[start:start + len(dst)]
            return
        offset, size = where
        if start + len(dst) > size:
            raise Damaged(f"storage {key[:40]!r} holds {size} bytes; bytes up to {start + len(dst)} are read")
        self._read_at(dst, offset + start, f"storage {key[:40]!r}")

    def _read_at(self, dst: memoryview, at: int, what: str) -> None:
        """dst's whole length from byte `at` of the file, straight into dst (chunks of at most 1 GiB)."""
        done = 0
        while done < len(dst):
            n = os.preadv(self.fh.fileno(), [dst[done:done + _CHUNK]], at + done) if hasattr(os, "preadv") \
                else self._seek_read(dst[done:done + _CHUNK], at + done)
            if n <= 0:
                raise Damaged(f"the file ends inside {what}")
            done += n

    def _seek_read(self, dst, at: int) -> int:
        self.fh.seek(at)
        return self.fh.readinto(dst)


def _prepended(fh) -> int:
    """Bytes Python's zipfile believes precede the archive (it adds them to every member's offset)."""
    try:
        end = zipfile._EndRecData(fh)
        concat = end[zipfile._ECD_LOCATION] - end[zipfile._ECD_SIZE] - end[zipfile._ECD_OFFSET]
        if end[zipfile._ECD_SIGNATURE] == zipfile.stringEndArchive64:
            concat -= zipfile.sizeEndCentDir64 + zipfile.sizeEndCentDir64Locator
        return concat
    except (AttributeError, TypeError, IndexError, OSError, struct.error):      # a zipfile without these
        return 0


def _empty(shape, dtype, numel: int) -> np.ndarray:
    """An array to read into; from 1 MiB on, anonymous memory of ordinary pages faulted in at once
    (MAP_POPULATE; the array owns the map).  NumPy asks for transparent huge pages on large arrays: reading
    400 MB into them took 0.2 s to 3 s from run to run on a loaded machine, into populated 4 KiB pages
    about torch.load's time and CPU (`python -m bench pt-read`)."""
    nbytes = numel * dtype.itemsize
    if nbytes < 1 << 20 or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(shape, dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    return np.frombuffer(mmap.mmap(-1, nbytes, flags=flags), dtype, numel).reshape(shape)


def _contiguous(shape, stride) -> bool:
    expected = 1
    for n, s in zip(reversed(shape), reversed(stride)):
        if n != 1 and s != expected:
            return False
        expected *= n
    return True


def _text(value):
    if type(value) is bytes:
        return value.decode("ascii", "replace")
    return value


def _not_storage(pid):
    kind = _text(pid[0]) if type(pid) is tuple and pid else pid
    if kind == "module":
        return Foreign("a pickled nn.Module ('module' record)")
    return Damaged(f"a persistent id is {short_repr(pid)}, not a storage")


def _no_storage(pid):
    raise Damaged("a header pickle of the legacy format refers to a storage")
