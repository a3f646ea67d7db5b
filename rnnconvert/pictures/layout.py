"""`inspect --plot`: every recurrent layer's tensors drawn to scale as matrices cut into their gate blocks.

For each layer: the file's own tensors (names from `model.describe`, gate blocks labelled with the
file's index ranges, MATLAB's 1-based), coloured by gate (`svg.GATE_COLOURS`, the same gate the same
colour in every framework), each block holding a heat map of |weight| (max-pooled to at most HEAT_CELLS
a side, scaled to the tensor's largest |weight|: a dead gate is white, a transposition shows as stripes);
below, the same layer as every other framework stores it, without heat maps.  One scale per layer
(at most CELL pixels a unit, the longest axis at most LONGEST pixels), thin axes drawn at least MIN_PX wide.
"""
from __future__ import annotations

import numpy as np

from ..model import Recurrent
from ..model.describe import canonical_letters, describe_recurrent, layout_for, source_tensors
from ..model.layouts import FRAMEWORKS
from .svg import GATE_COLOURS, document, esc, hex_rgb, line, png_uri, rect, text

CELL, LONGEST, MIN_PX, HEAT_CELLS = 34.0, 520.0, 9.0, 64
LABEL_GUTTER, GAP, WRAP, SOURCE_WRAP = 92.0, 26.0, 1100.0, 1800.0
NAMES = {"canonical": "canonical", "keras": "Keras", "onnx": "ONNX", "torch": "PyTorch", "matlab": "MATLAB"}


def layout_svg(layers: list[tuple[Recurrent, str, int, list | None]], title: str = "") -> str:
    """The picture of `layers`: (layer, the file's framework, its index k in a stacked PyTorch module,
    a Keras 1 file's own array names or None)."""
    body, y, width = [], 16.0, 320.0
    if title:
        body.append(text(12, 22, title, size=15, weight="bold"))
        y = 36.0
    for layer, framework, k, names in layers:
        els, w, h = _layer(layer, framework, k, names)
        body.append(f"<g class='layer' data-layer='{esc(layer.name)}' transform='translate(12,{y:.1f})'>"
                    + "".join(els) + "</g>")
        y += h + 28
        width = max(width, w + 24)
    if not layers:
        body.append(text(12, y + 14, "no recurrent layer in this file", size=13))
        y += 30
    return document(width, y, body, title or "weight layout")


def _layer(layer: Recurrent, framework: str, k: int, names) -> tuple[list[str], float, float]:
    desc = describe_recurrent(layer, framework, k, names)
    framework = desc["framework"]                 # canonical when the file's framework cannot hold it
    dims = f"{layer.cell.upper()}, hidden {layer.hidden}, input {layer.input_size}, {layer.direction}"
    els = [text(0, 14, f"{desc['name']}: {dims}", size=14, weight="bold"),
           text(0, 32, f"as this {NAMES[framework]} file stores it (gate order {desc['gate_order']}); "
                       f"heat: |weight| per block, white = 0, full colour = the tensor's largest |weight|",
                size=11, fill="#555")]
    scale = _scale(layer, [framework])
    g, w, h = _framework(layer, framework, desc, k, names, scale, heat=True, wrap=SOURCE_WRAP)
    els.append(f"<g class='framework source' data-framework='{framework}' transform='translate(0,44)'>{g}</g>")
    y, width = 44 + h + 22, w
    els.append(text(0, y, "the same blocks as the other frameworks store them", size=12, weight="bold"))
    y += 10
    others = [fw for fw in FRAMEWORKS if fw not in (framework, "canonical") and layout_for(layer, fw)[0]]
    cannot = [f"{NAMES[fw]}: {layout_for(layer, fw)[1]}" for fw in FRAMEWORKS
              if fw not in (framework, "canonical") and not layout_for(layer, fw)[0]]
    small = _scale(layer, others or [framework]) * 0.6
    x, row_h, wrap = 0.0, 0.0, max(width, WRAP)
    for fw in others:
        d = describe_recurrent(layer, fw, k)
        g, w, h = _framework(layer, fw, d, k, None, small, heat=False)
        if x and x + w > wrap:              # the next framework on a new row
            y, x, row_h = y + row_h, 0.0, 0.0
        head = text(0, 12, f"{NAMES[fw]} (gate order {d['gate_order']})", size=12, weight="bold")
        els.append(f"<g class='framework other' data-framework='{fw}' transform='translate({x:.1f},{y + 8:.1f})'>"
                   f"{head}<g transform='translate(0,20)'>{g}</g></g>")
        width = max(width, x + w)
        x += w + GAP
        row_h = max(row_h, h + 28)
    y += row_h + 8
    for note in cannot:
        els.append(text(0, y + 12, note, size=11, fill="#555"))
        y += 16
    els.append(_legend(layer, y + 8))
    return els, width, y + 30


