"""PyTorch state dicts (.pt/.pth, .safetensors): reading, writing, the emitted module, the runtime hook.

Oracles are independent of the code under test: torch's own predictions (the fixtures' outputs.npz,
and modules built here and run by torch), the source frameworks' stored predictions for Keras and
ONNX fixtures, the `safetensors` package for the safetensors reader, and rnnconvert's numpy
reference pass (a separate implementation) for canonical settings no framework fixture has.
"""
from __future__ import annotations

import importlib.util
import json
import re
import struct
import sys
from collections import OrderedDict

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES, cases
from rnnconvert.errors import InputError, UnknownFormatError, UnsupportedError
from rnnconvert.formats import torch as torch_format
from rnnconvert.formats.torch import safetensors_io
from rnnconvert.model import (LINEAR, SIGMOID, TANH, Activation, ActivationLayer, Dense, DirectionWeights,
    Dropout, InputSpec, Model, Recurrent, layer_fields)
from rnnconvert.formats.torch.module_code import activation_code
from rnnconvert.model import ACTIVATIONS
from rnnconvert.reference.network import activate, forward
from rnnconvert.errors import RuntimeUnavailable

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
TOL = 1e-4
TORCH_CASES = sorted(p.name for p in (FIXTURES / "torch").iterdir() if p.is_dir())
# The fixtures' arch.json said as plain hints.
HINTS = {
    "lstm_2layer_bidir_linear": {"head": "last_step", "batch_first": True, "activations": {},
    "order": ["rnn", "fc"]},
    "gru_linear": {"head": "last_step", "batch_first": True, "activations": {},
    "order": ["rnn", "fc"]},
    "rnn_relu_linear": {"nonlinearity": "relu", "head": "last_step", "batch_first": True, "activations": {},
    "order": ["rnn", "fc"]},
    "lstm_proj_linear": {"head": "last_step", "batch_first": True, "activations": {},
    "order": ["rnn", "fc"]},
}


def io(folder):
    xs, ys = np.load(folder / "inputs.npz"), np.load(folder / "outputs.npz")
    return [(k, xs[k], ys[k]) for k in xs.files]


def import_file(path):
    name = f"emitted_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_emitted(code_path, weights, x):
    """The emitted file on its own: its load() (strict load_state_dict) and forward."""
    net = import_file(code_path).load(weights)
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def assert_same_model(a, b):
    assert a.input == b.input
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    for la, lb in zip(a.layers, b.layers):
        assert type(la) is type(lb) and layer_fields(la) == layer_fields(lb), la.name
        arrays_a, arrays_b = la.arrays(), lb.arrays()
        assert arrays_a.keys() == arrays_b.keys(), la.name
        for k in arrays_a:
            assert arrays_a[k].dtype == arrays_b[k].dtype, k
            assert arrays_a[k].tobytes() == arrays_b[k].tobytes(), k


# ------------------------------------------------------------------------------ torch fixtures

@pytest.mark.parametrize("hints", ["arch.json", "dict"])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("case", TORCH_CASES)
def test_fixture_reads_and_reference_matches_torch(case, suffix, hints):
    folder = FIXTURES / "torch" / case
    arch = folder / "arch.json" if hints == "arch.json" else HINTS[case]
    model = rnnconvert.read(folder / f"model{suffix}", arch=arch)
    assert model.source["format"] == ("torch" if suffix == ".pt" else "safetensors")
    assert model.source["assumptions"] == []        # every setting was given
    for key, x, y in io(folder):
        np.testing.assert_allclose(forward(model, x), y, atol=TOL, rtol=0, err_msg=key)


def test_fixture_structure():
    folder = FIXTURES / "torch" / "lstm_2layer_bidir_linear"
    model = rnnconvert.read(folder / "model.pt", arch=folder / "arch.json")
    rnn0, rnn1, fc = model.layers
    assert (rnn0.name, rnn0.cell, rnn0.direction, rnn0.output) == ("rnn_l0", "lstm", "bidirectional", "sequence")
    assert (rnn1.name, rnn1.output, rnn1.input_size) == ("rnn_l1", "last_step", 8)
    assert fc.name == "fc" and fc.kernel.shape == (8, 3)
    proj = rnnconvert.read(FIXTURES / "torch" / "lstm_proj_linear" / "model.pt").layers[0]
    assert proj.weights[0].proj.shape == (3, 6) and proj.state_size == 3
    assert model.source["state_dict_key"] is None


