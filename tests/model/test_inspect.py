"""`describe` and `render` (what `inspect` prints) and the layout table: the JSON contract, and that every gate slice it prints
points at the right numbers in the source file's own tensors.

The oracle is each framework's layout written out by hand below (block positions counted explicitly),
never `gates.permute` or `describe.source_tensors`.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import cases
from rnnconvert.cli.render import render
from rnnconvert.model import layouts
from rnnconvert.model.describe import describe, source_tensors
from rnnconvert.model import (CELLS, HARD_SIGMOID_KERAS2, RELU, SIGMOID, TANH, Activation, ActivationLayer, Dense,
    DirectionWeights, Dropout, InputSpec, Model, Recurrent)

G = {"lstm": 4, "gru": 3, "rnn": 1}
ACTS = {"lstm": [SIGMOID, TANH, TANH], "gru": [SIGMOID, TANH], "rnn": [TANH]}


def weights(rng, cell, H, I, proj=None, recurrent_bias=True):
    g = G[cell]
    return DirectionWeights(W=rng.standard_normal((g * H, I)), R=rng.standard_normal((g * H, proj or H)),
                            Wb=rng.standard_normal(g * H),
                            Rb=rng.standard_normal(g * H) if recurrent_bias else np.zeros(g * H),
                            proj=None if proj is None else rng.standard_normal((proj, H)))


def layer(cell, H=3, I=2, direction="forward", seed=0, **kw):
    rng = np.random.default_rng(seed)
    n = 2 if direction == "bidirectional" else 1
    proj = kw.pop("proj", None)
    rb = kw.get("has_recurrent_bias", True)
    return Recurrent(name=f"{cell}_1", cell=cell, hidden=H, direction=direction,
                     weights=[weights(rng, cell, H, I, proj, rb) for _ in range(n)],
                     activations=list(ACTS[cell]), **kw)


def model(fmt, *layers_, features=None):
    first = layers_[0]
    return Model(list(layers_), InputSpec(features=features or first.input_size), source={"format": fmt})


def block(a, pos, H):
    """Canonical block number `pos` (rows pos*H .. (pos+1)*H)."""
    return a[pos * H:(pos + 1) * H]


def rows(a, positions, H):
    """Canonical blocks reordered: positions[k] is the canonical block that goes to place k."""
    return np.concatenate([block(a, p, H) for p in positions])


# Where each framework letter sits in the canonical order (LSTM ifgo, GRU rzn), counted by hand.
CANON_POS = {"i": 0, "f": 1, "g": 2, "c": 2, "o": 3}
CANON_POS_GRU = {"r": 0, "z": 1, "n": 2, "h": 2}
KERAS_LSTM, ONNX_LSTM, KERAS_GRU = [0, 1, 2, 3], [0, 3, 1, 2], [1, 0, 2]


def canon_pos(cell, letter):
    return CANON_POS[letter] if cell == "lstm" else CANON_POS_GRU[letter] if cell == "gru" else 0


def check_gates(layer_, tensor_desc, array, expected_part, transposed=False):
    """Every gate entry's index must select the canonical block of that gate from `array`."""
    H = layer_.hidden
    assert tensor_desc["gates"], tensor_desc["name"]
    for g in tensor_desc["gates"]:
        idx = tuple(slice(*x) if isinstance(x, list) else slice(None) if x is None else x for x in g["index"])
        got = array[idx]
        d = layer_.direction_names().index(g["direction"])
        want = block(expected_part(d, g["part"]), canon_pos(layer_.cell, g["gate"]), H)
        np.testing.assert_array_equal(np.squeeze(got), want.T if transposed else want, err_msg=g["slice"])