def _legend(layer: Recurrent, y: float) -> str:
    from ..model.gates import CANONICAL, GATE_NAMES
    parts, x = [], 0.0
    for c in CANONICAL[layer.cell]:
        label = f"{c}: {GATE_NAMES[layer.cell][c]}"
        parts.append(rect(x, y, 12, 12, GATE_COLOURS[c], "#333", 0.5) + text(x + 16, y + 10, label, size=11))
        x += 26 + 6.5 * len(label)
    return "<g class='legend'>" + "".join(parts) + "</g>"


def _panels(desc_tensor: dict, array: np.ndarray, columns: bool):
    """[(label, 2-D array, gate blocks, gate axis of the 2-D array)]: a tensor whose gate entries fix its
    first axis (ONNX's direction, Keras GRU's Wb/Rb row) is one panel per index of that axis; a vector is
    drawn as a row where the framework's gate blocks are columns (Keras), else as a column."""
    gates, axis, name = desc_tensor.get("gates") or [], desc_tensor.get("gate_axis"), desc_tensor["name"]
    a = np.asarray(array)
    split = a.ndim >= 2 and gates and isinstance(gates[0]["index"][0], int)
    parts = ([(f"{name}[{i}]", a[i], [g for g in gates if g["index"][0] == i], axis - 1) for i in range(a.shape[0])]
             if split else [(name, a, gates, axis)])
    out = []
    for label, p, gl, ax in parts:
        if p.ndim == 1:
            p, ax = (p[None, :], 1) if columns else (p[:, None], 0)
        elif p.ndim > 2:
            p = p.reshape(p.shape[0], -1)
        out.append((label, p, gl, ax))
    return out


def _scale(layer: Recurrent, frameworks: list[str]) -> float:
    longest = 1
    for fw in frameworks:
        for st in source_tensors(layer, fw):
            longest = max(longest, *[n for n in np.shape(st["array"])[-2:]])
    return min(CELL, LONGEST / longest)


def _framework(layer, framework, desc, k, names, scale, heat, wrap=WRAP):
    """One framework's tensors side by side: (svg text, width, height)."""
    columns = FRAMEWORKS[framework]["index"] == "python" and any(t.get("transposed") for t in desc["tensors"])
    sources = source_tensors(layer, framework, k)
    arrays = {st["name"]: st["array"] for st in sources}
    canon = canonical_letters(framework, layer.cell)
    matlab = FRAMEWORKS[framework]["index"] == "matlab"
    els, x, y, row_h, width = [], 0.0, 0.0, 0.0, 0.0
    for t in desc["tensors"]:
        array = arrays.get(t["name"])
        if array is None and t.get("gate"):     # a Keras 1 file's per-gate array: its block of the whole tensor
            array = _gate_block(layer, framework, sources, t)
        shown = heat and array is not None
        for label, p, gl, ax in _panels(t, np.zeros(t["shape"]) if array is None else array, columns):
            g, w, h = _panel(label, t, p, gl, ax, canon, scale, shown, matlab, k)
            if x and x + w > wrap:              # the next panel on a new row (many per-gate arrays)
                x, y, row_h = 0.0, y + row_h + 12, 0.0
            els.append(f"<g class='panel' data-name='{esc(label)}' transform='translate({x:.1f},{y:.1f})'>{g}</g>")
            width = max(width, x + w)
            x += w + GAP
            row_h = max(row_h, h)
    return "".join(els), width, y + row_h


