"""Loading a state dict: .pt/.pth with our own restricted unpickler (`ptfile.py`, no torch), .safetensors with numpy.

A .pt may hold the state dict itself or a checkpoint dict keeping it under a common key
('state_dict', 'model_state_dict', 'model', ...).  rnnconvert's own settings travel in the file:
`state_dict._metadata["__rnnconvert__"] = {"json": ...}` in a .pt (kept by weights_only loading and
ignored by load_state_dict) and `__metadata__["rnnconvert"]` in a .safetensors.
Bounded by the file: the metadata through `safety.read_json`; the tensors' bytes, made one array each,
by `Budget` (a stride-0 view of one float may claim gigabytes); dtypes numpy cannot hold (float8, ...)
refused naming the tensor.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ...errors import InputError, printable
from ...files.text import read_json
from . import safetensors_io
from .globals_table import Damaged, Foreign, TensorRef, Unreadable
from .ptfile import NUMPY, PtFile

METADATA_KEY = "__rnnconvert__"           # .pt: state_dict._metadata[METADATA_KEY] = {"json": ...}
SAFETENSORS_METADATA_KEY = "rnnconvert"   # .safetensors: __metadata__["rnnconvert"] = json
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "weights")
METADATA_VERSION = 1


def is_safetensors(path) -> bool:
    return str(path).lower().endswith(".safetensors")


# ------------------------------------------------------------------------------------ loading

def import_torch(path=None, verb="writing .pt files"):
    try:
        import torch
    except ImportError:
        raise InputError(f"{verb} needs PyTorch (pip install torch); .safetensors files need no torch",
                         path=path) from None
    return torch


def open_pt(path):
    """The torch.save file at `path` opened and unpickled without torch (`ptfile.PtFile`), its failures as
    InputError: globals torch.load(weights_only=True) refuses (a whole nn.Module) and damaged files."""
    try:
        return PtFile(path)
    except Foreign as exc:
        raise InputError("cannot be loaded with torch.load(weights_only=True): the file pickles Python "
                         "objects other than tensors (a whole nn.Module saved with torch.save(model)?); "
                         f"save model.state_dict() instead ({printable(str(exc))} is not a tensor, a container "
                         "or a dtype)", path=str(path)) from None
    except Damaged as exc:
        raise InputError(f"not a readable PyTorch file ({printable(str(exc))})", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc})", path=str(path)) from None


def find_state_dict(obj, key: str | None = None, path=None) -> tuple[Mapping, str | None]:
    """The state dict inside a loaded object: the object itself, or obj[key] for a common key."""
    if not isinstance(obj, Mapping):
        kind = "Tensor" if isinstance(obj, (TensorRef, Unreadable)) else type(obj).__name__
        raise InputError(f"holds a {kind}, expected a state dict (a dict of tensors)",
                         path=path)
    if key is not None:
        if not isinstance(obj.get(key), Mapping):
            raise InputError(f"state_dict_key '{key}': no dict under that key; top-level keys: "
                             f"{key_list(obj)}", path=path)
        return obj[key], key
    if obj and all(_is_tensor(v) for v in obj.values()):
        return obj, None
    for k in STATE_DICT_KEYS:
        v = obj.get(k)
        if isinstance(v, Mapping) and v and any(_is_tensor(x) for x in v.values()):
            return v, k
    if any(_is_tensor(v) for v in obj.values()):
        return obj, None
    raise InputError(f"no state dict found: top-level keys {key_list(obj)} hold no tensors; give the key "
                     f"with --arch state_dict_key: <key> (looked for {', '.join(STATE_DICT_KEYS)})", path=path)


def _is_tensor(v) -> bool:
    """Ours (TensorRef, Unreadable), a NumPy array, or a torch tensor (the torch runtime's torch.load)."""
    return isinstance(v, (TensorRef, Unreadable, np.ndarray)) or hasattr(v, "detach") and hasattr(v, "dtype")


def key_list(keys, limit=20) -> str:
    keys = [str(k) for k in keys]
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


class Budget:
    """Bytes a file may make by materialising its tensors: views of one storage (stride 0, overlapping,
    or a small storage seen through a huge shape) each become their own array, so their sum is bounded
    by the file's size (MATERIALISE_RATIO x, plus SLACK; bfloat16 is widened to float32)."""

    def __init__(self, path):
        import os
        self.left = MATERIALISE_RATIO * os.path.getsize(path) + MATERIALISE_SLACK
        self.path = path

    def take(self, name, nbytes: int, shape, dtype) -> None:
        if nbytes > self.left:
            raise InputError(f"tensor '{name}' ({list(shape)} {dtype}) would make {nbytes:,} bytes, and the "
                             f"file's tensors together more than {MATERIALISE_RATIO}x its size: views that "
                             "repeat one storage (stride 0, overlapping ranges) are refused", path=self.path)
        self.left -= nbytes


MATERIALISE_RATIO = 4
MATERIALISE_SLACK = 16 << 20


def to_numpy(pt: PtFile, t, name, budget: Budget) -> np.ndarray:
    """Tensor `t` of the open file as its own array, its bytes charged to `budget` first."""
    if isinstance(t, np.ndarray):
        return t
    if isinstance(t, TensorRef) and t.dtype.itemsize is not None and t.dtype.name in NUMPY:
        numel = 1
        for n in t.shape:
            numel *= max(n, 0)
        itemsize = 4 if t.dtype.name == "bfloat16" else t.dtype.itemsize
        budget.take(name, numel * itemsize, t.shape, t.dtype.name)
    try:
        return pt.array(t, name)
    except Damaged as exc:
        raise InputError(f"not a readable PyTorch file ({printable(str(exc))})", path=pt.path) from None


def load(path, state_dict_key=None) -> tuple[dict, dict | None, dict]:
    """(state dict as numpy arrays, rnnconvert metadata or None, source info) of a .pt or .safetensors."""
    path = str(path)
    info: dict = {}
    if is_safetensors(path) or safetensors_io.sniff(path):
        tensors, meta = safetensors_io.read(path)
        info["format"] = "safetensors"
        text = meta.get(SAFETENSORS_METADATA_KEY)
        if meta:
            info["safetensors_metadata"] = {k: v for k, v in meta.items() if k != SAFETENSORS_METADATA_KEY}
        return tensors, _decode_metadata(text, path), info
    with open_pt(path) as pt:
        return _state_dict(pt, state_dict_key, path, info)


def _state_dict(pt: PtFile, state_dict_key, path, info):
    sd, key = find_state_dict(pt.obj, state_dict_key, path)
    info["format"] = "torch"
    info["state_dict_key"] = key
    text = None
    meta = getattr(sd, "_metadata", None)
    if isinstance(meta, Mapping) and isinstance(meta.get(METADATA_KEY), Mapping):
        text = meta[METADATA_KEY].get("json")
    arrays, other = {}, []
    budget = Budget(path)
    for name, v in sd.items():
        if _is_tensor(v):
            arrays[str(name)] = to_numpy(pt, v, name, budget)
        else:
            other.append(str(name))
    if other:
        info["non_tensor_keys"] = other
    return arrays, _decode_metadata(text, path), info


def _decode_metadata(text, path):
    if not text:
        return None
    meta = read_json(text, path, "rnnconvert metadata in the file")
    if not isinstance(meta, dict) or meta.get("version") != METADATA_VERSION:
        raise InputError(f"rnnconvert metadata version {meta.get('version') if isinstance(meta, dict) else '?'}, "
                         f"this rnnconvert reads version {METADATA_VERSION}", path=path)
    return meta
