"""ONNX files at the wire level: large initializers read straight into arrays and written straight from
them (`formats/onnx/wire.py`, `initializers.py`), checked against onnx's own parser and serializer,
onnxruntime, and the reader's onnx-only path (`wire.LEAN_BYTES` out of reach) on hand-built files with
every encoding of a tensor; broken framing through the CLI, word for word; memory held while reading
and writing."""
from __future__ import annotations

import tracemalloc

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import rnnconvert
from rnnconvert.model import gates
from rnnconvert import model as M
from rnnconvert.cli.commands import cli
from rnnconvert.errors import RnnConvertError
from rnnconvert.formats.onnx import reader, wire, writer

ort = pytest.importorskip("onnxruntime")

TOL = 1e-4
H, I = 64, 48          # W and R of a bidirectional LSTM: 98,304 and 131,072 bytes, past wire.LEAN_BYTES


def bilstm(seed=0, hidden=H, features=I, layers=1, direction="bidirectional") -> M.Model:
    rng = np.random.default_rng(seed)
    f32 = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    D = 2 if direction == "bidirectional" else 1
    stack, width = [], features
    for k in range(layers):
        ws = [M.DirectionWeights(W=f32(4 * hidden, width), R=f32(4 * hidden, hidden), Wb=f32(4 * hidden),
                                 Rb=f32(4 * hidden)) for _ in range(D)]
        stack.append(M.Recurrent(name=f"lstm_{k}", cell="lstm", hidden=hidden, direction=direction, weights=ws,
                                 activations=[M.SIGMOID, M.TANH, M.TANH], output="sequence"))
        width = stack[-1].units_out
    stack.append(M.Dense("head", f32(width, 5), f32(5), M.LINEAR))
    return M.Model(layers=stack, input=M.InputSpec(name="x", features=features), name="net")


