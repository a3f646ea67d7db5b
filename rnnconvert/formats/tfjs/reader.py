"""A TF.js layers model (`model.json` + shards) -> the canonical model, through the Keras config reader
(`keras_json`): the topology is a Keras model config, the weights are matched to layers by name.

`modelTopology` is either the config itself (`{"class_name", "config", "keras_version"}`, as TF.js's
`model.save` writes it) or wraps it (`{"model_config": ..., "keras_version"}`, as the TF.js converter
writes a Keras file).  Weight names: `layer/var`, `layer/cell/var` (converted Keras files),
`bidirectional/forward_lstm[/cell]/var`; a layer's arrays are put in Keras's order by their names.
Whatever Keras version the topology names, TF.js computes hard_sigmoid as clip(0.2x+0.5): read so.
rnnconvert's own layer classes (`layers_js`: a reset_after GRU, initial states as weights `initial_h`,
`initial_c`, masked zero outputs and pooling) are read as the Keras layers they extend, from the JSON
and the shards alone: the module beside the model is never read or run.
"""
from __future__ import annotations

import os

from ...errors import InputError, RnnConvertError, UnsupportedError
from ...files.text import read_json
from ...model import InputSpec, Model, Recurrent
from ..keras_json import graph
from ..keras_json.build import combined, convert_chain, fold_selectors, shape_text
from .classes import ClassConverter, plain_classes
from .weights import read_weights

MAX_JSON = 100_000_000
SNIFF_BYTES = 4096
# Keras's order of a layer's arrays, by variable name (TF.js loads by name, a manifest may list any order).
ORDER = ("embeddings", "kernel", "depthwise_kernel", "recurrent_kernel", "bias", "gamma", "beta", "moving_mean",
         "moving_variance")


