"""The float32 fast paths of the time loops (`products.recurrent`'s blocked R*Ht-1, the flat input
projection) against PyTorch and onnxruntime.

They are taken from MIN_WORK up, and the blocks only on OpenBLAS's AVX-512 kernels; the tests lower
MIN_WORK and allow the blocks whatever the CPU (they change only the summation order), and check that
both ran; below MIN_WORK the float32 pass takes neither.  Hidden 44 leaves a partial block of gate
rows in every cell (LSTM 176 = 5*32 + 16, GRU 132, reset-before 88 and 44, RNN 44); two directions, two
layers, non-zero initial states, a saturating batch row, and a batch run as column chunks on threads.
"""
from __future__ import annotations

import numpy as np
import pytest

from rnnconvert.model import SIGMOID, TANH, DirectionWeights, InputSpec, Model, Recurrent, gates
from rnnconvert.reference import blas, cells as reference_cells, products
from rnnconvert.reference.network import forward

H, F, T = 44, 6, 30
ACTIVATIONS = {"lstm": [SIGMOID, TANH, TANH], "gru": [SIGMOID, TANH], "rnn": [TANH]}


@pytest.fixture
def blocked(monkeypatch):
    """The fast paths for any recurrence, the blocked product on any CPU; records each blocking decision
    (True: blocked) and each input projection (True: flat)."""
    monkeypatch.setattr(reference_cells, "MIN_WORK", 0)
    monkeypatch.setattr(blas, "core", lambda: "skylakex")
    decisions = Decisions()
    decide = products._blocked

    def spy(dtype, rows, S, batch):
        decisions.append(decide(dtype, rows, S, batch))
        return decisions[-1]
    monkeypatch.setattr(products, "_blocked", spy)
    project = reference_cells._input_projection

    def projection_spy(X, W, bias, cols, flat=False):
        decisions.flat.append(flat)
        return project(X, W, bias, cols, flat)
    monkeypatch.setattr(reference_cells, "_input_projection", projection_spy)
    return decisions


class Decisions(list):
    def __init__(self):
        super().__init__()
        self.flat = []


def sequence(batch, seed=0):
    x = np.random.default_rng(seed).standard_normal((batch, T, F)).astype(np.float32)
    x[-1] *= 6                                            # gates saturate on this row
    return x


def torch_model(torch, cell, batch, proj_size=0):
    """A 2-layer bidirectional PyTorch module, its output on non-zero initial states, and the canonical model."""
    torch.manual_seed(0)
    kind = cell.split("_")[0]
    options = dict(num_layers=2, bidirectional=True, batch_first=True)
    module = {"lstm": lambda: torch.nn.LSTM(F, H, proj_size=proj_size, **options),
              "gru": lambda: torch.nn.GRU(F, H, **options),
              "rnn": lambda: torch.nn.RNN(F, H, **options)}[kind]().eval()
    S = proj_size or H
    rng = np.random.default_rng(1)
    h0 = (0.5 * rng.standard_normal((4, batch, S))).astype(np.float32)
    c0 = (0.5 * rng.standard_normal((4, batch, H))).astype(np.float32)
    x = sequence(batch)
    state = torch.from_numpy(h0) if kind != "lstm" else (torch.from_numpy(h0), torch.from_numpy(c0))
    with torch.no_grad():
        y = module(torch.from_numpy(x), state)[0].numpy()
    layers = []
    for k in range(2):
        weights = []
        for d, suffix in ((0, ""), (1, "_reverse")):
            def p(name):
                return getattr(module, f"{name}_l{k}{suffix}").detach().numpy().copy()
            weights.append(DirectionWeights(
                W=gates.to_canonical(p("weight_ih"), kind, "torch"), R=gates.to_canonical(p("weight_hh"), kind, "torch"),
                Wb=gates.to_canonical(p("bias_ih"), kind, "torch"), Rb=gates.to_canonical(p("bias_hh"), kind, "torch"),
                h0=h0[2 * k + d], c0=c0[2 * k + d] if kind == "lstm" else None,
                proj=p("weight_hr") if proj_size else None))
        layers.append(Recurrent(f"{kind}_{k}", kind, H, "bidirectional", weights, ACTIVATIONS[kind]))
    return x, y, Model(layers, InputSpec(features=F, layout="batch_time_feature"))


