"""What a conversion did, and where two models part ways.

`classify` compares two canonical models layer by layer and sorts what it finds into what was
preserved exactly, what changed in form but not in function (writers' notes, e.g. two biases summed
into one), and what was refused.  `localize` runs the reference pass of both models layer by layer on
the same input and names the first layer whose outputs differ beyond the tolerance; it needs the
same layer structure (dropout layers aside) and says so when the structures differ.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib

import numpy as np

from ..model import Dropout, Embedding, Layer, Masking, Model, layer_fields


@dataclasses.dataclass(frozen=True)
class Digest:
    """An array reduced to its shape, dtype and the SHA-1 of its bytes: it compares equal to an array (or
    digest) holding the same values, so `classify` can compare a model whose weights were released."""
    shape: tuple
    dtype: str
    sha1: str

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @classmethod
    def of(cls, a) -> "Digest":
        if isinstance(a, Digest):
            return a
        a = np.ascontiguousarray(a)
        return cls(tuple(a.shape), a.dtype.str, hashlib.sha1(memoryview(a).cast("B")).hexdigest())


def skeleton(model: Model) -> Model:
    """A copy of `model` whose arrays are Digests: its settings and layout without its weights' memory."""
    def strip(obj):
        obj = copy.copy(obj)
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, np.ndarray):
                setattr(obj, f.name, Digest.of(v))
            elif isinstance(v, list) and v and dataclasses.is_dataclass(v[0]):
                setattr(obj, f.name, [strip(w) for w in v])
        return obj
    out = copy.copy(model)
    out.layers = [strip(layer) for layer in model.layers]
    return out


def _kind(layer: Layer) -> str:
    return layer.kind


def _structural(model: Model) -> list[tuple[int, Layer]]:
    return [(k, layer) for k, layer in enumerate(model.layers) if not isinstance(layer, Dropout)]


def _label(k: int, layer: Layer) -> str:
    return f"layers[{k}] '{layer.name}' ({_kind(layer)})"


def _same(a, b) -> bool:
    if isinstance(a, Digest) or isinstance(b, Digest):
        return a is not None and b is not None and Digest.of(a) == Digest.of(b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is not None and b is not None and np.shape(a) == np.shape(b) and np.array_equal(a, b)
    return a == b


def layer_differences(a: Layer, b: Layer, masked: bool = True) -> list[str]:
    """Names of the settings and arrays in which two layers of the same kind differ (names ignored; with
    `masked` False, no mask reaches the layers, so what they output at a masked step is ignored too)."""
    diff = []
    fa, fb = layer_fields(a), layer_fields(b)
    ignored = ("name",) if masked else ("name", "masked_output")
    for key in sorted(set(fa) | set(fb)):
        if key not in ignored and fa.get(key) != fb.get(key):
            diff.append(key)
    xa, xb = a.arrays(), b.arrays()
    for key in sorted(set(xa) | set(xb)):
        if not _same(xa.get(key), xb.get(key)):
            diff.append(key)
    return diff


def has_mask(model: Model) -> bool:
    """Does anything in the model make a mask (an Embedding with mask_zero, a Masking layer)?"""
    return any(isinstance(x, Masking) or (isinstance(x, Embedding) and x.mask_zero) for x in model.layers)


def classify(src: Model, dst: Model | None, *, notes=(), refused=(), assumed=()) -> dict:
    """{"preserved": [...], "changed_in_form": [...], "refused": [...], "assumed": [...]}.

    A layer is listed once: under changed in form when the layers differ or a writer's note names it
    (`'name'`), else as preserved exactly."""
    out = {"preserved": [], "changed_in_form": list(notes), "refused": list(refused), "assumed": list(assumed)}
    if dst is None:
        return out
    sa, sb = _structural(src), _structural(dst)
    if [_kind(x) for _, x in sa] != [_kind(x) for _, x in sb]:
        out["changed_in_form"].append(
            "layer stack changed: " + ", ".join(_kind(x) for _, x in sa) + " -> " + ", ".join(_kind(x) for _, x in sb))
        return out
    if src.input.layout != dst.input.layout:
        out["changed_in_form"].append(f"input layout {src.input.layout} -> {dst.input.layout}")
    masked = has_mask(src) or has_mask(dst)
    for (k, a), (_, b) in zip(sa, sb):
        diff = layer_differences(a, b, masked)
        if diff:
            out["changed_in_form"].append(f"{_label(k, a)}: {', '.join(diff)} stored differently")
        elif not any(f"'{a.name}'" in n or f"'{b.name}'" in n for n in notes):
            out["preserved"].append(f"{_label(k, a)}: every weight and setting exactly")
    return out


def identical(src: Model, dst: Model) -> bool:
    """Do both models compute the same thing by construction: the same layers (dropout aside) with every
    setting and array equal, the same input (its name aside), the same state inputs and outputs?  Then
    every reference pass of one is the other's.  Pass `skeleton`s to compare by digest."""
    sa, sb = _structural(src), _structural(dst)
    return ([_kind(x) for _, x in sa] == [_kind(x) for _, x in sb]
            and dataclasses.replace(src.input, name="") == dataclasses.replace(dst.input, name="")
            and src.state_inputs == dst.state_inputs and src.state_outputs == dst.state_outputs
            and not any(layer_differences(a, b) for (_, a), (_, b) in zip(sa, sb)))


def localize(src: Model, dst: Model, x: np.ndarray, tol: dict) -> dict:
    """The first layer whose reference outputs differ: {"layer", "index", "max_abs", "message"}.

    `x` is in src's layout.  Each model runs on its own previous layer's output, so the first layer
    beyond tolerance is where the difference starts.
    """
    from ..reference.network import run_layer
    sa, sb = _structural(src), _structural(dst)
    if [_kind(x) for _, x in sa] != [_kind(x) for _, x in sb]:
        return {"layer": None, "index": None, "max_abs": None,
                "message": "could not be localised: the two models have different layer structures ("
                           + ", ".join(_kind(x) for _, x in sa) + " vs " + ", ".join(_kind(x) for _, x in sb) + ")"}
    xa = np.asarray(x, dtype=np.float64)
    if src.input.layout == "time_batch_feature":
        xa = np.swapaxes(xa, 0, 1)
    xb = xa
    for (k, a), (_, b) in zip(sa, sb):
        xa, _ = run_layer(a, xa)
        xb, _ = run_layer(b, xb)
        if xa.shape != xb.shape:
            return {"layer": a.name, "index": k, "max_abs": None,
                    "message": f"first difference at layer '{a.name}' (layers[{k}]): output shape "
                               f"{list(xb.shape)}, expected {list(xa.shape)}"}
        diff = np.abs(xa - xb)
        diff = np.where(np.isnan(diff), np.inf, diff)
        bound = tol["atol"] + tol["rtol"] * np.abs(xa)
        if (diff > bound).any():
            from .curves import step_curve
            m = float(diff.max())
            return {"layer": a.name, "index": k, "max_abs": m, "per_step": step_curve(diff, bound, 1),
                    "message": f"first difference at layer '{a.name}' (layers[{k}]): max abs error {m:.3g}"}
    return {"layer": None, "index": None, "max_abs": None,
            "message": "the reference passes of both models agree at every layer; the difference is in a "
                       "framework runtime's reading of the file"}
