"""Canonical model -> a TF.js layers model: `NAME.json` (modelTopology + weightsManifest) and its one
weights shard `NAME.bin` beside it (little-endian float32, the arrays in manifest order).

The topology is a tf.keras 2 Sequential config (`keras_json.config`, planned by `keras_json.plan` for
Keras 2: TF.js's hard_sigmoid is tf.keras 2's clip(0.2x+0.5)); weights are named as TF.js names them
(`lstm/kernel`, `bi/forward_gru/kernel`).  `plan.py` adapts what TF.js lacks (causal and explicit
Conv1D padding) and refuses, naming the layer, what it cannot compute (a GRU with reset_after=True,
masks it applies otherwise, activations it does not name).  The shard is written first, one array at
a time, then the JSON that lists them.
"""
from __future__ import annotations

import json
import os

import numpy as np

from ...errors import UnsupportedError
from ...model import Model
from ...model.states import refuse_state_io
from ...version import __version__
from ..keras_json.config import inner_name, model_config, weight_paths
from ..keras_json.plan import Planner
from ..keras_json.specs import KLayer
from .plan import MAJOR, adapt, mask_refusals

# The TF.js release whose files these imitate, and which the tests run them with.
TFJS_VERSION = "4.22.0"


def shard_path(path) -> str:
    """The weights shard written beside `path`: same stem, `.bin` (`model.json` -> `model.bin`)."""
    return os.path.splitext(os.fspath(path))[0] + ".bin"


def write(model: Model, path, fold_hard_sigmoid=True, selectors=True, **options) -> list[str]:
    """Write `model` as a TF.js layers model at `path` (a `.json` file) and its shard beside it; returns
    notes on what changed in form.  fold_hard_sigmoid, selectors: as the Keras writer's."""
    from ...files.atomic import write_files
    path = os.fspath(path)
    refuse_state_io(model, "TF.js", path)
    model.validate(path)
    planner = Planner(model, MAJOR, fold_hard_sigmoid=fold_hard_sigmoid, selectors=selectors)
    specs, problems = planner.plan()
    specs, more = adapt(specs, planner)
    problems += more + mask_refusals(model)
    if problems:
        raise UnsupportedError("cannot write this model as TF.js (whose layers are tf.keras 2's): "
                               + "; ".join(problems), path=path)
    notes = [n.replace("in the Keras file", "in the TF.js model") for n in planner.notes]
    if model.input.layout != "batch_time_feature":
        notes.append(f"the TF.js model takes [batch, time, features]; the source took {model.input.layout} "
                     "(transpose inputs and sequence outputs)")
    config = model_config(specs, model, planner.input_name, MAJOR, full=False)
    items = [(weight_name(spec, owner, var), a) for spec in specs
             for (owner, var), a in zip(weight_paths(spec), spec.weights)]
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
    write_files([(shard, "wb", weights), (path, "w", lambda f: json.dump(doc, f))])
    return notes


def weight_name(spec: KLayer, owner: str, var: str) -> str:
    """TF.js's name of a weight: `layer/var`, `bidirectional/forward_lstm/var`."""
    if owner.startswith(("forward_layer", "backward_layer")):
        return f"{spec.name}/{owner.split('_')[0]}_{inner_name(spec)}/{var}"
    return f"{spec.name}/{var}"
