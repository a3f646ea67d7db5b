"""`strict: true` in a batch plan: a job whose source is read under an assumption is an error (exit 2)
naming it and what settles it; a job whose hints settle everything converts, and onnxruntime running its
destination gives the torch outputs committed with the fixture."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from conftest import FIXTURES, ROOT
from rnnconvert.cli import cli

ort = pytest.importorskip("onnxruntime")
jsonschema = pytest.importorskip("jsonschema")
TORCH = FIXTURES / "torch" / "gru_linear"


def test_strict_plan_refuses_the_job_with_assumptions_and_runs_the_other(runner, tmp_path):
    plan = {"defaults": {"strict": True},
            "jobs": [{"src": str(TORCH / "model.pt"), "dst": "settled.onnx", "arch": str(TORCH / "arch.json")},
                     {"src": str(TORCH / "model.pt"), "dst": "guessed.onnx"}]}
    schema = json.loads((ROOT / "schemas" / "batch.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(plan)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    res = runner.invoke(cli, ["batch", str(path), "--jobs", "1", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 2, res.output + res.stderr
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["status"] for r in results] == ["ok", "error"]
    assert results[0]["report"]["assumptions"] == []
    assert results[1]["message"].startswith(
        f"{TORCH / 'model.pt'}: --strict: read under 4 assumptions the file does not settle: order: modules run in "
        "state-dict order rnn, fc (settle it: --arch order: [rnn, fc]); layout: batch_first true")
    assert not (tmp_path / "guessed.onnx").exists()
    sess = ort.InferenceSession(str(tmp_path / "settled.onnx"), providers=["CPUExecutionProvider"])
    inputs, outputs = np.load(TORCH / "inputs.npz"), np.load(TORCH / "outputs.npz")
    for k in inputs:
        got = sess.run(None, {sess.get_inputs()[0].name: inputs[k]})[0]
        assert np.abs(got - outputs[k]).max() < 1e-5, k


def test_strict_must_be_true_or_false(runner, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({"jobs": [{"src": str(TORCH / "model.pt"), "dst": "x.onnx", "strict": "yes"}]}))
    res = runner.invoke(cli, ["batch", str(path), "--check"])
    assert res.exit_code == 2
    assert "jobs[0].strict: expected true or false, found str 'yes'" in res.stderr
