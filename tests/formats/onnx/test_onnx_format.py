"""The ONNX format (`rnnconvert.formats.onnx`): writer, reader, round trips and every refusal.

Oracles, never the implementation compared with itself:
- onnxruntime runs every written file; its outputs are compared with the fixtures' stored framework
  predictions (tf.keras 2.x, Keras 3) and with torch modules built here;
- the numpy reference pass (`rnnconvert.reference.network.forward`) of what the reader returns is compared
  with the stored predictions of torch.onnx.export / tf2onnx fixtures and with torch itself;
- structure is asserted as well as numbers: a written LSTM is one native `LSTM` node, no Loop/Scan.
Real-world files of ../shared/wild are used only when present, next to the fixtures, never alone.
"""
from __future__ import annotations

import itertools
import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import FIXTURES, WILD, cases
from onnx import TensorProto, helper, numpy_helper

import rnnconvert
from rnnconvert.model import gates
from rnnconvert import model as M
from rnnconvert.errors import InputError, UnsupportedError
from rnnconvert.formats import onnx as ox
from rnnconvert.formats.onnx.writer import META_KEY

ort = pytest.importorskip("onnxruntime")
reference = pytest.importorskip("rnnconvert.reference.network")

TOL = 1e-4
RNN_OPS = {"LSTM", "GRU", "RNN"}


# ---------------------------------------------------------------------------------------------
# helpers

