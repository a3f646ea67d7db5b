"""inspect shows an ONNX LSTM's peephole weights P: a tensor entry with one gate slice per gate and
direction (ONNX's order i, o, f), the terms in the equations, and their values in the parameter count;
the --json output stays valid against schemas/inspect.schema.json."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from rnnconvert.cli import cli

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "inspect.schema.json").read_text())


def _peephole_lstm(path, D, H=2, F=3):
    rng = np.random.default_rng(5)
    arrays = {n: (rng.standard_normal(s) * 0.7).astype(np.float32)
              for n, s in (("W", (D, 4 * H, F)), ("R", (D, 4 * H, H)), ("B", (D, 8 * H)), ("P", (D, 3 * H)))}
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y"], name="peep", hidden_size=H,
                            direction="bidirectional" if D == 2 else "forward")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", F])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(a, n) for n, a in arrays.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    return arrays


@pytest.mark.parametrize("D", [1, 2])
def test_json_lists_P_with_its_gate_slices(tmp_path, D):
    arrays = _peephole_lstm(tmp_path / "p.onnx", D)
    res = CliRunner().invoke(cli, ["inspect", str(tmp_path / "p.onnx"), "--json"])
    assert res.exit_code == 0, res.output
    desc = json.loads(res.output)
    jsonschema.validate(desc, SCHEMA)
    layer = desc["layers"][0]
    P = next(t for t in layer["tensors"] if t["name"] == "P")
    assert P["shape"] == [D, 6] and P["gate_axis"] == 1 and P["size"] == 6 * D
    assert [(g["gate"], g["direction"], g["slice"]) for g in P["gates"]][:3] == [
        ("i", "forward", "P[0, 0:2]"), ("o", "forward", "P[0, 2:4]"), ("f", "forward", "P[0, 4:6]")]
    assert layer["parameters"] == sum(a.size for a in arrays.values())
    assert desc["parameters"] == layer["parameters"]
    # each slice is the gate block of the file's own P
    for g in P["gates"]:
        d = ["forward", "reverse"].index(g["direction"])
        assert g["index"] == [d, [g["start"], g["stop"]]]


def test_text_shows_P_and_its_terms(tmp_path):
    _peephole_lstm(tmp_path / "p.onnx", 2)
    res = CliRunner().invoke(cli, ["inspect", str(tmp_path / "p.onnx")])
    assert res.exit_code == 0, res.output
    assert "  P (2, 6), gates on axis 1 = P (peepholes, iof)\n" in res.output
    assert "      f  forget gate peephole (c weight)               P[1, 4:6]  reverse\n" in res.output
    assert "      = canonical: forward.P | reverse.P (ifo, rows)\n" in res.output
    assert "    o = f(W[0, H:2*H, :] @ x + R[0, H:2*H, :] @ h + P[0, H:2*H]*c_t + B[0, H:2*H] + B[0, 5*H:6*H])\n" \
        in res.output
    assert "    i = f(W[0, 0:H, :] @ x + R[0, 0:H, :] @ h + P[0, 0:H]*c + B[0, 0:H] + B[0, 4*H:5*H])\n" in res.output
    assert "with W[1], R[1], B[1], P[1]\n" in res.output
    assert "params  124\n" in res.output          # 112 in W, R, B and 12 in P
