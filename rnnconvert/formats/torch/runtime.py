"""The torch runtime hook: run a written (or read) state dict in PyTorch itself.

`run(path, x, model)` emits the module code for `model` into a temporary directory, imports it,
loads the file's tensors (.pt with torch.load(weights_only=True); .safetensors with the safetensors
package, or rnnconvert's numpy reader when it is absent), `load_state_dict(strict=True)`, and runs
`forward` in float32 under torch.no_grad().
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import warnings

import numpy as np

from ...errors import RuntimeUnavailable
from . import module_code, safetensors_io, writer
from .loading import find_state_dict, is_safetensors

_counter = itertools.count()


def emitted_module(model):
    """The generated module file for `model`, imported (a fresh module object each call)."""
    specs, _ = writer.from_canonical(model)
    code = module_code.generate(specs, model)
    from ...files.interrupt import temporary_directory
    with temporary_directory("rnnconvert_torch_") as d:
        name = f"rnnconvert_emitted_{os.getpid()}_{next(_counter)}"
        file = os.path.join(d, name + ".py")
        with open(file, "w") as f:
            f.write(code)
        spec = importlib.util.spec_from_file_location(name, file)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    return mod


def load_tensors(path, model=None) -> dict:
    """The file's state dict as torch tensors, keys as the emitted module names them."""
    import torch
    source = getattr(model, "source", None) or {}
    if is_safetensors(path) or safetensors_io.sniff(path):
        try:
            from safetensors.torch import load_file
            state = load_file(str(path))
        except ImportError:
            arrays, _ = safetensors_io.read(path)
            state = {k: torch.from_numpy(v) for k, v in arrays.items()}
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        state, _ = find_state_dict(obj, source.get("state_dict_key"), str(path))
    ignored = set(source.get("ignored_keys", ()))
    renames = source.get("key_renames", {})
    return {renames.get(k, k): v for k, v in state.items() if k not in ignored}


def run(path, x: np.ndarray, model) -> np.ndarray:
    return runner(path, model)(x)


def runner(path, model):
    """x -> output, the emitted module built and loaded once for every input."""
    try:
        import torch
    except ImportError:
        raise RuntimeUnavailable("torch is not installed (pip install torch)") from None
    with warnings.catch_warnings():         # torch's UserWarnings are not the user's business
        warnings.simplefilter("ignore")
        net = emitted_module(model).Model()
        net.load_state_dict(load_tensors(path, model), strict=True)
        net = net.float().eval()
    ids = str(getattr(getattr(model, "input", None), "dtype", "")).startswith("int")

    def run_one(x):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")     # e.g. "LSTM with projections is not supported with oneDNN"
            y = net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64 if ids else np.float32)))
        return y.numpy()
    return run_one
