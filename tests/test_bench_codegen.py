"""`bench/codegen.py` cannot rot: at tiny sizes it builds the C (plain and, where OpenBLAS is there, on cblas),
times it beside onnxruntime and prints its table.  No timing is asserted: figures belong in the bench."""
from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.slow     # run by .ci/run after the README's test command

pytest.importorskip("onnxruntime")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_bench_codegen_runs_lstm_and_gru(capsys):
    from bench.codegen import main
    main(["--hidden", "8", "--features", "3", "--time", "6", "--rounds", "2", "--blocks", "2", "--sequences", "2"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("load average before:") and out[-1].startswith("load average after:")
    rows = [line for line in out if line.startswith("| 2 x ")]
    assert [r.split(" | ")[1] for r in rows] == ["whole sequence T=6", "one streamed step"] * 2
    assert "LSTM(8)" in rows[0] and "GRU(8)" in rows[2]
