"""The Keras reader (`rnnconvert.formats.keras`): numbers, structure, file layouts and every refusal.

Oracles: the frameworks' own predictions stored with the fixtures (tf.keras 2.x and Keras 3), Keras 3
itself for the variants built here in tmp_path, and the `y.npy` of the real-world files in
../shared/wild (used only when present).  Bad files are made from fixtures in tmp_path.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import zipfile

import h5py
import numpy as np
import pytest
from conftest import FIXTURES, WILD, keras_cases

from rnnconvert import model as M
from rnnconvert.errors import InputError, UnsupportedError
from rnnconvert.formats import keras as K

reference = pytest.importorskip("rnnconvert.reference.network")

TOL = 1e-4
LSTM_H5 = FIXTURES / "tfkeras2" / "lstm_last_softmax" / "model.h5"       # Input(None, 4) -> LSTM(5) 'lstm' -> Dense(3)
LSTM_ZIP = FIXTURES / "keras3" / "lstm_last_softmax" / "model.keras"
BILSTM_H5 = FIXTURES / "tfkeras2" / "bilstm_concat_last" / "model.h5"   # Bidirectional(LSTM(4)) 'bidirectional'


def max_err(model, case_or_pairs) -> float:
    pairs = case_or_pairs.io() if hasattr(case_or_pairs, "io") else case_or_pairs
    return max(float(np.abs(reference.forward(model, x) - y).max()) for _, x, y in pairs)


# ---------------------------------------------------------------------------------------------
# Every fixture: the reference forward pass of what was read equals the framework's predictions

@pytest.mark.parametrize("case", keras_cases(), ids=lambda c: c.id)
def test_fixture_matches_framework(case):
    model = K.read(case.path)
    assert max_err(model, case) < TOL


@pytest.mark.parametrize("case", [c for c in keras_cases() if "input_dtype" not in c.meta], ids=lambda c: c.id)
def test_fixture_structure(case):
    """The recurrent-only fixtures (the front-end layer cases, with `input_dtype`, are in test_layers.py)."""
    model = K.read(case.path)
    tags = set(case.meta["features"])
    rec = model.recurrent_layers
    r = rec[0]
    assert model.source["format"] == "keras"
    assert model.source["container"] == {".h5": "h5", ".keras": "keras"}[case.path.suffix]
    assert model.source["keras_version"] == case.meta["framework"]["version"]
    assert model.input.features == case.meta["input_shape"][-1] and model.input.time_steps is None
    assert model.output_name == "output"
    assert r.cell == {"lstm": "lstm", "gru": "gru", "simplernn": "rnn"}[case.meta["features"][0]]
    assert len(rec) == (2 if "stacked" in tags else 1)
    assert rec[-1].output == ("sequence" if "return_sequences" in tags else "final_state")
    assert all(layer.output == "sequence" for layer in rec[:-1])
    if "bidirectional" in tags:
        merge = next(t for t in tags if t.startswith("merge_"))[len("merge_"):]
        assert (r.direction, r.merge, r.time_order) == ("bidirectional", merge, "input")
    elif "go_backwards" in tags:
        assert r.direction == "reverse"
        assert r.time_order == ("processing" if r.output == "sequence" else "input")
    else:
        assert r.direction == "forward"
    if r.cell == "gru":
        assert r.reset_after == ("reset_before" not in tags)
        assert r.has_recurrent_bias == r.reset_after
        assert np.any(r.weights[0].Rb) == r.reset_after
    else:
        assert not r.has_recurrent_bias and not np.any(r.weights[0].Rb)
    assert r.has_input_bias == ("use_bias_false" not in tags)
    assert np.any(r.weights[0].Wb) == r.has_input_bias
    if "hard_sigmoid_keras2" in tags:
        assert r.activations[0] == M.HARD_SIGMOID_KERAS2
    if "hard_sigmoid_keras3" in tags:
        assert r.activations[0] == M.HARD_SIGMOID_KERAS3
    if r.cell == "lstm" and "activation_sigmoid" not in tags:
        assert r.activations[1:] == [M.TANH, M.TANH]
    if "time_distributed" in tags:
        assert isinstance(model.layers[-1], M.Dense) and model.layers[-1].name.startswith("time_distributed")
    if "dropout" in tags:
        assert any(isinstance(layer, M.Dropout) for layer in model.layers)
    if "activation_layer" in tags:
        assert any(isinstance(layer, M.ActivationLayer) for layer in model.layers)


def test_h5_and_keras_zip_of_one_model_read_the_same():
    a, b = K.read(LSTM_ZIP), K.read(LSTM_ZIP.with_suffix(".h5"))
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    for la, lb in zip(a.layers, b.layers):
        for key, arr in la.arrays().items():
            np.testing.assert_array_equal(arr, lb.arrays()[key])


def test_sniff():
    assert K.sniff(LSTM_H5) and K.sniff(LSTM_ZIP)


def test_read_through_the_library_verb():
    import rnnconvert
    model = rnnconvert.read(LSTM_ZIP)
    assert [layer.kind for layer in model.layers] == ["lstm", "dense"]


# ---------------------------------------------------------------------------------------------
# Helpers that make variants and bad files from fixtures

def edit_h5(src, dst, config=None, weights=None):
    """Copy an .h5 model; `config(cfg)` edits the model_config, `weights(file)` the datasets."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        if config:
            cfg = json.loads(f.attrs["model_config"])
            config(cfg)
            f.attrs["model_config"] = json.dumps(cfg)
        if weights:
            weights(f)
    return dst


