"""The report's error curves (verification/curves.py): per time step (downsampled windows for long
sequences) with the bound of the worst element, and the worst output channels; checked on outputs whose
errors are placed by hand, and in a real failing report that must still match the schema."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
from click.testing import CliRunner

from rnnconvert.cli import cli
from rnnconvert.verification.checks import compare

ROOT = Path(__file__).resolve().parents[2]
TOL = {"atol": 1e-4, "rtol": 0.0}


def test_error_per_step_and_worst_channels_where_the_error_was_put():
    expected = np.zeros((2, 5, 3))
    actual = expected.copy()
    actual[1, 3, 2] = 0.5          # step 3, channel 2
    actual[0, 1, 0] = 0.01         # step 1, channel 0
    c = compare(actual, expected, TOL, "x", "in", time_axis=1)
    assert c.per_step == {"steps": [0, 1, 2, 3, 4], "window": 1, "max_abs": [0.0, 0.01, 0.0, 0.5, 0.0],
                          "bound": [1e-4] * 5}
    assert c.channels[:2] == [{"channel": 2, "max_abs": 0.5}, {"channel": 0, "max_abs": 0.01}]
    tm = compare(np.swapaxes(actual, 0, 1), np.swapaxes(expected, 0, 1), TOL, "x", "in", time_axis=0)
    assert tm.per_step == c.per_step                     # a time-major output: the same curve
    assert compare(actual, expected, TOL, "x", "in").per_step is None     # no time axis given: none
    assert compare(actual[:, -1], expected[:, -1], TOL, "x", "in", time_axis=1).per_step is None


def test_a_long_sequence_is_at_most_200_windows_keeping_the_peak():
    expected = np.zeros((1, 4001, 2))
    actual = expected.copy()
    actual[0, 2345, 1] = 3.0
    p = compare(actual, expected, TOL, "x", "in", time_axis=1).per_step
    assert p["window"] == 21 and len(p["steps"]) == 191 and p["steps"][:3] == [0, 21, 42]
    j = 2345 // 21
    assert p["max_abs"][j] == 3.0 and sum(v for v in p["max_abs"] if v) == 3.0


def test_a_failing_report_carries_the_curves_and_matches_the_schema(tmp_path):
    """verify of a PyTorch-exported 2-layer bidirectional GRU against its ONNX conversion whose first layer's
    recurrence weights were zeroed: the checks and the first diverging layer carry their error per step."""
    import onnx
    from onnx import numpy_helper
    src = ROOT / "fixtures" / "torch_onnx" / "gru_2layer_bidir_seq" / "model.onnx"
    r = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "a.onnx"), "--no-verify"])
    assert r.exit_code == 0, r.output
    m = onnx.load(tmp_path / "a.onnx")
    init = [i for i in m.graph.initializer if numpy_helper.to_array(i).ndim == 3][1]      # R
    init.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(init)), init.name))
    onnx.save(m, tmp_path / "b.onnx")
    r = CliRunner().invoke(cli, ["verify", str(src), str(tmp_path / "b.onnx"), "--report", str(tmp_path / "r.json")])
    assert r.exit_code == 1, r.output
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(report, json.loads((ROOT / "schemas" / "report.schema.json").read_text()))
    first = next(n.name for n in onnx.load(tmp_path / "b.onnx").graph.node if n.op_type == "GRU")
    t120 = next(c for c in report["checks"] if c["input"] == "seeded b2 t120" and c["oracle"] == "reference(dst)")
    assert len(t120["per_step"]["steps"]) == 120 and max(t120["per_step"]["max_abs"]) == float(f"{t120['max_abs']:.4g}")
    steps = t120["per_step"]["max_abs"]
    assert steps[1] > 1e-3
    loc = report["localization"]
    worst = max(report["checks"], key=lambda c: c["max_abs"])          # localised on the worst check's input
    T = next(i["shape"][1] for i in report["inputs"] if worst["input"].startswith(i["label"]))
    window = -(-T // 200)
    assert loc["layer"] == first and loc["index"] == 0 and loc["per_step"]["window"] == window
    assert len(loc["per_step"]["max_abs"]) == -(-T // window)
    assert max(loc["per_step"]["max_abs"]) == float(f"{loc['max_abs']:.4g}")