def sniff(path) -> bool:
    """True for a JSON file whose top level names `modelTopology` and `weightsManifest`; never raises."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return False
    text = head.lstrip()
    return text.startswith(b"{") and (b'"modelTopology"' in head or b'"weightsManifest"' in head)


def read(path, **options) -> Model:
    """Read a TF.js layers model (its `.json`; the shards beside it) into the canonical model."""
    path = str(path)
    try:
        return _read(path)
    except RnnConvertError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, OSError, RuntimeError) as exc:
        raise InputError(f"cannot read this TF.js model: unexpected content ({type(exc).__name__}: {exc})",
                         path=path) from None


def _document(path: str) -> tuple[dict, str | None]:
    """({config, manifest, generated_by, converted_by}, the topology's keras_version)."""
    if os.path.getsize(path) > MAX_JSON:
        raise InputError(f"model.json is over the {MAX_JSON} bytes rnnconvert reads", path=path)
    with open(path, "rb") as f:
        doc = read_json(f.read(), path, "the TF.js model.json")
    if not isinstance(doc, dict) or not isinstance(doc.get("modelTopology"), dict):
        raise InputError("not a TF.js layers model: no 'modelTopology' object (a graph model, converted from a "
                         "SavedModel, keeps no layers: convert the Keras model instead)", path=path)
    if doc.get("format") not in (None, "layers-model"):
        raise UnsupportedError(f"a TF.js '{doc.get('format')}' model; rnnconvert reads layers models "
                               "(format 'layers-model')", path=path)
    topology = doc["modelTopology"]
    version = topology.get("keras_version")
    config = topology.get("model_config", topology)
    if not isinstance(config, dict):
        raise InputError("modelTopology.model_config is not an object", path=path)
    return {"config": config, "manifest": doc.get("weightsManifest", []), "generated_by": doc.get("generatedBy"),
            "converted_by": doc.get("convertedBy")}, (version if isinstance(version, str) else None)


def _read(path: str) -> Model:
    doc, version = _document(path)
    config, extras = plain_classes(doc["config"], path)
    model_class, name, entries = graph.chain(config, path)
    entries = fold_padding(entries)
    named = read_weights(doc["manifest"], path)
    by_layer = group_weights(named, [e.name for e in entries], path)
    shape = graph.input_shape(entries, doc["config"])
    tokens = any(e.cls == "Embedding" for e in entries[:2])
    features = shape[-1] if shape and isinstance(shape[-1], int) and not tokens else None
    time_steps = shape[1] if shape is not None and len(shape) > 1 and isinstance(shape[1], int) else None

    def lookup(e):
        return [(n, load()) for n, load in by_layer.pop(e.name, [])], f"weights '{e.name}/...'"
    conv = ClassConverter(path, 2, lookup, model_class=model_class, features=features, allow_stateful=False,
                          time_steps=time_steps, extras=extras)
    layers, problems = convert_chain(conv, entries)
    if problems:
        raise combined(problems, path)
    if by_layer:
        left = [n for items in by_layer.values() for n, _ in items]
        raise InputError(f"weightsManifest: {len(left)} weights belong to no layer of the topology "
                         f"({', '.join(left[:5])}{', ...' if len(left) > 5 else ''})", path=path)
    if not any(isinstance(layer, Recurrent) for layer in layers):
        raise UnsupportedError("the model has no LSTM, GRU or SimpleRNN layer; nothing to convert", path=path)
    if shape is not None and len(shape) != (2 if tokens else 3):
        expected = "token ids [batch, time]" if tokens else "[batch, time, features]"
        raise UnsupportedError(f"input shape {shape_text(shape)}: rnnconvert reads models whose input is "
                               f"{expected}", path=path)
    notes = list(conv.notes)
    if (version or "").strip().startswith("3") and "hard_sigmoid" in str(doc["config"]):
        notes.append(f"the topology names Keras {version}, whose hard_sigmoid is clip(x/6+0.5); TF.js computes "
                     "clip(0.2x+0.5) for it, and the model is read as TF.js runs it")
    layers = fold_selectors(layers, notes)
    input_name = entries[0].name if entries and entries[0].cls == "InputLayer" else "input"
    source = {"format": "tfjs", "keras_version": version, "generated_by": doc["generated_by"],
              "converted_by": doc["converted_by"], "model_class": model_class}
    if notes:
        source["notes"] = notes
    model = Model(layers=layers, input=InputSpec(name=input_name, features=int(conv.input_features or 0),
                                                 dtype="int64" if tokens else "float32", time_steps=time_steps),
                  output_name="output", name=str(name), source=source)
    from ..keras_json.state_graph import ports
    model.state_inputs, model.state_outputs = ports(model, entries, path)
    return model.validate(path)


def group_weights(named, layer_names: list[str], path: str) -> dict[str, list]:
    """{layer name: [(weight name, load)] in Keras's order}; a weight whose name starts with no layer's name
    is an InputError."""
    known = set(layer_names)
    out: dict[str, list] = {}
    for name, a in named:
        parts = name.split("/")
        if parts[0] not in known and len(parts) > 2 and parts[1] in known:
            parts = parts[1:]                   # `model/layer/...` (Keras 3 legacy names)
        if parts[0] not in known:
            raise InputError(f"weightsManifest: weight '{name}' names no layer of the topology", path=path)
        out.setdefault(parts[0], []).append(("/".join(parts), a))
    for layer, items in out.items():
        items.sort(key=lambda item: _rank(item[0], layer))
    return out


def _rank(name: str, layer: str) -> tuple:
    parts = name.split("/")
    side = 1 if len(parts) > 2 and parts[1].startswith("backward_") else 0
    var = parts[-1].split(":")[0]
    return side, ORDER.index(var) if var in ORDER else len(ORDER)


def fold_padding(entries: list) -> list:
    """Reshape [T, 1, F] -> ZeroPadding2D ((l, r), (0, 0)) -> Reshape [T, F], as rnnconvert's writer spells
    zero steps for TF.js, read back as one ZeroPadding1D (l, r)."""
    out, k = [], 0
    while k < len(entries):
        e = entries[k]
        three = entries[k:k + 3]
        if [x.cls for x in three] == ["Reshape", "ZeroPadding2D", "Reshape"] and _padding_triple(three):
            (left, right), _ = three[1].config["padding"]
            out.append(graph.Entry(three[1].name, "ZeroPadding1D", {"name": three[1].name, "padding": [left, right]}))
            k += 3
            continue
        out.append(e)
        k += 1
    return out


def _padding_triple(three) -> bool:
    into, pad, back = (e.config for e in three)
    p = pad.get("padding")
    t1, t2 = into.get("target_shape"), back.get("target_shape")
    return (isinstance(t1, list) and len(t1) == 3 and t1[:2] == [-1, 1] and isinstance(t2, list)
            and t2 == [-1, t1[2]] and pad.get("data_format", "channels_last") == "channels_last"
            and isinstance(p, list) and len(p) == 2 and all(isinstance(q, list) and len(q) == 2 for q in p)
            and p[1] == [0, 0] and all(isinstance(v, int) and v >= 0 for v in p[0]))

