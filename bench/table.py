"""The one table `python -m bench` prints: a row per operation, rnnconvert beside its peer."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass
class Row:
    operation: str
    ours: float | None            # seconds, or MB when unit == "MB"
    peer: float | None            # None: no peer measured (e.g. tf2onnx not installed)
    peer_name: str
    target: str = ""              # e.g. "<= 2x", ">= 10x faster", "< 0.3 s"
    met: bool | None = None
    unit: str = "s"
    note: str = ""                # e.g. peak memory

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.peer:
            return None
        return self.ours / self.peer


def judge(row: Row, max_ratio: float | None = None, min_speedup: float | None = None,
          below: float | None = None) -> Row:
    """Fill `target` and `met` from one of: a ratio bound, a speed-up bound, an absolute bound."""
    if max_ratio is not None:
        row.target = f"<= {max_ratio:g}x"
        row.met = None if row.ratio is None else row.ratio <= max_ratio
    elif min_speedup is not None:
        row.target = f">= {min_speedup:g}x faster"
        row.met = None if row.ratio is None else row.ratio <= 1 / min_speedup
    elif below is not None:
        row.target = f"< {below:g} {row.unit}"
        row.met = None if row.ours is None else row.ours < below
    return row


def best_of(fns: dict, repeat: int, clock=time.perf_counter) -> dict:
    """Best wall time (or `clock`: time.process_time for CPU time) of each function, run interleaved
    (a, b, a, b, ...) so that load hits both."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t = clock()
            fn()
            best[k] = min(best[k], clock() - t)
    return best


def _fmt(v, unit):
    if v is None:
        return "-"
    return f"{v:.0f} MB" if unit == "MB" else f"{v:.3f} s"


def render(rows: list[Row], header: list[str]) -> str:
    cells = [["operation", "rnnconvert", "peer", "ratio", "target", "met?", "peer is / notes"]]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        peer = _fmt(r.peer, r.unit) if r.peer is not None else ("not installed" if "not installed" in r.note
                                                                 else "-")
        cells.append([r.operation, _fmt(r.ours, r.unit), peer, ratio, r.target, met,
                      "; ".join(x for x in (r.peer_name, r.note) if x)])
    widths = [max(len(c[k]) for c in cells) for k in range(len(cells[0]) - 1)]
    lines = list(header)
    for k, c in enumerate(cells):
        lines.append("  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i])
                               for i in range(len(widths))) + "  " + c[-1])
        if k == 0:
            lines.append("-" * (sum(widths) + 2 * len(widths) + 16))
    return "\n".join(lines)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"
