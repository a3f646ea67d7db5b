"""bench/tflite_loops.py cannot rot: one model at 3 and 40 steps, written by this writer (no old checkout, no
TensorFlow: its other columns are optional), timed in LiteRT, the table printed.  No timing is asserted."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow     # run by .ci/run after the README's test command

ROOT = Path(__file__).resolve().parents[1]


def test_bench_tflite_loops_prints_its_table(tmp_path):
    pytest.importorskip("keras")
    if not os.environ.get("CI"):
        pytest.importorskip("ai_edge_litert")
    env = {k: v for k, v in os.environ.items() if k != "RNNCONVERT_TF_PYTHON"} | {"KERAS_BACKEND": "torch"}
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "tflite_loops.py"), "--steps", "3", "40",
                          "--models", "gru64_seq", "--out", str(tmp_path)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert any(line.startswith("LiteRT builtin kernels") and "load average" in line for line in lines)
    rows = [line.split() for line in lines if line.startswith("gru64_seq ")]
    assert [r[1] for r in rows] == ["3", "40"] and all(float(r[2]) > 0 for r in rows)
