"""Names in a picture come from a stranger's file: a layer named like markup, and a source path holding a
quote and angle brackets, reach the layout SVG/HTML (`inspect --plot`) and the report page (`--report-html`)
only escaped, never as an element or an attribute of their own."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

import rnnconvert
from rnnconvert.cli import cli

FIX = Path(__file__).resolve().parents[2] / "fixtures"
HOSTILE = "<script>alert(1)</script>' onload='x"


def _hostile_model(tmp_path) -> Path:
    model = rnnconvert.read(FIX / "tfkeras2" / "gru_reset_after_seq" / "model.h5")
    model.recurrent_layers[0].name = HOSTILE
    folder = tmp_path / "a'<b>"
    folder.mkdir()
    path = folder / "m.rnnc"
    rnnconvert.write(model, path)
    return path


def _escaped_only(text: str) -> None:
    assert "<script>alert" not in text and "onload='x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#x27; onload=&#x27;x" in text


def test_layout_plot_escapes_layer_names(tmp_path):
    src = _hostile_model(tmp_path)
    for suffix in (".svg", ".html"):
        out = tmp_path / f"layout{suffix}"
        r = CliRunner().invoke(cli, ["inspect", str(src), "--plot", str(out)])
        assert r.exit_code == 0, r.output
        _escaped_only(out.read_text())


def test_report_page_escapes_names_and_paths(tmp_path):
    src = _hostile_model(tmp_path)
    page = tmp_path / "page.html"
    r = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "m.onnx"), "--report-html", str(page)])
    assert r.exit_code == 0, r.output
    text = page.read_text()
    assert "<b>/m.rnnc" not in text and "a&#x27;&lt;b&gt;" in text          # the path, escaped
    assert "<script>alert" not in text
