"""Recurrent cells written as a `Loop` (rnnconvert/formats/onnx/lift_loop.py), a `Scan` (lift_scan.py) or
unrolled over fixed steps (lift_unrolled.py): the fixtures tf2onnx and torch.onnx.export of torch.jit.script'ed cells wrote
(fixtures/tf2onnx_loop, fixtures/torch_script) and the unrolled graphs built from nn.LSTM/nn.GRU weights
(fixtures/unrolled) read as one native layer each, predict the framework's outputs, and convert to ONNX (one native node, no Loop),
Keras and PyTorch, each run by its own runtime against the framework's stored predictions; a body one op
away from a cell is refused naming that op; without onnxruntime nothing is lifted."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import rnnconvert
from conftest import FIXTURES, ROOT, WILD
from rnnconvert.cli import cli
from rnnconvert.errors import UnsupportedError
from rnnconvert.formats import per_layer

ort = pytest.importorskip("onnxruntime")
TOL = 1e-4
CASES = {   # case -> (cell, PyTorch refusal words or None)
    "tf2onnx_loop/gru_reset_before_seq": ("gru", "reset_after=False"),
    "tf2onnx_loop/gru_reset_before_dense": ("gru", "reset_after=False"),
    "tf2onnx_loop/lstm_softsign_seq": ("lstm", "softsign"),
    "tf2onnx_loop/rnn_tanh_seq": ("rnn", None),
    "tf2onnx_loop/gru_reset_before_hard_sigmoid_seq": ("gru", "hard_sigmoid"),   # Min/Max of 0.2x+0.5
    "tf2onnx_loop/gru_reset_before_2layer": ("gru", "reset_after=False"),         # two Loops, two layers
    "tf2onnx_loop/lstm_then_gru_reset_before": ("lstm+gru", "reset_after=False"),  # a native LSTM, a Loop-GRU
    "tf2onnx_loop/bigru_reset_before_seq": ("gru", "reset_after=False"),     # two Loops, one over reversed x
    "tf2onnx_loop/gru_reset_before_backwards": ("gru", "reset_after=False"),
    "torch_script/lstm_seq": ("lstm", None),
    "torch_script/gru_seq": ("gru", None),
    "unrolled/lstm_seq": ("lstm", None),        # 7 steps, stacked by Concat(Unsqueeze(h_t))
    "unrolled/gru_last": ("gru", None),         # 7 steps of Gemm/Slice, the last h the output
    "torch_traced/lstm_traced_seq": ("lstm", None),   # the scripted modules traced: torch unrolls 7 steps
    "torch_traced/gru_traced_seq": ("gru", None),
    "scan/gru_scan_reverse": ("gru", None),     # a Scan reading and writing backwards: direction 'reverse'
    "scan/lstm_scan": ("lstm", None),
}


def _data(case):
    d = FIXTURES / case
    return d / "model.onnx", dict(np.load(d / "inputs.npz")), dict(np.load(d / "outputs.npz"))


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _run_torch(model, path, x):
    import torch
    from rnnconvert.formats.torch import write_module
    code = path.with_suffix(".module.py")
    write_module(model, code, weights=path.name)
    spec = importlib.util.spec_from_file_location(f"lifted_{abs(hash(str(code)))}", code)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Model()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("case", list(CASES))
def test_loop_fixture_reads_as_one_native_layer_and_predicts(case):
    path, xs, ys = _data(case)
    assert _ops(path)["Loop"] + _ops(path)["Scan"] >= 1 or _ops(path)["MatMul"] + _ops(path)["Gemm"] >= 14
    model = rnnconvert.read(str(path))
    rec = model.recurrent_layers
    assert [r.cell for r in rec] == CASES[case][0].split("+") * (len(rec) // len(CASES[case][0].split("+")))
    for k, x in xs.items():
        np.testing.assert_allclose(rnnconvert.predict(model, x), ys[k], atol=TOL, rtol=TOL, err_msg=k)
    listed = per_layer.scan(str(path)).layers        # --layer lists each Loop as its layer, by the Loop's name
    loops = [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("Loop", "Scan")] or ["input/unrolled"]
    lifted = [(f.name, f.kind) for f in listed if f.kind == CASES[case][0].split("+")[-1]]
    assert lifted == [(name, CASES[case][0].split("+")[-1]) for name in loops]
    if "+" not in CASES[case][0]:
        assert [r.name for r in rec] == (loops[:1] if rec[0].direction == "bidirectional" else loops)


@pytest.mark.parametrize("case", list(CASES))
def test_loop_fixture_converts_to_onnx_keras_pytorch(case, tmp_path):
    path, xs, ys = _data(case)
    model = rnnconvert.read(str(path))
    dst = tmp_path / "m.onnx"
    rnnconvert.write(model, str(dst))
    ops = _ops(dst)
    n_layers = len(model.recurrent_layers)
    assert sum(ops[k] for k in ("LSTM", "GRU", "RNN")) == n_layers and not ops["Loop"] and not ops["Scan"], ops
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    for k, x in xs.items():
        np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], ys[k], atol=TOL, rtol=TOL)
    keras = pytest.importorskip("keras")
    rnnconvert.write(model, str(tmp_path / "m.keras"))
    km = keras.models.load_model(tmp_path / "m.keras", compile=False)
    for k, x in xs.items():
        np.testing.assert_allclose(np.asarray(km.predict(x, verbose=0)), ys[k], atol=TOL, rtol=TOL, err_msg=k)
    pytest.importorskip("torch")
    refusal = CASES[case][1]
    if refusal:
        with pytest.raises(UnsupportedError, match=refusal):
            rnnconvert.write(model, str(tmp_path / "m.pt"))
        return
    rnnconvert.write(model, str(tmp_path / "m.pt"))
    for k, x in xs.items():
        np.testing.assert_allclose(_run_torch(model, tmp_path / "m.pt", x), ys[k], atol=TOL, rtol=TOL, err_msg=k)


def test_loop_fed_by_a_state_input_streams(tmp_path):
    """tf2onnx of GRU(reset_after=False, return_state=True)(x, initial_state=[h0]): the Loop's initial state is
    the graph input h0 and its final state a graph output; lifted, they are the native node's state ports."""
    import json
    folder = FIXTURES / "tf2onnx_loop" / "states" / "gru_reset_before_states"
    path, meta = folder / "model.onnx", json.loads((folder / "case.json").read_text())
    inputs, outputs = np.load(folder / "inputs.npz"), np.load(folder / "outputs.npz")
    assert _ops(path)["Loop"] == 1
    model = rnnconvert.read(str(path))
    assert [(p.name, p.state) for p in model.state_inputs] == [("h0", "h")]
    assert [(p.name, p.state) for p in model.state_outputs] == [(meta["graph_outputs"][1], "h")]
    dst = tmp_path / "m.onnx"
    rnnconvert.write(model, str(dst))
    assert _ops(dst)["GRU"] == 1 and not _ops(dst)["Loop"]
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    for label in ("t1", "t7", "t40", "t7_zero"):
        feeds = {k[len(label) + 1:]: inputs[k] for k in inputs.files if k.startswith(label + ".")}
        y, outs = rnnconvert.predict(model, feeds["input"], states={"h0": feeds["h0"]}, return_states=True)
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        for name in meta["graph_outputs"]:
            want = outputs[f"{label}.{name}"]
            ref = y if name == model.output_name else outs[name]
            np.testing.assert_allclose(ref, want, atol=TOL, rtol=TOL, err_msg=f"{label} {name} reference")
            np.testing.assert_allclose(got[name], want, atol=TOL, rtol=TOL, err_msg=f"{label} {name} onnxruntime")


