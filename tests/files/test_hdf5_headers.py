"""`files/hdf5_headers.py` reads the variable-length descriptors of attributes from the file's own bytes:
on every HDF5 fixture (Keras 3 and tf.keras 2 .h5, weights-only files) and on a MATLAB v7.3 file (its
user block before the superblock) it finds every variable-length attribute h5py reads, with the length h5py
reads; a continuation block that points back at itself ends the walk."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from conftest import FIXTURES
from rnnconvert.files.hdf5_headers import _superblock_sizes, _vlen_lengths

HDF5 = sorted(p for p in FIXTURES.rglob("*") if p.suffix in (".h5", ".mat") and h5py.is_hdf5(p))


def _h5py_lengths(obj) -> dict[str, list[int]]:
    """The length of every variable-length value (string or sequence) of `obj`'s attributes, as h5py reads it."""
    out = {}
    for name in obj.attrs:
        kind = obj.attrs.get_id(name).get_type()
        if kind.get_class() == h5py.h5t.VLEN or kind.get_class() == h5py.h5t.STRING and kind.is_variable_str():
            value = obj.attrs[name]
            items = list(value.ravel()) if isinstance(value, np.ndarray) and value.dtype == object else [value]
            out[name] = [len(v.encode() if isinstance(v, str) else v) for v in items]
    return out


def _agree(path):
    buf = path.read_bytes()
    sizes = _superblock_sizes(buf)
    assert sizes is not None
    with h5py.File(path, "r") as f:
        objects = [f]
        f.visititems(lambda name, obj: objects.append(obj))
        for obj in objects:
            parsed = {}
            for name, length in _vlen_lengths(buf, h5py.h5o.get_info(obj.id).addr, sizes):
                parsed.setdefault(name.decode(), []).append(length)
            assert parsed == _h5py_lengths(obj), obj.name


def test_the_fixtures_are_hdf5_files_with_string_attributes():
    assert len(HDF5) >= 40


@pytest.mark.parametrize("path", HDF5, ids=[str(p.relative_to(FIXTURES)) for p in HDF5])
def test_every_string_attribute_has_the_length_h5py_reads(path):
    _agree(path)


def test_a_matlab_v73_file_after_its_user_block(tmp_path):
    """MATLAB's struct field names, variable-length sequences of characters, in a file whose 512-byte user
    block every address counts past."""
    import hostile_hdf5 as hostile

    def build(f, refs):
        net = f.create_group("net")
        net.attrs["MATLAB_class"] = np.bytes_("struct")
        names = np.empty(3, dtype=object)
        for k, text in enumerate([b"Layers", b"InputNames", b"OutputNames"]):
            names[k] = np.array(list(text), dtype="S1")
        net.attrs.create("MATLAB_fields", names, dtype=h5py.vlen_dtype(np.dtype("S1")))
    path = hostile._mat73(tmp_path / "net.mat", build)
    assert _superblock_sizes(path.read_bytes())[2] == 512
    _agree(path)
    with h5py.File(path, "r") as f:
        assert [len(v) for v in f["net"].attrs["MATLAB_fields"]] == [6, 10, 11]


def test_a_continuation_pointing_back_at_its_own_block_ends_the_walk():
    buf = bytearray(b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8]) + bytes(200))
    header = 100
    buf[header:header + 12] = bytes([1, 0]) + (1).to_bytes(2, "little") + (1).to_bytes(4, "little") + \
        (24).to_bytes(4, "little")
    message = header + 16               # a continuation (0x10) of 16 bytes: back to this very block
    buf[message:message + 8] = (0x10).to_bytes(2, "little") + (16).to_bytes(2, "little") + bytes(4)
    buf[message + 8:message + 24] = (message).to_bytes(8, "little") + (24).to_bytes(8, "little")
    assert list(_vlen_lengths(bytes(buf), header, _superblock_sizes(bytes(buf)))) == []