def test_defaults_are_recorded_as_assumptions(tmp_path):
    folder = FIXTURES / "torch" / "rnn_relu_linear"
    model = rnnconvert.read(folder / "model.safetensors")
    assert model.source["assumptions"] == [
        "safetensors files do not keep module order; the only order that chains sizes was taken: rnn, fc",
        "batch_first not stored in a state dict: assumed true, input [batch, time, features] "
        "(give --arch with batch_first: false if the module was time-major)",
        "nn.RNN 'rnn' nonlinearity not stored in a state dict: assumed tanh "
        "(give --arch with nonlinearity: relu if it was)",
        "head not stored in a state dict: 'fc' assumed to read out[:, -1] of 'rnn' (head: last_step; for a "
        "one-direction module h_n[-1] is the same; give --arch with head: final_state if it reads h_n)",
        "activations between modules not stored in a state dict: none assumed "
        "(give --arch with activations: {module: softmax} if forward applies one)",
    ]
    x, y = io(folder)[1][1:]
    assert np.abs(forward(model, x) - y).max() > 0.1     # tanh is not what this module computed
    (tmp_path / "arch.yaml").write_text("nonlinearity: relu\n")
    fixed = rnnconvert.read(folder / "model.pt", arch=str(tmp_path / "arch.yaml"))
    assert not any("nonlinearity" in a for a in fixed.source["assumptions"])
    assert "modules assumed to run in the order the state dict lists them: rnn, fc" in \
        fixed.source["assumptions"][0]
    np.testing.assert_allclose(forward(fixed, x), y, atol=TOL, rtol=0)


def test_bad_arch_hints_are_reported_together(tmp_path):
    pt = FIXTURES / "torch" / "gru_linear" / "model.pt"
    with pytest.raises(InputError) as exc:
        rnnconvert.read(pt, arch={"head": "last", "nonlinearity": "gelu", "colour": 1})
    assert exc.value.message == (
        "invalid architecture hints: unknown field(s) colour; known: batch_first, nonlinearity, head, order, "
        "activations, input_features, state_dict_key, ignore, modules; nonlinearity: 'gelu', expected tanh or relu "
        "(or {module: tanh|relu}); head: 'last', expected one of last_step, final_state, h_n[-1], sequence or a time "
        "window such as out[:, -5:], out[:, 3]")
    with pytest.raises(InputError, match=re.escape("--arch order ['fc'] must list each module once; modules: rnn, fc")):
        rnnconvert.read(pt, arch={"order": ["fc"]})
    with pytest.raises(InputError, match=re.escape("module 'rnn' takes 4 inputs, but 'fc' before it gives 2")):
        rnnconvert.read(pt, arch={"order": ["fc", "rnn"]})
    with pytest.raises(InputError, match=r"--arch input_features 7, but the first module 'rnn' takes 4"):
        rnnconvert.read(pt, arch={"input_features": 7})


# --------------------------------------------------------------- write, emit, run: torch fixtures

@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("case", TORCH_CASES)
def test_torch_fixture_written_back_runs_in_torch(case, suffix, tmp_path):
    folder = FIXTURES / "torch" / case
    model = rnnconvert.read(folder / "model.pt", arch=folder / "arch.json")
    out, code = tmp_path / f"out{suffix}", tmp_path / "model.py"
    assert rnnconvert.write(model, out, emit_module=str(code)) == []
    # The same keys and bits as the file torch saved: the round trip is lossless.
    original = torch.load(folder / "model.pt", weights_only=True)
    written = torch_format.runtime.load_tensors(out)
    assert list(written) == list(original)
    for k in original:
        assert torch.equal(written[k], original[k]), k
    back = rnnconvert.read(out)                      # no hints: the file carries the settings
    assert "assumptions" not in back.source
    assert_same_model(model, back)
    for key, x, y in io(folder):
        np.testing.assert_allclose(run_emitted(code, out, x), y, atol=TOL, rtol=0, err_msg=key)
        np.testing.assert_allclose(torch_format.run(out, x, back), y, atol=TOL, rtol=0, err_msg=key)
    # the runtime hook on the original file too (verification's torch(src) check)
    x, y = io(folder)[2][1:]
    np.testing.assert_allclose(torch_format.run(folder / "model.pt", x, model), y, atol=TOL, rtol=0)


def test_emitted_module_imports_only_torch(tmp_path):
    folder = FIXTURES / "torch" / "lstm_2layer_bidir_linear"
    model = rnnconvert.read(folder / "model.pt", arch=folder / "arch.json")
    rnnconvert.write(model, tmp_path / "m.pt", emit_module=str(tmp_path / "m.py"))
    code = (tmp_path / "m.py").read_text()
    top_level = [line for line in code.splitlines() if re.match(r"(import|from) ", line)]
    assert top_level == ["import torch", "from torch import nn", "import torch.nn.functional as F"]
    assert "self.rnn = nn.LSTM(4, 4, num_layers=2, batch_first=True, bidirectional=True)" in code
    assert "x = x[:, -1]" in code


# ------------------------------------------------------------ write, emit, run: other frameworks

def _other_sources():
    return cases("tfkeras2", "keras3", "tf2onnx", "torch_onnx", suffixes=(".h5", ".onnx"))


