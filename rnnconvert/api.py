"""`read`, `write` and `predict`: the library verbs the CLI is a thin layer over."""
from __future__ import annotations

import os

import numpy as np

from . import formats
from .model import Model


def read(path, format: str | None = None, **options) -> Model:
    """Read any supported file into the canonical model."""
    path = os.fspath(path)
    formats.check_exists(path)
    return formats.for_reading(path, format).load().read(path, **options)


def write(model: Model, path, format: str | None = None, **options) -> list[str]:
    """Write `model` to `path` in the format its suffix names; returns notes on what changed in form."""
    path = os.fspath(path)
    return formats.for_writing(path, format).load().write(model, path, **options) or []


def predict(model_or_path, x: np.ndarray, dtype=np.float64, states: dict | None = None,
            return_states: bool = False):
    """The reference forward pass, shaped like the source framework's predict.

    states: {state input name: [rows, batch, size]} for a model with state inputs (the others start
    from the layers' initial states).  return_states: return (output, {state output name: array}).
    """
    from . import states as state_io
    model = model_or_path if isinstance(model_or_path, Model) else read(model_or_path)
    y, outs = state_io.forward(model, x, states, dtype=dtype)
    return (y, outs) if return_states else y