def test_json_contract():
    lstm = layer("lstm", H=4, I=3, output="final_state")
    m = Model([lstm, Dropout("drop", 0.5), Dense("dense", np.ones((4, 2)), np.zeros(2), RELU),
               ActivationLayer("act", Activation("softmax"))], InputSpec(features=3), source={"format": "keras"})
    d = json.loads(json.dumps(describe(m, "m.h5")))
    assert d["file"] == "m.h5" and d["format"] == "keras" and d["source"] == {"format": "keras"}
    assert d["input"] == {"name": "input", "features": 3, "dtype": "float32", "layout": "batch_time_feature",
                          "time_steps": None}
    assert [x["name"] for x in d["layers"]] == ["lstm_1", "drop", "dense", "act"]
    assert [x["kind"] for x in d["layers"]] == ["lstm", "dropout", "dense", "activation"]
    r = d["layers"][0]
    for key in ("bidirectional", "direction", "hidden", "input_size", "output", "merge", "activations", "clip",
                "bias", "initial_state", "tensors", "equations"):
        assert key in r, key
    assert r["bidirectional"] is False and r["hidden"] == 4 and r["input_size"] == 3
    assert r["output"] == "final_state" and r["bias"] == {"input": True, "recurrent": True}
    assert r["initial_state"] == {"h": False, "c": False}
    assert r["activations"] == ["sigmoid", "tanh", "tanh"]
    assert [t["name"] for t in r["tensors"]] == ["kernel", "recurrent_kernel", "bias"]
    assert [t["shape"] for t in r["tensors"]] == [[3, 16], [4, 16], [16]]
    assert {"gate", "meaning", "slice", "start", "stop"} <= set(r["tensors"][0]["gates"][0])
    assert d["layers"][2]["units"] == 2 and d["layers"][2]["activation"] == "relu"
    assert d["layers"][2]["tensors"] == [
        {"name": "kernel", "shape": [4, 2], "dtype": "float64", "nonfinite": 0, "size": 8},
        {"name": "bias", "shape": [2], "dtype": "float64", "nonfinite": 0, "size": 2}]
    # Keras counts one bias: 4*H*(I + H + 1), plus the Dense layer
    assert d["parameters"] == 4 * 4 * (3 + 4 + 1) + 10


def test_activation_parameters_are_shown():
    gru = layer("gru", reset_after=False)
    gru.activations = [HARD_SIGMOID_KERAS2, TANH]
    r = describe(model("keras", gru))["layers"][0]
    assert r["activations"] == ["hard_sigmoid(alpha=0.2, beta=0.5)", "tanh"]
    assert r["activation_names"] == {"recurrent_activation": "hard_sigmoid(alpha=0.2, beta=0.5)",
                                     "activation": "tanh"}


def test_keras_lstm_slices_point_at_the_gates():
    H = 3
    lstm = layer("lstm", H=H, I=2, has_recurrent_bias=False)
    w = lstm.weights[0]
    kernel = rows(w.W, KERAS_LSTM, H).T                       # Keras ifco: c is the cell candidate g
    recurrent_kernel = rows(w.R, KERAS_LSTM, H).T
    bias = rows(w.Wb + w.Rb, KERAS_LSTM, H)
    r = describe(model("keras", lstm))["layers"][0]
    kt, rt, bt = r["tensors"]
    assert [g["gate"] for g in kt["gates"]] == list("ifco")
    assert [g["slice"] for g in kt["gates"]] == ["kernel[:, 0:3]", "kernel[:, 3:6]", "kernel[:, 6:9]",
                                                  "kernel[:, 9:12]"]
    assert kt["gates"][2]["meaning"] == "cell candidate"
    for g in kt["gates"]:
        np.testing.assert_array_equal(kernel[:, g["start"]:g["stop"]],
                                      w.W[canon_pos("lstm", g["gate"]) * H:][:H].T)
    check_gates(lstm, rt, recurrent_kernel, lambda d, part: lstm.weights[d].R, transposed=True)
    check_gates(lstm, bt, bias, lambda d, part: lstm.weights[d].Wb + lstm.weights[d].Rb)
    assert kt["gate_axis"] == 1 and bt["gate_axis"] == 0


