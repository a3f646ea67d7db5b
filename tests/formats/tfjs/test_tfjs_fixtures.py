"""Every fixture (Keras, ONNX, PyTorch) written as a TF.js layers model and run by @tensorflow/tfjs under Node,
to the SOURCE framework's stored predictions within 1e-4, on every stored input (batch 2-3, 1, 7 and 60
steps, one saturating row).  One Node process runs every model (`run_all`), importing the
`NAME.layers.mjs` written beside it.  What TF.js's own layers cannot compute (a reset_after GRU, an
LSTM projection, initial states, masked zero outputs and pooling), told from the canonical model here
(`classes_tfjs_lacks`), names rnnconvert's classes, and only then is the module written."""
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


def classes_tfjs_lacks(model) -> set[str]:
    """From TF.js's layer set (tfjs-layers 4.22): the rnnconvert classes the written model must name, for
    what TF.js's own layers cannot compute."""
    out, masked = set(), False
    for layer in model.layers:
        if isinstance(layer, Recurrent):
            cls = "Rnnconvert" + {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}[layer.cell]
            if layer.cell == "gru" and layer.reset_after:
                out.add(cls)                            # GRUCell throws on reset_after=True
            if any(w.proj is not None for w in layer.weights):
                out.add(cls)
            if any(w.h0 is not None or w.c0 is not None for w in layer.weights):
                out.add(cls)
            if masked and layer.output == "sequence" and layer.masked_output == "zero":
                out.add(cls)                            # TF.js repeats the previous output
        if masked and layer.kind == "pooling1d" and layer.mode == "average" and layer.pool_size is None:
            out.add("RnnconvertGlobalAveragePooling1D")   # TF.js averages the masked steps too
        kind = layer.kind
        masked = ((kind == "embedding" and layer.mask_zero) or kind == "masking"
                  or (masked and kind in ("dropout", "dense", "activation", "batch_norm"))
                  or (masked and isinstance(layer, Recurrent) and layer.output == "sequence"))
    return out


def named_classes(path) -> set[str]:
    """The class names model.json's topology holds (a Bidirectional's wrapped layer included)."""
    names = set()

    def walk(o):
        if isinstance(o, dict):
            if isinstance(o.get("class_name"), str):
                names.add(o["class_name"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(json.loads(path.read_text())["modelTopology"])
    return names


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
        out[case.id] = (model, {"classes": named_classes(dst), "module": dst.with_suffix(".layers.mjs").exists()})
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
    assert not isinstance(got, Exception), got
    lacks = classes_tfjs_lacks(model)
    assert {c for c in got["classes"] if c.startswith("Rnnconvert")} == lacks
    assert got["module"] == bool(lacks)
    for key, x, y in case.io():
        out = got[key]
        if model.input.layout == "time_batch_feature" and out.ndim == 3:
            out = np.swapaxes(out, 0, 1)
        np.testing.assert_allclose(out, y, atol=1e-4, rtol=0, err_msg=f"{case.id} {key}")


def test_every_fixture_converts(written):
    """No fixture is refused: all 75 run in TF.js, 30 of them with rnnconvert's layer classes."""
    ran = [cid for cid, (_, got) in written.items() if not isinstance(got, Exception)]
    custom = [cid for cid, (_, got) in written.items() if not isinstance(got, Exception) and got["module"]]
    assert (len(ran), len(written), len(custom)) == (75, 75, 30)


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
