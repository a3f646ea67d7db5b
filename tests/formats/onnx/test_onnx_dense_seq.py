"""A Dense on every step of a sequence as tf2onnx writes it (a Keras Dense on a 3-axis tensor, and
TimeDistributed(Dense)): Reshape [batch*time, features] -> MatMul (-> Add, activation) -> Reshape [batch, time,
units], the shapes constant or computed from the tensor's Shape (Gather, ReduceProd, Concat;
fixtures/tf2onnx_dense_seq).  It reads as the canonical Dense over the last axis (before or after a recurrent
layer, after both directions of one), predicts TF-Keras's outputs, and converts to ONNX (one native node per
layer, one MatMul or Gemm per Dense), PyTorch and Keras 3, each run by its own runtime.  A reshape that does not split the merged axis
back into the same batch and time, an op across the merged rows, or a merged graph output is refused, exit 2."""
from __future__ import annotations

import importlib.util
from collections import Counter

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import helper, numpy_helper

import rnnconvert
from conftest import FIXTURES
from rnnconvert.cli import cli
from rnnconvert.model import Dense, Recurrent

ort = pytest.importorskip("onnxruntime")
TOL = 1e-4
# case -> the canonical layer kinds, in order (the first Dense is the one on every step, named 'dense')
CASES = {
    "lstm_seq_dense_seq": [Recurrent, Dense],
    "gru_td_dense_gru_dense": [Recurrent, Dense, Recurrent, Dense],
    "td_dense_lstm_dense": [Dense, Recurrent, Dense],           # before the first recurrent node
    "bilstm_seq_dense_seq": [Recurrent, Dense],                 # both directions; shapes from Shape/ReduceProd
}


def _data(case, name="model.onnx"):
    d = FIXTURES / "tf2onnx_dense_seq" / case
    return d / name, dict(np.load(d / "inputs.npz")), dict(np.load(d / "outputs.npz"))


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("case", list(CASES))
def test_tf2onnx_dense_on_a_sequence_reads_as_a_dense(case):
    path, xs, ys = _data(case)
    assert _ops(path)["Reshape"] == 2 and not _ops(path)["Loop"]       # the pattern itself, as tf2onnx wrote it
    model = rnnconvert.read(str(path))
    assert [type(layer) for layer in model.layers] == CASES[case]
    dense = next(layer for layer in model.layers if isinstance(layer, Dense))
    assert dense.name == "dense"          # tf2onnx's 'sequential/dense/Tensordot/MatMul'
    for k, x in xs.items():
        np.testing.assert_allclose(rnnconvert.predict(model, x), ys[k], atol=1e-5, rtol=1e-5, err_msg=k)
    keras_h5 = rnnconvert.read(str(path.with_name("source_model.h5")))   # the TF-Keras source reads the same
    assert [type(layer) for layer in keras_h5.layers] == CASES[case]


@pytest.mark.parametrize("case", list(CASES))
def test_dense_on_a_sequence_converts_to_onnx_pytorch_and_keras(case, tmp_path):
    path, xs, ys = _data(case)
    model = rnnconvert.read(str(path))
    dst = tmp_path / "m.onnx"
    rnnconvert.write(model, str(dst))
    ops = _ops(dst)
    assert sum(ops[k] for k in ("LSTM", "GRU", "RNN")) == len(model.recurrent_layers) and not ops["Loop"], ops
    assert ops["MatMul"] + ops["Gemm"] == sum(isinstance(layer, Dense) for layer in model.layers), ops
    for k, x in xs.items():
        np.testing.assert_allclose(_ort(dst, x), ys[k], atol=TOL, rtol=TOL, err_msg=k)
    torch = pytest.importorskip("torch")
    from rnnconvert.formats.torch import write_module
    rnnconvert.write(model, str(tmp_path / "m.pt"))
    code = tmp_path / "m.module.py"
    write_module(model, code, weights="m.pt")
    spec = importlib.util.spec_from_file_location(f"dense_seq_{case}", code)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Model()
    net.load_state_dict(torch.load(tmp_path / "m.pt", map_location="cpu", weights_only=True), strict=True)
    net.eval()
    with torch.no_grad():
        for k, x in xs.items():
            np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), ys[k], atol=TOL, rtol=TOL, err_msg=k)
    keras = pytest.importorskip("keras")
    rnnconvert.write(model, str(tmp_path / "m.keras"))
    km = keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert "Lambda" not in [layer.__class__.__name__ for layer in km.layers]
    for k, x in xs.items():
        np.testing.assert_allclose(np.asarray(km.predict(x, verbose=0)), ys[k], atol=TOL, rtol=TOL, err_msg=k)


def _edited(tmp_path, edit) -> str:
    """fixtures/tf2onnx_dense_seq/lstm_seq_dense_seq with `edit(graph)` applied; still a valid ONNX graph that
    onnxruntime runs (checked), so only the reader's reading of it is under test."""
    m = onnx.load(str(FIXTURES / "tf2onnx_dense_seq" / "lstm_seq_dense_seq" / "model.onnx"))
    edit(m.graph)
    onnx.checker.check_model(m)
    out = tmp_path / "edited.onnx"
    onnx.save(m, str(out))
    _ort(out, np.zeros((2, 3, 4), np.float32))
    return str(out)