@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru_bias_and_reset_variant(reset_after):
    H = 2
    gru = layer("gru", H=H, reset_after=reset_after)
    w = gru.weights[0]
    kernel = rows(w.W, KERAS_GRU, H).T                        # zrh: z is canonical block 1, r block 0
    if reset_after:
        bias = np.stack([rows(w.Wb, KERAS_GRU, H), rows(w.Rb, KERAS_GRU, H)])

        def part(d, p):
            return {"Wb": gru.weights[d].Wb, "Rb": gru.weights[d].Rb}[p]
    else:
        bias = rows(w.Wb + w.Rb, KERAS_GRU, H)

        def part(d, p):
            return gru.weights[d].Wb + gru.weights[d].Rb
    r = describe(model("keras", gru))["layers"][0]
    kt, _, bt = r["tensors"]
    assert [g["gate"] for g in kt["gates"]] == list("zrh")
    assert r["reset_after"] is reset_after and r["reset_variant"] == f"reset_after={reset_after}"
    check_gates(gru, kt, kernel, lambda d, p: gru.weights[d].W, transposed=True)
    check_gates(gru, bt, bias, part)
    assert bt["shape"] == list(bias.shape)
    n = next(e for e in r["equations"] if e.startswith("n = "))
    if reset_after:
        assert n == ("n = activation(x @ kernel[:, 2*H:3*H] + bias[0, 2*H:3*H] + "
                     "r*(h @ recurrent_kernel[:, 2*H:3*H] + bias[1, 2*H:3*H]))")
    else:
        assert n == "n = activation(x @ kernel[:, 2*H:3*H] + (r*h) @ recurrent_kernel[:, 2*H:3*H] + bias[2*H:3*H])"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_onnx_bidirectional_slices_evaluate_to_the_gates(cell):
    H = 3
    lay = layer(cell, H=H, I=4, direction="bidirectional")
    perm = ONNX_LSTM if cell == "lstm" else KERAS_GRU            # ONNX GRU is zrh like Keras
    W = np.stack([rows(w.W, perm, H) for w in lay.weights])
    R = np.stack([rows(w.R, perm, H) for w in lay.weights])
    B = np.stack([np.concatenate([rows(w.Wb, perm, H), rows(w.Rb, perm, H)]) for w in lay.weights])
    r = describe(model("onnx", lay))["layers"][0]
    assert r["bidirectional"] is True and r["merge"] == "concat"
    got = {t["name"]: t for t in r["tensors"]}
    assert list(got) == ["W", "R", "B"]
    for name, arr in (("W", W), ("R", R), ("B", B)):
        t = got[name]
        assert t["shape"] == list(arr.shape) and t["gate_axis"] == 1
        assert len(t["gates"]) == 2 * G[cell] * (2 if name == "B" else 1)
        for g in t["gates"]:
            d = lay.direction_names().index(g["direction"])
            want = block(getattr(lay.weights[d], g["part"]), canon_pos(cell, g["gate"]), H)
            np.testing.assert_array_equal(eval(g["slice"], {name: arr}), want, err_msg=g["slice"])
    check_gates(lay, got["B"], B, lambda d, p: getattr(lay.weights[d], p))
    assert got["B"]["gates"][G[cell]]["slice"] == f"B[0, {G[cell] * H}:{G[cell] * H + H}]"   # first Rb block
    assert got["W"]["aliases"]["torch"] == f"weight_ih_l0 | weight_ih_l0_reverse ({'ifgo' if cell == 'lstm' else 'rzn'}, rows)"
    assert got["W"]["aliases"]["matlab"] == ("InputWeights(1:12, :) | InputWeights(13:24, :) (ifgo, rows)"
                                             if cell == "lstm" else None)       # MATLAB has no biGRU


def test_matlab_bilstm_rows_forward_over_backward():
    H = 2
    lay = layer("lstm", H=H, I=3, direction="bidirectional")
    InputWeights = np.concatenate([w.W for w in lay.weights])           # ifgo is canonical; 8H rows
    Bias = np.concatenate([w.Wb + w.Rb for w in lay.weights])[:, None]
    r = describe(model("matlab", lay))["layers"][0]
    it, _, bt = r["tensors"]
    assert it["name"] == "InputWeights" and it["shape"] == [16, 3] and bt["shape"] == [16, 1]
    check_gates(lay, it, InputWeights, lambda d, p: lay.weights[d].W)
    check_gates(lay, bt, Bias, lambda d, p: lay.weights[d].Wb + lay.weights[d].Rb)
    backward_o = [g for g in it["gates"] if g["direction"] == "reverse"][3]
    assert backward_o["slice"] == "InputWeights(15:16, :)" and (backward_o["start"], backward_o["stop"]) == (14, 16)
    assert r["equations"][0] == ("i = GateActivationFunction(InputWeights(1:H, :) * x + RecurrentWeights(1:H, :) * h"
                                 " + Bias(1:H, :))")


@pytest.mark.parametrize("reset_after,recurrent_bias,bias_rows,mode", [
    (True, True, 12, "recurrent-bias-after-multiplication"), (True, False, 6, "after-multiplication"),
    (False, True, 6, "before-multiplication")])
