"""Stateful ONNX (`--stateful`): state inputs/outputs per recurrent layer, checked by onnxruntime.

The oracle is onnxruntime itself on the written file: N single-step calls carrying the state must
equal one N-step call, and that call must equal the source framework's stored predictions.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import rnnconvert
from conftest import FIXTURES, cases
from rnnconvert.cli.commands import cli
from rnnconvert.errors import UnsupportedError
from rnnconvert.model import SIGMOID, TANH, Dense, DirectionWeights, InputSpec, Model, Recurrent

ort = pytest.importorskip("onnxruntime")

STREAMABLE = ["keras3/stacked_lstm_dense", "tfkeras2/stacked_lstm_dense", "tfkeras2/gru_reset_after_seq",
              "keras3/gru_reset_before_last", "torch_onnx/lstm_initial_state_const", "torch_onnx/lstm_time_major",
              "tfkeras2/lstm_dropout_activation_stack", "tf2onnx/gru_dense", "torch_onnx/rnn_relu_seq_linear"]


def _case(spec):
    origin, name = spec.split("/")
    return next(c for c in cases(origin, suffixes=(".h5", ".keras", ".onnx")) if c.name == name)


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _states(path):
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return json.loads(meta["rnnconvert.model.states"])["states"]


def _initial(states, batch):
    out = {}
    for s in states:
        v = np.zeros((batch, s["shape"][2])) if s["initial"] is None else \
            np.broadcast_to(np.asarray(s["initial"]), (batch, s["shape"][2]))
        out[s["input"]] = np.ascontiguousarray(v[None], dtype=np.float32)
    return out


def stream_vs_whole(path, x, time_major=False):
    """(whole-sequence output, per-step outputs stacked, final states whole, final states streamed)."""
    sess = _session(path)
    states = _states(path)
    x_name, y_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    batch = x.shape[1 if time_major else 0]
    T = x.shape[0 if time_major else 1]
    outs = [y_name] + [s["output"] for s in states]
    whole = sess.run(outs, {x_name: x.astype(np.float32), **_initial(states, batch)})
    feeds = _initial(states, batch)
    steps = []
    for t in range(T):
        xt = x[t:t + 1] if time_major else x[:, t:t + 1]
        res = sess.run(outs, {x_name: xt.astype(np.float32), **feeds})
        steps.append(res[0])
        feeds = {s["input"]: v for s, v in zip(states, res[1:])}
    return whole[0], steps, whole[1:], [feeds[s["input"]] for s in states]


@pytest.mark.parametrize("spec", STREAMABLE)
def test_single_steps_carrying_the_state_equal_one_whole_call(spec, tmp_path):
    case = _case(spec)
    dst = tmp_path / "model.onnx"
    report = rnnconvert.convert(case.path, dst, write_options={"stateful": True})
    assert report.passed
    proto = onnx.load(str(dst))
    states = _states(dst)
    recurrent = [n for n in proto.graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    assert not [n for n in proto.graph.node if n.op_type in ("Loop", "Scan")]
    assert len(states) == sum(2 if n.op_type == "LSTM" else 1 for n in recurrent)
    assert [i.name for i in proto.graph.input][1:] == [s["input"] for s in states]
    assert [o.name for o in proto.graph.output][1:] == [s["output"] for s in states]
    time_major = case.meta.get("input_layout") == "time_batch_feature"
    for key, x, y in case.io():
        whole, steps, final_whole, final_streamed = stream_vs_whole(dst, x, time_major)
        np.testing.assert_allclose(whole, y, atol=1e-4, rtol=0, err_msg=f"{spec} [{key}] whole vs framework")
        if whole.ndim == 3:
            streamed = np.concatenate(steps, axis=0 if time_major else 1)
            np.testing.assert_allclose(streamed, whole, atol=1e-5, rtol=0, err_msg=f"{spec} [{key}] streamed")
        else:
            np.testing.assert_allclose(steps[-1], whole, atol=1e-5, rtol=0, err_msg=f"{spec} [{key}] last step")
        for a, b in zip(final_streamed, final_whole):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def _gru_stack(seed=3, F=3, H=(5, 4)):
    rng = np.random.default_rng(seed)
    layers, width = [], F
    for k, h in enumerate(H):
        w = DirectionWeights(rng.normal(0, 0.5, (3 * h, width)), rng.normal(0, 0.5, (3 * h, h)),
                             rng.normal(0, 0.3, 3 * h), rng.normal(0, 0.3, 3 * h))
        layers.append(Recurrent(f"gru_{k}", "gru", h, "forward", [w], [SIGMOID, TANH], reset_after=k == 0))
        width = h
    layers.append(Dense("head", rng.normal(0, 0.5, (width, 2)), rng.normal(0, 0.1, 2)))
    return Model(layers, InputSpec(features=F), name="gru_stack")


def test_gru_stack_streams(tmp_path):
    model = _gru_stack()
    rnnconvert.write(model, tmp_path / "g.onnx", stateful=True)
    x = np.random.default_rng(0).standard_normal((2, 9, 3)).astype(np.float32)
    whole, steps, final_whole, final_streamed = stream_vs_whole(tmp_path / "g.onnx", x)
    np.testing.assert_allclose(whole, rnnconvert.predict(model, x), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), whole, atol=1e-5, rtol=0)
    assert [s["input"] for s in _states(tmp_path / "g.onnx")] == ["gru_0/h_in", "gru_1/h_in"]
    assert [s["shape"] for s in _states(tmp_path / "g.onnx")] == [[1, "batch", 5], [1, "batch", 4]]


def test_stateful_file_reads_back_as_the_stateless_graph(tmp_path):
    case = _case("keras3/stacked_lstm_dense")
    rnnconvert.convert(case.path, tmp_path / "s.onnx", write_options={"stateful": True})
    rnnconvert.convert(case.path, tmp_path / "p.onnx")
    from rnnconvert.formats.onnx.reader import load
    from rnnconvert.formats.onnx.stateful import to_stateless
    plain, back = load(tmp_path / "p.onnx"), to_stateless(load(tmp_path / "s.onnx"))
    assert back.graph == plain.graph
    assert rnnconvert.read(tmp_path / "s.onnx").layers[0].name == "lstm"


def test_bidirectional_with_stateful_is_refused(runner, tmp_path):
    src = FIXTURES / "tfkeras2" / "bilstm_concat_last" / "model.h5"
    dst = tmp_path / "b.onnx"
    res = runner.invoke(cli, [str(src), str(dst), "--stateful"])
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        f"rnnconvert: error: {dst}: --stateful streams one step at a time, but layer 'bidirectional' "
        "(bidirectional) needs the whole sequence before the first output (a backward direction reads the "
        "input from its end); write this model without --stateful")
    assert list(tmp_path.iterdir()) == []


def test_reverse_layer_with_stateful_is_refused(tmp_path):
    model = rnnconvert.read(FIXTURES / "tfkeras2" / "lstm_go_backwards_seq" / "model.h5")
    with pytest.raises(UnsupportedError, match=r"but layer 'lstm' \(reverse\) needs the whole sequence"):
        rnnconvert.write(model, tmp_path / "r.onnx", stateful=True)


# ------------------------------------------------------------------ Scan where native nodes cannot compute

FIXTURE_SCANS = [("tfkeras2/simplernn_selu_dense/model.h5", None, "'selu'"),
                 ("torch/lstm_proj_linear/model.pt", "torch/lstm_proj_linear/arch.json", "output projection")]


@pytest.mark.parametrize("src, arch, reason", FIXTURE_SCANS, ids=[s[0] for s in FIXTURE_SCANS])
def test_fixture_written_as_scan_matches_framework(src, arch, reason, tmp_path):
    from conftest import Case
    case = Case((FIXTURES / src).parent, FIXTURES / src)
    dst = tmp_path / "model.onnx"
    report = rnnconvert.convert(case.path, dst, read_options={"arch": str(FIXTURES / arch)} if arch else {})
    assert report.passed and "onnxruntime(dst)" in report.oracles()
    assert any("written as a Scan" in n and reason in n for n in report.notes), report.notes
    ops = [n.op_type for n in onnx.load(str(dst)).graph.node]
    assert ops.count("Scan") == 1 and not {"LSTM", "GRU", "RNN"} & set(ops)
    for key, x, y in case.io():
        np.testing.assert_allclose(_session(dst).run(None, {_session(dst).get_inputs()[0].name:
                                                            x.astype(np.float32)})[0], y, atol=1e-4, rtol=0,
                                   err_msg=key)


def _scan_model(cell, direction, output, merge="concat", proj=False, h0=False, clip=None, reset_after=True,
                acts=None, seed=0):
    from rnnconvert.model import SELU, Activation
    rng = np.random.default_rng(seed)
    F, H, P = 3, 5, 3
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    S = P if proj else H
    weights = []
    for _ in range(2 if direction == "bidirectional" else 1):
        w = DirectionWeights(rng.normal(0, 0.5, (G * H, F)), rng.normal(0, 0.5, (G * H, S)),
                             rng.normal(0, 0.3, G * H), rng.normal(0, 0.3, G * H))
        if proj:
            w.proj = rng.normal(0, 0.5, (P, H))
        if h0:
            w.h0 = rng.normal(0, 0.5, S)
            if cell == "lstm":
                w.c0 = rng.normal(0, 0.5, H)
        weights.append(w)
    acts = acts or {"lstm": [SIGMOID, Activation("gelu"), TANH], "gru": [Activation("hard_sigmoid", 0.25, 0.5), SELU],
                    "rnn": [Activation("swish")]}[cell]
    rec = Recurrent("rec", cell, H, direction, weights, acts, output=output, merge=merge, clip=clip,
                    reset_after=reset_after)
    head = Dense("head", rng.normal(0, 0.5, (rec.units_out, 2)), rng.normal(0, 0.1, 2))
    return Model([rec, head], InputSpec(features=F), name="scan")


SCAN_VARIANTS = [(cell, direction, output) for cell in ("lstm", "gru", "rnn")
                 for direction in ("forward", "reverse", "bidirectional")
                 for output in ("sequence", "last_step", "final_state")]


@pytest.mark.parametrize("cell, direction, output", SCAN_VARIANTS)
def test_scan_layers_match_the_reference(cell, direction, output, tmp_path):
    model = _scan_model(cell, direction, output, merge="sum" if cell == "gru" else "concat",
                        proj=cell == "lstm" and direction != "reverse", h0=direction != "forward",
                        clip=2.5 if cell == "lstm" else None, reset_after=direction != "reverse")
    path = tmp_path / "m.onnx"
    notes = rnnconvert.write(model, path)
    assert notes and "written as a Scan" in notes[0]
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Scan") == len(model.layers[0].weights) and not {"LSTM", "GRU", "RNN"} & set(ops)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    x = np.random.default_rng(2).standard_normal((3, 6, 3)).astype(np.float32) * 2
    out = _session(path).run(None, {_session(path).get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(out, rnnconvert.predict(model, x), atol=1e-5, rtol=1e-5)
    back = rnnconvert.read(path)          # read back from the initializers the metadata names
    np.testing.assert_allclose(rnnconvert.predict(back, x), rnnconvert.predict(model, x), atol=1e-6)  # float32 weights
    assert [type(a) for a in back.layers] == [type(a) for a in model.layers]
    assert back.layers[0].activations == model.layers[0].activations


def test_native_stays_default_and_mixed_files_read_back(tmp_path):
    from rnnconvert.model import SELU
    model = _scan_model("gru", "forward", "sequence", acts=[SIGMOID, TANH], h0=True)
    native = model.layers[0]
    rng = np.random.default_rng(5)
    w = DirectionWeights(rng.normal(0, 0.5, (5, 5)), rng.normal(0, 0.5, (5, 5)), rng.normal(0, 0.3, 5),
                         np.zeros(5))
    selu = Recurrent("selu_rnn", "rnn", 5, "forward", [w], [SELU], output="last_step")
    mixed = Model([native, selu, Dense("head", rng.normal(0, 0.5, (5, 2)), None)], InputSpec(features=3))
    notes = rnnconvert.write(mixed, tmp_path / "m.onnx")
    assert notes == ["layer 'rec': written as one native GRU node",
                     "layer 'selu_rnn': written as a Scan over a cell of standard ops (the hidden (f) activation "
                     "'selu' is not one native nodes compute)"]
    ops = [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    assert ops.count("GRU") == 1 and ops.count("Scan") == 1
    x = np.random.default_rng(1).standard_normal((2, 7, 3)).astype(np.float32)
    sess = _session(tmp_path / "m.onnx")
    np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], rnnconvert.predict(mixed, x),
                               atol=1e-5)
    back = rnnconvert.read(tmp_path / "m.onnx")
    for a, b in zip(mixed.layers, back.layers):
        for key, v in a.arrays().items():
            np.testing.assert_allclose(b.arrays()[key], v, atol=1e-7, err_msg=key)
    model_plain = _scan_model("gru", "forward", "sequence", acts=[SIGMOID, TANH])
    assert rnnconvert.write(model_plain, tmp_path / "p.onnx") == []     # native only: no notes, no Scan


def test_stateful_refuses_scan_layers(tmp_path):
    model = _scan_model("rnn", "forward", "sequence")
    with pytest.raises(UnsupportedError, match=r"--stateful needs native LSTM/GRU/RNN nodes, but layer 'rec' can "
                                               r"only be written as a Scan"):
        rnnconvert.write(model, tmp_path / "s.onnx", stateful=True)
