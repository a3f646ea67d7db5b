"""Recurrent nodes inside If branches: the whole model reads and converts when the condition is a constant of the
file or a branch the user names (--if NAME=then|else, read option branches=), and --in-place takes the branch
its --inputs decide."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import rnnconvert
from rnnconvert.cli import cli
from rnnconvert.errors import InputError

ort = pytest.importorskip("onnxruntime")


def _branch(tag: str) -> onnx.GraphProto:
    nodes = [helper.make_node("Transpose", ["x"], [f"xt_{tag}"], perm=[1, 0, 2]),
             helper.make_node("LSTM", [f"xt_{tag}", f"W_{tag}", f"R_{tag}", f"B_{tag}"], [f"Y_{tag}"], hidden_size=4,
                              name=f"lstm_{tag}"),
             helper.make_node("Squeeze", [f"Y_{tag}", "axis1"], [f"ys_{tag}"]),
             helper.make_node("Transpose", [f"ys_{tag}"], [f"out_{tag}"], perm=[1, 0, 2])]
    return helper.make_graph(nodes, f"branch_{tag}", [], [helper.make_tensor_value_info(f"out_{tag}",
                                                                                         TensorProto.FLOAT, None)])


def _model(path, constant: bool | None = None):
    """x [batch, time, 3]; If 'pick' on `mode == 1` (`mode` an int64 graph input) or on a constant, between two LSTMs
    (weights of the main graph, used from the branches)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    for tag in ("a", "b"):
        inits += [numpy_helper.from_array((rng.standard_normal(s) * 0.6).astype(np.float32), f"{n}_{tag}")
                  for n, s in (("W", (1, 16, 3)), ("R", (1, 16, 4)), ("B", (1, 32)))]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", 3])]
    nodes = []
    if constant is None:
        inputs.append(helper.make_tensor_value_info("mode", TensorProto.INT64, []))
        inits.append(numpy_helper.from_array(np.array(1, np.int64), "one"))
        nodes.append(helper.make_node("Equal", ["mode", "one"], ["flag"]))
    else:
        inits.append(numpy_helper.from_array(np.array(constant), "flag"))
    nodes.append(helper.make_node("If", ["flag"], ["y"], name="pick", then_branch=_branch("a"),
                                  else_branch=_branch("b")))
    graph = helper.make_graph(nodes, "if_model", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


X = np.random.default_rng(1).standard_normal((3, 6, 3)).astype(np.float32) * 3


def _source(path, flag: bool):
    return ort.InferenceSession(str(path)).run(None, {"x": X, "mode": np.array(1 if flag else 0, np.int64)})[0]


@pytest.mark.parametrize("branch", ["then", "else"])
def test_a_branch_the_user_names_reads_whole(tmp_path, branch):
    src = _model(tmp_path / "if.onnx")
    with pytest.raises(rnnconvert.errors.UnsupportedError, match="the LSTM nodes sit inside the subgraphs of If node"):
        rnnconvert.read(src)
    model = rnnconvert.read(src, branches={"pick": branch})
    want = "lstm_a" if branch == "then" else "lstm_b"
    assert model.input.name == "x" and [layer.name for layer in model.recurrent_layers] == [want]
    assert model.source["picked"] == [f"If node 'pick': the {branch} branch taken (as --if pick={branch} says); "
                                      "the other is dropped"]
    np.testing.assert_allclose(rnnconvert.predict(model, X), _source(src, branch == "then"), atol=1e-5, rtol=0)


def test_cli_if_converts_to_keras(tmp_path):
    src = _model(tmp_path / "if.onnx")
    res = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "m.keras"), "--if", "pick=else"])
    assert res.exit_code == 0, res.output
    import keras
    got = keras.saving.load_model(tmp_path / "m.keras").predict(X, verbose=0)
    np.testing.assert_allclose(got, _source(src, False), atol=1e-5, rtol=0)


def test_a_constant_condition_needs_no_choice(tmp_path):
    src = _model(tmp_path / "const.onnx", constant=True)
    model = rnnconvert.read(src)
    assert model.source["picked"] == ["If node 'pick': the then branch taken (its condition is a constant); the "
                                      "other is dropped"]
    want = ort.InferenceSession(str(src)).run(None, {"x": X})[0]
    np.testing.assert_allclose(rnnconvert.predict(model, X), want, atol=1e-5, rtol=0)


def test_if_refusals(tmp_path):
    src = _model(tmp_path / "if.onnx")
    with pytest.raises(InputError, match=r"--if names 'nope', which is not an If node of the graph \(or of a branch "
                                         r"taken\) nor its condition"):
        rnnconvert.read(src, branches={"pick": "then", "nope": "else"})
    res = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "m.onnx"), "--if", "pick"])
    assert res.exit_code == 2 and "expected NAME=then or NAME=else, found 'pick'" in res.output


def test_in_place_takes_the_branch_its_inputs_decide(tmp_path):
    src = _model(tmp_path / "if.onnx")
    np.savez(tmp_path / "x.npz", x=X, mode=np.array(1, np.int64))
    dst = tmp_path / "out.onnx"
    res = CliRunner().invoke(cli, ["convert", str(src), str(dst), "--in-place", "--inputs", str(tmp_path / "x.npz")])
    assert res.exit_code == 0, res.output
    assert "If node 'pick': the then branch taken (its condition had this value on every input verification ran (1 " \
           "set); other inputs may take the other branch)" in res.output
    ops = [n.op_type for n in onnx.load(str(dst)).graph.node]
    assert "If" not in ops and ops.count("LSTM") == 1
    got = ort.InferenceSession(str(dst)).run(None, {"x": X, "mode": np.array(0, np.int64)})[0]   # ignored now
    np.testing.assert_allclose(got, _source(src, True), atol=1e-5, rtol=0)


def test_the_batch_key_if(tmp_path):
    import yaml
    src = _model(tmp_path / "if.onnx")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"jobs": [{"src": str(src), "dst": str(tmp_path / "b.onnx"), "if": {"pick": "else"}}]}))
    res = CliRunner().invoke(cli, ["batch", str(plan), "--jobs", "1", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    got = ort.InferenceSession(str(tmp_path / "b.onnx")).run(None, {"x": X})[0]
    np.testing.assert_allclose(got, _source(src, False), atol=1e-5, rtol=0)
    plan.write_text(yaml.safe_dump({"jobs": [{"src": str(src), "dst": "c.onnx", "if": {"pick": "maybe"}}]}))
    res = CliRunner().invoke(cli, ["batch", str(plan), "--check"])
    assert res.exit_code == 2 and "jobs[0].if: expected a mapping of If node names to then or else, found dict" \
        in res.stderr
