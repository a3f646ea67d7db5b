"""rnnconvert's WHILE loops (`formats/tflite/loop.py`) run by LiteRT against the float64 reference pass: GRU in
both reset modes, a selu RNN and a clipped LSTM, forward, reverse and bidirectional, returning the sequence,
the last step or the final state, non-zero initial states, batch 3, lengths 1, 7, 40 and 64, a saturating row.
Structure, read with LiteRT's own schema module: no body grows a tensor (no CONCATENATION; every body output
keeps its input's shape, so LiteRT runs the loop on its static path); a direction returning its sequence is two
nested loops, the inner one writing each step into a chunk of 32 (DYNAMIC_UPDATE_SLICE), the outer one each
chunk into the output; a layer returning only the step processed last is one loop carrying no sequence.
Files the old writer made (output grown by CONCATENATION, fixtures/tflite_concat_loops) are still read."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from litert_helpers import litert, op_counts, run
from rnnconvert.model import SELU, SIGMOID, TANH, Dense, DirectionWeights, InputSpec, Model, Recurrent
from rnnconvert.reference.network import forward

F = 5
OLD = FIXTURES / "tflite_concat_loops"


def _layer(rng, cell, direction, output, H=6, reset_after=True, states=False, time_order="input", clip=2.5,
           acts=None):
    G = {"gru": 3, "lstm": 4, "rnn": 1}[cell]
    ws = [DirectionWeights(rng.normal(0, 0.5, (G * H, F)).astype(np.float32),
                           rng.normal(0, 0.5, (G * H, H)).astype(np.float32),
                           rng.normal(0, 0.3, G * H).astype(np.float32),
                           rng.normal(0, 0.3, G * H).astype(np.float32) if cell == "gru" else np.zeros(G * H, np.float32),
                           h0=rng.normal(0, 0.5, H).astype(np.float32) if states else None,
                           c0=rng.normal(0, 0.5, H).astype(np.float32) if states and cell == "lstm" else None)
          for _ in range(2 if direction == "bidirectional" else 1)]
    acts = acts or {"gru": [SIGMOID, TANH], "lstm": [SIGMOID, TANH, TANH], "rnn": [SELU]}[cell]
    return Recurrent(cell, cell, H, direction, ws, acts, output=output, reset_after=reset_after,
                     clip=clip if cell == "lstm" else None, has_recurrent_bias=cell == "gru", time_order=time_order)


# case: (cell, direction, output, keyword arguments); outputs of the step processed last carry no sequence
CASES = {
    "gru_bidirectional_seq_states": ("gru", "bidirectional", "sequence", {"states": True}),
    "gru_reset_before_reverse_seq": ("gru", "reverse", "sequence", {"reset_after": False}),
    "gru_reverse_processing_seq": ("gru", "reverse", "sequence", {"time_order": "processing"}),
    "gru_final_states": ("gru", "forward", "final_state", {"states": True}),
    "gru_reset_before_reverse_final": ("gru", "reverse", "final_state", {"reset_after": False}),
    "gru_reverse_last_step": ("gru", "reverse", "last_step", {}),     # the reverse direction's first step
    "gru_bidirectional_last_step": ("gru", "bidirectional", "last_step", {"states": True}),
    "rnn_selu_bidirectional_final": ("rnn", "bidirectional", "final_state", {}),
    "lstm_clip_seq_states": ("lstm", "forward", "sequence", {"states": True}),
    "lstm_clip_reverse_final_states": ("lstm", "reverse", "final_state", {"states": True}),
}


def _model(case):
    cell, direction, output, kw = CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)))
    rec = _layer(rng, cell, direction, output, **kw)
    head = Dense("head", rng.normal(0, 0.4, (rec.units_out, 3)).astype(np.float32), np.float32([0.1, -0.2, 0.3]))
    return Model([rec, head], InputSpec("x", F)).validate(), rng


def loops(path):
    """[{grown: a body output shaped unlike its input, carried: rank-3 body outputs that are not the body's own
    input (a sequence or a chunk of one rewritten each step), chunk: their time sizes, ops: the body's ops,
    nested: in a body, not the main subgraph}] of every WHILE in the file, from LiteRT's schema module."""
    litert()
    from ai_edge_litert import schema_py_generated as S
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    m = S.Model.GetRootAsModel(open(path, "rb").read(), 0)
    codes = [max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    out = []
    for op, nested in ((g.Operators(k), n > 0) for n in range(m.SubgraphsLength()) for g in [m.Subgraphs(n)]
                       for k in range(g.OperatorsLength())):
        if names[codes[op.OpcodeIndex()]] != "WHILE":
            continue
        opt = S.WhileOptions()
        opt.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        body = m.Subgraphs(opt.BodySubgraphIndex())
        ins, outs = body.InputsAsNumpy().tolist(), body.OutputsAsNumpy().tolist()
        grown = [_dims(body.Tensors(o)) != _dims(body.Tensors(i)) for i, o in zip(ins, outs)]
        carried = [o for i, o in zip(ins, outs) if o != i and body.Tensors(o).ShapeLength() == 3]
        ops = [names[codes[body.Operators(j).OpcodeIndex()]] for j in range(body.OperatorsLength())]
        out.append({"grown": any(grown), "carried": len(carried), "ops": ops, "nested": nested,
                    "chunk": [_dims(body.Tensors(o))[0][1] for o in carried]})
    return out


def _dims(t):
    return ([t.Shape(j) for j in range(t.ShapeLength())],
            [t.ShapeSignature(j) for j in range(t.ShapeSignatureLength())])


def _inputs(rng):
    xs = []
    for T in (1, 7, 40, 64):
        x = rng.normal(0, 1, (3, T, F)).astype(np.float32)
        x[2] *= 6                                   # saturating
        xs.append(x)
    return xs


@pytest.mark.parametrize("case", sorted(CASES))
def test_loop_runs_in_litert_as_the_reference(tmp_path, case):
    model, rng = _model(case)
    dst = tmp_path / "m.tflite"
    rnnconvert.write(model, dst)
    _, direction, output, kw = CASES[case]
    found = loops(dst)
    for loop in found:
        assert not loop["grown"] and "CONCATENATION" not in loop["ops"], loop
    # the step processed last is a loop's final h: no sequence carried (a reverse last_step is the reverse
    # direction's first step, which needs the sequence)
    needs_y = {"forward": [output == "sequence"], "reverse": [output in ("sequence", "last_step")],
               "bidirectional": [output == "sequence", output in ("sequence", "last_step")]}[direction]
    outer = [loop for loop in found if not loop["nested"]]
    inner = [loop for loop in found if loop["nested"]]
    assert len(outer) == len(needs_y) and len(inner) == sum(needs_y)
    assert [loop["carried"] for loop in outer] == [int(n) for n in needs_y]        # the sequence, once a chunk
    assert all(loop["carried"] == 1 and loop["chunk"] == [32] and loop["ops"].count("DYNAMIC_UPDATE_SLICE") == 1
               for loop in inner)                                                  # a chunk of 32 steps
    assert [loop["ops"].count("WHILE") for loop in outer] == [int(n) for n in needs_y]
    xs = _inputs(rng)
    for x in xs:
        np.testing.assert_allclose(run(dst, x), forward(model, x), atol=2e-5, rtol=0, err_msg=f"T={x.shape[1]}")
    back = rnnconvert.read(dst)     # read back as the same layer (a forward last step is its final state)
    assert (back.layers[0].output, back.layers[0].time_order) == \
        ("final_state" if (direction, output) == ("forward", "last_step") else output, kw.get("time_order", "input"))
    np.testing.assert_allclose(forward(back, xs[2]), forward(model, xs[2]), atol=1e-6)


def test_masked_loop_runs_in_litert_as_the_reference(tmp_path):
    """Masked (Masking(0.0)): the loops also carry the mask and the last output; zero steps padded at both
    ends, and inside the sequence across a chunk's end (steps 30-34); the sequence in chunks, the final state
    one loop carrying no sequence."""
    from rnnconvert.model import Masking
    for output in ("sequence", "final_state"):
        rng = np.random.default_rng(5)
        rec = _layer(rng, "gru", "reverse", output, reset_after=False, states=True)
        model = Model([Masking("mask", 0.0), rec], InputSpec("x", F)).validate()
        dst = tmp_path / f"{output}.tflite"
        rnnconvert.write(model, dst)
        found = loops(dst)
        assert all(not loop["grown"] for loop in found)
        assert [(loop["nested"], loop["carried"]) for loop in found] == \
            ([(False, 1), (True, 1)] if output == "sequence" else [(False, 0)])
        for x in _inputs(rng)[1:]:
            x[0, :3] = 0
            x[1, -2:] = 0
            x[1, 30:35] = 0
            np.testing.assert_allclose(run(dst, x), forward(model, x), atol=2e-5, rtol=0, err_msg=f"{x.shape}")


@pytest.mark.parametrize("case", sorted(p.name for p in OLD.iterdir()) if OLD.exists() else [])
def test_files_of_the_old_writer_still_read(tmp_path, case):
    """Loops whose output grew by CONCATENATION each step (rnnconvert up to 000e12b): read as the layers they
    hold, predicted within 1e-5 of LiteRT's own run of them, and converted to the new form."""
    folder = OLD / case
    assert any("CONCATENATION" in loop["ops"] for loop in loops(folder / "model.tflite"))
    assert json.loads((folder / "case.json").read_text())["rnnconvert_commit"].startswith("000e12b")
    model = rnnconvert.read(folder / "model.tflite")
    xs, ys = np.load(folder / "inputs.npz"), np.load(folder / "outputs.npz")
    for key in xs.files:
        np.testing.assert_allclose(forward(model, xs[key]), ys[key], atol=1e-5, rtol=0, err_msg=key)
    dst = tmp_path / "new.tflite"
    assert rnnconvert.convert(folder / "model.tflite", dst).passed
    assert all(not loop["grown"] and "CONCATENATION" not in loop["ops"] for loop in loops(dst))
    assert op_counts(dst, main_only=True)["WHILE"] == op_counts(folder / "model.tflite")["WHILE"]


@pytest.mark.parametrize("key,value,words", [
    ("pick", "middle", "entry 0: pick 'middle' is not 'last' or 'first'"),
    ("Rb", [10 ** 6], r"entry 0: Rb \[1000000\] is not a list of tensor indices"),
    ("Rb", "x", "entry 0: Rb 'x' is not a list of tensor indices"),
    ("hybrid", 5, r"entry 0: hybrid 5 is not \{'asymmetric_inputs': true or false\}"),
    ("hybrid", {"asymmetric_inputs": True}, "layer 'gru': 0 of its 4 weight tensors are int8 and the metadata says "
                                            "hybrid; a loop's products are all int8 or all float"),
])
def test_hostile_loop_keys_are_input_errors(tmp_path, monkeypatch, key, value, words):
    """The loop metadata's newer keys (pick, Rb, hybrid) checked like the others: an InputError naming the
    metadata, never a crash or a layer built from them."""
    from rnnconvert.formats.tflite import writer
    model = Model([_layer(np.random.default_rng(1), "gru", "forward", "final_state")], InputSpec("x", F)).validate()
    dumps = json.dumps
    monkeypatch.setattr(writer.json, "dumps", lambda obj: dumps([{**obj[0], key: value}]))
    p = tmp_path / "w.tflite"
    writer.write(model, p)
    monkeypatch.undo()
    with pytest.raises(rnnconvert.errors.InputError, match=f"metadata 'rnnconvert.loops'.*{words}"):
        rnnconvert.read(p)