REFUSED = {
    "gru_hard_sigmoid": "layer 'gru': nn.GRU has the fixed activations sigmoid/tanh, this layer uses "
                        "hard_sigmoid(alpha={alpha}, beta=0.5)/tanh",
    "lstm_hard_sigmoid": "layer 'lstm': nn.LSTM has the fixed activations sigmoid/tanh/tanh, this layer uses "
                         "hard_sigmoid(alpha={alpha}, beta=0.5)/tanh/tanh",
    "gru_reset_before_last": "layer 'gru': nn.GRU applies the reset gate after the recurrent matmul; this layer "
                             "has reset_after=False (Keras reset_after=False, ONNX linear_before_reset=0), "
                             "which nn.GRU cannot compute",
    "lstm_sigmoid_sigmoid": "layer 'lstm': nn.LSTM has the fixed activations sigmoid/tanh/tanh, this layer "
                            "uses sigmoid/sigmoid/sigmoid",
    "simplernn_selu_dense": "layer 'simple_rnn': nn.RNN computes tanh or relu, this layer uses "
                            "selu(alpha=1.67326, beta=1.0507)",
    **{name: "layer 'embedding': mask_zero makes the recurrent layers after it skip steps whose id is 0, and "
             "PyTorch modules carry no mask (nn.Embedding's padding_idx is no mask; their RNNs would compute "
             "those steps)"
       for name in ("embed_mask_bigru_last", "embed_mask_bilstm_seq", "embed_mask_gru_backwards_seq_dense",
                    "embed_mask_lstm_seq_gap_dense")},
    "masking_lstm_seq_lstm": "layer 'masking': a Keras Masking layer makes the recurrent layers after it skip "
                             "masked steps, and PyTorch modules carry no mask (their RNNs would compute those "
                             "steps)",
}


def _read_or_skip(path):
    try:
        return rnnconvert.read(path)
    except UnknownFormatError as exc:        # that reader not in this tree yet
        pytest.skip(str(exc))


@pytest.mark.parametrize("case", [c for c in _other_sources() if c.name not in REFUSED], ids=lambda c: c.id)
def test_other_framework_written_as_torch_matches_its_predictions(case, tmp_path):
    model = _read_or_skip(case.path)
    suffix = ".safetensors" if case.origin in ("keras3", "tf2onnx") else ".pt"
    out, code = tmp_path / f"m{suffix}", tmp_path / "m.py"
    rnnconvert.write(model, out, emit_module=str(code))
    back = rnnconvert.read(out)
    assert_same_model(model, back)
    for key, x, y in case.io():
        np.testing.assert_allclose(run_emitted(code, out, x), y, atol=TOL, rtol=0, err_msg=key)


@pytest.mark.parametrize("case", [c for c in _other_sources() if c.name in REFUSED], ids=lambda c: c.id)
def test_refused_with_the_layer_and_feature(case, tmp_path):
    model = _read_or_skip(case.path)
    alpha = "0.166667" if case.origin == "keras3" else "0.2"
    with pytest.raises(UnsupportedError) as exc:
        rnnconvert.write(model, tmp_path / "m.safetensors")
    assert exc.value.message == "cannot write as PyTorch modules: " + REFUSED[case.name].format(alpha=alpha)
    assert not (tmp_path / "m.safetensors").exists()


def test_refusal_lists_every_problem(tmp_path):
    w = _dir_weights("gru", 3, 2, 2)
    layer = Recurrent("g", "gru", 2, "forward", [w], [Activation("hard_sigmoid", 0.2, 0.5), TANH],
                      output="last_step", reset_after=False, clip=3.0)
    model = Model([layer], InputSpec(features=3))
    with pytest.raises(UnsupportedError) as exc:
        rnnconvert.write(model, tmp_path / "m.pt")
    assert exc.value.message == (
        "cannot write as PyTorch modules: layer 'g': nn.GRU has the fixed activations sigmoid/tanh, this "
        "layer uses hard_sigmoid(alpha=0.2, beta=0.5)/tanh; layer 'g': nn.GRU applies the reset gate after the "
        "recurrent matmul; this layer has reset_after=False (Keras reset_after=False, ONNX "
        "linear_before_reset=0), which nn.GRU cannot compute; layer 'g': nn.GRU has no cell clip, this layer "
        "clips at 3")


# ------------------------------------------------------------------ modules built here, run by torch