def _gate_block(layer, framework, sources, t):
    """The array of a per-gate tensor entry (describe's `_per_gate`): gate `t["gate"]`'s block of the
    whole tensor it was cut from, or None."""
    from ..model.layouts import canonical_text, gate_order
    for st in sources:
        whole = st["tensor"]
        if (t["canonical"].startswith(canonical_text(whole) + ", the ") and whole.gate_axis is not None
                and layer.direction_names()[st["directions"][0]] == t["directions"][0]):
            j, H = gate_order(framework, layer.cell).index(t["gate"]), layer.hidden
            return np.take(st["array"], range(j * H, (j + 1) * H), axis=whole.gate_axis)
    return None


def _panel(label, t, p, gates, ax, canon, scale, heat, matlab, k):
    rows, cols = p.shape
    w, h = max(cols * scale, MIN_PX), max(rows * scale, MIN_PX)
    top = 34.0
    whole = list(t["shape"])
    sub = f"{whole} {t['canonical']}" if label == t["name"] else f"of {t['name']} {whole}: {t['canonical']}"
    els = [text(0, 12, label, size=12, weight="bold", cls="tensor-name"), text(0, 26, sub, size=10, fill="#555")]
    top_of = lambda i: top + (h * i / rows)     # noqa: E731 - pixel of row i
    left_of = lambda j: w * j / cols            # noqa: E731 - pixel of column j
    els.append(rect(0, top, w, h, "#f4f4f4", "#333", 1))
    vmax = float(np.nanmax(np.abs(p))) if p.size and np.isfinite(p).any() else 0.0
    if t.get("gate") and not gates:            # a Keras 1 per-gate array: one block
        gates = [{"gate": t["gate"], "start": 0, "stop": rows if ax == 0 else cols, "direction": t["directions"][0],
                  "part": t["canonical"], "slice": label}]
    last_dir = None
    for g in gates:
        s, e = g["start"], g["stop"]
        if ax == 0:
            bx, by, bw, bh, block = 0.0, top_of(s), w, top_of(e) - top_of(s), p[s:e, :]
        else:
            bx, by, bw, bh, block = left_of(s), top, left_of(e) - left_of(s), h, p[:, s:e]
        c = canon.get(g["gate"], g["gate"])
        colour = GATE_COLOURS.get(c, "#999")
        rng = f"{s + 1}:{e}" if matlab else f"{s}:{e}"
        part = g.get("part", "")
        b = [f"<title>{esc(g['slice'])}: {esc(g.get('meaning', ''))} ({esc(g.get('direction', ''))})</title>"]
        if heat:
            b.append(rect(bx, by, bw, bh, "white"))
            b.append(_heat(block, vmax, colour, bx, by, bw, bh))
            b.append(rect(bx, by, bw, bh, "none", colour, 2.2))
            if block.size <= 16 and min(bw / max(block.shape[1], 1), bh / max(block.shape[0], 1)) >= 30:
                b += _values(block, bx, by, bw, bh)
        else:
            b.append(rect(bx, by, bw, bh, colour, "#fff", 0.8, opacity=0.75))
        b.append(_block_label(g["gate"], rng, part, t, bx, by, bw, bh, ax, w, heat))
        els.append(f"<g class='block' data-gate='{esc(g['gate'])}' data-canonical='{esc(c)}' "
                   f"data-range='{esc(rng)}' data-direction='{esc(g.get('direction', ''))}'>" + "".join(b) + "</g>")
        d = g.get("direction")
        if last_dir is not None and d != last_dir:          # direction halves inside one tensor (MATLAB BiLSTM)
            if ax == 0:
                els.append(line(-4, by, w + 70, by, "#000", 2.5, "6,3"))
                els.append(text(w + 6, by - 4, f"{d} below", size=10, weight="bold", cls="direction"))
            else:
                els.append(line(bx, top - 6, bx, top + h + 6, "#000", 2.5, "6,3"))
        last_dir = d
    right = w + (LABEL_GUTTER if ax == 0 and gates else 0)
    bottom = top + h + (34 if ax != 0 and gates else 6)
    return "".join(els), max(right, 7.0 * len(label), 5.6 * len(sub)), bottom


