"""Every fixture (Keras, ONNX, PyTorch) written as a TF.js layers model and run by @tensorflow/tfjs under Node,
to the SOURCE framework's stored predictions within 1e-4, on every stored input (batch 2-3, 1, 7 and 60
steps, one saturating row).  One Node process runs every model (`run_all`).  A model is refused only for
what TF.js cannot compute, told from the canonical model here (`tfjs_cannot_express`), with a message
naming the layer."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rnnconvert
from conftest import cases
from rnnconvert.errors import UnsupportedError
from rnnconvert.model import Recurrent
from tfjs_oracle import run_all

SOURCES = (cases("tfkeras2", suffixes=(".h5",)) + cases("keras3", suffixes=(".keras",))
           + cases("torch_onnx", "tf2onnx", suffixes=(".onnx",)) + cases("torch", suffixes=(".pt",)))


def arch_for(case):
    arch = case.folder / "arch.json"
    return {"arch": str(arch)} if arch.exists() else {}


def tfjs_cannot_express(model) -> str | None:
    """From TF.js's layer set (tfjs-layers 4.22): words the refusal must hold, or None."""
    masked = False
    for layer in model.layers:
        if isinstance(layer, Recurrent):
            if layer.cell == "gru" and layer.reset_after:
                return "reset_after=True"               # GRUCell throws on it
            if any(w.proj is not None for w in layer.weights):
                return "projection"
            if any(w.h0 is not None or w.c0 is not None for w in layer.weights):
                return "initial state"
            if masked and layer.output == "sequence" and layer.masked_output == "zero":
                return "masked steps output zeros"
        if masked and layer.kind == "pooling1d" and layer.mode == "average" and layer.pool_size is None:
            return "global average pooling"
        kind = layer.kind
        masked = ((kind == "embedding" and layer.mask_zero) or kind == "masking"
                  or (masked and kind in ("dropout", "dense", "activation", "batch_norm"))
                  or (masked and isinstance(layer, Recurrent) and layer.output == "sequence"))
    return None


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """{case id: (outputs by key, or the refusal)}, every written model run in one Node process."""
    out, jobs, where = {}, [], []
    root = tmp_path_factory.mktemp("tfjs")
    for k, case in enumerate(SOURCES):
        model = rnnconvert.read(case.path, **arch_for(case))
        dst = root / f"m{k}.json"
        try:
            rnnconvert.write(model, dst)
        except UnsupportedError as exc:
            out[case.id] = (model, exc)
            continue
        out[case.id] = (model, {})
        for key, x, _ in case.io():
            if model.input.layout == "time_batch_feature":
                x = np.swapaxes(x, 0, 1)
            jobs.append((dst, x))
            where.append((case.id, key))
    for (cid, key), y in zip(where, run_all(jobs)):
        out[cid][1][key] = y
    return out


@pytest.mark.parametrize("case", SOURCES, ids=lambda c: c.id)
def test_fixture_runs_in_tfjs_to_the_framework_outputs(case, written):
    model, got = written[case.id]
    expected_refusal = tfjs_cannot_express(model)
    if expected_refusal is not None:
        assert isinstance(got, UnsupportedError), f"TF.js should refuse ({expected_refusal})"
        assert expected_refusal in got.message and "layer '" in got.message
        return
    assert not isinstance(got, Exception), got
    for key, x, y in case.io():
        out = got[key]
        if model.input.layout == "time_batch_feature" and out.ndim == 3:
            out = np.swapaxes(out, 0, 1)
        np.testing.assert_allclose(out, y, atol=1e-4, rtol=0, err_msg=f"{case.id} {key}")


def test_most_fixtures_convert(written):
    """The refusals stay the exception: at least 45 of the fixtures run in TF.js."""
    ran = [cid for cid, (_, got) in written.items() if not isinstance(got, Exception)]
    assert len(ran) >= 45, (len(ran), len(written))


def test_written_files_are_what_tfjs_saves(tmp_path):
    """model.json holds TF.js's keys and a manifest naming the shard beside it, which holds exactly the
    weights' bytes; weights are named as TF.js names them."""
    case = next(c for c in cases("tfkeras2", suffixes=(".h5",)) if c.name == "bilstm_concat_last")
    rnnconvert.write(rnnconvert.read(case.path), tmp_path / "net.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.bin", "net.json"]
    doc = json.loads((tmp_path / "net.json").read_text())
    assert doc["format"] == "layers-model"
    assert doc["modelTopology"]["class_name"] == "Sequential"
    [group] = doc["weightsManifest"]
    assert group["paths"] == ["net.bin"]
    names = [w["name"] for w in group["weights"]]
    assert names[:3] == ["bidirectional/forward_lstm/kernel", "bidirectional/forward_lstm/recurrent_kernel",
                         "bidirectional/forward_lstm/bias"]
    size = sum(4 * int(np.prod(w["shape"])) for w in group["weights"])
    assert (tmp_path / "net.bin").stat().st_size == size
