"""`inspect`'s header says what is known: of a model that does not read as a whole, that it does not and that
its recurrent layers follow each on its own (no made-up input line), with their parameters counted from the
file's own arrays; of a model that reads, its input."""
from __future__ import annotations

import json

import h5py

from conftest import ROOT
from rnnconvert.cli import cli

WEIGHTS_ONLY = ROOT / "fixtures" / "weights_only" / "tfkeras2_lstm_bigru_rnn" / "weights.h5"


def _stored_sizes(path, names):
    """Array sizes of the named layers, read from the file with h5py (the oracle)."""
    total = 0
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            nonlocal total
            if isinstance(obj, h5py.Dataset) and name.split("/")[0] in names:
                total += obj.size
        f.visititems(visit)
    return total


def test_header_of_a_model_that_does_not_read_whole(runner):
    res = runner.invoke(cli, ["inspect", str(WEIGHTS_ONLY)])
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    params = _stored_sizes(WEIGHTS_ONLY, ("lstm_a", "bi", "rnn_c"))
    assert lines[:4] == [
        f"file    {WEIGHTS_ONLY}",
        "format  keras",
        "model   does not read as a whole (why: 'whole model' below); its 3 recurrent layers, each read on its "
        "own as --layer NAME reads it",
        f"params  {params:,} in these layers"]
    assert not any(x.startswith("input ") for x in lines)
    assert any(x.startswith("whole model: not convertible: ") for x in lines)
    desc = json.loads(runner.invoke(cli, ["inspect", str(WEIGHTS_ONLY), "--json"]).stdout)
    assert desc["input"] == {"name": None, "features": None, "dtype": None, "layout": None, "time_steps": None}


def test_header_of_a_model_that_reads_shows_its_input(runner):
    path = ROOT / "fixtures" / "tfkeras2" / "lstm_last_softmax" / "model.h5"
    res = runner.invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 0, res.stderr
    line = res.stdout.splitlines()[2]
    assert line.startswith("input   '") and " features, float32, batch_time_feature, time steps " in line
