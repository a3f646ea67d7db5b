"""A Keras model config as one chain of layers: Sequential, or a Functional model in a line.

Sequential configs are a list of layers (Keras 1, Keras <= 2.1) or {"name", "layers"}.  Functional
configs ("Model" in Keras 1/2, "Functional" in tf.keras >= 2.4 and Keras 3) list each layer's
`inbound_nodes`: `[[["input_1", 0, 0, {}]]]` in Keras 1/2, `[{"args": [{"class_name":
"__keras_tensor__", "config": {"keras_history": ["input_1", 0, 0]}}], "kwargs": {}}]` in Keras 3.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ...errors import InputError, UnsupportedError
from .state_graph import check_inputs, split_node, state_output

MODEL_CLASSES = ("Sequential", "Functional", "Model")


@dataclass
class Entry:
    name: str
    cls: str
    config: dict
    key: str = ""            # the layer's group in a .keras weights file: snake_case(class) + per-class number
    output_index: int = 0    # which output of the layer the next layer (or the model) takes
    build_shape: list | None = None   # Keras 3 build_config input_shape
    initial_state: list = field(default_factory=list)   # [(order among the model's inputs, Input name)]
    state_outputs: list = field(default_factory=list)   # [(order among the model's outputs, name, index >= 1)]


def snake_case(name: str) -> str:
    """Keras's `naming.to_snake_case`, which names the groups of `model.weights.h5`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def chain(model_config: dict, path) -> tuple[str, str, list[Entry]]:
    """(model class, model name, entries from the input layer, if any, to the output layer)."""
    cls = model_config.get("class_name")
    cfg = model_config.get("config")
    if cls == "Sequential":
        layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers")
        name = "model" if isinstance(cfg, list) else (cfg or {}).get("name") or "model"
        if not isinstance(layers, list):
            raise InputError("model config: a Sequential model without a 'layers' list", path=path)
        entries = [_entry(layer, path) for layer in layers]
    elif cls in ("Functional", "Model"):
        if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
            raise InputError(f"model config: a {cls} model without a 'layers' list", path=path)
        name = cfg.get("name") or "model"
        entries = _functional_chain(cfg, path)
    else:
        raise UnsupportedError(f"model class '{cls}' is not one rnnconvert reads (expected "
                               f"{', '.join(MODEL_CLASSES)}); subclassed models keep no architecture in "
                               f"the file", path=path)
    _number_by_class(entries if cls == "Sequential" else
                     [_entry(layer, path) for layer in cfg["layers"]], entries)
    return ("Sequential" if cls == "Sequential" else "Functional"), name, entries


def _entry(layer: dict, path) -> Entry:
    if not isinstance(layer, dict) or "class_name" not in layer:
        raise InputError(f"model config: a layer entry without 'class_name' ({str(layer)[:80]})", path=path)
    config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    name = config.get("name") or layer.get("name") or layer["class_name"]
    build = layer.get("build_config") if isinstance(layer.get("build_config"), dict) else {}
    return Entry(str(name), layer["class_name"], config, build_shape=build.get("input_shape"))


def _number_by_class(all_layers: list[Entry], entries: list[Entry]) -> None:
    """Keras names a .keras weight group by class with a per-class counter, in model.layers order."""
    used: dict[str, int] = {}
    keys = {}
    for e in all_layers:
        base = snake_case(e.cls)
        if base in used:
            used[base] += 1
            keys[e.name] = f"{base}_{used[base]}"
        else:
            used[base] = 0
            keys[e.name] = base
    for e in entries:
        e.key = keys.get(e.name, e.name)


def _refs(value) -> list:
    """input_layers / output_layers: [[name, node, tensor], ...] or a single [name, node, tensor]."""
    if isinstance(value, dict):
        value = list(value.values())
    if not value:
        return []
    if isinstance(value[0], str):
        return [value]
    return list(value)