def test_convert_verifies_the_lifted_loop(tmp_path):
    path, _, _ = _data("torch_script/gru_seq")
    res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1] == "  EQUIVALENT"


# ------------------------------------------------------------------------------------- refusals

def _mutated(tmp_path, case, pick, op):
    """The fixture with one body node's op changed: `pick(body nodes)` -> the node."""
    path, _, _ = _data(case)
    m = onnx.load(str(path))
    loop = next(n for n in m.graph.node if n.op_type == "Loop")
    body = next(a.g for a in loop.attribute if a.name == "body")
    node = pick(list(body.node))
    node.op_type = op
    out = tmp_path / "almost.onnx"
    onnx.save(m, str(out))
    return out, loop.name, node.name


def _body_op(op, k=0):
    return lambda nodes: [n for n in nodes if n.op_type == op][k]


ALMOST = [
    # a GRU's reset gate through Tanh instead of Sigmoid
    ("tf2onnx_loop/gru_reset_before_seq", _body_op("Sigmoid", 0), "Tanh",
     "does not fit (the update gate's activation is Sigmoid, the reset gate's Tanh)"),
    # torch's h' = n + z*(h - n) with its last Add a Sub
    ("torch_script/gru_seq", lambda nodes: [n for n in nodes if n.op_type == "Add"][-1], "Sub",
     "does not fit (the new hidden state is none of LSTM h' = o*act(c), GRU h' = z*h + (1-z)*n, RNN h' = act(x W + "
     "h R + b))"),
    # an LSTM's c' = f*c + i*g with a Sub
    ("torch_script/lstm_seq", lambda nodes: [n for n in nodes if n.op_type == "Add"][-1], "Sub",
     "does not fit (the new cell state is not f*c + i*g)"),
    # an LSTM's output gate through Tanh
    ("torch_script/lstm_seq", _body_op("Sigmoid", 2), "Tanh",
     "does not fit (the input, forget and output gates use different activations (Sigmoid, Sigmoid, Tanh))"),
]


