"""The weights of a TF.js layers model, from files a stranger wrote: `weightsManifest` is a list of
groups, each `{"paths": [shard files], "weights": [{"name", "shape", "dtype", "quantization"?}]}`; a
group's weights lie one after the other in the concatenation of its shards, little-endian.

Checked before any byte is read: every path is a plain relative file name that resolves (links
followed) inside the model's folder and is a regular file; every shape a list of non-negative integers;
the group's bytes exactly the shards' total size.  dtypes: float32, int32 (read as float32), and the
TF.js converter's quantized weights (uint8/uint16 with scale and min: q*scale + min; float16), each
dequantized exactly as TF.js does.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ...errors import InputError, UnsupportedError

DTYPES = {"float32": "<f4", "int32": "<i4"}
QUANTIZED = {"uint8": "<u1", "uint16": "<u2", "float16": "<f2"}
MAX_WEIGHTS = 1_000_000


def _shard(folder: str, name, path: str) -> str:
    if not isinstance(name, str) or not name or "\0" in name:
        raise InputError(f"weightsManifest: shard path {name!r} is not a file name", path=path)
    if name.startswith(("/", "\\")) or "://" in name or ":" in name.split("/")[0]:
        raise InputError(f"weightsManifest: shard path '{name}' is not relative to the model; rnnconvert reads only "
                         "shards inside the model's folder", path=path)
    full = os.path.realpath(os.path.join(folder, name))
    root = os.path.realpath(folder)
    if os.path.commonpath([full, root]) != root:
        raise InputError(f"weightsManifest: shard path '{name}' points outside the model's folder; rnnconvert reads "
                         "only shards inside it", path=path)
    if not os.path.isfile(full):
        raise InputError(f"weightsManifest: shard '{name}' " + ("is not a regular file" if os.path.exists(full)
                                                                  else "does not exist beside the model"), path=path)
    return full


def _shape(w: dict, path: str) -> tuple[int, ...]:
    shape = w.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31
                                              for d in shape) or len(shape) > 8:
        raise InputError(f"weightsManifest: weight '{w.get('name')}' has shape {shape!r}, expected a list of "
                         "non-negative integers", path=path)
    return tuple(shape)


def _layout(w: dict, path: str) -> tuple[str, dict | None]:
    """(numpy dtype of the stored bytes, quantization or None)."""
    q = w.get("quantization")
    if q is not None:
        qtype = q.get("dtype") if isinstance(q, dict) else None
        if qtype not in QUANTIZED:
            raise UnsupportedError(f"weightsManifest: weight '{w.get('name')}' is quantized as {qtype!r}; rnnconvert "
                                   f"reads {', '.join(QUANTIZED)}", path=path)
        if qtype != "float16" and not all(isinstance(q.get(k), (int, float)) and not isinstance(q.get(k), bool)
                                          and math.isfinite(q[k]) for k in ("scale", "min")):
            raise InputError(f"weightsManifest: weight '{w.get('name')}' is quantized as {qtype} without a finite "
                             "scale and min", path=path)
        return QUANTIZED[qtype], q
    dtype = w.get("dtype", "float32")
    if dtype not in DTYPES:
        raise UnsupportedError(f"weightsManifest: weight '{w.get('name')}' has dtype {dtype!r}; rnnconvert reads "
                               f"{', '.join(DTYPES)}", path=path)
    return DTYPES[dtype], None


def read_weights(manifest, path: str) -> list[tuple[str, object]]:
    """(name, load) of every weight, in manifest order: load() reads it as float32, when the layer needs it."""
    folder = os.path.dirname(os.path.abspath(path))
    if not isinstance(manifest, list) or not all(isinstance(g, dict) for g in manifest):
        raise InputError("weightsManifest is not a list of groups", path=path)
    out = []
    for k, group in enumerate(manifest):
        paths, weights = group.get("paths"), group.get("weights")
        if not (isinstance(paths, list) and isinstance(weights, list) and all(isinstance(w, dict) for w in weights)):
            raise InputError(f"weightsManifest[{k}]: expected 'paths' and 'weights' lists", path=path)
        if len(out) + len(weights) > MAX_WEIGHTS:
            raise InputError(f"weightsManifest lists more than {MAX_WEIGHTS} weights", path=path)
        files = [_shard(folder, p, path) for p in paths]
        plan, need = [], 0
        for w in weights:
            if not isinstance(w.get("name"), str):
                raise InputError(f"weightsManifest[{k}]: a weight without a name", path=path)
            shape, (dtype, q) = _shape(w, path), _layout(w, path)
            count = math.prod(shape)
            plan.append((w["name"], shape, dtype, q, need, count))
            need += count * np.dtype(dtype).itemsize
        sizes = [os.path.getsize(f) for f in files]
        if sum(sizes) != need:
            raise InputError(f"weightsManifest[{k}]: the weights take {need} bytes, the shards "
                             f"({', '.join(paths) or 'none'}) hold {sum(sizes)}", path=path)
        out += [(name, _loader(files, sizes, shape, dtype, q, offset, count, path))
                for name, shape, dtype, q, offset, count in plan]
    return out


def _loader(files, sizes, shape, dtype, q, offset: int, count: int, path: str):
    """A function reading one weight from the shards when called (it may straddle two of them)."""
    def load() -> np.ndarray:
        buf = bytearray(count * np.dtype(dtype).itemsize)
        at, start = 0, offset
        for f, size in zip(files, sizes):
            if start >= size:
                start -= size
                continue
            with open(f, "rb") as fh:
                fh.seek(start)
                got = fh.readinto(memoryview(buf)[at:at + min(size - start, len(buf) - at)])
            at, start = at + got, 0
            if at == len(buf):
                break
        if at != len(buf):
            raise InputError(f"a shard changed while it was read ({at} of {len(buf)} bytes)", path=path)
        a = np.frombuffer(buf, dtype=dtype).reshape(shape)
        if q is not None and q["dtype"] != "float16":
            return (a.astype(np.float64) * float(q["scale"]) + float(q["min"])).astype(np.float32)  # as JavaScript
        return a.astype(np.float32, copy=False)
    return load
