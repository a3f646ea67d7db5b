"""The reference pass's fast paths against independent oracles.

The activations it computes its own way (sigmoid as 1/(1+exp(-x)), tanh as 2/(1+exp(-2x))-1) are
checked against scipy's expit and numpy's tanh computed in float64 on extreme, tiny, NaN and inf
inputs; a batch run as column chunks on several threads against PyTorch; memory: one direction's
float64 weights at a time.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.special import expit

from rnnconvert.reference import blas, cells as reference_cells
from rnnconvert.model import SIGMOID, TANH, DirectionWeights, InputSpec, Model, Recurrent
from rnnconvert.reference.network import activate, forward, forward_with_states
from test_reference import (
    ONNX_CELLS, assert_close, onnxruntime_run, sequence, stack, torch_layers, torch_module, torch_run, torch_states,
)



@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


# Absolute error bounds: 2 ulp of 1 in each dtype (np.tanh itself is within 1 ulp).
BOUND = {np.float32: 2.4e-7, np.float64: 4.5e-16}


def extreme_inputs(dtype) -> np.ndarray:
    info = np.finfo(dtype)
    powers = 10.0 ** np.arange(np.floor(np.log10(info.tiny)), np.log10(info.max))
    grid = np.linspace(-50, 50, 200_001)
    rng = np.random.default_rng(0)
    x = np.concatenate([grid, powers, -powers, rng.standard_normal(100_000) * 1e-6,
                        rng.standard_normal(100_000) * 8, [0.0, -0.0, info.tiny, -info.tiny, info.max,
                                                           -info.max, info.smallest_subnormal]])
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_agrees_with_numpy_in_float64(dtype):
    x = extreme_inputs(dtype)
    got = activate(TANH, x)
    assert got.dtype == dtype
    err = np.abs(got.astype(np.float64) - np.tanh(x.astype(np.float64)))
    assert err.max() <= BOUND[dtype], f"max abs error {err.max():.3g} at x={x[err.argmax()]!r}"
    assert np.all(np.abs(got) <= 1)
    assert activate(TANH, np.array([20.0, -20.0, 1e30], dtype)).tolist() == [1.0, -1.0, 1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_agrees_with_scipy_expit_in_float64(dtype):
    x = extreme_inputs(dtype)
    got = activate(SIGMOID, x)
    assert got.dtype == dtype
    err = np.abs(got.astype(np.float64) - expit(x.astype(np.float64)))
    assert err.max() <= BOUND[dtype] / 2, f"max abs error {err.max():.3g} at x={x[err.argmax()]!r}"
    assert np.all((got >= 0) & (got <= 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation, expected", [(TANH, [np.nan, 1.0, -1.0, 0.0]),
                                                  (SIGMOID, [np.nan, 1.0, 0.0, 0.5])])
def test_nan_and_inf_inputs(activation, expected, dtype):
    with np.errstate(all="raise"):                       # and no floating-point warning on the way
        got = activate(activation, np.array([np.nan, np.inf, -np.inf, 0.0], dtype))
    np.testing.assert_allclose(got, np.array(expected, dtype), atol=1e-30)


# ------------------------------------------------------------------------- batch in column chunks

@pytest.fixture
def chunked(monkeypatch):
    """Any batch of >= 4 columns runs as up to 3 chunks on threads; records the chunk counts used."""
    monkeypatch.setattr(reference_cells, "MIN_WORK", 0)
    monkeypatch.setattr(reference_cells, "MIN_CHUNK", 4)
    monkeypatch.setattr(blas, "threads", lambda: 3)
    used = []
    run = reference_cells._run_chunks

    def spy(loop, chunks):
        used.append([(c.start, c.stop) for c in chunks])
        return run(loop, chunks)
    monkeypatch.setattr(reference_cells, "_run_chunks", spy)
    return used


@pytest.mark.parametrize("cell, options", [("lstm", {}), ("lstm", {"proj_size": 2}), ("gru", {}),
                                           ("rnn_tanh", {})])
def test_batch_in_chunks_matches_torch(torch, chunked, cell, options):
    batch = 14
    module = torch_module(torch, cell, bidirectional=True, num_layers=2, **options).double()
    h0, c0 = (None if s is None else s.astype(np.float64) for s in torch_states(torch, module, batch))
    x = sequence(30, batch=batch).astype(np.float64)
    y, h_n, c_n = torch_run(torch, module, x, h0, c0)
    got, states = forward_with_states(stack(*torch_layers(module, cell, "sequence", h0, c0)), x)
    assert chunked and all(c == [(0, 4), (4, 9), (9, 14)] for c in chunked)
    assert_close(got, y, atol=1e-12, rtol=1e-10)
    assert_close(np.stack([s.h for layer_states in states for s in layer_states]), h_n, atol=1e-12, rtol=1e-10)
    if c_n is not None:
        assert_close(np.stack([s.c for layer_states in states for s in layer_states]), c_n, atol=1e-12, rtol=1e-10)
    f32 = forward(stack(*torch_layers(module, cell, "sequence", h0, c0)), x.astype(np.float32), dtype=np.float32)
    assert_close(f32, y)


@pytest.mark.parametrize("cell", ["gru_before", "lstm_clip"])
def test_batch_in_chunks_matches_onnxruntime(chunked, cell):
    """GRU reset before the matmul and an LSTM clip, which PyTorch has not."""
    x = sequence(25, batch=13)
    kind = cell.split("_")[0]
    y, layer = onnxruntime_run(kind, "bidirectional", ONNX_CELLS[kind], x, reset_after=False,
                               clip=0.8 if cell == "lstm_clip" else None)
    assert_close(forward(stack(layer), x), y)
    assert chunked and all(c == [(0, 4), (4, 8), (8, 13)] for c in chunked)


def test_blas_threads_are_restored_after_a_chunked_run(monkeypatch):
    """With OpenBLAS on 2 threads, a large enough batch runs as 2 chunks with BLAS on 1 thread,
    and the 2 threads are back afterwards."""
    functions = blas._functions()
    if functions is None:
        pytest.skip("numpy's BLAS is not OpenBLAS here")
    get, set_ = functions
    H, F, batch = 256, 8, 16                       # 4*H*H*batch multiply-adds per step >= MIN_WORK
    assert 4 * H * H * batch >= reference_cells.MIN_WORK
    rng = np.random.default_rng(0)
    w = DirectionWeights(W=rng.standard_normal((4 * H, F)) * 0.1, R=rng.standard_normal((4 * H, H)) * 0.05,
                         Wb=np.zeros(4 * H), Rb=np.zeros(4 * H))
    model = Model([Recurrent("lstm", "lstm", H, "forward", [w], [SIGMOID, TANH, TANH])],
                  InputSpec(features=F, layout="batch_time_feature"))
    seen = []
    loop_threads = reference_cells._run_chunks

    def spy(loop, chunks):
        seen.append(len(chunks))
        return loop_threads(lambda cols: (seen.append(blas.threads()), loop(cols))[1], chunks)
    monkeypatch.setattr(reference_cells, "_run_chunks", spy)
    before = get()
    set_(2)
    try:
        forward(model, rng.standard_normal((batch, 3, F)))
        after = get()
    finally:
        set_(before)
    assert seen == [2, 1, 1] and after == 2


# --------------------------------------------------------------------------------------- memory

def test_float64_weights_are_cast_one_direction_at_a_time():
    """Four directions of float32 weights: the pass never holds much more than one in float64."""
    H, F = 256, 512                         # the second layer takes 2H = F features too
    rng = np.random.default_rng(0)

    def direction():
        return DirectionWeights(W=rng.standard_normal((4 * H, F), np.float32) * 0.05,
                                R=rng.standard_normal((4 * H, H), np.float32) * 0.05,
                                Wb=np.zeros(4 * H, np.float32), Rb=np.zeros(4 * H, np.float32))
    layers = [Recurrent(f"lstm_{k}", "lstm", H, "bidirectional", [direction(), direction()],
                        [SIGMOID, TANH, TANH]) for k in range(2)]
    model = Model(layers, InputSpec(features=F, layout="batch_time_feature"))
    one_direction = (4 * H * F + 4 * H * H) * 8
    x = rng.standard_normal((1, 2, F)).astype(np.float32)
    tracemalloc.start()
    try:
        forward(model, x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.6 * one_direction, f"peak {peak / 1e6:.1f} MB, one direction {one_direction / 1e6:.1f} MB"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_large_input_weights_projected_in_one_flat_matmul_match_torch(torch, monkeypatch, cell):
    """Input weights past LARGE_PROJECTION (a 100M-parameter model's) take the flat matmul: lowered to 0
    here, a small bidirectional stack over several steps and a batch of 3 must still match PyTorch."""
    monkeypatch.setattr(reference_cells, "LARGE_PROJECTION", 0)
    flat = []
    project = reference_cells._input_projection

    def spy(X, W, bias, cols):
        flat.append(W.nbytes >= reference_cells.LARGE_PROJECTION)
        return project(X, W, bias, cols)
    monkeypatch.setattr(reference_cells, "_input_projection", spy)
    module = torch_module(torch, cell, bidirectional=True, num_layers=2).double()
    h0, c0 = (None if s is None else s.astype(np.float64) for s in torch_states(torch, module, 3))
    x = sequence(9, batch=3).astype(np.float64)
    y, _, _ = torch_run(torch, module, x, h0, c0)
    assert_close(forward(stack(*torch_layers(module, cell, "sequence", h0, c0)), x), y, atol=1e-12, rtol=1e-10)
    assert flat and all(flat)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_small_recurrence_runs_with_one_blas_thread(monkeypatch, cell):
    """Verification's batches of 2-3: a per-step matmul below MIN_WORK runs on the caller's thread only
    (BLAS threads cost more than they save there), and the thread count is back afterwards."""
    functions = blas._functions()
    if functions is None:
        pytest.skip("numpy's BLAS is not OpenBLAS here")
    get, set_ = functions
    H, F, batch, gates = 32, 4, 2, {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    rng = np.random.default_rng(0)
    w = DirectionWeights(W=rng.standard_normal((gates * H, F)) * 0.1, R=rng.standard_normal((gates * H, H)) * 0.1,
                         Wb=np.zeros(gates * H), Rb=np.zeros(gates * H))
    acts = {"lstm": [SIGMOID, TANH, TANH], "gru": [SIGMOID, TANH], "rnn": [TANH]}[cell]
    model = Model([Recurrent(cell, cell, H, "forward", [w], acts)], InputSpec(features=F, layout="batch_time_feature"))
    seen = []
    run = reference_cells._run_chunks
    monkeypatch.setattr(reference_cells, "_run_chunks",
                        lambda loop, chunks: run(lambda cols: (seen.append(blas.threads()), loop(cols))[1], chunks))
    before = get()
    set_(2)
    try:
        forward(model, rng.standard_normal((batch, 5, F)))
        after = get()
    finally:
        set_(before)
    assert seen == [1] and after == 2


@pytest.mark.parametrize("clip", [None, 0.7])
@pytest.mark.parametrize("cell", ["lstm", "gru_after", "gru_before"])
def test_float32_pass_matches_onnxruntime(cell, clip):
    """The float32 pass (verification's noise oracle) against onnxruntime's float32 outputs, saturating
    inputs and a clip included, within float32's tolerance."""
    kind = cell.split("_")[0]
    x = sequence(40, batch=3)
    y, layer = onnxruntime_run(kind, "bidirectional", ONNX_CELLS[kind], x, clip=clip, reset_after=cell != "gru_before")
    got = forward(stack(layer), x.astype(np.float32), dtype=np.float32)
    assert got.dtype == np.float32
    assert_close(got, y, atol=2e-5, rtol=2e-5)
