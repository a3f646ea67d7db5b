"""Keras files as people saved them: `stateful=True` layers and `.keras` zips written on Windows.

Oracle: Keras 3 itself, live in the test (KERAS_BACKEND=torch): the stateful model's first prediction after
`reset_states()`, and the prediction of the original `.keras` file before its weight groups were renamed
the way tf.keras 2.x on Windows names them.  Messages are checked word for word through the CLI.
"""
from __future__ import annotations

import io
import zipfile

import h5py
import numpy as np
import pytest

from rnnconvert import api
from rnnconvert.cli.commands import cli
from rnnconvert.errors import UnsupportedError

keras = pytest.importorskip("keras")
ort = pytest.importorskip("onnxruntime")

BATCH, T, F = 4, 9, 3


def _x(batch=BATCH, steps=T, seed=0):
    x = np.random.default_rng(seed).standard_normal((batch, steps, F)).astype(np.float32)
    x[0] *= 6.0                                   # saturating gates
    return x


@pytest.fixture(scope="module")
def stateful_files(tmp_path_factory):
    """A Keras 3 model whose recurrent layers are stateful, with a fixed batch of 4, saved both ways."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input(batch_shape=(BATCH, T, F)),
                              keras.layers.LSTM(6, stateful=True, return_sequences=True, name="lstm"),
                              keras.layers.GRU(5, stateful=True, name="gru"),
                              keras.layers.Dense(2, name="dense")])
    folder = tmp_path_factory.mktemp("stateful")
    paths = [folder / "model.keras", folder / "model.h5"]
    for p in paths:
        model.save(p)
    x = _x()
    for layer in model.layers:
        if hasattr(layer, "reset_states"):
            layer.reset_states()
    first = np.asarray(model.predict(x, verbose=0))
    second = np.asarray(model.predict(x, verbose=0))      # the state carried: a different answer
    assert np.abs(first - second).max() > 1e-3
    return paths, x, first


def test_stateful_read_as_first_call_after_reset(stateful_files):
    paths, x, first = stateful_files
    for path in paths:
        model = api.read(path)
        assert np.abs(api.predict(model, x) - first).max() < 1e-5, path.name
        assert model.source["assumptions"] == [
            "stateful layers 'lstm', 'gru' read as a freshly reset model: predictions are those of the first call "
            "after reset_states() (zero initial states), with no state carried from one call to the next; the "
            f"source fixes the batch size at {BATCH} (batch_input_shape), the converted model takes any batch size"]


def test_stateful_refused_under_strict_naming_the_assumption(stateful_files, runner, tmp_path):
    path = stateful_files[0][1]
    res = runner.invoke(cli, ["convert", str(path), str(tmp_path / "model.onnx"), "--strict"])
    assert res.exit_code == 2
    assert res.stderr == (f"rnnconvert: error: {path}: --strict: read under 1 assumption the file does not settle: "
                          "default: stateful layers 'lstm', 'gru' start from zero states (settle it: save the model "
                          "with stateful=False (the file does not hold the states carried between calls))\n")
    assert not (tmp_path / "model.onnx").exists()


def test_stateful_refused_when_not_allowed(stateful_files):
    path = stateful_files[0][0]
    with pytest.raises(UnsupportedError) as err:
        api.read(path, allow_stateful=False)
    assert str(err.value).startswith(f"{path}: 2 problems: layer 'lstm': stateful=True: Keras carries the state")


def test_stateful_converts_with_the_assumption_printed(stateful_files, runner, tmp_path):
    paths, x, first = stateful_files
    dst = tmp_path / "model.onnx"
    res = runner.invoke(cli, [str(paths[1]), str(dst), "--inputs", str(_save(tmp_path, x))])
    assert res.exit_code == 0, res.output + res.stderr
    assert "note: stateful layers 'lstm', 'gru' read as a freshly reset model" in res.output
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert np.abs(sess.run(None, {sess.get_inputs()[0].name: x})[0] - first).max() < 1e-5
    res = runner.invoke(cli, ["predict", str(paths[0]), "--inputs", str(tmp_path / "x.npy"),
                              "--output", str(tmp_path / "y.npy")])
    assert res.exit_code == 0 and "rnnconvert: assumed: stateful layers 'lstm', 'gru'" in res.stderr
    assert np.abs(np.load(tmp_path / "y.npy") - first).max() < 1e-5


def _save(folder, x):
    np.save(folder / "x.npy", x)
    return folder / "x.npy"


# ---------------------------------------------------------------------------------------------
# .keras zips whose weights file names groups with Windows path separators, or holds no layer weights

@pytest.fixture(scope="module")
def keras_zip(tmp_path_factory):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((None, F)), keras.layers.LSTM(6, return_sequences=True, name="lstm"),
                              keras.layers.GRU(5, name="gru"),
                              keras.layers.Dense(2, activation="softmax", name="dense")])
    path = tmp_path_factory.mktemp("zip") / "model.keras"
    model.save(path)
    x = _x(3, 11)
    return path, x, np.asarray(keras.models.load_model(path, compile=False).predict(x, verbose=0))


def _rewrite(src, dst, rename):
    """Copy a .keras zip, rebuilding model.weights.h5 with every dataset renamed (None drops it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "model.weights.h5":
                buf = io.BytesIO()
                with h5py.File(io.BytesIO(data), "r") as fin, h5py.File(buf, "w") as fout:
                    found = []
                    fin.visititems(lambda n, o: found.append((n, o[()])) if isinstance(o, h5py.Dataset) else None)
                    for n, a in found:
                        new = rename(n)
                        if new is not None:
                            fout.create_dataset(new, data=a)
                    fout.create_group("vars")
                data = buf.getvalue()
            zout.writestr(name, data)
    return dst


def _windows(name):
    """`layers/lstm/cell/vars/0` as tf.keras 2.x wrote it on Windows: `layers\\lstm\\cell/vars/0`."""
    head, _, tail = name.rpartition("/vars/")
    return head.replace("/", "\\") + "/vars/" + tail


def test_windows_group_names_refused_by_default(keras_zip, runner, tmp_path):
    path = _rewrite(keras_zip[0], tmp_path / "win.keras", _windows)
    with pytest.raises(ValueError):               # Keras itself cannot load it: that is why it is refused
        keras.models.load_model(path, compile=False).predict(keras_zip[1], verbose=0)
    for command in (["inspect", str(path)], [str(path), str(tmp_path / "out.onnx")]):
        res = runner.invoke(cli, command)
        assert res.exit_code == 2
        assert res.stderr == (f"rnnconvert: error: {path}: model.weights.h5 has no weights under the names Keras "
                              "reads (layers/lstm/cell/vars); it has them under Windows path separators "
                              "(layers\\lstm\\cell/vars), which Keras cannot load; pass --accept-windows-paths to "
                              "read them\n")
    assert not (tmp_path / "out.onnx").exists()


def test_windows_group_names_read_with_option(keras_zip, runner, tmp_path):
    src, x, expected = keras_zip
    path = _rewrite(src, tmp_path / "win.keras", _windows)
    np.save(tmp_path / "x.npy", x)
    res = runner.invoke(cli, ["predict", str(path), "--accept-windows-paths", "--inputs", str(tmp_path / "x.npy"),
                              "--output", str(tmp_path / "y.npy")])
    assert res.exit_code == 0, res.output + res.stderr
    assert np.abs(np.load(tmp_path / "y.npy") - expected).max() < 1e-5
    dst = tmp_path / "out.onnx"
    res = runner.invoke(cli, [str(path), str(dst), "--accept-windows-paths"])
    assert res.exit_code == 0, res.output + res.stderr
    assert ("note: model.weights.h5 names its groups with Windows path separators (layers\\lstm\\cell), which "
            "Keras cannot load; read as layers/lstm/cell (--accept-windows-paths)") in res.output
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert np.abs(sess.run(None, {sess.get_inputs()[0].name: x})[0] - expected).max() < 1e-5


def test_weights_file_without_layer_weights_refused(keras_zip, runner, tmp_path):
    path = _rewrite(keras_zip[0], tmp_path / "empty.keras",
                    lambda n: None if n.startswith("layers/") else n)
    res = runner.invoke(cli, [str(path), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert res.stderr == (f"rnnconvert: error: {path}: model.weights.h5 holds no layer weights (no arrays under "
                          "layers/; it holds vars): the weights of layers 'lstm', 'gru', 'dense' are "
                          "missing; re-save the trained model with model.save('model.keras')\n")
