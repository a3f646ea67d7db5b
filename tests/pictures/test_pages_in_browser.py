"""The report pages and the layout page opened in headless Chromium: they render (the page's own script ran,
no console error), their charts hold the series the JSON report says they must, and a screenshot is saved
(tests/pictures/browser.py).  Pages: a passing conversion, a failing one (an ONNX file with two gate blocks
swapped), a long-sequence one (4001 steps, downsampled), a batch plan, and inspect --plot's .html."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from browser import Elements, load
from rnnconvert.cli import cli

pytestmark = pytest.mark.slow            # a browser start per page: .ci/run's slow tier runs them
FIX = Path(__file__).resolve().parents[2] / "fixtures"
GRU = FIX / "tfkeras2" / "gru_reset_after_seq" / "model.h5"


def run(*args, code=0):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == code, r.output
    return r


def charts(dom) -> dict:
    """{(figure kind, label): number of series its chart says it draws}"""
    out, figure = {}, None
    for tag, a in Elements(dom).found:
        if tag == "figure":
            figure = (a.get("data-kind"), a.get("data-label"))
        elif tag == "svg" and "chart" in (a.get("class") or "") and figure:
            out[figure] = int(a["data-series"])
    return out


def expected_series(report) -> dict:
    """Per input: the checks of that input that carry an error curve (one series each)."""
    out = {}
    for i in report["inputs"]:
        n = sum(1 for c in report["checks"] if c.get("per_step") and (
            c["input"] == i["label"] or c["input"].startswith(i["label"] + " ")))
        if n:
            out[("input", i["label"])] = n
    return out


def rendered(dom, console):
    body = Elements(dom).all("body")[0]
    assert body.get("data-rendered") == "ok" and body.get("data-errors") == ""
    assert console == []


def test_a_console_error_is_caught(tmp_path):
    """The check can fail: a page whose script throws."""
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><script>throw new Error('boom')</script></body></html>")
    dom, console = load(page, "console_error_check", (400, 300))
    assert any("boom" in line for line in console)


def test_passing_and_failing_conversion_pages(tmp_path):
    run("convert", GRU, tmp_path / "a.onnx", "--report", tmp_path / "a.json", "--report-html", tmp_path / "a.html")
    report = json.loads((tmp_path / "a.json").read_text())
    dom, console = load(tmp_path / "a.html", "report_passing")
    rendered(dom, console)
    got = charts(dom)
    assert {k: v for k, v in got.items() if k[0] == "input"} == expected_series(report)
    assert got[("noise", "")] == 1 and got[("check", "")] == 1 and ("localization", "") not in got
    assert ">EQUIVALENT<" in dom and len(Elements(dom).all("tr", class_="check")) == len(report["checks"])

    # the failing one: the written ONNX file with its z and r blocks of W swapped
    m = onnx.load(tmp_path / "a.onnx")
    w = next(i for i in m.graph.initializer if numpy_helper.to_array(i).ndim == 3)
    a = numpy_helper.to_array(w)
    H = a.shape[1] // 3
    b = np.concatenate([a[:, H:2 * H], a[:, :H], a[:, 2 * H:]], axis=1)
    w.CopyFrom(numpy_helper.from_array(b, w.name))
    onnx.save(m, tmp_path / "swapped.onnx")
    run("verify", GRU, tmp_path / "swapped.onnx", "--report", tmp_path / "f.json", "--report-html",
        tmp_path / "f.html", code=1)
    report = json.loads((tmp_path / "f.json").read_text())
    dom, console = load(tmp_path / "f.html", "report_failing")
    rendered(dom, console)
    got = charts(dom)
    assert got[("localization", "")] == 1 and report["localization"]["layer"] == "gru"
    assert {k: v for k, v in got.items() if k[0] == "input"} == expected_series(report)
    assert ">NOT EQUIVALENT<" in dom and "first difference at layer &#x27;gru&#x27;" in dom or "first difference at layer 'gru'" in dom
    assert len(Elements(dom).all("tr", class_="check", data_passed="false")) == len(report["checks"])


def test_long_sequence_page_is_downsampled(tmp_path):
    x = np.random.default_rng(3).normal(size=(2, 4001, 4)).astype(np.float32)
    x[1] *= 6
    np.save(tmp_path / "long.npy", x)
    run("convert", GRU, tmp_path / "b.onnx", "--inputs", tmp_path / "long.npy", "--report", tmp_path / "b.json",
        "--report-html", tmp_path / "b.html")
    report = json.loads((tmp_path / "b.json").read_text())
    long_checks = [c for c in report["checks"] if c["input"].startswith("user inputs") and c.get("per_step")]
    assert long_checks and all(len(c["per_step"]["steps"]) <= 200 and c["per_step"]["window"] == 21
                               for c in long_checks)
    dom, console = load(tmp_path / "b.html", "report_long_sequence")
    rendered(dom, console)
    assert {k: v for k, v in charts(dom).items() if k[0] == "input"} == expected_series(report)


def test_batch_plan_page_links_each_conversion(tmp_path):
    shutil.copy(GRU, tmp_path / "gru.h5")
    (tmp_path / "plan.yaml").write_text("jobs:\n  - src: gru.h5\n    dst: [out/gru.onnx, out/gru.rnnc]\n"
                                        "  - src: gru.h5\n    dst: out/x.onnx\n    layer: nosuch\n")
    run("batch", tmp_path / "plan.yaml", "--jobs", "1", "--report", tmp_path / "p.json", "--report-html",
        tmp_path / "p.html", code=2)
    plan = json.loads((tmp_path / "p.json").read_text())
    dom, console = load(tmp_path / "p.html", "report_batch_plan", (1100, 500))
    rendered(dom, console)
    rows = Elements(dom).all("tr", class_="job")
    assert [r["data-status"] for r in rows] == [r["status"] for r in plan["results"]] == ["ok", "ok", "error"]
    links = [a["href"] for a in Elements(dom).all("a")]
    assert len(links) == 2 and all((tmp_path / h).is_file() for h in links)
    dom, console = load(tmp_path / links[0], "report_batch_job")
    rendered(dom, console)
    assert {k: v for k, v in charts(dom).items() if k[0] == "input"} == expected_series(plan["results"][0]["report"])


def test_layout_html_page(tmp_path):
    run("inspect", GRU, "--plot", tmp_path / "l.html")
    dom, console = load(tmp_path / "l.html", "layout_tfkeras_gru", (1500, 900))
    rendered(dom, console)
    e = Elements(dom)
    assert [g["data-name"] for g in e.all("g", class_="panel")][:4] == ["kernel", "recurrent_kernel", "bias[0]", "bias[1]"]
    assert len(e.all("image", class_="heat")) == 12
