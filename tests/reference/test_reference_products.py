"""The float32 fast paths of the time loops (`products.recurrent`'s blocked R*Ht-1, the flat input
projection, the LSTM's fused input and sigmoid through tanh) against PyTorch and onnxruntime.

They are taken from MIN_WORK up, and the blocks only on OpenBLAS's AVX-512 kernels; the tests lower
MIN_WORK and allow the blocks whatever the CPU (they change only the summation order), and check that
both ran; below MIN_WORK the float32 pass takes neither.  Hidden 44 leaves a partial block of gate
rows in every cell (LSTM 176 = 5*32 + 16, GRU 132, reset-before 88 and 44, RNN 44); two directions, two
layers, non-zero initial states, a saturating batch row, and a batch run as column chunks on threads.
"""
from __future__ import annotations

import numpy as np
import pytest

from rnnconvert.model import HARD_SIGMOID_KERAS2, SIGMOID, TANH, DirectionWeights, InputSpec, Model, Recurrent, gates
from rnnconvert.reference import blas, cells as reference_cells, lstm as reference_lstm, products
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
    decide = products.blocked

    def spy(dtype, rows, S, batch):
        decisions.append(decide(dtype, rows, S, batch))
        return decisions[-1]
    monkeypatch.setattr(products, "blocked", spy)
    project = reference_cells._input_projection

    def projection_spy(X, W, bias, cols, flat=False):
        decisions.flat.append(flat)
        return project(X, W, bias, cols, flat)
    monkeypatch.setattr(reference_cells, "_input_projection", projection_spy)
    gate_projection = reference_lstm._gate_projection

    def gate_projection_spy(*args):                      # the fast LSTM's flat projection, gate by gate
        decisions.flat.append(True)
        return gate_projection(*args)
    monkeypatch.setattr(reference_lstm, "_gate_projection", gate_projection_spy)
    recurrent = products.recurrent

    def recurrent_spy(R, *args, **kwargs):
        decisions.widths.append(R.shape[-1])
        return recurrent(R, *args, **kwargs)
    monkeypatch.setattr(products, "recurrent", recurrent_spy)
    return decisions


class Decisions(list):
    def __init__(self):
        super().__init__()
        self.flat = []
        self.widths = []          # the columns of each recurrent product's matrix: S, or S+F+1 fused


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
    if cell == "lstm":                 # layer 0's input (6) joins its product, layer 1's (2*S) is projected
        S = proj_size or H
        assert blocked.widths == [S + F + 1] * 2 + [S] * 2, blocked.widths
    del blocked[:], blocked.flat[:]
    np.testing.assert_allclose(forward(model, x), y, atol=2e-5, rtol=1e-4)
    assert not any(blocked) and blocked.flat and not any(blocked.flat)     # float64 keeps both as they were


