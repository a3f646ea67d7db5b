"""A time window after a recurrent layer (model.TimeWindow): torch.onnx's `out[:, -5:]`, `out[:, 3]`, `out[:, -2]`,
`out[:, 2:6]`, time-major `out[-5:]` (fixtures/torch_window) and tf2onnx's Cropping1D (fixtures/tf2onnx_window,
with the TF-Keras source .h5) read as a recurrent layer returning its sequence and a TimeWindow, predict the
framework's outputs, and convert to ONNX (one native node per layer, one Slice / Gather), PyTorch and Keras, each
run by its own runtime against the framework's stored predictions; what a writer cannot express is refused
naming the layer, with exit code 2."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from collections import Counter

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import rnnconvert
from conftest import FIXTURES
from rnnconvert.cli import cli
from rnnconvert.errors import InputError, UnsupportedError
from rnnconvert.model import TimeWindow

ort = pytest.importorskip("onnxruntime")
TOL = 1e-4
# case -> ((start, stop, single), source op, Keras refusal for any length or None when Keras writes it)
CASES = {
    "torch_window/lstm_last5_dense": ((-5, None, False), "Slice", "the window x[:, -5:] needs a fixed number of time steps"),
    "torch_window/gru_bi_step3_dense": ((3, None, True), "Gather", "non-zero initial state"),
    "torch_window/lstm_step_minus2": ((-2, None, True), "Gather", "one step x[:, -2] needs a fixed number of time steps"),
    "torch_window/rnn_steps_2_6": ((2, 6, False), "Slice", "the window x[:, 2:6] needs a fixed number of time steps"),
    "torch_window/lstm_time_major_last5": ((-5, None, False), "Slice", "the window x[:, -5:] needs a fixed number"),
    "tf2onnx_window/lstm_crop_2_1_gru_dense": ((2, -1, False), "Slice", None),
    "tf2onnx_window/bigru_crop_3_0_seq": ((3, None, False), "Slice", None),
}


FAST = ("torch_window/lstm_last5_dense", "torch_window/gru_bi_step3_dense", "tf2onnx_window/lstm_crop_2_1_gru_dense")
WRITTEN = [c if c in FAST else pytest.param(c, marks=pytest.mark.slow) for c in CASES]   # all run after the README tier


def _data(case, name="model.onnx"):
    d = FIXTURES / case
    return d / name, dict(np.load(d / "inputs.npz")), dict(np.load(d / "outputs.npz"))


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _window(model) -> TimeWindow:
    (w,) = [layer for layer in model.layers if isinstance(layer, TimeWindow)]
    return w


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _run_torch(model, path, x):
    import torch
    from rnnconvert.formats.torch import write_module
    code = path.with_suffix(".module.py")
    write_module(model, code, weights=path.name)
    spec = importlib.util.spec_from_file_location(f"window_{abs(hash(str(code)))}", code)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Model()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("case", list(CASES))
def test_window_fixture_reads_and_predicts(case):
    path, xs, ys = _data(case)
    assert _ops(path)[CASES[case][1]] >= 1 and not _ops(path)["Loop"]
    model = rnnconvert.read(str(path))
    w = _window(model)
    assert (w.start, w.stop, w.single) == CASES[case][0]
    assert all(r.output == "sequence" for r in model.recurrent_layers[:1])   # the window cuts the whole sequence
    for k, x in xs.items():
        np.testing.assert_allclose(rnnconvert.predict(model, x), ys[k], atol=TOL, rtol=TOL, err_msg=k)


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("tf2onnx_window")])
def test_keras_cropping1d_reads_as_the_same_window(case):
    """The TF-Keras source the tf2onnx graph was made from: Cropping1D((left, right)) -> x[:, left:-right]."""
    path, xs, ys = _data(case, "source_model.h5")
    model = rnnconvert.read(str(path))
    w = _window(model)
    assert (w.start, w.stop, w.single) == CASES[case][0]
    for k, x in xs.items():
        np.testing.assert_allclose(rnnconvert.predict(model, x), ys[k], atol=TOL, rtol=TOL, err_msg=k)


@pytest.mark.parametrize("case", WRITTEN)
def test_window_converts_to_onnx_and_pytorch(case, tmp_path):
    path, xs, ys = _data(case)
    model = rnnconvert.read(str(path))
    dst = tmp_path / "m.onnx"
    rnnconvert.write(model, str(dst))
    ops = _ops(dst)
    assert sum(ops[k] for k in ("LSTM", "GRU", "RNN")) == len(model.recurrent_layers) and not ops["Loop"] \
        and not ops["Scan"], ops
    window_ops = [n.op_type for n in onnx.load(str(dst)).graph.node if n.name.startswith(_window(model).name + "/")
                  and n.op_type in ("Slice", "Gather")]
    assert window_ops == ["Gather" if _window(model).single else "Slice"]
    for k, x in xs.items():
        np.testing.assert_allclose(_ort(dst, x), ys[k], atol=TOL, rtol=TOL, err_msg=k)
    again = rnnconvert.read(str(dst))
    assert (_window(again).start, _window(again).stop, _window(again).single) == CASES[case][0]
    pytest.importorskip("torch")
    rnnconvert.write(model, str(tmp_path / "m.pt"))
    for k, x in xs.items():
        np.testing.assert_allclose(_run_torch(model, tmp_path / "m.pt", x), ys[k], atol=TOL, rtol=TOL, err_msg=k)
    back = rnnconvert.read(str(tmp_path / "m.pt"))
    assert (_window(back).start, _window(back).stop, _window(back).single) == CASES[case][0]


@pytest.mark.parametrize("case", WRITTEN)
def test_window_to_keras_runs_or_is_refused(case, tmp_path):
    """Keras holds a window as Cropping1D: from any length when it starts at a step >= 0 and ends at or before the
    end; counted from the end, or one step, only with a fixed length (then Cropping1D + Flatten for one step)."""
    keras = pytest.importorskip("keras")
    path, xs, ys = _data(case)
    model = rnnconvert.read(str(path))
    refusal = CASES[case][2]
    if refusal:
        with pytest.raises(UnsupportedError, match=re.escape(refusal)) as exc:
            rnnconvert.write(model, str(tmp_path / "m.keras"))
        assert f"layer '{model.layers[0].name if 'initial' in refusal else _window(model).name}'" in str(exc.value)
        if "initial" in refusal:
            return
        key = "t7"                                          # with the length fixed, Keras takes it
        model.input.time_steps = xs[key].shape[0 if model.input.layout == "time_batch_feature" else 1]
        xs, ys = {key: xs[key]}, {key: ys[key]}
    rnnconvert.write(model, str(tmp_path / "m.keras"))
    km = keras.models.load_model(tmp_path / "m.keras", compile=False)
    classes = [layer.__class__.__name__ for layer in km.layers]
    assert "Cropping1D" in classes and "Lambda" not in classes
    time_major = model.input.layout == "time_batch_feature"      # the Keras model takes [batch, time, features]
    for k, x in xs.items():
        y = np.asarray(km.predict(x.transpose(1, 0, 2) if time_major else x, verbose=0))
        y = y.transpose(1, 0, 2) if time_major and y.ndim == 3 else y
        np.testing.assert_allclose(y, ys[k], atol=TOL, rtol=TOL, err_msg=k)


def test_one_step_of_a_fixed_length_goes_to_keras_as_cropping_and_flatten(tmp_path):
    keras = pytest.importorskip("keras")
    path, xs, ys = _data("torch_window/lstm_step_minus2")
    model = rnnconvert.read(str(path))
    model.input.time_steps = 7
    rnnconvert.write(model, str(tmp_path / "m.keras"))
    km = keras.models.load_model(tmp_path / "m.keras", compile=False)
    assert [layer.__class__.__name__ for layer in km.layers] == ["LSTM", "Cropping1D", "Flatten"]
    assert km.layers[1].get_config()["cropping"] in ((5, 1), [5, 1])          # step -2 of 7 is step 5
    np.testing.assert_allclose(np.asarray(km.predict(xs["t7"], verbose=0)), ys["t7"], atol=TOL, rtol=TOL)


def test_writers_without_a_window_refuse_naming_the_layer(tmp_path):
    src = FIXTURES / "torch_window" / "lstm_last5_dense" / "model.onnx"
    runner = CliRunner()
    for dst, words in (("m.mat", "cannot write MATLAB layers: layers[1] 'window': a time window keeps some steps of "
                                 "a sequence; MATLAB has no built-in layer that does (only a functionLayer, which is "
                                 "code); write ONNX, PyTorch or Keras instead"),):
        result = runner.invoke(cli, ["convert", str(src), str(tmp_path / dst)])
        assert result.exit_code == 2, result.output
        assert words in result.output
        assert not (tmp_path / dst).exists()


def test_stateful_onnx_refuses_a_window(tmp_path):
    src = FIXTURES / "torch_window" / "lstm_last5_dense" / "model.onnx"
    result = CliRunner().invoke(cli, ["convert", str(src), str(tmp_path / "s.onnx"), "--stateful"])
    assert result.exit_code == 2
    assert "--stateful streams one step at a time, but layer 'window' (time_window) combines several time steps" \
        in result.output


def test_a_sequence_too_short_for_the_window_is_an_input_error(tmp_path):
    src = FIXTURES / "torch_window" / "gru_bi_step3_dense" / "model.onnx"
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 3, 3), np.float32))          # step 3 of 3 steps
    proc = subprocess.run([sys.executable, "-m", "rnnconvert", "predict", str(src), "--inputs", str(x),
                           "--output", str(tmp_path / "y.npy")],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "x.npy: --inputs has 3 time steps; this model's convolution, pooling or time windows need at least 4\n" \
        in proc.stderr
    model = rnnconvert.read(str(src))
    with pytest.raises(InputError, match="keeps step 3 of a sequence of 3 steps"):
        rnnconvert.predict(model, np.zeros((2, 3, 3), np.float32))
    np.testing.assert_equal(rnnconvert.predict(model, np.ones((1, 4, 3), np.float32)).shape, (1, 2))


def test_slice_with_a_step_and_a_window_on_a_fixed_length_keeping_nothing_are_refused(tmp_path):
    """ONNX Slice steps other than 1 have no canonical form; a window the graph's fixed length leaves empty is
    refused when read (not at the first prediction)."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    H, F = 3, 2
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.5).astype(np.float32), n)
             for n, s in (("W", (1, 4 * H, F)), ("R", (1, 4 * H, H)), ("B", (1, 8 * H)))]
    c = lambda n, v: numpy_helper.from_array(np.asarray(v, np.int64), n)  # noqa: E731

    def graph(T, starts, ends, steps):
        nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0, 2], name="t"),
                 helper.make_node("LSTM", ["xt", "W", "R", "B"], ["Y"], hidden_size=H, name="lstm"),
                 helper.make_node("Squeeze", ["Y", "a1"], ["ys"], name="sq"),
                 helper.make_node("Slice", ["ys", "s", "e", "a0", "st"], ["yc"], name="cut"),
                 helper.make_node("Transpose", ["yc"], ["y"], perm=[1, 0, 2], name="back")]
        g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", T, F])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits + [c("a1", [1]), c("s", [starts]), c("e", [ends]), c("a0", [0]), c("st", [steps])])
        path = tmp_path / f"m{T}_{starts}_{ends}_{steps}.onnx"
        path.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())
        return path
    with pytest.raises(UnsupportedError, match=r"Slice node 'cut': it keeps steps 0:9:3 of the time axis; the canonical "
                                               r"model keeps steps in order \(a step of 1\)"):
        rnnconvert.read(str(graph("T", 0, 9, 3)))
    with pytest.raises(UnsupportedError, match=r"Slice node 'cut': it keeps steps 6: of the 5 time steps the graph fixes: none"):
        rnnconvert.read(str(graph(5, 6, 2**63 - 1, 1)))
    path = graph(5, 1, -1, 1)                         # x[1:-1] of a fixed 5 steps: read, and run as onnxruntime runs it
    model = rnnconvert.read(str(path))
    assert (_window(model).start, _window(model).stop) == (1, -1)
    x = rng.standard_normal((2, 5, F)).astype(np.float32) * 3
    np.testing.assert_allclose(rnnconvert.predict(model, x), _ort(path, x), atol=1e-5, rtol=0)


