"""`quantize` and `stateful` in batch plans, as the CLI's --quantize dynamic and --stateful: each applied to
the job's destinations that take it (TFLite; ONNX and TFLite), refused in a job with none, its value checked;
the written files run by LiteRT (int8 weights, LiteRT's own arithmetic) and onnxruntime (state inputs)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import yaml

from conftest import FIXTURES, ROOT
from rnnconvert.cli import cli

jsonschema = pytest.importorskip("jsonschema")
PLAN_SCHEMA = json.loads((ROOT / "schemas" / "batch.schema.json").read_text())
SRC = FIXTURES / "tfkeras2" / "stacked_lstm_dense" / "model.h5"
sys.path.insert(0, str(ROOT / "tests" / "formats" / "tflite"))


def _plan(tmp_path, plan: dict):
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(plan)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def test_plan_quantize_and_stateful(runner, tmp_path):
    from litert_helpers import load
    load  # LiteRT present (skips, or under CI fails, otherwise)
    ort = pytest.importorskip("onnxruntime")
    xs = np.load(SRC.parent / "inputs.npz")
    np.save(tmp_path / "x.npy", xs[xs.files[0]])
    plan = {"defaults": {"inputs": "x.npy"},
            "jobs": [{"src": str(SRC), "dst": ["q.tflite", "f.onnx"], "quantize": "dynamic", "atol": 0.02},
                     {"src": str(SRC), "dst": ["s.onnx", "s.rnnc"], "stateful": True}]}
    path = _plan(tmp_path, plan)
    res = runner.invoke(cli, ["batch", str(path), "--jobs", "1", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output + res.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["status"] for r in report["results"]] == ["ok"] * 4
    it = load(tmp_path / "q.tflite")
    it.allocate_tensors()
    assert any(d["dtype"] == np.int8 for d in it.get_tensor_details())         # quantized ...
    oracles = {c["oracle"] for r in report["results"] for c in r["report"]["checks"]}
    assert "litert(dst) vs reference(dst)" in oracles
    sess = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()][1:] == []                        # ... the ONNX file not stateful
    states = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"]).get_inputs()
    assert len(states) > 1                                                       # the state inputs


def test_plan_quantize_and_stateful_checked(runner, tmp_path):
    plan = {"defaults": {"quantize": "int4"},
            "jobs": [{"src": str(SRC), "dst": "a.onnx", "quantize": "dynamic"},
                     {"src": str(SRC), "dst": "b.keras", "stateful": True},
                     {"src": str(SRC), "dst": "c.tflite", "stateful": "yes"}]}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    res = runner.invoke(cli, ["batch", str(path), "--check"])
    assert (res.exit_code, res.stderr) == (2, (
        f"rnnconvert: error: {path}: invalid plan, nothing was run; 4 problems: "
        "defaults.quantize: expected dynamic, found str 'int4'; "
        "jobs[0].quantize: goes with a TFLite destination (.tflite), the job has none; "
        "jobs[1].stateful: goes with an ONNX or TFLite destination (.onnx, .tflite), the job has none; "
        "jobs[2].stateful: expected true or false, found str 'yes'\n"))
    errors = sorted(list(e.absolute_path) for e in jsonschema.Draft202012Validator(PLAN_SCHEMA).iter_errors(plan))
    assert errors == [["defaults", "quantize"], ["jobs", 2, "stateful"]]
