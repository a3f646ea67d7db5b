"""An LSTM's peephole weights as `inspect` shows them: ONNX stores them as one tensor `P` [directions, 3*H]
in the order i, o, f (the c weight of each gate); the canonical model keeps rows i, f, o (`gates`).
Only ONNX and .rnnc hold peepholes: another framework's layout shows them in canonical names."""
from __future__ import annotations

import numpy as np

from . import gates

_MEANING = {"i": "input gate peephole (c weight)", "f": "forget gate peephole (c weight)",
            "o": "output gate peephole (c weight of the new c)"}


def _letters(framework: str) -> str:
    return "iof" if framework == "onnx" else "ifo"


def peephole_tensor(layer, framework: str) -> dict | None:
    """The `tensors` entry for `P` (None for a layer without peepholes), in `framework`'s order."""
    if layer.cell != "lstm" or layer.weights[0].P is None:
        return None
    H, letters, names = layer.hidden, _letters(framework), layer.direction_names()
    rows = [gates.peepholes_from_canonical(w.P) if framework == "onnx" else np.asarray(w.P).reshape(-1)
            for w in layer.weights]
    a = np.stack(rows).astype(np.float32)
    gl = [{"gate": c, "meaning": _MEANING[c], "direction": names[d], "part": "P",
           "slice": f"P[{d}, {j * H}:{(j + 1) * H}]", "start": j * H, "stop": (j + 1) * H,
           "index": [d, [j * H, (j + 1) * H]]}
          for d in range(len(layer.weights)) for j, c in enumerate(letters)]
    other = "canonical" if framework == "onnx" else "onnx"
    alias = (f"{' | '.join(f'{n}.P' for n in names)} (ifo, rows)" if other == "canonical"
             else "P (iof, axis 1)")
    return {"name": "P", "shape": list(a.shape), "dtype": str(a.dtype), "gate_axis": 1, "transposed": False,
            "canonical": f"P (peepholes, {letters})", "directions": names, "gates": gl,
            "aliases": {other: alias}, "nonfinite": int(np.size(a) - np.isfinite(a).sum()), "size": int(a.size)}


def peephole_terms(layer, framework: str) -> dict:
    """{canonical gate letter: the peephole term of direction 0 in its pre-activation} (empty without P)."""
    if layer.cell != "lstm" or layer.weights[0].P is None:
        return {}
    H = "H"
    out = {}
    for j, c in enumerate(_letters(framework)):
        span = f"{j}*{H}:{j + 1}*{H}" if j > 1 else (f"0:{H}" if j == 0 else f"{H}:2*{H}")
        out[c] = f"P[0, {span}]*" + ("c_t" if c == "o" else "c")
    return out
