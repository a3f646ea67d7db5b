"""`inspect --plot`: the weight layout picture, checked by its structure (panels named as the file names its
tensors, gate blocks with the file's index ranges and gate letters, one colour per canonical gate in every
framework, direction halves, heat maps), never against a golden image.  The expected names, shapes and
orders come from the files themselves (h5py, onnx) and the frameworks' documented orders."""
from __future__ import annotations

import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from rnnconvert.cli import cli

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "fixtures"
NS = {"s": "http://www.w3.org/2000/svg"}


def plot(src, out, *extra) -> ET.Element:
    r = CliRunner().invoke(cli, ["inspect", str(src), "--plot", str(out), *extra])
    assert r.exit_code == 0, r.output
    return ET.parse(out).getroot() if str(out).endswith(".svg") else None


def group(root, framework):
    return root.find(f".//s:g[@data-framework='{framework}']", NS)


def panels(g) -> dict:
    """{panel name: [(gate letter, range, direction, canonical letter)]}"""
    out = {}
    for p in g.findall(".//s:g[@class='panel']", NS):
        out[p.get("data-name")] = [(b.get("data-gate"), b.get("data-range"), b.get("data-direction"),
                                    b.get("data-canonical")) for b in p.findall("s:g[@class='block']", NS)]
    return out


def colours(g) -> dict:
    """canonical letter -> the stroke or fill colour of its blocks in this group"""
    out = {}
    for b in g.findall(".//s:g[@class='block']", NS):
        r = b.findall("s:rect", NS)[-1]
        c = r.get("stroke") if r.get("fill") in ("none", "white") else r.get("fill")
        out.setdefault(b.get("data-canonical"), set()).add(c)
    return out


def test_keras_lstm_blocks_are_the_files_columns_in_ifco_beside_the_other_frameworks(tmp_path):
    src = FIX / "tfkeras2" / "lstm_last_softmax" / "model.h5"
    with h5py.File(src) as f:
        F, G = f["model_weights/lstm/lstm/lstm_cell/kernel:0"].shape
    H = G // 4
    root = plot(src, tmp_path / "l.svg")
    own = panels(group(root, "keras"))
    assert list(own) == ["kernel", "recurrent_kernel", "bias"]
    expect = [(g, f"{j * H}:{(j + 1) * H}") for j, g in enumerate("ifco")]
    for name in own:
        assert [(g, r) for g, r, _, _ in own[name]] == expect
    # the same blocks in the other frameworks' orders: ONNX rows iofc (B: Wb then Rb), PyTorch and MATLAB ifgo
    onnx_p = panels(group(root, "onnx"))
    assert [g for g, *_ in onnx_p["W[0]"]] == list("iofc")
    assert [g for g, *_ in onnx_p["B[0]"]] == list("iofc") * 2
    assert [g for g, *_ in panels(group(root, "torch"))["weight_ih_l0"]] == list("ifgo")
    assert [r for _, r, *_ in panels(group(root, "matlab"))["InputWeights"]] == [
        f"{j * H + 1}:{(j + 1) * H}" for j in range(4)]            # MATLAB's own 1-based inclusive ranges
    # one colour per gate in every framework: Keras c is PyTorch g
    k, t = colours(group(root, "keras")), colours(group(root, "torch"))
    assert all(len(v) == 1 for v in k.values()) and k == t and len(set().union(*k.values())) == 4
    # a heat map per block of the file's own tensors, none in the small diagrams
    assert len(group(root, "keras").findall(".//s:image[@class='heat']", NS)) == 12
    assert group(root, "onnx").findall(".//s:image", NS) == []
    assert int(float(root.get("width"))) > 0 and "lstm" in ET.tostring(root, encoding="unicode")


