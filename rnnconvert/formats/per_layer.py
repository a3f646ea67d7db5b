"""Per-layer conversion: find every recurrent layer of a file and pull one out as a standalone model.

`scan(path)` lists the recurrent layers rnnconvert can read, even when the whole model cannot be
read (a CNN front end, If subgraphs, several inputs, custom layers, no stored architecture);
`extract(path, name)` returns the one-layer model of layer `name`:

    input   that layer's input features, [batch, time, features] (batch-major, whatever the source)
    output  the layer's whole sequence [batch, time, D*H] (directions merged as the source merges
            them; a Keras go_backwards layer's sequence in its processing order, as Keras returns it)
    state   the layer's constant initial state, if it has one (a state fed at run time: zeros)

Names: Keras layer names (also inside Bidirectional/TimeDistributed wrappers and nested models),
PyTorch canonical names (`rnn`, `model.lstm`; layer k of a multi-layer module `lstm_l1`, also
written `lstm.l1`; the bare module name of a multi-layer module is the whole stack), MATLAB layer
Names, ONNX node names (an unnamed node: its first output name).
"""
from __future__ import annotations

import os
import zlib
import re
from dataclasses import replace

from .. import formats
from ..errors import InputError, RnnConvertError
from ..model import InputSpec, Model, Recurrent
from ..model.assumptions import Assumption
from .found import Found, Scan


def scan(path, fmt: str | None = None, **options) -> Scan:
    """Every recurrent layer of `path` (and the whole model or the reason it does not read)."""
    path = os.fspath(path)
    formats.check_exists(path)
    f = formats.for_reading(path, fmt)
    module = f.load()
    whole, error = None, None
    try:
        whole = module.read(path, **options)
    except RnnConvertError as exc:
        error = exc
    try:
        found = _scan_format(f, path, whole, error, options)
    except (RnnConvertError, *_UNEXPECTED) as exc:
        if whole is not None:          # the whole model read: its layers are the per-layer candidates
            found = _from_model(whole)
        elif isinstance(exc, RnnConvertError):
            exc.path = exc.path or path       # found deep in a format's lifting or folding: this file
            raise
        else:
            raise InputError(f"cannot list the recurrent layers: unexpected content ({type(exc).__name__}: "
                             f"{exc})", path=path) from None
    assumptions = list(whole.source.get("assumptions", [])) if whole is not None else []
    return Scan(path, f.name, found, whole, error, assumptions)


# What damaged files raise inside h5py, scipy.io, zipfile and zlib while layers are listed.
_UNEXPECTED = (KeyError, ValueError, TypeError, AttributeError, IndexError, OSError, RuntimeError, zlib.error,
               EOFError, OverflowError)


def _scan_format(f, path, whole, error, options) -> list[Found]:
    if f.name == "onnx":
        from .onnx import per_layer
        found = per_layer.scan(path)
        if not found and whole is not None:     # layers written as Scan loops (rnnconvert's own files)
            found = _from_model(whole)
    elif f.name == "keras":
        from .keras import per_layer
        found = per_layer.scan(path, **options)
    elif f.name == "matlab" and not options.get("mapping") and not options.get("arch"):
        from .matlab.per_layer import scan as matlab_scan
        found = matlab_scan(path, **options)       # the layers as stored (no input normalization folded in)
    elif whole is not None:
        found = _from_model(whole)
    elif f.name in ("torch", "safetensors"):
        from .torch.per_layer import scan as torch_scan
        found = torch_scan(path, **options)
    else:
        raise error
    return found


def _from_model(model: Model) -> list[Found]:
    out = []
    for layer in model.recurrent_layers:
        out.append(Found(layer.name, layer.cell, layer.direction == "bidirectional", f"layer '{layer.name}'",
                         (lambda layer=layer: ([layer], []))))
    groups: dict[str, list[str]] = {}
    for layer in model.recurrent_layers:
        m = re.fullmatch(r"(.+)_l\d+", layer.name)
        if m and model.source.get("format") in ("torch", "safetensors"):
            groups.setdefault(m.group(1), []).append(layer.name)
    by_name = {f.name: f for f in out}
    for base, names in groups.items():
        if base not in by_name and len(names) > 1:
            layers = [next(x for x in model.recurrent_layers if x.name == n) for n in names]
            first = layers[0]
            out.append(Found(base, first.cell, first.direction == "bidirectional",
                             f"module '{base}' ({len(names)} layers)", (lambda layers=layers: (layers, [])),
                             group=names))
    return out


