"""Real Keras files with an Embedding or a Conv1D front end from ../shared/wild (skipped where that
folder is missing): `rnnconvert predict` (the reference pass) matches each case's y.npy, which the
original framework computed, within 1e-4."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import WILD
from rnnconvert.cli import cli

CASES = {"k209_imdb_embed_lstm": "rnn_model.h5", "k224_embed_bigru_reset_before": "bi_gru_model.h5",
         "k3132_h5_embed_gru": "gru_model.h5", "tf214_sunspot_conv1d_lstm3": "rnn_model.h5"}
pytestmark = pytest.mark.skipif(not WILD.is_dir(), reason=f"{WILD} is missing")


@pytest.mark.parametrize("case", sorted(CASES))
def test_wild_front_end_predicts_y(case, runner, tmp_path):
    folder = WILD / case
    x, y = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    res = runner.invoke(cli, ["predict", str(folder / CASES[case]), "--inputs", str(folder / "x.npy"),
                              "--output", str(tmp_path / "y.npy")])
    assert res.exit_code == 0, res.output + res.stderr
    got = np.load(tmp_path / "y.npy")
    assert got.shape == y.shape
    assert np.all(np.abs(got - y) <= 1e-4 + 1e-4 * np.abs(y)), np.abs(got - y).max()