@pytest.mark.parametrize("case,pick,op,why", ALMOST, ids=[f"{c}-{o}" for c, _, o, _ in ALMOST])
def test_almost_a_cell_is_refused_naming_the_op(case, pick, op, why, tmp_path):
    path, loop, node = _mutated(tmp_path, case, pick, op)
    res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / "m.onnx")])
    assert res.exit_code == 2, res.output
    assert res.stderr == (f"rnnconvert: error: {path}: layer '{loop}': Loop node '{loop}' does not compute an LSTM, "
                          f"GRU or RNN cell: its {op} node '{node}' {why}; nothing was lifted\n")
    assert not (tmp_path / "m.onnx").exists()


def _step_op(case, op, k, new):
    """A change to the k-th `op` node of an unrolled graph."""
    def make(tmp_path):
        path, _, _ = _data(case)
        m = onnx.load(str(path))
        node = [n for n in m.graph.node if n.op_type == op][k]
        node.op_type = new
        onnx.save(m, str(tmp_path / "almost.onnx"))
        return tmp_path / "almost.onnx", node.name
    return make


UNROLLED_ALMOST = [
    # step 3's input gate through Tanh
    (_step_op("unrolled/lstm_seq", "Sigmoid", 10, "Tanh"), "Tanh",
     "(the input, forget and output gates use different activations (Tanh, Sigmoid, Sigmoid))"),
    # the last step's h' = (1-z)*n + z*h with a Sub
    (_step_op("unrolled/gru_last", "Add", -1, "Sub"), "Sub",
     "(the new hidden state is none of LSTM h' = o*act(c), GRU h' = z*h + (1-z)*n, RNN h' = act(x W + h R + b))"),
]


@pytest.mark.parametrize("make,op,why", UNROLLED_ALMOST, ids=["lstm-step3-Tanh", "gru-last-Sub"])
def test_almost_an_unrolled_cell_is_refused_naming_the_op(make, op, why, tmp_path):
    path, node = make(tmp_path)
    res = CliRunner().invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 2, res.output
    assert res.stderr == (f"rnnconvert: error: {path}: layer 'input/unrolled': the 7 steps over 'input' do not "
                          f"compute an LSTM, GRU or RNN cell: its {op} node '{node}' does not fit {why}; nothing "
                          "was lifted\n")


def test_a_match_onnxruntime_does_not_confirm_is_refused(monkeypatch):
    """The symbolic match only proposes: weights off by 1e-3 in one entry are caught by running the step."""
    from rnnconvert.formats.onnx import lift_loop
    real = lift_loop.match

    def off(*args, **kw):
        cell = real(*args, **kw)
        cell.W = cell.W.copy()
        cell.W[0, 0] += 1e-3
        return cell
    monkeypatch.setattr(lift_loop, "match", off)
    path, _, _ = _data("torch_script/gru_seq")
    with pytest.raises(UnsupportedError) as exc:
        rnnconvert.read(str(path))
    assert str(exc.value).startswith(f"{path}: layer '/Loop': Loop node '/Loop' is not lifted: it looks like a GRU "
                                     "cell, but its step differs from the native node's by ")
    assert str(exc.value).endswith(" in the new h (onnxruntime, random x and states)")


@pytest.mark.slow            # a fresh interpreter: 8 s
def test_without_onnxruntime_nothing_is_lifted(tmp_path):
    path, _, _ = _data("tf2onnx_loop/rnn_tanh_seq")
    site = tmp_path / "without_onnxruntime"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['onnxruntime'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "KERAS_BACKEND": "torch"}
    proc = subprocess.run([sys.executable, "-m", "rnnconvert", "inspect", str(path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("Loop node 'sequential/simple_rnn/while_loop' is not lifted: it matches a RNN cell, but its check "
            "was not run (onnxruntime is not installed (pip install onnxruntime)); rnnconvert lifts a cell only "
            "once onnxruntime confirms it") in proc.stderr


@pytest.mark.slow            # verifies a 128->64 GRU: 5 s
@pytest.mark.skipif(not (WILD / "onnx_water_gru_loop_tf2onnx117").is_dir(), reason=f"{WILD} is missing")
def test_wild_tf2onnx_loop_gru_layers_convert(tmp_path):
    """Three Loop-GRUs (5->128, 128->64 twice) feeding an attention: each converts with --layer."""
    path = WILD / "onnx_water_gru_loop_tf2onnx117" / "gru_model.onnx"
    listed = per_layer.scan(str(path)).layers
    assert [(f.name, f.kind) for f in listed] == [(f"functional_4_1/gru_{k}_1/while_loop", "gru") for k in (3, 4, 5)]
    dst = tmp_path / "gru5.onnx"
    report = rnnconvert.convert(str(path), str(dst), layer="functional_4_1/gru_5_1/while_loop")
    assert report.passed
    assert _ops(dst)["GRU"] == 1 and not _ops(dst)["Loop"]
