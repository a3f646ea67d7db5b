"""Keras weights-only files (`model.save_weights`): no model_config, only named arrays.

Layouts: Keras 1/2 and tf.keras 2.x HDF5 (`layer_names` attribute, one group per layer whose
`weight_names` list `lstm_1_W_i:0` ... (Keras 1, one W/U/b per gate), `lstm_1/kernel:0` (Keras 2) or
`lstm/lstm_cell/kernel:0` (tf.keras)), and Keras 3 `.weights.h5` (`layers/<lstm|gru|...>/cell/vars/0..2`).
Each recurrent and dense layer is recovered from its weight names and shapes: the cell from the gate
multiple (kernel columns / recurrent rows: 4 LSTM, 3 GRU, 1 SimpleRNN) and the names (Keras 1 gate
letters i c f o / z r h); what the weights cannot say takes the defaults of the file's Keras era,
each one printed as an assumption.  The whole model needs its architecture (`--arch`, README).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import h5py

from ...errors import InputError, RnnConvertError, UnsupportedError
from ...model import InputSpec, Model, Recurrent
from ...model.assumptions import Assumption
from ...files.safety import check_hdf5, read_numeric
from ...files.text import read_yaml
from ..keras_json import graph
from . import container

KERAS1_GATE = re.compile(r"_([WUb])_([a-z])(?::\d+)?$")
CELL_CLASS = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}
ARCH_FIELDS = ("keras_version", "input_shape", "layers")


@dataclass
class Stored:
    name: str
    arrays: list                      # [(weight name, array)] in stored order
    key: str = ""                     # Keras 3: the group under layers/


@dataclass
class Recovered:
    name: str
    cls: str                          # Keras class: LSTM, GRU, SimpleRNN, CuDNNLSTM, Bidirectional, Dense, ...
    config: dict
    kind: str                         # lstm | gru | rnn | dense | other
    bidirectional: bool = False
    assumptions: list = field(default_factory=list)


@dataclass
class WeightsFile:
    path: str
    layers: list                      # Stored, in file order
    major: int                        # Keras era whose defaults apply
    era: str                          # for messages: "Keras 1", "Keras 2 (standalone)", ...
    standalone2: bool = False         # standalone Keras 2: hard_sigmoid gates by default


def is_weights_only(path) -> bool:
    try:
        if container.is_zip(path) or not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as f:
            return "model_config" not in f.attrs and ("layer_names" in f.attrs or
                                                       ("layers" in f and "vars" in f))
    except Exception:  # noqa: BLE001 - a probe answers, never raises
        return False


def load(path: str) -> WeightsFile:
    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"not a Keras weights file (cannot open as HDF5: {exc})", path=path) from None
    layers, arrays = [], []
    try:
        with f:
            budget = check_hdf5(f, path, what="Keras weights file")
            if "layer_names" in f.attrs:
                for name in container.attr_list(f, "layer_names"):
                    group = f.get(name)
                    arrays = []
                    if isinstance(group, h5py.Group):
                        for w in container.attr_list(group, "weight_names"):
                            if not isinstance(group.get(w), h5py.Dataset):
                                raise InputError(f"weight '{w}' is listed but missing; the file is damaged",
                                                 path=path, layer=name)
                            arrays.append((w, read_numeric(group[w], path, budget, layer=name)))
                    layers.append(Stored(name, arrays))
                version = container.text(f.attrs.get("keras_version"))
                names = [w for s in layers for w, _ in s.arrays]
                if version is None or any(KERAS1_GATE.search(w) for w in names) or version.startswith("1"):
                    return WeightsFile(path, layers, 1, "Keras 1")
                if version.endswith("-tf") or any("_cell/" in w for w in names):
                    return WeightsFile(path, layers, 2, f"tf.keras {version}")
                return WeightsFile(path, layers, 2, f"Keras {version} (standalone)", standalone2=True)
            arrays = {}
            names = {}

            def visit(name, obj):
                norm = name.replace("\\", "/")
                if isinstance(obj, h5py.Dataset) and norm.startswith("layers/"):
                    arrays[norm] = read_numeric(obj, path, budget)
                elif norm.endswith("/vars") and norm.count("/") == 2 and "name" in obj.attrs:
                    names[norm[:-len("/vars")]] = container.text(obj.attrs["name"])
            f.visititems(visit)
    except InputError:        # the arrays read go now: the error's traceback would keep them alive
        layers.clear()
        arrays.clear()
        raise
    keys = sorted({"/".join(k.split("/")[:2]) for k in arrays})
    layers = [Stored(names.get(k, k.split("/")[1]), container._vars_under(arrays, k), k) for k in keys]
    return WeightsFile(path, layers, 3, "Keras 3")


def _gate_multiple(kernel, rec) -> int | None:
    if kernel.ndim != 2 or rec.ndim != 2 or rec.shape[0] == 0 or rec.shape[1] % rec.shape[0]:
        return None
    g = rec.shape[1] // rec.shape[0]
    return g if kernel.shape[1] == rec.shape[1] and g in (1, 3, 4) else None


def _direction(arrays, wf: WeightsFile, hint: str) -> tuple[str, dict] | None:
    """(class, config) of one direction's arrays, or None when they are not a recurrent cell."""
    names = [n for n, _ in arrays]
    per_gate = [KERAS1_GATE.search(n) for n in names]
    if arrays and all(per_gate):
        letters = {m.group(2) for m in per_gate}
        cell = "lstm" if letters == set("icfo") else "gru" if letters == set("zrh") else None
        if cell is None or len(arrays) != (12 if cell == "lstm" else 9):
            return None
        H = int(arrays[1][1].shape[0])
        return CELL_CLASS[cell], {"units": H, "use_bias": True}
    if len(arrays) not in (2, 3):
        return None
    kernel, rec = arrays[0][1], arrays[1][1]
    g = _gate_multiple(kernel, rec)
    if g is None:
        return None
    cell = {4: "lstm", 3: "gru", 1: "rnn"}[g]
    if g == 1 and "gru" in hint:
        return None
    H = int(rec.shape[0])
    cfg = {"units": H, "use_bias": len(arrays) == 3}
    cls = CELL_CLASS[cell]
    if len(arrays) == 3:
        bias = arrays[2][1]
        if bias.shape == (2 * g * H,) and cell != "rnn":
            cls = "CuDNN" + cls                                  # two biases, one vector
        elif cell == "gru":
            cfg["reset_after"] = bias.ndim == 2
    return cls, cfg


