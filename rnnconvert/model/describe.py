"""What a model file holds, in the source format's own words: `describe(model) -> dict`, `render(dict) -> str`.

The dict is the `--json` output (a contract: keys are added, never renamed).  For each recurrent layer
it names every weight tensor as the source file does (from `layouts.LAYOUTS`), the slice of each gate
block in the file's gate order, what the other frameworks call the same tensor, and the cell equations
written with the file's own tensor names.  Slices use the framework's own index syntax (MATLAB: 1-based,
inclusive); `start`/`stop` are always 0-based, half-open, along `gate_axis`.
"""
from __future__ import annotations

import numpy as np

from . import gates, layouts, own_names
from .peepholes import peephole_tensor, peephole_terms
from ..errors import UnsupportedError
from . import Activation, Model, Recurrent, layer_fields

_OPS = {"python": (" @ ", "*"), "matlab": (" * ", " .* ")}   # matmul, elementwise product


def source_framework(model: Model, fmt: str | None = None) -> str:
    """Whose names describe `model`: the file's format `fmt` when given (a file rnnconvert wrote keeps its
    source's record in `model.source`, but holds its own format's tensors), else the source's."""
    fmt = fmt or model.source.get("format")
    return fmt if fmt in layouts.FRAMEWORKS else "canonical"


def layout_for(layer: Recurrent, framework: str) -> tuple[dict | None, str | None]:
    """(layout entry, None) when `framework` can hold `layer`, else (None, why not)."""
    entry = layouts.select(framework, layer.cell, layer.reset_after, layer.has_recurrent_bias)
    if entry.get("unsupported"):
        return None, entry["unsupported"]
    if layer.direction == "bidirectional" and entry.get("bidirectional") is False:
        return None, f"{framework} has no bidirectional {layer.cell.upper()} layer"
    has_proj = layer.weights[0].proj is not None
    if has_proj and not any("proj" in t.canonical for t in entry["tensors"]):
        return None, f"{framework} has no LSTM output projection"
    return entry, None


def _present(layer: Recurrent, t: layouts.Tensor) -> bool:
    have = {"W": True, "R": True, "Wb": layer.has_input_bias, "Rb": layer.has_recurrent_bias,
            "proj": layer.weights[0].proj is not None}
    return any(have[f] for f in t.canonical)


def _direction_array(layer: Recurrent, framework: str, t: layouts.Tensor, w) -> np.ndarray:
    parts = [np.asarray(getattr(w, f)) for f in t.canonical]
    if t.gate_axis is not None and framework != "canonical":
        parts = [gates.from_canonical(p, layer.cell, framework) for p in parts]
    a = {None: lambda: parts[0], "sum": lambda: parts[0] + parts[1],
         "concat": lambda: np.concatenate(parts), "stack": lambda: np.stack(parts)}[t.combine]()
    return a.T if t.transposed else a


def source_tensors(layer: Recurrent, framework: str, k: int = 0) -> list[dict]:
    """The layer's tensors as `framework` stores them: [{name, tensor, directions, array}].

    `k` is the layer's index in a stacked PyTorch module.  Raises UnsupportedError if the framework cannot hold it.
    """
    entry, why = layout_for(layer, framework)
    if entry is None:
        raise UnsupportedError(f"{framework} cannot hold this layer: {why}", layer=layer.name)
    style = layouts.FRAMEWORKS[framework]["directions"]
    dirs = list(range(len(layer.weights)))
    out = []
    for t in entry["tensors"]:
        if not _present(layer, t):
            continue
        per_dir = [_direction_array(layer, framework, t, w) for w in layer.weights]
        if style in ("axis0", "rows"):
            a = np.stack(per_dir) if style == "axis0" else np.concatenate(per_dir, axis=t.gate_axis or 0)
            groups = [(layouts.tensor_name(framework, t, layer.direction, 0, k), dirs, a)]
        else:
            groups = [(layouts.tensor_name(framework, t, layer.direction, d, k), [d], per_dir[d]) for d in dirs]
        for name, ds, a in groups:
            ndim = len(layouts.dims(t.shape))
            a = a.reshape(a.shape + (1,) * (ndim - a.ndim))        # MATLAB's column vectors
            out.append({"name": name, "tensor": t, "directions": ds, "array": a})
    return out


def canonical_letters(framework: str, cell: str) -> dict[str, str]:
    order, canon = layouts.gate_order(framework, cell), gates.CANONICAL[cell]
    return {order[p]: canon[j] for j, p in enumerate(gates.permutation(cell, order, canon))}