class Net(nn.Module):
    """rnn (nested under `prefix`) + optional Linear read as `head`; the oracle is this forward."""

    def __init__(self, cell, F, H, layers, bidirectional, head, out=3, batch_first=True, proj=0,
                 nonlinearity="tanh", front=0, init_state=False):
        super().__init__()
        kw = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
        inp = front or F
        self.front = nn.Linear(F, front) if front else None
        if cell == "lstm":
            rnn = nn.LSTM(inp, H, proj_size=proj, **kw)
        elif cell == "gru":
            rnn = nn.GRU(inp, H, **kw)
        else:
            rnn = nn.RNN(inp, H, nonlinearity=nonlinearity, **kw)
        self.encoder = nn.Module()
        self.encoder.rnn = rnn
        self.head, self.batch_first, self.cell = head, batch_first, cell
        D, S = 2 if bidirectional else 1, proj or H
        feat = {"h_n[-1]": S, "final_state": S * D}.get(head, S * D)
        self.fc = nn.Linear(feat, out) if head else None
        if init_state:
            g = torch.Generator().manual_seed(1)
            self.register_buffer("h0", torch.randn(layers * D, 1, S, generator=g) * 0.5)
            if cell == "lstm":
                self.register_buffer("c0", torch.randn(layers * D, 1, H, generator=g) * 0.5)
        self.init_state = init_state
        with torch.no_grad():
            g = torch.Generator().manual_seed(7)
            for p in self.parameters():
                if p.ndim == 1:
                    p.add_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        if self.front is not None:
            x = self.front(x)
        hx = None
        if self.init_state:
            b = x.shape[0 if self.batch_first else 1]
            h0 = self.h0.expand(-1, b, -1).contiguous()
            hx = (h0, self.c0.expand(-1, b, -1).contiguous()) if self.cell == "lstm" else h0
        out, state = self.encoder.rnn(x, hx)
        h_n = state[0] if self.cell == "lstm" else state
        if self.head is None:
            return out
        if self.head == "last_step":
            y = out[:, -1] if self.batch_first else out[-1]
        elif self.head == "final_state":
            y = torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.encoder.rnn.bidirectional else h_n[-1]
        elif self.head == "h_n[-1]":
            y = h_n[-1]
        else:
            y = out
        return self.fc(y)


def _inputs(F, batch_first=True, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((3, t, F)).astype(np.float32) for t in (1, 6, 25)]
    for x in xs:
        x[-1] *= 6
    return xs if batch_first else [np.ascontiguousarray(x.transpose(1, 0, 2)) for x in xs]


def _torch_out(net, x):
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


VARIANTS = [
    # cell, layers, bidirectional, head
    *[(c, 2, b, h) for c in ("lstm", "gru", "rnn") for b in (False, True)
      for h in ("last_step", "final_state", "h_n[-1]", "sequence", None)],
]


@pytest.mark.parametrize("cell,layers,bidir,head", VARIANTS)
def test_torch_module_variants(cell, layers, bidir, head, tmp_path):
    torch.manual_seed(3)
    net = Net(cell, 4, 5, layers, bidir, head, nonlinearity="relu" if cell == "rnn" else "tanh").eval()
    torch.save(net.state_dict(), tmp_path / "src.pt")
    arch = {"nonlinearity": "relu"} if cell == "rnn" else {}
    arch["order"] = ["encoder.rnn", "fc"] if head else ["encoder.rnn"]
    if head:
        arch["head"] = head
    model = rnnconvert.read(tmp_path / "src.pt", arch=arch)
    if head == "h_n[-1]" and bidir:
        assert model.layers[1].direction == "reverse" and model.layers[1].output == "final_state"
        assert any("backward direction only" in a for a in model.source["read_notes"])
    xs = _inputs(4)
    for x in xs:
        np.testing.assert_allclose(forward(model, x), _torch_out(net, x), atol=TOL, rtol=0)
    # written back, emitted, run: same keys as the source module, and torch's numbers
    rnnconvert.write(model, tmp_path / "out.safetensors", emit_module=str(tmp_path / "m.py"))
    assert set(torch_format.runtime.load_tensors(tmp_path / "out.safetensors")) == set(net.state_dict())
    for x in xs:
        np.testing.assert_allclose(run_emitted(tmp_path / "m.py", tmp_path / "out.safetensors", x),
                                   _torch_out(net, x), atol=TOL, rtol=0)
    np.testing.assert_allclose(torch_format.run(tmp_path / "src.pt", xs[1], model), _torch_out(net, xs[1]),
                               atol=TOL, rtol=0)


@pytest.mark.parametrize("kw", [
    dict(cell="lstm", layers=1, bidir=False, head="last_step", proj=3, batch_first=False),
    dict(cell="lstm", layers=2, bidir=True, head="final_state", proj=2),
    dict(cell="gru", layers=1, bidir=False, head="sequence", front=6),
    dict(cell="lstm", layers=2, bidir=True, head=None, init_state=True),
    dict(cell="gru", layers=1, bidir=False, head="last_step", init_state=True, batch_first=False),
], ids=["proj_time_major", "proj_bidir_final_state", "linear_front_end", "initial_state", "gru_h0_time_major"])
def test_torch_module_features(kw, tmp_path):
    kw = dict(kw)
    cell, layers, bidir, head = kw.pop("cell"), kw.pop("layers"), kw.pop("bidir"), kw.pop("head")
    torch.manual_seed(5)
    net = Net(cell, 4, 5, layers, bidir, head, **kw).eval()
    torch.save(net.state_dict(), tmp_path / "src.pt")
    arch = {"batch_first": kw.get("batch_first", True)}
    if head:
        arch["head"] = head
    model = rnnconvert.read(tmp_path / "src.pt", arch=arch)
    if kw.get("init_state"):
        assert any("taken as the initial h0 of 'encoder.rnn'" in a for a in model.source["assumptions"])
        assert model.layers[0].weights[0].h0.shape == (model.layers[0].state_size,)
    xs = _inputs(4, kw.get("batch_first", True))
    for x in xs:
        np.testing.assert_allclose(forward(model, x), _torch_out(net, x), atol=TOL, rtol=0)
        np.testing.assert_allclose(torch_format.run(tmp_path / "src.pt", x, model), _torch_out(net, x),
                                   atol=TOL, rtol=0)
    rnnconvert.write(model, tmp_path / "out.pt", emit_module=str(tmp_path / "m.py"))
    assert_same_model(model, rnnconvert.read(tmp_path / "out.pt"))
    for x in xs:
        np.testing.assert_allclose(run_emitted(tmp_path / "m.py", tmp_path / "out.pt", x), _torch_out(net, x),
                                   atol=TOL, rtol=0)


