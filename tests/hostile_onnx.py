"""Hostile ONNX files, built with onnx.helper: each function writes one file into a directory and returns its path.

Folding that would never end or never fit (a SequenceMap over a Loop of 2**62 trips, a Loop feeding a
weight, Expand / ConstantOfShape / Tile / Range to terabytes, many folded constants), graphs that break the
operator schemas (opset 999, layout=7, hidden_size as a float, a string, negative or 0, an unknown
direction or activation), tensors the readers cannot hold (INT4, FLOAT4E2M1, float8, complex, string
weights, negative or huge dims) and raw recurrent graphs (a node's Y, Y_h or state ports as the graph's
own inputs and outputs, inputs of a fixed batch size) that `verify A A` must pass, and graphs whose
work grew faster than the file (one weight used by 50,000 nodes, 50,000 LSTM nodes sharing W and R, a
50,000-node Identity chain into a state, a Sum DAG of 100**6 paths, a Concat chain of 2**30 copies).  `python -m tests.hostile_onnx DIR` writes them all.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

H, IN = 2, 3
LOOP_TRIPS = 2 ** 62


def _lstm_model(pre=(), inits=(), w="W", opset=17, attrs=None, x_shape=("t", "b", IN), name="lstm_1"):
    """X [t, b, 3] -> LSTM 'lstm_1' (hidden 2) -> Y; W is the initializer 'W' unless `pre` computes `w`."""
    rng = np.random.default_rng(0)
    inits = list(inits)
    if w == "W" and not any(t.name == "W" for t in inits):
        inits.append(numpy_helper.from_array(rng.standard_normal((1, 4 * H, IN)).astype(np.float32), "W"))
    inits.append(numpy_helper.from_array(rng.standard_normal((1, 4 * H, H)).astype(np.float32), "R"))
    node = helper.make_node("LSTM", ["X", w, "R"], ["Y"], name=name)
    for key, value in {"hidden_size": H, **(attrs or {})}.items():
        node.attribute.append(value if isinstance(value, onnx.AttributeProto) else helper.make_attribute(key, value))
    graph = helper.make_graph(list(pre) + [node], "hostile", [helper.make_tensor_value_info("X", TP.FLOAT, list(x_shape))],
                              [helper.make_tensor_value_info("Y", TP.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _save(model, directory, name) -> Path:
    path = Path(directory) / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _int64(name, value):
    return numpy_helper.from_array(np.array(value, np.int64), name)


def _loop(trips_name="trips"):
    """A Loop of LOOP_TRIPS trips (condition always true) carrying 'v' through Identity."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Identity", ["v"], ["v_out"])],
        "body", [helper.make_tensor_value_info("i", TP.INT64, []), helper.make_tensor_value_info("cond", TP.BOOL, []),
                 helper.make_tensor_value_info("v", TP.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TP.BOOL, []), helper.make_tensor_value_info("v_out", TP.FLOAT, None)])
    return body


# ------------------------------------------------------------------------------------------- folding

def seqmap_loop(d):
    """SequenceMap whose body runs a Loop of 2**62 trips, its result taken as W (the old reader hung)."""
    trips = helper.make_node("Constant", [], ["trips"], value=numpy_helper.from_array(np.array(LOOP_TRIPS, np.int64)))
    true = helper.make_node("Constant", [], ["true"], value=numpy_helper.from_array(np.array(True)))
    loop = helper.make_node("Loop", ["trips", "true", "x"], ["y"], name="endless", body=_loop())
    body = helper.make_graph([trips, true, loop], "map_body", [helper.make_tensor_value_info("x", TP.FLOAT, None)],
                             [helper.make_tensor_value_info("y", TP.FLOAT, None)])
    pre = [helper.make_node("SequenceConstruct", ["w0"], ["seq"], name="construct"),
           helper.make_node("SequenceMap", ["seq"], ["mapped"], name="map", body=body),
           helper.make_node("SequenceAt", ["mapped", "zero"], ["Wc"], name="take")]
    inits = [numpy_helper.from_array(np.ones((1, 4 * H, IN), np.float32), "w0"), _int64("zero", 0)]
    return _save(_lstm_model(pre, inits, w="Wc"), d, "seqmap_loop")