WINDOWS = [(-5, None, False), (-9, None, False), (0, 1, False), (2, -1, False), (-3, -1, False), (1, 100, False),
           (-100, 2, False), (3, None, True), (-1, None, True), (-7, None, True), (0, None, True)]


def test_window_bounds_mean_what_onnxruntime_slice_and_gather_compute(tmp_path):
    """Python's (and ONNX's) indexing: negative from the end, bounds past an end clamped; on sequences of 7 and 9
    steps, every window the reference pass computes equals onnxruntime's Slice / Gather of the same LSTM output."""
    from rnnconvert.model import SIGMOID, TANH, DirectionWeights, InputSpec, Model, Recurrent
    rng = np.random.default_rng(3)
    f = lambda *s: (rng.standard_normal(s) * 0.6).astype(np.float32)  # noqa: E731
    lstm = Recurrent("lstm", "lstm", 3, "forward", [DirectionWeights(f(12, 2), f(12, 3), f(12), f(12), h0=f(3))],
                     [SIGMOID, TANH, TANH])
    xs = [rng.standard_normal((3, T, 2)).astype(np.float32) * s for T, s in ((7, 1.0), (9, 5.0))]
    for k, (start, stop, single) in enumerate(WINDOWS):
        model = Model([lstm, TimeWindow("cut", start, stop, single)], InputSpec("x", 2)).validate()
        path = tmp_path / f"w{k}.onnx"
        rnnconvert.write(model, str(path))
        for x in xs:
            ours = rnnconvert.predict(model, x)
            want = _ort(path, x)
            assert ours.shape == want.shape, (start, stop, single, ours.shape, want.shape)
            np.testing.assert_allclose(ours, want, atol=1e-5, rtol=0, err_msg=str((start, stop, single)))


