"""Canonical model -> a Keras Sequential model file, written with h5py, json and zipfile only.

`.keras`: a zip of `metadata.json`, `config.json` and `model.weights.h5`, whose groups are named
after each layer's CLASS, numbered per class (`layers/lstm`, `layers/lstm_1`), arrays in
`vars/0..n` under the object that owns them (`cell`, `forward_layer/cell`), every `vars` group
carrying its owner's name.  Legacy `.h5`: root attributes `model_config`, `keras_version`, `backend`;
`model_weights/<layer name>` groups listing their arrays in `weight_names` (Keras loads them by
order).  `keras_version=3` (default) writes what Keras 3 writes (tf.keras 2.x cannot load it, nor
Keras 3's own .h5: `batch_shape`, DTypePolicy); `keras_version=2` (.h5 only) writes tf.keras 2.x's
form, which Keras 3 loads too, except that a model naming `hard_sigmoid` (clip(0.2x+0.5) in
tf.keras 2, clip(x/6+0.5) in Keras 3) keeps tf.keras 2's `time_major` key so that Keras 3 refuses
the file instead of computing another function.  `plan.py` maps the layers.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import zipfile

import h5py
import numpy as np

from ...errors import InputError, UnsupportedError
from ...model import Model
from ...errors import one_line
from ...model.states import refuse_state_io
from .container import ZIP_CONFIG, ZIP_METADATA, ZIP_WEIGHTS
from .graph import snake_case
from . import frontend_writer
from .plan import CELL_NAMES, Planner
from .specs import KLayer

# The Keras releases whose files these imitate (and which the tests load them with).
KERAS_VERSIONS = {3: "3.15.1", 2: "2.21.0"}
BACKEND = "tensorflow"
RNN = ("LSTM", "GRU", "SimpleRNN")


def write(model: Model, path, keras_version=3, fold_hard_sigmoid=True, selectors=True, **options) -> list[str]:
    """Write `model` as a Keras Sequential model; returns notes on what changed in form.

    keras_version: 3 (default) or 2 (tf.keras 2.x legacy .h5 only).  fold_hard_sigmoid: write a
    hard_sigmoid of another slope as Keras's, its slope folded into the weights (else refuse).
    selectors: add identity SimpleRNN layers where a backward direction's output must be reversed
    or taken at the last step (else refuse).
    """
    path = str(path)
    refuse_state_io(model, "Keras", path)
    major = _major(keras_version, path)
    container = "keras" if path.lower().endswith(".keras") else "h5"
    if container == "keras" and major != 3:
        raise InputError(f"keras_version={keras_version!r}: a .keras file is a Keras 3 file; write a tf.keras 2 "
                         "model as .h5", path=path)
    model.validate(path)
    planner = Planner(model, major, fold_hard_sigmoid=fold_hard_sigmoid, selectors=selectors)
    specs, problems = planner.plan()
    if problems:
        raise UnsupportedError(f"cannot write this model as Keras {major}: " + "; ".join(problems), path=path)
    notes = list(planner.notes)
    if major == 2 and names_hard_sigmoid(specs):
        notes.append("the file names hard_sigmoid in tf.keras 2's sense, clip(0.2x+0.5); it keeps tf.keras 2's "
                     "time_major key so that Keras 3, whose hard_sigmoid is clip(x/6+0.5), refuses to load it")
    if model.input.layout != "batch_time_feature":
        notes.append(f"the Keras model takes [batch, time, features]; the source took {model.input.layout} "
                     "(transpose inputs and sequence outputs)")
    if container == "keras":
        _write_zip(path, specs, model, planner.input_name)
    else:
        _write_h5(path, specs, model, planner.input_name, major)
    return notes


def _major(value, path) -> int:
    text = str(value).strip()
    major = text.split(".")[0]
    if major not in ("2", "3"):
        raise InputError(f"keras_version={value!r}: expected 3 (Keras 3) or 2 (tf.keras 2.x)", path=path)
    return int(major)


# ---------------------------------------------------------------------------------------------
# configs

def _policy(major):
    return ({"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
            if major >= 3 else "float32")


def _init(cls: str, config: dict) -> dict:
    return {"module": "keras.initializers", "class_name": cls, "config": config, "registered_name": None}


def layer_config(cls: str, name: str, s: dict, major: int, guard: bool = False) -> dict:
    """The `config` of one layer as Keras `major` serialises it (settings from specs.KLayer);
    `guard` writes tf.keras 2's `time_major`, which Keras 3 refuses."""
    c = {"name": name, "trainable": True, "dtype": _policy(major)}
    if cls in RNN:
        c.update(return_sequences=s["return_sequences"], return_state=False, go_backwards=s["go_backwards"],
                 stateful=False, unroll=False)
        zero = s.get("zero_output_for_mask", False)
        c.update({"time_major": False} if guard else {"zero_output_for_mask": zero} if major >= 3 or zero else {})
        c.update(units=s["units"], activation=s["activation"])
        if cls != "SimpleRNN":
            c["recurrent_activation"] = s["recurrent_activation"]
        c.update(use_bias=s["use_bias"], kernel_initializer=_init("GlorotUniform", {"seed": None}),
                 recurrent_initializer=_init("Orthogonal", {"gain": 1.0, "seed": None}),
                 bias_initializer=_init("Zeros", {}))
        if cls == "LSTM":
            c["unit_forget_bias"] = True
        c.update({k: None for k in ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                                    "activity_regularizer", "kernel_constraint", "recurrent_constraint",
                                    "bias_constraint")})
        c.update(dropout=0.0, recurrent_dropout=0.0)
        if major == 2 and cls != "SimpleRNN":
            c["implementation"] = 2
        if cls == "GRU":
            c["reset_after"] = s["reset_after"]
        if major >= 3 and cls != "SimpleRNN":
            c["seed"] = None
    elif cls == "Dense":
        c.update(units=s["units"], activation=s["activation"], use_bias=s["use_bias"],
                 kernel_initializer=_init("GlorotUniform", {"seed": None}), bias_initializer=_init("Zeros", {}),
                 kernel_regularizer=None, bias_regularizer=None)
        if major == 2:
            c["activity_regularizer"] = None
        c.update(kernel_constraint=None, bias_constraint=None)
    elif cls in frontend_writer.CLASSES:
        c = frontend_writer.config(cls, c, s, major)
    else:                                   # Activation, LeakyReLU, ELU
        c.update(s)
    return c


