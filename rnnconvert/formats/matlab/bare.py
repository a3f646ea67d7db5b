"""Bare matrices (`save('w.mat','W','R','b')`) described by a mapping YAML -> the canonical model.

The mapping lists the layers in order; each names its MATLAB layer function and maps the layer's
properties to variables.  A list of names is stacked along rows (MATLAB's [a; b; c]), a name
ending in `'` is transposed first.  `RecurrentBias` (LSTM, GRU) is a second bias: summed into
the LSTM's one Bias (the same function), kept as a GRU's recurrent bias:

    layers:
      - {layer: fullyConnectedLayer, Weights: w_input, Bias: b_input}
      - {layer: tanhLayer}
      - {layer: lstmLayer, InputWeights: [w_ii, w_if, w_ig, w_io],
         RecurrentWeights: [w_hi, w_hf, w_hg, w_ho], Bias: [b_ii, b_if, b_ig, b_io],
         RecurrentBias: [b_hi, b_hf, b_hg, b_ho], OutputMode: sequence}
      - {layer: fullyConnectedLayer, Weights: w_output, Bias: b_output}
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError
from ...files.text import read_yaml

PKG = "nnet.cnn.layer."
LAYERS = {"lstmLayer": "LSTMLayer", "bilstmLayer": "BiLSTMLayer", "gruLayer": "GRULayer",
          "fullyConnectedLayer": "FullyConnectedLayer", "reluLayer": "ReLULayer", "tanhLayer": "TanhLayer",
          "sigmoidLayer": "SigmoidLayer", "softmaxLayer": "SoftmaxLayer", "dropoutLayer": "DropoutLayer"}
ARRAYS = ("InputWeights", "RecurrentWeights", "Bias", "RecurrentBias", "Weights", "HiddenState", "CellState")


def load_mapping(mapping) -> dict:
    if isinstance(mapping, dict):
        return mapping
    spec = read_yaml(mapping, "mapping") or {}
    if not isinstance(spec, dict):
        raise InputError(f"the mapping must be a YAML mapping with 'layers', found {type(spec).__name__}",
                         path=str(mapping))
    return spec


def read_bare(path: str, variables: dict, mapping):
    from .build import build
    spec = load_mapping(mapping)
    where_map = str(mapping) if not isinstance(mapping, dict) else "mapping"
    entries = spec.get("layers") if isinstance(spec, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError("the mapping needs a non-empty list 'layers' (see schemas/matlab.md)", path=where_map)
    problems, layers = [], []
    for k, entry in enumerate(entries):
        where = f"layers[{k}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("layer"), str) or entry["layer"] not in LAYERS:
            problems.append(f"{where}: 'layer' must be one of {', '.join(LAYERS)}")
            continue
        d = {"Name": str(entry.get("Name", f"{entry['layer']}_{k + 1}")), "Class": PKG + LAYERS[entry["layer"]]}
        for key, value in entry.items():
            if key in ("layer", "Name"):
                continue
            if key in ARRAYS and not (isinstance(value, str) or isinstance(value, list) and value
                                      and all(isinstance(v, str) for v in value)):
                problems.append(f"{where}.{key}: expected a variable name or a list of names, found "
                                f"{type(value).__name__}")
            elif key in ARRAYS:
                try:
                    d[key] = _stack(variables, value)
                except KeyError as e:
                    problems.append(f"{where}.{key}: no variable {e.args[0]} in the file "
                                    f"(variables: {', '.join(variables)})")
            else:
                d[key] = value
        if "RecurrentWeights" in d and isinstance(d.get("RecurrentWeights"), np.ndarray):
            d["NumHiddenUnits"] = d["RecurrentWeights"].shape[1]
            rb = d.pop("RecurrentBias", None)
            if rb is not None:
                if d["Class"].endswith("GRULayer"):
                    d["ResetGateMode"] = "recurrent-bias-after-multiplication"
                    d["Bias"] = np.concatenate([d["Bias"].reshape(-1), rb.reshape(-1)])
                else:
                    d["Bias"] = d["Bias"].reshape(-1) + rb.reshape(-1)
        layers.append(d)
    if problems:
        raise InputError("; ".join(problems), path=where_map)
    model = build(layers, path, "mapping")
    model.source["mapping"] = where_map
    return model


def _stack(variables: dict, value) -> np.ndarray:
    names = value if isinstance(value, list) else [value]
    parts = []
    for n in names:
        n = str(n)
        transpose = n.endswith("'")
        key = n[:-1] if transpose else n
        if key not in variables or not isinstance(variables[key], np.ndarray):
            raise KeyError(key)
        a = np.asarray(variables[key])
        a = a.reshape(-1, 1) if a.ndim == 1 else a
        parts.append(a.T if transpose else a)
    if len(parts) == 1:
        return parts[0]
    if all(p.ndim == 2 and 1 in p.shape for p in parts):
        return np.concatenate([p.reshape(-1) for p in parts]).reshape(-1, 1)
    return np.concatenate(parts, axis=0)
