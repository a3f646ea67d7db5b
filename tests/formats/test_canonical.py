"""The canonical form: lossless round trips, the manifest against its JSON Schema, bad files."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES, ROOT, cases
from rnnconvert.errors import InputError
from rnnconvert.formats import canonical
from rnnconvert.model import layer_fields

jsonschema = pytest.importorskip("jsonschema")
SCHEMA = json.loads((ROOT / "schemas" / "model.schema.json").read_text())
ALL = cases("tfkeras2", "keras3", "torch_onnx", "tf2onnx")


def assert_same_model(a, b):
    assert a.input == b.input and a.output_name == b.output_name
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        assert type(la) is type(lb) and layer_fields(la) == layer_fields(lb)
        arrays_a, arrays_b = la.arrays(), lb.arrays()
        assert arrays_a.keys() == arrays_b.keys()
        for k in arrays_a:
            assert arrays_a[k].dtype == arrays_b[k].dtype
            assert arrays_a[k].tobytes() == arrays_b[k].tobytes(), k


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.id)
def test_round_trip_is_lossless_and_manifest_valid(case, tmp_path):
    model = rnnconvert.read(case.path)
    rnnconvert.write(model, tmp_path / "m.rnnc")
    back = rnnconvert.read(tmp_path / "m.rnnc")
    assert_same_model(model, back)
    with zipfile.ZipFile(tmp_path / "m.rnnc") as z:
        manifest = json.loads(z.read("model.json"))
        names = z.namelist()
    jsonschema.validate(manifest, SCHEMA)
    for layer in manifest["layers"]:
        for w in layer.get("weights", []):
            assert w["W"]["array"].endswith("W_" + layer["gate_order"])
            assert w["W"]["array"] + ".npy" in names


def test_schema_rejects_wrong_gate_order(tmp_path):
    model = rnnconvert.read(next(c for c in ALL if c.name == "lstm_last_softmax").path)
    manifest, arrays = canonical.to_manifest(model)
    rec = next(layer for layer in manifest["layers"] if "gate_order" in layer)
    rec["gate_order"] = "iofc"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, SCHEMA)
    with pytest.raises(InputError, match="gate_order 'iofc', the canonical order of LSTM is 'ifgo'"):
        canonical.from_manifest(manifest, arrays)


def test_missing_array_member(tmp_path):
    model = rnnconvert.read(cases("tfkeras2")[0].path)
    manifest, arrays = canonical.to_manifest(model)
    arrays.pop(next(iter(arrays)))
    with pytest.raises(InputError, match="named in model.json is missing"):
        canonical.from_manifest(manifest, arrays)


def test_not_a_zip(tmp_path):
    p = tmp_path / "bad.rnnc"
    p.write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable .rnnc file"):
        rnnconvert.read(p)


def test_inconsistent_shapes_all_reported(tmp_path):
    model = rnnconvert.read(next(c for c in ALL if c.name == "stacked_lstm_dense").path)
    model.layers[0].weights[0].R = np.zeros((3, 3), np.float32)
    model.layers[-1].kernel = np.zeros((2, 2), np.float32)
    with pytest.raises(InputError) as exc:
        model.validate("x.rnnc")
    msg = str(exc.value)
    assert msg.startswith("x.rnnc: invalid model: ")
    assert ".forward.R: shape (3, 3), expected" in msg and "kernel shape (2, 2), expected" in msg


def test_a_recurrent_layer_without_weight_sets_is_refused_naming_it(tmp_path):
    """A manifest whose recurrent layer lists no weight set: its output width cannot be measured, so the
    layers after it are not, and the one problem is said (an IndexError before; fuzz at 5000 cases)."""
    src = tmp_path / "m.rnnc"
    rnnconvert.write(rnnconvert.read(FIXTURES / "torch_onnx" / "lstm_last_linear" / "model.onnx"), src)
    with zipfile.ZipFile(src) as z:
        members = {i.filename: z.read(i.filename) for i in z.infolist()}
    doc = json.loads(members["model.json"])
    recurrent = next(layer for layer in doc["layers"] if "cell" in layer)
    recurrent["weights"] = []
    members["model.json"] = json.dumps(doc).encode()
    bad = tmp_path / "bad.rnnc"
    with zipfile.ZipFile(bad, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(InputError) as err:
        rnnconvert.read(bad)
    assert str(err.value) == (f"{bad}: invalid model: layers[0] '{recurrent['name']}': 0 weight sets for "
                              f"direction '{recurrent['direction']}'")