def _block_label(letter, rng, part, t, bx, by, bw, bh, ax, w, heat):
    show_part = " + " not in part and "," in t["canonical"] or "concat" in t["canonical"] or "stack" in t["canonical"]
    tag = f" ({part})" if show_part and part else ""
    if ax == 0:                   # gate blocks along rows: label in the gutter to the right
        return (text(w + 6, by + bh / 2 + 4, f"{letter} {rng}{tag}", size=11, cls="block-label")
                if bh >= 9 else "")
    size = 11 if bw >= 34 else 9
    if bw < 5.5 * len(rng + tag):           # too narrow for the part: the panel's subtitle names it
        tag = ""
    if bw < 14:
        return text(bx + bw / 2, by + bh + 10, letter, size=9, anchor="middle", cls="block-label")
    return (text(bx + bw / 2, by + bh + 13, f"{letter}", size=size, anchor="middle", weight="bold", cls="block-label")
            + text(bx + bw / 2, by + bh + 25, rng + tag, size=9, anchor="middle", fill="#444"))


def _heat(block: np.ndarray, vmax: float, colour: str, x, y, w, h) -> str:
    """|block| max-pooled to at most HEAT_CELLS (and at most one cell per 2 pixels) a side, as a PNG."""
    a = np.abs(np.nan_to_num(np.asarray(block, dtype=np.float64), nan=0.0, posinf=vmax, neginf=vmax))
    rows = max(1, min(a.shape[0], HEAT_CELLS, int(h / 2) or 1))
    cols = max(1, min(a.shape[1], HEAT_CELLS, int(w / 2) or 1))
    pooled = _pool(a, rows, cols)
    v = np.clip(pooled / vmax, 0, 1) if vmax > 0 else np.zeros_like(pooled)
    up = int(max(1, min(w / cols, h / rows, 12)))     # cells as pixel squares: crisp where smoothing scales
    v = np.repeat(np.repeat(v, up, axis=0), up, axis=1)
    rgb = 255 - v[..., None] * (255 - hex_rgb(colour))
    return (f"<image class='heat' x='{x:.2f}' y='{y:.2f}' width='{w:.2f}' height='{h:.2f}' "
            f"preserveAspectRatio='none' style='image-rendering:pixelated' href='{png_uri(rgb.round())}'/>")


def _pool(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Max over the cells of a rows x cols grid laid on `a`."""
    r_edges = np.linspace(0, a.shape[0], rows + 1).astype(int)
    c_edges = np.linspace(0, a.shape[1], cols + 1).astype(int)
    by_rows = np.maximum.reduceat(a, r_edges[:-1], axis=0)
    return np.maximum.reduceat(by_rows, c_edges[:-1], axis=1)


def _values(block, bx, by, bw, bh) -> list[str]:
    r, c = block.shape
    out = []
    for i in range(r):
        for j in range(c):
            out.append(text(bx + bw * (j + 0.5) / c, by + bh * (i + 0.5) / r + 3, f"{block[i, j]:.2f}", size=9,
                            anchor="middle", fill="#111", cls="value"))
    return out
