"""The user's own inputs (`--inputs`, the API's `inputs=`, a plan's `inputs:`): one validation before
anything runs, so that no framework runtime ever sees an input it would crash on (onnxruntime aborts
the process on a batch of 0).

- `load(path)`: a `.npy` array, or an `.npz` of arrays keyed by name (predict's state feeds).  The
  `.npy` header's shape times the item size must fit in the file before anything is allocated; an
  `.npz` is a zip, so its members go through `safety.check_zip` (ZIP_RATIO, names) and `safety.read_npy`
  (declared size within the member) before one is inflated.
- `check(model, x)`: real numbers only (float or integer; bool, complex, strings, objects, records and
  dates are refused), 2 or 3 axes with the model's features, batch and time >= 1 (a model with per-row
  initial states: its batch; a fixed-length model: its length), no NaN or Inf (nor values past float32's
  range; predict lets them through), token ids integral and inside the Embedding's vocabulary.  Returns
  x as the model computes on it ([batch, time, F] float32 in the model's layout, or int64 token ids).
- What a model's inputs must be, which the seeded suite (`suite.py`) follows too: `tokens` (its
  Embedding, when it takes token ids), `fixed_batch_size`, `shortest_length`.

Every problem is an InputError (exit 2) naming the file when there is one.
"""
from __future__ import annotations

import os

import numpy as np

from ..errors import InputError
from ..model import Conv1D, Embedding, Model, Pooling1D, TimeWindow

WHAT = {"b": "boolean", "c": "complex", "U": "string", "S": "bytes", "O": "Python object", "V": "record",
        "M": "date", "m": "time-delta"}


def load(path):
    """The array in a .npy file, or {name: array} from an .npz."""
    import zipfile
    from ..files.outputs import check_input
    path = os.fspath(path)
    check_input(path, "an inputs array (.npy or .npz)")
    try:
        if zipfile.is_zipfile(path):
            return _load_npz(path)
        with open(path, "rb") as f:
            _check_npy_header(f, os.fstat(f.fileno()).st_size, path)
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read inputs as a .npy array ({exc})", path=path) from None
    _check_dtype(x, path)
    return x


def load_one(path) -> np.ndarray:
    """`load` for convert, verify and batch, which take one array: an .npz is refused."""
    data = load(path)
    if isinstance(data, dict):
        raise InputError("--inputs is an .npz; convert and verify take one .npy array [batch, time, features]",
                         path=os.fspath(path))
    return data


def _check_npy_header(f, size: int, path: str) -> None:
    from numpy.lib import format as npy
    version = npy.read_magic(f)
    shape, _, dtype = npy.read_array_header_1_0(f) if version == (1, 0) else npy.read_array_header_2_0(f)
    if dtype.hasobject:
        raise InputError(f"inputs hold {WHAT['O']} values; expected real numbers (float or integer)", path=path)
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > size - f.tell():
        from ..files.safety import _size
        raise InputError(f"inputs declare shape {list(shape)} {dtype} ({_size(need)}) but the file holds "
                         f"{_size(size - f.tell())}", path=path)
    if any(n >= 1 << 40 for n in shape):       # an empty array numpy cannot index ([10**30, 0, 4])
        raise InputError(f"inputs declare shape {list(shape)}: an axis of {max(shape)} elements; "
                         f"expected [batch, time, features] of an inputs array", path=path)


def _load_npz(path: str) -> dict:
    import zipfile

    from ..files.safety import check_zip, read_npy
    with zipfile.ZipFile(path) as z:
        check_zip(z, path, what="inputs .npz")
        arrays = {}
        for name in z.namelist():
            key = name[:-4] if name.endswith(".npy") else name
            arrays[key] = read_npy(z, name, path)
            _check_dtype(arrays[key], path, f" (member '{name}')")
    return arrays


def _check_dtype(x: np.ndarray, path, where: str = "") -> None:
    if x.dtype.kind not in "iuf":
        raise InputError(f"inputs{where} hold {WHAT.get(x.dtype.kind, str(x.dtype))} values ({x.dtype}); "
                         "expected real numbers (float or integer)", path=path)


