"""What a report says the conversion did applies where it applies: no "masked_output stored differently"
for a model no mask reaches, no layer both "preserved exactly" and "changed in form", and `verify A B`
says it compares two files (`A against B`), not that it converts one into the other."""
from __future__ import annotations

import dataclasses

import pytest

import rnnconvert
from conftest import ROOT
from rnnconvert.cli import cli
from rnnconvert.verification.diagnose import classify
from progress_lines import without_progress

TF2ONNX = ROOT / "fixtures" / "tf2onnx" / "bilstm_concat_seq"


def test_verify_of_a_maskless_model_says_against_and_no_masked_output(runner):
    """tf2onnx's file of a Keras Bidirectional returning sequences (Keras forces zero_output_for_mask on it;
    ONNX has no masks): no mask reaches the layer, so what it outputs at a masked step is no difference."""
    pytest.importorskip("onnxruntime")
    a, b = TF2ONNX / "source_model.h5", TF2ONNX / "model.onnx"
    res = runner.invoke(cli, ["verify", str(a), str(b)])
    assert res.exit_code == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"{a} (keras) against {b} (onnx)"
    assert "masked_output" not in res.stdout
    assert "  changed in form: layers[0] 'bidirectional' (lstm): has_recurrent_bias stored differently" in lines


def test_a_mask_keeps_masked_output_a_difference():
    model = rnnconvert.read(ROOT / "fixtures" / "tfkeras2" / "embed_mask_bilstm_seq" / "model.h5")
    k = next(i for i, x in enumerate(model.layers) if x.kind == "lstm")
    other = dataclasses.replace(model, layers=list(model.layers))
    other.layers[k] = dataclasses.replace(model.layers[k], masked_output="previous"
                                          if model.layers[k].masked_output == "zero" else "zero")
    assert any("masked_output stored differently" in x for x in classify(model, other)["changed_in_form"])


def test_a_layer_a_writer_changed_in_form_is_not_also_preserved(runner, tmp_path):
    """PyTorch has no merge mode: the state dict holds the weights exactly, and the writer's note says the sum
    of the two directions moves to the emitted forward; the layer is listed once, under changed in form."""
    pytest.importorskip("torch")
    src = ROOT / "fixtures" / "keras3" / "bigru_sum_seq" / "model.h5"
    res = runner.invoke(cli, [str(src), str(tmp_path / "model.pt")])
    assert res.exit_code == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert "  changed in form: layer 'bidirectional' merges its directions by sum: done in the emitted forward" \
        in lines
    mentions = [x for x in lines if "'bidirectional'" in x and x.startswith(("  preserved", "  changed in form"))]
    assert len(mentions) == 1, mentions


def test_verify_of_two_different_models_says_against_on_failure_too(runner):
    a = ROOT / "fixtures" / "tfkeras2" / "lstm_last_softmax" / "model.h5"
    b = ROOT / "fixtures" / "keras3" / "lstm_last_softmax" / "model.h5"      # other weights, same stack
    res = runner.invoke(cli, ["verify", str(a), str(b)])
    assert res.exit_code == 1
    assert without_progress(res.stderr).splitlines()[0] == f"{a} (keras) against {b} (keras)"
    assert " -> " not in res.stderr
