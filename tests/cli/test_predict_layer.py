"""`predict --layer NAME`: the standalone layer `convert --layer` converts, run by the reference pass, against
the framework's own output of that layer (tf.keras's stored per-layer outputs, torch live); and `predict`
of a model that does not read whole is refused as `convert` refuses it, pointing to `--layer`."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT
from rnnconvert.cli import cli

ATOL = 1e-4
WEIGHTS_ONLY = ROOT / "fixtures" / "weights_only" / "tfkeras2_lstm_bigru_rnn"


def _err(res):
    assert res.stderr.count("\n") == 1, res.stderr
    return res.stderr.strip()


@pytest.mark.parametrize("name", ["lstm_a", "bi", "rnn_c"])
def test_predict_layer_of_a_weights_only_file_matches_tf_keras(runner, tmp_path, name):
    """x.npz/y.npz: each layer's input and its output as tf.keras computed them (fixtures/make_weights_only.py)."""
    x, y = np.load(WEIGHTS_ONLY / "x.npz")[name], np.load(WEIGHTS_ONLY / "y.npz")[name]
    np.save(tmp_path / "x.npy", x)
    res = runner.invoke(cli, ["predict", str(WEIGHTS_ONLY / "weights.h5"), "--layer", name,
                              "--inputs", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == f"wrote {tmp_path / 'y.npy'}: shape {list(y.shape)}"
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), y, atol=ATOL)


def test_predict_of_a_model_that_does_not_read_whole_points_to_layer(runner, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    gru = torch.nn.GRU(4, 6, num_layers=2, batch_first=True)
    conv = torch.nn.Conv2d(4, 4, 3)     # a front end the state dict reader does not take
    sd = {**{f"enc.{k}": v for k, v in gru.state_dict().items()},
          **{f"front.{k}": v for k, v in conv.state_dict().items()}}
    path = tmp_path / "model.pt"
    torch.save(sd, str(path))
    x = np.random.default_rng(2).standard_normal((3, 8, 4))
    np.save(tmp_path / "x.npy", x)
    predict = ["predict", str(path), "--inputs", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]
    res = runner.invoke(cli, predict)
    assert res.exit_code == 2
    refusal = _err(res)
    assert refusal.endswith("; to convert one recurrent layer on its own, pass --layer NAME (recurrent layers "
                            "found: enc_l0 (gru), enc_l1 (gru))")
    converted = runner.invoke(cli, [str(path), str(tmp_path / "all.onnx")])
    assert converted.exit_code == 2 and _err(converted) == refusal           # word for word as convert says it
    assert not (tmp_path / "y.npy").exists()

    res = runner.invoke(cli, predict + ["--layer", "enc"])                  # the module: both layers
    assert res.exit_code == 0, res.stderr
    with torch.no_grad():
        want = gru(torch.from_numpy(x).float())[0].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=ATOL)

    h = np.random.default_rng(3).standard_normal((2, 5, 6))
    np.save(tmp_path / "h.npy", h)
    res = runner.invoke(cli, ["predict", str(path), "--layer", "enc.l1", "--inputs", str(tmp_path / "h.npy"),
                              "--output", str(tmp_path / "l1.npy")])
    assert res.exit_code == 0, res.stderr
    one = torch.nn.GRU(6, 6, batch_first=True)
    one.load_state_dict({k.replace("_l1", "_l0"): v for k, v in gru.state_dict().items() if k.endswith("_l1")})
    with torch.no_grad():
        want = one(torch.from_numpy(h).float())[0].numpy()
    np.testing.assert_allclose(np.load(tmp_path / "l1.npy"), want, atol=ATOL)

    res = runner.invoke(cli, predict + ["--layer", "nope"])
    assert res.exit_code == 2
    assert _err(res) == (f"rnnconvert: error: {path}: no recurrent layer 'nope'; recurrent layers found: "
                         "enc_l0 (gru), enc_l1 (gru)")