def edit_zip(src, dst, config=None, weights=None, drop=()):
    """Copy a .keras zip; `config(cfg)` edits config.json, `weights(src_h5, dst_h5)` rebuilds the weights."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name in drop:
                continue
            data = zin.read(name)
            if name == "config.json" and config:
                cfg = json.loads(data)
                config(cfg)
                data = json.dumps(cfg).encode()
            if name == "model.weights.h5" and weights:
                buf = io.BytesIO()
                with h5py.File(io.BytesIO(data), "r") as fin, h5py.File(buf, "w") as fout:
                    weights(fin, fout)
                data = buf.getvalue()
            zout.writestr(name, data)
    return dst


def layer_cfg(cfg, name):
    return next(layer for layer in cfg["config"]["layers"] if layer["config"].get("name") == name)


def datasets(f):
    out = {}
    f.visititems(lambda n, o: out.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
    return out


def same_numbers(a, b):
    x = np.random.default_rng(0).standard_normal((2, 6, a.input.features)).astype(np.float32)
    np.testing.assert_allclose(reference.forward(a, x), reference.forward(b, x), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# File layouts seen in real files

def test_keras_zip_with_windows_group_names(tmp_path):
    """tf.keras 2.x on Windows wrote `layers\\lstm\\cell/vars/0`; Keras on Linux cannot load that."""
    def backslashes(fin, fout):
        for name, ds in datasets(fin).items():
            head, _, tail = name.rpartition("/vars/")
            fout.create_dataset(head.replace("/", "\\") + "/vars/" + tail, data=ds[()])
    path = edit_zip(LSTM_ZIP, tmp_path / "win.keras", weights=backslashes)
    assert refused(path).startswith(f"{path}: model.weights.h5 has no weights under the names Keras reads "
                                    "(layers/lstm/cell/vars)")
    model = K.read(path, accept_windows_paths=True)
    same_numbers(model, K.read(LSTM_ZIP))
    assert "Windows path separators" in model.source["read_notes"][0]


def test_keras_zip_without_layer_names_uses_class_numbering(tmp_path):
    """Keras < 3.10 keeps no layer name in model.weights.h5: groups are lstm, lstm_1, ... by class."""
    src = FIXTURES / "keras3" / "stacked_lstm_dense" / "model.keras"

    def rename(cfg):                  # names that sort the other way round than the groups
        for layer, new in zip(cfg["config"]["layers"][1:], ("z_first", "a_second", "dense_head")):
            layer["config"]["name"] = new

    def strip_names(fin, fout):
        for name, ds in datasets(fin).items():
            fout.create_dataset(name, data=ds[()])
    path = edit_zip(src, tmp_path / "old.keras", config=rename, weights=strip_names)
    model = K.read(path)
    assert [layer.name for layer in model.layers] == ["z_first", "a_second", "dense_head"]
    same_numbers(model, K.read(src))


def test_h5_with_chunked_weight_names_and_bytes_config(tmp_path):
    """Keras splits long attributes into weight_names0, weight_names1, ...; Keras 2.0 wrote bytes."""
    def chunk(f):
        g = f["model_weights/lstm"]
        names = list(g.attrs["weight_names"])
        del g.attrs["weight_names"]
        g.attrs["weight_names0"], g.attrs["weight_names1"] = names[:2], names[2:]
        f.attrs["model_config"] = f.attrs["model_config"].encode()
    model = K.read(edit_h5(LSTM_H5, tmp_path / "chunked.h5", weights=chunk))
    same_numbers(model, K.read(LSTM_H5))


def test_cudnn_lstm_weights(tmp_path):
    """CuDNNLSTM (Keras 2, tf.keras 1.x) keeps cuDNN's layout: per gate the input kernel re-laid
    and the recurrent kernel transposed, and a bias for each of W and R.  The file is made with the
    native -> cuDNN direction of tf_keras's `_convert_rnn_weights`; the reader implements the other."""
    def to_cudnn(f):
        g = f["model_weights/lstm"]
        names = [n if isinstance(n, str) else n.decode() for n in g.attrs["weight_names"]]
        kernel, rec, bias = (g[n][()] for n in names)
        k = np.hstack([b.T.reshape(b.shape, order="C") for b in np.hsplit(kernel, 4)])
        r = np.hstack([b.T for b in np.hsplit(rec, 4)])
        for n, a in zip(names, (k, r, np.concatenate([bias * 0.25, bias * 0.75]))):
            del g[n]
            g[n] = a

    def cudnn_config(cfg):
        layer = layer_cfg(cfg, "lstm")
        layer["class_name"] = "CuDNNLSTM"
        for key in ("activation", "recurrent_activation", "use_bias"):
            layer["config"].pop(key)
    path = edit_h5(LSTM_H5, tmp_path / "cudnn.h5", config=cudnn_config, weights=to_cudnn)
    model = K.read(path)
    assert model.layers[0].has_recurrent_bias
    assert max_err(model, keras_cases_by_path(LSTM_H5)) < TOL