def run_ort(path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(inp.type, np.float32)   # token ids
    return sess.run(None, {inp.name: np.asarray(x, dtype)})[0]


def op_counts(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def recurrent_inits(path) -> list[dict[str, bytes]]:
    """Per recurrent node, in graph order: {'W': raw bytes, 'R': ..., 'B': ...} of its initializers."""
    m = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    out = []
    for n in m.graph.node:
        if n.op_type in RNN_OPS:
            d = {}
            for key, name in zip(("X", "W", "R", "B"), n.input):
                if key != "X" and name:
                    assert name in inits, f"{key} of {n.name} is not an initializer"
                    d[key] = (inits[name].dtype.str, inits[name].shape, inits[name].tobytes())
            out.append(d)
    return out


def expected_nodes(case) -> list[str]:
    """Native node types a Keras fixture must become, from case.json's layer descriptions."""
    out = []
    for text in case.meta["layers"]:
        for key, op in (("SimpleRNN(", "RNN"), ("LSTM(", "LSTM"), ("GRU(", "GRU")):
            if key in text:
                out.append(op)
                break
    return out


def refused_activation(case) -> str | None:
    for text in case.meta["layers"]:
        if any(k in text for k in ("LSTM(", "GRU(", "SimpleRNN(")):
            for act in ("selu", "gelu", "swish", "exponential", "softmax"):
                if f"activation='{act}'" in text:
                    return act
    return None


def rand_model(cell="lstm", direction="forward", output="sequence", merge="concat", time_order="input",
               H=4, I=3, bias=(True, True), h0=None, c0=None, acts=None, reset_after=True, clip=None,
               layout="batch_time_feature", head=(), seed=0) -> M.Model:
    """A canonical model with seeded random weights (scale 0.5, biases non-zero)."""
    rng = np.random.default_rng(seed)
    G = gates.GATE_COUNT[cell]
    D = 2 if direction == "bidirectional" else 1
    f32 = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    ws = []
    for _ in range(D):
        ws.append(M.DirectionWeights(
            W=f32(G * H, I), R=f32(G * H, H),
            Wb=f32(G * H) if bias[0] else np.zeros(G * H, np.float32),
            Rb=f32(G * H) if bias[1] else np.zeros(G * H, np.float32),
            h0=None if h0 is None else f32(*h0), c0=None if c0 is None else f32(*c0)))
    default = {"lstm": [M.SIGMOID, M.TANH, M.TANH], "gru": [M.SIGMOID, M.TANH], "rnn": [M.TANH]}[cell]
    rec = M.Recurrent(name=f"{cell}_layer", cell=cell, hidden=H, direction=direction, weights=ws,
                      activations=acts or default, output=output, merge=merge, time_order=time_order,
                      reset_after=reset_after, clip=clip, has_input_bias=bias[0], has_recurrent_bias=bias[1])
    layers = [rec]
    width = rec.units_out
    for k, item in enumerate(head):
        if item == "dropout":
            layers.append(M.Dropout(f"dropout_{k}", 0.25))
        elif isinstance(item, tuple) and item[0] == "dense":
            units = item[1]
            act = item[2] if len(item) > 2 else M.LINEAR
            layers.append(M.Dense(f"dense_{k}", f32(width, units), f32(units), act))
            width = units
        else:
            layers.append(M.ActivationLayer(f"act_{k}", item))
    return M.Model(layers=layers, input=M.InputSpec(name="x", features=I, layout=layout),
                   output_name="y", name="test_model", source={"format": "test", "seed": seed}).validate()


def inputs(model: M.Model, seed=1, batches=((3, 7), (2, 1), (2, 25))) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = []
    for b, t in batches:
        x = rng.standard_normal((b, t, model.input.features)).astype(np.float32)
        x[-1] *= 4.0
        xs.append(x.transpose(1, 0, 2).copy() if model.input.layout == "time_batch_feature" else x)
    return xs


def assert_same_model(a: M.Model, b: M.Model):
    """Canonical models equal: every setting, every array bit for bit."""
    assert (a.name, a.output_name, a.source) == (b.name, b.output_name, b.source)
    assert vars(a.input) == vars(b.input)
    assert len(a.layers) == len(b.layers), ([x.kind for x in a.layers], [x.kind for x in b.layers])
    for la, lb in zip(a.layers, b.layers):
        assert type(la) is type(lb)
        assert M.layer_fields(la) == M.layer_fields(lb), (la.name, M.layer_fields(la), M.layer_fields(lb))
        aa, ab = la.arrays(), lb.arrays()
        assert aa.keys() == ab.keys(), la.name
        for k in aa:
            assert aa[k].dtype == ab[k].dtype and aa[k].shape == ab[k].shape, (la.name, k)
            assert aa[k].tobytes() == ab[k].tobytes(), (la.name, k)


# ---------------------------------------------------------------------------------------------
# (1) every Keras fixture -> ONNX -> onnxruntime == the framework's stored predictions

KERAS = cases("tfkeras2", "keras3", suffixes=(".h5", ".keras"))
ONNX_FIXTURES = cases("torch_onnx", "tf2onnx", suffixes=(".onnx",))


def test_fixtures_present():
    origins = {c.origin for c in KERAS + ONNX_FIXTURES}
    assert {"tfkeras2", "keras3", "torch_onnx", "tf2onnx"} <= origins, origins


@pytest.mark.parametrize("case", KERAS, ids=lambda c: c.id)
def test_keras_fixture_written_as_onnx_runs_in_onnxruntime(case, tmp_path):
    model = rnnconvert.read(case.path)
    out = tmp_path / "model.onnx"
    act = refused_activation(case)
    if act:     # no native node computes it: a Scan over a cell of standard ops, said in the notes
        notes = rnnconvert.write(model, out)
        assert any("written as a Scan" in n and f"'{act}'" in n for n in notes), notes
        counts = op_counts(out)
        assert counts["Scan"] == len(expected_nodes(case)) and not RNN_OPS & set(counts), counts
        for key, x, y in case.io():
            np.testing.assert_allclose(run_ort(out, x), y, atol=1e-4, rtol=0, err_msg=key)
        return
    rnnconvert.write(model, out)
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    counts = op_counts(out)
    if "mask" in case.meta.get("features", []):   # masked steps are skipped by Scans, never by native nodes
        assert not RNN_OPS & set(counts) and counts["Scan"] >= len(expected_nodes(case)), counts
    else:
        assert not {"Loop", "Scan", "If"} & set(counts), counts
        assert sum(counts[op] for op in RNN_OPS) == len(expected_nodes(case)), counts
        assert Counter(expected_nodes(case)) == Counter({op: counts[op] for op in RNN_OPS if counts[op]})
    for key, x, y in case.io():
        got = run_ort(out, x)
        assert got.shape == y.shape, key
        np.testing.assert_allclose(got, y, atol=TOL, rtol=0, err_msg=f"{case.id} {key}")


def test_written_graph_shape_and_provenance(tmp_path):
    model = rnnconvert.read(FIXTURES / "tfkeras2" / "stacked_lstm_dense" / "model.h5")
    out = tmp_path / "m.onnx"
    rnnconvert.write(model, out)
    m = onnx.load(str(out))
    assert m.producer_name == "rnnconvert" and m.producer_version == rnnconvert.__version__
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,), (outp,) = m.graph.input, m.graph.output
    assert inp.name == model.input.name and outp.name == model.output_name
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", "time", model.input.features]
    assert [n.op_type for n in m.graph.node].count("LSTM") == 2
    assert all(t.data_type == TensorProto.FLOAT for t in m.graph.initializer if t.name.split("/")[-1][0] in "WRB")
    meta = json.loads({p.key: p.value for p in m.metadata_props}[META_KEY])
    assert [e["kind"] for e in meta["layers"]] == ["lstm", "lstm", "dense"]


# ---------------------------------------------------------------------------------------------
# (2) ONNX files other tools wrote: read, and the reference pass equals their stored predictions

@pytest.mark.parametrize("case", ONNX_FIXTURES, ids=lambda c: c.id)
def test_onnx_fixture_read_matches_framework(case):
    model = ox.read(case.path)
    assert model.recurrent_layers
    for key, x, y in case.io():
        got = reference.forward(model, x)
        assert got.shape == y.shape, key
        np.testing.assert_allclose(got, y, atol=TOL, rtol=0, err_msg=f"{case.id} {key}")


def test_torch_fixture_structure():
    m = ox.read(FIXTURES / "torch_onnx" / "gru_2layer_bidir_seq" / "model.onnx")
    assert [(x.cell, x.direction, x.output, x.merge, x.reset_after) for x in m.layers] == \
        [("gru", "bidirectional", "sequence", "concat", True)] * 2
    m = ox.read(FIXTURES / "torch_onnx" / "lstm_time_major" / "model.onnx")
    assert m.input.layout == "time_batch_feature"
    m = ox.read(FIXTURES / "torch_onnx" / "lstm_initial_state_expand" / "model.onnx")
    assert m.layers[0].weights[0].h0.shape == (5,) and m.layers[0].weights[0].c0.shape == (5,)
    m = ox.read(FIXTURES / "torch_onnx" / "lstm_initial_state_const" / "model.onnx")
    assert m.layers[0].weights[0].h0.shape == (3, 5)
    m = ox.read(FIXTURES / "tf2onnx" / "lstm_dense" / "model.onnx")
    assert [x.kind for x in m.layers] == ["lstm", "dense"]
    assert m.layers[0].weights[0].h0 is None        # tf2onnx's Expand(0) zero state is no state


TORCH_VARIANTS = [
    # cell, bidirectional, layers, batch_first, head, opset
    ("LSTM", False, 1, True, "seq", 9),
    ("LSTM", True, 2, True, "last", 11),
    ("LSTM", False, 2, True, "hn", 14),
    ("LSTM", True, 1, False, "seq", 17),
    ("GRU", True, 1, True, "hn_cat", 13),
    ("GRU", False, 1, False, "last", 9),
    ("GRU", True, 2, True, "seq_logsoftmax", 17),
    ("RNN", False, 2, True, "seq", 12),
    ("RNN", True, 1, True, "last", 17),
    ("RNN_relu", False, 1, True, "hn", 15),
]


class _TorchNet:
    @staticmethod
    def build(cell, bidir, layers, batch_first, head, I=3, H=4):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                kw = dict(num_layers=layers, bidirectional=bidir, batch_first=batch_first)
                if cell == "RNN_relu":
                    self.rnn = torch.nn.RNN(I, H, nonlinearity="relu", **kw)
                else:
                    self.rnn = getattr(torch.nn, cell)(I, H, **kw)
                self.fc = torch.nn.Linear((2 if bidir else 1) * H, 2)

            def forward(self, x):
                y, h = self.rnn(x)
                h_n = h[0] if isinstance(h, tuple) else h
                if head == "seq":
                    return y
                if head == "last":
                    return self.fc(y[:, -1] if batch_first else y[-1])
                if head == "hn":
                    return torch.tanh(self.fc(h_n[-1]))
                if head == "hn_cat":
                    return self.fc(torch.cat([h_n[-2], h_n[-1]], dim=1))
                if head == "seq_logsoftmax":
                    return torch.log_softmax(self.fc(y), dim=-1)
                raise ValueError(head)

        torch.manual_seed(0)
        net = Net().eval()
        with torch.no_grad():
            for p in net.parameters():
                p.uniform_(-0.8, 0.8)
        return net


@pytest.mark.parametrize("variant", TORCH_VARIANTS, ids=lambda v: "-".join(map(str, v)))
def test_torch_onnx_export_read_and_rewritten(variant, tmp_path):
    torch = pytest.importorskip("torch")
    cell, bidir, layers, batch_first, head, opset = variant
    net = _TorchNet.build(cell, bidir, layers, batch_first, head)
    b_ax, t_ax = (0, 1) if batch_first else (1, 0)
    path = tmp_path / "torch.onnx"
    example = torch.randn((2, 5, 3) if batch_first else (5, 2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(path), input_names=["x"], output_names=["y"], opset_version=opset,
                          dynamic_axes={"x": {b_ax: "batch", t_ax: "time"}}, dynamo=False)
    model = ox.read(path)
    assert len(model.recurrent_layers) == layers
    out = tmp_path / "rewritten.onnx"
    ox.write(model, out)
    assert sum(op_counts(out)[op] for op in RNN_OPS) == layers
    rng = np.random.default_rng(3)
    for b, t in ((3, 7), (1, 1), (2, 30)):
        x = rng.standard_normal((b, t, 3) if batch_first else (t, b, 3)).astype(np.float32)
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(reference.forward(model, x), want, atol=TOL, rtol=0)
        np.testing.assert_allclose(run_ort(out, x), want, atol=TOL, rtol=0)


# ---------------------------------------------------------------------------------------------
# (3) round trips: ONNX -> canonical -> ONNX keeps weights bit for bit and outputs identical

@pytest.mark.parametrize("case", ONNX_FIXTURES, ids=lambda c: c.id)
def test_foreign_onnx_round_trip_keeps_weights_bitwise(case, tmp_path):
    out = tmp_path / "again.onnx"
    ox.write(ox.read(case.path), out)
    assert recurrent_inits(out) == recurrent_inits(case.path)
    for key, x, _ in case.io():
        a, b = run_ort(case.path, x), run_ort(out, x)
        # a Gemm head is written back as MatMul + Add: onnxruntime may round the last bit differently
        np.testing.assert_allclose(b, a, atol=1e-6, rtol=0, err_msg=key)


@pytest.mark.parametrize("case", [c for c in KERAS if not refused_activation(c)], ids=lambda c: c.id)
def test_own_file_round_trip_is_exact(case, tmp_path):
    model = rnnconvert.read(case.path)
    first, second = tmp_path / "a.onnx", tmp_path / "b.onnx"
    ox.write(model, first)
    back = ox.read(first)
    assert_same_model(model, back)
    ox.write(back, second)
    a, b = onnx.load(str(first)), onnx.load(str(second))
    assert a.SerializeToString() == b.SerializeToString()
    assert recurrent_inits(first) == recurrent_inits(second)
    for _, x, _ in case.io():
        np.testing.assert_array_equal(run_ort(first, x), run_ort(second, x))


MATRIX = [
    dict(cell=c, direction=d, output=o, merge=m)
    for c, d, o, m in itertools.product(("lstm", "gru", "rnn"), ("forward", "reverse", "bidirectional"),
                                        ("sequence", "last_step", "final_state"), ("concat", "sum", "mul", "ave"))
    if d == "bidirectional" or m == "concat"
]
EXTRA = [
    dict(cell="lstm", direction="reverse", output="sequence", time_order="processing"),
    dict(cell="gru", direction="reverse", output="sequence", time_order="processing", reset_after=False),
    dict(cell="gru", direction="bidirectional", output="last_step", reset_after=False, merge="ave"),
    dict(cell="lstm", bias=(False, False), output="final_state"),
    dict(cell="lstm", bias=(True, False), direction="bidirectional"),
    dict(cell="gru", bias=(False, True)),
    dict(cell="lstm", h0=(4,), c0=(4,), direction="bidirectional"),
    dict(cell="gru", h0=(2, 4), output="last_step", direction="reverse"),
    dict(cell="lstm", h0=(4,), layout="time_batch_feature"),
    dict(cell="rnn", layout="time_batch_feature", direction="bidirectional", merge="sum"),
    dict(cell="lstm", clip=0.7),
    dict(cell="lstm", acts=[M.HARD_SIGMOID_KERAS3, M.Activation("leaky_relu", 0.1),
                            M.Activation("scaled_tanh", 1.2, 0.7)]),
    dict(cell="gru", acts=[M.HARD_SIGMOID_KERAS2, M.Activation("elu", 0.8)], direction="bidirectional"),
    dict(cell="rnn", acts=[M.Activation("affine", 0.5, 0.1)]),
    dict(cell="rnn", acts=[M.LINEAR]),
    dict(cell="rnn", acts=[M.RELU], output="last_step"),
    dict(cell="rnn", acts=[M.Activation("softsign")]),
    dict(cell="rnn", acts=[M.Activation("softplus")]),
    dict(cell="rnn", acts=[M.Activation("thresholded_relu", 0.3)]),
    dict(cell="lstm", output="final_state", head=(("dense", 3, M.Activation("softmax")),)),
    dict(cell="gru", output="sequence", head=("dropout", ("dense", 3), M.Activation("log_softmax"))),
]
HEAD_ACTS = [M.Activation(n) for n in ("linear", "sigmoid", "tanh", "relu", "softsign", "softplus", "exponential",
                                       "swish", "gelu", "softmax", "log_softmax", "relu6")] + [
    M.HARD_SIGMOID_KERAS3, M.Activation("elu", 0.7), M.SELU, M.Activation("leaky_relu", 0.2),
    M.Activation("thresholded_relu", 0.4), M.Activation("affine", 1.5, -0.25), M.Activation("scaled_tanh", 1.7, 0.66)]
EXTRA += [dict(cell="lstm", output="last_step", head=(("dense", 3, a),), seed=k) for k, a in enumerate(HEAD_ACTS)]
EXTRA += [dict(cell="gru", output="sequence", head=(("dense", 3), a), seed=k) for k, a in enumerate(HEAD_ACTS)]


def _id(kw):
    return ",".join(f"{k}={v.name if isinstance(v, M.Activation) else v}" for k, v in kw.items()
                    if k not in ("acts", "head")) + (",acts" if "acts" in kw else "") + \
        ("," + "+".join(str(getattr(h[2] if isinstance(h, tuple) and len(h) > 2 else h, "name", h))
                        for h in kw["head"]) if "head" in kw else "")


@pytest.mark.parametrize("kw", MATRIX + EXTRA, ids=_id)
def test_canonical_written_runs_in_onnxruntime_and_reads_back_exactly(kw, tmp_path):
    model = rand_model(**kw)
    path = tmp_path / "m.onnx"
    notes = ox.write(model, path)
    assert isinstance(notes, list)
    counts = op_counts(path)
    assert counts[{"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[kw["cell"]]] == 1
    assert not {"Loop", "Scan"} & set(counts)
    batches = ((2, 4), (2, 1), (2, 9)) if kw.get("h0") and len(kw["h0"]) == 2 else ((3, 7), (2, 1), (2, 25))
    for x in inputs(model, batches=batches):
        np.testing.assert_allclose(run_ort(path, x), reference.forward(model, x), atol=TOL, rtol=0)
    assert_same_model(model, ox.read(path))


def test_round_trip_without_metadata_keeps_numbers(tmp_path):
    """Stripped of the metadata, the graph alone still gives the same numbers (it is the truth)."""
    model = rand_model(cell="lstm", direction="bidirectional", output="final_state", merge="ave",
                       head=("dropout", ("dense", 3), M.Activation("swish")))
    path = tmp_path / "m.onnx"
    ox.write(model, path)
    m = onnx.load(str(path))
    del m.metadata_props[:]
    onnx.save(m, str(path))
    back = ox.read(path)
    assert [x.kind for x in back.layers] == ["lstm", "dense"]
    assert back.layers[1].activation.name == "swish"
    for x in inputs(model):
        np.testing.assert_allclose(reference.forward(back, x), reference.forward(model, x), atol=1e-6, rtol=0)


def test_metadata_never_overrides_the_graph(tmp_path):
    """Edited weights and a metadata that lies about the activation: the graph wins."""
    model = rand_model(cell="gru", acts=[M.HARD_SIGMOID_KERAS2, M.TANH])
    path = tmp_path / "m.onnx"
    ox.write(model, path)
    m = onnx.load(str(path))
    for t in m.graph.initializer:
        if "/W_" in t.name:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * 2, t.name))
    for node in m.graph.node:
        if node.op_type == "GRU":
            for a in node.attribute:
                if a.name == "activation_alpha":
                    a.floats[:] = [0.25]
    onnx.save(m, str(path))
    back = ox.read(path)
    assert back.layers[0].activations[0] == M.Activation("hard_sigmoid", 0.25, 0.5)
    np.testing.assert_array_equal(back.layers[0].weights[0].W, model.layers[0].weights[0].W * 2)


# ---------------------------------------------------------------------------------------------
# (4) errors: class and message

def _lstm_graph(nodes_before=(), W_rows=20, H=5, extra_inputs=(), attrs=None, P=None, outputs=("Y",),
                x_name="X", inputs_override=None, seq_lens=False):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((1, W_rows, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((1, 4 * H, H)).astype(np.float32), "R")]
    ins = [x_name, "W", "R", "", "seq" if seq_lens else ""]
    if seq_lens:
        inits.append(numpy_helper.from_array(np.array([2, 2], np.int32), "seq"))
    if P is not None:
        inits.append(numpy_helper.from_array(P.astype(np.float32), "P"))
        ins += ["", "", "P"]
    node = helper.make_node("LSTM", ins, list(outputs), name="bad_lstm", hidden_size=H, **(attrs or {}))
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["time", "batch", 3])]
    graph_inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in extra_inputs]
    graph = helper.make_graph(list(nodes_before) + [node], "g", graph_inputs,
                              [helper.make_tensor_value_info(outputs[-1], TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _save(tmp_path, proto, name="bad.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(proto.SerializeToString())
    return path


def test_truncated_file(tmp_path):
    good = tmp_path / "good.onnx"
    ox.write(rand_model(), good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as exc:
        ox.read(bad)
    assert type(exc.value) is InputError
    assert str(exc.value).startswith(f"{bad}: not an ONNX model (cannot parse protobuf: ")


@pytest.mark.parametrize("content", [b"hello, this is a text file\n", b"", b"\x08\x07"])
def test_not_protobuf(tmp_path, content):
    bad = tmp_path / "text.onnx"
    bad.write_bytes(content)
    with pytest.raises(InputError) as exc:
        ox.read(bad)
    assert type(exc.value) is InputError
    assert "not an ONNX model (cannot parse protobuf" in str(exc.value) and str(bad) in str(exc.value)
    assert ox.sniff(bad) is False


def test_sniff(tmp_path):
    good = tmp_path / "noext"
    ox.write(rand_model(), tmp_path / "m.onnx")
    good.write_bytes((tmp_path / "m.onnx").read_bytes())
    assert ox.sniff(good) is True
    assert ox.sniff(FIXTURES / "tfkeras2" / "lstm_last_softmax" / "model.h5") is False


def test_no_recurrent_op(tmp_path):
    node = helper.make_node("Relu", ["X"], ["Y"], name="relu")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, 3])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2, 3])])
    path = _save(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(InputError) as exc:
        ox.read(path)
    assert type(exc.value) is InputError
    assert str(exc.value) == f"{path}: no LSTM, GRU or RNN node found; found ops: Relu"


def test_loop_only_graph(tmp_path):
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Tanh", ["h_in"], ["h_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("h_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("h_out", TensorProto.FLOAT, None)])
    trip = numpy_helper.from_array(np.array(3, np.int64), "trip")
    node = helper.make_node("Loop", ["trip", "", "X"], ["Y"], name="while_loop", body=body)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, 3])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], [trip])
    path = _save(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(UnsupportedError) as exc:
        ox.read(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: no LSTM, GRU or RNN node found; ")
    assert "Loop node 'while_loop'" in msg and msg.endswith("found ops: Loop")


def test_recurrent_op_inside_if(tmp_path):
    inner = _lstm_graph().graph
    then = helper.make_graph(list(inner.node), "then", [], [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
                             list(inner.initializer))
    node = helper.make_node("If", ["cond"], ["Z"], name="branch", then_branch=then, else_branch=then)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["t", "b", 3]),
                                            helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("Z", TensorProto.FLOAT, None)])
    path = _save(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(UnsupportedError, match=r"the LSTM nodes sit inside the subgraphs of If node 'branch'; "
                                               r"rnnconvert reads recurrent nodes of the main graph only"):
        ox.read(path)
    # a constant condition: the branch it takes is the model (tests/formats/onnx/test_onnx_if.py has more)
    graph.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
    del graph.input[1]
    path = _save(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), name="const.onnx")
    model = ox.read(path)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"X": x})[0]             # the raw Y [T, 1, B, H]
    np.testing.assert_allclose(reference.forward(model, x), want[:, 0], atol=1e-5, rtol=0)