def _functional_chain(cfg: dict, path) -> list[Entry]:
    layers = {layer.get("name") or (layer.get("config") or {}).get("name"): layer for layer in cfg["layers"]}
    inputs, outputs = _refs(cfg.get("input_layers")), _refs(cfg.get("output_layers"))
    states = [state_output(layers, r) for r in outputs]
    main = [r for r, st in zip(outputs, states) if st is None]
    if not inputs or len(main) != 1 or (len(inputs) > 1 and not any(states) and not _takes_states(layers)):
        raise UnsupportedError(f"the model has {_count(len(inputs), 'input')} and "
                               f"{_count(len(outputs), 'output')}; rnnconvert reads models with one input and "
                               "one output (and recurrent states as inputs and outputs)", path=path)
    entries: list[Entry] = []
    seen: set = set()                 # the walk is a loop, and its cycle check a set: linear in the chain
    fed: dict = {}                    # recurrent layer -> its initial-state refs
    name, tensor = main[0][0], main[0][2] if len(main[0]) > 2 else 0
    while True:
        layer = layers.get(name) if isinstance(name, str) else None
        if layer is None:
            raise InputError(f"model config: layer '{str(name)[:80]}' is referenced but not defined", path=path)
        if name in seen:
            raise InputError(f"model config: layer '{name}' is part of a cycle", path=path)
        seen.add(name)
        e = _entry(layer, path)
        e.name, e.output_index = name, int(tensor)
        entries.append(e)
        if e.cls == "InputLayer":
            break
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) != 1:
            raise UnsupportedError(f"layer is called {len(nodes)} times in the model (a shared layer); "
                                   "rnnconvert reads one chain of layers", path=path, layer=name)
        refs, initial, kw = split_node(e.cls, nodes[0])
        if initial:
            fed[name] = initial
        if kw:
            raise UnsupportedError(f"layer takes a tensor as call argument '{kw[0]}' (for example an initial "
                                   "state); rnnconvert reads one chain of layers", path=path, layer=name)
        if len(refs) != 1:
            shown = ", ".join(str(r[0]) for r in refs)
            raise UnsupportedError(f"layer has {len(refs)} inputs ({shown}); rnnconvert reads one chain of "
                                   "layers from one input to one output", path=path, layer=name)
        name, tensor = refs[0][0], refs[0][2] if len(refs[0]) > 2 else 0
    entries.reverse()
    names = [r[0] for r in inputs]
    check_inputs(fed, names, entries[0].name, path)
    by_name = {e.name: e for e in entries}
    for e in entries:
        e.initial_state = [(names.index(r[0]), r[0]) for r in fed.get(e.name, [])]
    via = set()
    for k, st in enumerate(states):
        if st is None:
            continue
        if st[0] not in by_name:
            raise UnsupportedError(f"the model returns a state of layer '{st[0]}', which is not on the path from "
                                   "the input to the output; rnnconvert reads one chain of layers", path=path)
        via.update(st[2])
        by_name[st[0]].state_outputs.append((k, st[2][0] if st[2] else None, st[1]))
    on_chain = {e.name for e in entries} | {n for refs in fed.values() for n, *_ in refs} | via
    off = [n for n in layers if n not in on_chain]
    if off:
        raise UnsupportedError(f"layers {', '.join(repr(n) for n in off[:10])}"
                               f"{f' (and {len(off) - 10} more)' if len(off) > 10 else ''} are not on the path from the input "
                               "to the output; rnnconvert reads one chain of layers", path=path)
    return entries


def _takes_states(layers: dict) -> bool:
    """Does a layer take an initial state (Keras 3 keyword, or Keras 2 tensors after the sequence)?"""
    for layer in layers.values():
        for node in layer.get("inbound_nodes") or []:
            if split_node(layer.get("class_name"), node)[1]:
                return True
    return False


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def input_shape(entries: list[Entry], model_config: dict) -> list | None:
    """The model's input shape [batch, time, features] as the config states it, if it does."""
    for e in entries[:2]:
        c = e.config
        for key in ("batch_input_shape", "batch_shape"):
            if isinstance(c.get(key), list):
                return c[key]
        if e.cls == "Embedding" and "input_length" in c:            # token ids [batch, time]
            length = c["input_length"]
            return [None, length[0] if isinstance(length, list) and length else length]
        if c.get("input_dim") is not None and e.cls != "Embedding":  # Keras 1
            return [None, c.get("input_length"), c["input_dim"]]
        if e.cls != "InputLayer":
            break
    cfg = model_config.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("build_input_shape"), list):
        return cfg["build_input_shape"]
    for e in entries:
        if isinstance(e.build_shape, list):
            return e.build_shape
    return None


def keras_major(version: str | None, config: dict, notes: list[str]) -> int:
    m = re.match(r"\s*(\d+)", version or "")
    if m:
        return int(m.group(1))
    text = json.dumps(config)
    if '"DTypePolicy"' in text or '"batch_shape"' in text:
        notes.append("no keras_version; the config is in Keras 3 form, read as Keras 3")
        return 3
    if '"units"' in text:
        notes.append("no keras_version; the config is in Keras 2 form, read as Keras 2")
        return 2
    notes.append("no keras_version; read as Keras 1")
    return 1
