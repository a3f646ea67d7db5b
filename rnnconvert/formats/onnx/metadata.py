"""The `rnnconvert` metadata entry of an ONNX file this package wrote, read back: it restores what ONNX
cannot carry (layer names, bias flags, exact activation parameters, Dropout layers, explicit zero
states, a stateful file's initial values), and only where it agrees with the layers the graph gave;
a mismatch or a malformed entry is ignored with a note.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...errors import InputError
from ...files.text import read_json
from ...model import Activation, ActivationLayer, Dense, Dropout, InputSpec, Model, Recurrent
from ...model.assumptions import earlier
from .writer import META_KEY, META_VERSION


def _initial_from_metadata(model: Model, entries: list | None) -> None:
    """A file written with --stateful lists the initial value of each state input it was given."""
    layers = {layer.name: layer for layer in model.recurrent_layers}
    for e in entries or []:
        layer = layers.get(e.get("layer"))
        if layer is not None and e.get("initial") is not None and e.get("state") in ("h", "c"):
            setattr(layer.weights[0], f"{e['state']}0", np.asarray(e["initial"], np.float32))


def _metadata(proto) -> dict | None:
    for p in proto.metadata_props:
        if p.key == META_KEY:
            try:
                meta = read_json(p.value, None, "metadata")
            except InputError:
                return None
            return meta if isinstance(meta, dict) and meta.get("version") == META_VERSION else None
    return None


def _atoms(layers: list) -> list:
    """Layers as recurrent / dense(linear) / activation atoms, so both groupings compare."""
    out = []
    for layer in layers:
        if isinstance(layer, Recurrent):
            out.append(("rec", layer))
        elif isinstance(layer, Dense):
            out.append(("dense", layer))
            if layer.activation.name != "linear":
                out.append(("act", layer.activation))
        elif isinstance(layer, ActivationLayer):
            out.append(("act", layer.activation))
    return out


def _restore(model: Model, raw_layers: list, meta: dict) -> Model:
    """Put back what the metadata of a file rnnconvert wrote says, where the graph agrees."""
    try:
        atoms = _atoms(raw_layers)
        entries = [e for e in meta["layers"] if e["kind"] != "dropout"]
        kinds = []
        for e in entries:
            if e["kind"] in ("lstm", "gru", "rnn"):
                kinds.append("rec")
            elif e["kind"] == "dense":
                kinds += ["dense"] + (["act"] if e["activation"]["name"] != "linear" else [])
            elif e["activation"]["name"] != "linear":
                kinds.append("act")
        if kinds != [k for k, _ in atoms]:
            return _note(model, "the rnnconvert metadata does not match the graph and was ignored")
        it = iter(atoms)
        layers = []
        for e in meta["layers"]:
            kind = e["kind"]
            if kind == "dropout":
                layers.append(Dropout(e["name"], float(e.get("rate", 0.0)), e.get("variant", "dropout")))
            elif kind in ("lstm", "gru", "rnn"):
                _, r = next(it)
                layers.append(_restore_recurrent(r, e))
            elif kind == "dense":
                _, d = next(it)
                act = Activation("linear")
                if e["activation"]["name"] != "linear":
                    act = _same_activation(next(it)[1], e["activation"])
                layers.append(Dense(e["name"], d.kernel, d.bias, act))
            elif e["activation"]["name"] == "linear":
                layers.append(ActivationLayer(e["name"], Activation("linear")))
            else:
                layers.append(ActivationLayer(e["name"], _same_activation(next(it)[1], e["activation"])))
        spec = InputSpec(**{**vars(model.input), "time_steps": meta["input"].get("time_steps"),
                            "name": model.input.name})
        return Model(layers=layers, input=spec, output_name=model.output_name,
                     name=meta.get("name", model.name), source=earlier(meta.get("source", model.source)))
    except (KeyError, TypeError, ValueError, StopIteration):
        return _note(model, "the rnnconvert metadata is malformed and was ignored")


def _restore_recurrent(r: Recurrent, e: dict) -> Recurrent:
    if e["kind"] != r.cell:
        raise ValueError("cell")
    out = replace(r, name=e["name"], weights=[replace(w) for w in r.weights],
                  activations=[_same_activation(a, m) for a, m in zip(r.activations, e["activations"])])
    # output modes that compute the same numbers: forward-only last_step == final_state
    if e["output"] != r.output and {e["output"], r.output} == {"last_step", "final_state"} \
            and r.direction == "forward":
        out.output = e["output"]
    if e.get("masked_output") in ("previous", "zero"):     # what a masked step outputs: no node carries it
        out.masked_output = e["masked_output"]
    clip = e.get("clip")
    if clip is not None and r.clip is not None and np.float32(clip) == np.float32(r.clip):
        out.clip = float(clip)
    for flag, key in (("has_input_bias", "Wb"), ("has_recurrent_bias", "Rb")):
        if e.get(flag) is False and all(not np.any(getattr(w, key)) for w in r.weights):
            setattr(out, flag, False)
        elif e.get(flag) is True:
            setattr(out, flag, True)
    for key in ("h0", "c0"):
        shape = e.get(key)
        if shape and all(getattr(w, key) is None for w in r.weights):
            for w in out.weights:
                setattr(w, key, np.zeros(shape, np.float32))
    return out


def _same_activation(graph_act: Activation, meta_act: dict) -> Activation:
    """The metadata's activation when it is the graph's at float32 precision, else the graph's."""
    try:
        m = Activation(**meta_act)
    except Exception:
        return graph_act
    if m.name == "linear" and graph_act.name == "affine" and graph_act.alpha == 1.0 and graph_act.beta == 0.0:
        return m
    if m.name != graph_act.name:
        if m.name == "affine" and graph_act.name == "linear" and m.alpha == 1.0 and m.beta == 0.0:
            return m
        return graph_act
    for k in ("alpha", "beta"):
        a, b = getattr(m, k), getattr(graph_act, k)
        if (a is None) != (b is None) or (a is not None and np.float32(a) != np.float32(b)):
            return graph_act
    return m


def _note(model: Model, text: str) -> Model:
    notes = model.source.get("notes")
    model.source["notes"] = f"{notes}; {text}" if notes else text
    return model