def test_matlab_gru_reset_gate_modes(reset_after, recurrent_bias, bias_rows, mode):
    H = 2
    gru = layer("gru", H=H, reset_after=reset_after, has_recurrent_bias=recurrent_bias)
    w = gru.weights[0]
    Bias = {12: np.concatenate([w.Wb, w.Rb]), 6: w.Wb + w.Rb}[bias_rows][:, None]
    r = describe(model("matlab", gru))["layers"][0]
    assert r["reset_variant"] == f"ResetGateMode='{mode}'"
    bt = r["tensors"][2]
    assert bt["shape"] == [bias_rows, 1]
    part = ({"Wb": w.Wb, "Rb": w.Rb}.get if bias_rows == 12 else lambda p: w.Wb + w.Rb)
    check_gates(gru, bt, Bias, lambda d, p: part(p))


def test_torch_lstm_with_projection_names_and_shapes():
    lay = layer("lstm", H=4, I=3, direction="bidirectional", proj=2)
    d = describe(model("torch", lay, Dense("fc", np.ones((4, 1)))))
    names = [(t["name"], t["shape"]) for t in d["layers"][0]["tensors"]]
    assert names == [("weight_ih_l0", [16, 3]), ("weight_ih_l0_reverse", [16, 3]),
                     ("weight_hh_l0", [16, 2]), ("weight_hh_l0_reverse", [16, 2]),
                     ("bias_ih_l0", [16]), ("bias_ih_l0_reverse", [16]),
                     ("bias_hh_l0", [16]), ("bias_hh_l0_reverse", [16]),
                     ("weight_hr_l0", [2, 4]), ("weight_hr_l0_reverse", [2, 4])]
    assert d["layers"][0]["equations"][-2] == "h = weight_hr_l0 @ (o*tanh(c))"
    assert d["layers"][0]["tensors"][0]["aliases"]["keras"] is None          # Keras has no projection


def test_keras_kernel_aliases():
    r = describe(model("keras", layer("lstm", H=8)))["layers"][0]
    assert r["tensors"][0]["aliases"] == {"canonical": "forward.W (ifgo, rows)", "onnx": "W[0] (iofc, rows)",
                                          "torch": "weight_ih_l0 (ifgo, rows)", "matlab": "InputWeights (ifgo, rows)"}
    assert r["tensors"][2]["aliases"]["onnx"] == "B[0, 0:32] + B[0, 32:64] (iofc)"
    assert r["tensors"][2]["aliases"]["torch"] == "bias_ih_l0 + bias_hh_l0 (ifgo)"


def test_keras_lstm_equations():
    r = describe(model("keras", layer("lstm")))["layers"][0]
    assert r["equations"] == [
        "i = recurrent_activation(x @ kernel[:, 0:H] + h @ recurrent_kernel[:, 0:H] + bias[0:H])",
        "f = recurrent_activation(x @ kernel[:, H:2*H] + h @ recurrent_kernel[:, H:2*H] + bias[H:2*H])",
        "g = activation(x @ kernel[:, 2*H:3*H] + h @ recurrent_kernel[:, 2*H:3*H] + bias[2*H:3*H])",
        "o = recurrent_activation(x @ kernel[:, 3*H:4*H] + h @ recurrent_kernel[:, 3*H:4*H] + bias[3*H:4*H])",
        "c = f*c + i*g",
        "h = o*activation(c)"]


def test_canonical_source_uses_canonical_names():
    r = describe(model("canonical", layer("rnn", direction="reverse")))["layers"][0]
    assert [t["name"] for t in r["tensors"]] == ["reverse.W", "reverse.R", "reverse.Wb", "reverse.Rb"]
    assert r["equations"] == ["h = f(reverse.W[0:H, :] @ x + reverse.R[0:H, :] @ h + reverse.Wb[0:H] + reverse.Rb[0:H])"]
    assert r["tensors"][0]["aliases"]["matlab"] is None


def test_layer_a_source_format_cannot_hold_falls_back_to_canonical():
    r = describe(model("torch", layer("gru", reset_after=False)))["layers"][0]
    assert r["framework"] == "canonical" and "PyTorch" in r["note"]
    assert r["tensors"][0]["name"] == "forward.W"


def test_no_bias():
    r = describe(model("keras", layer("gru", has_input_bias=False, has_recurrent_bias=False)))["layers"][0]
    assert [t["name"] for t in r["tensors"]] == ["kernel", "recurrent_kernel"]
    assert "bias" not in " ".join(r["equations"])