def _part(layer, framework, t, field, d, k, H=None, gate=None, own=None) -> str:
    """Index string of one direction's `field` in tensor t: one gate block of it when `gate` is a position,
    all of its blocks when `gate` is None, and all fields of direction `d` when `field` is None.  `own`:
    the file's own names of the layer's arrays (`own_names`), in the source framework's terms."""
    name = layouts.tensor_name(framework, t, layer.direction, d, k)
    if own is not None and t.name in own_names.KERAS_TENSORS:
        if own.per_gate and gate is not None and t.gate_axis is not None:
            return own.gate(t.name, d, layouts.gate_order(framework, layer.cell)[gate])
        name = own.tensor(t.name, d)
        if own.per_gate:
            return name
    if t.gate_axis is None:
        return name
    fixed, base = layouts.place(framework, t, field or t.canonical[0], d, len(layer.weights), layer.cell)
    G = gates.GATE_COUNT[layer.cell]
    if field is None and t.combine == "concat":
        G *= len(t.canonical)
    elif field is None and t.combine == "stack":
        fixed[t.gate_axis - 1] = None
    a, b = (base + gate, base + gate + 1) if gate is not None else (base, base + G)
    whole = layouts.evaluate(t.shape, input=1, H=1, D=len(layer.weights), P=1)[t.gate_axis]
    if gate is None and (a, b) == (0, whole):
        span = None
    else:
        span = (layouts.blocks(a, H), layouts.blocks(b, H))
    return layouts.index_string(framework, name, fixed, t.gate_axis, span)


def _find(entry, layer, field):
    return next((t for t in entry["tensors"] if field in t.canonical and _present(layer, t)), None)


def _holders(layer: Recurrent, t: layouts.Tensor, source: str):
    """(framework, its layout entry, {field: the tensor holding it}) for every framework but `source`; the
    entry is None where that framework cannot hold every field of `t`."""
    for fw in layouts.FRAMEWORKS:
        if fw == source:
            continue
        entry, _ = layout_for(layer, fw)
        found = {f: entry and next((x for x in entry["tensors"] if f in x.canonical), None) for f in t.canonical}
        yield fw, (entry if entry is not None and all(found.values()) else None), found


def aliases(layer: Recurrent, t: layouts.Tensor, dirs: list[int], source: str, k: int = 0) -> dict:
    """What every other framework calls the fields tensor `t` holds for directions `dirs`; None: cannot hold it."""
    out = {}
    for fw, entry, found in _holders(layer, t, source):
        if entry is None:
            out[fw] = None
            continue
        per_dir = []
        for d in dirs:
            exprs = []
            for f, x in found.items():
                e = _part(layer, fw, x, f, d, k, H=layer.hidden)
                if x.combine == "sum" and set(x.canonical) - set(t.canonical):
                    e += f" (holds {' + '.join(x.canonical)})"
                if e not in exprs:
                    exprs.append(e)
            per_dir.append((" + " if t.combine == "sum" else ", ").join(exprs))
        x = next(iter(found.values()))
        suffix = ""
        if t.gate_axis is not None:
            kind = (", columns" if x.transposed else ", rows") if t.canonical[0] in ("W", "R") else ""
            suffix = f" ({layouts.gate_order(fw, layer.cell)}{kind})"
        out[fw] = " | ".join(per_dir) + suffix
    return out


def equations(layer: Recurrent, framework: str, entry: dict, k: int = 0, own=None) -> list[str]:
    """The cell equations of direction 0 with the file's tensor names; H symbolic."""
    fwd = layouts.FRAMEWORKS[framework]
    mm, mul = _OPS[fwd["index"]]
    acts = fwd["activations"][layer.cell]
    order = layouts.gate_order(framework, layer.cell)
    canon = canonical_letters(framework, layer.cell)

    def term(field, letter, operand=None):
        t = _find(entry, layer, field)
        if t is None or (t.combine == "sum" and field != t.canonical[0]):
            return None                                   # absent, or already in the summed bias
        s = _part(layer, framework, t, field, 0, k, gate=order.index(letter), own=own)
        if operand is None:
            return s
        return f"{operand}{mm}{s}" if t.transposed else f"{s}{mm}{operand}"

    def add(*terms):
        return " + ".join(x for x in terms if x)

    lines, peep = [], peephole_terms(layer, framework)
    for letter in order:
        c = canon[letter]
        wx, bw, br = term("W", letter, "x"), term("Wb", letter), term("Rb", letter)
        if layer.cell == "gru" and c == "n":
            if layer.reset_after:
                inner = add(term("R", letter, "h"), br)
                pre = add(wx, bw, f"r{mul}({inner})")
            else:
                pre = add(wx, term("R", letter, f"(r{mul}h)"), bw, br)
        else:
            pre = add(wx, term("R", letter, "h"), peep.get(c), bw, br)
        act = acts[1] if c in ("g", "n") else acts[0]
        lines.append(f"{c} = {act}({pre})")
    if layer.clip is not None:
        lines.append(f"(every pre-activation clipped to [-{layer.clip:g}, {layer.clip:g}])")
    if layer.cell == "lstm":
        lines.append(f"c = f{mul}c + i{mul}g" + ("   (c_t: this new c)" if peep else ""))
        out = f"o{mul}{acts[2]}(c)"
        proj = _find(entry, layer, "proj")
        lines.append(f"h = {_part(layer, framework, proj, 'proj', 0, k)}{mm}({out})" if proj else f"h = {out}")
    elif layer.cell == "gru":
        lines.append(f"h = (1 - z){mul}n + z{mul}h")
    else:
        lines[-1] = "h" + lines[-1][1:]
    if len(layer.weights) == 2:
        names = [_part(layer, framework, t, None, 1, k, H=layer.hidden, own=own)
                 for t in entry["tensors"] if _present(layer, t)] + (["P[1]"] if peep else [])
        lines.append(f"reverse direction: the same over the reversed sequence with {', '.join(names)}")
    return lines


