"""MATLAB layers missing a recurrent setting (bare matrices described by a mapping that does not name the
activations; a struct export without them): MATLAB's default is taken and recorded as an assumption that
--strict refuses, naming the property that settles it.  Oracle: torch running the same LSTM."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io

import rnnconvert
from rnnconvert.cli import cli

torch = pytest.importorskip("torch")

C, H = 3, 5
MAPPING = ("layers:\n"
           "  - {layer: lstmLayer, InputWeights: [w_ii, w_if, w_ig, w_io], RecurrentWeights: [w_hi, w_hf, w_hg, w_ho],\n"
           "     Bias: [b_ii, b_if, b_ig, b_io], RecurrentBias: [b_hi, b_hf, b_hg, b_ho], OutputMode: sequence%s}\n")


@pytest.fixture
def bare(tmp_path):
    torch.manual_seed(0)
    m = torch.nn.LSTM(C, H, batch_first=True).eval()
    sd = {k: v.detach().numpy() for k, v in m.state_dict().items()}
    mats = {}
    for k, g in enumerate("ifgo"):
        for part, key in (("w_i", "weight_ih_l0"), ("w_h", "weight_hh_l0"), ("b_i", "bias_ih_l0"),
                          ("b_h", "bias_hh_l0")):
            block = sd[key][k * H:(k + 1) * H]
            mats[f"{part}{g}"] = block if part.startswith("w") else block[None]
    path = tmp_path / "w.mat"
    scipy.io.savemat(str(path), mats)
    return m, path


def test_missing_activations_are_assumptions_and_strict_refuses_them(bare, runner, tmp_path):
    m, path = bare
    (tmp_path / "map.yaml").write_text(MAPPING % "")
    model = rnnconvert.read(path, mapping=str(tmp_path / "map.yaml"))
    assert [(a.kind, a.assumed) for a in model.source["assumptions"]] == [
        ("activation", "layer 'lstmLayer_1' GateActivationFunction sigmoid"),
        ("activation", "layer 'lstmLayer_1' StateActivationFunction tanh")]
    x = np.random.default_rng(1).normal(size=(2, 6, C)).astype(np.float32)
    with torch.no_grad():
        want = m(torch.from_numpy(x))[0].numpy()
    assert np.abs(rnnconvert.predict(model, x) - want).max() < 1e-5
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "w.onnx"), "--mapping", str(tmp_path / "map.yaml"),
                              "--strict"])
    assert res.exit_code == 2
    assert res.stderr.startswith(
        f"rnnconvert: error: {path}: --strict: read under 2 assumptions the file does not settle: activation: layer "
        "'lstmLayer_1' GateActivationFunction sigmoid (settle it: GateActivationFunction among the layer's properties "
        "(matlab/rnnconvert_export.m saves every one; a --mapping file may give it)); activation: ")

    (tmp_path / "map.yaml").write_text(MAPPING % ", GateActivationFunction: sigmoid, StateActivationFunction: tanh")
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "w.onnx"), "--mapping", str(tmp_path / "map.yaml"),
                              "--strict"])
    assert res.exit_code == 0, res.output + res.stderr
    assert res.output.rstrip().endswith("\n  EQUIVALENT")
