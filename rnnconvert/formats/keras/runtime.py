"""The keras runtime hook: run a Keras file in Keras itself (verification's independent runtime).

`run(path, x, model)` loads the file with `keras.models.load_model(path, compile=False)` (KERAS_BACKEND
defaults to torch when unset) and returns `predict(x)` as float32 numpy; `x` is in `model.input.layout`
(a time-major model's inputs and sequence outputs are transposed around Keras's batch-major call).
The loaded model is kept for the next call on the same unchanged file.

Keras 3 cannot stand in for an older Keras on every file: it refuses tf.keras 2 configs
(`time_major`) and reads `hard_sigmoid` as clip(x/6+0.5) where Keras 1/2 meant clip(0.2x+0.5).  Such
files raise `RuntimeUnavailable` (the report says the runtime could not check them), not a result.
"""
from __future__ import annotations

import os
import re
import warnings

import numpy as np

from ...errors import RuntimeUnavailable
from . import container

_cache: dict = {}


def import_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except Exception as exc:  # noqa: BLE001 - ImportError, or a backend that fails to import
        raise RuntimeUnavailable(f"keras cannot be imported ({type(exc).__name__}: {exc}); "
                                 "pip install keras and a backend (torch, tensorflow or jax)") from None
    return keras


def _major(version) -> int | None:
    m = re.match(r"\s*(\d+)", str(version or ""))
    return int(m.group(1)) if m else None


def load(path):
    """The Keras model in `path`, loaded once per unchanged file."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    if key in _cache:
        return _cache[key]
    keras = import_keras()
    runtime = _major(keras.__version__) or 3
    try:
        saved = container.open_file(str(path))
        file_major = _major(saved.keras_version) or 1
        uses_hard_sigmoid = "hard_sigmoid" in str(saved.config)
    except Exception:  # noqa: BLE001 - Keras itself reports what it cannot open
        file_major, uses_hard_sigmoid = runtime, False
    if runtime >= 3 > file_major and uses_hard_sigmoid:
        raise RuntimeUnavailable(f"this Keras {file_major} file uses hard_sigmoid, clip(0.2x+0.5) in Keras 1/2, which "
                                 f"Keras {keras.__version__} would compute as clip(x/6+0.5)")
    try:
        with warnings.catch_warnings():     # Keras's UserWarnings (input_shape arguments, ...) stay off stderr
            warnings.simplefilter("ignore")
            loaded = keras.models.load_model(str(path), compile=False)
    except Exception as exc:
        if runtime >= 3 > file_major:
            raise RuntimeUnavailable(f"Keras {keras.__version__} cannot load this Keras {file_major} file "
                                     f"({type(exc).__name__}: {str(exc)[:200]})") from None
        raise
    _cache.clear()
    _cache[key] = loaded
    return loaded


def run(path, x: np.ndarray, model=None) -> np.ndarray:
    time_major = getattr(getattr(model, "input", None), "layout", "") == "time_batch_feature"
    if len(load(path).inputs) > 1 or len(load(path).outputs) > 1:     # state inputs at their initial values
        return run_states(path, x, model, None, time_major)[0]
    return _predict(path, x, time_major)[0]


def _predict(path, x, time_major: bool, extra: list | None = None) -> list[np.ndarray]:
    """Keras's outputs on `x` (in the given layout) and the `extra` inputs ([batch, size] each, in order)."""
    keras_model = load(path)
    x = np.asarray(x, dtype=np.float32)
    if time_major:
        x = np.swapaxes(x, 0, 1)
    feed = [np.ascontiguousarray(x)] + [np.ascontiguousarray(v, dtype=np.float32) for v in extra or []]
    if len(feed) != len(keras_model.inputs):
        raise ValueError(f"the Keras model takes {len(keras_model.inputs)} inputs, and the model's input and state "
                         f"inputs make {len(feed)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = keras_model.predict(feed if len(feed) > 1 else feed[0], verbose=0, batch_size=max(len(x), 1))
    out = [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
    if time_major and out[0].ndim == 3:
        out[0] = np.swapaxes(out[0], 0, 1)
    return [np.ascontiguousarray(o) for o in out]


def run_states(path, x: np.ndarray, model, feeds: dict | None = None, time_major: bool = False):
    """(output, {state output name: array}): the file on `x` with `model`'s state inputs `feeds` (the rest at
    their initial values).  The Keras inputs after x are the rows of `model.state_inputs` in order, one
    `[batch, size]` tensor each (`keras_json/state_io.py`), the outputs after y likewise the rows of
    `model.state_outputs`; `time_major`: x and y are [time, batch, ...]."""
    from ..keras_json.state_io import feed_rows, state_results
    out = _predict(path, x, time_major, feed_rows(model, feeds, np.shape(x)[1 if time_major else 0]))
    return out[0], state_results(model, out[1:])