def _entry(cls: str, config: dict, shape, full: bool) -> dict:
    if not full:
        return {"class_name": cls, "config": config}
    e = {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}
    if shape is not None:
        e["build_config"] = {"input_shape": shape}
    return e


def _inner_name(spec: KLayer) -> str:
    return snake_case(spec.wrapped)


def spec_entry(spec: KLayer, major: int, full: bool, guard: bool = False) -> dict:
    """One layer of the model config: `full` is the .keras form (module, build_config)."""
    shape = spec.input_shape if major >= 3 and spec.cls not in frontend_writer.NO_BUILD_CONFIG else None
    if spec.cls != "Bidirectional":
        return _entry(spec.cls, layer_config(spec.cls, spec.name, spec.settings, major, guard), shape, full)
    inner, s = _inner_name(spec), spec.settings["layer"]
    config = {"name": spec.name, "trainable": True, "dtype": _policy(major)}
    if major >= 3:
        config["merge_mode"] = spec.settings["merge_mode"]
        s = dict(s, zero_output_for_mask=s["return_sequences"])     # as Bidirectional sets it (no mask: no effect)
        config["layer"] = _entry(spec.wrapped, layer_config(spec.wrapped, f"forward_{inner}", s, major), shape, True)
        back = dict(s, go_backwards=True)
        config["backward_layer"] = _entry(spec.wrapped, layer_config(spec.wrapped, f"backward_{inner}", back, major),
                                          shape, True)
    else:
        s = dict(s, zero_output_for_mask=False)       # Bidirectional sets it itself; tf.keras 2 does not write it
        config["layer"] = _entry(spec.wrapped, layer_config(spec.wrapped, inner, s, major, guard), None, True)
        config["merge_mode"] = spec.settings["merge_mode"]
    return _entry("Bidirectional", config, shape, full)