def _node(graph, name):
    return next(n for n in graph.node if n.name == name)


def _set_init(graph, name, value):
    init = next(i for i in graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(np.asarray(value, numpy_helper.to_array(init).dtype), name))


def _refused(src, tmp_path):
    result = CliRunner().invoke(cli, ["convert", src, str(tmp_path / "out.onnx")])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out.onnx").exists()
    return result.output


def test_a_split_into_time_then_batch_is_refused(tmp_path):
    """The shape [time, batch, units] (Gather [1, 0] of the Shape) splits the merged axis the other way round."""
    src = _edited(tmp_path, lambda g: _set_init(g, "sequential/dense/Tensordot/free:0", [1, 0]))
    out = _refused(src, tmp_path)
    assert "Reshape node 'sequential/dense/Tensordot': reshape of axes ('A0', 'A1', 'F') (sizes [A0, A1, 3]) to " \
           "[A1, A0, 3] does not keep batch, time, directions and features apart" in out


def test_a_merge_of_batch_time_and_features_is_refused(tmp_path):
    """[-1, 1] instead of [-1, 5] (with a [1, 3] kernel and [batch, time, 15] after): one value per row."""
    def edit(g):
        _set_init(g, "sequential/dense/Tensordot/Reshape_shape__70", [-1, 1])
        for name, shape in (("sequential/dense/Tensordot/ReadVariableOp:0", (1, 3)),
                            ("sequential/dense/BiasAdd/ReadVariableOp:0", (15,))):
            init = next(i for i in g.initializer if i.name == name)
            init.CopyFrom(numpy_helper.from_array(np.ones(shape, np.float32), name))
        _set_init(g, "sequential/dense/Tensordot/Const_2:0", [15])
        g.output[0].type.tensor_type.shape.Clear()
    out = _refused(_edited(tmp_path, edit), tmp_path)
    assert "Reshape node 'sequential/dense/Tensordot/Reshape': it merges axes ['A0', 'A1', 'F'] into one; only a " \
           "[directions, hidden] pair merges into features" in out


def test_an_op_across_the_merged_rows_is_refused(tmp_path):
    """A Slice of the merged [batch*time] axis mixes steps of different sequences."""
    def edit(g):
        g.initializer.extend([numpy_helper.from_array(np.array([v], np.int64), n)
                              for n, v in (("s0", 0), ("s1", 2), ("ax0", 0))])
        mm = _node(g, "sequential/dense/Tensordot/MatMul")
        k = list(g.node).index(mm)
        g.node.insert(k, helper.make_node("Slice", ["sequential/dense/Tensordot/Reshape:0", "s0", "s1", "ax0"],
                                          ["sliced"], name="rows"))
        mm.input[0] = "sliced"
        g.node.remove(_node(g, "sequential/dense/Tensordot"))   # the split no longer fits two rows: end at the Tanh
        g.node.insert(k + 2, helper.make_node("Identity", ["sequential/dense/Tensordot/MatMul:0"],
                                              ["sequential/dense/Tensordot:0"], name="flat"))
        g.output[0].type.tensor_type.shape.Clear()
    out = _refused(_edited(tmp_path, edit), tmp_path)
    assert "Slice node 'rows': it slices the merged batch*time axis (0:2:1)" in out


def test_a_merged_graph_output_is_refused(tmp_path):
    """The graph output is the [batch*time, units] MatMul: the canonical model returns [batch, time, units]."""
    def edit(g):
        for name in ("sequential/dense/Tensordot", "sequential/dense/BiasAdd", "sequential/dense/Tanh"):
            g.node.remove(next(n for n in g.node if n.name == name or n.output[0] == name.replace("/Tanh", "")
                               and n.op_type == "Tanh"))
        g.output[0].name = "sequential/dense/Tensordot/MatMul:0"
        g.output[0].type.tensor_type.shape.Clear()
    out = _refused(_edited(tmp_path, edit), tmp_path)
    assert "the output 'sequential/dense/Tensordot/MatMul:0' has its axes as [batch*time, features], expected " \
           "[batch, features]" in out


def test_torch_onnx_linear_on_a_sequence_is_a_matmul_on_three_axes():
    """torch.onnx writes nn.Linear on [batch, time, hidden] as MatMul + Add on the 3-axis tensor (no Reshape)."""
    path = FIXTURES / "torch_window" / "lstm_last5_dense" / "model.onnx"
    assert not _ops(path)["Reshape"] and _ops(path)["MatMul"] == 1
    model = rnnconvert.read(str(path))
    assert isinstance(model.layers[-1], Dense)
    xs, ys = np.load(path.with_name("inputs.npz")), np.load(path.with_name("outputs.npz"))
    for k in xs.files:
        np.testing.assert_allclose(rnnconvert.predict(model, xs[k]), ys[k], atol=1e-5, rtol=1e-5, err_msg=k)
