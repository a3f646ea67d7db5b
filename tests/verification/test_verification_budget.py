"""Verification proportional to the model (`verification/budget.py`) and its progress (`progress.py`).

A state-port ONNX model with a fixed length of 4001 steps (torch's own export of an LSTM with h0/c0 inputs,
its time axis fixed) past the time budget is verified on fewer inputs, each still 4001 steps, batch > 1,
with the saturating row, and the report says what was dropped and why; a fast model keeps the full suite,
input for input and check for check.  Progress: piped, one line per finished check on stderr and nothing
on stdout; on a terminal (a pty), one live line.  The oracles are onnxruntime and Keras' own files.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest

from conftest import FIXTURES, ROOT
import rnnconvert
from rnnconvert.cli import cli
from rnnconvert.verification import budget
from rnnconvert.verification.suite import SUITE_SHAPES, input_suite

pytest.importorskip("onnxruntime")
jsonschema = pytest.importorskip("jsonschema")
SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
KERAS = FIXTURES / "tfkeras2" / "stacked_lstm_dense" / "model.h5"
STATES = FIXTURES / "torch_onnx" / "states" / "lstm_linear_batch_first" / "model.onnx"
LINE = re.compile(r"^\[(\d+)/(\d+)\] (ok|FAIL) {2,}\S.* \(\d+\.\d s\)$")


def fixed_length(tmp_path, steps=4001):
    """The torch-exported state-port LSTM (input [batch, time, 4], h0/c0 [1, batch, 5]) with its time fixed."""
    m = onnx.load(str(STATES))
    dim = m.graph.input[0].type.tensor_type.shape.dim[1]
    dim.ClearField("dim_param")
    dim.dim_value = steps
    path = tmp_path / "fixed.onnx"
    onnx.save(m, str(path))
    return path


def test_a_fixed_4001_step_model_past_the_budget_is_verified_on_fewer_inputs(tmp_path):
    src = fixed_length(tmp_path)
    model = rnnconvert.read(src)
    assert model.input.time_steps == 4001 and model.has_state_io
    report = rnnconvert.convert(src, tmp_path / "out.onnx", time_budget=0.01)
    assert report.passed
    assert [i["label"] for i in report.inputs] == ["seeded b3 t4001"]        # batch > 1, the fixed length
    assert report.suite["shortened"] == ["seeded b2 t4001 dropped"]
    assert report.suite["budget"] == "given (time_budget)" and report.suite["budget_seconds"] == 0.01
    assert report.suite["estimated_seconds"] > 0.01
    note = next(n for n in report.notes if n.startswith("suite shortened"))
    assert "seeded b2 t4001 dropped" in note and "the model fixes its length at 4001 steps" in note
    # the input kept is the full suite's, saturating row included
    x = input_suite(model)[0][1]
    assert x.shape == (3, 4001, 4) and np.abs(x[0]).max() > 3 * np.abs(x[1]).max()
    oracles = {c.oracle for c in report.checks}
    assert {"onnxruntime(dst)", "streaming onnxruntime(dst), states carried"} <= oracles
    assert "reference(dst)" not in oracles     # the file reads back identical: it would repeat reference(src)
    assert any(n.startswith("reference(dst) (with and without states) and streaming(reference) not run: the file "
                            "reads back identical") for n in report.notes)
    assert all(c.input.startswith("seeded b3 t4001") for c in report.checks)
    jsonschema.Draft202012Validator(SCHEMA).validate(report.to_dict())


def test_the_cli_says_what_was_shortened_and_why(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "FLOOR_SECONDS", 0.01)
    monkeypatch.setattr(budget, "FACTOR", 0.01)
    src = fixed_length(tmp_path)
    res = runner.invoke(cli, [str(src), str(tmp_path / "out.onnx"), "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "  note: suite shortened to fit verification's time budget of 0.01 s (the 0.01 s floor" in res.stdout
    assert "): seeded b2 t4001 dropped; the full suite was estimated at " in res.stdout
    assert "; still estimated at " in res.stdout       # the first input is always kept
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["suite"]["shortened"] == ["seeded b2 t4001 dropped"]
    assert [i["label"] for i in data["inputs"]] == ["seeded b3 t4001"]
    res = runner.invoke(cli, [str(src), str(tmp_path / "out.onnx"), "--force", "--full-suite", "--report",
                              str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["suite"]["shortened"] == [] and data["suite"]["budget_seconds"] is None
    assert [i["label"] for i in data["inputs"]] == ["seeded b3 t4001", "seeded b2 t4001"]
    assert "suite shortened" not in res.stdout


def test_a_variable_length_model_keeps_a_prefix_of_the_suite_and_the_users_inputs(tmp_path):
    model = rnnconvert.read(KERAS)
    user = np.random.default_rng(5).standard_normal((2, 50, model.input.features)).astype(np.float32)
    full = rnnconvert.convert(KERAS, tmp_path / "full.onnx", inputs=user, time_budget=float("inf"))
    assert full.suite["timed"]["input"] == "seeded b2 t300"      # the estimate rests on the longest pass timed
    report = rnnconvert.convert(KERAS, tmp_path / "small.onnx", inputs=user, time_budget=0.0)
    assert [i["label"] for i in report.inputs] == ["seeded b3 t1", "user inputs"]
    assert report.suite["shortened"] == ["seeded b2 t300 dropped", "seeded b2 t120 dropped", "seeded b3 t7 dropped"]
    assert report.passed and {c.oracle for c in report.checks} == {c.oracle for c in full.checks}
    kept = {c.input: c.max_abs for c in report.checks if c.oracle == "onnxruntime(dst)"}
    before = {c.input: c.max_abs for c in full.checks if c.oracle == "onnxruntime(dst)"}
    for label in ("seeded b3 t1", "user inputs"):      # the same inputs, bit for bit
        assert kept[label] == before[label]


def test_fit_shortens_then_drops_the_longest_and_keeps_the_first():
    shapes = [(3, 1), (3, 7), (2, 120), (2, 300)]
    cost = lambda b, t: float(t)     # noqa: E731
    assert budget.fit(shapes, cost, 1000, False) == (shapes, [])
    assert budget.fit(shapes, cost, 300, False) == ([(3, 1), (3, 7), (2, 120), (2, 172)],
                                                     ["seeded b2 t300 shortened to t172"])
    assert budget.fit(shapes, cost, 228, False) == ([(3, 1), (3, 7), (2, 120)],    # t100 < t120: dropped
                                                     ["seeded b2 t300 dropped"])
    assert budget.fit(shapes, cost, 100, False) == ([(3, 1), (3, 7), (2, 92)],
                                                    ["seeded b2 t300 dropped", "seeded b2 t120 shortened to t92"])
    assert budget.fit(shapes, cost, 0.5, False)[0] == [(3, 1)]
    assert budget.fit([(3, 4001), (2, 4001)], cost, 5000, True) == ([(3, 4001)], ["seeded b2 t4001 dropped"])
    assert budget.fit([(3, 4001)], cost, 1, True) == ([(3, 4001)], [])


def test_a_fast_model_keeps_the_full_suite_and_its_results(tmp_path):
    report = rnnconvert.convert(KERAS, tmp_path / "a.onnx")
    full = rnnconvert.convert(KERAS, tmp_path / "b.onnx", time_budget=float("inf"))
    assert [i["label"] for i in report.inputs] == [f"seeded b{b} t{t}" for b, t in SUITE_SHAPES]
    assert report.suite["shortened"] == [] and report.suite["budget_seconds"] == 30.0
    assert report.suite["budget"].startswith("the 30 s floor (10x the read + write time, ")
    assert [(c.oracle, c.input, c.max_abs) for c in report.checks] == \
           [(c.oracle, c.input, c.max_abs) for c in full.checks]
    assert not any(n.startswith("suite shortened") for n in report.notes)


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="torch")
    return subprocess.run([sys.executable, "-m", "rnnconvert", *map(str, args)], capture_output=True, text=True,
                          env=env, **kw)


def test_piped_progress_is_one_line_per_check_on_stderr(tmp_path):
    res = _cli(KERAS, tmp_path / "a.onnx", "--report", tmp_path / "r.json")
    assert res.returncode == 0, res.stderr
    checks = json.loads((tmp_path / "r.json").read_text())["checks"]
    lines = res.stderr.splitlines()
    n = len(checks)
    assert len(lines) == n and n >= 4          # onnxruntime on each of the four inputs at least
    for k, (line, check) in enumerate(zip(lines, checks), 1):
        m = LINE.match(line)
        assert m and m.groups() == (str(k), str(n), "ok"), line
        assert f" {check['oracle']} {check['input']} (" in line
    assert "[1/" not in res.stdout and res.stdout.rstrip().endswith("EQUIVALENT")
    res = _cli("verify", KERAS, tmp_path / "a.onnx", "--report", tmp_path / "v.json")
    assert res.returncode == 0, res.stderr
    n = len(json.loads((tmp_path / "v.json").read_text())["checks"])
    assert [LINE.match(x).group(1) for x in res.stderr.splitlines()] == [str(k) for k in range(1, n + 1)]
    assert "[1/" not in res.stdout


def test_batch_progress_goes_to_stderr(tmp_path):
    (tmp_path / "plan.yaml").write_text(f"jobs:\n  - src: {KERAS}\n    dst: [a.onnx, b.onnx]\n")
    res = _cli("batch", tmp_path / "plan.yaml", "--jobs", "1")
    assert res.returncode == 0, res.stderr
    jobs = "".join(line for line in res.stderr.splitlines(True) if not line.startswith("  jobs[0].dst["))
    assert re.fullmatch(r"\[1/2\] ok +\S+ -> a\.onnx \(\d+\.\d s\)\n\[2/2\] ok +\S+ -> b\.onnx \(\d+\.\d s\)\n",
                        jobs), res.stderr
    assert res.stderr.startswith("  jobs[0].dst[0] [1/")         # each check of each job, before the job's line
    assert res.stdout.startswith("2 conversions: 2 ok, 0 not equivalent, 0 bad input; ")


def test_on_a_terminal_progress_is_one_live_line(tmp_path):
    import pty
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="torch")
    proc = subprocess.Popen([sys.executable, "-m", "rnnconvert", str(KERAS), str(tmp_path / "a.onnx")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:         # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read().decode()
    assert proc.wait() == 0
    os.close(master)
    text = seen.decode()
    assert "\n" not in text                          # one line, redrawn in place
    assert "\r  reading " in text and "\r  writing " in text
    assert re.search(r"\r  verifying: check 4 of 4 done \(onnxruntime\(dst\) seeded b2 t300\), \d+ s", text)
    assert re.search(r"\r {20,}\r$", text)            # erased before the report
    assert "[1/11]" not in text and out.rstrip().endswith("EQUIVALENT")


def test_the_live_line_fits_one_row_and_is_erased():
    import io

    from rnnconvert.verification.checks import Check
    from rnnconvert.verification.progress import Printer, Tracker
    out = io.StringIO()
    with Printer(out, tty=True) as printer:
        tracker = Tracker(printer)
        tracker.stage("reading a.onnx (onnx)")
        tracker.planned(2)
        tracker.check(Check("streaming onnxruntime(dst), states carried", "seeded b3 t4001 + random states chunks "
                            "1+2+5+1331+2662", 0.0, 0.0, [], True))
    rows = out.getvalue().split("\r")
    assert rows[1].startswith("  reading a.onnx (onnx) ... ")
    assert len(rows[2]) == 79 and rows[2].startswith("  verifying: check 1 of 2 done (streaming onnxruntime(dst)")
    assert rows[3:] == [" " * 79, ""]