def test_nonfinite_counted_and_flagged():
    lay = layer("lstm", H=2, has_recurrent_bias=False)
    lay.weights[0].W[0, 0] = np.nan
    lay.weights[0].W[5, 1] = np.inf
    lay.weights[0].Wb[3] = -np.inf
    dense = Dense("dense", np.array([[np.nan], [1.0]]))
    d = describe(model("keras", lay, dense))
    assert [t["nonfinite"] for t in d["layers"][0]["tensors"]] == [2, 0, 1]
    assert d["layers"][0]["nonfinite"] == 3 and d["layers"][1]["nonfinite"] == 1 and d["nonfinite"] == 4
    text = render(d)
    assert "!! 4 NaN/Inf" in text and "kernel (2, 8), gates on axis 1 = W (transposed)  !! 2 NaN/Inf" in text


def test_render_shows_table_slices_and_equations():
    text = render(describe(model("onnx", layer("gru", direction="bidirectional")), "g.onnx"))
    assert "file    g.onnx" in text and "format  onnx" in text
    assert "gru_1  gru   bidirectional (concat)" in text
    assert "B[1, 9:12]" in text and "linear_before_reset=1" in text
    assert "n = g(W[0, 2*H:3*H, :] @ x + B[0, 2*H:3*H] + r*(R[0, 2*H:3*H, :] @ h + B[0, 5*H:6*H]))" in text
    assert "reverse direction: the same over the reversed sequence with W[1], R[1], B[1]" in text


def test_markdown_table_covers_every_framework_and_cell():
    table = layouts.markdown_table()
    assert table.startswith("| framework | cell | tensor | shape | gate axis | gate order | canonical |")
    for fw in ("canonical", "keras", "onnx", "torch", "matlab"):
        for cell in CELLS:
            assert f"| {fw} | {cell.upper()}" in table, (fw, cell)
    for needle in ("`weight_hr_l{k}`", "(D, 8*H)", "(6*H, 1)", "(2, 3*H)", "recurrent_activation",
                   "linear_before_reset", "ResetGateMode", "nonlinearity", "bilstmLayer"):
        assert needle in table, needle


def _variants():
    for e in layouts.LAYOUTS:
        if e.get("unsupported"):
            continue
        for direction in ("forward", "bidirectional"):
            if direction == "bidirectional" and e.get("bidirectional") is False:
                continue
            yield pytest.param(e, direction, id=f"{e['framework']}-{e['cell']}-{e.get('variant')}-{direction}")


@pytest.mark.parametrize("entry,direction", list(_variants()))
def test_shape_formulas_match_the_tensors(entry, direction):
    """The table's formulas and gate axes (the README) agree with the tensors describe builds."""
    when = entry.get("when", {})
    lay = layer(entry["cell"], H=5, I=3, direction=direction, reset_after=when.get("reset_after", True),
                has_recurrent_bias=when.get("recurrent_bias", True),
                proj=2 if entry["framework"] in ("torch", "canonical") and entry["cell"] == "lstm" else None)
    D = 2 if direction == "bidirectional" else 1
    for st in source_tensors(lay, entry["framework"]):
        t = st["tensor"]
        H_for_R = 2 if (t.canonical == ("R",) and lay.weights[0].proj is not None) else None
        want = layouts.evaluate(t.shape, input=3, H=5, D=D, P=2)
        if H_for_R:                      # with a projection R has P columns (the table's note)
            want = want[:-1] + (2,)
        assert st["array"].shape == want, (st["name"], t.shape)


# Keras letters -> canonical block, counted by hand (LSTM ifco -> ifgo, GRU zrh -> rzn, RNN h).
KERAS_POS = {"lstm": {"i": 0, "f": 1, "c": 2, "o": 3}, "gru": {"z": 1, "r": 0, "h": 2}, "rnn": {"h": 0}}


def _h5_tensors(path):
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if hasattr(obj, "shape"):
                out[name] = obj[()]
        f["model_weights"].visititems(visit)
    return out


def _raw(raw, layer_name, tensor_name):
    """The stored dataset for describe's tensor name ('forward_layer/kernel' -> .../forward_gru/.../kernel)."""
    prefix, _, leaf = tensor_name.rpartition("/")
    hits = [a for path, a in raw.items() if path.split("/")[0] == layer_name
            and path.rsplit("/", 1)[-1].split(":")[0] == leaf
            and (not prefix or f"/{prefix.split('_')[0]}_" in f"/{path}")]
    assert len(hits) == 1, (layer_name, tensor_name, sorted(raw))
    return hits[0]


