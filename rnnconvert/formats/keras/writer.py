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
import zipfile

import h5py
import numpy as np

from ...errors import InputError, UnsupportedError
from ...model import Model
from ...errors import one_line
from ..keras_json import state_io
from ..keras_json.config import inner_name, model_config, model_name, names_hard_sigmoid, weight_paths
from ..keras_json.graph import snake_case
from ..keras_json.plan import CELL_NAMES, Planner
from ..keras_json.specs import KLayer
from .container import ZIP_CONFIG, ZIP_METADATA, ZIP_WEIGHTS

# The Keras releases whose files these imitate (and which the tests load them with).
KERAS_VERSIONS = {3: "3.15.1", 2: "2.21.0"}
BACKEND = "tensorflow"

def write(model: Model, path, keras_version=3, fold_hard_sigmoid=True, selectors=True, **options) -> list[str]:
    """Write `model` as a Keras Sequential model; returns notes on what changed in form.

    keras_version: 3 (default) or 2 (tf.keras 2.x legacy .h5 only).  fold_hard_sigmoid: write a
    hard_sigmoid of another slope as Keras's, its slope folded into the weights (else refuse).
    selectors: add identity SimpleRNN layers where a backward direction's output must be reversed
    or taken at the last step (else refuse).
    """
    path = str(path)
    major = _major(keras_version, path)
    if model.has_state_io and major != 3:
        raise UnsupportedError(f"keras_version={keras_version!r}: Keras 3, which verifies the file, cannot load a "
                               "tf.keras 2 model whose layers take initial states as inputs, so state inputs and "
                               "outputs are written as a Keras 3 functional model only; write with keras_version=3",
                               path=path)
    container = "keras" if path.lower().endswith(".keras") else "h5"
    if container == "keras" and major != 3:
        raise InputError(f"keras_version={keras_version!r}: a .keras file is a Keras 3 file; write a tf.keras 2 "
                         "model as .h5", path=path)
    model.validate(path)
    planner = Planner(model, major, fold_hard_sigmoid=fold_hard_sigmoid, selectors=selectors)
    specs, problems = planner.plan()
    states, state_problems = state_io.plan(model, planner)
    problems += state_problems
    if problems:
        raise UnsupportedError(f"cannot write this model as Keras {major}: " + "; ".join(problems), path=path)
    notes = list(planner.notes) + (state_io.notes(states) if states else [])
    if major == 2 and names_hard_sigmoid(specs):
        notes.append("the file names hard_sigmoid in tf.keras 2's sense, clip(0.2x+0.5); it keeps tf.keras 2's "
                     "time_major key so that Keras 3, whose hard_sigmoid is clip(x/6+0.5), refuses to load it")
    if model.input.layout != "batch_time_feature":
        notes.append(f"the Keras model takes [batch, time, features]; the source took {model.input.layout} "
                     "(transpose inputs and sequence outputs)")
    if container == "keras":
        _write_zip(path, specs, model, planner.input_name, states)
    else:
        _write_h5(path, specs, model, planner.input_name, major, states)
    return notes


def _major(value, path) -> int:
    text = str(value).strip()
    major = text.split(".")[0]
    if major not in ("2", "3"):
        raise InputError(f"keras_version={value!r}: expected 3 (Keras 3) or 2 (tf.keras 2.x)", path=path)
    return int(major)


def _f32(a) -> np.ndarray:
    """A weight as written: float32; a function (plan.cell_weights's kernels) is called here."""
    return np.ascontiguousarray(np.asarray(a() if callable(a) else a, dtype=np.float32))


def _write_zip(path: str, specs: list[KLayer], model: Model, input_name: str, states=None) -> None:
    config = model_config(specs, model, input_name, 3, full=True, states=states)
    meta = {"keras_version": KERAS_VERSIONS[3],
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}

    def write_to(tmp):
        weights = tmp + ".weights.h5"      # on disk, not in memory: the zip copies it in chunks
        try:
            with h5py.File(weights, "w") as f:
                _weights_h5(f, specs, model, config if states else None)
            _zip(tmp, meta, config, weights)
        finally:
            if os.path.exists(weights):
                os.remove(weights)
    _atomic(path, write_to)


def _weights_h5(f, specs: list[KLayer], model: Model, functional=None) -> None:
    """model.weights.h5 of a .keras archive, as Keras 3 lays it out (a `functional` config numbers its
    input and Activation layers too)."""
    used: dict[str, int] = {}
    by_name = {spec.name: spec for spec in specs}
    for cls, name in (state_io.weightless(functional) if functional else []):
        if name not in by_name:
            _vars(f, f"layers/{_numbered(snake_case(cls), used)}", name)
            continue
        _spec_weights(f, by_name[name], _numbered(snake_case(cls), used))
    for spec in ([] if functional else specs):
        _spec_weights(f, spec, _numbered(snake_case(spec.cls), used))
    _vars(f, "", model_name(model, "functional" if functional else "sequential"))


def _spec_weights(f, spec: KLayer, key: str) -> None:
    _vars(f, f"layers/{key}", spec.name)
    if spec.cls == "Bidirectional":
        inner = inner_name(spec)
        for side in ("forward", "backward"):
            _vars(f, f"layers/{key}/{side}_layer", f"{side}_{inner}")
    owners: dict[str, int] = {}
    for (owner, _), a in zip(weight_paths(spec), spec.weights):
        k = owners.get(owner, 0)
        owners[owner] = k + 1
        group = _vars(f, f"layers/{key}/{owner}".rstrip("/"),
                      CELL_NAMES[spec.wrapped or spec.cls] if owner.endswith("cell") else spec.name)
        group.create_dataset(str(k), data=_f32(a))


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


def _write_h5(path: str, specs: list[KLayer], model: Model, input_name: str, major: int, states=None) -> None:
    config = model_config(specs, model, input_name, major, full=False, states=states)
    names = [n for _, n in state_io.weightless(config)] if states else [s.name for s in specs]
    by_name = {spec.name: spec for spec in specs}
    version = KERAS_VERSIONS[major]

    def write_file(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["backend"] = BACKEND
            f.attrs["keras_version"] = version
            f.attrs["model_config"] = json.dumps(config)
            root = f.create_group("model_weights")
            root.attrs["backend"] = BACKEND
            root.attrs["keras_version"] = version
            root.attrs["layer_names"] = _strings(names)
            for name in names:
                group = root.create_group(name)
                spec = by_name.get(name)
                if spec is None:
                    group.attrs["weight_names"] = _strings([])
                    continue
                arrays = [_legacy_name(spec, owner, n, model, major, prefix=not states)
                          for owner, n in weight_paths(spec)]
                group.attrs["weight_names"] = _strings(arrays)
                for n, a in zip(arrays, spec.weights):
                    group.create_dataset(n, data=_f32(a))
            root.create_group("top_level_model_weights").attrs["weight_names"] = _strings([])
    _atomic(path, write_file)


def _legacy_name(spec: KLayer, owner: str, var: str, model: Model, major: int, prefix: bool = True) -> str:
    """`sequential/lstm/lstm_cell/kernel` (Keras 3; a Functional model's without the model's name) or
    `lstm/lstm_cell/kernel:0` (tf.keras 2)."""
    parts = [spec.name]
    if spec.cls == "Bidirectional":
        parts.append(f"{owner.split('_')[0]}_{inner_name(spec)}")
    if owner.endswith("cell"):
        parts.append(CELL_NAMES[spec.wrapped or spec.cls])
    parts.append(var)
    if major >= 3:
        return "/".join(([model_name(model)] if prefix else []) + parts)
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