def model_config(specs: list[KLayer], model: Model, input_name: str, major: int, full: bool) -> dict:
    shape = [None, model.input.time_steps, int(model.input.features)]
    dtype = "float32"
    if str(model.input.dtype).startswith("int"):       # token ids for an Embedding: [batch, time]
        shape, dtype = shape[:2], "int32"              # as Keras writes it (its Embedding casts ids to int32)
    key = "batch_shape" if major >= 3 else "batch_input_shape"
    inp = {key: shape, "dtype": dtype, "sparse": False, "name": input_name}
    guard = major == 2 and names_hard_sigmoid(specs)
    layers = [_entry("InputLayer", inp, None, full)] + [spec_entry(s, major, full, guard) for s in specs]
    name = _model_name(model)
    if major < 3:
        return {"class_name": "Sequential", "config": {"name": name, "layers": layers}}
    config = {"name": name, "trainable": True, "dtype": _policy(major), "layers": layers, "build_input_shape": shape}
    if not full:
        return {"class_name": "Sequential", "config": config}
    return {"module": "keras", "class_name": "Sequential", "config": config, "registered_name": None,
            "build_config": {"input_shape": shape}}


def names_hard_sigmoid(specs: list[KLayer]) -> bool:
    """Does any layer name `hard_sigmoid`, whose meaning differs between tf.keras 2 and Keras 3?"""
    def acts(s: dict):
        return [s.get("activation"), s.get("recurrent_activation")] + (acts(s["layer"]) if "layer" in s else [])
    return any("hard_sigmoid" in acts(spec.settings) for spec in specs)


def _model_name(model: Model) -> str:
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", model.name or "").strip("_")
    return name if name and name[0].isalpha() else "sequential"


# ---------------------------------------------------------------------------------------------
# weights: (path of each array, array) per layer

