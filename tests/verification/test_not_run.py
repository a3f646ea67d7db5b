"""Checks not run (`Report.not_run`, rnnconvert/verification/report.py): a runtime that is not installed, or
that cannot load or run a file the user gave, or runs out of memory, is `not run: <runtime>(<role>):
<reason>` on one line, never a failed check and never an internal error; the verdict rests on the checks
that ran.  NOT EQUIVALENT (exit 1) when numbers disagree, or when the runtime fails on a file rnnconvert
wrote (tests/verification/test_runtime_failed.py).  Python modules are made missing in a subprocess by a sitecustomize that blocks their
import; octave, gcc and node by a PATH without them."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import hostile_cli as hostile
from conftest import FIXTURES, ROOT, WILD
from rnnconvert.cli import cli
from rnnconvert.verification.report import REASON_CHARS, reason

H5 = FIXTURES / "tf2onnx" / "lstm_dense" / "source_model.h5"
ONNX = FIXTURES / "tf2onnx" / "lstm_dense" / "model.onnx"
KERAS3 = FIXTURES / "keras3" / "lstm_last_softmax" / "model.keras"       # Keras 3 runs it when installed
STATES = FIXTURES / "torch_onnx" / "states" / "lstm_2layer" / "model.onnx"     # states are graph inputs
SERIES = WILD / "mat_jv_lstm32_rescale_seriesnet" / "LSTM.mat"                 # save('LSTM.mat', 'net')

NO_ORT = "onnxruntime is not installed (pip install onnxruntime)"
NO_TORCH = "torch is not installed (pip install torch)"
NO_KERAS = "keras cannot be imported (ModuleNotFoundError: import of keras halted; None in sys.modules)"


def _without(module: str, tmp_path, *args) -> subprocess.CompletedProcess:
    """`python -m rnnconvert ARGS` where `import module` fails, as it does when the module is not installed."""
    site = tmp_path / f"without_{module}"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "KERAS_BACKEND": "torch"}
    return subprocess.run([sys.executable, "-m", "rnnconvert", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600)


def _made(src, tmp_path, name):
    """`src` converted to tmp_path/name here, where every runtime is installed."""
    from rnnconvert import convert
    convert(str(src), str(tmp_path / name))
    return tmp_path / name


MISSING = [
    ("onnxruntime", lambda t: ["convert", H5, t / "m.onnx"], f"onnxruntime(dst): {NO_ORT}"),
    ("onnxruntime", lambda t: ["verify", H5, ONNX], f"onnxruntime(dst): {NO_ORT}"),
    ("onnxruntime", lambda t: ["convert", STATES, t / "m.onnx"], f"onnxruntime(dst): {NO_ORT}"),   # was exit 3
    ("onnxruntime", lambda t: ["verify", STATES, STATES], f"onnxruntime(src): {NO_ORT}"),
    ("onnxruntime", lambda t: ["convert", ONNX, t / "m.rnnc", "--layer", "LSTM__29"],        # was exit 2
     f"onnxruntime(src node): {NO_ORT}"),
    ("torch", lambda t: ["convert", ONNX, t / "m.safetensors"], f"torch(dst): {NO_TORCH}"),
    ("torch", lambda t: ["verify", ONNX, _made(ONNX, t, "made.safetensors")], f"torch(dst): {NO_TORCH}"),
    ("keras", lambda t: ["convert", ONNX, t / "m.keras"], f"keras(dst): {NO_KERAS}"),
    ("keras", lambda t: ["verify", KERAS3, _made(KERAS3, t, "made.onnx")], f"keras(src): {NO_KERAS}"),
]


@pytest.mark.parametrize("module,args,line", MISSING, ids=[f"{m}-{k}" for k, (m, _, _) in enumerate(MISSING)])
def test_missing_python_runtime_is_not_run(module, args, line, tmp_path):
    proc = _without(module, tmp_path, *args(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout.splitlines()
    assert [row for row in out if row.startswith(f"  not run: {line}")], proc.stdout
    assert out[-1] == "  EQUIVALENT"
    assert not any(f" {module}(" in row and " ok" in row for row in out)       # it ran nothing


@pytest.mark.parametrize("binary,suffix,line", [
    ("octave", ".mat", "octave(dst): octave is not installed (apt-get install octave)"),
    ("gcc", ".c", "gcc(dst): no C compiler (gcc) on PATH"),
    ("node", ".mjs", "node(dst): node is not on PATH"),
])
def test_missing_program_is_not_run(binary, suffix, line, runner, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    dst = tmp_path / f"m{suffix}"
    res = runner.invoke(cli, [str(H5), str(dst)])
    if binary == "octave":              # reference(dst), keras ... ran: the verdict rests on them
        assert res.exit_code == 0, res.output + res.stderr
        assert f"  not run: {line}" in res.output.splitlines()
        res = runner.invoke(cli, ["verify", str(H5), str(dst)])
        assert res.exit_code == 0, res.output + res.stderr
        assert f"  not run: {line}" in res.output.splitlines()
    else:                               # generated code: its runtime is the only check, and nothing was checked
        assert res.exit_code == 2, res.output + res.stderr
        assert res.stderr == (f"rnnconvert: error: {dst}: nothing was checked: not run: {line}; install what is "
                              "missing, or pass --no-verify to convert without verification\n")
        assert not dst.exists()


@pytest.mark.skipif(not WILD.is_dir(), reason=f"{WILD} is missing")
@pytest.mark.parametrize("order", ["mat-onnx", "onnx-mat"])
def test_matlab_object_file_verifies_against_its_onnx_conversion(order, runner, tmp_path):
    """Octave cannot run a saved SeriesNetwork object: octave(...) is not run, with Octave's error on one
    line outside the table; onnxruntime and the reference passes agree, so EQUIVALENT (was exit 1)."""
    onnx = tmp_path / "net.onnx"
    res = runner.invoke(cli, [str(SERIES), str(onnx)])
    assert res.exit_code == 0, res.output + res.stderr
    a, b, role = (SERIES, onnx, "src") if order == "mat-onnx" else (onnx, SERIES, "dst")
    report = tmp_path / "r.json"
    res = runner.invoke(cli, ["verify", str(a), str(b), "--report", str(report)])
    assert res.exit_code == 0, res.output + res.stderr
    lines = res.output.splitlines()
    not_run = [line for line in lines if line.startswith(f"  not run: octave({role}): ")]
    assert not_run == [f"  not run: octave({role}): Octave cannot run this file: structure has no member 'layers' "
                       "(the file holds 'net', not the 'layers' cell rnnconvert writes)"], lines
    assert lines[-1] == "  EQUIVALENT"
    rows = [line for line in lines if line.endswith(("  ok", "  FAIL"))]
    assert rows and all(len(row) < 120 and "error" not in row and "octave" not in row for row in rows), rows
    assert not any(re.search(r"\bkept\b|\bwritten\b", line) for line in lines)
    data = json.loads(report.read_text())
    other = "dst" if role == "src" else "src"
    assert data["passed"] is True and f"onnxruntime({other})" in {c["oracle"] for c in data["checks"]}
    assert [u for u in data["unavailable"] if u.startswith("octave(")] == [not_run[0].removeprefix("  not run: ")]
    import jsonschema
    jsonschema.validate(data, json.loads((ROOT / "schemas" / "report.schema.json").read_text()))


def test_runtime_refusing_a_file_is_not_run_with_its_reason(runner, tmp_path):
    """onnxruntime refusing a graph (an IR version it does not know): not run, its error on one line."""
    import onnx
    model = onnx.load(str(ONNX))
    model.ir_version = 99
    bad = tmp_path / "ir99.onnx"
    onnx.save(model, str(bad))
    res = runner.invoke(cli, ["verify", str(H5), str(bad)])
    assert res.exit_code == 0, res.output + res.stderr
    lines = res.output.splitlines()
    refused = [line for line in lines if line.startswith("  not run: onnxruntime(dst): ")]
    assert len(refused) == 1 and refused[0].startswith(
        "  not run: onnxruntime(dst): onnxruntime cannot load this file: Unsupported model IR version: 99, max "
        "supported IR version: "), lines
    assert lines[-1] == "  EQUIVALENT" and "  the verdict rests on the" in " ".join(lines)


def test_runtime_failing_midway_keeps_its_checks_and_says_where(runner, tmp_path, monkeypatch):
    """A runtime that ran on the short inputs and fails on a long one: those checks stand, the rest is not
    run, named by the input where it failed, the error on one line."""
    from rnnconvert.verification import runtimes
    real = runtimes.runner

    def failing_on_long_inputs(fmt, path, model):
        run = real(fmt, path, model)
        return lambda x: run(x) if x.shape[1] < 100 else (_ for _ in ()).throw(
            RuntimeError("out of memory\n  while running node 'LSTM'\n"))
    monkeypatch.setattr(runtimes, "runner", failing_on_long_inputs)
    res = runner.invoke(cli, [str(H5), str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, res.output + res.stderr
    lines = res.output.splitlines()
    assert "  not run: onnxruntime(dst): on seeded b2 t120: out of memory while running node 'LSTM'" in lines
    assert [line.split()[1:3] for line in lines if line.startswith("  onnxruntime(dst) ")] == [
        ["seeded", "b3"], ["seeded", "b3"]]


def test_reason_is_one_bounded_line():
    text = reason(RuntimeError("Octave cannot run this file: first\nerror: called from\n  f at line 3\n" + "x" * 900))
    assert "\n" not in text and len(text) == REASON_CHARS and text.endswith("...")
    assert text.startswith("Octave cannot run this file: first error: called from f at line 3 xxx")
    assert reason(KeyError("W")) == "KeyError: 'W'"


def test_numbers_that_disagree_are_not_equivalent_and_verify_speaks_of_no_file(runner, tmp_path):
    src, wrong = hostile.overflow_pair(tmp_path)
    res = runner.invoke(cli, ["verify", src, wrong])
    assert res.exit_code == 1, res.output + res.stderr
    error = res.stderr.strip().splitlines()[-1]
    assert error.startswith("rnnconvert: error: NOT EQUIVALENT: reference(dst) on ")
    # was: "...; <B> kept as requested"
    assert "kept" not in error and "written" not in error and str(wrong) not in error, error


def test_a_signal_behind_a_runtime_error_is_not_a_check_not_run():
    """A SIGINT surfacing as a SystemError from a runtime's C extension ends the run as the signal."""
    import signal

    from rnnconvert.files.interrupt import Interrupted
    from rnnconvert.verification.report import Report
    report = Report(source={}, destination=None, tolerance={}, seed=0)
    try:
        try:
            raise Interrupted(signal.SIGINT)
        except Interrupted as exc:
            raise SystemError("<built-in method run> returned a result with an exception set") from exc
    except SystemError as exc:
        with pytest.raises(Interrupted):
            report.not_run("onnxruntime(dst)", exc)
    assert report.unavailable == []
