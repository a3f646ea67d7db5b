"""Golden test vectors: inputs and expected outputs a deployment target can check itself against.

`DIR/vectors.npz` holds `input_<k>` and `expected_<k>` (float32, in the model's own layout, shaped like
the source framework's predict); `DIR/vectors.json` indexes them with the model file, its SHA-256,
the tolerance and the seed.  `rnnconvert verify FILE --vectors DIR` re-checks one file against them.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..errors import InputError
from ..files.text import MAX_JSON_BYTES, read_json

INDEX = "vectors.json"
ARRAYS = "vectors.npz"
KIND = "rnnconvert-vectors"


def outputs(directory) -> list[str]:
    """The files `emit` writes into `directory`."""
    return [os.path.join(os.fspath(directory), name) for name in (ARRAYS, INDEX)]


def emit(directory, model_info: dict, suite, expected, tolerance: dict, seed: int, force: bool = True) -> str:
    """Write the vectors for `suite` (a list of (label, x)) and `expected`; return the index path.

    Each file is written under a temporary name beside itself and renamed (rnnconvert/atomic.py), the
    index last; existing vectors are kept unless `force`, and a directory made here is removed again
    when the writing fails."""
    from ..files.atomic import refuse_existing
    directory = os.fspath(directory)
    refuse_existing(outputs(directory), force)
    made = _make_directory(directory)
    try:
        return _write(directory, model_info, suite, expected, tolerance, seed, force)
    except BaseException:
        if made and not os.listdir(directory):
            os.rmdir(directory)
        raise


def _make_directory(directory: str) -> bool:
    from ..errors import DestinationError
    if os.path.isdir(directory):
        return False
    try:
        os.makedirs(directory)
    except OSError as exc:
        raise DestinationError(f"cannot make the vectors directory ({exc.strerror or exc})", path=directory) from None
    return True


def _write(directory, model_info, suite, expected, tolerance, seed, force) -> str:
    from ..files.atomic import write_files
    arrays, entries = {}, []
    for k, ((label, x), y) in enumerate(zip(suite, expected)):
        arrays[f"input_{k}"] = np.asarray(x, np.float32)
        arrays[f"expected_{k}"] = np.asarray(y, np.float32)
        entries.append({"label": label, "input": f"input_{k}", "expected": f"expected_{k}",
                        "input_shape": list(np.shape(x)), "output_shape": list(np.shape(y))})
    index = {"kind": KIND, "version": 1, "model": model_info | {"path": os.path.basename(model_info["path"])},
             "arrays": ARRAYS, "tolerance": tolerance, "seed": seed, "vectors": entries,
             "rule": "|actual - expected| <= atol + rtol * |expected| for every element"}
    path = os.path.join(directory, INDEX)
    write_files([(os.path.join(directory, ARRAYS), "wb", lambda f: np.savez(f, **arrays)),
                 (path, "w", lambda f: json.dump(index, f, indent=1))], replace=force)
    return path


def load(path) -> tuple[dict, list[tuple[str, np.ndarray, np.ndarray]]]:
    """(index, [(label, input, expected)]) from a vectors directory or its vectors.json."""
    from ..files.outputs import check_input
    path = os.fspath(path)
    index_path = os.path.join(path, INDEX) if os.path.isdir(path) else path
    if not os.path.lexists(index_path):
        raise InputError(f"no {INDEX} here; write vectors with --emit-vectors DIR", path=path)
    check_input(index_path, f"a vectors index ({INDEX})")
    try:
        with open(index_path, "rb") as f:
            index = read_json(f.read(MAX_JSON_BYTES + 1), index_path, INDEX)
        if index.get("kind") != KIND:
            raise ValueError(f"kind is {index.get('kind')!r}, expected {KIND!r}")
        arrays = _arrays_path(index_path, index["arrays"])
        data = np.load(arrays, allow_pickle=False)
        vectors = [(e["label"], data[e["input"]], data[e["expected"]]) for e in index["vectors"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not an rnnconvert vectors index ({exc})", path=index_path) from None
    return index, vectors


def _arrays_path(index_path: str, name) -> str:
    """The index's `arrays` file, confined to the index's folder: a plain relative name (no absolute
    path, no `..`, no link leading out) of a regular file."""
    from ..files.outputs import check_input, inside
    folder = os.path.dirname(os.path.abspath(index_path))
    if not isinstance(name, str) or not name:
        raise InputError(f"'arrays' must name the arrays file beside {INDEX}, found {name!r}", path=index_path)
    path = os.path.join(folder, name)
    if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/") or not inside(path, folder):
        raise InputError(f"'arrays' names {name!r}, outside the vectors folder; it must be a file beside {INDEX} "
                         f"(such as {ARRAYS})", path=index_path)
    check_input(path, "the vectors' arrays (.npz)")
    return path
