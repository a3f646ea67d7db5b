"""Canonical model -> a TF.js layers model: `NAME.json` (modelTopology + weightsManifest) and its one
weights shard `NAME.bin` beside it (little-endian float32, the arrays in manifest order).

The topology is a tf.keras 2 Sequential config (`keras_json.config`, planned by `keras_json.plan` for
Keras 2: TF.js's hard_sigmoid is tf.keras 2's clip(0.2x+0.5)); weights are named as TF.js names them
(`lstm/kernel`, `bi/forward_gru/kernel`).  `plan.py` adapts what TF.js lacks (causal and explicit
Conv1D padding) and refuses, naming the layer, what it cannot compute (activations it does not name,
cell clip).  A layer TF.js's own classes compute otherwise (a reset_after GRU, an LSTM projection,
initial states, masks) names rnnconvert's class instead, and the module defining it is written beside
the model as `NAME.layers.mjs` (`layers_js`).  The shard is written first, one array at a time, then
the module, then the JSON that lists them.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ...errors import UnsupportedError
from ...model import Model
from ..keras_json import state_io
from ...version import __version__
from ..keras_json.config import inner_name, model_config, weight_paths
from ..keras_json.specs import KLayer
from . import layers_js
from .plan import MAJOR, Planner, adapt

# The TF.js release whose files these imitate, and which the tests run them with.
TFJS_VERSION = "4.22.0"


def shard_path(path) -> str:
    """The weights shard written beside `path`: same stem, `.bin` (`model.json` -> `model.bin`)."""
    return os.path.splitext(os.fspath(path))[0] + ".bin"


def module_path(path) -> str:
    """rnnconvert's layer classes written beside `path` when the model names them (`model.layers.mjs`)."""
    return os.path.splitext(os.fspath(path))[0] + layers_js.SUFFIX


def write(model: Model, path, fold_hard_sigmoid=True, selectors=True, **options) -> list[str]:
    """Write `model` as a TF.js layers model at `path` (a `.json` file) and its shard beside it; returns
    notes on what changed in form.  fold_hard_sigmoid, selectors: as the Keras writer's."""
    from ...files.atomic import write_files
    path = os.fspath(path)
    model.validate(path)
    planner = Planner(model, MAJOR, fold_hard_sigmoid=fold_hard_sigmoid, selectors=selectors)
    specs, problems = planner.plan()
    specs, more = adapt(specs, planner)
    states, state_problems = state_io.plan(model, planner)
    problems += more + state_problems
    if problems:
        raise UnsupportedError("cannot write this model as TF.js (whose layers are tf.keras 2's): "
                               + "; ".join(problems), path=path)
    notes = [n.replace("in the Keras file", "in the TF.js model") for n in planner.notes]
    notes += [n.replace("Keras inputs and outputs", "TF.js inputs and outputs").replace("the Keras input",
                                                                                            "the TF.js input")
              for n in (state_io.notes(states) if states else [])]
    if model.input.layout != "batch_time_feature":
        notes.append(f"the TF.js model takes [batch, time, features]; the source took {model.input.layout} "
                     "(transpose inputs and sequence outputs)")
    config = name_custom_classes(model_config(specs, model, planner.input_name, MAJOR, full=False, states=states),
                                 planner.custom)
    items = [item for spec in specs for item in spec_weights(spec, planner.custom)]
    shard = shard_path(path)
    listed: list[dict] = []
    doc = {"format": "layers-model", "generatedBy": f"rnnconvert {__version__}", "convertedBy": None,
           "modelTopology": {**config, "keras_version": f"tfjs-layers {TFJS_VERSION}", "backend": "tensor_flow.js"},
           "weightsManifest": [{"paths": [os.path.basename(shard)], "weights": listed}]}

    def weights(f):
        """One array at a time (a kernel the planner builds exists only while it is written)."""
        for name, a in items:
            a = np.ascontiguousarray(np.asarray(a() if callable(a) else a, dtype="<f4"))
            f.write(memoryview(a).cast("B"))
            listed.append({"name": name, "shape": list(a.shape), "dtype": "float32"})
    module = [(module_path(path), "w", lambda f: f.write(layers_js.SOURCE))] if planner.custom else []
    write_files([(shard, "wb", weights)] + module + [(path, "w", lambda f: json.dump(doc, f))])
    if planner.custom:
        named = ", ".join(f"'{name}' as {cls}" for name, (cls, _, _) in planner.custom.items())
        module = os.path.basename(module_path(path))
        notes.append(f"written with rnnconvert's TF.js layer classes, for what TF.js's own layers do not compute: "
                     f"{named}; they are defined in {module} beside the model: import it once before "
                     f"tf.loadLayersModel (import './{module}';)")
    return notes


def name_custom_classes(config: dict, custom: dict) -> dict:
    """The model config with each `custom` layer (or the layer a Bidirectional wraps) naming rnnconvert's
    class and holding its extra settings."""
    for entry in config["config"]["layers"]:
        cls_extra = custom.get(entry["config"].get("name"))
        if cls_extra is None:
            continue
        target = entry["config"]["layer"] if entry["class_name"] == "Bidirectional" else entry
        target["class_name"] = cls_extra[0]
        target["config"].update(cls_extra[1])
    return config


def spec_weights(spec: KLayer, custom: dict) -> list:
    """(TF.js weight name, array or function) of one layer, rnnconvert's extra weights last."""
    items = [(weight_name(spec, owner, var), a) for (owner, var), a in zip(weight_paths(spec), spec.weights)]
    extra = custom.get(spec.name, (None, None, []))[2]
    return items + [("/".join(filter(None, (spec.name, side, var))), a) for side, var, a in extra]


def weight_name(spec: KLayer, owner: str, var: str) -> str:
    """TF.js's name of a weight: `layer/var`, `bidirectional/forward_lstm/var`."""
    if owner.startswith(("forward_layer", "backward_layer")):
        return f"{spec.name}/{owner.split('_')[0]}_{inner_name(spec)}/{var}"
    return f"{spec.name}/{var}"