def test_bad_weight_shape_names_the_node(tmp_path):
    path = _save(tmp_path, _lstm_graph(W_rows=16))
    with pytest.raises(InputError) as exc:
        ox.read(path)
    assert type(exc.value) is InputError
    assert "LSTM node 'bad_lstm' (hidden_size=5): W has shape (1, 16, 3), expected (1, 4*hidden_size = 20, " \
           "input_size)" in str(exc.value)


def test_peepholes_read_input_forget_and_sequence_lens_refused(tmp_path):
    P = np.arange(15, dtype=np.float32).reshape(1, 15)             # i, o, f blocks of 5
    model = ox.read(_save(tmp_path, _lstm_graph(P=P)))             # peepholes read (test_onnx_peer.py runs them)
    np.testing.assert_array_equal(model.layers[0].weights[0].P, P.reshape(3, 5)[[0, 2, 1]])
    zero = ox.read(_save(tmp_path, _lstm_graph(P=np.zeros((1, 15))), "zero_p.onnx"))    # zero peepholes: none
    assert zero.layers[0].weights[0].P is None
    with pytest.raises(UnsupportedError, match=r"LSTM node 'bad_lstm': input_forget=1"):
        ox.read(_save(tmp_path, _lstm_graph(attrs={"input_forget": 1}), "if.onnx"))
    with pytest.raises(UnsupportedError, match="LSTM node 'bad_lstm': it takes sequence_lens"):
        ox.read(_save(tmp_path, _lstm_graph(seq_lens=True), "sl.onnx"))