def test_tiny_layer_prints_its_values_and_a_big_one_stays_small(tmp_path):
    """Seed 001's question is a 2-unit LSTM: every weight is printed in its block.  A 1024-unit layer keeps
    the same structure with heat maps pooled to at most 64 cells a side and a file under 200 kB."""
    from rnnconvert import write
    from rnnconvert.model import SIGMOID, TANH, DirectionWeights, InputSpec, Model, Recurrent
    rng = np.random.default_rng(1)

    def lstm(F, H):
        w = DirectionWeights(rng.normal(0, 0.3, (4 * H, F)).astype(np.float32),
                             rng.normal(0, 0.3, (4 * H, H)).astype(np.float32),
                             rng.normal(0, 0.1, 4 * H).astype(np.float32), np.zeros(4 * H, np.float32))
        return Model([Recurrent("lstm", "lstm", H, "forward", [w], [SIGMOID, TANH, TANH])], InputSpec(features=F))
    small = lstm(1, 2)
    write(small, tmp_path / "toy.onnx")
    root = plot(tmp_path / "toy.onnx", tmp_path / "toy.svg")
    values = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "value"]
    expected_w = [f"{v:.2f}" for v in small.layers[0].weights[0].W.ravel()]
    assert len(values) == 8 + 16 + 16 and all(v in values for v in expected_w)

    write(lstm(16, 1024), tmp_path / "big.onnx")
    out = tmp_path / "big.svg"
    root = plot(tmp_path / "big.onnx", out)
    assert out.stat().st_size < 200_000
    assert [r for _, r, *_ in panels(group(root, "onnx"))["W[0]"]] == [f"{j * 1024}:{(j + 1) * 1024}" for j in range(4)]
    assert not [t for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "value"]
    for image in root.iter("{http://www.w3.org/2000/svg}image"):
        png = __import__("base64").b64decode(image.get("href").split(",", 1)[1])
        w, h = struct.unpack(">II", png[16:24])
        assert w <= 64 * 12 and h <= 64 * 12


def test_onnx_bidirectional_lstm_is_one_panel_per_direction_and_bias_halves(tmp_path):
    src = FIX / "tf2onnx" / "bilstm_concat_seq" / "model.onnx"
    dims = {i.name.split("__")[0]: list(i.dims) for i in onnx.load(src).graph.initializer}
    D, G, F = dims["W"]
    H = G // 4
    own = panels(group(plot(src, tmp_path / "b.svg"), "onnx"))
    assert list(own) == ["W[0]", "W[1]", "R[0]", "R[1]", "B[0]", "B[1]"]
    assert {d for g in own["W[1]"] for d in [g[2]]} == {"reverse"}
    assert [r for _, r, *_ in own["B[0]"]] == [f"{j * H}:{(j + 1) * H}" for j in range(8)]


def test_matlab_bilstm_draws_forward_rows_over_backward_rows(tmp_path):
    src = FIX / "tf2onnx" / "bilstm_concat_seq" / "source_model.h5"
    mat = tmp_path / "bi.mat"
    r = CliRunner().invoke(cli, ["convert", str(src), str(mat), "--no-verify"])
    assert r.exit_code == 0, r.output
    root = plot(mat, tmp_path / "m.svg")
    own = panels(group(root, "matlab"))
    assert list(own) == ["InputWeights", "RecurrentWeights", "Bias"]
    H = 4
    assert [(g, rg) for g, rg, *_ in own["InputWeights"]] == [(g, f"{j * H + 1}:{(j + 1) * H}")
                                                              for j, g in enumerate("ifgoifgo")]
    assert [d for *_, d, _ in own["InputWeights"]][3:5] == ["forward", "reverse"]
    labels = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "direction"]
    assert labels == ["reverse below"] * 3
    width = float(root.get("width"))             # every framework's last panel starts inside the picture
    for g in root.findall(".//s:g[@class='framework other']", NS):
        gx = float(g.get("transform").split("(")[1].split(",")[0])
        last = g.findall(".//s:g[@class='panel']", NS)[-1]
        assert gx + float(last.get("transform").split("(")[1].split(",")[0].rstrip(")")) + 20 < width


def test_gru_bias_and_the_matlab_6h_bias(tmp_path):
    src = FIX / "tfkeras2" / "gru_reset_after_seq" / "model.h5"
    root = plot(src, tmp_path / "g.svg")
    own = panels(group(root, "keras"))
    assert list(own) == ["kernel", "recurrent_kernel", "bias[0]", "bias[1]"]      # (2, 3H): Wb row, Rb row
    assert [g for g, *_ in own["bias[1]"]] == list("zrh")
    assert [g for g, *_ in panels(group(root, "matlab"))["Bias"]] == list("rzh") * 2   # 6H: Wb then Rb