def names(found: list[Found]) -> str:
    return ", ".join(f"{f.name} ({f.kind}{', bidirectional' if f.bidirectional else ''})" for f in found
                     if not f.group) or "none"


def lookup(s: Scan, name: str) -> Found:
    by = {f.name: f for f in s.layers}
    m = re.fullmatch(r"(.+)\.l(\d+)", name)
    for candidate in (name, f"{m.group(1)}_l{m.group(2)}" if m else None):
        if candidate in by:
            return by[candidate]
    raise InputError(f"no recurrent layer '{name}'; recurrent layers found: {names(s.layers)}", path=s.path)


def standalone(layers: list[Recurrent], s: Scan, found: Found, notes: list[str], extra: dict | None = None) -> Model:
    """The one-layer (or one-module) model: the layers returning their whole sequence.  `extra`: entries
    the format adds to its source record (a Keras 1 layer's own array names)."""
    out = []
    for layer in layers:
        keep_processing = layer.time_order == "processing" and layer.direction == "reverse"
        out.append(replace(layer, output="sequence", time_order="processing" if keep_processing else "input"))
    said = list(s.assumptions) + list(notes)         # printed with every result
    source = {"format": s.format, "layer": found.name, "where": found.where,
              "assumptions": [a for a in said if isinstance(a, Assumption)], **(extra or {})}
    read_notes = [a for a in said if not isinstance(a, Assumption)]
    if read_notes:
        source["read_notes"] = read_notes
    model = Model(layers=out, input=InputSpec(name="input", features=out[0].input_size),
                  output_name="output", name=found.name.replace("/", "_") or "layer", source=source)
    return model.validate(s.path)


def build(s: Scan, found: Found) -> Model:
    """The standalone model of one found layer; unexpected content is an InputError naming it."""
    try:
        layers, notes, *extra = found.build()
        return standalone(layers, s, found, notes, *extra)
    except RnnConvertError:
        raise
    except _UNEXPECTED as exc:
        raise InputError(f"cannot read this layer: unexpected content ({type(exc).__name__}: {exc})",
                         path=s.path, layer=found.name) from None


def extract(path, name: str, fmt: str | None = None, **options) -> Model:
    """The standalone one-layer model of recurrent layer `name` of `path`."""
    s = scan(path, fmt, **options)
    return build(s, lookup(s, name))


def suggestion(path, fmt: str | None = None, **options) -> str:
    """'; convert one recurrent layer with --layer NAME (recurrent layers found: ...)', or ''."""
    try:
        s = scan(path, fmt, **options)
    except Exception:  # noqa: BLE001 - a suggestion never turns a clean refusal into a crash
        return ""
    convertible = []
    for found in s.layers:        # only layers that really build: no suggestion for a file without weights
        try:
            build(s, found)
        except Exception:  # noqa: BLE001 - same as above
            continue
        convertible.append(found)
    if not convertible:
        return ""
    return ("; to convert one recurrent layer on its own, pass --layer NAME (recurrent layers found: "
            f"{names(convertible)})")


def with_suggestion(exc: RnnConvertError, path, fmt=None, **options) -> RnnConvertError:
    """The whole-model refusal `exc`, its message extended with the --layer suggestion."""
    from ..errors import DestinationError, UnknownFormatError
    if isinstance(exc, (DestinationError, UnknownFormatError)) or not isinstance(exc, InputError) \
            or "--layer" in exc.message or (exc.path and str(exc.path) != str(path)):   # e.g. a bad --arch file
        return exc
    hint = suggestion(path, fmt, **options)
    if hint:
        exc.message += hint
        exc.args = (exc.format(),)
    return exc