def test_state_inputs_and_unknown_ops_refused(tmp_path):
    with pytest.raises(UnsupportedError, match=r"the graph has 2 inputs \('X', 'h'\); rnnconvert reads models "
                                               r"with one input"):
        ox.read(_save(tmp_path, _lstm_graph(extra_inputs=("h",))))
    conv = helper.make_node("Softmax", ["X"], ["Xs"], name="softmax_over_time", axis=0)
    with pytest.raises(UnsupportedError, match="Softmax node 'softmax_over_time': Softmax over axis 0, not the feature"):
        ox.read(_save(tmp_path, _lstm_graph(nodes_before=[conv], x_name="Xs"), "sm.onnx"))
    with pytest.raises(UnsupportedError, match="uses the cell state Y_c of LSTM node 'bad_lstm'"):
        ox.read(_save(tmp_path, _lstm_graph(outputs=("", "", "Yc")), "yc.onnx"))


def test_unrecognised_op_names_the_node(tmp_path):
    m = _lstm_graph(outputs=("Y",))
    node = helper.make_node("TopK", ["Y", "k"], ["V", "I"], name="topk", axis=-1)
    m.graph.node.append(node)
    m.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "k"))
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info("V", TensorProto.FLOAT, None))
    with pytest.raises(UnsupportedError, match="TopK node 'topk': an op rnnconvert does not map"):
        ox.read(_save(tmp_path, m))


