"""--output NAME (read option output=, batch key output): which graph output of an ONNX file with several
is the model's output, where the refusal says to pass it."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import yaml
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from rnnconvert.cli import cli

ort = pytest.importorskip("onnxruntime")


def _two_heads(path):
    """A GRU over [batch, time, 3] whose sequence y and tanh(y) are both graph outputs (neither a state)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.5, n)
             for n, s in (("W", (1, 12, 3)), ("R", (1, 12, 4)), ("B", (1, 24)))]
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "a1"))
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             helper.make_node("GRU", ["xt", "W", "R", "B"], ["Y"], hidden_size=4, linear_before_reset=1),
             helper.make_node("Squeeze", ["Y", "a1"], ["ys"]),
             helper.make_node("Transpose", ["ys"], ["y"], perm=[1, 0, 2]),
             helper.make_node("Tanh", ["y"], ["t"])]
    graph = helper.make_graph(nodes, "two_heads", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", 3])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "t")], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_the_refusal_names_the_option_and_the_option_picks_the_output(tmp_path):
    src = _two_heads(tmp_path / "two.onnx")
    runner = CliRunner()
    res = runner.invoke(cli, ["convert", str(src), str(tmp_path / "a.onnx")])
    assert res.exit_code == 2
    assert res.stderr == (f"rnnconvert: error: {src}: the graph has 2 outputs (y, t); the canonical model has one: "
                          "pass --output NAME (read option output=) to read one of them; to convert one recurrent "
                          "layer on its own, pass --layer NAME (recurrent layers found: Y (gru))\n")
    for name in ("y", "t"):
        res = runner.invoke(cli, ["convert", str(src), str(tmp_path / f"{name}.keras"), "--output", name])
        assert res.exit_code == 0, res.output
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32) * 3
    y, t = ort.InferenceSession(str(src)).run(None, {"x": x})
    import keras
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "t.keras").predict(x, verbose=0), t, atol=1e-5)
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "y.keras").predict(x, verbose=0), y, atol=1e-5)
    res = runner.invoke(cli, ["inspect", str(src), "--output", "t", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["output_name"] == "t"
    res = runner.invoke(cli, ["convert", str(src), str(tmp_path / "z.onnx"), "--output", "z"])
    assert res.exit_code == 2 and "no graph output 'z'; outputs: y, t" in res.stderr


def test_the_batch_key_output(tmp_path):
    src = _two_heads(tmp_path / "two.onnx")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"jobs": [{"src": str(src), "dst": str(tmp_path / "t.onnx"), "output": "t"}]}))
    res = CliRunner().invoke(cli, ["batch", str(plan), "--jobs", "1", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    x = np.random.default_rng(2).standard_normal((3, 4, 3)).astype(np.float32)
    want = ort.InferenceSession(str(src)).run(["t"], {"x": x})[0]
    got = ort.InferenceSession(str(tmp_path / "t.onnx")).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-5)
    plan.write_text(yaml.safe_dump({"jobs": [{"src": str(src), "dst": "u.onnx", "output": 3}]}))
    res = CliRunner().invoke(cli, ["batch", str(plan), "--check"])
    assert res.exit_code == 2 and "jobs[0].output: expected a graph output name, found int 3" in res.stderr