def _nonfinite(a) -> int:
    a = np.asarray(a)
    return int(np.count_nonzero(~np.isfinite(a))) if a.dtype.kind in "fc" else 0


def _json(v):
    """Plain JSON values: activations as text, numpy scalars and arrays as Python numbers and lists."""
    if isinstance(v, Activation):
        return str(v)
    if isinstance(v, (np.generic, np.ndarray)):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json(x) for x in v]
    return v


def describe_recurrent(layer: Recurrent, framework: str, k: int = 0, names=None) -> dict:
    """`names`: the arrays a Keras reader took for this layer, in order (`source["keras1_names"]`): a
    Keras 1 file's own names are shown in place of the Keras 2 ones (`own_names`)."""
    entry, why = layout_for(layer, framework)
    note = None
    if entry is None:
        note = f"shown in canonical names: {why}"
        framework, (entry, _) = "canonical", layout_for(layer, "canonical")
    own = own_names.keras1(layer, names) if framework == "keras" else None
    H, canon = layer.hidden, canonical_letters(framework, layer.cell)
    symbols = layouts.FRAMEWORKS[framework]["activations"][layer.cell]
    act_names = {}
    for sym, act in zip(symbols, layer.activations):
        act_names[sym if act_names.get(sym, str(act)) == str(act) else f"{sym} (2)"] = str(act)
    tensors = []
    for st in source_tensors(layer, framework, k):
        t, a = st["tensor"], st["array"]
        if own is not None:
            if own.per_gate:
                tensors += _per_gate(layer, framework, st, own, k)
                continue
            st["name"] = own.tensor(t.name, st["directions"][0])
        gl = []
        if t.gate_axis is not None:
            fields = t.canonical[:1] if t.combine == "sum" else t.canonical
            for d in st["directions"]:
                for f in fields:
                    fixed, base = layouts.place(framework, t, f, d, len(layer.weights), layer.cell)
                    for j, letter in enumerate(layouts.gate_order(framework, layer.cell)):
                        start, stop = (base + j) * H, (base + j + 1) * H
                        index = [[start, stop] if ax == t.gate_axis else x for ax, x in enumerate(fixed)]
                        gl.append({"gate": letter, "meaning": gates.GATE_NAMES[layer.cell][canon[letter]],
                                   "direction": layer.direction_names()[d],
                                   "part": " + ".join(t.canonical) if t.combine == "sum" else f,
                                   "slice": layouts.index_string(framework, st["name"], fixed, t.gate_axis,
                                                                 (start, stop)),
                                   "start": start, "stop": stop, "index": index})
        tensors.append({"name": st["name"], "shape": list(a.shape), "dtype": str(a.dtype),
                        "gate_axis": t.gate_axis, "transposed": t.transposed,
                        "canonical": layouts.canonical_text(t),
                        "directions": [layer.direction_names()[d] for d in st["directions"]],
                        "gates": gl, "aliases": aliases(layer, t, st["directions"], framework, k),
                        "nonfinite": _nonfinite(a), "size": int(a.size)})
    d = {"name": layer.name, "kind": layer.kind, "framework": framework,
         "bidirectional": layer.direction == "bidirectional", "direction": layer.direction,
         "hidden": H, "input_size": layer.input_size, "units_out": layer.units_out,
         "proj": layer.state_size if layer.weights[0].proj is not None else None,
         "output": layer.output, "merge": layer.merge if layer.direction == "bidirectional" else None,
         "time_order": layer.time_order, "masked_output": layer.masked_output,
         "gate_order": layouts.gate_order(framework, layer.cell),
         "activations": [str(a) for a in layer.activations], "activation_names": act_names,
         "clip": layer.clip, "bias": {"input": layer.has_input_bias, "recurrent": layer.has_recurrent_bias},
         "initial_state": {"h": any(w.h0 is not None for w in layer.weights)}}
    if layer.cell == "lstm":
        d["initial_state"]["c"] = any(w.c0 is not None for w in layer.weights)
    if layer.cell == "gru":
        d["reset_after"] = layer.reset_after
        d["reset_variant"] = entry.get("variant")
    if peephole_tensor(layer, framework) is not None:
        tensors.append(peephole_tensor(layer, framework))
    d.update(tensors=tensors, equations=equations(layer, framework, entry, k, own),
             parameters=sum(t["size"] for t in tensors), nonfinite=sum(t["nonfinite"] for t in tensors))
    if note:
        d["note"] = note
    return d