def recover(s: Stored, wf: WeightsFile) -> Recovered:
    """One stored layer -> its Keras class and the config its weights imply (plus era defaults)."""
    hint = (s.key or s.name).lower()
    arrays = s.arrays
    if not arrays:
        return Recovered(s.name, "", {}, "other")
    sides = {"forward": [], "backward": []}
    for n, a in arrays:
        parts = n.split("/")
        side = next((p.split("_")[0] for p in parts[:-1] if p.startswith(("forward_", "backward_"))
                     or p in ("forward_layer", "backward_layer")), None)
        if side in sides:
            sides[side].append((n, a))
    if sides["forward"] and sides["backward"] and len(sides["forward"]) + len(sides["backward"]) == len(arrays):
        d = _direction(sides["forward"], wf, hint)
        if d is not None and d == _direction(sides["backward"], wf, hint):
            cls, cfg = d
            rec = Recovered(s.name, "Bidirectional", {}, _cell(cls), True)
            inner = dict(cfg, **_era_activations(cls, wf, rec))
            rec.config = {"name": s.name, "merge_mode": "concat",
                          "layer": {"class_name": cls, "config": dict(inner, name=f"forward_{s.name}")}}
            rec.assumptions.append(Assumption(
                f"layer '{s.name}': Bidirectional merge_mode 'concat' (the default; the weights do not store it)",
                "default", f"layer '{s.name}' merge_mode concat",
                f"--arch layers entry {{name: {s.name}, merge_mode: concat}}", settled_by=("merge_mode",)))
            return rec
    d = _direction(arrays, wf, hint)
    if d is not None:
        cls, cfg = d
        rec = Recovered(s.name, cls, {}, _cell(cls))
        rec.config = dict(cfg, name=s.name, **_era_activations(cls, wf, rec))
        return rec
    shapes = [a.shape for _, a in arrays]
    if len(arrays) in (1, 2) and len(shapes[0]) == 2 and (len(arrays) == 1 or shapes[1] == (shapes[0][1],)) \
            and "embed" not in hint:
        rec = Recovered(s.name, "Dense", {"name": s.name, "units": int(shapes[0][1]), "use_bias": len(arrays) == 2,
                                          "activation": "linear"}, "dense")
        rec.assumptions.append(Assumption(
            f"layer '{s.name}': Dense activation 'linear' (the weights do not store it)", "activation",
            f"layer '{s.name}' activation linear", f"--arch layers entry {{name: {s.name}, activation: linear}}",
            settled_by=("activation",)))
        return rec
    return Recovered(s.name, "", {}, "other")


def _cell(cls: str) -> str:
    return {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}[cls.replace("CuDNN", "")]