def keras_cases_by_path(path):
    return next(c for c in keras_cases() if c.path == path)


# ---------------------------------------------------------------------------------------------
# Variants built with Keras 3 here, checked against Keras 3's own predictions

def _variants():
    keras = pytest.importorskip("keras")
    L = keras.layers

    def seq(*layers, steps=None):
        return keras.Sequential([keras.Input(shape=(steps, 3))] + list(layers))

    def chain(*layers):
        x = inp = keras.Input(shape=(6, 3), name="features")
        for layer in layers:
            x = layer(x)
        return keras.Model(inp, x)

    def state_h():
        inp = keras.Input(shape=(None, 3))
        _, h, _ = L.LSTM(4, return_state=True)(inp)
        return keras.Model(inp, L.Dense(2)(h))

    return keras, {
        "gru_no_bias_both_resets": lambda: seq(L.GRU(4, use_bias=False, return_sequences=True),
                                               L.GRU(3, use_bias=False, reset_after=False)),
        "bi_simplernn_ave_no_bias": lambda: seq(L.Bidirectional(L.SimpleRNN(4, use_bias=False, return_sequences=True),
                                                                merge_mode="ave")),
        "bi_gru_reset_before_concat": lambda: seq(L.Bidirectional(L.GRU(4, reset_after=False, return_sequences=True))),
        "activations": lambda: seq(L.SimpleRNN(4, activation="elu", return_sequences=True),
                                   L.LSTM(4, activation="softsign", recurrent_activation="hard_sigmoid",
                                          return_sequences=True),
                                   L.GRU(3, activation="swish", return_sequences=True),
                                   L.Dense(3, activation="gelu"), L.Dense(3, activation="relu6"),
                                   L.Dense(2, activation="softplus")),
        "activation_layers": lambda: seq(L.LSTM(4, return_sequences=True), L.ReLU(), L.LeakyReLU(0.1),
                                         L.ELU(0.5), L.Dense(3), L.Softmax()),
        "dropouts_flatten": lambda: seq(L.GaussianNoise(0.1), L.SpatialDropout1D(0.1), L.LSTM(3), L.Flatten(),
                                        L.GaussianDropout(0.2), L.AlphaDropout(0.1), L.Dense(2, use_bias=False)),
        "rnn_cells": lambda: seq(L.RNN(L.LSTMCell(4), return_sequences=True),
                                 L.Bidirectional(L.RNN(L.GRUCell(3), return_sequences=True), merge_mode="mul"),
                                 L.RNN(L.SimpleRNNCell(3), go_backwards=True)),
        "dense_first_fixed_length": lambda: seq(L.Dense(5, activation="tanh"), L.LSTM(3), steps=6),
        "functional_chain": lambda: chain(L.LSTM(4, return_sequences=True), L.Dropout(0.1),
                                          L.TimeDistributed(L.Dense(3)), L.GRU(3, go_backwards=True)),
        "functional_return_state_h": state_h,
    }