def test_html_page_and_png(tmp_path):
    src = FIX / "tfkeras2" / "gru_reset_after_seq" / "model.h5"
    plot(src, tmp_path / "g.html")
    page = (tmp_path / "g.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "http://" not in page.replace(
        "http://www.w3.org/2000/svg", "")
    pytest.importorskip("cairosvg")
    plot(src, tmp_path / "g.png")
    svg = ET.parse(plot(src, tmp_path / "g.svg") and tmp_path / "g.svg").getroot()
    data = (tmp_path / "g.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (int(float(svg.get("width"))), int(float(svg.get("height"))))


def test_png_without_cairosvg_and_a_wrong_suffix_are_one_line_exit_2(tmp_path, monkeypatch):
    src = FIX / "tfkeras2" / "gru_reset_after_seq" / "model.h5"
    monkeypatch.setitem(sys.modules, "cairosvg", None)
    r = CliRunner().invoke(cli, ["inspect", str(src), "--plot", str(tmp_path / "g.png")])
    assert r.exit_code == 2
    assert (f"{tmp_path / 'g.png'}: PNG output needs the optional package cairosvg and the cairo library: "
            "pip install 'rnnconvert[plot]', or write .svg or .html instead") in r.output
    r = CliRunner().invoke(cli, ["inspect", str(src), "--plot", str(tmp_path / "g.pdf")])
    assert r.exit_code == 2
    assert "--plot writes .svg, .html, .png files, not '.pdf'; name the file with one of those suffixes" in r.output
    assert not list(tmp_path.iterdir())
    before = src.read_bytes()
    r = CliRunner().invoke(cli, ["inspect", str(src), "--plot", str(src)])
    assert r.exit_code == 2
    assert f"{src}: is the model file; rnnconvert never writes over an input of the run, choose another path" in r.output
    assert src.read_bytes() == before


def test_keras1_per_gate_arrays_are_panels_holding_their_own_values(tmp_path):
    """A Keras 1 weights-only file stores one W, U, b per gate (`lstm_1_W_i` ...): each is its own panel,
    one block of its gate, its heat map and printed values those of the array the file holds."""
    sys.path.insert(0, str(ROOT / "tests" / "model"))
    try:
        from test_inspect_keras1 import _weights_only
    finally:
        sys.path.pop(0)
    stored = _weights_only(tmp_path / "w.hdf5")
    root = plot(tmp_path / "w.hdf5", tmp_path / "w.svg")
    own = panels(group(root, "keras"))
    assert sorted(own) == sorted(stored)
    for name, a in stored.items():
        p = root.find(f".//s:g[@data-framework='keras']//s:g[@data-name='{name}']", NS)
        assert [b[0] for b in own[name]] == [name[-1]]
        values = [t.text for t in p.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "value"]
        assert values == [f"{v:.2f}" for v in np.asarray(a).reshape(-1)], name
        assert len(p.findall(".//s:image[@class='heat']", NS)) == 1


def test_layers_that_do_not_build_are_left_out_and_none_at_all_is_the_refusal(tmp_path):
    """A MATLAB network with an untrained BiLSTM definition beside a trained LSTM: the picture draws the
    LSTM.  With only the untrained definition: inspect's refusal, exit 2, and no picture."""
    pytest.importorskip("matio", reason="mat-io writes the MATLAB object file")
    from fuzz_inputs import _matio_layers, _save_matio
    layers = _matio_layers()
    untrained = ("BiLSTMLayer", {"Name": "layer0", "InputSize": layers[0][1]["InputSize"]})
    _save_matio(tmp_path / "mixed.mat", [untrained] + layers[1:], "v7")
    root = plot(tmp_path / "mixed.mat", tmp_path / "mixed.svg")
    assert [g.get("data-layer") for g in root.findall("s:g[@class='layer']", NS)] == ["lstm"]
    _save_matio(tmp_path / "none.mat", [untrained], "v7")
    r = CliRunner().invoke(cli, ["inspect", str(tmp_path / "none.mat"), "--plot", str(tmp_path / "none.svg")])
    assert r.exit_code == 2
    assert f"{tmp_path / 'none.mat'}: variable 'net' has no learned weights (layers layer0 are untrained" in r.output
    assert not (tmp_path / "none.svg").exists()