def onnx_run(kind, x, clip=None, reset_after=True, peepholes=False, seed=0, activations=None, hidden=H):
    """One bidirectional ONNX LSTM/GRU node with seeded weights and initial states, run by onnxruntime;
    returns (Y [B, T, 2H], the canonical model).  `activations`: the canonical ones, each direction's
    (ONNX names them per direction)."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    G, batch = gates.GATE_COUNT[kind], x.shape[0]
    rng = np.random.default_rng(seed)
    arrays = {"W": rng.uniform(-0.6, 0.6, (2, G * hidden, F)),
              "R": rng.uniform(-0.3, 0.3, (2, G * hidden, hidden)),
              "B": rng.uniform(-0.6, 0.6, (2, 2 * G * hidden)),
              "initial_h": 0.5 * rng.standard_normal((2, batch, hidden))}
    inputs = ["X", "W", "R", "B", "", "initial_h"]
    if kind == "lstm":
        arrays["initial_c"] = 0.5 * rng.standard_normal((2, batch, hidden))
        inputs.append("initial_c")
        if peepholes:
            arrays["P"] = rng.uniform(-0.5, 0.5, (2, 3 * hidden))
            inputs.append("P")
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    attrs = {"hidden_size": hidden, "direction": "bidirectional"}
    if clip is not None:
        attrs["clip"] = clip
    activations = activations or ACTIVATIONS[kind]
    if activations != ACTIVATIONS[kind]:
        onnx_names = {"sigmoid": "Sigmoid", "tanh": "Tanh", "hard_sigmoid": "HardSigmoid", "relu": "Relu"}
        attrs["activations"] = [onnx_names[a.name] for a in activations] * 2
        alphas = [a.alpha for a in activations if a.alpha is not None] * 2
        if alphas:
            attrs["activation_alpha"] = alphas
            attrs["activation_beta"] = [a.beta for a in activations if a.beta is not None] * 2
    if kind == "gru":
        attrs["linear_before_reset"] = int(reset_after)
    node = helper.make_node({"lstm": "LSTM", "gru": "GRU"}[kind], inputs, ["Y"], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["time", "batch", F])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, name) for name, a in arrays.items()])
    session = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
                                   .SerializeToString(), providers=["CPUExecutionProvider"])
    Y = session.run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2))})[0]       # [T, 2, B, hidden]
    y = Y.transpose(2, 0, 1, 3).reshape(batch, x.shape[1], 2 * hidden)
    canonical = {"lstm": gates.iofc_to_ifgo, "gru": gates.zrh_to_rzn}[kind]
    a = arrays
    weights = [DirectionWeights(
        W=canonical(a["W"][d]), R=canonical(a["R"][d]), Wb=canonical(a["B"][d, :G * hidden]),
        Rb=canonical(a["B"][d, G * hidden:]), h0=a["initial_h"][d],
        c0=a["initial_c"][d] if kind == "lstm" else None,
        P=gates.peepholes_to_canonical(a["P"][d]) if peepholes else None) for d in range(2)]
    layer = Recurrent("onnx_layer", kind, hidden, "bidirectional", weights, activations, clip=clip,
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


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("hidden", [44, 64])          # 64: whole blocks of gate rows, written in place
@pytest.mark.parametrize("case", ["sigmoid", "sigmoid_clip", "hard_sigmoid", "hard_sigmoid_clip"])
def test_fast_lstm_matches_onnxruntime(blocked, monkeypatch, case, hidden, fused):
    """The LSTM's fast path in two column chunks of unequal width: sigmoid gates through one tanh (the clip then halved
    for them) or other gates as they are, the input joined to the recurrent product or projected."""
    monkeypatch.setattr(reference_cells, "MIN_CHUNK", 4)
    monkeypatch.setattr(blas, "threads", lambda: 2)
    if not fused:
        monkeypatch.setattr(reference_lstm, "FUSED_INPUT_FRACTION", 0)
    through_tanh = []
    decide = reference_lstm._sigmoid_through_tanh
    monkeypatch.setattr(reference_lstm, "_sigmoid_through_tanh",
                        lambda *args: through_tanh.append(decide(*args)) or through_tanh[-1])
    activations = [HARD_SIGMOID_KERAS2, TANH, TANH] if case.startswith("hard") else [SIGMOID, TANH, TANH]
    x = sequence(11)                                       # chunks of 5 and 6 columns
    y, model = onnx_run("lstm", x, clip=0.8 if case.endswith("clip") else None, activations=activations,
                        hidden=hidden)
    got = forward(model, x, dtype=np.float32)
    np.testing.assert_allclose(got, y, atol=2e-5, rtol=1e-4)
    assert through_tanh == [not case.startswith("hard")] * 2
    assert blocked.widths == [hidden + F + 1 if fused else hidden] * 2
    assert blocked.flat == ([] if fused else [True] * 4)         # each chunk of each direction
    assert all(blocked), blocked


def test_fast_lstm_without_blocks_keeps_its_other_parts(blocked, monkeypatch):
    """On a BLAS whose small-matrix kernel was not measured the fast LSTM runs the plain product, so its
    input is projected (the fused input pays only blocked), and its sigmoid gates still go through tanh."""
    monkeypatch.setattr(blas, "core", lambda: "haswell")
    monkeypatch.setattr(reference_cells, "MIN_CHUNK", 4)
    monkeypatch.setattr(blas, "threads", lambda: 2)
    x = sequence(10)
    y, model = onnx_run("lstm", x, hidden=64)
    np.testing.assert_allclose(forward(model, x, dtype=np.float32), y, atol=2e-5, rtol=1e-4)
    assert blocked and not any(blocked) and blocked.widths == [64] * 2 and blocked.flat == [True] * 4


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
    assert products.blocked(np.float32, 2048, 512, 32) and products.blocked(np.float32, 2048, 512, 16)
    assert products.blocked(np.float32, 1024, 256, 2)               # verification's batches
    assert not products.blocked(np.float64, 2048, 512, 16)
    assert not products.blocked(np.float32, 2048, 512, 64)          # 32*512*64 > 1e6: the packed product
    assert not products.blocked(np.float32, 20, 5, 3)               # fewer rows than one block
    monkeypatch.setattr(blas, "core", lambda: "haswell")
    assert not products.blocked(np.float32, 2048, 512, 16)
    monkeypatch.setattr(blas, "core", lambda: None)
    assert not products.blocked(np.float32, 2048, 512, 16)


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
