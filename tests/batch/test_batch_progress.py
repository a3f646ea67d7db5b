"""A batch run shows each conversion's checks as they finish (on stderr, naming the job), from a worker
process or in-process, and takes `full_suite: true` as the CLI's --full-suite.  The model is torch's own
export of a state-port LSTM with its time axis fixed; onnxruntime runs what is written."""
from __future__ import annotations

import io
import json

import onnx
import pytest
import yaml

from conftest import FIXTURES
from rnnconvert.cli import cli
from rnnconvert.verification import budget

pytest.importorskip("onnxruntime")
STATES = FIXTURES / "torch_onnx" / "states" / "lstm_linear_batch_first" / "model.onnx"


def _fixed(tmp_path, steps=40):
    m = onnx.load(str(STATES))
    dim = m.graph.input[0].type.tensor_type.shape.dim[1]
    dim.ClearField("dim_param")
    dim.dim_value = steps
    onnx.save(m, str(tmp_path / "fixed.onnx"))
    return tmp_path / "fixed.onnx"


def test_full_suite_in_a_plan_keeps_what_the_budget_would_drop(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "FLOOR_SECONDS", 0.0)        # in-process (--jobs 1): every suite is over budget
    monkeypatch.setattr(budget, "FACTOR", 0.0)
    src = _fixed(tmp_path)
    plan = {"jobs": [{"src": str(src), "dst": "fitted.onnx"}, {"src": str(src), "dst": "full.onnx", "full_suite": True}]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    res = runner.invoke(cli, ["batch", str(tmp_path / "plan.yaml"), "--jobs", "1", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output + res.stderr
    fitted, full = (r["report"] for r in json.loads((tmp_path / "r.json").read_text())["results"])
    assert [i["label"] for i in fitted["inputs"]] == ["seeded b3 t40"]
    assert fitted["suite"]["shortened"] == ["seeded b2 t40 dropped"]
    assert [i["label"] for i in full["inputs"]] == ["seeded b3 t40", "seeded b2 t40"]
    assert full["suite"]["shortened"] == [] and full["suite"]["budget_seconds"] is None


def test_full_suite_must_be_true_or_false(runner, tmp_path):
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump({"jobs": [{"src": str(STATES), "dst": "x.onnx",
                                                                  "full_suite": 1}]}))
    res = runner.invoke(cli, ["batch", str(tmp_path / "plan.yaml"), "--check"])
    assert res.exit_code == 2
    assert "jobs[0].full_suite: expected true or false, found int 1" in res.stderr


def test_in_process_the_checks_of_each_job_are_lines_naming_it(runner, tmp_path):
    plan = {"jobs": [{"src": str(STATES), "dst": "a.onnx"}, {"src": str(STATES), "dst": "b.rnnc"}]}
    (tmp_path / "plan.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    res = runner.invoke(cli, ["batch", str(tmp_path / "plan.yaml"), "--jobs", "1", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output + res.stderr
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    lines = res.stderr.splitlines()
    for k, r in enumerate(results):
        mine = [line for line in lines if line.startswith(f"  jobs[{k}].dst [")]
        assert len(mine) == len(r["report"]["checks"]) > 0           # one line per check of that conversion
        n = len(mine)
        assert [line.split()[1] for line in mine] == [f"[{i}/{n}]" for i in range(1, n + 1)]
    job_lines = [line for line in lines if line.startswith("[")]
    assert [line.split()[0] for line in job_lines] == ["[1/2]", "[2/2]"]
    # each job's checks come before its own line
    assert lines.index(job_lines[0]) > max(i for i, line in enumerate(lines) if line.startswith("  jobs[0].dst ["))


def test_on_a_terminal_a_check_updates_the_line_and_a_job_line_replaces_it():
    from rnnconvert.batch.report import Progress
    from rnnconvert.batch.plan import Task
    out = io.StringIO()
    p = Progress(tty=True, stream=out)
    t = Task(0, "jobs[0].dst", "a.h5", "a.onnx", "", "", {})
    p.check(t, "[1/2] ok      onnxruntime(dst) seeded b3 t1 (0.1 s)")
    p.check(t, "[2/2] ok      onnxruntime(dst) seeded b3 t7 (0.2 s)")
    p(1, 1, t, {"status": "ok", "seconds": 1.0})
    last = "  jobs[0].dst [2/2] ok      onnxruntime(dst) seeded b3 t7 (0.2 s)"
    assert out.getvalue() == ("\r  jobs[0].dst [1/2] ok      onnxruntime(dst) seeded b3 t1 (0.1 s)"
                              "\r" + last + "\r" + "[1/1] ok      a.h5 -> a.onnx (1.0 s)".ljust(len(last)) + "\n")