def _era_activations(cls: str, wf: WeightsFile, rec: Recovered) -> dict:
    if cls.startswith("CuDNN"):
        return {}
    cfg = {"activation": "tanh"}
    if cls != "SimpleRNN":
        gate = "hard_sigmoid" if wf.major < 2 or wf.standalone2 else "sigmoid"
        cfg["recurrent_activation"] = gate
        key = 'inner_activation' if wf.major < 2 else 'recurrent_activation'
        what = f"{key} '{gate}'" + (" (0.2x+0.5)" if gate == "hard_sigmoid" else "")
        rec.assumptions.append(Assumption(
            f"layer '{rec.name}': activation 'tanh', {what}: the {wf.era} defaults (the weights do not store "
            "activations)", "activation", f"layer '{rec.name}' activation tanh, {key} {gate}",
            f"--arch layers entry {{name: {rec.name}, activation: tanh, {key}: {gate}}}",
            settled_by=("activation", key)))
    else:
        rec.assumptions.append(Assumption(
            f"layer '{rec.name}': activation 'tanh': the {wf.era} default", "activation",
            f"layer '{rec.name}' activation tanh", f"--arch layers entry {{name: {rec.name}, activation: tanh}}",
            settled_by=("activation",)))
    return cfg


KERAS1_ORDER = {"lstm": "icfo", "gru": "zrh"}     # the stored order `layers._keras1_per_gate` reads


def _keras1_sorted(arrays: list) -> list:
    """Keras 1 per-gate arrays in the order W, U, b of gate i, c, f, o (GRU z, r, h), whatever their
    order in the file."""
    found = [KERAS1_GATE.search(n) for n, _ in arrays]
    if not arrays or not all(found):
        return arrays
    letters = {m.group(2) for m in found}
    order = next((o for o in KERAS1_ORDER.values() if set(o) == letters), None)
    if order is None:
        return arrays
    rank = {(g, p): 3 * order.index(g) + "WUb".index(p) for g in order for p in "WUb"}
    return [x for _, x in sorted(zip(found, arrays), key=lambda t: rank[(t[0].group(2), t[0].group(1))])]


def _lookup(wf: WeightsFile):
    by = {s.name: s for s in wf.layers}

    def lookup(entry):
        s = by.get(entry.name)
        if s is None:
            return None, f"/{entry.name}"
        arrays = s.arrays
        half = len(arrays) // 2
        if entry.cls == "Bidirectional":
            arrays = _keras1_sorted(arrays[:half]) + _keras1_sorted(arrays[half:])
        else:
            arrays = _keras1_sorted(arrays)
        return arrays, s.key or f"/{entry.name}"
    return lookup


def summary(wf: WeightsFile) -> str:
    parts = []
    for s in wf.layers:
        r = recover(s, wf)
        if r.kind in ("lstm", "gru", "rnn"):
            parts.append(f"{s.name} ({r.kind}{', bidirectional' if r.bidirectional else ''})")
        elif r.kind == "dense":
            parts.append(f"{s.name} (dense)")
        else:
            parts.append(f"{s.name} ({'no weights' if not s.arrays else 'not recognised'})")
    return ", ".join(parts)


def per_layer(path: str) -> list:
    from ..found import Found
    wf = load(path)
    out = []
    for s in wf.layers:
        r = recover(s, wf)
        if r.kind in ("lstm", "gru", "rnn"):
            out.append(Found(s.name, r.kind, r.bidirectional, f"weights-only {wf.era} layer '{s.name}'",
                             (lambda r=r: _one_layer(path, wf, r))))
    return out


def _one_layer(path, wf, r: Recovered):
    from ..keras_json.layers import Converter
    cfg = dict(r.config)
    if r.cls == "Bidirectional":
        cfg["layer"] = dict(cfg["layer"], config=dict(cfg["layer"]["config"], return_sequences=True))
    else:
        cfg["return_sequences"] = True
    conv = Converter(path, wf.major, _lookup(wf), model_class="Functional", features=None)
    layer = conv.convert(graph.Entry(r.name, r.cls, cfg, r.name))
    return [layer], [f"read from a weights-only {wf.era} file"] + r.assumptions, _names(conv)


def _names(conv) -> dict:
    """The standalone model's extra source entries: a Keras 1 layer's own array names."""
    return {"keras1_names": conv.keras1_names} if conv.keras1_names else {}