def test_writer_uses_scan_where_onnx_nodes_cannot_compute(tmp_path):
    """Native nodes stay the default; what they cannot express becomes a Scan (tests/test_onnx_stateful.py)."""
    model = rand_model(cell="rnn", acts=[M.SELU])
    notes = ox.write(model, tmp_path / "selu.onnx")
    assert notes == ["layer 'rnn_layer': written as a Scan over a cell of standard ops (the hidden (f) activation "
                     "'selu' is not one native nodes compute)"]
    model = rand_model(cell="lstm", acts=[M.SIGMOID, M.Activation("gelu"), M.Activation("swish")])
    notes = ox.write(model, tmp_path / "gelu.onnx")
    assert "'gelu'" in notes[0] and "'swish'" in notes[0]
    model = rand_model(cell="lstm")
    model.layers[0].weights[0].proj = np.ones((2, 4), np.float32)
    model.layers[0].weights[0].R = np.ones((16, 2), np.float32)
    assert ox.write(model, tmp_path / "proj.onnx") == [
        "layer 'lstm_layer': written as a Scan over a cell of standard ops (native LSTM nodes have no output "
        "projection)"]


def test_no_traceback_escapes_on_garbage_graphs(tmp_path):
    m = _lstm_graph()
    m.graph.node[0].input[1] = "missing_tensor"
    with pytest.raises(UnsupportedError, match="tensor 'missing_tensor' is used before any node computes it"):
        ox.read(_save(tmp_path, m))


# ---------------------------------------------------------------------------------------------
# real-world files (only when ../shared/wild is present; never the only test of a feature)

WILD_CONVERT = ["onnx_tvm_lstm_mnist_pt13", "onnx_nncase_keras2onnx160_hardsigmoid", "onnx_exercise_lstm2_tf2onnx_op9"]


@pytest.fixture
def wild_case(request):
    folder = WILD / request.param
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    meta = json.loads((folder / "case.json").read_text())
    return folder / Path(meta["path"]).name, np.load(folder / "x.npy"), np.load(folder / "y.npy")


@pytest.mark.parametrize("wild_case", WILD_CONVERT, indirect=True)
def test_wild_onnx_converts(wild_case, tmp_path):
    path, x, y = wild_case
    model = ox.read(path)
    np.testing.assert_allclose(reference.forward(model, x), y, atol=TOL, rtol=0)
    out = tmp_path / "again.onnx"
    ox.write(model, out)
    assert recurrent_inits(out)[0]["W"] is not None
    np.testing.assert_allclose(run_ort(out, x), y, atol=TOL, rtol=0)


