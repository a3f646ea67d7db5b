"""Golden test vectors: inputs and expected outputs a deployment target can check itself against.

`DIR/vectors.npz` holds `input_<k>` and `expected_<k>` (float32, in the model's own layout, shaped like
the source framework's predict); `DIR/vectors.json` indexes them with the model file, its SHA-256,
the tolerance and the seed.  `rnnconvert verify FILE --vectors DIR` re-checks one file against them.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .errors import InputError

INDEX = "vectors.json"
ARRAYS = "vectors.npz"
KIND = "rnnconvert-vectors"


def emit(directory, model_info: dict, suite, expected, tolerance: dict, seed: int) -> str:
    """Write the vectors for `suite` (a list of (label, x)) and `expected`; return the index path."""
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    arrays, entries = {}, []
    for k, ((label, x), y) in enumerate(zip(suite, expected)):
        arrays[f"input_{k}"] = np.asarray(x, np.float32)
        arrays[f"expected_{k}"] = np.asarray(y, np.float32)
        entries.append({"label": label, "input": f"input_{k}", "expected": f"expected_{k}",
                        "input_shape": list(np.shape(x)), "output_shape": list(np.shape(y))})
    np.savez(os.path.join(directory, ARRAYS), **arrays)
    index = {"kind": KIND, "version": 1, "model": model_info | {"path": os.path.basename(model_info["path"])},
             "arrays": ARRAYS, "tolerance": tolerance, "seed": seed, "vectors": entries,
             "rule": "|actual - expected| <= atol + rtol * |expected| for every element"}
    path = os.path.join(directory, INDEX)
    with open(path, "w") as f:
        json.dump(index, f, indent=1)
    return path


def load(path) -> tuple[dict, list[tuple[str, np.ndarray, np.ndarray]]]:
    """(index, [(label, input, expected)]) from a vectors directory or its vectors.json."""
    path = os.fspath(path)
    index_path = os.path.join(path, INDEX) if os.path.isdir(path) else path
    if not os.path.isfile(index_path):
        raise InputError(f"no {INDEX} here; write vectors with --emit-vectors DIR", path=path)
    try:
        with open(index_path) as f:
            index = json.load(f)
        if index.get("kind") != KIND:
            raise ValueError(f"kind is {index.get('kind')!r}, expected {KIND!r}")
        data = np.load(os.path.join(os.path.dirname(index_path), index["arrays"]), allow_pickle=False)
        vectors = [(e["label"], data[e["input"]], data[e["expected"]]) for e in index["vectors"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not an rnnconvert vectors index ({exc})", path=index_path) from None
    return index, vectors
