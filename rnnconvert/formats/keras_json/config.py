"""Keras layer configs as Keras serialises them (`model_config`), from the planned `specs.KLayer`s: what a
Keras file's `model_config` holds and what a TF.js layers model's `modelTopology` holds.  Also the order
and names of each layer's weight arrays (`weight_paths`).
"""
from __future__ import annotations

import re

from ... import model as M
from . import frontend_writer
from .graph import snake_case
from .specs import KLayer

RNN = ("LSTM", "GRU", "SimpleRNN")


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
        c.update(return_sequences=s["return_sequences"], return_state=bool(s.get("return_state")),
                 go_backwards=s["go_backwards"],
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


def inner_name(spec: KLayer) -> str:
    return snake_case(spec.wrapped)


def spec_entry(spec: KLayer, major: int, full: bool, guard: bool = False) -> dict:
    """One layer of the model config: `full` is the .keras form (module, build_config)."""
    shape = spec.input_shape if major >= 3 and spec.cls not in frontend_writer.NO_BUILD_CONFIG else None
    if spec.cls != "Bidirectional":
        return _entry(spec.cls, layer_config(spec.cls, spec.name, spec.settings, major, guard), shape, full)
    inner, s = inner_name(spec), spec.settings["layer"]
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


def model_config(specs: list[KLayer], model: M.Model, input_name: str, major: int, full: bool,
                 states=None) -> dict:
    """The model's config: Sequential, or Functional (Keras 3) when `states` (a `state_io.StatePlan`)
    gives it state inputs and outputs."""
    shape = [None, model.input.time_steps, int(model.input.features)]
    dtype = "float32"
    if str(model.input.dtype).startswith("int"):       # token ids for an Embedding: [batch, time]
        shape, dtype = shape[:2], "int32"              # as Keras writes it (its Embedding casts ids to int32)
    key = "batch_shape" if major >= 3 else "batch_input_shape"
    inp = {key: shape, "dtype": dtype, "sparse": False, "name": input_name}
    guard = major == 2 and names_hard_sigmoid(specs)
    if states is not None:
        from .state_io import functional
        for spec in specs:
            if spec.name in states.returns:
                spec.settings["return_state"] = True
                if "layer" in spec.settings:
                    spec.settings["layer"]["return_state"] = True
        entries = [spec_entry(s, major, full, guard) for s in specs]
        return functional(model, states, model_name(model, "functional"), inp, entries, specs,
                          [s.input_shape for s in specs[1:]] + [None], full, major)
    layers = [_entry("InputLayer", inp, None, full)] + [spec_entry(s, major, full, guard) for s in specs]
    name = model_name(model)
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


def model_name(model: M.Model, default: str = "sequential") -> str:
    name = re.sub(r"[^A-Za-z0-9_\-]", "_", model.name or "").strip("_")
    return name if name and name[0].isalpha() else default


def weight_paths(spec: KLayer) -> list[tuple[str, str]]:
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