def _weight_paths(spec: KLayer) -> list[tuple[str, str]]:
    """[(owner object path below the layer, variable name)] in Keras's weight order."""
    if spec.cls == "Dense":
        return [("", n) for n in ("kernel", "bias")[: len(spec.weights)]]
    if spec.cls in frontend_writer.CLASSES:
        return [("", n) for n in frontend_writer.var_names(spec)]
    names = ["kernel", "recurrent_kernel", "bias"][: len(spec.weights) // (2 if spec.cls == "Bidirectional" else 1)]
    if spec.cls in RNN:
        return [("cell", n) for n in names]
    if spec.cls == "Bidirectional":
        return [(f"{side}/cell", n) for side in ("forward_layer", "backward_layer") for n in names]
    return []


def _f32(a) -> np.ndarray:
    """A weight as written: float32; a function (plan.cell_weights's kernels) is called here."""
    return np.ascontiguousarray(np.asarray(a() if callable(a) else a, dtype=np.float32))


def _write_zip(path: str, specs: list[KLayer], model: Model, input_name: str) -> None:
    config = model_config(specs, model, input_name, 3, full=True)
    meta = {"keras_version": KERAS_VERSIONS[3],
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}

    def write_to(tmp):
        weights = tmp + ".weights.h5"      # on disk, not in memory: the zip copies it in chunks
        try:
            with h5py.File(weights, "w") as f:
                _weights_h5(f, specs, model)
            _zip(tmp, meta, config, weights)
        finally:
            if os.path.exists(weights):
                os.remove(weights)
    _atomic(path, write_to)


def _weights_h5(f, specs: list[KLayer], model: Model) -> None:
    """model.weights.h5 of a .keras archive, as Keras 3 lays it out."""
    used: dict[str, int] = {}
    for spec in specs:
        key = _numbered(snake_case(spec.cls), used)
        _vars(f, f"layers/{key}", spec.name)
        if spec.cls == "Bidirectional":
            inner = _inner_name(spec)
            for side in ("forward", "backward"):
                _vars(f, f"layers/{key}/{side}_layer", f"{side}_{inner}")
        owners: dict[str, int] = {}
        for (owner, _), a in zip(_weight_paths(spec), spec.weights):
            k = owners.get(owner, 0)
            owners[owner] = k + 1
            group = _vars(f, f"layers/{key}/{owner}".rstrip("/"),
                          CELL_NAMES[spec.wrapped or spec.cls] if owner.endswith("cell") else spec.name)
            group.create_dataset(str(k), data=_f32(a))
    _vars(f, "", _model_name(model))


def _numbered(base: str, used: dict) -> str:
    """Keras's per-class numbering of .keras weight groups: lstm, lstm_1, ..."""
    if base in used:
        used[base] += 1
        return f"{base}_{used[base]}"
    used[base] = 0
    return base


def _vars(f, owner: str, name: str):
    group = f.require_group(f"{owner}/vars" if owner else "vars")
    group.attrs["name"] = name
    return group


def _zip(tmp: str, meta: dict, config: dict, weights: str) -> None:
    with zipfile.ZipFile(tmp, "w") as z:          # stored, as Keras writes it
        z.writestr(zipfile.ZipInfo(ZIP_METADATA), json.dumps(meta))
        z.writestr(zipfile.ZipInfo(ZIP_CONFIG), json.dumps(config))
        z.write(weights, ZIP_WEIGHTS)


def _write_h5(path: str, specs: list[KLayer], model: Model, input_name: str, major: int) -> None:
    config = model_config(specs, model, input_name, major, full=False)
    version = KERAS_VERSIONS[major]

    def write_file(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["backend"] = BACKEND
            f.attrs["keras_version"] = version
            f.attrs["model_config"] = json.dumps(config)
            root = f.create_group("model_weights")
            root.attrs["backend"] = BACKEND
            root.attrs["keras_version"] = version
            root.attrs["layer_names"] = _strings([s.name for s in specs])
            for spec in specs:
                group = root.create_group(spec.name)
                names = [_legacy_name(spec, owner, n, model, major) for owner, n in _weight_paths(spec)]
                group.attrs["weight_names"] = _strings(names)
                for n, a in zip(names, spec.weights):
                    group.create_dataset(n, data=_f32(a))
            root.create_group("top_level_model_weights").attrs["weight_names"] = _strings([])
    _atomic(path, write_file)


def _legacy_name(spec: KLayer, owner: str, var: str, model: Model, major: int) -> str:
    """`sequential/lstm/lstm_cell/kernel` (Keras 3) or `lstm/lstm_cell/kernel:0` (tf.keras 2)."""
    parts = [spec.name]
    if spec.cls == "Bidirectional":
        parts.append(f"{owner.split('_')[0]}_{_inner_name(spec)}")
    if owner.endswith("cell"):
        parts.append(CELL_NAMES[spec.wrapped or spec.cls])
    parts.append(var)
    if major >= 3:
        return "/".join([_model_name(model)] + parts)
    return "/".join(parts) + ":0"


def _strings(items: list[str]) -> np.ndarray:
    return np.array(items, dtype=h5py.string_dtype()) if items else np.array([], dtype=np.float64)


def _atomic(path: str, write_to) -> None:
    """Write to a temporary file beside `path`, then rename: a failed write leaves no partial file."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        write_to(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else one_line(exc)   # h5py's text names our temporary
        raise InputError(f"cannot write the Keras file ({why})", path=path) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
