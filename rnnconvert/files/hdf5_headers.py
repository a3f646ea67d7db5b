"""Variable-length attribute values checked in the file's own bytes before h5py reads one.

libhdf5 reads a variable-length string (Keras's `model_config`, `keras_version`, a group's `weight_names`)
by allocating the length its on-disk descriptor declares, and only then fetches the global heap object and
finds that the sizes disagree: a damaged length makes it take gigabytes for a file of kilobytes (the fuzz
suite: 4 GiB of memory for a 23 KB Keras file).  `check_vlen_attributes` walks the object headers h5py
names (version 1 and 2, their continuation blocks included, past a user block), reads each attribute message whose datatype is
variable-length, and refuses a descriptor declaring more bytes than the whole file holds.  A header it does
not recognise is passed over: libhdf5 then reads it as before.
"""
from __future__ import annotations

from ..errors import InputError

VLEN_CLASS = 9
ATTRIBUTE, CONTINUATION = 0x0C, 0x10          # header message types
MAX_MESSAGES = 100_000          # per object header: no model has a thousandth of that


def check_vlen_attributes(buf, addresses, path, what: str) -> None:
    """Refuse any variable-length attribute value of an object at one of `addresses` (object header
    addresses, h5o.get_info(...).addr) whose descriptor declares more bytes than `buf` (the file) holds."""
    sizes = _superblock_sizes(buf)
    if sizes is None:
        return
    for addr in sorted(set(addresses)):
        for name, length in _vlen_lengths(buf, addr, sizes):
            if length > len(buf):
                shown = name.decode("utf-8", "replace")[:60]
                raise InputError(f"{what} is damaged: attribute '{shown}' declares a variable-length value of "
                                 f"{length} bytes, more than the whole file holds ({len(buf)} bytes)", path=str(path))


def _u(buf, at: int, width: int) -> int:
    """The little-endian unsigned integer of `width` bytes at `at` (0 past the end).  `buf` is only sliced:
    the readers hand bytes, an mmap or a zip member's view, which takes slices alone."""
    return int.from_bytes(buf[at:at + width], "little")


def _b(buf, at: int) -> int:
    """The byte at `at`, by slicing (see `_u`)."""
    return _u(buf, at, 1)


def _superblock_sizes(buf) -> tuple[int, int, int] | None:
    """(size of offsets, size of lengths, base) from the superblock, found at byte 0 or after a user block
    (512, 1024, ... bytes: a MATLAB v7.3 file has one) and whose position every address counts from; None
    when there is none."""
    at = 0
    while at + 16 <= len(buf):
        if bytes(buf[at:at + 8]) == b"\x89HDF\r\n\x1a\n":
            break
        at = 512 if at == 0 else at * 2
    else:
        return None
    version = _b(buf, at + 8)
    field = at + 13 if version in (0, 1) else at + 9 if version in (2, 3) else None
    if field is None:
        return None
    offsets, lengths = _b(buf, field), _b(buf, field + 1)
    return (offsets, lengths, at) if offsets in (2, 4, 8) and lengths in (2, 4, 8) else None


def _messages(buf, addr: int, sizes):
    """(type, data start, data size) of each message of the object header at `addr` (from the base)."""
    offsets, lengths, base = sizes
    addr += base
    if bytes(buf[addr:addr + 4]) == b"OHDR":
        flags = _b(buf, addr + 5)
        p = addr + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 3)
        blocks = [(p + width, p + width + _u(buf, p, width), 2, bool(flags & 0x04))]
    elif addr + 16 <= len(buf) and _b(buf, addr) == 1:
        blocks = [(addr + 16, addr + 16 + _u(buf, addr + 8, 4), 1, False)]
    else:
        return
    seen, count = set(), 0
    while blocks:
        start, end, version, order = blocks.pop(0)
        if (start, end) in seen or end > len(buf) or start >= end:
            continue
        seen.add((start, end))
        q = start
        head = 8 if version == 1 else 4 + 2 * order
        while q + head <= end and count < MAX_MESSAGES:
            count += 1
            if version == 1:
                kind, size = _u(buf, q, 2), _u(buf, q + 2, 2)
            else:
                kind, size = _b(buf, q), _u(buf, q + 1, 2)
            data = q + head
            if data + size > end:
                break
            if kind == CONTINUATION and size >= offsets + lengths:
                at, length = base + _u(buf, data, offsets), _u(buf, data + offsets, lengths)
                if version == 1:
                    blocks.append((at, at + length, 1, False))
                elif bytes(buf[at:at + 4]) == b"OCHK":
                    blocks.append((at + 4, at + length - 4, 2, order))      # signature, checksum
            yield kind, data, size
            q = data + size


def _vlen_lengths(buf, addr: int, sizes):
    """(attribute name, declared length) of every variable-length descriptor of the attributes stored in
    the object header at `addr`."""
    offsets = sizes[0]
    for kind, data, size in _messages(buf, addr, sizes):
        if kind != ATTRIBUTE or size < 8:
            continue
        version = _b(buf, data)
        names, types, spaces = _u(buf, data + 2, 2), _u(buf, data + 4, 2), _u(buf, data + 6, 2)
        if version == 1:
            pad = lambda n: (n + 7) // 8 * 8     # noqa: E731 - version 1 pads each part to 8 bytes
            p = data + 8
        elif version in (2, 3):
            pad = lambda n: n                    # noqa: E731
            p = data + 8 + (version == 3)
        else:
            continue
        name, p = bytes(buf[p:p + names]).rstrip(b"\0"), p + pad(names)
        datatype, p = p, p + pad(types)
        space, p = p, p + pad(spaces)
        if datatype >= data + size or _b(buf, datatype) & 0x0F != VLEN_CLASS:
            continue
        item = 4 + offsets + 4                  # length, global heap collection address, object index
        count = min(_elements(buf, space, sizes[1]), max(0, (data + size - p) // item))
        for k in range(count):
            yield name, _u(buf, p + k * item, 4)


def _elements(buf, at: int, lengths: int) -> int:
    """How many elements the dataspace message at `at` holds (1 for a scalar, 0 for a null space)."""
    version, rank = _b(buf, at), _b(buf, at + 1)
    if version == 1:
        dims = at + 8
    elif version == 2:
        if _b(buf, at + 3) == 2:                    # null dataspace
            return 0
        dims = at + 4
    else:
        return 0
    n = 1
    for k in range(rank):
        n *= _u(buf, dims + lengths * k, lengths)
    return n