def x_for(model, seed=1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((3, 7, model.input.features)) * 2.0
    x[0, :2] *= 8.0                              # saturating steps in one batch row
    return x.astype(np.float32)


def run_ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def arrays_of(model: M.Model) -> dict:
    return {f"{layer.name}/{k}": np.asarray(a) for layer in model.layers for k, a in layer.arrays().items()}


def read_both(path, monkeypatch):
    """(the model read with large payloads straight into arrays, the model read with onnx parsing all)."""
    lean = rnnconvert.read(path)
    with monkeypatch.context() as m:
        m.setattr(wire, "LEAN_BYTES", 1 << 62)
        full = rnnconvert.read(path)
    return lean, full


def assert_same(a: M.Model, b: M.Model):
    assert [type(x).__name__ for x in a.layers] == [type(x).__name__ for x in b.layers]
    A, B = arrays_of(a), arrays_of(b)
    assert sorted(A) == sorted(B)
    for k in A:
        assert A[k].dtype == B[k].dtype and np.array_equal(A[k], B[k]), k


def init(proto, name) -> onnx.TensorProto:
    return next(t for t in proto.graph.initializer if t.name == name)


# ------------------------------------------------------------------------- hand-built encodings

def _float_data(proto, names):
    for name in names:
        t = init(proto, name)
        a = numpy_helper.to_array(t)
        t.ClearField("raw_data")
        t.float_data[:] = a.ravel().tolist()


def _double_raw(proto, names):
    for name in names:
        t = init(proto, name)
        a = numpy_helper.to_array(t).astype(np.float64)
        t.data_type, t.raw_data = TensorProto.DOUBLE, a.tobytes()


def _ints_and_empties(proto, _names):
    g = proto.graph
    big = np.arange(20000, dtype=np.int64) - 7
    g.initializer.extend([numpy_helper.from_array(big, "unused_int64_raw"),                  # 160 kB raw_data
                          helper.make_tensor("unused_int64_data", TensorProto.INT64, [3], [5, -6, 2 ** 40]),
                          helper.make_tensor("unused_doubles", TensorProto.DOUBLE, [20000], [0.25] * 20000),
                          helper.make_tensor("empty", TensorProto.FLOAT, [0], []),
                          helper.make_tensor("empty_raw", TensorProto.FLOAT, [0, 5], b"", raw=True)])


def _duplicate_names(proto, names):
    """A same-named decoy of each weight before it: the last of one name is the one read."""
    g = proto.graph
    for name in names:
        t = init(proto, name)
        decoy = numpy_helper.from_array(np.full(numpy_helper.to_array(t).shape, 9.0, np.float32), name)
        g.initializer.insert(list(g.initializer).index(t), decoy)


def _subgraph(proto, _names):
    """An If node off the path to the output, whose branches hold a large constant each."""
    g = proto.graph
    big = numpy_helper.from_array(np.linspace(-1, 1, 30000, dtype=np.float32), "c")
    branch = lambda tag: helper.make_graph(  # noqa: E731
        [helper.make_node("Constant", [], [f"k_{tag}"], value=big)], f"branch_{tag}", [],
        [helper.make_tensor_value_info(f"k_{tag}", TensorProto.FLOAT, [30000])])
    g.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
    g.node.append(helper.make_node("If", ["cond"], ["unused"], then_branch=branch("then"),
                                   else_branch=branch("else"), name="side_if"))


ENCODINGS = {"raw_data": None, "float_data": _float_data, "doubles": _double_raw,
             "int64_and_empty": _ints_and_empties, "duplicate_names": _duplicate_names, "subgraph": _subgraph}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_hand_built_encodings_read_the_same_both_ways(encoding, tmp_path, monkeypatch):
    model = bilstm()
    proto, _ = writer.to_onnx(model)      # onnx's own serialization of every tensor
    names = [n for n in (t.name for t in proto.graph.initializer) if n.startswith("lstm_0/") and "_iofc" in n
             and not n.startswith("lstm_0/B")]
    assert len(names) == 2
    if ENCODINGS[encoding]:
        ENCODINGS[encoding](proto, names)
    path = tmp_path / "m.onnx"
    path.write_bytes(proto.SerializeToString())
    _, payloads = reader.load_lean(path)
    lean_names = {reader.load(path).graph.initializer[k].name for k in payloads}
    expect = {"raw_data": set(names), "float_data": set(), "doubles": set(names),
              "int64_and_empty": set(names) | {"unused_int64_raw"}, "duplicate_names": set(names),
              "subgraph": set(names)}[encoding]
    assert lean_names == expect
    lean, full = read_both(path, monkeypatch)
    assert_same(lean, full)
    truth = arrays_of(model)
    for k, a in arrays_of(lean).items():
        np.testing.assert_allclose(a, truth[k], rtol=0, atol=1e-7 if encoding == "doubles" else 0, err_msg=k)
    if encoding not in ("duplicate_names", "doubles"):   # onnxruntime refuses these (doubles: W and X differ)
        x = x_for(model)
        np.testing.assert_allclose(run_ort(path, x), rnnconvert.predict(lean, x), atol=TOL, rtol=0)


def test_initializers_spread_over_several_graph_fields_read_in_order(tmp_path, monkeypatch):
    """Concatenated ModelProto messages (as rnnconvert wrote files before): protobuf merges the graph
    fields, initializers of later ones appended; the payload indices count across them."""
    model = bilstm(seed=2, layers=2)
    proto, _ = writer.to_onnx(model)
    moved = [t for t in proto.graph.initializer if t.name.endswith(("W_iofc", "R_iofc"))]
    kept = [t for t in proto.graph.initializer if t not in moved]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    chunks = [proto.SerializeToString()]
    for t in moved:
        part = onnx.ModelProto()
        part.graph.initializer.append(t)
        chunks.append(part.SerializeToString())
    path = tmp_path / "parts.onnx"
    path.write_bytes(b"".join(chunks))
    assert len(reader.load_lean(path)[1]) == 4
    lean, full = read_both(path, monkeypatch)
    assert_same(lean, full)
    truth = arrays_of(model)
    for k, a in arrays_of(lean).items():
        np.testing.assert_array_equal(a, truth[k], err_msg=k)
    x = x_for(model)
    np.testing.assert_allclose(run_ort(path, x), rnnconvert.predict(lean, x), atol=TOL, rtol=0)


def test_external_data_reads_the_same_both_ways(tmp_path, monkeypatch):
    model = bilstm(seed=3)
    proto, _ = writer.to_onnx(model)
    path = tmp_path / "ext.onnx"
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.weights", size_threshold=1024)
    _, arrays = reader.load_lean(path)
    assert len(arrays) == 2                           # W and R, straight from the sidecar
    lean, full = read_both(path, monkeypatch)
    assert_same(lean, full)
    x = x_for(model)
    np.testing.assert_allclose(run_ort(path, x), rnnconvert.predict(lean, x), atol=TOL, rtol=0)


def test_one_weight_fed_to_two_nodes_is_not_reordered_twice(tmp_path, monkeypatch):
    """Stacked forward LSTMs sharing W and R (input width = hidden): the arrays are read once and must
    not be turned canonical in place for one node under the other."""
    model = bilstm(seed=4, hidden=H, features=H, layers=2, direction="forward")
    proto, _ = writer.to_onnx(model)
    g = proto.graph
    for key in ("W", "R"):
        first, second = f"lstm_0/{key}_iofc", f"lstm_1/{key}_iofc"
        g.initializer.remove(init(proto, second))
        for n in g.node:
            n.input[:] = [first if i == second else i for i in n.input]
    path = tmp_path / "shared.onnx"
    path.write_bytes(proto.SerializeToString())
    lean, full = read_both(path, monkeypatch)
    assert_same(lean, full)
    a, b = lean.layers[0].weights[0], lean.layers[1].weights[0]
    assert np.array_equal(a.W, b.W) and np.array_equal(a.R, b.R)
    np.testing.assert_array_equal(a.W, model.layers[0].weights[0].W)
    x = x_for(lean)
    np.testing.assert_allclose(run_ort(path, x), rnnconvert.predict(lean, x), atol=TOL, rtol=0)


def test_weights_read_in_place_are_canonical_views_of_one_array(tmp_path):
    model = bilstm(seed=5)
    path = tmp_path / "m.onnx"
    rnnconvert.write(model, path)
    back = rnnconvert.read(path)
    fw, bw = back.layers[0].weights
    assert fw.W.base is not None and fw.W.base is bw.W.base          # [D, 4H, I] read once, not copied
    for got, want in zip(back.layers[0].weights, model.layers[0].weights):
        np.testing.assert_array_equal(got.W, want.W)
        np.testing.assert_array_equal(got.R, want.R)


# ------------------------------------------------------------------------------------- writing

@pytest.mark.parametrize("layers,direction", [(1, "bidirectional"), (2, "forward")])
def test_streamed_file_is_what_onnx_serializes(layers, direction, tmp_path):
    model = bilstm(seed=6, layers=layers, direction=direction)
    path = tmp_path / "m.onnx"
    rnnconvert.write(model, path)
    want, _ = writer.to_onnx(model)
    got = onnx.load(str(path))
    assert got.ByteSize() == path.stat().st_size         # one well-formed model, nothing appended
    assert list(got.graph.node) == list(want.graph.node)
    assert got.metadata_props == want.metadata_props and got.opset_import == want.opset_import
    A = {t.name: t for t in got.graph.initializer}
    B = {t.name: t for t in want.graph.initializer}
    assert sorted(A) == sorted(B) and len(A) == len(got.graph.initializer)
    for name in A:
        assert A[name].data_type == B[name].data_type and list(A[name].dims) == list(B[name].dims), name
        np.testing.assert_array_equal(numpy_helper.to_array(A[name]), numpy_helper.to_array(B[name]), name)
    onnx.checker.check_model(got, full_check=True)
    x = x_for(model)
    np.testing.assert_allclose(run_ort(path, x), rnnconvert.predict(model, x), atol=TOL, rtol=0)


def test_weights_in_any_layout_and_float_type_are_written_in_one_copy(tmp_path):
    """Fortran-ordered and float64 canonical arrays: cast and transposed by the same assignment."""
    model = bilstm(seed=7)
    for w in model.layers[0].weights:
        w.W = np.asfortranarray(w.W.astype(np.float64))
        w.R = np.asfortranarray(w.R)
    path = tmp_path / "m.onnx"
    rnnconvert.write(model, path)
    got = onnx.load(str(path))
    W = numpy_helper.to_array(init(got, "lstm_0/W_iofc"))
    assert W.dtype == np.float32
    for d, w in enumerate(model.layers[0].weights):
        np.testing.assert_array_equal(W[d], gates.ifgo_to_iofc(w.W.astype(np.float32)))
    x = x_for(model)
    np.testing.assert_allclose(run_ort(path, x), rnnconvert.predict(model, x), atol=TOL, rtol=0)


def test_copy_helpers_match_numpy():
    rng = np.random.default_rng(8)
    a = rng.standard_normal((300, 520)).astype(np.float32)
    np.testing.assert_array_equal(gates.transposed(a), a.T)
    for cell in ("lstm", "gru", "rnn"):
        G = gates.GATE_COUNT[cell]
        b = rng.standard_normal((2, G * 150, 130)).astype(np.float32)
        for src, dst in (("keras", "onnx"), ("onnx", "torch"), ("matlab", "keras")):
            s, d = gates.ORDERS[src][cell], gates.ORDERS[dst][cell]
            want = gates.permute(b, cell, s, d, axis=1)
            np.testing.assert_array_equal(gates.permute_in_place(b.copy(), cell, s, d, axis=1), want)
            out = np.empty(b.shape, np.float64)
            np.testing.assert_array_equal(gates.permute_into(out, b, cell, s, d, axis=1), want)
            out = np.empty(b.shape[::-1], np.float32)     # a transposed source: tiles
            gates.permute_into(out, b.T, cell, s, d, axis=1)
            np.testing.assert_array_equal(out, gates.permute(b.T, cell, s, d, axis=1))


def test_reading_and_writing_hold_each_weight_once(tmp_path):
    """Traced allocations: writing holds at most one direction of one tensor beside the model; reading
    holds the weights once, plus a gate block while it reorders them."""
    model = bilstm(seed=9, hidden=256, features=256, layers=2)
    weights = sum(a.nbytes for a in arrays_of(model).values())        # 12.6 MB
    one_direction = model.layers[1].weights[0].W.nbytes               # 2 MB
    path = tmp_path / "m.onnx"
    tracemalloc.start()
    try:
        rnnconvert.write(model, path)
        written = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        back = rnnconvert.read(path)
        read = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert written < 1.5 * one_direction + (1 << 20), (written, one_direction)
    assert read < 1.1 * weights, (read, weights)
    assert_same(back, rnnconvert.read(path))


# ---------------------------------------------------------------------------------- bad framing

BROKEN = [
    (b"\x08\x08\x3a\xe8\x07" + b"\0" * 10, "field 7 at byte 2 declares 1000 bytes, past the end of its message at "
                                           "byte 15"),
    (b"\x08\x08\x3a\x04\x2a\x64\x00\x00", "field 5 at byte 4 declares 100 bytes, past the end of its message at "
                                          "byte 8"),
    (b"\x08\xff\xff", "a varint at byte 1 runs past the end of its message at byte 3"),
    (b"\x08" + b"\xff" * 10 + b"\x01", "a varint at byte 1 is longer than 10 bytes"),
    (b"\x08\x08\x0f", "wire type 7 of field 1 at byte 2"),
    (b"\x08\x08\x00\x01", "field number 0 at byte 2"),
]


@pytest.mark.parametrize("data,what", BROKEN, ids=[w.split(" at ")[0] for _, w in BROKEN])
def test_broken_framing_is_refused_in_one_line(data, what, runner, tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    for args in (["inspect", str(path)], [str(path), str(tmp_path / "out.rnnc")]):
        res = runner.invoke(cli, args)
        assert res.exit_code == 2
        assert res.stderr == (f"rnnconvert: error: {path}: not an ONNX model (cannot parse protobuf: {what}; "
                              "the file is truncated or damaged)\n")


def test_file_cut_inside_a_weight_is_refused(runner, tmp_path):
    good = tmp_path / "good.onnx"
    rnnconvert.write(bilstm(seed=10), good)
    data = good.read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[:len(data) - 1000])
    res = runner.invoke(cli, ["inspect", str(bad)])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"rnnconvert: error: {bad}: not an ONNX model (cannot parse protobuf: field 7 "
                                 "at byte ") and res.stderr.endswith(f"past the end of its message at byte "
                                                                     f"{len(data) - 1000}; the file is truncated or "
                                                                     "damaged)\n")


