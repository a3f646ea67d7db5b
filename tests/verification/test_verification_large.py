"""Verification of large models (verification_large.py) on small fixtures: `suite.LARGE_MODEL_PARAMS`
is lowered so that they take the large-model path.  The written files are checked against the source
framework's own predictions, the path can fail, and the source's weights are released before the
runtime loads the file."""
from __future__ import annotations

import gc
import json
import weakref

import numpy as np
import pytest
from click.testing import CliRunner

import rnnconvert
from rnnconvert.verification import runtimes, suite, large as verification_large
from rnnconvert.cli.commands import cli
from rnnconvert.errors import VerificationError

from conftest import FIXTURES, Case

CASES = ["keras3/stacked_lstm_dense/model.h5", "keras3/bigru_sum_seq/model.keras",
         "keras3/lstm_go_backwards_seq/model.keras", "tfkeras2/gru_reset_before_last/model.h5"]


@pytest.fixture
def large(monkeypatch):
    monkeypatch.setattr(suite, "LARGE_MODEL_PARAMS", 0)


def _case(rel) -> Case:
    path = FIXTURES / rel
    return Case(path.parent, path)


def _onnxruntime(path, x):
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


@pytest.mark.parametrize("rel", CASES)
def test_large_path_to_onnx_matches_the_framework(large, tmp_path, rel):
    case = _case(rel)
    dst = tmp_path / "m.onnx"
    report = rnnconvert.convert(case.path, dst)
    assert report.passed
    assert report.oracles() == ["onnxruntime(dst)"]
    assert verification_large.IDENTICAL in report.notes
    assert [tuple(i["shape"][:2]) for i in report.inputs] == list(suite.LARGE_SUITE_SHAPES)
    assert all(i["reference"] == "float32" and i["float32_noise"] is None for i in report.inputs)
    for _, x, y in case.io():            # the framework's own predictions, not our reference
        np.testing.assert_allclose(_onnxruntime(dst, x), y, atol=1e-5, rtol=1e-5)


def test_large_path_report_follows_the_schema(large, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((FIXTURES.parent / "schemas" / "report.schema.json").read_text())
    report = rnnconvert.convert(_case(CASES[0]).path, tmp_path / "m.onnx")
    jsonschema.validate(report.to_dict(), schema)


def test_without_a_runtime_the_read_back_is_still_run(large, tmp_path):
    case = _case(CASES[0])
    report = rnnconvert.convert(case.path, tmp_path / "m.rnnc")
    assert "reference(dst)" in report.oracles()
    assert verification_large.IDENTICAL not in report.notes
    back = rnnconvert.read(tmp_path / "m.rnnc")
    for _, x, y in case.io():
        np.testing.assert_allclose(rnnconvert.predict(back, x), y, atol=1e-5, rtol=1e-5)


def test_destinations_whose_runtime_needs_weights_take_the_general_path(large, tmp_path):
    src = rnnconvert.read(_case(CASES[0]).path)
    assert not verification_large.applies(src, rnnconvert.formats.for_writing("m.pt"))
    assert verification_large.applies(src, rnnconvert.formats.for_writing("m.onnx"))
    report = rnnconvert.convert(_case(CASES[0]).path, tmp_path / "m.pt")
    assert set(report.oracles()) == {"torch(dst)"}          # the general path: reads back identical
    assert "reference(dst) and streaming(reference) not run: the file reads back identical" in " ".join(report.notes)
    assert all("reference" not in i and i["float32_noise"] is not None for i in report.inputs)


def _swapping_writer(monkeypatch):
    """The ONNX writer with the first LSTM's input and forget gate blocks swapped: a wrong file."""
    from rnnconvert.formats import onnx as onnx_format
    write = onnx_format.write

    def broken(model, path, **options):
        layer = model.recurrent_layers[0]
        w = layer.weights[0]
        H = layer.hidden
        W = w.W.copy()
        W[:H], W[H:2 * H] = w.W[H:2 * H], w.W[:H]
        saved, w.W = w.W, W
        try:
            return write(model, path, **options)
        finally:
            w.W = saved
    monkeypatch.setattr(onnx_format, "write", broken)


def test_a_wrong_file_fails_by_the_float64_rule(large, tmp_path, monkeypatch):
    _swapping_writer(monkeypatch)
    dst = tmp_path / "m.onnx"
    with pytest.raises(VerificationError) as err:
        rnnconvert.convert(_case(CASES[0]).path, dst)
    report = err.value.report
    assert not dst.exists()
    assert not report.passed
    failed = {c.input for c in report.checks if not c.passed}
    for entry in report.inputs:          # every input with a failed check was judged by the float64 rule
        if entry["label"] in failed:
            assert entry["reference"] == "float64" and entry["float32_noise"] is not None
    assert "reference(dst)" in report.oracles()          # not identical: the read-back was run too
    assert report.localization["layer"] == rnnconvert.read(_case(CASES[0]).path).recurrent_layers[0].name


def test_a_wrong_file_fails_through_the_cli(large, tmp_path, monkeypatch):
    _swapping_writer(monkeypatch)
    res = CliRunner().invoke(cli, [str(_case(CASES[0]).path), str(tmp_path / "m.onnx")])
    assert res.exit_code == 1, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("rnnconvert: error: NOT EQUIVALENT: ")
    assert "first difference at layer 'lstm' (layers[0])" in last and last.endswith("m.onnx not written")


def test_the_source_weights_are_released_before_the_runtime_loads_the_file(large, tmp_path, monkeypatch):
    from rnnconvert.formats import keras as keras_format
    read, seen, alive = keras_format.read, [], []

    def remembering(path, **options):
        model = read(path, **options)
        seen.append(weakref.ref(model.recurrent_layers[0].weights[0].R))
        return model
    monkeypatch.setattr(keras_format, "read", remembering)
    runner = runtimes.runner

    def checking(fmt, path, model):
        gc.collect()
        alive.append(seen[0]() is not None)
        return runner(fmt, path, model)
    monkeypatch.setattr(runtimes, "runner", checking)
    report = rnnconvert.convert(_case(CASES[0]).path, tmp_path / "m.onnx")
    assert report.passed and alive == [False]


def test_the_general_path_keeps_every_oracle(tmp_path):
    """Below the size: float64 expected outputs and the noise of every input; a read-back that differs from the
    source (Keras keeps the sum of ONNX's two biases) gets reference(dst) and streaming(reference) too."""
    report = rnnconvert.convert(FIXTURES / "torch_onnx/lstm_last_linear/model.onnx", tmp_path / "m.keras")
    assert {"reference(dst)", "streaming(reference)", "keras(dst)"} <= set(report.oracles())
    assert all("reference" not in i and i["float32_noise"] is not None for i in report.inputs)

