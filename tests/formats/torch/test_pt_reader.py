"""The torch-free .pt reader (formats/torch/ptfile.py) against torch.load(weights_only=True) itself.

Every array it makes has torch's dtype, shape, bytes and key order (bfloat16 widened to float32, as the
reader documents), on every PyTorch fixture, every wild `pt_*` file (skipped where ../shared/wild is
missing), and files torch.save writes here in every form: zip and legacy, CUDA-saved, big-endian,
deflated, every dtype, views sharing a storage, strides, checkpoints nesting dicts, lists and tuples.
Hostile files are refused with exit 2 and their exact message, and nothing they name is ever run.
"""
from __future__ import annotations

import collections
import io
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from conftest import FIXTURES, ROOT, WILD
from rnnconvert.cli import cli
from rnnconvert.formats.torch import loading
from rnnconvert.formats.torch.ptfile import PtFile

PT_FILES = sorted(FIXTURES.glob("**/*.pt")) + sorted(FIXTURES.glob("**/*.pth"))
WILD_PT = sorted(p for p in WILD.glob("pt_*/*") if p.suffix in (".pt", ".pth")) if WILD.is_dir() else []


def torch_arrays(obj):
    """What rnnconvert makes of torch's tensor: a NumPy array, bfloat16 as float32."""
    t = obj.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def assert_same_tree(pt, ours, theirs, where="root"):
    """Our unpickled object equals torch.load's: the same containers, keys in order, and tensors
    with the same dtype, shape and bytes."""
    if isinstance(theirs, torch.Tensor):
        got, want = pt.array(ours, where), torch_arrays(theirs)
        assert (got.dtype, got.shape) == (want.dtype, want.shape), where
        assert got.tobytes() == want.tobytes(), where
        assert got.flags.c_contiguous, where
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs), (where, type(ours), type(theirs))
        assert list(ours) == list(theirs), where
        for k in theirs:
            assert_same_tree(pt, ours[k], theirs[k], f"{where}[{k!r}]")
        assert getattr(ours, "__dict__", {}) == getattr(theirs, "__dict__", {}), where     # _metadata
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs) and isinstance(ours, (list, tuple)), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_tree(pt, a, b, f"{where}[{i}]")
    elif isinstance(theirs, torch.device):
        assert ours == str(theirs), where
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


def check_file(path):
    """The whole object and the state dict loading.load returns, both against torch.load."""
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    with PtFile(path) as pt:
        assert_same_tree(pt, pt.obj, theirs)
    arrays, _, info = loading.load(path)
    sd, _ = loading.find_state_dict(theirs, info["state_dict_key"], str(path))
    tensors = {str(k): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    assert list(arrays) == list(tensors)
    for k, v in tensors.items():
        want = torch_arrays(v)
        assert (arrays[k].dtype, arrays[k].shape, arrays[k].tobytes()) == (want.dtype, want.shape, want.tobytes()), k


@pytest.mark.parametrize("path", PT_FILES, ids=[str(p.relative_to(FIXTURES)) for p in PT_FILES])
def test_fixture_arrays_are_torch_load_s(path):
    check_file(path)


@pytest.mark.skipif(not WILD.is_dir(), reason=f"{WILD} is missing")
@pytest.mark.parametrize("path", WILD_PT, ids=[p.parent.name for p in WILD_PT])
def test_wild_arrays_are_torch_load_s(path):
    check_file(path)


def test_every_wild_pt_case_is_tested():
    if not WILD.is_dir():
        pytest.skip(f"{WILD} is missing")
    assert {p.parent.name for p in WILD_PT} == {p.name for p in WILD.glob("pt_*") if p.is_dir()}


# ------------------------------------------------------------------ files torch.save writes here

def _tensors():
    g = torch.Generator().manual_seed(18)
    base = torch.randn(24, generator=g)
    out = collections.OrderedDict()
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.complex64, torch.complex128):
        out[str(dtype)] = (torch.randn(3, 4, generator=g) * 7).to(dtype)
    for dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        out[str(dtype)] = torch.randint(-100 if dtype != torch.uint8 else 0, 100, (2, 5), generator=g).to(dtype)
    out["bool"] = torch.randn(7, generator=g) > 0
    out["scalar"] = torch.tensor(3.5)
    out["empty"] = torch.zeros(0, 3)
    out["slice"] = base[2:10]                          # views of one storage, at offsets
    out["transposed"] = base.view(4, 6).t()            # strides (1, 6)
    out["every_other"] = base.view(4, 6)[:, ::2]
    out["expanded"] = base[:3].view(3, 1).expand(3, 4)  # stride 0
    out["whole"] = base
    out["param"] = nn.Parameter(torch.randn(2, 2, generator=g))
    out["bf16_view"] = torch.randn(6, generator=g).to(torch.bfloat16)[1::2]
    return out


