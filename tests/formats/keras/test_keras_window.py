"""Keras's Cropping1D is a time window: built and run by live Keras 3 (torch backend), saved, read by rnnconvert's
Keras reader; the mask of a Masking layer does not pass a Cropping1D (Keras 3 drops it, and the canonical model
says so), so the recurrent layer after it runs every step.  Oracle: Keras's predict, 1e-5."""
from __future__ import annotations

import numpy as np
import pytest

import rnnconvert

keras = pytest.importorskip("keras")
K = keras.layers


@pytest.mark.parametrize("crop", [(1, 0), (2, 1), (0, 3)])
def test_cropping1d_after_a_masked_lstm_reads_and_predicts_as_keras(crop, tmp_path):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((None, 3)), K.Masking(0.0), K.LSTM(4, return_sequences=True),
                              K.Cropping1D(crop), K.GRU(2, return_sequences=True)])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8, 3)).astype(np.float32)
    x[0, 5:] = 0                  # masked steps at the end, in the middle and none
    x[1, 2:4] = 0
    x[2] *= 6
    model.save(tmp_path / "m.keras")
    read = rnnconvert.read(str(tmp_path / "m.keras"))
    window = read.layers[2]
    assert (window.kind, window.start, window.stop) == ("time_window", crop[0], -crop[1] if crop[1] else None)
    np.testing.assert_allclose(rnnconvert.predict(read, x), model.predict(x, verbose=0), atol=1e-5, rtol=1e-5)