VARIANTS = ["gru_no_bias_both_resets", "bi_simplernn_ave_no_bias", "bi_gru_reset_before_concat", "activations",
            "activation_layers", "dropouts_flatten", "rnn_cells", "dense_first_fixed_length", "functional_chain",
            "functional_return_state_h"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", VARIANTS)
def test_keras3_variant_matches_keras(name, tmp_path):
    keras, builders = _variants()
    keras.utils.set_random_seed(7)
    net = builders[name]()
    rng = np.random.default_rng(7)
    net.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(np.float32) for w in net.weights])
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    x[-1] *= 4
    y = np.asarray(net.predict(x, verbose=0))
    for suffix in (".keras", ".h5"):
        path = tmp_path / f"{name}{suffix}"
        net.save(str(path))
        model = K.read(path)
        assert max_err(model, [("x", x, y)]) < TOL, suffix
        if name == "dense_first_fixed_length":
            assert (model.input.features, model.input.time_steps) == (3, 6)
        if name == "functional_chain":
            assert model.input.name == "features" and model.source["model_class"] == "Functional"


# ---------------------------------------------------------------------------------------------
# Real-world files (../shared/wild), only when present

WILD_MATCH = {"k203_textgen_lstm256": "weights-improvement-19-1.9435.hdf5",
              "k204_nlpnd_gru_timedist": "simple_rnn_model.h5",
              "tf224_relu_lstm2": "lstm.h5", "tf212_dysarthria_simplernn2": "rnn_model.h5",
              "k341_keras_lstm2": "lstm_model.keras", "k231_stateful_lstm_b16": "model.h5",
              "k209_imdb_embed_lstm": "rnn_model.h5",
              "k224_embed_bigru_reset_before": "bi_gru_model.h5", "k3132_h5_embed_gru": "gru_model.h5",
              "tf214_sunspot_conv1d_lstm3": "rnn_model.h5"}
WILD_REFUSE = {
               "k1_aind2rnn_weights": ("best_RNN_large_textdata_weights.hdf5",
                                       "a weights-only Keras file (save_weights: no model_config) holding "
                                       "lstm_1 (lstm), dense_1 (dense), activation_1 (no weights); the whole "
                                       "model needs its architecture: pass --arch arch.yaml")}


def wild(case, filename):
    path = WILD / case / filename
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.mark.parametrize("case", sorted(WILD_MATCH))
def test_wild_file_matches(case):
    path = wild(case, WILD_MATCH[case])
    x, y = np.load(path.parent / "x.npy"), np.load(path.parent / "y.npy")
    assert max_err(K.read(path), [("x", x, y)]) < TOL


@pytest.mark.parametrize("case", sorted(WILD_REFUSE))
def test_wild_file_refused(case):
    filename, text = WILD_REFUSE[case]
    path = wild(case, filename)
    with pytest.raises(InputError) as err:
        K.read(path)
    assert str(err.value).startswith(f"{path}: {text}")


def test_wild_keras_zip_saved_on_windows():
    """tf215's weights sit under `layers\\lstm\\cell/vars/0`: present, though Keras cannot find them;
    refused by default, read with accept_windows_paths."""
    path = wild("tf215_keraszip_lstm_gru", "lstm_model.keras")
    assert refused(path) == (f"{path}: model.weights.h5 has no weights under the names Keras reads "
                             "(layers/lstm/cell/vars); it has them under Windows path separators "
                             "(layers\\lstm\\cell/vars), which Keras cannot load; pass --accept-windows-paths "
                             "to read them")
    model = K.read(path, accept_windows_paths=True)
    assert [layer.kind for layer in model.layers] == ["lstm", "gru", "dense", "dropout", "dense", "dense"]
    assert model.source["keras_version"] == "2.15.0" and "Windows" in model.source["read_notes"][0]


def test_wild_stateful_reads_as_freshly_reset():
    path = wild("k231_stateful_lstm_b16", "model.h5")
    model = K.read(path)
    assert model.source["assumptions"] == [
        "stateful layers 'lstm_1' read as a freshly reset model: predictions are those of the first call after "
        "reset_states() (zero initial states), with no state carried from one call to the next; the source "
        "fixes the batch size at 16 (batch_input_shape), the converted model takes any batch size"]


