"""formats/onnx/lite.py against onnx itself: each function it holds gives what onnx's own gives
(byte-identical serialized messages, identical arrays), and it shares onnx's message classes."""
from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import external_data_helper, helper, numpy_helper

from rnnconvert.formats.onnx import lite

ROOT = Path(__file__).resolve().parents[3]

VALUES = [3, np.int64(-2), True, 0.25, np.float32(1.5), "forward", b"raw", [1, 2, 3], (np.int64(4),),
          [0.5, 1.0], [np.float32(2)], ["Sigmoid", "Tanh"], [b"a", "b"], numpy_helper.from_array(np.arange(3.0)),
          helper.make_graph([], "g", [], []), np.array([1.0, 2.0]), [1, 2.5]]


def test_the_message_classes_are_onnx_s():
    assert lite.ModelProto is onnx.ModelProto and lite.TensorProto is onnx.TensorProto
    assert lite.IR_VERSION == onnx.IR_VERSION
    assert lite.onnx_opset_version() == onnx.defs.onnx_opset_version()


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_make_attribute_and_node_are_onnx_s(value):
    assert lite.make_attribute("a", value).SerializeToString() == \
        helper.make_attribute("a", value).SerializeToString()
    assert lite.make_node("Op", ["x", ""], ["y"], name="n", b=value, a=1, z=None).SerializeToString() == \
        helper.make_node("Op", ["x", ""], ["y"], name="n", b=value, a=1, z=None).SerializeToString()


def test_empty_list_attribute_is_refused_as_onnx_refuses_it():
    with pytest.raises(ValueError, match="Could not infer attribute `a` type from empty iterator"):
        lite.make_attribute("a", [])


@pytest.mark.parametrize("shape", [None, [], [None, "batch", 3], [1]])
def test_graph_model_and_value_info_are_onnx_s(shape):
    vi, vo = (m.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape) for m in (lite, helper))
    assert vi.SerializeToString() == vo.SerializeToString()
    init = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    kw = dict(opset_imports=[lite.make_opsetid("", 17)], producer_name="p")
    ours = lite.make_model(lite.make_graph([lite.make_node("Relu", ["x"], ["y"])], "g", [vi], [vi], [init]), **kw)
    theirs = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [vo], [vo], [init]),
                               **kw)
    lite.set_model_props(ours, {"k": "v", "a": "b"})
    helper.set_model_props(theirs, {"k": "v", "a": "b"})
    assert ours.SerializeToString() == theirs.SerializeToString()
    assert lite.make_model(ours.graph).SerializeToString() == helper.make_model(ours.graph).SerializeToString()


DTYPES = ["float32", "float64", "float16", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
          "uint64", "bool", "complex64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (2, 3)])
def test_arrays_round_trip_as_onnx_s(dtype, shape):
    a = (np.random.default_rng(0).standard_normal(shape) * 50).astype(dtype)
    ours, theirs = lite.from_array(a, "t"), numpy_helper.from_array(a, "t")
    assert ours.SerializeToString() == theirs.SerializeToString()
    back, expected = lite.to_array(theirs), numpy_helper.to_array(theirs)
    assert back.dtype == expected.dtype and back.shape == expected.shape and back.tobytes() == expected.tobytes()


def test_to_array_of_typed_fields_and_bfloat16_is_onnx_s():
    for t in (helper.make_tensor("f", onnx.TensorProto.FLOAT, [2], [1.0, 2.0]),
              helper.make_tensor("i", onnx.TensorProto.INT64, [3], [1, -2, 3]),
              helper.make_tensor("b", onnx.TensorProto.BFLOAT16, [1], [1.5])):
        assert lite.to_array(t).tobytes() == numpy_helper.to_array(t).tobytes()
        assert lite.to_array(t).dtype == numpy_helper.to_array(t).dtype


def test_all_tensors_are_external_data_helper_s():
    """Initializers of subgraphs and Constant/attribute tensors, on every ONNX fixture and a Loop graph."""
    body = helper.make_graph([helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(2)))],
                             "body", [], [], [numpy_helper.from_array(np.zeros(1), "bi")])
    loop = helper.make_model(helper.make_graph([helper.make_node("Loop", ["m", ""], [], body=body)], "g", [], [],
                                               [numpy_helper.from_array(np.zeros(3), "i")]))
    models = [loop] + [onnx.load(p) for p in sorted(glob.glob(str(ROOT / "fixtures" / "*" / "*" / "*.onnx")))[:12]]
    for m in models:
        ours, theirs = ([t.SerializeToString() for t in f(m)] for f in (lite.all_tensors, external_data_helper._get_all_tensors))
        assert ours == theirs and len(ours) > 0


def test_loaded_models_and_check_model_are_onnx_s(tmp_path):
    path = sorted(glob.glob(str(ROOT / "fixtures" / "*" / "*" / "*.onnx")))[0]
    data = Path(path).read_bytes()
    assert lite.load(path, load_external_data=False) == onnx.load(path, load_external_data=False)
    assert lite.load_model_from_string(data) == onnx.load_model_from_string(data)
    lite.check_model(lite.load_model_from_string(data), full_check=True)
    bad = lite.load_model_from_string(data)
    bad.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(lite.checker.ValidationError) as ours:
        lite.check_model(bad, full_check=True)
    with pytest.raises(onnx.checker.ValidationError) as theirs:
        onnx.checker.check_model(bad, full_check=True)
    assert str(ours.value) == str(theirs.value)
