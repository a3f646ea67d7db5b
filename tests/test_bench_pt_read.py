"""`python -m bench pt-read --quick` runs: the torch-free .pt read beside torch.load, zip and legacy, with
its time and memory rows judged (no timing is asserted: figures belong in `python -m bench`)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow     # run by .ci/run after the README's test command


def test_bench_pt_read_quick(capsys):
    from bench.__main__ import main
    rows = main(["--quick", "pt-read"])
    ops = [r.operation for r in rows]
    assert [op.split(" (")[1].split(",")[0].rstrip(")") for op in ops] == ["zip", "zip", "legacy", "legacy"]
    assert all(r.ours is not None and r.peer and r.met is not None for r in rows)
    assert "torch.load peak" in rows[1].note