def test_keras1_model_file(tmp_path):
    """Keras 1 kept one W, U, b per gate (order i, c, f, o); made from the Keras 1 weights of k1
    with the architecture of its notebook, checked against the wild case's y."""
    src = wild("k1_aind2rnn_weights", "best_RNN_large_textdata_weights.hdf5")
    config = {"class_name": "Sequential", "config": [
        {"class_name": "LSTM", "config": {"name": "lstm_1", "output_dim": 200, "activation": "tanh",
                                          "inner_activation": "hard_sigmoid", "return_sequences": False,
                                          "go_backwards": False, "stateful": False, "consume_less": "cpu",
                                          "batch_input_shape": [None, 100, 33]}},
        {"class_name": "Dense", "config": {"name": "dense_1", "output_dim": 33, "activation": "linear", "bias": True}},
        {"class_name": "Activation", "config": {"name": "activation_1", "activation": "softmax"}}]}
    path = tmp_path / "keras1.h5"
    with h5py.File(src, "r") as s, h5py.File(path, "w") as d:
        d.attrs["keras_version"], d.attrs["backend"] = b"1.2.2", b"theano"
        d.attrs["model_config"] = json.dumps(config).encode()
        for lname, group in s.items():
            g = d.create_group(f"model_weights/{lname}")
            g.attrs["weight_names"] = group.attrs["weight_names"]
            for w in group.attrs["weight_names"]:
                g[w.decode()] = group[w.decode()][()]
    model = K.read(path)
    assert model.layers[0].activations[0] == M.HARD_SIGMOID_KERAS2
    x, y = np.load(src.parent / "x.npy"), np.load(src.parent / "y.npy")
    assert max_err(model, [("x", x, y)]) < TOL


# ---------------------------------------------------------------------------------------------
# Files that are not Keras models: InputError with the file's name and the reason

def refused(path, cls=InputError, **options) -> str:
    with pytest.raises(cls) as err:
        K.read(path, **options)
    assert err.value.exit_code == 2
    return str(err.value)


