"""A time window in TF.js (which has no Cropping1D): written as rnnconvert's `RnnconvertTimeWindow` class
(`NAME.layers.mjs`), from any length, negative from the end, one step or a range.  The window fixtures (torch.onnx's
`out[:, -5:]`, `out[:, 3]`, `out[:, -2]`, `out[:, 2:6]`, time-major `out[-5:]`; tf2onnx's Cropping1D) run in
Node's @tensorflow/tfjs within 1e-4 of the framework's stored outputs, read back from model.json (also as TF.js
saves it again), and a window config that is no window is refused, exit 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from rnnconvert.cli import cli
from rnnconvert.formats.tfjs import layers_js, runtime
from rnnconvert.model import TimeWindow
from tfjs_oracle import require_tfjs, resave, run_all

TOL = 1e-4
# case -> (start, stop, single), as the source framework cuts the sequence
CASES = {
    "torch_window/lstm_last5_dense": (-5, None, False),
    "torch_window/gru_bi_step3_dense": (3, None, True),
    "torch_window/lstm_step_minus2": (-2, None, True),
    "torch_window/rnn_steps_2_6": (2, 6, False),
    "torch_window/lstm_time_major_last5": (-5, None, False),
    "tf2onnx_window/lstm_crop_2_1_gru_dense": (2, -1, False),
    "tf2onnx_window/bigru_crop_3_0_seq": (3, None, False),
}


def _io(case):
    d = FIXTURES / case
    return np.load(d / "inputs.npz"), np.load(d / "outputs.npz")


def _window(model) -> TimeWindow:
    (w,) = [layer for layer in model.layers if isinstance(layer, TimeWindow)]
    return w


def _batch_major(model, x, y):
    """The TF.js model takes [batch, time, features] whatever the source's layout."""
    if model.input.layout != "time_batch_feature":
        return x, y
    return np.swapaxes(x, 0, 1), (np.swapaxes(y, 0, 1) if y.ndim == 3 else y)


def _write_all(tmp_path):
    out = {}
    for k, case in enumerate(CASES):
        model = rnnconvert.read(str(FIXTURES / case / "model.onnx"))
        dst = tmp_path / f"m{k}.json"
        rnnconvert.write(model, str(dst))
        out[case] = (model, dst)
    return out


def test_window_fixtures_run_in_tfjs_with_the_window_class(tmp_path):
    written = _write_all(tmp_path)
    jobs, expected = [], []
    for case, (model, dst) in written.items():
        layers = json.loads(dst.read_text())["modelTopology"]["config"]["layers"]
        (cfg,) = [e["config"] for e in layers if e["class_name"] == layers_js.WINDOW]
        assert (cfg["start"], cfg["stop"], cfg["single"]) == CASES[case]
        assert "Cropping1D" not in dst.read_text()
        assert dst.with_suffix(".layers.mjs").read_text() == layers_js.SOURCE
        xs, ys = _io(case)
        for key in xs.files:
            x, y = _batch_major(model, xs[key], ys[key])
            jobs.append((dst, x))
            expected.append((f"{case} {key}", y))
    outs = run_all(jobs)
    assert len(outs) == len(expected) == 23         # every stored input of the seven fixtures
    for out, (what, y) in zip(outs, expected):
        np.testing.assert_allclose(out, y, atol=TOL, rtol=TOL, err_msg=what)


def test_the_window_class_reads_back_as_the_window(tmp_path):
    for case, (model, dst) in _write_all(tmp_path).items():
        back = rnnconvert.read(str(dst))
        w = _window(back)
        assert (w.start, w.stop, w.single) == CASES[case]
        xs, ys = _io(case)
        for key in xs.files:
            x, y = _batch_major(model, xs[key], ys[key])
            np.testing.assert_allclose(rnnconvert.predict(back, x), y, atol=1e-5, rtol=1e-5, err_msg=f"{case} {key}")


def test_what_tfjs_saves_of_a_window_reads_back(tmp_path):
    """TF.js loads the model and saves it again (the class's getConfig): still the same window."""
    case = "torch_window/gru_bi_step3_dense"
    model = rnnconvert.read(str(FIXTURES / case / "model.onnx"))
    rnnconvert.write(model, str(tmp_path / "m.json"))
    resave(tmp_path, [str(tmp_path / "m")])
    back = rnnconvert.read(str(tmp_path / "m.saved.json"))
    assert (_window(back).start, _window(back).stop, _window(back).single) == CASES[case]
    xs, ys = _io(case)
    for key in xs.files:
        np.testing.assert_allclose(rnnconvert.predict(back, xs[key]), ys[key], atol=1e-5, rtol=1e-5, err_msg=key)


def _edited_window(tmp_path, change) -> str:
    dst = tmp_path / "m.json"
    rnnconvert.write(rnnconvert.read(str(FIXTURES / "torch_window" / "rnn_steps_2_6" / "model.onnx")), str(dst))
    doc = json.loads(dst.read_text())
    layers = doc["modelTopology"]["config"]["layers"]
    (entry,) = [e for e in layers if e["class_name"] == layers_js.WINDOW]
    change(entry["config"], layers)
    dst.write_text(json.dumps(doc))
    return str(dst)


@pytest.mark.parametrize("change, words", [
    (lambda c, layers: c.update(start=2.5), "layer 'window': start 2.5, expected an integer step index"),
    (lambda c, layers: c.update(stop="6"), "layer 'window': stop 6, expected an integer step index"),
    (lambda c, layers: c.update(single=True), "layer 'window': single True with stop 6, expected true (no stop) "
                                              "or false"),
    (lambda c, layers: (c.update(stop=2), layers[0]["config"].update(batch_input_shape=[None, 7, 3])),
     "layer 'window': the time window keeps none of the 7 time steps the model fixes"),
])
def test_a_window_config_that_is_no_window_is_refused(runner, tmp_path, change, words):
    res = runner.invoke(cli, ["inspect", _edited_window(tmp_path, change)])
    assert res.exit_code == 2, res.output
    assert words in res.stderr, res.stderr


def test_a_sequence_too_short_for_the_window_throws_in_tfjs(tmp_path):
    """x[:, 2:6] of two steps keeps none: the class throws, naming the layer, rather than return an empty tensor."""
    require_tfjs()
    from rnnconvert.errors import InputError
    model = rnnconvert.read(str(FIXTURES / "torch_window" / "rnn_steps_2_6" / "model.onnx"))
    rnnconvert.write(model, str(tmp_path / "m.json"))
    with pytest.raises(InputError, match=r"Error: layer 'window': the time window keeps steps 2:6 of 2 time steps: "
                                         r"none"):
        runtime.run_many([(tmp_path / "m.json", np.zeros((2, 2, model.input.features), np.float32))])