def _checkpoint():
    sd = collections.OrderedDict((k, v) for k, v in _tensors().items())
    sd._metadata = collections.OrderedDict({"": {"version": 1}, "lstm": {"version": 2}})
    return {"epoch": 7, "model_state_dict": sd, "loss": 0.25, "name": "run", "flags": (True, None, -3, 2 ** 70),
            "optimizer": {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.ones(2, 2)}},
                          "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1]}]},
            "bytes": b"\x00\xffraw", "set": {1, 2}, "complex": complex(1, -2), "size": torch.Size([2, 3]),
            "device": torch.device("cpu"), "counter": collections.Counter("aab"), "bytearray": bytearray(b"ab")}


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("what", ["tensors", "checkpoint"])
def test_saved_forms_match_torch_load(what, zipped, tmp_path):
    path = tmp_path / "m.pt"
    torch.save(_tensors() if what == "tensors" else _checkpoint(), path, _use_new_zipfile_serialization=zipped)
    assert path.read_bytes()[:2] == (b"PK" if zipped else b"\x80\x02")
    check_file(path)


def test_cuda_saved_files_match_torch_load(tmp_path):
    import torch.serialization as serialization

    def cuda_tag(obj):
        return "cuda:0"
    serialization.register_package(1, cuda_tag, lambda obj, location: None)
    try:
        torch.save(_tensors(), tmp_path / "cuda.pt")
        torch.save(_tensors(), tmp_path / "cuda_legacy.pt", _use_new_zipfile_serialization=False)
    finally:
        serialization._package_registry[:] = [e for e in serialization._package_registry if e[1] is not cuda_tag]
    assert b"cuda:0" in (tmp_path / "cuda.pt").read_bytes()
    check_file(tmp_path / "cuda.pt")
    check_file(tmp_path / "cuda_legacy.pt")