def read(path: str, arch=None) -> Model:
    """The whole model of a weights-only file: needs `arch` (a YAML file or mapping, README)."""
    wf = load(path)
    if arch is None:
        raise InputError(f"a weights-only Keras file (save_weights: no model_config) holding {summary(wf)}; "
                         "the whole model needs its architecture: pass --arch arch.yaml listing the layers in "
                         "order (layers: [{name: ...}, ...]; README 'Keras weights-only files'), or convert one "
                         "recurrent layer with --layer NAME", path=path)
    spec = _load_arch(arch, path)
    major = int(spec.get("keras_version", wf.major))
    wf.major = major
    entries, assumptions, problems = [], [], []
    by = {s.name: s for s in wf.layers}
    for k, item in enumerate(spec["layers"]):
        item = {"name": item} if isinstance(item, str) else dict(item)
        name = str(item.pop("name", ""))
        cls = item.pop("class", None)
        if name in by:
            r = recover(by[name], wf)
            if cls is None and not r.cls:
                problems.append(f"layers[{k}] '{name}': its weights are not a recurrent or dense layer "
                                f"rnnconvert recognises; give its class")
                continue
            cls = cls or r.cls
            cfg = dict(r.config) if cls == r.cls else {"name": name}
            assumptions += [a for a in r.assumptions                  # a default the entry gives is no assumption
                            if not (a.settled_by and all(key in item for key in a.settled_by))]
        elif cls is None:
            problems.append(f"layers[{k}] '{name}': no such layer in the file (layers: {summary(wf)}); a layer "
                            "without weights needs its class (class: Activation, ...)")
            continue
        else:
            cfg = {"name": name}
        if cls == "Bidirectional" and item:
            inner = dict(cfg.get("layer") or {})
            inner["config"] = dict(inner.get("config") or {}, **{k2: v for k2, v in item.items() if k2 != "merge_mode"})
            cfg["layer"] = inner
            if "merge_mode" in item:
                cfg["merge_mode"] = item["merge_mode"]
        else:
            cfg.update(item)
        entries.append(graph.Entry(name, cls, cfg, name))
    if problems:
        raise InputError("invalid architecture for a weights-only file: " + "; ".join(problems),
                         path=str(arch) if not isinstance(arch, dict) else path)
    shape = spec.get("input_shape")
    features = int(shape[-1]) if isinstance(shape, list) and shape and isinstance(shape[-1], int) else None
    from ..keras_json.layers import Converter
    conv = Converter(path, major, _lookup(wf), model_class="Sequential", features=features)
    layers, errors = [], []
    for e in entries:
        try:
            layer = conv.convert(e)
        except RnnConvertError as exc:
            errors.append(exc)
            conv.features, conv.seq = None, True
            continue
        if layer is not None:
            layers.append(layer)
    if errors:
        from ..keras_json.build import combined
        raise combined(errors, path)
    if not any(isinstance(x, Recurrent) for x in layers):
        raise UnsupportedError("the architecture has no recurrent layer; nothing to convert", path=path)
    time_steps = shape[0] if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[0], int) else None
    source = {"format": "keras", "container": "h5 weights-only", "keras_version": None, "era": wf.era,
              "assumptions": assumptions, "notes": conv.notes,
              **({"keras1_names": conv.keras1_names} if conv.keras1_names else {})}
    return Model(layers, InputSpec(name="input", features=int(conv.input_features), time_steps=time_steps),
                 name=os.path.splitext(os.path.basename(path))[0], source=source).validate(path)


def _load_arch(arch, path) -> dict:
    origin = str(arch)
    if not isinstance(arch, dict):
        arch = read_yaml(arch, "architecture")
    problems = []
    if not isinstance(arch, dict):
        raise InputError(f"the architecture must be a mapping with a 'layers' list, got {type(arch).__name__}",
                         path=origin)
    unknown = sorted(set(arch) - set(ARCH_FIELDS))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(ARCH_FIELDS)}")
    layers = arch.get("layers")
    if not isinstance(layers, list) or not layers or not all(
            isinstance(x, str) or (isinstance(x, dict) and isinstance(x.get("name"), str)) for x in layers):
        problems.append("layers: expected a list of layer names or mappings with a 'name'")
    v = arch.get("keras_version", 1)
    if v not in (1, 2, 3):
        problems.append(f"keras_version: {v!r}, expected 1, 2 or 3")
    shape = arch.get("input_shape")
    if shape is not None and not (isinstance(shape, list) and len(shape) == 2
                                  and all(d is None or (isinstance(d, int) and d > 0) for d in shape)):
        problems.append(f"input_shape: {shape!r}, expected [time, features] (time may be null)")
    if problems:
        raise InputError("invalid architecture for a weights-only file: " + "; ".join(problems), path=origin)
    return arch