def test_bare_module_and_checkpoint_dict(tmp_path):
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, batch_first=True).eval()
    torch.save({"epoch": 3, "model_state_dict": lstm.state_dict(), "optimizer": {"lr": 0.1}}, tmp_path / "ck.pth")
    model = rnnconvert.read(tmp_path / "ck.pth")
    assert model.source["state_dict_key"] == "model_state_dict"
    assert model.source["assumptions"][0] == "state dict taken from the checkpoint's 'model_state_dict' entry"
    assert "keys without a module prefix read as one nn.LSTM named 'lstm'" in model.source["read_notes"]
    assert model.layers[0].name == "lstm" and model.layers[0].output == "sequence"
    x = _inputs(3)[1]
    with torch.no_grad():
        expected = lstm(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(forward(model, x), expected, atol=TOL, rtol=0)
    np.testing.assert_allclose(torch_format.run(tmp_path / "ck.pth", x, model), expected, atol=TOL, rtol=0)
    rnnconvert.write(model, tmp_path / "again.pt")
    back = rnnconvert.read(tmp_path / "again.pt")
    assert back.source["state_dict_key"] is None and "key_renames" not in back.source
    assert back.source["converted_from"] == {"format": "torch", "path": str(tmp_path / "ck.pth")}
    np.testing.assert_allclose(torch_format.run(tmp_path / "again.pt", x, back), expected, atol=TOL, rtol=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_whole_module_pickle_and_torchscript_are_refused(tmp_path):
    torch.save(nn.LSTM(3, 4), tmp_path / "whole.pt")
    with pytest.raises(InputError, match=re.escape(
            "cannot be loaded with torch.load(weights_only=True): the file pickles Python objects other "
            "than tensors (a whole nn.Module saved with torch.save(model)?); save model.state_dict() instead")):
        rnnconvert.read(tmp_path / "whole.pt")
    torch.jit.save(torch.jit.script(nn.GRU(3, 4)), tmp_path / "scripted.pt")
    assert not torch_format.sniff(tmp_path / "scripted.pt")
    with pytest.raises(InputError) as exc:
        rnnconvert.read(tmp_path / "scripted.pt")
    assert exc.value.message == ("is a TorchScript archive (torch.jit.save); rnnconvert reads state dicts: "
                                 "torch.save(model.state_dict(), 'model.pt')")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(InputError, match="holds a Tensor, expected a state dict"):
        rnnconvert.read(tmp_path / "tensor.pt")


class Tagger(nn.Module):
    """Linear front end, GRU, relu between, Linear head with softmax: activations come from --arch."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 2)          # registered first: state-dict order is not forward order
        self.gru = nn.GRU(6, 5, batch_first=True)
        self.embed = nn.Linear(3, 6)

    def forward(self, x):
        out, _ = self.gru(torch.tanh(self.embed(x)))
        return torch.softmax(self.fc(torch.relu(out)), dim=-1)


def test_arch_activations_and_order(tmp_path):
    torch.manual_seed(2)
    net = Tagger().eval()
    torch.save(net.state_dict(), tmp_path / "t.pt")
    (tmp_path / "arch.yaml").write_text(
        "order: [embed, gru, fc]\nhead: sequence\nactivations: {embed: tanh, gru: relu, fc: softmax}\n")
    model = rnnconvert.read(tmp_path / "t.pt", arch=str(tmp_path / "arch.yaml"))
    assert [(type(la).__name__, la.name) for la in model.layers] == [
        ("Dense", "embed"), ("Recurrent", "gru"), ("ActivationLayer", "gru_activation"), ("Dense", "fc")]
    assert model.source["assumptions"] == [
        "batch_first not stored in a state dict: assumed true, input [batch, time, features] "
        "(give --arch with batch_first: false if the module was time-major)"]
    for x in _inputs(3):
        np.testing.assert_allclose(forward(model, x), _torch_out(net, x), atol=TOL, rtol=0)
        np.testing.assert_allclose(torch_format.run(tmp_path / "t.pt", x, model), _torch_out(net, x),
                                   atol=TOL, rtol=0)
    # without the order, the one order that chains sizes is found and said
    guessed = rnnconvert.read(tmp_path / "t.pt", arch={"head": "sequence"})
    assert [la.name for la in guessed.layers] == ["embed", "gru", "fc"]
    assert guessed.source["assumptions"][0] == ("the state-dict order does not chain; the only order that "
                                                "chains sizes was taken: embed, gru, fc")


# ------------------------------------------------------------- canonical settings torch lacks

def _dir_weights(cell, F, H, seed, proj=None):
    rng = np.random.default_rng(seed)
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    S = proj or H
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    return DirectionWeights(W=f(G * H, F), R=f(G * H, S), Wb=f(G * H), Rb=f(G * H),
                            proj=f(S, H) if proj else None)


@pytest.mark.parametrize("layout", ["batch_time_feature", "time_batch_feature"])
@pytest.mark.parametrize("output,time_order", [("sequence", "input"), ("sequence", "processing"),
                                               ("last_step", "input"), ("last_step", "processing"),
                                               ("final_state", "input")])
def test_reverse_layer_in_emitted_module(output, time_order, layout, tmp_path):
    w = _dir_weights("lstm", 3, 4, 1)
    w.h0 = np.linspace(-0.5, 0.5, 4).astype(np.float32)
    layer = Recurrent("back", "lstm", 4, "reverse", [w], [SIGMOID, TANH, TANH], output=output,
                      time_order=time_order, has_recurrent_bias=False)
    layer.weights[0].Rb = np.zeros_like(w.Rb)
    dense = Dense("out", np.ones((4, 2), np.float32) * 0.3, np.array([0.1, -0.2], np.float32),
                  Activation("softmax"))
    model = Model([layer, dense], InputSpec(features=3, layout=layout))
    notes = rnnconvert.write(model, tmp_path / "m.pt", emit_module=str(tmp_path / "m.py"))
    assert "layer 'back' has one bias; bias_hh written as zeros" in notes
    assert any("runs backwards" in n for n in notes)
    back = rnnconvert.read(tmp_path / "m.pt")
    assert_same_model(model, back)
    for x in _inputs(3, layout == "batch_time_feature"):
        np.testing.assert_allclose(run_emitted(tmp_path / "m.py", tmp_path / "m.pt", x), forward(model, x),
                                   atol=TOL, rtol=0)


@pytest.mark.parametrize("merge", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("output", ["sequence", "last_step", "final_state"])
def test_bidirectional_merges_and_outputs(merge, output, tmp_path):
    forward_only_h0 = _dir_weights("gru", 2, 3, 1)
    forward_only_h0.h0 = np.array([0.3, -0.2, 0.5], np.float32)
    layer = Recurrent("bi", "gru", 3, "bidirectional", [forward_only_h0, _dir_weights("gru", 2, 3, 2)],
                      [SIGMOID, TANH], output=output, merge=merge)
    extra = [Dropout("drop", 0.5), ActivationLayer("act", Activation("leaky_relu", 0.2)),
             Dense("d", np.full((layer.units_out, 2), 0.4, np.float32), None, Activation("elu", 0.7))]
    model = Model([layer, *extra], InputSpec(features=2))
    rnnconvert.write(model, tmp_path / "m.safetensors", emit_module=str(tmp_path / "m.py"))
    assert_same_model(model, rnnconvert.read(tmp_path / "m.safetensors"))
    for x in _inputs(2):
        np.testing.assert_allclose(run_emitted(tmp_path / "m.py", tmp_path / "m.safetensors", x),
                                   forward(model, x), atol=TOL, rtol=0)


def test_awkward_layer_names_and_batched_initial_state(tmp_path):
    w1, w2 = _dir_weights("rnn", 3, 4, 1), _dir_weights("rnn", 4, 4, 2)
    w1.h0 = np.arange(12, dtype=np.float32).reshape(3, 4) / 10        # [batch, S]: a fixed batch of 3
    layers = [Recurrent("forward", "rnn", 4, "forward", [w1], [TANH]),
              Recurrent("/rnn/RNN 2", "rnn", 4, "forward", [w2], [Activation("relu")], output="last_step"),
              Dense("forward", np.ones((4, 2), np.float32), None, LINEAR)]
    model = Model(layers, InputSpec(features=3))
    rnnconvert.write(model, tmp_path / "m.pt", emit_module=str(tmp_path / "m.py"))
    keys = list(torch.load(tmp_path / "m.pt", weights_only=True))
    assert keys == ["forward_.weight_ih_l0", "forward_.weight_hh_l0", "forward_.bias_ih_l0", "forward_.bias_hh_l0",
                    "forward_.h0", "rnn_RNN_2.weight_ih_l0", "rnn_RNN_2.weight_hh_l0", "rnn_RNN_2.bias_ih_l0",
                    "rnn_RNN_2.bias_hh_l0", "forward__1.weight"]
    back = rnnconvert.read(tmp_path / "m.pt")
    assert_same_model(model, back)
    for x in _inputs(3):
        np.testing.assert_allclose(run_emitted(tmp_path / "m.py", tmp_path / "m.pt", x), forward(model, x),
                                   atol=TOL, rtol=0)


PARAMS = {"hard_sigmoid": (0.2, 0.5), "elu": (0.7, None), "selu": (1.6732632423543772, 1.0507009873554805),
          "leaky_relu": (0.1, None), "thresholded_relu": (0.4, None), "affine": (1.5, -0.25),
          "scaled_tanh": (1.7, 0.66)}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_emitted_activation_expressions(name):
    alpha, beta = PARAMS.get(name, (None, None))
    act = Activation(name, alpha, beta)
    x = np.linspace(-7, 7, 36, dtype=np.float32).reshape(2, 3, 6)
    expr = activation_code(act)
    got = x if expr is None else eval(expr, {"torch": torch, "F": torch.nn.functional,  # noqa: S307
                                             "x": torch.from_numpy(x)}).numpy()
    np.testing.assert_allclose(got, activate(act, x.astype(np.float64)), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------ file handling

@pytest.mark.parametrize("case", TORCH_CASES)
def test_safetensors_reader_agrees_with_the_safetensors_package(case, tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    path = FIXTURES / "torch" / case / "model.safetensors"
    ours, meta = safetensors_io.read(path)
    theirs = st.load_file(str(path))
    assert meta == {} and set(ours) == set(theirs)
    for k in theirs:
        assert ours[k].dtype == theirs[k].dtype and np.array_equal(ours[k], theirs[k]), k
    # and the package reads what we write
    safetensors_io.write(tmp_path / "w.safetensors", ours, {"a": "b"})
    again = st.load_file(str(tmp_path / "w.safetensors"))
    assert all(np.array_equal(again[k], ours[k]) for k in ours)


def test_safetensors_dtypes_against_torch(tmp_path):
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(0)
    tensors = {n: torch.randn(3, 5, generator=g).to(dt) for n, dt in
               (("bf16", torch.bfloat16), ("f16", torch.float16), ("f64", torch.float64), ("f32", torch.float32))}
    tensors["i64"] = torch.arange(6)
    save_file(tensors, str(tmp_path / "d.safetensors"))
    ours, _ = safetensors_io.read(tmp_path / "d.safetensors")
    assert ours["bf16"].dtype == np.float32 and np.array_equal(ours["bf16"], tensors["bf16"].float().numpy())
    for k in ("f16", "f64", "f32", "i64"):
        assert np.array_equal(ours[k], tensors[k].numpy()) and ours[k].dtype == tensors[k].numpy().dtype


def _header(entries: dict) -> bytes:
    text = json.dumps(entries).encode()
    return struct.pack("<Q", len(text)) + text


@pytest.mark.parametrize("content,message", [
    (b"\x01\x02", "truncated safetensors file: 2 bytes, the 8-byte header length is missing"),
    (struct.pack("<Q", 10 ** 6) + b"{}", "corrupt safetensors file: header length 1000000 bytes, but the file has "
                                         "only 2 bytes after the length field"),
    (_header({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}) + b"\0" * 4,
     "corrupt safetensors header: 'a': data_offsets [0, 8] out of range (data section has 4 bytes)"),
    (_header({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]},
              "b": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}) + b"\0" * 8,
     "corrupt safetensors header: 'a': F32 [3] needs 12 bytes, data_offsets give 8; 'b': dtype 'F8_E4M3' is not "
     "supported (known: F64, F32, F16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, BF16)"),
    (struct.pack("<Q", 3) + b"{x}", "corrupt safetensors file: the header is not JSON (Expecting property name "
                                    "enclosed in double quotes: line 1 column 2 (char 1))"),
], ids=["truncated", "header_beyond_file", "offsets_out_of_range", "size_mismatch_and_dtype", "bad_json"])
def test_corrupt_safetensors(content, message, tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(InputError) as exc:
        rnnconvert.read(path)
    assert exc.value.message == message and exc.value.path == str(path)


def test_truncated_fixture_files(tmp_path):
    data = (FIXTURES / "torch" / "gru_linear" / "model.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:len(data) - 10])
    with pytest.raises(InputError, match=r"out of range \(data section has \d+ bytes\)"):
        rnnconvert.read(tmp_path / "cut.safetensors")
    data = (FIXTURES / "torch" / "gru_linear" / "model.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:len(data) // 2])
    with pytest.raises(InputError, match=r"^.*cut\.pt: not a readable PyTorch file \("):
        rnnconvert.read(tmp_path / "cut.pt")


def test_legacy_format_and_cuda_saved_tensors(tmp_path):
    folder = FIXTURES / "torch" / "gru_linear"
    sd = torch.load(folder / "model.pt", weights_only=True)
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert (tmp_path / "legacy.pt").read_bytes()[:2] == b"\x80\x02"      # a pickle, not a zip

    import torch.serialization as serialization

    def cuda_tag(obj):
        return "cuda:0"

    serialization.register_package(1, cuda_tag, lambda obj, location: None)
    try:
        torch.save(sd, tmp_path / "cuda.pt")
        torch.save(sd, tmp_path / "cuda_legacy.pt", _use_new_zipfile_serialization=False)
    finally:
        serialization._package_registry[:] = [e for e in serialization._package_registry if e[1] is not cuda_tag]
    if not torch.cuda.is_available():       # proves the files name a CUDA device
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "cuda.pt", weights_only=True)
    reference_model = rnnconvert.read(folder / "model.pt", arch=folder / "arch.json")
    for name in ("legacy.pt", "cuda.pt", "cuda_legacy.pt"):
        assert torch_format.sniff(tmp_path / name)
        model = rnnconvert.read(tmp_path / name, arch=folder / "arch.json")
        assert_same_model(reference_model, model)


def test_without_torch(monkeypatch, tmp_path):
    folder = FIXTURES / "torch" / "gru_linear"
    with_torch = rnnconvert.read(folder / "model.pt", arch=folder / "arch.json")
    monkeypatch.setitem(sys.modules, "torch", None)
    assert_same_model(with_torch, rnnconvert.read(folder / "model.pt", arch=folder / "arch.json"))
    model = rnnconvert.read(folder / "model.safetensors", arch=folder / "arch.json")
    rnnconvert.write(model, tmp_path / "m.safetensors", emit_module=str(tmp_path / "m.py"))
    assert_same_model(model, rnnconvert.read(tmp_path / "m.safetensors"))
    with pytest.raises(InputError, match=re.escape("writing .pt files needs PyTorch (pip install torch)")):
        rnnconvert.write(model, tmp_path / "m.pt")
    with pytest.raises(RuntimeUnavailable, match=re.escape("torch is not installed (pip install torch)")):
        torch_format.run(tmp_path / "m.safetensors", io(folder)[0][1], model)


def _save(sd, path):
    torch.save(OrderedDict((k, torch.as_tensor(v)) for k, v in sd.items()), path)


def test_state_dict_errors(tmp_path):
    lin = {"fc.weight": np.zeros((2, 3), np.float32), "fc.bias": np.zeros(2, np.float32)}
    _save(lin, tmp_path / "lin.pt")
    with pytest.raises(InputError) as exc:
        rnnconvert.read(tmp_path / "lin.pt")
    assert exc.value.message == ("no nn.LSTM/nn.GRU/nn.RNN weights found (keys named weight_ih_l0, weight_hh_l0, "
                                 "...); keys: fc.weight, fc.bias")

    sd = {k: v.numpy() for k, v in nn.GRU(3, 4, bidirectional=True).state_dict().items()}
    bad = dict(sd, **{"weight_hh_l0": np.zeros((12, 5), np.float32)})
    del bad["bias_hh_l0_reverse"]
    _save(bad, tmp_path / "bad.pt")
    with pytest.raises(InputError) as exc:
        rnnconvert.read(tmp_path / "bad.pt")
    assert exc.value.message == ("inconsistent state dict: weight_hh_l0: shape [12, 5], expected [G*hidden, hidden] "
                                 "with G = 4 (LSTM), 3 (GRU) or 1 (RNN)")
    bad = dict(sd)
    del bad["bias_hh_l0_reverse"]
    bad["weight_ih_l0_reverse"] = np.zeros((12, 2), np.float32)
    _save(bad, tmp_path / "bad2.pt")
    with pytest.raises(InputError) as exc:
        rnnconvert.read(tmp_path / "bad2.pt")
    assert exc.value.message == ("inconsistent state dict: weight_ih_l0_reverse: shape [12, 2], expected [12, 3]; "
                                 "bias_hh_l0_reverse: missing")

    norm = dict(sd, **{"norm.weight": np.ones(8, np.float32), "norm.bias": np.zeros(8, np.float32)})
    _save(norm, tmp_path / "norm.pt")
    with pytest.raises(UnsupportedError) as exc:
        rnnconvert.read(tmp_path / "norm.pt")
    assert exc.value.message.startswith("keys that are not nn.LSTM/nn.GRU/nn.RNN/nn.Linear/nn.Embedding/"
                                        "nn.Conv1d/nn.BatchNorm1d parameters: norm.weight, norm.bias; ")
    model = rnnconvert.read(tmp_path / "norm.pt", arch={"ignore": ["norm"]})
    assert model.source["ignored_keys"] == ["norm.weight", "norm.bias"]


def test_sniff(tmp_path):
    folder = FIXTURES / "torch" / "gru_linear"
    assert torch_format.sniff(folder / "model.pt") and torch_format.sniff(folder / "model.safetensors")
    (tmp_path / "x.bin").write_bytes(b"not a model")
    assert not torch_format.sniff(tmp_path / "x.bin")
    assert not torch_format.sniff(FIXTURES / "tfkeras2" / "simplernn_tanh" / "model.h5")
