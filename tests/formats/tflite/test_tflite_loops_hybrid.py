"""Int8 weights in rnnconvert's WHILE loops: `--quantize dynamic` and a hybrid source (TensorFlow's quantized
GRU loops, fixtures/tflite) write the loop's FULLY_CONNECTED ops with int8 weights, as LiteRT's hybrid kernel
runs them (a GRU's body in TensorFlow's form), the metadata says so, and the file reads back with its
`hybrid` setting: LiteRT against the reference pass of that arithmetic within 1e-5 (batch 3, lengths 1, 7,
40, a saturating row, initial states, reverse and bidirectional), plus the input's float32 noise where it has some, a quantized source converted to .tflite
EQUIVALENT at the default tolerance.  With the weights written as floats (the old writer) every test fails."""
from __future__ import annotations

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from litert_helpers import litert, run
from rnnconvert.errors import InputError
from rnnconvert.model import HARD_SIGMOID_KERAS2, TANH, InputSpec, Model
from rnnconvert.model.hybrid import dequantized
from rnnconvert.reference.network import forward
from test_tflite_loops import F, _inputs, _layer, loops

TFL = FIXTURES / "tflite"


def int8_products(path):
    """Per WHILE body: how many FULLY_CONNECTED ops it has and how many of them take an int8 weight."""
    litert()
    from ai_edge_litert import schema_py_generated as S
    m = S.Model.GetRootAsModel(open(path, "rb").read(), 0)
    fc = [i for i in range(m.OperatorCodesLength())
          if max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
          == S.BuiltinOperator.FULLY_CONNECTED]
    out = []
    for g in range(1, m.SubgraphsLength()):
        sg = m.Subgraphs(g)
        ops = [sg.Operators(k) for k in range(sg.OperatorsLength()) if sg.Operators(k).OpcodeIndex() in fc]
        if ops:
            out.append((len(ops), sum(sg.Tensors(op.Inputs(1)).Type() == S.TensorType.INT8 for op in ops)))
    return out


CASES = {       # (cell, direction, output, keyword arguments of test_tflite_loops._layer)
    "gru_seq": ("gru", "forward", "sequence", {}),
    "gru_reset_before_bidirectional_states": ("gru", "bidirectional", "sequence", {"reset_after": False,
                                                                                    "states": True}),
    "gru_reverse_last_step_states": ("gru", "reverse", "last_step", {"states": True}),
    "gru_reset_before_final": ("gru", "forward", "final_state", {"reset_after": False}),
    "rnn_selu_reverse_seq": ("rnn", "reverse", "sequence", {}),
    # an LSTM TFLite's op cannot hold (hard_sigmoid gates), no clip: a loop with int8 products
    "lstm_hard_sigmoid_bidirectional_states": ("lstm", "bidirectional", "sequence",
                                               {"states": True, "clip": None,
                                                "acts": [HARD_SIGMOID_KERAS2, TANH, TANH]}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_quantize_dynamic_loop_keeps_int8_weights(tmp_path, case):
    cell, direction, output, kw = CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)))
    model = Model([_layer(rng, cell, direction, output, **kw)], InputSpec("x", F)).validate()
    dst = tmp_path / "q.tflite"
    rnnconvert.write(model, dst, quantize="dynamic")
    products = int8_products(dst)
    assert len(products) == (2 if direction == "bidirectional" else 1)
    assert all(n == k and n >= 1 for n, k in products), products
    assert all("CONCATENATION" not in loop["ops"] for loop in loops(dst))
    back = rnnconvert.read(dst)
    (layer,) = back.layers
    d = ["forward", "reverse"] if direction == "bidirectional" else [direction]
    assert layer.hybrid is not None and layer.hybrid["asymmetric_inputs"] is True
    assert sorted(layer.hybrid["scales"]) == sorted(f"{k}.{a}" for k in d for a in ("W", "R"))
    for x in _inputs(rng):
        litert_out, expected = run(dst, x), forward(back, x)
        # an ulp of LiteRT's tanh/sigmoid can move an int8 value (README): on an input where the reference's
        # other float32 rounding moves it too (its noise, as verification measures it), allow that much
        noise = np.abs(forward(back, x, dtype=np.float32) - expected).max()
        np.testing.assert_allclose(expected, litert_out, atol=1e-5 + noise, rtol=0, err_msg=f"T={x.shape[1]}")
        if x.shape[1] > 1:          # int8 arithmetic is what LiteRT ran: the float model is far off
            assert np.abs(forward(dequantized(back), x) - litert_out).max() > 1e-4


@pytest.mark.parametrize("case", ["gru_quantized", "bigru_reset_before_quantized"])
def test_tensorflow_quantized_gru_to_tflite_is_equivalent(tmp_path, case):
    """TensorFlow's int8 GRU loops (read with their hybrid setting) -> .tflite: int8 loop bodies again, the
    same setting and weights read back, EQUIVALENT at the default tolerance, no 'arithmetic changed'."""
    src = TFL / case / "model.tflite"
    dst = tmp_path / "q.tflite"
    report = rnnconvert.convert(src, dst)
    assert report.passed, report
    assert not any("arithmetic changed" in n for n in report.notes)
    assert all(n == k for n, k in int8_products(dst))
    a, b = rnnconvert.read(src).layers[0], rnnconvert.read(dst).layers[0]
    assert a.hybrid is not None and b.hybrid == a.hybrid
    for key, v in a.arrays().items():
        np.testing.assert_array_equal(b.arrays()[key], v)


def test_loop_metadata_that_hides_int8_weights_is_an_input_error(tmp_path):
    model = Model([_layer(np.random.default_rng(1), "gru", "forward", "sequence")], InputSpec("x", F)).validate()
    dst = tmp_path / "q.tflite"
    rnnconvert.write(model, dst, quantize="dynamic")
    data = dst.read_bytes()
    said = b'"hybrid": {"asymmetric_inputs": true}'
    assert data.count(said) == 1
    dst.write_bytes(data.replace(said, b'"hybrid": null'.ljust(len(said))))
    with pytest.raises(InputError, match=r"metadata 'rnnconvert.loops': layer 'gru': 2 of its 2 weight tensors are "
                                         r"int8 and the metadata says float; a loop's products are all int8 or all "
                                         r"float"):
        rnnconvert.read(dst)


def test_clipped_loop_keeps_float_weights(tmp_path):
    """A clip (and a mask) is arithmetic reference/hybrid.py does not compute: such a loop stays float32 under
    --quantize dynamic, read back without a hybrid setting, and runs as the float reference."""
    rng = np.random.default_rng(2)
    model = Model([_layer(rng, "lstm", "forward", "sequence", clip=2.5, acts=[HARD_SIGMOID_KERAS2, TANH, TANH])],
                  InputSpec("x", F)).validate()
    dst = tmp_path / "q.tflite"
    rnnconvert.write(model, dst, quantize="dynamic")
    assert [k for _, k in int8_products(dst)] == [0]
    assert rnnconvert.read(dst).layers[0].hybrid is None
    x = _inputs(rng)[2]
    np.testing.assert_allclose(run(dst, x), forward(model, x), atol=2e-5, rtol=0)
