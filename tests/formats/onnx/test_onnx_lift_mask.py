"""Masked recurrences tf2onnx writes as a Loop (rnnconvert/formats/onnx/lift_mask.py): Keras `Masking` or
`Embedding(mask_zero=True)` before a GRU(reset_after=False), an LSTM, a SimpleRNN and a Bidirectional GRU
(fixtures/tf2onnx_mask, made by TF-Keras 2.x and tf2onnx 1.17, inputs left- and right-padded).  Each reads into
the canonical mask (a Masking layer or mask_zero, and masked_output), predicts TF-Keras' outputs, and converts
to ONNX (a Scan per direction: no native node skips masked steps), Keras 3 and PyTorch (refused: no mask),
each run by its own runtime; a body one op away from the masked cell is refused naming that op; --in-place
refuses a masked Loop with the reason."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import rnnconvert
from conftest import FIXTURES
from rnnconvert.cli import cli
from rnnconvert.errors import UnsupportedError
from rnnconvert.model import Embedding, Masking

ort = pytest.importorskip("onnxruntime")
TOL = 1e-4
# case -> (cells, Loops (one per layer and direction), the mask layer, what a masked step outputs: Keras' rule)
CASES = {
    "masking_gru_reset_before_seq": ("gru", 1, "masking", "previous"),
    "masking_lstm_seq": ("lstm", 1, "masking", "previous"),
    "masking_rnn_last": ("rnn", 1, "masking", "previous"),
    "embed_mask_gru_reset_before_last": ("gru", 1, "mask_zero", "previous"),
    "masking_bigru_reset_before_seq": ("gru", 2, "masking", "zero"),    # Bidirectional: zero_output_for_mask
    "masking_gru_seq_lstm": ("gru+lstm", 2, "masking", "previous"),     # the mask reaches both layers
    "masking_gru_reset_before_backwards": ("gru", 1, "masking", "previous"),   # x and mask reversed
}


def _data(case):
    d = FIXTURES / "tf2onnx_mask" / case
    return d / "model.onnx", dict(np.load(d / "inputs.npz")), dict(np.load(d / "outputs.npz"))


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("case", list(CASES))
def test_masked_loop_reads_with_its_mask_and_predicts(case):
    path, xs, ys = _data(case)
    assert _ops(path)["Loop"] == CASES[case][1]
    model = rnnconvert.read(str(path))
    cell, _, mask, masked_output = CASES[case]
    first = model.layers[0]
    assert isinstance(first, Masking) and first.mask_value == 0.0 if mask == "masking" else \
        isinstance(first, Embedding) and first.mask_zero
    assert [(r.cell, r.masked_output) for r in model.recurrent_layers] == [(c, masked_output)
                                                                          for c in cell.split("+")]
    if "backwards" in case:
        assert model.recurrent_layers[0].direction == "reverse"
    for k, x in xs.items():
        np.testing.assert_allclose(rnnconvert.predict(model, x), ys[k], atol=TOL, rtol=TOL, err_msg=k)
    # the padded rows are what the mask changes: without it the same weights give other outputs
    from dataclasses import replace
    bare = replace(model, layers=[replace(first, mask_zero=False)] + model.layers[1:] if mask == "mask_zero"
                   else model.layers[1:])
    assert np.abs(rnnconvert.predict(bare, xs["t7"]) - ys["t7"]).max() > 1e-3


@pytest.mark.parametrize("case", list(CASES))
def test_masked_loop_converts_to_onnx_and_keras_and_pytorch_refuses(case, tmp_path):
    path, xs, ys = _data(case)
    model = rnnconvert.read(str(path))
    dst = tmp_path / "m.onnx"
    rnnconvert.write(model, str(dst))
    ops = _ops(dst)
    assert ops["Scan"] == CASES[case][1] and not ops["Loop"] and not ops["LSTM"] + ops["GRU"] + ops["RNN"], ops
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    for k, x in xs.items():
        np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], ys[k], atol=TOL, rtol=TOL)
    import keras
    rnnconvert.write(model, str(tmp_path / "m.keras"))
    km = keras.models.load_model(tmp_path / "m.keras", compile=False)
    for k, x in xs.items():
        np.testing.assert_allclose(np.asarray(km.predict(x, verbose=0)), ys[k], atol=TOL, rtol=TOL, err_msg=k)
    res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / "m.pt")])
    assert res.exit_code == 2
    assert "PyTorch modules carry no mask" in res.output


def test_convert_verifies_against_onnxruntime_and_keras(tmp_path):
    path, _, _ = _data("masking_lstm_seq")
    for dst in ("m.onnx", "m.keras"):
        report = rnnconvert.convert(path, tmp_path / dst).to_dict()
        assert report["passed"], report


def _mutated(tmp_path, case, change):
    m = onnx.load(str(_data(case)[0]))
    loop = next(n for n in m.graph.node if n.op_type == "Loop")
    change(loop.attribute[0].g)
    out = tmp_path / "mutated.onnx"
    onnx.save(m, str(out))
    return out, loop.name


def test_a_masked_body_one_op_from_a_cell_is_refused_naming_it(tmp_path):
    def tanh_gate(body):
        node = next(n for n in body.node if n.op_type == "Sigmoid")
        node.op_type = "Tanh"
    path, loop = _mutated(tmp_path, "masking_gru_reset_before_seq", tanh_gate)
    res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / "o.onnx")])
    assert res.exit_code == 2
    assert f"Loop node '{loop}' does not compute an LSTM, GRU or RNN cell: its " in res.output
    assert "nothing was lifted" in res.output


def test_a_state_mixed_with_another_value_is_refused(tmp_path):
    def other_old(body):        # h kept on masked steps becomes the carried last output
        h_in, last_in = body.input[4].name, body.input[3].name
        mul = next(n for n in body.node if n.op_type == "Mul" and h_in in n.input and
                   any("SelectV2_1" in i for i in n.input))
        mul.input[list(mul.input).index(h_in)] = last_in
    path, loop = _mutated(tmp_path, "masking_gru_reset_before_seq", other_old)
    res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / "o.onnx")])
    assert res.exit_code == 2
    assert (f"Loop node '{loop}' reads a mask, but Add node 'sequential/gru/while/SelectV2_1' mixes a state by the "
            "mask with other than its old value; nothing was lifted") in res.output


def test_the_masked_step_check_can_fail(tmp_path, monkeypatch):
    """The mask's onnxruntime check compares the body with what the mask info says: told that masked steps
    output zeros (they output the last output), it refuses."""
    from dataclasses import replace
    from rnnconvert.formats.onnx import lift_mask
    real = lift_mask.unmask

    def wrong(*a):
        clean, info, rev, extra = real(*a)
        return clean, replace(info, masked_output="zero"), rev, extra
    monkeypatch.setattr(lift_mask, "unmask", wrong)
    path, _, _ = _data("masking_gru_reset_before_seq")
    with pytest.raises(UnsupportedError, match="the step output differs from the native node's under a mask by"):
        rnnconvert.read(str(path))


def test_in_place_refuses_a_masked_loop_with_the_reason(tmp_path):
    path, _, _ = _data("masking_lstm_seq")
    res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / "o.onnx"), "--in-place"])
    assert res.exit_code == 2
    assert res.output.strip().endswith(
        "Loop node 'sequential/lstm/PartitionedCall/while_loop' reads a mask (Keras Masking or Embedding mask_zero), "
        "and a native LSTM/GRU/RNN node cannot skip masked steps in the middle of a sequence; convert the whole "
        "model instead (a masked layer is written as a Scan)")


def test_a_mask_in_another_time_order_than_the_steps_is_refused(tmp_path):
    """go_backwards: x and the mask are both reversed before the Loop; a graph reversing x only is refused."""
    m = onnx.load(str(_data("masking_gru_reset_before_backwards")[0]))
    g = m.graph
    loop = next(n for n in g.node if n.op_type == "Loop")
    body = loop.attribute[0].g
    rev = {n.output[0]: n for n in g.node if n.op_type == "ReverseSequence"}
    gather = next(n for n in body.node if n.op_type == "Gather" and n.input[0] in rev and
                  "transpose_1" in rev[n.input[0]].input[0])
    gather.input[0] = rev[gather.input[0]].input[0]         # the mask in forward order
    path = tmp_path / "mixed_order.onnx"
    onnx.save(m, str(path))
    res = CliRunner().invoke(cli, ["convert", str(path), str(tmp_path / "o.onnx")])
    assert res.exit_code == 2
    assert (f"Loop node '{loop.name}' is not lifted: it reads its mask in another time order than its steps (one of "
            "them reversed)") in res.output