def loop_weight(d):
    """A Loop of 2**62 trips whose carried value is W."""
    pre = [helper.make_node("Loop", ["trips", "true", "w0"], ["Wc"], name="endless", body=_loop())]
    inits = [numpy_helper.from_array(np.ones((1, 4 * H, IN), np.float32), "w0"), _int64("trips", LOOP_TRIPS),
             numpy_helper.from_array(np.array(True), "true")]
    return _save(_lstm_model(pre, inits, w="Wc"), d, "loop_weight")


def expand_weight(d):
    """Expand of a [1, 1, 3] constant to [2**20, 2**20, 3] (12 TiB) as W."""
    pre = [helper.make_node("Expand", ["one", "shape"], ["Wc"], name="big_expand")]
    inits = [numpy_helper.from_array(np.ones((1, 1, IN), np.float32), "one"), _int64("shape", [1 << 20, 1 << 20, IN])]
    return _save(_lstm_model(pre, inits, w="Wc"), d, "expand_weight")


def constant_of_shape_weight(d):
    """ConstantOfShape [2**16, 2**16, 2**10] (16 TiB) as W."""
    pre = [helper.make_node("ConstantOfShape", ["shape"], ["Wc"], name="big_fill",
                            value=numpy_helper.from_array(np.ones(1, np.float32)))]
    return _save(_lstm_model(pre, [_int64("shape", [1 << 16, 1 << 16, 1 << 10])], w="Wc"), d, "constant_of_shape_weight")


def tile_weight(d):
    """Tile of a [1, 8, 3] constant 2**30 times along its first axis (96 GiB), sliced back to W."""
    pre = [helper.make_node("Tile", ["w0", "reps"], ["tiled"], name="big_tile"),
           helper.make_node("Slice", ["tiled", "starts", "ends"], ["Wc"], name="slice")]
    inits = [numpy_helper.from_array(np.ones((1, 4 * H, IN), np.float32), "w0"), _int64("reps", [1 << 30, 1, 1]),
             _int64("starts", [0]), _int64("ends", [1])]
    return _save(_lstm_model(pre, inits, w="Wc"), d, "tile_weight")


def range_weight(d):
    """Range(0, 2**40, 1) (8 TiB of int64), sliced and reshaped into W."""
    pre = [helper.make_node("Range", ["start", "limit", "delta"], ["r"], name="big_range"),
           helper.make_node("Slice", ["r", "starts", "ends"], ["r24"], name="slice"),
           helper.make_node("Cast", ["r24"], ["rf"], to=TP.FLOAT),
           helper.make_node("Reshape", ["rf", "shape"], ["Wc"], name="reshape")]
    inits = [_int64("start", 0), _int64("limit", 1 << 40), _int64("delta", 1), _int64("starts", [0]),
             _int64("ends", [4 * H * IN]), _int64("shape", [1, 4 * H, IN])]
    return _save(_lstm_model(pre, inits, w="Wc"), d, "range_weight")


def many_constants(d, count=64):
    """`count` ConstantOfShape nodes of 4 MiB each added up and sliced into W: 0.5 GB folded from 5 KB."""
    pre, prev = [], None
    for k in range(count):
        pre.append(helper.make_node("ConstantOfShape", ["n"], [f"c{k}"], name=f"fill_{k}",
                                    value=numpy_helper.from_array(np.full(1, 0.01, np.float32))))
        if prev is not None:
            pre.append(helper.make_node("Add", [prev, f"c{k}"], [f"s{k}"], name=f"add_{k}"))
        prev = f"s{k}" if prev is not None else f"c{k}"
    pre += [helper.make_node("Slice", [prev, "starts", "ends"], ["flat"], name="slice"),
            helper.make_node("Reshape", ["flat", "shape"], ["Wc"], name="reshape")]
    inits = [_int64("n", [1 << 20]), _int64("starts", [0]), _int64("ends", [4 * H * IN]),
             _int64("shape", [1, 4 * H, IN])]
    return _save(_lstm_model(pre, inits, w="Wc"), d, "many_constants")


