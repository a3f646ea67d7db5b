"""The benchmarks cannot rot: `python -m bench --quick` (tiny sizes) runs every operation and prints the
table; and the shorter input suite used for large models keeps what makes verification meaningful.
No timing is asserted here: figures belong in `python -m bench`, never in tests."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import FIXTURES

from rnnconvert import read
from rnnconvert.verification import suite

pytestmark = pytest.mark.slow     # run by .ci/run after the README's test command

pytest.importorskip("onnxruntime")
pytest.importorskip("keras")


def test_bench_quick_runs_every_operation(capsys):
    from bench.__main__ import main
    rows = main(["--quick", "convert", "memory", "forward", "startup", "verification", "large", "tf2onnx",
                 "verify-cost"])
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[:7] == ["operation", "rnnconvert", "peer", "ratio", "target", "met?", "peer"]
    assert "load average" in out.splitlines()[1]
    ops = [r.operation for r in rows]
    for expected in ("convert ", "peak memory", "reference forward float32, LSTM", "reference forward float32, GRU",
                     "reference forward float64, GRU", "rnnconvert --help", "rnnconvert formats",
                     "verification of the large model, its parts", "  onnxruntime(dst): one session",
                     "  read back", "float64 on the full suite", ".h5 -> .onnx, verified", ".h5 -> .mat, verified", ".h5 -> .keras, verified",
                     "tf.keras .h5 -> .onnx", "verification of a 4001-step state-port LSTM"):
        assert any(expected in op for op in ops), expected
    measured = [r for r in rows if "tf.keras" not in r.operation]        # tf2onnx: only where its venv exists
    assert all(r.ours is not None and r.ours >= 0 for r in measured)
    assert all(r.met is not None for r in rows if r.target and "tf.keras" not in r.operation)


def test_large_model_suite_keeps_batch_saturation_and_several_lengths(monkeypatch):
    model = read(FIXTURES / "tfkeras2" / "stacked_lstm_dense" / "model.h5")
    assert [x.shape[:2] for _, x in suite.input_suite(model)] == list(suite.SUITE_SHAPES)
    monkeypatch.setattr(suite, "LARGE_MODEL_PARAMS", model.parameter_count() - 1)
    inputs = suite.input_suite(model)
    shapes = [x.shape[:2] for _, x in inputs]
    assert shapes == list(suite.LARGE_SUITE_SHAPES)
    assert all(b > 1 for b, _ in shapes) and len({t for _, t in shapes}) >= 3 and max(t for _, t in shapes) >= 32
    for _, x in inputs[1:]:   # row 0 is scaled x6 to saturate the gates, the others are not
        assert np.abs(x[0]).mean() > 4 * np.abs(x[1:]).mean()


def test_bench_quick_runs_issue_18_rows(capsys):
    """latency (2 Keras files, verified and --no-verify), import + --help, and the rows other modules fill."""
    from bench.__main__ import main
    rows = main(["--quick", "latency", "import-help", "pt-read", "codegen"])
    ops = {r.operation: r for r in rows}
    for expected in ("Keras convert, fresh process, verified: median wall", "  same, max wall",
                     "  same, peak RSS (max over files)", "Keras convert, fresh process, --no-verify: median wall",
                     "import rnnconvert.cli + --help (process wall, best)"):
        assert ops[expected].ours is not None and ops[expected].met is not None, expected
    assert any(".pt read" in op for op in ops) and any("generated C" in op for op in ops)
