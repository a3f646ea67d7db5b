"""Recurrent state ports in Keras files: functional models whose recurrent layers take `initial_state`
from model inputs and return their states (`return_state=True`) as model outputs.

Oracles: the frameworks' own predictions stored with the fixtures (Keras 3 and TF-Keras 2 for
keras3/states and tfkeras2/states, PyTorch for torch_onnx/states), Keras 3 running every file
rnnconvert writes with the states fed, onnxruntime running the ONNX written back.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FIXTURES

import rnnconvert
from rnnconvert.cli import cli
from rnnconvert.errors import UnsupportedError
from rnnconvert.formats.keras.runtime import run_states
from rnnconvert.model import states
from rnnconvert.reference import forward_with_feeds

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

TOL = 1e-5
KERAS_CASES = [(origin, case, f) for origin, files in (("keras3", ("model.keras", "model.h5")),
                                                      ("tfkeras2", ("model.h5",)))
               for case in ("lstm_seq_dense", "gru_backwards_last", "bilstm_seq", "rnn_gru_two_layers")
               for f in files]
TORCH_CASES = ["gru_bidir", "gru_time_major", "lstm_2layer", "lstm_linear_batch_first", "rnn_tanh"]
SETS = ("t1", "t7", "t40", "t7_zero")


def _keras_case(origin, case):
    d = FIXTURES / origin / "states" / case
    return d, np.load(d / "inputs.npz"), np.load(d / "outputs.npz")


def _feeds(model, ins, label):
    return {p.name: ins[f"{label}.{p.name}"] for p in model.state_inputs}


@pytest.mark.parametrize("origin,case,name", KERAS_CASES, ids=[f"{o}-{c}-{f}" for o, c, f in KERAS_CASES])
def test_framework_state_models_read_as_ports(origin, case, name):
    """Each Input feeding initial_state is a state input, each returned state a state output ([batch, size],
    a Bidirectional's per direction), and the reference pass with the states fed gives Keras's own
    predictions: the output and every state, batch 2-3, 1 to 40 steps, random and zero states."""
    d, ins, outs = _keras_case(origin, case)
    meta = json.loads((d / "case.json").read_text())
    model = rnnconvert.read(d / name)
    assert [p.name for p in model.state_inputs] == meta["state_inputs"]
    assert len(model.state_outputs) == len(meta["state_outputs"])
    assert all(p.layout == "batch_size" for p in model.state_inputs + model.state_outputs)
    for label in SETS:
        y, got = forward_with_feeds(model, ins[f"{label}.input"], _feeds(model, ins, label))
        np.testing.assert_allclose(y, outs[f"{label}.output"], atol=TOL, rtol=TOL)
        for k, port in enumerate(model.state_outputs):
            np.testing.assert_allclose(got[port.name], outs[f"{label}.state{k + 1}"], atol=TOL, rtol=TOL)


def test_bidirectional_states_are_per_direction():
    model = rnnconvert.read(FIXTURES / "keras3" / "states" / "bilstm_seq" / "model.keras")
    assert [(p.name, p.state, p.direction) for p in model.state_inputs] == [
        ("h_fw", "h", 0), ("c_fw", "c", 0), ("h_bw", "h", 1), ("c_bw", "c", 1)]
    assert [(p.name, p.state, p.direction) for p in model.state_outputs] == [
        ("bi_forward_h", "h", 0), ("bi_forward_c", "c", 0), ("bi_backward_h", "h", 1), ("bi_backward_c", "c", 1)]


@pytest.mark.parametrize("case", ["lstm_seq_dense", "bilstm_seq"])
def test_streaming_with_the_read_ports_equals_the_framework_in_chunks(case):
    """The sequence fed in chunks 1+4+7, each call's state outputs fed back: Keras's own chunked run."""
    d, ins, outs = _keras_case("keras3", case)
    model = rnnconvert.read(d / "model.keras")
    if case == "bilstm_seq":        # a backward direction restarts at each chunk: Keras's chunks differ from one call
        assert not np.allclose(outs["stream.chunked.output"], outs["stream.full.output"], atol=1e-3)
    got, _ = states.stream(lambda x, f: forward_with_feeds(model, x, f), model, ins["stream.input"],
                           _feeds(model, ins, "stream"), [1, 4, 7])
    np.testing.assert_allclose(got, outs["stream.chunked.output"], atol=TOL, rtol=TOL)


@pytest.mark.parametrize("case", TORCH_CASES)
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_written_keras_runs_in_keras_with_states_fed(case, suffix, tmp_path):
    """ONNX streaming graphs exported by PyTorch, written as Keras: Keras 3 loads the file and, fed the
    stored states (one Keras input per row of each port), returns PyTorch's output and states."""
    d = FIXTURES / "torch_onnx" / "states" / case
    ins, outs = np.load(d / "inputs.npz"), np.load(d / "outputs.npz")
    src = rnnconvert.read(d / "model.onnx")
    dst = tmp_path / f"m{suffix}"
    notes = rnnconvert.write(src, dst)
    assert any("kept as Keras inputs and outputs [batch, size]" in n for n in notes)
    k = keras.models.load_model(str(dst), compile=False)
    rows = sum(len(states.rows(src, p)) for p in src.state_inputs)
    assert len(k.inputs) == 1 + rows and len(k.outputs) == 1 + rows
    time_major = src.input.layout == "time_batch_feature"
    for label in ("t1", "t7", "t40"):
        feeds = {p.name: ins[f"{label}.{p.name}"] for p in src.state_inputs}
        y, got = run_states(dst, ins[f"{label}.input"], src, feeds, time_major)
        np.testing.assert_allclose(y, outs[f"{label}.output"], atol=1e-4, rtol=1e-4)
        for p in src.state_outputs:
            np.testing.assert_allclose(got[p.name], outs[f"{label}.{p.name}"], atol=1e-4, rtol=1e-4)


def test_written_ports_are_named_after_the_ports(tmp_path):
    src = rnnconvert.read(FIXTURES / "torch_onnx" / "states" / "lstm_2layer" / "model.onnx")
    dst = tmp_path / "m.keras"
    rnnconvert.write(src, dst)
    config = json.loads(zipfile.ZipFile(dst).read("config.json"))["config"]
    assert [r[0] for r in config["input_layers"]] == ["input", "h0_0", "h0_1", "c0_0", "c0_1"]
    assert [r[0] for r in config["output_layers"]][1:] == ["hn_0", "hn_1", "cn_0", "cn_1"]
    back = rnnconvert.read(dst)
    assert [(p.name, p.layers, p.layout) for p in back.state_inputs] == [
        ("h0_0", ["rnn_LSTM"], "batch_size"), ("h0_1", ["rnn_LSTM_1"], "batch_size"),
        ("c0_0", ["rnn_LSTM"], "batch_size"), ("c0_1", ["rnn_LSTM_1"], "batch_size")]


@pytest.mark.parametrize("case,ins_,outs_", [("lstm_2layer", ("h0", "c0"), ("hn", "cn")),
                                             ("gru_bidir", ("h0",), ("hn",))])
def test_onnx_keras_onnx_keeps_the_ports(case, ins_, outs_, tmp_path):
    """onnx -> keras -> onnx: the ports come back (one per row, [batch, size]; a bidirectional layer's per
    direction) and onnxruntime, fed PyTorch's states row by row, returns PyTorch's output and states."""
    from rnnconvert.formats.onnx.runtime import run_states as ort_states
    d = FIXTURES / "torch_onnx" / "states" / case
    ins, outs = np.load(d / "inputs.npz"), np.load(d / "outputs.npz")
    rnnconvert.convert(str(d / "model.onnx"), str(tmp_path / "m.keras"))
    rnnconvert.convert(str(tmp_path / "m.keras"), str(tmp_path / "m.onnx"))
    back = rnnconvert.read(tmp_path / "m.onnx")
    assert [p.name for p in back.state_inputs] == [f"{n}_{r}" for n in ins_ for r in range(2)]
    assert [p.name for p in back.state_outputs] == [f"{n}_{r}" for n in outs_ for r in range(2)]
    feeds = {f"{n}_{r}": ins[f"t7.{n}"][r] for n in ins_ for r in range(2)}
    y, got = ort_states(tmp_path / "m.onnx", ins["t7.input"], back, feeds)
    np.testing.assert_allclose(y, outs["t7.output"], atol=1e-4, rtol=1e-4)
    for n in outs_:
        np.testing.assert_allclose(np.stack([got[f"{n}_0"], got[f"{n}_1"]]), outs[f"t7.{n}"], atol=1e-4, rtol=1e-4)


def test_convert_checks_the_states_in_keras(tmp_path):
    """convert runs the written file in Keras 3 with random and zero states fed, and in chunks with the
    states carried (bidirectional and time-major sources: not defined / transposed)."""
    res = CliRunner().invoke(cli, ["convert", str(FIXTURES / "torch_onnx" / "states" / "lstm_2layer" / "model.onnx"),
                                   str(tmp_path / "m.keras")])
    assert res.exit_code == 0, res.output
    assert re.search(r"keras\(dst\) +seeded b3 t7 \+ random states: cn +\S+ +\S+ +\S+ +ok", res.output), res.output
    assert re.search(r"streaming keras\(dst\), states carried +seeded b2 t120 \+ random states chunks \S+ .* ok",
                     res.output), res.output
    assert "EQUIVALENT" in res.output and "not run: state inputs/outputs" not in res.output


@pytest.mark.parametrize("origin,case", [("keras3", "bilstm_seq"), ("keras3", "gru_backwards_last"),
                                         ("tfkeras2", "rnn_gru_two_layers"), ("tfkeras2", "lstm_seq_dense")])
def test_keras_roundtrip_of_a_framework_model(origin, case, tmp_path):
    """A Keras streaming model (Bidirectional, go_backwards, two layers, from Keras 3 and TF-Keras 2) read and
    written again: Keras 3 runs the new file with the stored states and returns the framework's own
    predictions."""
    d, ins, outs = _keras_case(origin, case)
    model = rnnconvert.read(d / ("model.keras" if origin == "keras3" else "model.h5"))
    dst = tmp_path / "again.keras"
    rnnconvert.write(model, dst)
    for label in ("t1", "t40"):
        y, got = run_states(dst, ins[f"{label}.input"], model, _feeds(model, ins, label))
        np.testing.assert_allclose(y, outs[f"{label}.output"], atol=1e-4, rtol=1e-4)
        for k, p in enumerate(model.state_outputs):
            np.testing.assert_allclose(got[p.name], outs[f"{label}.state{k + 1}"], atol=1e-4, rtol=1e-4)


# -- refusals ---------------------------------------------------------------------------------------

def _h_only(tmp_path):
    """An LSTM whose h comes from a state input and whose c does not (ONNX initial_h without initial_c)."""
    model = rnnconvert.read(FIXTURES / "torch_onnx" / "states" / "lstm_linear_batch_first" / "model.onnx")
    model.state_inputs = [p for p in model.state_inputs if p.state == "h"]
    src = tmp_path / "h_only.rnnc"
    rnnconvert.write(model, src)
    return src


def test_refuses_an_lstm_with_only_its_h_fed(tmp_path):
    src, dst = _h_only(tmp_path), tmp_path / "m.keras"
    res = subprocess.run([sys.executable, "-m", "rnnconvert", "convert", str(src), str(dst)],
                         capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == (
        f"rnnconvert: error: {dst}: cannot write this model as Keras 3: layer '/rnn/LSTM': state inputs feed some "
        "of its initial states but not c of the forward direction; Keras's LSTM layer takes all of them together "
        "in initial_state=[h, c]: give every state of the layer as an input, or none")
    assert not dst.exists()


def test_refuses_keras_2_with_states(tmp_path):
    src = rnnconvert.read(FIXTURES / "torch_onnx" / "states" / "rnn_tanh" / "model.onnx")
    with pytest.raises(UnsupportedError) as info:
        rnnconvert.write(src, tmp_path / "m.h5", keras_version=2)
    assert str(info.value) == (f"{tmp_path / 'm.h5'}: keras_version=2: Keras 3, which verifies the file, cannot "
                               "load a tf.keras 2 model whose layers take initial states as inputs, so state inputs "
                               "and outputs are written as a Keras 3 functional model only; write with "
                               "keras_version=3")


HINT = ("; to convert one recurrent layer on its own, pass --layer NAME (recurrent layers found: enc (lstm), "
        "dec (lstm))")


def _save(model, tmp_path, name):
    path = tmp_path / name
    model.save(str(path))
    return path


def test_reader_refuses_states_it_cannot_hold(tmp_path):
    L = keras.layers
    x, h, c = keras.Input((None, 3), name="x"), keras.Input((4,), name="h_in"), keras.Input((4,), name="c_in")
    y, h1, c1 = L.LSTM(4, return_sequences=True, return_state=True, name="enc")(x, initial_state=[h, c])
    shared = _save(keras.Model([x, h, c], [L.LSTM(4, name="dec")(y, initial_state=[h, c])]), tmp_path, "a.keras")
    res = CliRunner().invoke(cli, ["convert", str(shared), str(tmp_path / "a.onnx")])
    assert res.exit_code == 2
    assert res.output.strip() == (f"rnnconvert: error: {shared}: the state input 'h_in' is the initial state of both "
                                  "'dec' and 'enc'; rnnconvert reads one state input per state" + HINT)
    passed = _save(keras.Model([x, h, c], [L.LSTM(4, name="dec")(y, initial_state=[h1, c1])]), tmp_path, "b.keras")
    res = CliRunner().invoke(cli, ["convert", str(passed), str(tmp_path / "b.onnx")])
    assert res.exit_code == 2
    assert res.output.strip() == (
        f"rnnconvert: error: {passed}: layer 'dec': its initial state comes from 'enc', which is not an input of "
        "the model (a state passed from layer to layer, as in an encoder-decoder); rnnconvert reads initial "
        "states given as model inputs" + HINT)