def branch_expand_weight(d):
    """An LSTM inside an If branch (read node by node, `extract.py`) whose W is an Expand to 24 GiB."""
    inner = _lstm_model([helper.make_node("Expand", ["one", "shape"], ["Wc"], name="big_expand")],
                        [numpy_helper.from_array(np.ones((1, 1, IN), np.float32), "one"),
                         _int64("shape", [1, 1 << 31, IN])], w="Wc").graph
    then = helper.make_graph(list(inner.node), "then", [], [helper.make_tensor_value_info("Y", TP.FLOAT, None)],
                             list(inner.initializer))
    node = helper.make_node("If", ["cond"], ["Z"], name="branch", then_branch=then, else_branch=then)
    graph = helper.make_graph([node], "hostile", [helper.make_tensor_value_info("X", TP.FLOAT, ["t", "b", IN])],
                              [helper.make_tensor_value_info("Z", TP.FLOAT, None)],
                              [numpy_helper.from_array(np.array(True), "cond")])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), d, "branch_expand_weight")


# ------------------------------------------------------------------------------------------- schemas

def opset_999(d):
    return _save(_lstm_model(opset=999), d, "opset_999")


def layout_7(d):
    return _save(_lstm_model(attrs={"layout": 7}), d, "layout_7")


def hidden_float(d):
    return _save(_lstm_model(attrs={"hidden_size": 2.0}), d, "hidden_float")


def hidden_string(d):
    return _save(_lstm_model(attrs={"hidden_size": "2"}), d, "hidden_string")


def hidden_negative(d):
    return _save(_lstm_model(attrs={"hidden_size": -2}), d, "hidden_negative")


def hidden_zero(d):
    return _save(_lstm_model(attrs={"hidden_size": 0}), d, "hidden_zero")


def direction_sideways(d):
    return _save(_lstm_model(attrs={"direction": "sideways"}), d, "direction_sideways")


def activation_unknown(d):
    return _save(_lstm_model(attrs={"activations": ["Sigmoid", "Tanh", "Exec"]}), d, "activation_unknown")


# ------------------------------------------------------------------------------------------- tensors

def _raw_weight(data_type, nbytes, dims=(1, 4 * H, IN)):
    t = onnx.TensorProto(name="W", data_type=data_type, dims=list(dims))
    t.raw_data = bytes(nbytes)
    return t


def weight_int4(d):
    return _save(_lstm_model(inits=[_raw_weight(TP.INT4, 12)]), d, "weight_int4")


def weight_uint4(d):
    return _save(_lstm_model(inits=[_raw_weight(TP.UINT4, 12)]), d, "weight_uint4")


def weight_float4(d):
    return _save(_lstm_model(inits=[_raw_weight(TP.FLOAT4E2M1, 12)]), d, "weight_float4")


def weight_float8(d):
    return _save(_lstm_model(inits=[_raw_weight(TP.FLOAT8E4M3FN, 24)]), d, "weight_float8")


def weight_complex(d):
    return _save(_lstm_model(inits=[_raw_weight(TP.COMPLEX64, 192)]), d, "weight_complex")


def weight_string(d):
    t = onnx.TensorProto(name="W", data_type=TP.STRING, dims=[1, 4 * H, IN])
    t.string_data.extend([b"x"] * (4 * H * IN))
    return _save(_lstm_model(inits=[t]), d, "weight_string")


def weight_negative_dims(d):
    return _save(_lstm_model(inits=[_raw_weight(TP.FLOAT, 96, dims=(-1, 4 * H, IN))]), d, "weight_negative_dims")


def weight_huge_dims(d):
    """W declaring [2**40, 8, 3] with 96 bytes of data."""
    return _save(_lstm_model(inits=[_raw_weight(TP.FLOAT, 96, dims=(1 << 40, 4 * H, IN))]), d, "weight_huge_dims")


def input_huge_dim(d):
    """The graph input declares 2**40 time steps (verification would allocate them)."""
    return _save(_lstm_model(x_shape=(1 << 40, "b", IN)), d, "input_huge_dim")


