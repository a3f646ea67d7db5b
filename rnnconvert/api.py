"""The library's verbs, which the command line is a thin layer over: `read`, `write`, `convert`, `verify`,
`predict` and `inspect`.

May import every package below it (verification, formats, reference, model, files, errors); only
`rnnconvert.cli` (and users) import it.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import InputError, RnnConvertError
from .formats import read, write
from .formats.per_layer import build, extract, lookup, scan, with_suggestion
from .model import Model
from .verification.convert import convert
from .verification.verify import verify, verify_vectors

__all__ = ["read", "write", "convert", "verify", "verify_vectors", "predict", "inspect", "read_source"]


def read_source(path, fmt: str | None = None, layer: str | None = None, **options) -> Model:
    """The model `predict` runs: the whole model of `path`, or with `layer` that recurrent layer alone as a
    standalone model (convert's --layer, `rnnconvert/formats/per_layer.py`).  A whole model that does not
    read is refused as `convert` refuses it, naming the layers `layer` can take."""
    if layer is not None:
        return extract(path, layer, fmt, **options)
    try:
        return read(path, fmt, **options)
    except InputError as exc:
        raise with_suggestion(exc, path, fmt, **options) from None


def predict(model_or_path, x: np.ndarray, dtype=np.float64, states: dict | None = None,
            return_states: bool = False, layer: str | None = None):
    """The reference forward pass, shaped like the source framework's predict.

    states: {state input name: [rows, batch, size]} for a model with state inputs (the others start
    from the layers' initial states).  return_states: return (output, {state output name: array}).
    layer: (a path) run only that recurrent layer, on its own: its whole output sequence.
    """
    from .reference import forward_with_feeds
    model = model_or_path if isinstance(model_or_path, Model) else read_source(model_or_path, layer=layer)
    y, outs = forward_with_feeds(model, x, states, dtype=dtype)
    return (y, outs) if return_states else y


def inspect(path, fmt: str | None = None, layer: str | None = None, **options) -> dict:
    """`inspect --json`: the whole model's description when it reads, else every recurrent layer
    found, each described on its own; plus `whole_model` (readable, refusal) and `per_layer`
    (the names `--layer` takes).  With `layer`: that layer's standalone model."""
    from .model.describe import _json, describe, describe_recurrent, source_framework
    s = scan(path, fmt, **options)
    if s.whole is None and not s.layers and s.error is not None:
        raise s.error          # nothing readable at all: the whole model's refusal is the answer
    if layer is not None:
        d = describe(build(s, lookup(s, layer)), path=s.path, fmt=s.format)
    elif s.whole is not None:
        d = describe(s.whole, path=s.path, fmt=s.format)
    else:
        entries, assumed = [], []
        for found in s.layers:
            try:
                model = build(s, found)
            except RnnConvertError as exc:
                entries.append({"name": found.name, "kind": found.kind, "bidirectional": found.bidirectional,
                                "where": found.where, "error": exc.message, "tensors": [], "parameters": 0,
                                "nonfinite": 0})
                continue
            assumed += [a for a in model.source.get("assumptions", []) if a not in assumed]
            framework, own = source_framework(model, s.format), model.source.get("keras1_names") or {}
            for one in model.layers:
                entries.append(describe_recurrent(one, framework, names=own.get(one.name)) | {"where": found.where})
        if s.error is not None and all("error" in e for e in entries):
            raise s.error      # no layer reads on its own either: the whole model's refusal is the answer
        d = {"file": s.path, "format": s.format, "source": {"format": s.format, "assumptions": assumed},
             "name": os.path.basename(s.path),
             "input": {"name": None, "features": None, "dtype": None, "layout": None, "time_steps": None},
             "output_name": None, "parameters": sum(e["parameters"] for e in entries),
             "nonfinite": sum(e["nonfinite"] for e in entries), "layers": entries}
    d["whole_model"] = {"readable": s.whole is not None, "refusal": s.error.format() if s.error else None}
    d["per_layer"] = [{"name": f.name, "kind": f.kind, "bidirectional": f.bidirectional, "where": f.where}
                      for f in s.layers]
    return _json(d)


def plot_layout(path, dst, fmt: str | None = None, layer: str | None = None, **options) -> int:
    """`inspect --plot DST`: the weight layout of every recurrent layer of `path` (or of `layer` alone) drawn
    to scale (`rnnconvert/pictures/layout.py`), written as DST's suffix says (.svg, .html, .png).  Returns
    the number of recurrent layers drawn.  Layers that do not read on their own are left out."""
    from .model import Recurrent
    from .model.describe import source_framework
    from .pictures.layout import layout_svg
    from .pictures.output import check_suffix, write_picture
    check_suffix(dst)
    s = scan(path, fmt, **options)
    if s.whole is None and not s.layers and s.error is not None:
        raise s.error
    if layer is not None:
        models = [build(s, lookup(s, layer))]
    elif s.whole is not None:
        models = [s.whole]
    else:
        models, refusals = [], []
        for found in s.layers:
            try:
                models.append(build(s, found))
            except RnnConvertError as exc:
                refusals.append(exc)
        if not models and (s.error or refusals):
            raise s.error or refusals[0]       # nothing to draw: the refusal is the answer, as inspect's
    drawn = []
    for model in models:
        framework, own = source_framework(model, s.format), model.source.get("keras1_names") or {}
        k = 0
        for one in model.layers:
            if isinstance(one, Recurrent):
                drawn.append((one, framework, k, own.get(one.name)))
                k += 1
    write_picture(layout_svg(drawn, f"{os.path.basename(s.path)}: weight layout"), dst,
                  f"{os.path.basename(s.path)}: weight layout")
    return len(drawn)
