"""From a Keras config's chain of layers to canonical layers, as Keras files and TF.js models share it:
the layers converted one by one with every problem collected (`convert_chain`), the identity SimpleRNN
selectors rnnconvert's writers add folded back into the layer before them (`fold_selectors`).
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError, RnnConvertError, UnsupportedError
from ...model import Recurrent


def convert_chain(conv, entries) -> tuple[list, list[RnnConvertError]]:
    """(canonical layers, problems) of `entries` through `conv` (a `layers.Converter`)."""
    layers, problems = [], []
    for e in entries:
        if e.cls == "InputLayer":
            continue
        try:
            layer = conv.convert(e)
        except RnnConvertError as exc:
            problems.append(exc)
            conv.features, conv.seq = None, True     # unknown after a layer that could not be read
            continue
        if layer is not None:
            layers.append(layer)
    leftover = conv.finish_chain()
    if leftover is not None:
        problems.append(leftover)
    return layers, problems


def combined(problems: list[RnnConvertError], path: str) -> RnnConvertError:
    if len(problems) == 1:
        return problems[0]
    parts = [f"layer '{p.layer}': {p.message}" if p.layer else p.message for p in problems]
    cls = UnsupportedError if all(isinstance(p, UnsupportedError) for p in problems) else InputError
    return cls(f"{len(problems)} problems: " + "; ".join(parts), path=path)


def shape_text(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _is_identity_selector(layer, prev) -> bool:
    """A linear SimpleRNN with kernel I, recurrent kernel 0 and no bias right after a sequence: it only
    picks or reorders time steps (what rnnconvert's Keras writer adds where Keras has no such layer)."""
    if not (isinstance(layer, Recurrent) and layer.cell == "rnn" and layer.direction != "bidirectional"
            and layer.activations[0].name == "linear" and isinstance(prev, Recurrent)
            and prev.output == "sequence" and prev.direction != "forward"):
        return False
    w = layer.weights[0]
    n = layer.hidden
    return (n == prev.units_out and w.h0 is None and np.array_equal(w.W, np.eye(n, dtype=w.W.dtype))
            and not np.any(w.R) and not np.any(w.Wb) and not np.any(w.Rb))


def fold_selectors(layers: list, notes: list) -> list:
    """Fold identity SimpleRNN selectors into the layer before them (exact): a bidirectional layer's
    last input step, a go_backwards layer's first processed step or its sequence in input order."""
    out = []
    for layer in layers:
        prev = out[-1] if out else None
        if _is_identity_selector(layer, prev):
            picks_one = layer.output != "sequence"
            if layer.direction == "forward" and picks_one and prev.time_order == "input":
                prev.output = "last_step"                       # the last input step
            elif layer.direction == "reverse" and prev.time_order == "processing":
                prev.time_order = "input"                       # back in input order ...
                if picks_one:
                    prev.output = "last_step"                   # ... or its first processed step
            else:
                out.append(layer)
                continue
            notes.append(f"layer '{layer.name}' (an identity SimpleRNN that selects time steps) folded into "
                         f"layer '{prev.name}' as output '{prev.output}', time order '{prev.time_order}'")
            continue
        out.append(layer)
    return out
