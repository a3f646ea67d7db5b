"""`rnnconvert batch plan.yaml`: validation of the whole plan first (every problem with its location),
parallel runs in worker processes, one report for the plan, skipping of unchanged jobs, shards,
--fail-fast, exit codes and messages word for word."""
from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from conftest import ROOT
from rnnconvert.cli import cli
from rnnconvert.formats import FORMATS

jsonschema = pytest.importorskip("jsonschema")
F = ROOT / "fixtures"
REPORT_SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
PLAN_SCHEMA = json.loads((ROOT / "schemas" / "batch.schema.json").read_text())
LSTM = F / "tfkeras2/lstm_last_softmax/model.h5"
GRU = F / "keras3/gru_reset_after_seq/model.keras"
TORCH = F / "torch/gru_linear"
WRITES = " ".join(x for f in FORMATS.values() if f.writes for x in f.suffixes)


def plan_file(tmp_path, plan: dict, name="plan.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def _error(res):
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr.strip()


def small_plan(tmp_path):
    shutil.copy(LSTM, tmp_path / "lstm.h5")
    return {"defaults": {"atol": 1e-4, "rtol": 1e-4},
            "jobs": [{"src": "lstm.h5", "dst": ["out/lstm.onnx", "out/lstm.rnnc"]},
                     {"src": str(TORCH / "model.safetensors"), "arch": str(TORCH / "arch.json"),
                      "dst": "out/gru_torch.onnx"},
                     {"src": str(GRU), "dst": "out/gru.safetensors", "emit_vectors": "out/vectors"}]}


def test_plan_with_three_errors_reports_all_with_locations(runner, tmp_path):
    plan = {"jobs": [{"src": "missing.h5", "dst": "a.onnx"},
                     {"src": str(LSTM), "dst": "b.xyz"},
                     {"src": str(LSTM), "dst": "c.onnx", "atol": "abc"}]}
    path = plan_file(tmp_path, plan)
    res = runner.invoke(cli, ["batch", str(path)])
    assert res.exit_code == 2
    assert _error(res) == (
        f"rnnconvert: error: {path}: invalid plan, nothing was run; 3 problems: "
        "jobs[0].src: no such file 'missing.h5'; "
        f"jobs[1].dst: unknown output suffix '.xyz' (rnnconvert writes {WRITES}); "
        "jobs[2].atol: expected a finite number >= 0, found str 'abc'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.yaml"]     # nothing ran, no state written
    errors = list(jsonschema.Draft202012Validator(PLAN_SCHEMA).iter_errors(plan))
    assert [list(e.absolute_path) for e in errors] == [["jobs", 2, "atol"]]    # what a schema alone can see


def test_more_plan_errors(runner, tmp_path):
    plan = {"defaults": {"keras_version": 4}, "extra": 1,
            "jobs": [{"src": str(LSTM)}, {"src": str(LSTM), "dst": [str(LSTM)], "emit_module": "m.py"},
                     {"src": str(LSTM), "dst": "x.onnx", "desination": "y"}, {"src": str(LSTM), "dst": "x.onnx"}, 7]}
    path = plan_file(tmp_path, plan)
    res = runner.invoke(cli, ["batch", str(path)])
    assert res.exit_code == 2
    assert _error(res) == (
        f"rnnconvert: error: {path}: invalid plan, nothing was run; 8 problems: "
        "plan: unknown key 'extra' (known: version, defaults, jobs, allow_outside); "
        "defaults.keras_version: expected 2 or 3, found 4; "
        "jobs[0].dst: missing (one path or a list of paths to write); "
        f"jobs[1].dst[0]: '{LSTM}' is the job's source; "
        "jobs[1].emit_module: goes with exactly one PyTorch destination (.pt, .pth, .safetensors), the job has 0; "
        "jobs[2]: unknown key 'desination' (known: src, dst, atol, rtol, seed, inputs, arch, keras_version, "
        "emit_module, emit_vectors, from, to, allow_nonfinite, layer, accept_windows_paths, external_data, strict, "
        "full_suite, output, if, quantize, stateful); "
        "jobs[3].dst: 'x.onnx' is also written by jobs[2].dst; "
        "jobs[4]: expected a mapping with src and dst, found int 7")


def test_plan_file_errors(runner, tmp_path):
    res = runner.invoke(cli, ["batch", str(tmp_path / "none.yaml")])
    assert res.exit_code == 2
    assert _error(res) == f"rnnconvert: error: {tmp_path / 'none.yaml'}: no such plan file"
    (tmp_path / "bad.yaml").write_text("jobs:\n  - src: [a\n")
    res = runner.invoke(cli, ["batch", str(tmp_path / "bad.yaml")])
    assert res.exit_code == 2
    assert _error(res).startswith(f"rnnconvert: error: {tmp_path / 'bad.yaml'}: the plan file is not valid YAML at line 3, column 1 (")
    (tmp_path / "empty.yaml").write_text("jobs: []\n")
    res = runner.invoke(cli, ["batch", str(tmp_path / "empty.yaml")])
    assert _error(res) == (f"rnnconvert: error: {tmp_path / 'empty.yaml'}: invalid plan, nothing was run; 1 problem: "
                           "jobs: expected a non-empty list of jobs")
    (tmp_path / "py.yaml").write_text("jobs: !!python/object/apply:os.system ['true']\n")
    res = runner.invoke(cli, ["batch", str(tmp_path / "py.yaml")])        # safe_load only
    assert res.exit_code == 2 and "not valid YAML" in _error(res)


def test_bad_shard(runner, tmp_path):
    path = plan_file(tmp_path, small_plan(tmp_path))
    res = runner.invoke(cli, ["batch", str(path), "--shard", "3/2"])
    assert res.exit_code == 2
    assert _error(res) == "rnnconvert: error: --shard expects I/N with 1 <= I <= N, found '3/2'"


def test_parallel_run_report_and_skip_on_rerun(runner, tmp_path):
    plan = small_plan(tmp_path)
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(plan)
    path = plan_file(tmp_path, plan)
    res = runner.invoke(cli, ["batch", str(path), "--jobs", "2", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output + res.stderr
    lines = [line for line in res.output.splitlines() if line.strip()]
    checks = [line for line in lines if line.startswith("  jobs[")]     # each check of each job, from its worker
    lines = [line for line in lines if not line.startswith("  jobs[")]
    assert {line.split()[0] for line in checks} == {"jobs[0].dst[0]", "jobs[0].dst[1]", "jobs[1].dst", "jobs[2].dst"}
    assert all(re.fullmatch(r"  jobs\[\d\]\.dst(\[\d\])? \[\d+/\d+\] ok {6}\S.* \(\d+\.\d s\)", c) for c in checks), checks
    assert len(lines) == 5 and lines[-1].startswith("4 conversions: 4 ok, 0 not equivalent, 0 bad input; ")
    assert lines[-1].endswith("with 2 processes")
    assert {line.split("] ", 1)[1].split(" (")[0] for line in lines[:4]} == {
        "ok      lstm.h5 -> out/lstm.onnx", "ok      lstm.h5 -> out/lstm.rnnc",
        f"ok      {TORCH / 'model.safetensors'} -> out/gru_torch.onnx", f"ok      {GRU} -> out/gru.safetensors"}
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(report)
    assert report["processes"] == 2 and report["exit_code"] == 0
    assert [r["location"] for r in report["results"]] == ["jobs[0].dst[0]", "jobs[0].dst[1]", "jobs[1].dst", "jobs[2].dst"]
    assert all(r["report"]["passed"] for r in report["results"])
    assert (tmp_path / "out/vectors/vectors.json").exists()
    state = json.loads((tmp_path / ".plan.yaml.rnnconvert-state.json").read_text())
    assert sorted(state["tasks"]) == ["out/gru.safetensors", "out/gru_torch.onnx", "out/lstm.onnx", "out/lstm.rnnc"]

    res = runner.invoke(cli, ["batch", str(path), "--jobs", "2"])          # unchanged: everything skipped
    assert res.exit_code == 0
    assert res.output.count("skip ") == 4 and "4 skipped (unchanged)" in res.output

    plan["jobs"][1]["rtol"] = 1e-3                                          # an option changed
    (tmp_path / "out/lstm.rnnc").write_bytes(b"tampered")                   # an output changed
    plan_file(tmp_path, plan)
    res = runner.invoke(cli, ["batch", str(path), "--jobs", "1"])
    assert res.exit_code == 0
    assert "2 ok, 2 skipped (unchanged)" in res.output
    assert "ok      lstm.h5 -> out/lstm.rnnc" in res.output and "-> out/gru_torch.onnx" in res.output

    with open(tmp_path / "lstm.h5", "ab") as f:                             # a source changed
        f.write(b"\0")
    res = runner.invoke(cli, ["batch", str(path), "--jobs", "1"])
    assert "2 ok, 2 skipped (unchanged)" in res.output, res.output + res.stderr

    res = runner.invoke(cli, ["batch", str(path), "--jobs", "1", "--force"])
    assert "4 ok, 0 not equivalent" in res.output


def test_shards_are_disjoint_and_cover_the_plan(runner, tmp_path):
    path = plan_file(tmp_path, small_plan(tmp_path))
    seen = []
    for i in (1, 2):
        res = runner.invoke(cli, ["batch", str(path), "--jobs", "1", "--shard", f"{i}/2", "--report",
                                  str(tmp_path / f"r{i}.json")])
        assert res.exit_code == 0, res.stderr
        report = json.loads((tmp_path / f"r{i}.json").read_text())
        assert report["shard"] == [i, 2]
        seen += [r["location"] for r in report["results"]]
    assert sorted(seen) == ["jobs[0].dst[0]", "jobs[0].dst[1]", "jobs[1].dst", "jobs[2].dst"]
    assert len(seen) == len(set(seen))


def test_failure_does_not_stop_others_unless_fail_fast(runner, tmp_path, monkeypatch):
    """A verification failure (exit 1), a refusal (exit 2) and passing jobs in one plan."""
    import copy

    import rnnconvert.formats.onnx as onnx_format
    real_write = onnx_format.write

    def broken_write(model, path, **kw):
        model = copy.deepcopy(model)
        layer = model.recurrent_layers[0]
        if layer.cell == "lstm":
            H, w = layer.hidden, layer.weights[0]
            w.W[:H], w.W[H:2 * H] = w.W[H:2 * H].copy(), w.W[:H].copy()
        return real_write(model, path, **kw)

    monkeypatch.setattr(onnx_format, "write", broken_write)               # in-process: --jobs 1
    plan = {"jobs": [{"src": str(LSTM), "dst": "a.rnnc"}, {"src": str(LSTM), "dst": "b.onnx"},
                     {"src": str(LSTM), "dst": "c.rnnc"}]}
    path = plan_file(tmp_path, plan)
    res = runner.invoke(cli, ["batch", str(path), "--jobs", "1", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 1
    assert "[2/3] FAIL    " in res.stderr and "2 ok, 1 not equivalent, 0 bad input" in res.stdout
    progress, problems = res.stderr.split("\nrnnconvert: ", 1)       # progress lines on stderr, then the problems
    jobs = [line for line in progress.splitlines() if not line.startswith("  jobs[")]     # not the checks' lines
    assert jobs[0].startswith(f"[1/3] ok      {LSTM} -> a.rnnc (")
    assert any(line.startswith("  jobs[1].dst [") and " FAIL    " in line for line in progress.splitlines())
    assert problems.startswith(f"jobs[1].dst: {LSTM} -> b.onnx: NOT EQUIVALENT: ")
    assert "first difference at layer 'lstm' (layers[0])" in res.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(report)
    assert [r["status"] for r in report["results"]] == ["ok", "failed", "ok"]
    assert not (tmp_path / "b.onnx").exists()

    res = runner.invoke(cli, ["batch", str(path), "--jobs", "1", "--fail-fast", "--force", "--report",
                              str(tmp_path / "r.json")])
    assert res.exit_code == 1
    assert [r["status"] for r in json.loads((tmp_path / "r.json").read_text())["results"]] == ["ok", "failed", "cancelled"]
    assert "1 not run" in res.output

    selu = F / "tfkeras2/simplernn_selu_dense/model.h5"
    plan["jobs"].append({"src": str(selu), "dst": "d.safetensors"})     # nn.RNN has no selu: refused
    plan_file(tmp_path, plan)
    res = runner.invoke(cli, ["batch", str(path), "--jobs", "1", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 2                                                # bad input beats not equivalent
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert results[3]["status"] == "refused" and "nn.RNN computes tanh or relu" in results[3]["message"]
    assert len(results[3]["report"]["conversion"]["refused"]) == 1


def test_check_only(runner, tmp_path):
    path = plan_file(tmp_path, small_plan(tmp_path))
    res = runner.invoke(cli, ["batch", str(path), "--check"])
    assert res.exit_code == 0
    assert res.output == f"{path}: valid, 4 conversions in 3 jobs\n"
    assert not (tmp_path / "out").exists()


def test_progress_on_a_terminal_is_one_updating_line():
    import io

    from rnnconvert.batch.run import Progress, Task
    out = io.StringIO()
    p = Progress(tty=True, stream=out)
    t = Task(0, "jobs[0].dst", "a.h5", "a.onnx", "", "", {})
    p(1, 3, t, {"status": "ok", "seconds": 1.0})
    p(2, 3, t, {"status": "failed", "seconds": 2.0})
    p(3, 3, t, {"status": "skipped"})
    assert out.getvalue() == ("\r[1/3] ok      a.h5 -> a.onnx (1.0 s)"
                              "\r[2/3] FAIL    a.h5 -> a.onnx (2.0 s)\n"
                              "\r[3/3] skip    a.h5 -> a.onnx\n")


def test_progress_lines_escape_what_a_plan_names():
    """A job's paths come from the plan (a stranger's file names): its progress line shows them escaped,
    in the same form as a check's line, and never hands a control character to the terminal."""
    import io
    from types import SimpleNamespace
    from rnnconvert.batch.report import Progress
    out = io.StringIO()
    Progress(tty=False, stream=out)(2, 3, SimpleNamespace(src="a\x1b[2Jb.h5", dst="out\u2028.onnx"),
                                    {"status": "ok", "seconds": 1.25})
    assert out.getvalue() == "[2/3] ok      a\\x1b[2Jb.h5 -> out\\u2028.onnx (1.2 s)\n"
