"""Real MATLAB files from ../shared/wild (skipped where that folder is missing): each `mat_*` case
marked convert converts to ONNX and matches its y.npy under onnxruntime; the untrained layer array
is refused; bare matrices convert with a mapping file."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rnnconvert
from rnnconvert.errors import InputError

from conftest import WILD

MAT_CASES = sorted(p for p in WILD.glob("mat_*") if p.is_dir()) if WILD.is_dir() else []
NETWORKS = [p for p in MAT_CASES if "seriesnet" in p.name]
pytestmark = pytest.mark.skipif(not MAT_CASES, reason=f"{WILD} is missing")

GLIDER_MAPPING = """\
layers:
  - {layer: fullyConnectedLayer, Weights: w_input, Bias: b_input}
  - {layer: tanhLayer}
  - {layer: lstmLayer, InputWeights: [w_ii, w_if, w_ig, w_io], RecurrentWeights: [w_hi, w_hf, w_hg, w_ho],
     Bias: [b_ii, b_if, b_ig, b_io], RecurrentBias: [b_hi, b_hf, b_hg, b_ho], OutputMode: sequence}
  - {layer: fullyConnectedLayer, Weights: w_output, Bias: b_output}
"""


def _mat(folder):
    return next(folder.glob("*.mat"))


def _close(a, b, tol=1e-4):
    assert a.shape == b.shape
    assert np.all(np.abs(a - b) <= tol + tol * np.abs(b)), np.abs(a - b).max()


@pytest.mark.parametrize("folder", NETWORKS, ids=[p.name for p in NETWORKS])
def test_wild_network_converts_to_onnx_and_matches_y(folder, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    x, y = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    dst = tmp_path / "model.onnx"
    rnnconvert.convert(_mat(folder), dst)
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    _close(sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0], y)
    _close(rnnconvert.predict(rnnconvert.read(_mat(folder)), x), y)


def test_wild_untrained_layer_array_is_refused():
    folder = WILD / "mat_insgnss_untrained_layer_array"
    if not folder.is_dir():
        pytest.skip("case missing")
    with pytest.raises(InputError, match="has no learned weights"):
        rnnconvert.read(_mat(folder))


def test_wild_bare_matrices_with_mapping(tmp_path):
    folder = WILD / "mat_glider_decision_maker_plain"
    if not folder.is_dir():
        pytest.skip("case missing")
    mapping = tmp_path / "map.yaml"
    mapping.write_text(GLIDER_MAPPING)
    x, y = np.load(folder / "x.npy"), np.load(folder / "y.npy")
    model = rnnconvert.read(_mat(folder), mapping=str(mapping))
    _close(rnnconvert.predict(model, x), y)
    rnnconvert.convert(_mat(folder), tmp_path / "glider.onnx", read_options={"arch": str(mapping)})


def test_every_wild_mat_case_is_covered():
    expects = {p.name: json.loads((p / "case.json").read_text()).get("expect") for p in MAT_CASES}
    assert len(NETWORKS) >= 5, expects


@pytest.mark.parametrize("folder", NETWORKS, ids=[p.name for p in NETWORKS])
def test_mcos_decoder_agrees_with_mat_io(folder):
    """rnnconvert's own MCOS decoder against mat-io's on every learnable of every layer."""
    import warnings
    matio = pytest.importorskip("matio")
    from rnnconvert.formats.matlab import mcos
    from rnnconvert.formats.matlab.build import fields
    ours = mcos.load(_mat(folder))["net"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = matio.load_from_mat(str(_mat(folder)))["net"]
    our_layers = ours.props["any"]["Layers"]
    their_layers = np.asarray(theirs.properties["any"][0, 0]["Layers"]).reshape(-1, order="F")
    assert len(our_layers) == len(their_layers)
    compared = 0
    for mine, other in zip(our_layers, their_layers):
        _, props = fields(mine)
        if "any" not in other.properties:          # a layer saved by properties (no saveobj struct)
            assert props.get("Name") == other.properties.get("Name")
            continue
        saved = other.properties["any"][0, 0]
        assert props["Name"] == str(np.asarray(saved["Name"]).reshape(-1)[0])
        for key in ("InputWeights", "RecurrentWeights", "Bias", "Weights"):
            if key in props and isinstance(props[key], dict):
                np.testing.assert_array_equal(props[key]["Value"], saved[key][0, 0]["Value"])
                compared += 1
    assert compared >= 4