def check(model, x, path=None, finite: bool = True) -> np.ndarray:
    """`x` validated against `model` and shaped as the model computes on it (see the module docstring).
    `finite=False` (predict) lets NaN and Inf through: the reference pass propagates them."""
    x = np.asarray(x)
    _check_dtype(x, path)
    time_major = model.input.layout == "time_batch_feature"
    embedding = tokens(model)
    if embedding is not None:
        if x.ndim == 1:   # one sequence of token ids
            x = x[:, None] if time_major else x[None]
        if x.ndim != 2:
            raise InputError(f"--inputs has shape {x.shape}, expected token ids [batch, time] or [time]", path=path)
    else:
        if x.ndim == 2:   # one sequence [time, features]
            x = x[:, None] if time_major else x[None]
        F = model.input.features
        if x.ndim != 3 or x.shape[-1] != F:
            order = "time, batch" if time_major else "batch, time"
            raise InputError(f"--inputs has shape {x.shape}, expected [{order}, {F}] or [time, {F}]", path=path)
    batch, time = (x.shape[1], x.shape[0]) if time_major else x.shape[:2]
    if batch < 1 or time < 1:
        raise InputError(f"--inputs has shape {list(x.shape)}: {'batch' if batch < 1 else 'time'} is 0; "
                         "expected at least one sequence of at least one step", path=path)
    fixed = fixed_batch_size(model)
    if fixed and batch != fixed:
        raise InputError(f"--inputs has batch {batch}; this model's initial states are per row and fix the "
                         f"batch at {fixed}", path=path)
    if model.input.time_steps and time != model.input.time_steps:
        raise InputError(f"--inputs has {time} time steps; this model takes sequences of exactly "
                         f"{model.input.time_steps}", path=path)
    shortest = shortest_length(model)
    if time < shortest:
        raise InputError(f"--inputs has {time} time steps; this model's convolution, pooling or time windows need "
                         f"at least {shortest}", path=path)
    if embedding is None:
        with np.errstate(over="ignore"):
            x = x.astype(np.float32)
        if finite and not np.isfinite(x).all():
            at = [int(i) for i in np.argwhere(~np.isfinite(x))[0]]
            raise InputError(f"--inputs hold NaN or Inf (first at {at}; float32 holds up to 3.4e38); verification "
                             "compares finite inputs only", path=path)
        return x
    vocab = embedding.table.shape[0]
    if x.dtype.kind == "f" and not np.array_equal(x, np.round(x)):
        raise InputError("--inputs hold fractional token ids; expected integers", path=path)
    if x.size and (x.min() < 0 or x.max() >= vocab):
        raise InputError(f"--inputs hold token ids from {x.min():g} to {x.max():g}; the embedding "
                         f"'{embedding.name}' has ids 0 to {vocab - 1}", path=path)
    return x.astype(np.int64)


def tokens(model: Model) -> Embedding | None:
    first = model.layers[0] if model.layers else None
    return first if isinstance(first, Embedding) else None


def fixed_batch_size(model: Model) -> int | None:
    """A model whose initial states are per batch row ([batch, H]) runs on that batch size only."""
    for layer in model.recurrent_layers:
        for w in layer.weights:
            for state in (w.h0, w.c0):
                if state is not None and state.ndim == 2:
                    return int(state.shape[0])
    return None


def shortest_length(model: Model) -> int:
    """The fewest input steps for which every convolution, pooling and time window yields a step."""
    from ..reference.layers import conv_pads
    T = 1
    while T < 10_000:
        n = T
        for layer in model.layers:
            if isinstance(layer, Conv1D) and layer.kernel.ndim == 3:
                reach = (layer.kernel.shape[0] - 1) * layer.dilation + 1
                n = (n + sum(conv_pads(layer, n)) - reach) // layer.strides + 1
            elif isinstance(layer, Pooling1D) and layer.pool_size is not None:
                s = layer.strides or layer.pool_size
                n = -(-n // s) if layer.padding == "same" else (n - layer.pool_size) // s + 1
            elif isinstance(layer, TimeWindow):
                n = len(layer.steps(n))
            if n < 1:
                break
        if n >= 1:
            return T
        T += 1
    return T
