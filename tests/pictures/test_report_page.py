"""The report page without a browser (fast): it holds what the JSON report holds (verdict, both files and
their SHA-256, assumptions, the rule, a row per check), needs no network, and --report-html is an output
like --report (never an input of the run)."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from click.testing import CliRunner

from rnnconvert.cli import cli

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def test_page_holds_the_report(tmp_path):
    src = FIX / "torch" / "rnn_relu_linear" / "model.safetensors"
    r = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "a.onnx"), "--report", str(tmp_path / "a.json"),
                                 "--report-html", str(tmp_path / "a.html")])      # a state dict: read under assumptions
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "a.json").read_text())
    page = (tmp_path / "a.html").read_text()
    for path in (src, tmp_path / "a.onnx"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() in page
    assert f"id='verdict'>EQUIVALENT (under {len(report['assumptions'])} assumptions: " in page
    assert len(report["assumptions"]) >= 2
    for a in report["assumptions"]:
        assert a["assumed"].replace("'", "&#x27;") in page
    assert report["tolerance_policy"]["rule"].split(";")[0].replace("<", "&lt;").replace(">", "&gt;") in page
    assert page.count("<tr class='check'") == len(report["checks"])
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+", page)) - {"http://www.w3.org"}
    assert urls == set() and "<link" not in page and " src=" not in page


def test_report_html_is_never_an_input(tmp_path):
    src = FIX / "tfkeras2" / "gru_reset_after_seq" / "model.h5"
    before = src.read_bytes()
    r = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "a.onnx"), "--report-html", str(src)])
    assert r.exit_code == 2
    assert f"{src}: is the source file; rnnconvert never writes over an input of the run, choose another path" in r.output
    assert src.read_bytes() == before and not (tmp_path / "a.onnx").exists()


def test_a_refused_conversion_still_gets_its_page(tmp_path):
    """PyTorch has no reset-before GRU: convert refuses (exit 2) and the page says so, with the refusal."""
    src = FIX / "tfkeras2" / "gru_reset_before_last" / "model.h5"
    r = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "a.pt"), "--report", str(tmp_path / "a.json"),
                                 "--report-html", str(tmp_path / "a.html")])
    assert r.exit_code == 2, r.output
    report = json.loads((tmp_path / "a.json").read_text())
    page = (tmp_path / "a.html").read_text()
    assert report["verified"] is False and report["conversion"]["refused"]
    assert "id='verdict'>NOT VERIFIED (refused)</div>" in page
    assert report["conversion"]["refused"][0].replace("'", "&#x27;") in page
    assert "<tr class='check'" not in page


def test_a_model_returning_its_last_step_has_no_step_curves_and_says_so(tmp_path):
    src = FIX / "tfkeras2" / "lstm_last_softmax" / "model.h5"
    r = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "a.onnx"), "--report", str(tmp_path / "a.json"),
                                 "--report-html", str(tmp_path / "a.html")])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "a.json").read_text())
    assert all(c["per_step"] is None and len(c["channels"]) == 3 for c in report["checks"])     # Dense(3) output
    page = (tmp_path / "a.html").read_text()
    assert "id='no-steps'>no error per time step: the outputs checked have no time axis" in page
    assert "data-kind='input'" not in page and "data-kind='channels'" in page
