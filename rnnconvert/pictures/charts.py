"""Two small charts as SVG: `line_chart` (errors along time steps, log scale, dashed bounds) and
`bar_chart` (a value per label, log scale, an optional bound tick per bar).  Each chart is an
`<svg class='chart'>` whose `data-series` says how many series it draws; each series is a
`<g class='series'>` (a bound is a `<g class='bound'>`, not counted)."""
from __future__ import annotations

import math

from .svg import FONT, SERIES_COLOURS, esc, line, rect, text

W, H, LEFT, RIGHT, TOP, BOTTOM = 560.0, 280.0, 64.0, 150.0, 30.0, 42.0


def _log_range(values) -> tuple[float, float]:
    pos = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not pos:
        return 1e-12, 1.0
    lo, hi = math.floor(math.log10(min(pos))), math.ceil(math.log10(max(pos)))
    return 10.0 ** lo, 10.0 ** max(hi, lo + 1)


def _frame(title, xlabel, ylabel, lo, hi, n_series, body, xticks, width=W, zeros=False) -> str:
    pw, ph = width - LEFT - RIGHT, H - TOP - BOTTOM
    els = [text(LEFT, 18, title, size=13, weight="bold"),
           text(width - RIGHT + 8, TOP + ph, "0 is drawn on the bottom line", size=9, fill="#666") if zeros else "",
           rect(LEFT, TOP, pw, ph, "white", "#999", 1),
           text(LEFT + pw / 2, H - 6, xlabel, size=11, anchor="middle"),
           text(14, TOP + ph / 2, ylabel, size=11, anchor="middle", rotate=-90)]
    for e in range(int(round(math.log10(lo))), int(round(math.log10(hi))) + 1):
        y = TOP + ph - ph * (e - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        els.append(line(LEFT - 4, y, LEFT + pw, y, "#e6e6e6", 1))
        els.append(text(LEFT - 6, y + 4, f"1e{e}", size=10, anchor="end"))
    for x, label in xticks:
        els.append(line(x, TOP + ph, x, TOP + ph + 4, "#666", 1))
        els.append(text(x, TOP + ph + 16, label, size=10, anchor="middle"))
    return (f"<svg class='chart' data-series='{n_series}' xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' "
            f"height='{H:.0f}' viewBox='0 0 {width:.0f} {H:.0f}' {FONT}><rect width='100%' height='100%' fill='white'/>"
            + "".join(els) + "".join(body) + "</svg>")


def line_chart(title: str, series: list[dict], xlabel: str = "time step", ylabel: str = "max |error|") -> str:
    """`series`: [{"name", "x": [..], "y": [..], "bound": [..] or None}]; y values None are gaps, zeros are
    drawn at the chart's floor."""
    values = [v for s in series for v in (s["y"] + (s.get("bound") or []))]
    lo, hi = _log_range(values)
    xmax = max([max(s["x"]) for s in series if s["x"]] + [1])
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    px = lambda x: LEFT + pw * x / xmax                      # noqa: E731
    py = lambda v: TOP + ph - ph * (math.log10(min(max(v, lo), hi)) - math.log10(lo)) / (  # noqa: E731
        math.log10(hi) - math.log10(lo))
    body = []
    for k, s in enumerate(series):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        pts = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(s["x"], s["y"]) if v is not None)
        dots = "".join(f"<circle cx='{px(x):.1f}' cy='{py(v):.1f}' r='2.5' fill='{colour}'/>"
                       for x, v in zip(s["x"], s["y"]) if v is not None) if len(s["x"]) <= 40 else ""
        body.append(f"<g class='series' data-name='{esc(s['name'])}'><title>{esc(s['name'])}</title>"
                    f"<polyline fill='none' stroke='{colour}' stroke-width='1.6' points='{pts}'/>{dots}</g>")
        if s.get("bound"):
            bpts = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(s["x"], s["bound"]) if v is not None)
            ticks = "".join(f"<line x1='{px(x) - 6:.1f}' x2='{px(x) + 6:.1f}' y1='{py(v):.1f}' y2='{py(v):.1f}' "
                            f"stroke='{colour}' stroke-width='1.5'/>"
                            for x, v in zip(s["x"], s["bound"]) if v is not None) if len(s["x"]) <= 2 else ""
            body.append(f"<g class='bound' data-name='{esc(s['name'])}'><polyline fill='none' stroke='{colour}' "
                        f"stroke-width='1' stroke-dasharray='5,3' points='{bpts}'/>{ticks}</g>")
        y = TOP + 14 * k + 8
        body.append(line(W - RIGHT + 8, y, W - RIGHT + 26, y, colour, 2) +
                    text(W - RIGHT + 30, y + 4, _short(s["name"], 22), size=10))
    if any(s.get("bound") for s in series):
        y = TOP + 14 * len(series) + 8
        body.append(line(W - RIGHT + 8, y, W - RIGHT + 26, y, "#444", 1, "5,3") +
                    text(W - RIGHT + 30, y + 4, "allowed bound", size=10))
    ticks = [(px(t), str(t)) for t in _nice_ticks(xmax)]
    return _frame(title, xlabel, ylabel, lo, hi, len(series), body, ticks, zeros=0 in values)


def bar_chart(title: str, labels: list[str], values: list, bounds: list | None = None,
              xlabel: str = "", ylabel: str = "max |error|") -> str:
    """One bar per label on a log scale (zeros at the floor, None as a hatched 'not finite' bar); a bound
    per bar drawn as a dark tick."""
    lo, hi = _log_range(list(values) + list(bounds or []))
    n = max(len(labels), 1)
    width = max(W, LEFT + RIGHT + 22 * n)
    pw, ph = width - LEFT - RIGHT, H - TOP - BOTTOM
    py = lambda v: TOP + ph - ph * (math.log10(min(max(v, lo), hi)) - math.log10(lo)) / (  # noqa: E731
        math.log10(hi) - math.log10(lo))
    step = pw / n
    bars, ticks = [], []
    for k, (label, v) in enumerate(zip(labels, values)):
        x = LEFT + step * k + step * 0.15
        top = TOP if v is None else py(v)
        fill = "#cf222e" if v is None else SERIES_COLOURS[0]
        bars.append(rect(x, top, step * 0.7, TOP + ph - top, fill, extra=f" data-label='{esc(label)}'"))
        if bounds and bounds[k] is not None:
            bars.append(line(x - 2, py(bounds[k]), x + step * 0.7 + 2, py(bounds[k]), "#111", 2))
        if n <= 24:
            ticks.append((x + step * 0.35, _short(label, 12)))
    body = ["<g class='series' data-name='" + esc(ylabel) + "'>" + "".join(bars) + "</g>"]
    if bounds:
        body.append(line(width - RIGHT + 8, TOP + 8, width - RIGHT + 26, TOP + 8, "#111", 2)
                    + text(width - RIGHT + 30, TOP + 12, "allowed bound", size=10))
    return _frame(title, xlabel, ylabel, lo, hi, 1, body, ticks, width, zeros=0 in list(values))


def _short(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


def _nice_ticks(xmax: float) -> list[int]:
    if xmax <= 0:
        return [0]
    step = 10 ** math.floor(math.log10(xmax))
    for m in (1, 2, 5, 10):
        if xmax / (step * m) <= 6:
            step *= m
            break
    return list(range(0, int(xmax) + 1, max(int(step), 1)))
