"""The destination's own runtime, installed, failing on the file rnnconvert wrote: a failed check with
the runtime's reason (`Check.error`), NOT EQUIVALENT (exit 1) and nothing written, never EQUIVALENT on
the reference pass alone.  A runtime not installed (`RuntimeUnavailable`), or one failing on a file the
user gave (`verify A B`), stays `not run` (tests/verification/test_not_run.py)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import FIXTURES
from rnnconvert.cli import cli
from rnnconvert.errors import RuntimeUnavailable
from rnnconvert.verification import runtimes

H5 = FIXTURES / "tf2onnx" / "lstm_dense" / "source_model.h5"
ONNX = FIXTURES / "tf2onnx" / "lstm_dense" / "model.onnx"


def _failing(exc, after: int = 0):
    """runtimes.runner whose runner raises `exc` from the call `after` (0: at once) on."""
    real = runtimes.runner

    def runner(fmt, path, model):
        run, calls = real(fmt, path, model), []

        def once(x):
            calls.append(1)
            if len(calls) > after:
                raise exc
            return run(x)
        return once
    return runner


@pytest.mark.parametrize("after", [0, 2], ids=["first_input", "third_input"])
def test_a_runtime_failing_on_the_written_file_fails_the_conversion(monkeypatch, tmp_path, after):
    monkeypatch.setattr(runtimes, "runner", _failing(RuntimeError("Unknown op: Frobnicate"), after))
    dst, rep = tmp_path / "m.onnx", tmp_path / "report.json"
    res = CliRunner().invoke(cli, ["convert", str(H5), str(dst), "--report", str(rep)])
    assert res.exit_code == 1, res.output
    assert not dst.exists()
    label = ["seeded b3 t1", "seeded b3 t7", "seeded b2 t120"][after]
    assert (f"NOT EQUIVALENT: onnxruntime(dst) could not run the written file on {label}: Unknown op: "
            f"Frobnicate; the file would not run where it is meant to; {dst} not written") in res.output
    report = json.loads(rep.read_text())
    failed = [c for c in report["checks"] if not c["passed"]]
    assert [(c["oracle"], c["input"], c["error"], c["max_abs"]) for c in failed] == [
        ("onnxruntime(dst)", label, "Unknown op: Frobnicate", None)]
    assert sum(c["oracle"] == "onnxruntime(dst)" and c["passed"] for c in report["checks"]) == after
    assert report["passed"] is False and report["unavailable"] == []


def test_a_runtime_not_installed_is_still_not_run(monkeypatch, tmp_path):
    monkeypatch.setattr(runtimes, "runner", _failing(RuntimeUnavailable("onnxruntime is not installed")))
    dst = tmp_path / "m.onnx"
    res = CliRunner().invoke(cli, ["convert", str(H5), str(dst)])
    assert res.exit_code == 0, res.output
    assert "not run: onnxruntime(dst): onnxruntime is not installed" in res.output
    assert dst.exists()


def test_a_runtime_failing_on_a_file_the_user_gave_is_not_run(monkeypatch):
    monkeypatch.setattr(runtimes, "runner", _failing(RuntimeError("Unknown op: Frobnicate")))
    res = CliRunner().invoke(cli, ["verify", str(H5), str(ONNX)])
    assert res.exit_code == 0, res.output
    assert "not run: onnxruntime(dst): Unknown op: Frobnicate" in res.output


def test_an_api_refusal_names_the_destination_not_its_temporary_file(tmp_path):
    """A writer refuses while writing into convert's temporary folder: the error the API raises names DST
    in its text too (the CLI always did; `str(exc)` named the temporary file)."""
    import rnnconvert
    from rnnconvert.errors import UnsupportedError
    states = FIXTURES / "tf2onnx_loop" / "states" / "gru_reset_before_states" / "model.onnx"
    dst = tmp_path / "m.mat"
    with pytest.raises(UnsupportedError) as info:
        rnnconvert.convert(str(states), str(dst))
    assert str(info.value).startswith(f"{dst}: MATLAB files cannot take recurrent states"), str(info.value)
    assert ".tmp" not in str(info.value) and not list(tmp_path.iterdir())


def test_a_runtime_failing_on_the_written_state_ports_fails_the_conversion(monkeypatch, tmp_path):
    """The state checks too: onnxruntime runs the written graph without states and fails when its state
    inputs are fed: a failed check, not a check not run."""
    from rnnconvert.formats.onnx import runtime as ort_runtime
    real = ort_runtime.run_states

    def failing_with_states(path, x, model, feeds=None, session=None):
        if feeds:
            raise RuntimeError("state input h0 has the wrong shape")
        return real(path, x, model, feeds=feeds, session=session)
    monkeypatch.setattr(ort_runtime, "run_states", failing_with_states)
    states = FIXTURES / "torch_onnx" / "states" / "lstm_2layer" / "model.onnx"
    dst = tmp_path / "m.onnx"
    res = CliRunner().invoke(cli, ["convert", str(states), str(dst)])
    assert res.exit_code == 1, res.output
    assert ("NOT EQUIVALENT: onnxruntime(dst) could not run the written file on seeded b3 t1 + random states: "
            "state input h0 has the wrong shape") in res.output
    assert not dst.exists()