def _rezip(src, dst, edit=lambda name, data: data, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w", compression) as out:
        for info in z.infolist():
            out.writestr(info.filename, edit(info.filename, z.read(info.filename)))


def test_big_endian_and_deflated_zips_match_torch_load(tmp_path):
    """A file torch.save wrote on a big-endian machine: every storage's elements byte-swapped and
    `byteorder` saying big (torch.load swaps them back); and one whose members are deflated."""
    sd = collections.OrderedDict((k, v.clone()) for k, v in _tensors().items()
                                 if k not in ("slice", "transposed", "every_other", "expanded", "whole", "bf16_view"))
    torch.save(sd, tmp_path / "little.pt")
    sizes = [v.element_size() // (2 if v.is_complex() else 1) for v in sd.values()]

    def swap(name, data):
        if name.endswith("/byteorder"):
            return b"big"
        if "/data/" in name and not name.endswith("serialization_id"):
            item = sizes[int(name.rsplit("/", 1)[1])]
            return np.frombuffer(data, f"u{item}").byteswap().tobytes()
        return data
    _rezip(tmp_path / "little.pt", tmp_path / "big.pt", swap)
    assert b"big" in (tmp_path / "big.pt").read_bytes()
    check_file(tmp_path / "big.pt")
    _rezip(tmp_path / "little.pt", tmp_path / "deflated.pt", compression=zipfile.ZIP_DEFLATED)
    check_file(tmp_path / "deflated.pt")


def test_reading_a_pt_imports_no_torch():
    code = ("import sys, rnnconvert; m = rnnconvert.read(sys.argv[1], arch=sys.argv[2]); "
            "print(len(m.layers), sorted(n for n in sys.modules if n == 'torch' or n.startswith('torch.')))")
    folder = FIXTURES / "torch" / "lstm_2layer_bidir_linear"
    res = subprocess.run([sys.executable, "-c", code, str(folder / "model.pt"), str(folder / "arch.json")],
                         capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert res.returncode == 0, res.stderr
    assert res.stdout.split(" ", 1)[1].strip() == "[]"


# ------------------------------------------------------------------ hostile files

def _error(res):
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr.strip()


def _legacy(body: bytes) -> bytes:
    """A legacy torch.save stream: magic number, protocol version, system info, then `body`."""
    head = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
        import pickle
        pickle.dump(obj, head, protocol=2)
    return head.getvalue() + body


def _zip_pt(path, pickle_bytes: bytes, members=None):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle_bytes)
        z.writestr("archive/byteorder", "little")
        for name, data in (members or {}).items():
            z.writestr(f"archive/{name}", data)
    return path


WHOLE_MODULE = ("cannot be loaded with torch.load(weights_only=True): the file pickles Python objects other than "
                "tensors (a whole nn.Module saved with torch.save(model)?); save model.state_dict() instead (")


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("module, name", [("os", "system"), ("posix", "system"), ("builtins", "eval"),
                                          ("__builtin__", "exec"), ("subprocess", "call"), ("torch", "load")])
def test_a_pickle_calling_a_function_is_refused_and_nothing_runs(module, name, zipped, runner, tmp_path):
    marker = tmp_path / "ran"
    arg = f"open({str(marker)!r}, 'w')" if name in ("eval", "exec") else f"touch {marker}"
    payload = (b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X" + struct.pack("<I", len(arg)) + arg.encode()
               + b"\x85R.")
    path = tmp_path / "evil.pt"
    if zipped:
        _zip_pt(path, payload)
    else:
        path.write_bytes(_legacy(payload))
    res = runner.invoke(cli, ["inspect", str(path)])
    full = f"{'builtins' if module == '__builtin__' else module}.{name}"
    assert res.exit_code == 2
    assert _error(res) == (f"rnnconvert: error: {path}: {WHOLE_MODULE}global '{full}' is not a tensor, a "
                           "container or a dtype)")
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_whole_module_is_refused_naming_its_class(zipped, runner, tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(nn.LSTM(3, 4), path, _use_new_zipfile_serialization=zipped)
    res = runner.invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 2
    assert _error(res) == (f"rnnconvert: error: {path}: {WHOLE_MODULE}global 'torch.nn.modules.rnn.LSTM' is not "
                           "a tensor, a container or a dtype)")


def _patched(tmp_path, old: bytes, new: bytes):
    """gru_linear's model.pt with one run of its pickle's bytes replaced."""
    path = tmp_path / "patched.pt"
    _rezip(FIXTURES / "torch" / "gru_linear" / "model.pt", path,
           lambda name, data: data.replace(old, new, 1) if name.endswith("data.pkl") else data)
    return path


@pytest.mark.parametrize("old, new, message", [
    (b"QK\x00K\x0fK\x04\x86", b"QK\xfaK\x0fK\x04\x86",      # storage offset 250 in a 60-element storage
     "tensor 'rnn.weight_ih_l0' reads elements 250..309 of a storage holding 60 float32 elements"),
    (b"QK\x00K\x0fK\x04\x86q\x08K\x04K\x01", b"QK\x00K\x0fK\x04\x86q\x08K\x04K\x09",   # strides (4, 9): 14*4 + 3*9 = 83
     "tensor 'rnn.weight_ih_l0' reads elements 0..83 of a storage holding 60 float32 elements"),
    (b"X\x03\x00\x00\x00cpuq\x06K<", b"X\x03\x00\x00\x00cpuq\x06M\x00\x01",   # 256 elements, 240 bytes stored
     "storage record 'data/0' holds 240 bytes, not the 1024 of its 256 float32 elements"),
    (b"X\x03\x00\x00\x00cpuq\x06K<", b"X\x03\x00\x00\x00cpuq\x06K\x1e",   # 30 elements, 240 bytes stored
     "storage record 'data/0' holds 240 bytes, not the 120 of its 30 float32 elements"),
    (b"X\x01\x00\x00\x000q\x05", b"X\x01\x00\x00\x009q\x05",   # a storage with no record
     "storage record 'data/9' is missing"),
], ids=["offset", "stride", "numel", "numel_short", "record"])
def test_storage_views_out_of_range_are_refused(old, new, message, runner, tmp_path):
    path = _patched(tmp_path, old, new)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)         # torch refuses them too (or would read past its buffer)
    res = runner.invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 2
    assert _error(res) == f"rnnconvert: error: {path}: not a readable PyTorch file ({message})"


def test_a_zip_bomb_is_refused_before_inflating(runner, tmp_path):
    path = tmp_path / "bomb.pt"
    pickle_bytes = (FIXTURES / "torch" / "gru_linear" / "model.pt")
    with zipfile.ZipFile(pickle_bytes) as z:
        data = z.read("model/data.pkl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", data)
        z.writestr("archive/data/0", bytes(4 << 20))           # 4 MiB of zeros in about 4 KiB
    assert path.stat().st_size < 16 << 10
    res = runner.invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 2
    line = _error(res)
    assert line.startswith(f"rnnconvert: error: {path}: PyTorch zip archive refused: member 'archive/data/0' "
                           "declares 4.0 MiB from ")
    assert line.endswith(" KiB compressed (ratio over 100:1, a zip bomb)")


# ------------------------------------------------------------------ memory

PEAK = """
import sys
def hwm():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) * 1024
from rnnconvert.formats.torch import loading
base = hwm()
arrays, _, _ = loading.load(sys.argv[1])
print(hwm() - base, sum(a.nbytes for a in arrays.values()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_reading_takes_the_weights_memory_once(zipped, tmp_path):
    """A 25 MB state dict read in a fresh process: peak RSS grows by the arrays it returns, not twice that
    (the torch.load path grew by 249 MB, torch itself imported, and held tensors and arrays both)."""
    g = torch.Generator().manual_seed(0)
    sd = {f"lstm.weight_ih_l{k}": torch.randn(4 * 512, 1024, generator=g) for k in range(3)}
    torch.save(sd, tmp_path / "m.pt", _use_new_zipfile_serialization=zipped)
    res = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path / "m.pt")], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert res.returncode == 0, res.stderr
    grown, weights = map(int, res.stdout.split())
    assert weights == 3 * 4 * 512 * 1024 * 4
    assert grown <= 1.2 * weights, (grown, weights)
