"""The frame of every page: one self-contained HTML document (inline CSS, inline SVG, a few lines of inline
JS), nothing fetched from the network.  The script marks the body `data-rendered="ok"` once it ran and
records any error in `data-errors` (a browser test reads both)."""
from __future__ import annotations

from .svg import esc

CSS = """
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}
.verdict{font-size:20px;padding:10px 14px;border-radius:6px;display:inline-block}
.verdict.pass{background:#dafbe1}.verdict.fail{background:#ffebe9}
code,.mono{font-family:'DejaVu Sans Mono',monospace;font-size:12px;word-break:break-all}
.charts{display:flex;flex-wrap:wrap;gap:14px}.note{color:#555;font-size:13px}
figure{margin:0}figcaption{font-size:12px;color:#555}
"""

SCRIPT = """
(function(){var b=document.body,errs=[];
window.addEventListener('error',function(e){errs.push(String(e.message));b.setAttribute('data-errors',errs.join(' | '));});
var n=document.querySelectorAll('svg .series').length;b.setAttribute('data-series',String(n));
document.querySelectorAll('tr[data-href]').forEach(function(r){r.style.cursor='pointer';
r.addEventListener('click',function(){window.location.href=r.getAttribute('data-href');});});
b.setAttribute('data-rendered','ok');})();
"""


def html(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body data-errors=''>{body}<script>{SCRIPT}</script></body></html>\n")


def table(header: list[str], rows: list[list[str]], row_attrs: list[str] | None = None) -> str:
    """`rows` hold HTML already escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    attrs = row_attrs or [""] * len(rows)
    body = "".join(f"<tr{a}>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r, a in zip(rows, attrs))
    return f"<table><tr>{head}</tr>{body}</table>"