def test_rnnc_round_trip_and_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    import zipfile
    from conftest import ROOT
    schema = json.loads((ROOT / "schemas" / "model.schema.json").read_text())
    for case in CASES:
        model = rnnconvert.read(str(FIXTURES / case / "model.onnx"))
        rnnconvert.write(model, str(tmp_path / f"{case.replace('/', '_')}.rnnc"))
        back = rnnconvert.read(str(tmp_path / f"{case.replace('/', '_')}.rnnc"))
        assert (_window(back).start, _window(back).stop, _window(back).single) == CASES[case][0]
        with zipfile.ZipFile(tmp_path / f"{case.replace('/', '_')}.rnnc") as z:
            manifest = json.loads(z.read("model.json"))
        jsonschema.validate(manifest, schema)
        entry = next(e for e in manifest["layers"] if e["kind"] == "time_window")
        del entry["single"]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(manifest, schema)


def test_invalid_windows_are_listed_by_validate():
    from rnnconvert.model import SIGMOID, TANH, DirectionWeights, InputSpec, Model, Recurrent
    z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    lstm = Recurrent("lstm", "lstm", 2, "forward", [DirectionWeights(z(8, 2), z(8, 2), z(8), z(8))], [SIGMOID, TANH, TANH])
    model = Model([lstm, TimeWindow("one", -1, None, True), TimeWindow("again", 0, 2), TimeWindow("bad", 1, 3, True),
                   TimeWindow("text", "2")], InputSpec("x", 2))
    with pytest.raises(InputError) as exc:
        model.validate()
    assert str(exc.value) == ("invalid model: layers[2] 'again': a time window needs a sequence; layers[3] 'bad': a "
                              "time window needs a sequence; layers[3] 'bad': a single step (single true) takes no "
                              "stop; layers[4] 'text': a time window needs a sequence; layers[4] 'text': start 2, "
                              "expected an integer step index")