@pytest.mark.parametrize("case", cases("tfkeras2", "keras3", suffixes=(".h5",)), ids=lambda c: c.id)
def test_slices_index_the_real_keras_file(case):
    """Oracle: the tensors as Keras itself stored them in the .h5 file."""
    import rnnconvert
    m = rnnconvert.read(case.path)
    raw = _h5_tensors(case.path)
    d = describe(m, case.path)
    assert json.loads(json.dumps(d)) == d
    checked = 0
    for lay, desc in zip(m.layers, d["layers"]):
        if not isinstance(lay, Recurrent):
            continue
        H = lay.hidden
        for t in desc["tensors"]:
            a = _raw(raw, lay.name, t["name"])
            assert list(a.shape) == t["shape"], t["name"]
            for g in t["gates"]:
                idx = tuple(slice(*x) if isinstance(x, list) else slice(None) if x is None else x for x in g["index"])
                w = lay.weights[lay.direction_names().index(g["direction"])]
                src = {"W": w.W, "R": w.R, "Wb": w.Wb, "Rb": w.Rb, "Wb + Rb": w.Wb + w.Rb}[g["part"]]
                want = block(src, KERAS_POS[lay.cell][g["gate"]], H)
                np.testing.assert_array_equal(a[idx], want.T if t["transposed"] else want, err_msg=g["slice"])
                checked += 1
    assert checked


# ONNX letters -> canonical block, counted by hand (LSTM iofc -> ifgo, GRU zrh -> rzn).
ONNX_POS = {"lstm": {"i": 0, "o": 3, "f": 1, "c": 2}, "gru": {"z": 1, "r": 0, "h": 2}, "rnn": {"h": 0}}


@pytest.mark.parametrize("case", cases("torch_onnx", "tf2onnx", suffixes=(".onnx",)), ids=lambda c: c.id)
def test_slices_index_the_real_onnx_file(case):
    """Oracle: the W, R, B initializers of the file's own LSTM/GRU/RNN nodes, in graph order."""
    import onnx
    from onnx import numpy_helper

    import rnnconvert
    from rnnconvert.formats import onnx as onnx_format
    from rnnconvert.errors import UnsupportedError
    if not hasattr(onnx_format, "read"):
        pytest.skip("the ONNX reader is not there yet")
    try:
        m = rnnconvert.read(case.path)
    except UnsupportedError as exc:     # whether a file reads is the reader's tests' subject, not this one's
        pytest.skip(str(exc))
    graph = onnx.load(str(case.path)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = [n for n in graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    d = describe(m, case.path)
    recurrent = [(lay, desc) for lay, desc in zip(m.layers, d["layers"]) if isinstance(lay, Recurrent)]
    assert len(recurrent) == len(nodes)
    checked = 0
    for (lay, desc), node in zip(recurrent, nodes):
        stored = dict(zip("WRB", node.input[1:4]))
        for t in desc["tensors"]:
            if stored.get(t["name"]) not in inits:
                continue                        # computed by another node, not an initializer
            a = inits[stored[t["name"]]]
            assert list(a.shape) == t["shape"], t["name"]
            for g in t["gates"]:
                idx = tuple(slice(*x) if isinstance(x, list) else slice(None) if x is None else x for x in g["index"])
                w = lay.weights[lay.direction_names().index(g["direction"])]
                want = block(getattr(w, g["part"]), ONNX_POS[lay.cell][g["gate"]], lay.hidden)
                np.testing.assert_array_equal(a[idx], want, err_msg=g["slice"])
                checked += 1
    assert checked


def test_source_tensors_refuses_a_layer_the_framework_cannot_hold():
    from rnnconvert.errors import UnsupportedError
    with pytest.raises(UnsupportedError) as exc:
        source_tensors(layer("rnn"), "matlab")
    assert str(exc.value) == "layer 'rnn_1': matlab cannot hold this layer: MATLAB has no built-in simple RNN layer"


@pytest.mark.parametrize("case", cases("keras3", suffixes=(".h5",))[:2] + cases("torch_onnx", suffixes=(".onnx",))[:1],
                         ids=lambda c: c.id)
def test_the_library_inspect_is_what_the_command_prints(case):
    """`rnnconvert.inspect(path)` (the public API) returns what `rnnconvert inspect --json` prints, and its
    slices are those checked against the files' own tensors above."""
    import rnnconvert
    from click.testing import CliRunner
    from rnnconvert.cli import cli
    res = CliRunner().invoke(cli, ["inspect", str(case.path), "--json"])
    assert res.exit_code == 0, res.output
    got = rnnconvert.inspect(case.path)
    assert got == json.loads(res.stdout)
    assert got["whole_model"]["readable"] and got["layers"]
