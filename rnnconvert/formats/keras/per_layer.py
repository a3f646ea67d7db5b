"""Keras recurrent layers as per-layer conversion candidates (`rnnconvert.formats.per_layer`).

Every LSTM/GRU/SimpleRNN/CuDNN*/RNN(cell) layer of the stored config is found wherever it sits:
Sequential or Functional (several inputs, branches, custom layers around it), nested models,
Bidirectional wrappers.  Each converts with the reader's own `Converter`, as a layer returning its
sequence (return_sequences=True; stateful layers start from zero states).  A weights-only file has
no config: its layers are recovered from the weight names and shapes (`weights_only.py`).
"""
from __future__ import annotations

import h5py

from ...errors import InputError, RnnConvertError
from ...files.safety import check_hdf5, read_numeric
from ...model.assumptions import Assumption
from ..found import Found
from ..keras_json import graph
from . import container, weights_only
from ..keras_json.layers import CELL_CLASSES, RNN_CELLS, Converter

RECURRENT_CLASSES = (*RNN_CELLS, "RNN", "Bidirectional")


def scan(path: str, arch=None, accept_windows_paths: bool = False, **_options) -> list[Found]:
    if weights_only.is_weights_only(path):
        return weights_only.per_layer(path)
    try:
        saved = container.open_file(path, accept_windows_paths=accept_windows_paths)
    except RnnConvertError:
        return []
    if not accept_windows_paths and saved.windows_refusal([], path) is not None:
        return []          # Keras cannot load these weights: per layer refused too, as the whole model is
    notes: list[str] = []
    major = graph.keras_major(saved.keras_version, saved.config, notes)
    found: list[Found] = []
    for entry, where in _walk(saved.config, path, "model"):
        kind, bidirectional = _kind(entry)
        if kind is None:
            continue
        found.append(Found(entry.name, kind, bidirectional, where,
                           (lambda e=entry: _build(path, saved, major, e, notes))))
    return found


def _kind(e: graph.Entry) -> tuple[str | None, bool]:
    cls, cfg = e.cls, e.config
    if cls in RNN_CELLS:
        return RNN_CELLS[cls], False
    if cls == "RNN":
        cell = cfg.get("cell")
        return (CELL_CLASSES.get(cell.get("class_name")) if isinstance(cell, dict) else None), False
    if cls in ("Bidirectional", "TimeDistributed"):
        inner = cfg.get("layer") or {}
        k, _ = _kind(graph.Entry(e.name, inner.get("class_name"), inner.get("config") or {}))
        return k, cls == "Bidirectional" and k is not None
    return None, False


def _layer_dicts(model_config: dict) -> list[dict]:
    cfg = model_config.get("config")
    layers = cfg if isinstance(cfg, list) else (cfg or {}).get("layers") if isinstance(cfg, dict) else None
    return [x for x in layers or [] if isinstance(x, dict)]


def _walk(model_config: dict, path: str, where: str, prefix: str = ""):
    """(entry, where) for every layer of the config, nested models included, with .keras keys
    (a nested model's layers live under `layers/<model key>/layers/<key>`)."""
    dicts = _layer_dicts(model_config)
    entries = [graph._entry(x, path) for x in dicts]
    graph._number_by_class(entries, entries)
    for x, e in zip(dicts, entries):
        e.key = prefix + e.key
        if e.cls in graph.MODEL_CLASSES:
            yield from _walk(x, path, f"{where} > {e.cls} '{e.name}'", f"{e.key}/layers/")
        else:
            yield e, f"{e.cls} layer '{e.name}' in {where}"


def _build(path, saved, major, entry: graph.Entry, notes):
    cfg = dict(entry.config)
    if entry.cls == "TimeDistributed":
        inner = cfg.get("layer") or {}
        e = graph.Entry(entry.name, inner.get("class_name"), dict(inner.get("config") or {}), entry.key)
        notes = notes + [f"layer '{entry.name}': the recurrent layer inside TimeDistributed, converted alone "
                         "(it runs over the inner time axis)"]
        cfg, entry = e.config, e
    cfg["return_sequences"], cfg["return_state"] = True, False
    if entry.cls == "Bidirectional":
        inner = dict(cfg.get("layer") or {})
        inner["config"] = dict(inner.get("config") or {}, return_sequences=True, return_state=False)
        cfg["layer"] = inner
        back = cfg.get("backward_layer")
        if isinstance(back, dict):
            cfg["backward_layer"] = dict(back, config=dict(back.get("config") or {}, return_sequences=True,
                                                           return_state=False))
    e = graph.Entry(entry.name, entry.cls, cfg, entry.key)
    conv = Converter(path, major, _lookup(path, saved), model_class="Functional", features=None,
                     allow_stateful=True)
    layer = conv.convert(e)
    extra = []
    if entry.config.get("stateful"):
        extra.append(Assumption(f"layer '{entry.name}' is stateful in the source; the standalone layer starts "
                                "every sequence from zero states", "default",
                                f"stateful layer '{entry.name}' starts from zero states",
                                "save the model with stateful=False (the file does not hold the states carried "
                                "between calls)"))
    return [layer], list(notes) + conv.notes + extra, weights_only._names(conv)


def _lookup(path, saved):
    """The container's lookup, falling back to a search of every h5 group for the layer's weights
    (a layer of a nested model keeps them in the nested model's group)."""
    def lookup(entry):
        found, where = saved.layer_weights(entry)
        if found or saved.container != "h5":
            return found, where
        return _search_h5(path, entry.name), where
    return lookup


def _search_h5(path, name):
    try:
        with h5py.File(path, "r") as f:
            budget = check_hdf5(f, path, what="Keras HDF5 file")
            root = f.get("model_weights")
            for group in (root.values() if isinstance(root, h5py.Group) else []):
                if not isinstance(group, h5py.Group):
                    continue
                names = [n for n in container.attr_list(group, "weight_names") if name in n.split("/")[:-1]]
                if names:
                    return [(n, read_numeric(group[n], path, budget, layer=name)) for n in names]
    except (OSError, KeyError) as exc:
        raise InputError(f"cannot read the weights of layer '{name}' ({exc})", path=path) from None
    return None