@pytest.mark.parametrize("chunks", [1, 2])
@pytest.mark.parametrize("cell, proj_size", [("lstm", 0), ("lstm", 12), ("gru", 0), ("rnn", 0)])
def test_blocked_float32_pass_matches_torch(blocked, monkeypatch, cell, proj_size, chunks):
    torch = pytest.importorskip("torch")
    batch = 10
    if chunks > 1:                                        # two column chunks of 5 on two threads
        monkeypatch.setattr(reference_cells, "MIN_WORK", 0)
        monkeypatch.setattr(reference_cells, "MIN_CHUNK", 4)
        monkeypatch.setattr(blas, "threads", lambda: chunks)
    x, y, model = torch_model(torch, cell, batch, proj_size)
    got = forward(model, x, dtype=np.float32)
    assert got.dtype == np.float32 and got.shape == y.shape
    np.testing.assert_allclose(got, y, atol=2e-5, rtol=1e-4)
    assert blocked and all(blocked), blocked                # every product of every direction was blocked
    assert blocked.flat and all(blocked.flat)
    del blocked[:], blocked.flat[:]
    np.testing.assert_allclose(forward(model, x), y, atol=2e-5, rtol=1e-4)
    assert not any(blocked) and blocked.flat and not any(blocked.flat)     # float64 keeps both as they were


def onnx_run(kind, x, clip=None, reset_after=True, peepholes=False, seed=0):
    """One bidirectional ONNX LSTM/GRU node with seeded weights and initial states, run by onnxruntime;
    returns (Y [B, T, 2H], the canonical model)."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    G, batch = gates.GATE_COUNT[kind], x.shape[0]
    rng = np.random.default_rng(seed)
    arrays = {"W": rng.uniform(-0.6, 0.6, (2, G * H, F)), "R": rng.uniform(-0.3, 0.3, (2, G * H, H)),
              "B": rng.uniform(-0.6, 0.6, (2, 2 * G * H)), "initial_h": 0.5 * rng.standard_normal((2, batch, H))}
    inputs = ["X", "W", "R", "B", "", "initial_h"]
    if kind == "lstm":
        arrays["initial_c"] = 0.5 * rng.standard_normal((2, batch, H))
        inputs.append("initial_c")
        if peepholes:
            arrays["P"] = rng.uniform(-0.5, 0.5, (2, 3 * H))
            inputs.append("P")
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    attrs = {"hidden_size": H, "direction": "bidirectional"}
    if clip is not None:
        attrs["clip"] = clip
    if kind == "gru":
        attrs["linear_before_reset"] = int(reset_after)
    node = helper.make_node({"lstm": "LSTM", "gru": "GRU"}[kind], inputs, ["Y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["time", "batch", F])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, name) for name, a in arrays.items()])
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
                                   .SerializeToString(), providers=["CPUExecutionProvider"])
    Y = session.run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2))})[0]       # [T, 2, B, H]
    y = Y.transpose(2, 0, 1, 3).reshape(batch, x.shape[1], 2 * H)
    canonical = {"lstm": gates.iofc_to_ifgo, "gru": gates.zrh_to_rzn}[kind]
    a = arrays
    weights = [DirectionWeights(
        W=canonical(a["W"][d]), R=canonical(a["R"][d]), Wb=canonical(a["B"][d, :G * H]),
        Rb=canonical(a["B"][d, G * H:]), h0=a["initial_h"][d], c0=a["initial_c"][d] if kind == "lstm" else None,
        P=gates.peepholes_to_canonical(a["P"][d]) if peepholes else None) for d in range(2)]
    layer = Recurrent("onnx_layer", kind, H, "bidirectional", weights, ACTIVATIONS[kind], clip=clip,
                      reset_after=reset_after)
    return y, Model([layer], InputSpec(features=F, layout="batch_time_feature"))


@pytest.mark.parametrize("case", ["gru_before", "gru_before_clip", "lstm_peepholes", "lstm_peepholes_clip"])
def test_blocked_float32_pass_matches_onnxruntime(blocked, case):
    """GRU reset before the matmul (two products a step) and LSTM peepholes, which PyTorch has not."""
    kind = case.split("_")[0]
    x = sequence(7)
    y, model = onnx_run(kind, x, clip=0.8 if case.endswith("clip") else None, reset_after=False,
                        peepholes=kind == "lstm")
    got = forward(model, x, dtype=np.float32)
    np.testing.assert_allclose(got, y, atol=2e-5, rtol=1e-4)
    assert blocked and all(blocked) and all(blocked.flat), blocked


def test_below_min_work_the_float32_pass_takes_neither_fast_path(blocked, monkeypatch):
    """Verification's small batches: the float32 pass (its noise oracle) stays as it was."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(reference_cells, "MIN_WORK", 4 * H * H * 3 + 1)          # just above batch 3's LSTM
    x, y, model = torch_model(torch, "lstm", 3)
    np.testing.assert_allclose(forward(model, x, dtype=np.float32), y, atol=2e-5, rtol=1e-4)
    assert not any(blocked) and blocked.flat and not any(blocked.flat)
    monkeypatch.setattr(reference_cells, "MIN_WORK", 4 * H * H * 3)
    forward(model, x, dtype=np.float32)
    assert any(blocked) and any(blocked.flat)


