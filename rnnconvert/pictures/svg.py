"""SVG as text: escaped attributes and text, a few elements, the gate colours, and a PNG encoder (zlib,
stdlib) for heat maps embedded as data URIs, which keeps a 1024-unit layer's picture small."""
from __future__ import annotations

import base64
import struct
import zlib
from html import escape

import numpy as np

# One colour per canonical gate (the letter as gates.CANONICAL names it), the same in every framework.
GATE_COLOURS = {"i": "#4c78a8", "f": "#54a24b", "g": "#e45756", "o": "#f58518",
                "r": "#b279a2", "z": "#72b7b2", "n": "#e45756", "h": "#9d755d"}
SERIES_COLOURS = ("#4c78a8", "#e45756", "#54a24b", "#f58518", "#b279a2", "#72b7b2", "#9d755d", "#eeca3b",
                  "#ff9da6", "#79706e")
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


def esc(text) -> str:
    return escape(str(text), quote=True)


def text(x, y, s, size=11, anchor="start", weight="normal", fill="#222", cls="", rotate=None, extra="") -> str:
    rot = f" transform='rotate({rotate:g} {x:.1f} {y:.1f})'" if rotate is not None else ""
    c = f" class='{cls}'" if cls else ""
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size:g}' text-anchor='{anchor}' font-weight='{weight}' "
            f"fill='{fill}'{c}{rot}{extra}>{esc(s)}</text>")


def rect(x, y, w, h, fill="none", stroke="none", width=1.0, opacity=None, extra="") -> str:
    op = f" fill-opacity='{opacity:g}'" if opacity is not None else ""
    return (f"<rect x='{x:.2f}' y='{y:.2f}' width='{max(w, 0):.2f}' height='{max(h, 0):.2f}' fill='{fill}'{op} "
            f"stroke='{stroke}' stroke-width='{width:g}'{extra}/>")


def line(x1, y1, x2, y2, stroke="#444", width=1.0, dash=None, extra="") -> str:
    d = f" stroke-dasharray='{dash}'" if dash else ""
    return (f"<line x1='{x1:.2f}' y1='{y1:.2f}' x2='{x2:.2f}' y2='{y2:.2f}' stroke='{stroke}' "
            f"stroke-width='{width:g}'{d}{extra}/>")


def document(width, height, body: list[str], title: str = "") -> str:
    t = f"<title>{esc(title)}</title>" if title else ""
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
            f"viewBox='0 0 {width:.0f} {height:.0f}' {FONT}>{t}"
            f"<rect width='100%' height='100%' fill='white'/>" + "".join(body) + "</svg>\n")


def png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB image [rows, cols, 3] as PNG bytes."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def png_uri(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png(rgb)).decode("ascii")


def hex_rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[k:k + 2], 16) for k in (1, 3, 5)], dtype=np.float64)