@pytest.mark.parametrize("wild_case", ["onnx_water_gru_loop_tf2onnx117"], indirect=True)
def test_wild_loop_lifted_then_refused_at_the_attention(wild_case):
    """Its three Loop-GRUs lift (tests/formats/onnx/test_onnx_lift_loop.py); the attention after them does not read."""
    with pytest.raises(UnsupportedError, match="MatMul node 'functional_4_1/attention_1_1/MatMul': MatMul of the "
                                               "signal with something other than a constant 2-D kernel"):
        ox.read(wild_case[0])


# ---------------------------------------------------------------------------------------------
# glue the exporters write, hand-built and run by onnxruntime (the oracle for what the graph means)

def _const(name, v, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(v, dtype=dtype), name)


def _glue_model(build, opset=13, H=4, I=3, D=2, cell="LSTM", seed=0):
    """A graph `x [batch, time, I] -> y` whose recurrent part is `build(nodes, inits)`."""
    rng = np.random.default_rng(seed)
    G = {"LSTM": 4, "GRU": 3, "RNN": 1}[cell]
    inits = [_const("W", rng.standard_normal((D, G * H, I)) * 0.6), _const("R", rng.standard_normal((D, G * H, H)) * 0.6),
             _const("B", rng.standard_normal((D, 2 * G * H)) * 0.4)]
    nodes = []
    build(nodes, inits)
    graph = helper.make_graph(nodes, "glue", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "time", I])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _n(op, ins, outs, **kw):
    return helper.make_node(op, ins, outs if isinstance(outs, list) else [outs], name=f"{op}_{outs}", **kw)


def _bi_last_from_y(n, i):      # Keras Bidirectional(return_sequences=False) written from Y
    i += [_const("s0", [0, -1], np.int64), _const("e0", [1, BIG_END], np.int64), _const("ax", [1, 0], np.int64),
          _const("s1", [1, 0], np.int64), _const("e1", [2, 1], np.int64), _const("sq", [0, 1], np.int64)]
    n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]),
          _n("LSTM", ["xt", "W", "R", "B"], "Y", hidden_size=4, direction="bidirectional"),
          _n("Slice", ["Y", "s0", "e0", "ax"], "yf"), _n("Slice", ["Y", "s1", "e1", "ax"], "yb"),
          _n("Squeeze", ["yf", "sq"], "f"), _n("Squeeze", ["yb", "sq"], "b"), _n("Concat", ["f", "b"], "y", axis=1)]


def _bi_ave_seq(n, i):          # Split directions, Add, Mul 0.5, back to batch-major
    i += [_const("one", [1], np.int64), _const("half", 0.5)]
    n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]),
          _n("GRU", ["xt", "W", "R", "B"], "Y", hidden_size=4, direction="bidirectional", linear_before_reset=1),
          _n("Split", ["Y"], ["y0", "y1"], axis=1), _n("Squeeze", ["y0", "one"], "a"), _n("Squeeze", ["y1", "one"], "b"),
          _n("Add", ["a", "b"], "s"), _n("Mul", ["s", "half"], "m"), _n("Transpose", ["m"], "y", perm=[1, 0, 2])]


def _bi_mul_state(n, i):        # Y_h merged by ReduceProd
    n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]),
          _n("LSTM", ["xt", "W", "R", "B"], ["", "Yh"], hidden_size=4, direction="bidirectional"),
          _n("ReduceProd", ["Yh"], "y", axes=[0], keepdims=0)]


def _reversed_input(n, i):      # go_backwards as a forward node over x[:, ::-1]; sequence in processing order
    i += [_const("st", [-1], np.int64), _const("en", [-BIG_END], np.int64), _const("a1", [1], np.int64),
          _const("m1", [-1], np.int64)]
    n += [_n("Slice", ["x", "st", "en", "a1", "m1"], "xr"), _n("Transpose", ["xr"], "xt", perm=[1, 0, 2]),
          _n("LSTM", ["xt", "W", "R", "B"], "Y", hidden_size=4), _n("Squeeze", ["Y", "a1"], "ys"),
          _n("Transpose", ["ys"], "y", perm=[1, 0, 2])]


def _reversed_back(n, i):       # ... and turned back to input order with ReverseSequence over full lengths
    i += [_const("zero", [0], np.int64), _const("one1", [1], np.int64), _const("a1", [1], np.int64)]
    n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]), _n("Shape", ["xt"], "shp"),
          _n("Gather", ["shp", "zero"], "T"), _n("Gather", ["shp", "one1"], "Bn"), _n("Expand", ["T", "Bn"], "lens"),
          _n("ReverseSequence", ["xt", "lens"], "xr", time_axis=0, batch_axis=1),
          _n("GRU", ["xr", "W", "R", "B"], "Y", hidden_size=4, linear_before_reset=1), _n("Squeeze", ["Y", "a1"], "ys"),
          _n("ReverseSequence", ["ys", "lens"], "yo", time_axis=0, batch_axis=1),
          _n("Transpose", ["yo"], "y", perm=[1, 0, 2])]


def _two_nodes(n, i):           # two one-direction nodes over the same input = one bidirectional layer
    i += [_const("a1", [1], np.int64), _const("d0", [0], np.int64), _const("d1", [1], np.int64)]
    n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]),
          _n("Gather", ["W", "d0"], "Wf"), _n("Gather", ["R", "d0"], "Rf"), _n("Gather", ["B", "d0"], "Bf"),
          _n("Gather", ["W", "d1"], "Wr"), _n("Gather", ["R", "d1"], "Rr"), _n("Gather", ["B", "d1"], "Br"),
          _n("RNN", ["xt", "Wf", "Rf", "Bf"], "Yf", hidden_size=4, direction="forward"),
          _n("RNN", ["xt", "Wr", "Rr", "Br"], "Yr", hidden_size=4, direction="reverse"),
          _n("Squeeze", ["Yf", "a1"], "f"), _n("Squeeze", ["Yr", "a1"], "r"), _n("Concat", ["f", "r"], "c", axis=2),
          _n("Transpose", ["c"], "y", perm=[1, 0, 2])]