def test_truncated_h5(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(LSTM_H5.read_bytes()[:3000])
    msg = refused(path)
    assert msg.startswith(f"{path}: not a Keras model file (cannot open as HDF5: ")
    assert "truncated file" in msg
    assert not K.sniff(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    assert refused(path).startswith(f"{path}: not a Keras model file (cannot open as HDF5: ")
    assert not K.sniff(path)


def test_truncated_keras_zip(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(LSTM_ZIP.read_bytes()[:1500])
    assert refused(path) == (f"{path}: not a Keras model file (cannot open as a .keras zip archive: "
                             "File is not a zip file)")


def test_hdf5_that_is_not_a_keras_model(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["measurements"] = np.zeros((4, 3))
        f.attrs["units"] = "volt"
    assert refused(path) == (
        f"{path}: HDF5 file has no 'model_config' attribute; it is not a Keras model saved with model.save(). "
        "A weights-only file (save_weights) holds no architecture: build the model in Keras, call "
        "model.load_weights() on it and save it with model.save('model.keras')")
    assert not K.sniff(path)


def test_weights_only_h5(tmp_path):
    path = tmp_path / "weights.h5"
    with h5py.File(LSTM_H5, "r") as s, h5py.File(path, "w") as d:
        d.attrs["layer_names"] = [b"lstm", b"dense"]
        for name in ("lstm", "dense"):
            s.copy(s[f"model_weights/{name}"], d, name)
    assert refused(path) == (
        f"{path}: a weights-only Keras file (save_weights: no model_config) holding lstm (lstm), dense (dense); "
        "the whole model needs its architecture: pass --arch arch.yaml listing the layers in order (layers: "
        "[{name: ...}, ...]; README 'Keras weights-only files'), or convert one recurrent layer with --layer NAME")
    assert K.sniff(path)


def test_zip_without_config(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("notes.txt", "hello")
    assert refused(path) == (f"{path}: zip archive has no config.json; it is not a Keras .keras model "
                             "(it holds notes.txt)")
    assert not K.sniff(path)


def test_zip_without_weights(tmp_path):
    path = edit_zip(LSTM_ZIP, tmp_path / "model.keras", drop=("model.weights.h5",))
    assert refused(path) == f"{path}: the archive has no model.weights.h5: it holds no weights to convert"


def test_zip_with_npz_weights(tmp_path):
    path = edit_zip(LSTM_ZIP, tmp_path / "model.keras", drop=("model.weights.h5",))
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("model.weights.npz", b"")
    assert refused(path, UnsupportedError) == (
        f"{path}: the weights are stored as model.weights.npz; rnnconvert reads model.weights.h5: "
        "re-save with model.save('model.keras')")


def test_zip_with_empty_weights_file(tmp_path):
    """What tf215 in ../shared/wild looks like to a reader that ignores Windows separators."""
    path = edit_zip(LSTM_ZIP, tmp_path / "model.keras", weights=lambda fin, fout: fout.create_group("vars"))
    assert refused(path) == (f"{path}: model.weights.h5 holds no layer weights (no arrays under layers/; it holds "
                             "vars): the weights of layers 'lstm', 'dense' are missing; re-save the trained model "
                             "with model.save('model.keras')")


def test_model_config_not_json(tmp_path):
    def garble(f):
        f.attrs["model_config"] = '{"class_name": "Sequential", '
    msg = refused(edit_h5(LSTM_H5, tmp_path / "model.h5", weights=garble))
    assert msg.startswith(f"{tmp_path / 'model.h5'}: the 'model_config' attribute is not valid JSON (")


ENDS = {"input_layers": [["in", 0, 0]], "output_layers": [["out", 0, 0]]}


MALFORMED = {
    "no-layers": ({"class_name": "Sequential"}, "model config: a Sequential model without a 'layers' list"),
    "layer-config-not-a-dict": ({"class_name": "Sequential", "config": {"layers": [{"class_name": "LSTM",
                                                                                    "config": 5}]}},
                                "layer 'LSTM': the config gives units=None, expected a positive integer"),
    "units-not-a-number": ({"class_name": "Sequential", "config": {"layers": [
        {"class_name": "LSTM", "config": {"name": "lstm", "units": "five"}}]}},
        "layer 'lstm': the config gives units='five', expected a positive integer"),
    "undefined-layer": ({"class_name": "Functional", "config": {"layers": [], **ENDS}},
                        "model config: layer 'out' is referenced but not defined"),
    "bad-inbound-node": ({"class_name": "Functional", "config": {
        "layers": [{"name": "out", "class_name": "Dense", "inbound_nodes": [[7]]}], **ENDS}},
        "cannot read this Keras file: unexpected content (TypeError: "),
    "not-an-object": ([1, 2], "the 'model_config' attribute is JSON but not an object (found list)"),
    "subclassed": ({"class_name": "MyModel", "config": {}},
                   "model class 'MyModel' is not one rnnconvert reads (expected Sequential, Functional, Model); "
                   "subclassed models keep no architecture in the file"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_config(name, tmp_path):
    """Whatever the config holds, the answer is an InputError, never a KeyError or TypeError."""
    broken, text = MALFORMED[name]

    def replace(f):
        f.attrs["model_config"] = json.dumps(broken)
    path = edit_h5(LSTM_H5, tmp_path / "model.h5", weights=replace)
    assert refused(path).startswith(f"{path}: {text}")


def test_kernel_of_the_wrong_shape(tmp_path):
    def shrink(f):
        g = f["model_weights/lstm"]
        name = [n for n in datasets(g) if n.endswith("/kernel:0") and "recurrent" not in n][0]
        del g[name]
        g[name] = np.zeros((3, 20), np.float32)
    path = edit_h5(LSTM_H5, tmp_path / "model.h5", weights=shrink)
    assert refused(path) == (f"{path}: layer 'lstm': kernel shape (3, 20) does not match the config (units=5, "
                             "4 input features): expected (4, 20)")


def test_config_units_disagree_with_weights(tmp_path):
    def units(cfg):
        layer_cfg(cfg, "lstm")["config"]["units"] = 6
    path = edit_h5(LSTM_H5, tmp_path / "model.h5", config=units)
    assert refused(path) == (f"{path}: layer 'lstm': kernel shape (4, 20) does not match the config (units=6, "
                             "4 input features): expected (4, 24)")


def test_weight_listed_but_missing(tmp_path):
    def drop(f):
        g = f["model_weights/dense"]
        del g[[n for n in datasets(g) if n.endswith("bias:0")][0]]
    path = edit_h5(LSTM_H5, tmp_path / "model.h5", weights=drop)
    assert refused(path) == (f"{path}: layer 'dense': weight 'dense/bias:0' is listed in weight_names but missing "
                             "from model_weights/dense; the file is damaged")


# ---------------------------------------------------------------------------------------------
# Valid models using what rnnconvert cannot express: UnsupportedError naming the layer and feature

def insert_layer(class_name, config, index=1):
    def edit(cfg):
        cfg["config"]["layers"].insert(index, {"class_name": class_name, "config": config})
    return edit


def set_option(layer, key, value, class_name=None):
    def edit(cfg):
        entry = layer_cfg(cfg, layer)
        target = entry["config"]["layer"]["config"] if entry["class_name"] == "Bidirectional" and key != "merge_mode" \
            else entry["config"]
        target[key] = value
        if class_name:
            entry["class_name"] = class_name
    return edit


SUPPORTED = ("InputLayer, LSTM, GRU, SimpleRNN, CuDNNLSTM, CuDNNGRU, RNN, Bidirectional, Dense, "
             "TimeDistributed(Dense), Dropout, SpatialDropout1D, GaussianDropout, GaussianNoise, AlphaDropout, "
             "Activation, ReLU, LeakyReLU, ELU, Softmax, Embedding, Masking, Conv1D, Convolution1D, MaxPooling1D, "
             "AveragePooling1D, GlobalMaxPooling1D, GlobalAveragePooling1D, Flatten, BatchNormalization, "
             "ZeroPadding1D (before a valid Conv1D)")

UNSUPPORTED = {
    "conv2d": (LSTM_H5, insert_layer("Conv2D", {"name": "conv", "filters": 4, "kernel_size": [3, 3]}),
               f"layer 'conv': unsupported layer class Conv2D; supported: {SUPPORTED}"),
    "conv1d_channels_first": (LSTM_H5, insert_layer("Conv1D", {"name": "conv", "filters": 4, "kernel_size": [3],
                                                                "data_format": "channels_first"}),
                              "layer 'conv': data_format='channels_first': rnnconvert reads [batch, time, features] "
                              "(channels_last) sequences; re-save the model with data_format='channels_last'"),
    "embedding_not_first": (LSTM_H5, insert_layer("Embedding", {"name": "embed", "input_dim": 10, "output_dim": 4},
                                                  index=2),
                            "layer 'embed': an Embedding after other layers; rnnconvert reads an Embedding only "
                            "as the first layer (it takes the token ids)"),
    "flatten_variable_length": (LSTM_H5, insert_layer("Flatten", {"name": "flat"}),
                                "layer 'flat': Flatten over the time axis needs a fixed number of time steps, and "
                                "the model's input has none; rebuild the model with a fixed input length "
                                "(Input(shape=(steps, features)))"),
    "batch_norm_time_axis": (LSTM_H5, insert_layer("BatchNormalization", {"name": "bn", "axis": 1}),
                             "layer 'bn': axis=1: rnnconvert reads batch normalization over the last (feature) "
                             "axis only"),
    "global_pool_keepdims": (LSTM_H5, insert_layer("GlobalAveragePooling1D", {"name": "gap", "keepdims": True}),
                             "layer 'gap': keepdims=True (the output keeps a time axis of 1); re-save with "
                             "keepdims=False"),
    "nested": (LSTM_H5, insert_layer("Sequential", {"name": "inner", "layers": []}),
               "layer 'inner': nested model (class Sequential); rnnconvert reads one flat chain of layers: rebuild "
               "the model without nesting"),
    "time_major": (LSTM_H5, set_option("lstm", "time_major", True),
                   "layer 'lstm': time_major=True (the layer reads [time, batch, features]); re-save the model "
                   "with time_major=False"),
    "return_state": (LSTM_H5, set_option("lstm", "return_state", True),
                     "layer 'lstm': return_state=True in a Sequential model: the model returns the states as "
                     "extra outputs"),
    "merge_none": (BILSTM_H5, set_option("bidirectional", "merge_mode", None),
                   "layer 'bidirectional': merge_mode=None: the two directions are returned as separate outputs"),
    "inner_go_backwards": (BILSTM_H5, set_option("bidirectional", "go_backwards", True),
                           "layer 'bidirectional': Bidirectional around a layer with go_backwards=True"),
    "activation_mish": (LSTM_H5, set_option("lstm", "activation", "mish"),
                        "layer 'lstm': activation 'mish' is not supported; supported: elu, exponential, gelu, "
                        "hard_sigmoid, leaky_relu, linear, log_softmax, relu, relu6, selu, sigmoid, silu, softmax, "
                        "softplus, softsign, swish, tanh"),
    "activation_hard_silu_keras3_dict": (
        LSTM_H5, set_option("dense", "activation", {"module": "keras.activations", "class_name": "function",
                                                     "config": "hard_silu", "registered_name": "function"}),
        "layer 'dense': activation 'hard_silu' is not supported"),
    "rnn_of_stacked_cells": (LSTM_H5, set_option("lstm", "cell", {"class_name": "StackedRNNCells", "config": {}},
                                                 class_name="RNN"),
                             "layer 'lstm': RNN wrapper around cell 'StackedRNNCells'; supported cells: LSTMCell, "
                             "GRUCell, SimpleRNNCell"),
    "no_recurrent_layer": (LSTM_H5, lambda cfg: cfg["config"]["layers"].pop(1),
                           "the model has no LSTM, GRU or SimpleRNN layer; nothing to convert"),
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported(name, tmp_path):
    src, edit, text = UNSUPPORTED[name]
    path = edit_h5(src, tmp_path / "model.h5", config=edit)
    if name == "no_recurrent_layer":       # the Dense head keeps its weights and now reads the input directly
        def first_dense(f):
            del f["model_weights/lstm"]
            g = f["model_weights/dense"]
            name = [n for n in datasets(g) if n.endswith("kernel:0")][0]
            del g[name]
            g[name] = np.zeros((4, 3), np.float32)
        path = edit_h5(src, tmp_path / "model.h5", config=edit, weights=first_dense)
    assert refused(path, UnsupportedError).startswith(f"{path}: {text}")


def test_stateful_read_by_default_refused_by_option(tmp_path):
    path = edit_h5(LSTM_H5, tmp_path / "model.h5", config=set_option("lstm", "stateful", True))
    same_numbers(K.read(path), K.read(LSTM_H5))
    with pytest.raises(UnsupportedError) as err:
        K.read(path, allow_stateful=False)
    assert str(err.value) == (f"{path}: layer 'lstm': stateful=True: Keras carries the state from one batch to the "
                              "next, which the converted model would not do; to convert it as a layer that starts "
                              "every sequence from zero states, read with allow_stateful=True")


def test_all_problems_reported_at_once(tmp_path):
    def two(cfg):
        insert_layer("LayerNormalization", {"name": "norm"})(cfg)
        set_option("dense", "activation", "mish")(cfg)
    path = edit_h5(LSTM_H5, tmp_path / "model.h5", config=two)
    msg = refused(path, UnsupportedError)
    assert msg.startswith(f"{path}: 2 problems: layer 'norm': unsupported layer class LayerNormalization; ")
    assert "; layer 'dense': activation 'mish' is not supported" in msg


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_functional_branches_and_outputs(tmp_path):
    keras, _ = _variants()
    L = keras.layers
    inp = keras.Input(shape=(None, 3))
    branch = keras.Model(inp, L.Add()([L.LSTM(4, name="a")(inp), L.GRU(4, name="b")(inp)]))
    path = tmp_path / "branch.keras"
    branch.save(str(path))
    assert refused(path, UnsupportedError) == (f"{path}: layer 'add': layer has 2 inputs (a, b); rnnconvert reads "
                                               "one chain of layers from one input to one output")
    inp = keras.Input(shape=(None, 3))
    two = keras.Model(inp, [L.LSTM(4)(inp), L.GRU(2)(inp)])
    two.save(str(path))
    assert refused(path, UnsupportedError) == (f"{path}: the model has 1 input and 2 outputs; rnnconvert reads "
                                               "models with one input and one output (and recurrent states as "
                                               "inputs and outputs)")
    inp = keras.Input(shape=(None, 3))
    _, _, c = L.LSTM(4, return_state=True, name="enc")(inp)
    keras.Model(inp, L.Dense(2)(c)).save(str(path))
    assert refused(path, UnsupportedError) == (f"{path}: layer 'enc': the next layer takes state output #2 of a "
                                               "return_state layer, not its output")


def test_no_tensorflow_or_keras_needed():
    """rnnconvert reads Keras files with h5py and zipfile only."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['keras'] = sys.modules['tensorflow'] = sys.modules['tf_keras'] = None\n"
            f"from rnnconvert.formats import keras as K; K.read({str(LSTM_H5)!r}); K.read({str(LSTM_ZIP)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONWARNINGS": "error"})


def test_large_h5_weights_are_held_once_while_read(tmp_path):
    """A Keras 3 stacked Bidirectional(LSTM) .h5 (about 3M parameters): traced allocations while reading
    stay near the weight bytes (each kernel copied once into canonical layout, its source then dropped),
    and the canonical arrays are Keras's own weights transposed."""
    import tracemalloc

    import keras

    import rnnconvert
    from bench.models import make_stacked_bilstm
    path = tmp_path / "big.h5"
    make_stacked_bilstm(path, 3, hidden=192, features=96, weights_npz=tmp_path / "w.npz")
    keras_weights = list(np.load(tmp_path / "w.npz").values())
    weights = sum(a.nbytes for a in keras_weights)
    tracemalloc.start()
    try:
        model = rnnconvert.read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    largest = max(a.nbytes for a in keras_weights)
    assert peak < weights + 2 * largest, (peak, weights, largest)
    layer = model.layers[1]
    kernel, rec = keras_weights[6], keras_weights[7]           # layer 2, forward: kernel, recurrent kernel
    np.testing.assert_array_equal(layer.weights[0].W, kernel.T)   # ifco is ifgo: no reordering
    np.testing.assert_array_equal(layer.weights[0].R, rec.T)
    assert layer.weights[0].W.flags.c_contiguous
    keras.backend.clear_session()