def _per_gate(layer: Recurrent, framework: str, st: dict, own, k: int) -> list[dict]:
    """A tensor the file stores as one array per gate (Keras 1): one entry per array, each with what the
    other frameworks call its gate block."""
    t, a, d = st["tensor"], st["array"], st["directions"][0]
    H, canon = layer.hidden, canonical_letters(framework, layer.cell)
    out = []
    for j, letter in enumerate(layouts.gate_order(framework, layer.cell)):
        block = np.take(a, range(j * H, (j + 1) * H), axis=t.gate_axis)
        meaning = gates.GATE_NAMES[layer.cell][canon[letter]]
        out.append({"name": own.gate(t.name, d, letter), "shape": list(block.shape), "dtype": str(block.dtype),
                    "gate_axis": None, "transposed": t.transposed,
                    "canonical": f"{layouts.canonical_text(t)}, the {meaning} block",
                    "directions": [layer.direction_names()[d]], "gate": letter, "meaning": meaning, "gates": [],
                    "aliases": _gate_aliases(layer, t, d, canon[letter], framework, k),
                    "nonfinite": _nonfinite(block), "size": int(block.size)})
    return out


def _gate_aliases(layer: Recurrent, t: layouts.Tensor, d: int, c: str, source: str, k: int) -> dict:
    """What every other framework calls canonical gate `c`'s block of the fields tensor `t` holds."""
    out = {}
    for fw, entry, found in _holders(layer, t, source):
        if entry is None:
            out[fw] = None
            continue
        letter = {v: g for g, v in canonical_letters(fw, layer.cell).items()}[c]
        pos = layouts.gate_order(fw, layer.cell).index(letter)
        exprs = []
        for f, x in found.items():
            e = _part(layer, fw, x, f, d, k, H=layer.hidden, gate=pos)
            if x.combine == "sum" and set(x.canonical) - set(t.canonical):
                e += f" (holds {' + '.join(x.canonical)})"
            if e not in exprs:
                exprs.append(e)
        out[fw] = (" + " if t.combine == "sum" else ", ").join(exprs)
    return out


def describe_other(layer) -> dict:
    d = {"name": layer.name, "kind": layer.kind}
    d.update({key: _json(v) for key, v in layer_fields(layer).items() if key != "name"})
    if hasattr(layer, "units_out") and layer.kind in ("dense", "embedding", "conv1d"):
        d["units"] = layer.units_out
    d["tensors"] = [{"name": key, "shape": list(np.shape(a)), "dtype": str(np.asarray(a).dtype),
                     "nonfinite": _nonfinite(a), "size": int(np.size(a))} for key, a in layer.arrays().items()]
    d["parameters"] = sum(t["size"] for t in d["tensors"])
    d["nonfinite"] = sum(t["nonfinite"] for t in d["tensors"])
    return d


def describe(model: Model, path=None, fmt: str | None = None) -> dict:
    """The `--json` report: file, format, source, input, parameters, nonfinite, layers.  `fmt`: the format
    of the file at `path`, whose own tensor names are shown."""
    framework = source_framework(model, fmt)
    layers, k = [], 0
    own = (model.source.get("keras1_names") or {}) if fmt in (None, model.source.get("format")) else {}
    for layer in model.layers:
        if isinstance(layer, Recurrent):
            layers.append(describe_recurrent(layer, framework, k, own.get(layer.name)))
            k += 1
        else:
            layers.append(describe_other(layer))
    return _json({"file": None if path is None else str(path), "format": fmt or model.source.get("format"),
            "source": model.source, "name": model.name, "input": dict(vars(model.input)),
            "output_name": model.output_name,
            "parameters": sum(x["parameters"] for x in layers),
            "nonfinite": sum(x["nonfinite"] for x in layers), "layers": layers,
            **({"states": _states(model)} if model.has_state_io else {})})


def _states(model: Model) -> dict:
    from . import states
    return {"inputs": [p.to_dict() for p in model.state_inputs], "outputs": [p.to_dict() for p in model.state_outputs],
            "lines": states.describe(model)}