def input_negative_dim(d):
    return _save(_lstm_model(x_shape=(-5, "b", IN)), d, "input_negative_dim")


# ------------------------------------------------------------------------------------------- raw graphs

def _raw(d, name, outs, graph_outs, state_in=False, direction="forward", cell="LSTM", x_shape=("t", "b", IN)):
    rng = np.random.default_rng(1)
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[cell]
    D = 2 if direction == "bidirectional" else 1
    inits = [numpy_helper.from_array(rng.standard_normal((D, gates * H, IN)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((D, gates * H, H)).astype(np.float32), "R"),
             numpy_helper.from_array(rng.standard_normal((D, 2 * gates * H)).astype(np.float32), "B")]
    ins, graph_ins = ["X", "W", "R", "B", ""], [helper.make_tensor_value_info("X", TP.FLOAT, list(x_shape))]
    if state_in:
        ins.append("h0")
        graph_ins.append(helper.make_tensor_value_info("h0", TP.FLOAT, [D, "b", H]))
    node = helper.make_node(cell, ins, list(outs), name="rec", hidden_size=H, direction=direction)
    graph = helper.make_graph([node], name, graph_ins, [helper.make_tensor_value_info(o, TP.FLOAT, None)
                                                        for o in graph_outs], inits)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), d, name)


def raw_y(d):
    """An LSTM node's Y [T, 1, B, H] is the graph output."""
    return _raw(d, "raw_y", ["Y"], ["Y"])


def raw_y_h(d):
    """A reverse GRU node's Y_h [1, B, H] is the graph output."""
    return _raw(d, "raw_y_h", ["", "Y_h"], ["Y_h"], direction="reverse", cell="GRU")


def raw_state_ports(d):
    """An LSTM with h0 as a graph input and Y, Y_h as outputs (its c state is not carried)."""
    return _raw(d, "raw_state_ports", ["Y", "Y_h"], ["Y", "Y_h"], state_in=True)


def raw_two_outputs(d):
    """An LSTM's Y_h and Y as the graph's outputs, in that order (read with output='Y')."""
    return _raw(d, "raw_two_outputs", ["Y", "Y_h"], ["Y_h", "Y"])


def raw_fixed_batch(d):
    """An LSTM's Y from an input declared [5, 2, 3]: time 5, batch 2 fixed (an export without dynamic axes)."""
    return _raw(d, "raw_fixed_batch", ["Y"], ["Y"], x_shape=(5, 2, IN))


def fixed_batch_one(d):
    """torch.onnx.export's form without dynamic axes: input [1, 6, 3] batch-first, Transpose, LSTM, Y_h [1, 1, 2]
    squeezed to [1, 2]."""
    rng = np.random.default_rng(2)
    inits = [numpy_helper.from_array(rng.standard_normal((1, 4 * H, IN)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((1, 4 * H, H)).astype(np.float32), "R"),
             _int64("axes", [0])]
    nodes = [helper.make_node("Transpose", ["X"], ["Xt"], perm=[1, 0, 2]),
             helper.make_node("LSTM", ["Xt", "W", "R"], ["", "Y_h"], name="rec", hidden_size=H),
             helper.make_node("Squeeze", ["Y_h", "axes"], ["h"])]
    graph = helper.make_graph(nodes, "fixed", [helper.make_tensor_value_info("X", TP.FLOAT, [1, 6, IN])],
                              [helper.make_tensor_value_info("h", TP.FLOAT, [1, H])], inits)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), d, "fixed_batch_one")


# ------------------------------------------------------------------- work that grows with the nodes
FAN = 50_000


def _w():
    return numpy_helper.from_array(np.random.default_rng(0).standard_normal((1, 4 * H, IN)).astype(np.float32), "W")


def fanout_identity(d, n=FAN):
    """W used by `n` Identity nodes joined by one Max (tests/fuzz_hostile_refs.py's `dag` case, 2.4 MB):
    the old reader evaluated every Identity, twice, and ran for 30 s."""
    pre = [helper.make_node("Identity", ["W"], [f"fan{k}"]) for k in range(n)]
    pre.append(helper.make_node("Max", [f"fan{k}" for k in range(n)], ["Wmax"], name="join"))
    return _save(_lstm_model(pre, [_w()], w="Wmax"), d, "fanout_identity")