@pytest.mark.parametrize("bad,words", [({"start": 2.5}, "start 2.5, expected an integer step index"),
                                       ({"stop": "6"}, "stop 6, expected an integer step index"),
                                       ({"single": 1}, "single 1, expected true or false")])
def test_window_settings_from_file_metadata_are_checked_not_coerced(bad, words, tmp_path):
    """A .pt's rnnconvert metadata step is a stranger's JSON: a window bound that is not an integer is refused (exit
    2), never truncated to one."""
    torch = pytest.importorskip("torch")
    model = rnnconvert.read(str(FIXTURES / "torch_window" / "rnn_steps_2_6" / "model.onnx"))
    rnnconvert.write(model, str(tmp_path / "m.pt"))
    sd = torch.load(tmp_path / "m.pt", weights_only=True)
    meta = json.loads(sd._metadata["__rnnconvert__"]["json"])
    next(s for s in meta["steps"] if s["kind"] == "time_window").update(bad)
    sd._metadata["__rnnconvert__"]["json"] = json.dumps(meta)
    torch.save(sd, tmp_path / "bad.pt")
    result = CliRunner().invoke(cli, ["convert", str(tmp_path / "bad.pt"), str(tmp_path / "out.rnnc")])
    assert result.exit_code == 2, result.output
    assert f"layers[1] 'window': {words}" in result.output


def test_last_and_first_step_of_a_recurrent_node_stay_its_output_modes(tmp_path):
    """out[:, -1] (Gather -1) and Y_h read as before: the layer's last_step / final_state output, no TimeWindow."""
    import torch
    torch.manual_seed(0)

    class Last(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(3, 4, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0][:, -1]
    net = Last().eval()
    x = torch.randn(2, 6, 3)
    torch.onnx.export(net, (x,), str(tmp_path / "last.onnx"), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b", 1: "t"}, "y": {0: "b"}}, opset_version=14, dynamo=False)
    model = rnnconvert.read(str(tmp_path / "last.onnx"))
    assert [layer.kind for layer in model.layers] == ["lstm"] and model.layers[0].output == "last_step"
    with torch.no_grad():
        np.testing.assert_allclose(rnnconvert.predict(model, x.numpy()), net(x).numpy(), atol=TOL, rtol=TOL)


def test_keras_lambda_window_stays_refused(tmp_path):
    """A Lambda is code: a Keras model cutting steps with one is refused, naming the layer (Cropping1D is the
    layer that reads)."""
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, return_sequences=True),
                              keras.layers.Lambda(lambda t: t[:, -2:], name="cut")])
    model.save(tmp_path / "m.keras")
    result = CliRunner().invoke(cli, ["convert", str(tmp_path / "m.keras"), str(tmp_path / "m.onnx")])
    assert result.exit_code == 2, result.output
    assert "layer 'cut'" in result.output and "unsupported layer class Lambda" in result.output
    assert not (tmp_path / "m.onnx").exists()
