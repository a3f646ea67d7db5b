"""Writers and readers hold the weights once (traced numpy allocations): MATLAB v7.3 and Keras writers
make each recurrent kernel as they write it, the .mat reader drops each loaded layer once converted."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from test_onnx_wire import arrays_of, bilstm

import rnnconvert


def test_v73_writing_and_reading_hold_each_weight_once(tmp_path):
    model = bilstm(seed=3, hidden=128, features=128, layers=8)      # 12.6 MB, no array over 1 MB
    model.layers = [layer for layer in model.layers if layer.kind == "lstm"]
    for layer in model.layers:
        layer.output = "sequence"
    weights = sum(a.nbytes for a in arrays_of(model).values())
    path = tmp_path / "m.mat"
    tracemalloc.start()
    try:
        rnnconvert.write(model, path, version="7.3")
        written = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        back = rnnconvert.read(path)
        read = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written < 0.4 * weights, (written, weights)      # was 1.25x: every layer concatenated first
    assert read < 1.5 * weights, (read, weights)            # was 2.3x: the loaded arrays kept to the end
    x = np.random.default_rng(0).standard_normal((2, 5, model.input.features)).astype(np.float32)
    np.testing.assert_allclose(rnnconvert.predict(back, x), rnnconvert.predict(model, x), atol=1e-6)


@pytest.mark.parametrize("name", ["m.keras", "m.h5"])
def test_keras_writing_makes_each_kernel_as_it_writes_it(tmp_path, name):
    model = bilstm(seed=4, hidden=128, features=128, layers=8)
    weights = sum(a.nbytes for a in arrays_of(model).values())
    tracemalloc.start()
    try:
        rnnconvert.write(model, tmp_path / name)
        written = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written < 0.4 * weights, (written, weights)      # was 2x: every kernel in float64 first
    x = np.random.default_rng(0).standard_normal((2, 5, model.input.features)).astype(np.float32)
    back = rnnconvert.read(tmp_path / name)
    np.testing.assert_allclose(rnnconvert.predict(back, x), rnnconvert.predict(model, x), atol=1e-6)