def fanout_neg(d, n=FAN):
    """W used by `n` Neg nodes joined by one Max: each Neg is a node to evaluate."""
    pre = [helper.make_node("Neg", ["W"], [f"neg{k}"], name=f"neg_{k}") for k in range(n)]
    pre.append(helper.make_node("Max", [f"neg{k}" for k in range(n)], ["Wmax"], name="join"))
    return _save(_lstm_model(pre, [_w()], w="Wmax"), d, "fanout_neg")


def concat_chain(d, levels=30):
    """W concatenated with itself `levels` times (2**30 copies from a 1 KB file) and sliced back: the old
    reader grew by 603 MiB at 20 doublings and hung at 30."""
    pre, cur = [], "W"
    for k in range(levels):
        pre.append(helper.make_node("Concat", [cur, cur], [f"dag{k}"], name=f"dag_{k}", axis=1))
        cur = f"dag{k}"
    pre.append(helper.make_node("Slice", [cur, "s0", "s1", "ax"], ["Wc"], name="back"))
    inits = [_w(), _int64("s0", [0]), _int64("s1", [4 * H]), _int64("ax", [1])]
    return _save(_lstm_model(pre, inits, w="Wc"), d, "concat_chain")


def many_lstm(d, n=FAN):
    """`n` LSTM nodes sharing W and R (one graph output): per-layer scanning indexed the graph and looked
    up every name once per node."""
    pre = [helper.make_node("LSTM", ["X", "W", "R"], [f"Y{k}"], name=f"extra_{k}", hidden_size=H)
           for k in range(n)]
    return _save(_lstm_model(pre), d, "many_lstm")


def state_chain(d, n=FAN):
    """A state input h0 reaching the LSTM's initial_h through a chain of `n` Identity nodes: each step
    of the chain scanned every node (and recursed once per step)."""
    model = _lstm_model()
    g = model.graph
    lstm = g.node[-1]
    lstm.input.extend(["", "", f"h{n}"])
    chain = [helper.make_node("Identity", [f"h{k}"], [f"h{k + 1}"]) for k in range(n)]
    for k, node in enumerate(chain):
        g.node.insert(k, node)
    g.input.append(helper.make_tensor_value_info("h0", TP.FLOAT, [1, "b", H]))
    return _save(model, d, "state_chain")


def state_dag(d, width=100, levels=6):
    """A graph input feeding `levels` layers of `width` Sum nodes, each over all of the previous layer
    (width**levels paths, none reaching a state): the route search walked them path by path."""
    nodes, prev = [], ["s"]
    for level in range(levels):
        names = [f"s{level}_{k}" for k in range(width)]
        nodes += [helper.make_node("Sum", prev, [name]) for name in names]
        prev = names
    model = _lstm_model(nodes)
    model.graph.input.append(helper.make_tensor_value_info("s", TP.FLOAT, [1, "b", H]))
    return _save(model, d, "state_dag")


BUILDERS = [seqmap_loop, loop_weight, expand_weight, constant_of_shape_weight, tile_weight, range_weight,
            many_constants, branch_expand_weight, opset_999, layout_7, hidden_float, hidden_string, hidden_negative, hidden_zero,
            direction_sideways, activation_unknown, weight_int4, weight_uint4, weight_float4, weight_float8,
            weight_complex, weight_string, weight_negative_dims, weight_huge_dims, input_huge_dim,
            input_negative_dim, raw_y, raw_y_h, raw_state_ports, raw_two_outputs, raw_fixed_batch, fixed_batch_one,
            fanout_identity, fanout_neg, concat_chain, many_lstm, state_chain, state_dag]


def write_all(directory) -> list[Path]:
    Path(directory).mkdir(parents=True, exist_ok=True)
    return [build(directory) for build in BUILDERS]


if __name__ == "__main__":
    for p in write_all(sys.argv[1] if len(sys.argv) > 1 else "hostile_onnx"):
        print(p)