def test_mutated_files_end_in_a_model_or_a_one_line_error(tmp_path, monkeypatch):
    """Bytes flipped, framing lengths and varints broken, files cut, with every initializer read apart."""
    monkeypatch.setattr(wire, "LEAN_BYTES", 8)
    good = tmp_path / "good.onnx"
    rnnconvert.write(bilstm(seed=11, hidden=8, features=6), good)
    data = good.read_bytes()
    rng = np.random.default_rng(12)
    outcomes = {"ok": 0, "refused": 0}
    for k in range(250):
        b = bytearray(data)
        kind = k % 3
        if kind == 0:
            b = b[:int(rng.integers(1, len(b)))]
        else:
            for _ in range(int(rng.integers(1, 4))):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256)) if kind == 1 else 0xFF
        path = tmp_path / f"m{k}.onnx"
        path.write_bytes(bytes(b))
        try:
            rnnconvert.read(path)
            outcomes["ok"] += 1
        except RnnConvertError as exc:
            assert exc.exit_code == 2 and "\n" not in exc.format(), exc.format()
            outcomes["refused"] += 1
    assert outcomes["refused"] > 50 and outcomes["ok"] > 5, outcomes


def test_a_file_of_many_tiny_fields_is_left_to_onnx(tmp_path, monkeypatch):
    """Millions of fields would be slow to walk in Python: past MAX_FIELDS onnx's parser reads the file."""
    monkeypatch.setattr(wire, "MAX_FIELDS", 1000)
    good = tmp_path / "good.onnx"
    model = bilstm(seed=13)
    proto, _ = writer.to_onnx(model)
    proto.metadata_props.extend(onnx.StringStringEntryProto(key=f"k{k}", value="v") for k in range(1200))
    good.write_bytes(proto.SerializeToString())
    with pytest.raises(wire.Unhandled):
        wire.split(str(good))
    _, arrays = reader.load_lean(good)
    assert arrays == {}
    np.testing.assert_array_equal(rnnconvert.read(good).layers[0].weights[1].R, model.layers[0].weights[1].R)
