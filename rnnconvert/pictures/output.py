"""A picture written by its suffix: `.svg` as is, `.html` as a self-contained page around it, `.png`
rasterised by cairosvg (the optional extra `rnnconvert[plot]`; without it, one line and exit 2)."""
from __future__ import annotations

import os

from ..errors import UnsupportedError
from ..files.atomic import write_files
from .page import html
from .svg import esc

SUFFIXES = (".svg", ".html", ".png")


def check_suffix(path, option: str = "--plot") -> str:
    """The suffix of `path` if a picture can be written there, else UnsupportedError (before any work)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in SUFFIXES:
        raise UnsupportedError(f"{option} writes {', '.join(SUFFIXES)} files, not '{suffix or 'no suffix'}'; "
                               "name the file with one of those suffixes", path=os.fspath(path))
    if suffix == ".png":
        _cairosvg(path)
    return suffix


def _cairosvg(path):
    try:
        import cairosvg
    except (ImportError, OSError):      # OSError: the package is there but the cairo library is not
        raise UnsupportedError("PNG output needs the optional package cairosvg and the cairo library: "
                               "pip install 'rnnconvert[plot]', or write .svg or .html instead",
                               path=os.fspath(path)) from None
    return cairosvg


def write_picture(svg: str, path, title: str) -> None:
    """`svg` written at `path` as its suffix says, atomically."""
    suffix = check_suffix(path)
    if suffix == ".svg":
        write_files([(path, "wb", lambda f: f.write(svg.encode("utf-8")))], replace=True)
    elif suffix == ".html":
        page = html(title, f"<h1>{esc(title)}</h1>{svg}").encode("utf-8")
        write_files([(path, "wb", lambda f: f.write(page))], replace=True)
    else:
        data = _cairosvg(path).svg2png(bytestring=svg.encode("utf-8"))
        write_files([(path, "wb", lambda f: f.write(data))], replace=True)


def write_report_page(report: dict, path) -> None:
    """The report page (`report_page`) of a convert or verify report, atomically."""
    from .report_page import render
    page = render(report).encode("utf-8")
    write_files([(path, "wb", lambda f: f.write(page))], replace=True)


def plan_pages_folder(path) -> str:
    """Where `batch --report-html PATH` puts each conversion's page: PATH's stem + '_pages', beside it."""
    return os.path.splitext(os.fspath(path))[0] + "_pages"


def write_plan_pages(plan_report: dict, path, claim=None) -> list[str]:
    """The plan page at `path` and one page per conversion in `plan_pages_folder(path)`; `claim(p)` is
    called on every page path first (the run's output policy).  Returns the pages' paths."""
    from .plan_page import render
    folder = plan_pages_folder(path)
    page, pages = render(plan_report, os.path.basename(folder))
    items = [(os.path.join(folder, name), text) for name, text in pages]
    for p, _ in items:
        if claim:
            claim(p)
    if items:
        os.makedirs(folder, exist_ok=True)
    data = [(p, "wb", (lambda t: lambda f: f.write(t.encode("utf-8")))(t)) for p, t in items]
    main = page.encode("utf-8")
    write_files(data + [(path, "wb", lambda f: f.write(main))], replace=True)
    return [p for p, _ in items]