def _opset9_head(n, i):         # opset 9: Slice/Squeeze attributes, Gemm head, Softmax(axis=1) on 2-D
    rng = np.random.default_rng(5)
    i += [_const("k", rng.standard_normal((2, 8))), _const("c", rng.standard_normal(2))]
    n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]),
          _n("LSTM", ["xt", "W", "R", "B"], "Y", hidden_size=4, direction="bidirectional"),
          _n("Slice", ["Y"], "yl", starts=[-1], ends=[BIG_END], axes=[0]), _n("Squeeze", ["yl"], "y3", axes=[0]),
          _n("Transpose", ["y3"], "y4", perm=[1, 0, 2]), _n("Reshape", ["y4", "shape"], "flat"),
          _n("Gemm", ["flat", "k", "c"], "g", transB=1), _n("Softmax", ["g"], "y", axis=1)]
    i += [_const("shape", [0, -1], np.int64)]


def _keras2onnx_reshape(n, i):  # Transpose [2,0,1,3] + Reshape [0, 0, -1]: concat of directions, batch-major
    i += [_const("shape", [0, 0, -1], np.int64)]
    n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]),
          _n("GRU", ["xt", "W", "R", "B"], "Y", hidden_size=4, direction="bidirectional"),
          _n("Transpose", ["Y"], "yt", perm=[2, 0, 1, 3]), _n("Reshape", ["yt", "shape"], "y")]


def _head_exprs(n, i):          # Dense + composite activations: gelu written the torch way, then swish
    rng = np.random.default_rng(6)
    i += [_const("k", rng.standard_normal((4, 3))), _const("bias", rng.standard_normal(3)), _const("a0", [0], np.int64),
          _const("sqrt2", 1.4142135381698608), _const("one", 1.0), _const("half", 0.5)]
    n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]),
          _n("LSTM", ["xt", "W", "R", "B"], ["", "Yh"], hidden_size=4), _n("Squeeze", ["Yh", "a0"], "h"),
          _n("MatMul", ["h", "k"], "mm"), _n("Add", ["mm", "bias"], "d"),
          _n("Div", ["d", "sqrt2"], "q"), _n("Erf", ["q"], "e"), _n("Add", ["e", "one"], "e1"), _n("Mul", ["d", "e1"], "p"),
          _n("Mul", ["p", "half"], "gelu"), _n("Sigmoid", ["gelu"], "sg"), _n("Mul", ["gelu", "sg"], "y")]


BIG_END = 2 ** 62
GLUE = {
    "bi_last_from_y": (_bi_last_from_y, 13, "LSTM", dict(direction="bidirectional", output="final_state", merge="concat")),
    "bi_ave_seq": (_bi_ave_seq, 13, "GRU", dict(direction="bidirectional", output="sequence", merge="ave")),
    "bi_mul_state": (_bi_mul_state, 13, "LSTM", dict(direction="bidirectional", output="final_state", merge="mul")),
    "reversed_input": (_reversed_input, 13, "LSTM", dict(direction="reverse", output="sequence", time_order="processing")),
    "reversed_back": (_reversed_back, 13, "GRU", dict(direction="reverse", output="sequence", time_order="input")),
    "two_nodes": (_two_nodes, 13, "RNN", dict(direction="bidirectional", output="sequence", merge="concat")),
    "opset9_head": (_opset9_head, 9, "LSTM", dict(direction="bidirectional", output="last_step", merge="concat")),
    "keras2onnx_reshape": (_keras2onnx_reshape, 11, "GRU", dict(direction="bidirectional", output="sequence")),
    "head_exprs": (_head_exprs, 13, "LSTM", dict(direction="forward", output="final_state")),
}


@pytest.mark.parametrize("name", GLUE)
def test_exporter_glue_means_what_onnxruntime_computes(name, tmp_path):
    build, opset, cell, want = GLUE[name]
    D = 1 if want["direction"] != "bidirectional" or name == "two_nodes" else 2
    proto = _glue_model(build, opset=opset, cell=cell, D=2 if name == "two_nodes" else D)
    path = _save(tmp_path, proto, f"{name}.onnx")
    model = ox.read(path)
    rec = model.recurrent_layers
    assert len(rec) == 1
    for k, v in want.items():
        assert getattr(rec[0], k) == v, (k, getattr(rec[0], k))
    if name == "head_exprs":
        assert [(x.kind, x.activation.name) for x in model.layers[1:]] == [("dense", "gelu"), ("activation", "swish")]
    out = tmp_path / "again.onnx"
    ox.write(model, out)
    rng = np.random.default_rng(2)
    for b, t in ((3, 6), (1, 1), (2, 17)):
        x = rng.standard_normal((b, t, 3)).astype(np.float32)
        want_y = run_ort(path, x)
        np.testing.assert_allclose(reference.forward(model, x), want_y, atol=1e-5, rtol=0)
        np.testing.assert_allclose(run_ort(out, x), want_y, atol=1e-5, rtol=0)


def test_glue_the_canonical_model_cannot_express_is_refused(tmp_path):
    def backward_only(n, i):    # torch h_n[-1] of a bidirectional layer: the backward direction alone
        i += [_const("last", -1, np.int64)]
        n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]),
              _n("LSTM", ["xt", "W", "R", "B"], ["", "Yh"], hidden_size=4, direction="bidirectional"),
              _n("Gather", ["Yh", "last"], "y", axis=0)]
    path = _save(tmp_path, _glue_model(backward_only))
    with pytest.raises(UnsupportedError, match=r"graph output: it uses the directions of LSTM node 'LSTM_\['', 'Yh'\]' "
                                               r"as \[\(\(1, 'state'\),\)\]; the canonical model takes each direction once"):
        ox.read(path)

    def every_other_step(n, i):     # (one middle step, Gather 3, is a TimeWindow: tests/formats/onnx/test_onnx_window.py)
        i += [_const("a1", [1], np.int64), _const("s", [0], np.int64), _const("e", [1000], np.int64),
              _const("a0", [0], np.int64), _const("two", [2], np.int64)]
        n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]), _n("LSTM", ["xt", "W", "R", "B"], "Y", hidden_size=4),
              _n("Squeeze", ["Y", "a1"], "ys"), _n("Slice", ["ys", "s", "e", "a0", "two"], "y")]
    with pytest.raises(UnsupportedError, match=r"Slice node 'Slice_y': it keeps steps 0:1000:2 of the time axis; the "
                                               r"canonical model keeps steps in order \(a step of 1\)$"):
        ox.read(_save(tmp_path, _glue_model(every_other_step, D=1), "mid.onnx"))


