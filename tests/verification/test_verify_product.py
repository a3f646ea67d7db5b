"""`verify` as a release gate: deliberately broken conversions are caught with exit 1 and a report
that names the layer; every correct conversion of the fixtures passes; reports validate against
`schemas/report.schema.json`; golden vectors re-check a file; the streaming check; errors word for word.

Broken conversions are built by corrupting canonical models read from the fixtures and writing them
with rnnconvert's own writers, then `rnnconvert verify source broken`."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from conftest import ROOT, cases
from rnnconvert import read, write
from rnnconvert.cli.commands import cli
from rnnconvert.errors import UnsupportedError
from rnnconvert.model import HARD_SIGMOID_KERAS2, Recurrent
from rnnconvert.verification.suite import SUITE_SHAPES, input_suite, stream, streaming_undefined

jsonschema = pytest.importorskip("jsonschema")
SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
F = ROOT / "fixtures"


def validate(report: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(report)


def _first_rec(model) -> tuple[int, Recurrent]:
    return next((k, layer) for k, layer in enumerate(model.layers) if isinstance(layer, Recurrent))


def swap_gates(model):
    k, layer = _first_rec(model)
    H, w = layer.hidden, layer.weights[0]
    for a in ("W", "R"):
        m = getattr(w, a)
        m[:H], m[H:2 * H] = m[H:2 * H].copy(), m[:H].copy()       # i <-> f
    return k, layer


def missing_transpose(model):
    k, layer = _first_rec(model)
    H, w = layer.hidden, layer.weights[0]
    G = w.R.shape[0] // H
    w.R = np.ascontiguousarray(w.R.reshape(G, H, H).transpose(0, 2, 1).reshape(G * H, H))   # square blocks
    return k, layer


def flip_reset(model):
    k, layer = _first_rec(model)
    layer.reset_after = not layer.reset_after
    return k, layer


def keras2_hard_sigmoid(model):
    k, layer = _first_rec(model)
    assert layer.activations[0].name == "hard_sigmoid"
    layer.activations[0] = HARD_SIGMOID_KERAS2
    return k, layer


def lose_go_backwards_order(model):
    k, layer = _first_rec(model)
    assert layer.time_order == "processing"
    layer.time_order = "input"
    return k, layer


def drop_initial_state(model):
    k, layer = _first_rec(model)
    assert layer.weights[0].h0 is not None
    for w in layer.weights:
        w.h0 = w.c0 = None
    return k, layer


def swap_halves(model):
    k, layer = _first_rec(model)
    assert layer.direction == "bidirectional"
    layer.weights = layer.weights[::-1]
    return k, layer


BROKEN = [
    ("swapped gate blocks", "keras3/lstm_last_softmax/model.keras", swap_gates, ".onnx"),
    ("missing transpose", "tfkeras2/stacked_lstm_dense/model.h5", missing_transpose, ".onnx"),
    ("GRU reset variant flipped", "tfkeras2/gru_reset_before_last/model.h5", flip_reset, ".onnx"),
    ("hard_sigmoid of Keras 2 for Keras 3", "keras3/lstm_hard_sigmoid/model.keras", keras2_hard_sigmoid, ".onnx"),
    ("go_backwards order lost", "keras3/lstm_go_backwards_seq/model.keras", lose_go_backwards_order, ".rnnc"),
    ("initial state dropped", "torch_onnx/lstm_initial_state_const/model.onnx", drop_initial_state, ".onnx"),
    ("bidirectional halves swapped", "tfkeras2/bilstm_concat_last/model.h5", swap_halves, ".onnx"),
]


@pytest.mark.parametrize("what, src, corrupt, suffix", BROKEN, ids=[b[0] for b in BROKEN])
def test_verify_catches_broken_conversion_and_names_the_layer(what, src, corrupt, suffix, runner, tmp_path):
    model = copy.deepcopy(read(F / src))
    k, layer = corrupt(model)
    broken = tmp_path / f"broken{suffix}"
    write(model, broken)
    res = runner.invoke(cli, ["verify", str(F / src), str(broken), "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 1, res.output + res.stderr
    message = f"first difference at layer '{layer.name}' (layers[{k}]): max abs error "
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("rnnconvert: error: NOT EQUIVALENT: ") and message in last, last
    report = json.loads((tmp_path / "r.json").read_text())
    validate(report)
    assert report["passed"] is False
    assert report["localization"]["layer"] == layer.name and report["localization"]["index"] == k
    assert report["localization"]["max_abs"] > 1e-3


def _fixture_files():
    out = [(c.path, None) for c in cases("tfkeras2", "keras3", "torch_onnx", "tf2onnx")]
    for folder in sorted((F / "torch").glob("*/")):
        for f in sorted(folder.glob("model.*")):
            out.append((f, folder / "arch.json"))
    return out


@pytest.mark.parametrize("path, arch", _fixture_files(), ids=lambda v: "/".join(v.parts[-3:]) if v else "")
def test_verify_passes_every_correct_conversion(path, arch, runner, tmp_path):
    opts = {"arch": str(arch)} if arch else {}
    model = read(path, **opts)
    dst = tmp_path / "converted.onnx"
    try:
        write(model, dst)
    except UnsupportedError:               # selu RNN, LSTM projection: ONNX refuses; the lossless form then
        dst = tmp_path / "converted.rnnc"
        write(model, dst)
    args = ["verify", str(path), str(dst), "--report", str(tmp_path / "r.json")] + (["--arch", str(arch)] if arch else [])
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output + res.stderr
    assert "EQUIVALENT" in res.output and "tolerance atol=0.0001 rtol=0.0001" in res.output
    report = json.loads((tmp_path / "r.json").read_text())
    validate(report)
    assert report["localization"] is None
    # reference(dst) runs unless the file reads back identical to the source, when it would repeat reference(src)
    identical = any(n.startswith("reference(dst) and streaming(reference) not run: the file reads back identical")
                    for n in report["notes"])
    assert ("reference(dst)" in report["oracles"]["ran"]) != identical
    assert identical or "onnxruntime(dst)" in report["oracles"]["ran"] or dst.suffix == ".rnnc"


def test_report_contents_and_terminal_table(runner, tmp_path):
    src = F / "torch_onnx/lstm_last_linear/model.onnx"      # two biases: Keras keeps their sum
    features = read(src).input.features
    np.save(tmp_path / "x.npy", np.random.default_rng(1).standard_normal((2, 9, features)).astype(np.float32))
    res = runner.invoke(cli, ["convert", str(src), str(tmp_path / "m.keras"), "--inputs", str(tmp_path / "x.npy"),
                              "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    validate(r)
    assert r["source"]["format"] == "onnx" and r["destination"]["format"] == "keras"
    assert len(r["source"]["sha256"]) == 64 and r["seed"] == 0
    assert [i["shape"] for i in r["inputs"]] == [[b, t, features] for b, t in SUITE_SHAPES] + [[2, 9, features]]
    assert {"reference(dst)", "streaming(reference)", "keras(dst)"} <= set(r["oracles"]["ran"])
    assert r["tolerance_policy"]["by_dtype"]["float32"] == {"atol": 1e-4, "rtol": 1e-4}
    assert ("layer '/rnn/LSTM': input and recurrent biases summed into Keras's single bias (same function)"
            in r["conversion"]["changed_in_form"])
    assert r["conversion"]["preserved"] == ["layers[1] 'fc' (dense): every weight and setting exactly"]
    assert r["conversion"]["refused"] == []
    assert "changed in form: layer '/rnn/LSTM': input and recurrent biases summed" in res.output
    assert "preserved: layers[1] 'fc' (dense)" in res.output
    for c in r["checks"]:
        assert c["passed"] and len(c["worst"]) == 2


def test_refusal_is_reported(runner, tmp_path):
    src = F / "tfkeras2/simplernn_selu_dense/model.h5"
    res = runner.invoke(cli, ["convert", str(src), str(tmp_path / "m.safetensors"), "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 2
    r = json.loads((tmp_path / "r.json").read_text())
    validate(r)
    assert len(r["conversion"]["refused"]) == 1 and "nn.RNN computes tanh or relu" in r["conversion"]["refused"][0]
    assert str(tmp_path / "m.safetensors") in r["conversion"]["refused"][0] or "layer 'simple_rnn'" in r["conversion"]["refused"][0]
    assert r["verified"] is False and r["passed"] is False


def test_input_suite_is_seeded_long_and_saturating():
    model = read(F / "tfkeras2/lstm_last_softmax/model.h5")
    a, b = input_suite(model, seed=3), input_suite(model, seed=3)
    assert [x.shape for _, x in a] == [(bt[0], bt[1], 4) for bt in SUITE_SHAPES]
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
    assert max(x.shape[1] for _, x in a) >= 300 and min(x.shape[0] for _, x in a) > 1
    assert np.abs(a[1][1][0]).max() > 5       # the scaled row drives sigmoid gates into saturation


@pytest.mark.parametrize("src", ["tfkeras2/stacked_lstm_dense/model.h5", "torch_onnx/lstm_initial_state_const/model.onnx",
                                 "tfkeras2/gru_reset_before_last/model.h5", "keras3/simplernn_tanh_seq/model.keras",
                                 "torch_onnx/lstm_time_major/model.onnx"])
def test_streaming_equals_one_call(src):
    from rnnconvert.reference.network import forward
    model = read(F / src)
    assert streaming_undefined(model) is None
    for _, x in input_suite(model)[1:3]:
        np.testing.assert_allclose(stream(model, x), forward(model, x), atol=1e-12, rtol=1e-12)


def test_streaming_not_defined_for_bidirectional(runner, tmp_path):
    src = F / "tfkeras2/bilstm_concat_last/model.h5"
    model = read(src)
    assert streaming_undefined(model) == "layers[0] 'bidirectional' is bidirectional"
    write(model, tmp_path / "m.rnnc")         # no runtime of its own: reference(dst) and streaming are the checks
    res = runner.invoke(cli, ["verify", str(src), str(tmp_path / "m.rnnc")])
    assert res.exit_code == 0
    assert "not run: streaming(reference): not defined (layers[0] 'bidirectional' is bidirectional)" in res.output


def test_golden_vectors_written_and_rechecked(runner, tmp_path):
    src = F / "keras3/gru_reset_after_seq/model.keras"
    dst, vec = tmp_path / "m.onnx", tmp_path / "vectors"
    res = runner.invoke(cli, ["convert", str(src), str(dst), "--emit-vectors", str(vec)])
    assert res.exit_code == 0, res.stderr
    index = json.loads((vec / "vectors.json").read_text())
    assert index["kind"] == "rnnconvert-vectors" and index["model"]["path"] == "m.onnx"
    assert len(index["vectors"]) == len(SUITE_SHAPES)
    res = runner.invoke(cli, ["verify", str(dst), "--vectors", str(vec), "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    validate(r)
    assert set(r["oracles"]["ran"]) == {"reference(file)", "onnxruntime(file)"}
    # the source file computes the same, so it passes the same vectors (with a note on the hash)
    res = runner.invoke(cli, ["verify", str(src), "--vectors", str(vec / "vectors.json")])
    assert res.exit_code == 0, res.stderr
    assert "the vectors were made for another file (m.onnx" in res.output
    # a file that computes something else fails them
    model = read(src)
    swap_gates(model)
    write(model, tmp_path / "bad.onnx")
    res = runner.invoke(cli, ["verify", str(tmp_path / "bad.onnx"), "--vectors", str(vec)])
    assert res.exit_code == 1
    assert "NOT EQUIVALENT: " in res.stderr


def test_verify_emit_vectors(runner, tmp_path):
    src = F / "torch_onnx/lstm_time_major/model.onnx"
    write(read(src), tmp_path / "m.rnnc")
    res = runner.invoke(cli, ["verify", str(src), str(tmp_path / "m.rnnc"), "--emit-vectors", str(tmp_path / "v")])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(cli, ["verify", str(tmp_path / "m.rnnc"), "--vectors", str(tmp_path / "v")])
    assert res.exit_code == 0, res.stderr


# ---- bad input: word for word, exit 2 ----

def _error(res):
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr.strip()


def test_verify_one_file_without_vectors(runner):
    res = runner.invoke(cli, ["verify", str(F / "tfkeras2/lstm_last_softmax/model.h5")])
    assert res.exit_code == 2
    assert _error(res) == "rnnconvert: error: verify needs two model files A B, or one file and --vectors DIR"


def test_verify_vectors_with_two_files(runner, tmp_path):
    src = str(F / "tfkeras2/lstm_last_softmax/model.h5")
    res = runner.invoke(cli, ["verify", src, src, "--vectors", str(tmp_path)])
    assert res.exit_code == 2
    assert _error(res) == "rnnconvert: error: verify takes one model file with --vectors, not two"


def test_verify_vectors_with_inputs(runner, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 4), np.float32))
    res = runner.invoke(cli, ["verify", str(F / "tfkeras2/lstm_last_softmax/model.h5"), "--vectors", str(tmp_path),
                              "--inputs", str(tmp_path / "x.npy")])
    assert res.exit_code == 2
    assert _error(res) == "rnnconvert: error: --vectors checks the stored vectors only; it takes no --inputs or --emit-vectors"


def test_verify_vectors_missing(runner, tmp_path):
    res = runner.invoke(cli, ["verify", str(F / "tfkeras2/lstm_last_softmax/model.h5"), "--vectors", str(tmp_path)])
    assert res.exit_code == 2
    assert _error(res) == f"rnnconvert: error: {tmp_path}: no vectors.json here; write vectors with --emit-vectors DIR"


def test_verify_vectors_not_an_index(runner, tmp_path):
    (tmp_path / "vectors.json").write_text('{"kind": "something else"}')
    res = runner.invoke(cli, ["verify", str(F / "tfkeras2/lstm_last_softmax/model.h5"), "--vectors", str(tmp_path)])
    assert res.exit_code == 2
    assert _error(res) == (f"rnnconvert: error: {tmp_path / 'vectors.json'}: not an rnnconvert vectors index "
                           "(kind is 'something else', expected 'rnnconvert-vectors')")


def test_verify_missing_file(runner, tmp_path):
    res = runner.invoke(cli, ["verify", str(tmp_path / "a.h5"), str(tmp_path / "b.onnx")])
    assert res.exit_code == 2
    assert _error(res) == f"rnnconvert: error: {tmp_path / 'a.h5'}: no such file"


def test_failure_between_different_structures_is_not_localised(runner, tmp_path):
    from rnnconvert.model import ActivationLayer, Activation
    src = F / "tfkeras2/lstm_last_softmax/model.h5"
    model = read(src)
    model.layers.append(ActivationLayer("extra", Activation("tanh")))
    write(model, tmp_path / "m.rnnc")
    res = runner.invoke(cli, ["verify", str(src), str(tmp_path / "m.rnnc")])
    assert res.exit_code == 1
    assert ("could not be localised: the two models have different layer structures "
            "(lstm, dense vs lstm, dense, activation)") in res.stderr.strip().splitlines()[-1]
