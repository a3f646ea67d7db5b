"""Loading a state dict: .pt/.pth with torch.load(weights_only=True), .safetensors with numpy.

A .pt may hold the state dict itself or a checkpoint dict keeping it under a common key
('state_dict', 'model_state_dict', 'model', ...).  rnnconvert's own settings travel in the file:
`state_dict._metadata["__rnnconvert__"] = {"json": ...}` in a .pt (kept by weights_only loading and
ignored by load_state_dict) and `__metadata__["rnnconvert"]` in a .safetensors.
Bounded by the file: the metadata through `safety.read_json`; the tensors' bytes, made one array each,
by `Budget` (a stride-0 view of one float may claim gigabytes); dtypes numpy cannot hold (float8, ...)
refused naming the tensor.
"""
from __future__ import annotations

import functools
import pickle
import warnings
from collections.abc import Mapping

import numpy as np

from ...errors import InputError, UnsupportedError
from ...files.text import read_json
from . import safetensors_io

METADATA_KEY = "__rnnconvert__"           # .pt: state_dict._metadata[METADATA_KEY] = {"json": ...}
SAFETENSORS_METADATA_KEY = "rnnconvert"   # .safetensors: __metadata__["rnnconvert"] = json
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module", "weights")
METADATA_VERSION = 1


def is_safetensors(path) -> bool:
    return str(path).lower().endswith(".safetensors")


# ------------------------------------------------------------------------------------ loading

def import_torch(path=None, verb="reading .pt files"):
    try:
        import torch
    except ImportError:
        raise InputError(f"{verb} needs PyTorch (pip install torch); .safetensors files need no torch",
                         path=path) from None
    return torch


def torch_load(path):
    """torch.load(path, map_location='cpu', weights_only=True) with its failures as InputError."""
    torch = import_torch(path)
    if _is_torchscript(path):
        raise InputError("is a TorchScript archive (torch.jit.save); rnnconvert reads state dicts: "
                         "torch.save(model.state_dict(), 'model.pt')", path=str(path))
    try:
        with warnings.catch_warnings():     # torch's UserWarnings (storage deprecations, ...) stay off stderr
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError("cannot be loaded with torch.load(weights_only=True): the file pickles Python "
                         "objects other than tensors (a whole nn.Module saved with torch.save(model)?); "
                         f"save model.state_dict() instead ({first})", path=str(path)) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, ValueError, ... on corrupt files
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"not a readable PyTorch file ({type(exc).__name__}: {msg})", path=str(path)) from None


def _is_torchscript(path) -> bool:
    import zipfile

    from ...files.safety import check_zip
    try:
        with zipfile.ZipFile(path) as z:
            check_zip(z, path, what="PyTorch zip archive")
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile, NotImplementedError, UnicodeDecodeError, ValueError, EOFError):
        return False          # not a zip Python can list: torch.load says what is wrong with it


def find_state_dict(obj, key: str | None = None, path=None) -> tuple[Mapping, str | None]:
    """The state dict inside a loaded object: the object itself, or obj[key] for a common key."""
    if not isinstance(obj, Mapping):
        raise InputError(f"holds a {type(obj).__name__}, expected a state dict (a dict of tensors)",
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
    return hasattr(v, "detach") and hasattr(v, "dtype") or isinstance(v, np.ndarray)


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


def to_numpy(t, name, path, budget: Budget | None = None) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t
    import torch
    if t.layout != torch.strided or t.is_quantized:
        raise UnsupportedError(f"tensor '{name}' is {t.layout}{' quantized' if t.is_quantized else ''}; "
                               "only dense tensors are read", path=path)
    if t.dtype not in _numpy_dtypes():
        raise UnsupportedError(f"tensor '{name}' has dtype {str(t.dtype).replace('torch.', '')}; rnnconvert reads "
                               "float16, bfloat16, float32 and float64 weights (and integer buffers)", path=path)
    itemsize = 4 if t.dtype == torch.bfloat16 else t.element_size()
    if budget is not None:
        budget.take(name, t.numel() * itemsize, t.shape, str(t.dtype).replace("torch.", ""))
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy().copy()


@functools.lru_cache(maxsize=1)
def _numpy_dtypes():
    import torch
    return {torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
            torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool}


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
    obj = torch_load(path)
    sd, key = find_state_dict(obj, state_dict_key, path)
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
            arrays[str(name)] = to_numpy(v, name, path, budget)
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