def test_front_dense_and_stacked_mixed_cells(tmp_path):
    """Dense before the first recurrent layer, LSTM -> GRU -> Dense: two native nodes, numbers and read-back."""
    rng = np.random.default_rng(4)
    f32 = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    lstm = rand_model(cell="lstm", I=5, H=4, seed=1).layers[0]
    gru = rand_model(cell="gru", I=4, H=3, direction="bidirectional", output="last_step", merge="sum", seed=2).layers[0]
    gru.name = "gru_layer"
    model = M.Model(layers=[M.Dense("front", f32(3, 5), f32(5), M.Activation("tanh")), lstm, gru,
                            M.Dense("head", f32(3, 2), None)],
                    input=M.InputSpec(name="x", features=3), output_name="y", name="stack").validate()
    path = tmp_path / "m.onnx"
    ox.write(model, path)
    counts = op_counts(path)
    assert (counts["LSTM"], counts["GRU"], counts["Transpose"]) == (1, 1, 1)   # time-major once, between nodes none
    for x in inputs(model):
        np.testing.assert_allclose(run_ort(path, x), reference.forward(model, x), atol=TOL, rtol=0)
    assert_same_model(model, ox.read(path))


def test_no_bias_means_no_B_input(tmp_path):
    model = rnnconvert.read(FIXTURES / "tfkeras2" / "lstm_no_bias" / "model.h5")
    path = tmp_path / "m.onnx"
    ox.write(model, path)
    (node,) = [n for n in onnx.load(str(path)).graph.node if n.op_type == "LSTM"]
    assert len(node.input) < 4 or node.input[3] == ""
    back = ox.read(path)
    assert (back.layers[0].has_input_bias, back.layers[0].has_recurrent_bias) == (False, False)


def test_several_outputs_pick_one(tmp_path):
    def two_outputs(n, i):
        i += [_const("a1", [1], np.int64), _const("a0", [0], np.int64)]
        n += [_n("Transpose", ["x"], "xt", perm=[1, 0, 2]),
              _n("GRU", ["xt", "W", "R", "B"], ["Y", "Yh"], hidden_size=4, linear_before_reset=1),
              _n("Squeeze", ["Y", "a1"], "ys"), _n("Transpose", ["ys"], "y", perm=[1, 0, 2]),
              _n("Squeeze", ["Yh", "a0"], "h"), _n("Tanh", ["y"], "t")]
    proto = _glue_model(two_outputs, cell="GRU", D=1)
    proto.graph.output.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("h", "t")])
    path = _save(tmp_path, proto)
    with pytest.raises(UnsupportedError, match=r"the graph has 2 outputs \(y, t\); the canonical model has one: "
                                               r"pass --output NAME \(read option output=\) to read one of them"):     # h, the node's Y_h, is a state output
        ox.read(path)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    sess = ort.InferenceSession(str(path))
    want = dict(zip(["y", "h", "t"], sess.run(None, {"x": x})))
    for name, output in (("y", "sequence"), ("h", "final_state")):
        model = rnnconvert.read(path, output=name)
        assert model.output_name == name and model.layers[0].output == output
        np.testing.assert_allclose(reference.forward(model, x), want[name], atol=1e-5, rtol=0)
        assert [p.name for p in model.state_outputs] == (["h"] if name == "y" else [])
    with pytest.raises(InputError, match="no graph output 'z'; outputs: y, h, t"):
        ox.read(path, output="z")


WILD_REFUSE = {
    "onnx_silero_vad_v4_pt112_if": ({}, "the LSTM nodes sit inside the subgraphs of If node"),
    "onnx_dtln_stage1_keras2onnx_states": ({}, "the graph input 'input_3' reaches the initial_c of LSTM node 'lstm_5' "
                                               "through Slice, Squeeze, Unsqueeze (several states packed into one "
                                               "tensor)"),
}


@pytest.mark.parametrize("wild_case", list(WILD_REFUSE), indirect=True)
def test_wild_onnx_with_parts_outside_the_stack_is_refused_by_name(wild_case, request):
    name = request.node.callspec.params["wild_case"]
    options, phrase = WILD_REFUSE[name]
    with pytest.raises(UnsupportedError) as exc:
        ox.read(wild_case[0], **options)
    assert phrase in str(exc.value)


@pytest.mark.parametrize("wild_case", ["onnx_vietocr_encoder_bigru_pt1131"], indirect=True)
def test_wild_bigru_encoder_each_output(wild_case):
    path, x, _ = wild_case
    ys = np.load(path.parent / "y_all.npz")
    for k, (name, output) in enumerate((("encoder_outputs", "sequence"), ("hidden", "final_state"))):
        model = ox.read(path, output=name)
        assert model.input.layout == "time_batch_feature" and model.layers[0].output == output
        np.testing.assert_allclose(reference.forward(model, x), ys[f"out{k}"], atol=TOL, rtol=0)


def test_batch_major_layout_attribute(tmp_path):
    """LSTM layout=1 (X [batch, time, in], Y [batch, time, dirs, H]).  onnxruntime refuses layout=1, so the
    oracle here is onnx's reference evaluator, trusted only because the node uses default activations."""
    from onnx.reference import ReferenceEvaluator

    def batch_major(n, i):
        i += [_const("shape", [0, 0, -1], np.int64)]
        n += [_n("LSTM", ["x", "W", "R", "B"], ["Y"], hidden_size=4, layout=1), _n("Reshape", ["Y", "shape"], "y")]
    proto = _glue_model(batch_major, opset=14, D=1)
    model = ox.read(_save(tmp_path, proto))
    assert model.input.layout == "batch_time_feature" and model.layers[0].output == "sequence"
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    want = ReferenceEvaluator(proto).run(None, {"x": x})[0]
    np.testing.assert_allclose(reference.forward(model, x), want, atol=1e-5, rtol=0)