def test_blocked_only_for_float32_on_measured_kernels_and_small_blocks(monkeypatch):
    """What was measured faster: float32, an OpenBLAS AVX-512 kernel, BLOCK*S*batch within the small
    kernel's 1e6 (the forward benchmark's LSTM(512) at batch 32 and its chunks of 16 are)."""
    monkeypatch.setattr(blas, "core", lambda: "skylakex")
    assert products._blocked(np.float32, 2048, 512, 32) and products._blocked(np.float32, 2048, 512, 16)
    assert products._blocked(np.float32, 1024, 256, 2)               # verification's batches
    assert not products._blocked(np.float64, 2048, 512, 16)
    assert not products._blocked(np.float32, 2048, 512, 64)          # 32*512*64 > 1e6: the packed product
    assert not products._blocked(np.float32, 20, 5, 3)               # fewer rows than one block
    monkeypatch.setattr(blas, "core", lambda: "haswell")
    assert not products._blocked(np.float32, 2048, 512, 16)
    monkeypatch.setattr(blas, "core", lambda: None)
    assert not products._blocked(np.float32, 2048, 512, 16)


def test_blocked_product_writes_into_the_given_output_in_either_memory_order(monkeypatch):
    """The loops hand their gate buffers and state slices as `out`; the product must land there."""
    monkeypatch.setattr(blas, "core", lambda: "skylakex")
    rng = np.random.default_rng(0)
    R = rng.standard_normal((70, 8)).astype(np.float32)            # two blocks and 6 rows past them
    h = rng.standard_normal((8, 3)).astype(np.float32)
    expected = R.astype(np.float64) @ h
    for state_by_batch in (False, True):
        product = products.recurrent(R, 3, state_by_batch=state_by_batch)
        for out in (np.zeros((70, 3), np.float32), np.zeros((3, 70), np.float32).T):
            product(np.asfortranarray(h) if state_by_batch else h, out)
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_blas_core_names_openblas_kernel_or_none():
    """`core` reads OpenBLAS's own name for the kernel it picked (lower case), None for another BLAS."""
    name = blas.core()
    if blas._functions() is None:
        assert name is None
    else:
        assert isinstance(name, str) and name and name == name.lower() and " " not in name
