"""MATLAB networks in .mat files -> the canonical model.

Reads `save('net.mat','net')` of a SeriesNetwork, a DAGNetwork that is a chain, a dlnetwork or a
Layer array (MCOS objects, v5 or v7.3), and the `layers` cell of structs rnnconvert writes
(`schemas/matlab.md`).  A layer's kind comes from its class (`nnet.cnn.layer.LSTMLayer`, or the
`Class` field), never from its name.  MATLAB's weights are the canonical ones: gate blocks along
rows (LSTM i,f,g,o; GRU r,z,h~), BiLSTM forward rows over backward rows, one bias (GRU
'recurrent-bias-after-multiplication': input biases over recurrent biases).  Input normalization
is an exact per-channel affine map folded into the first weighted layer (reported).
This module finds the network among the file's variables and checks its layers form a chain;
`build.py` turns the layers into the model, `bare.py` reads plain matrices by a mapping.
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError, UnsupportedError
from ...model import Model
from . import mcos
from .build import _value, build, fields
from .reader_layers import _text

NETWORKS = ("SeriesNetwork", "DAGNetwork", "dlnetwork", "LayerGraph")


def read(path, var: str | None = None, mapping=None, arch=None, **_options) -> Model:
    """`var`: the variable holding the network when several do; `mapping`: a YAML file (or dict)
    describing bare matrices (`bare.py`).  `arch` (the CLI's --arch) is a YAML file that may give
    either: `var: NAME` and/or a mapping's `layers:`."""
    path = str(path)
    if arch is not None:
        from .bare import load_mapping
        spec = load_mapping(arch)
        var = var or spec.get("var")
        if mapping is None and "layers" in spec:
            mapping = arch
    try:
        variables = mcos.load(path)
    except InputError:
        raise
    except Exception as e:          # a damaged or foreign file
        raise InputError(f"not a readable MAT-file: {type(e).__name__}: {e}", path=path) from None
    if mapping is not None:
        from .bare import read_bare
        return read_bare(path, variables, mapping)
    name, layers, skipped = _network_variable(variables, path, var)
    del variables
    model = build(layers, path, name, release=True)
    if skipped:
        model.source["picked"] = [_picked_note(name, skipped)]
    return model


def _picked_note(name: str, skipped: list[str]) -> str:
    which = ", ".join(f"'{v}'" for v in skipped)
    return (f"read variable '{name}', the one trained network in the file; {which} "
            f"{'holds' if len(skipped) == 1 else 'hold'} untrained layer definitions (no learned weights), "
            "left out (--var NAME picks another)")


# ------------------------------------------------------------------------------ finding the network

def _layer_list(value):
    """The layers of a network object, a layer array, or rnnconvert's cell of structs; else None."""
    if isinstance(value, mcos.MObject):
        if value.short in NETWORKS or value.classname.endswith("Network"):
            found = _find_layers(value.props, 0)
            return found if found is not None else []
        if _is_layer(value):
            return [value]
        return None
    if isinstance(value, list) and value and all(_is_layer(v) for v in value):
        return value
    return None


def _find_layers(props, depth):
    if depth > 3:
        return None
    if isinstance(props, dict):
        for key in ("Layers", "PrivateLayers", "LayersMap"):
            if key in props and _layer_list(props[key]) is not None:
                return _layer_list(props[key])
        for v in props.values():
            found = _find_layers(v.props if isinstance(v, mcos.MObject) else v, depth + 1)
            if found:
                return found
    return None


def _is_layer(v) -> bool:
    if isinstance(v, mcos.MObject):
        return v.classname.startswith("nnet.") and "Layer" in v.classname
    return isinstance(v, dict) and isinstance(v.get("Class"), str) and "Name" in v


def networks(variables: dict) -> tuple[dict, list[str]]:
    """({variable: layers} of the variables holding a network or layer array, [untrained ones left out]):
    a workspace saved with the untrained `layers` array next to the trained `net` holds one network."""
    found = {k: _layer_list(v) for k, v in variables.items()}
    found = {k: v for k, v in found.items() if v is not None}
    trained = {k: v for k, v in found.items() if _has_weights(v)}
    if not trained or len(trained) == len(found):
        return found, []
    return trained, [k for k in found if k not in trained]


def _has_weights(layers: list) -> bool:
    """Does any layer hold a learned array (a layer array straight from lstmLayer(...) holds none)?"""
    for layer in layers:
        try:
            _, p = fields(layer)
        except (TypeError, KeyError, AttributeError):
            continue
        for key in ("InputWeights", "Weights", "TrainedMean", "Scale"):
            try:
                if _value(p.get(key)) is not None:
                    return True
            except (TypeError, ValueError):
                continue
    return False


def _network_variable(variables: dict, path: str, var: str | None):
    """(name, layers, untrained variables left out)."""
    if var is not None:
        if var not in variables:
            raise InputError(f"no variable '{var}'; the file holds: {', '.join(variables) or 'nothing'}",
                             path=path)
        layers = _layer_list(variables[var])
        if layers is None:
            raise InputError(f"variable '{var}' is not a MATLAB network or layer array", path=path)
        return var, _chain(variables[var], layers, var, path), []
    found, skipped = networks(variables)
    if not found:
        raise InputError("no MATLAB network or layer array in the file (variables: "
                         f"{', '.join(variables) or 'none'}); for plain matrices give a mapping file "
                         "(--mapping map.yaml; schemas/matlab.md)", path=path)
    if len(found) > 1:
        raise InputError(f"several variables hold {'trained ' if skipped else ''}networks: {', '.join(found)}; "
                         "choose one with --var NAME", path=path)
    name, layers = next(iter(found.items()))
    return name, _chain(variables[name], layers, name, path), skipped


def _chain(value, layers: list, var: str, path: str) -> list:
    """The layers of a graph network when they form a chain in stored order; else refused."""
    if not isinstance(value, mcos.MObject) or value.short == "SeriesNetwork" or not layers:
        return layers
    conn = _find_key(value.props, "Connections", 0)
    n = len(layers)
    edges = None
    if isinstance(conn, dict) and "Source" in conn and "Destination" in conn:
        names = [_text(fields(layer)[1].get("Name")) for layer in layers]
        src = conn["Source"] if isinstance(conn["Source"], list) else [conn["Source"]]
        dst = conn["Destination"] if isinstance(conn["Destination"], list) else [conn["Destination"]]
        try:
            edges = sorted((names.index(_text(a).split("/")[0]), names.index(_text(b).split("/")[0]))
                           for a, b in zip(src, dst))
        except ValueError:
            edges = None
    elif isinstance(conn, np.ndarray) and conn.ndim == 2 and conn.shape[1] >= 2 and conn.dtype.kind in "fiu":
        edges = sorted((int(a) - 1, int(b) - 1) for a, b in conn[:, :2])
    if edges is None and n > 1:
        raise UnsupportedError(f"variable '{var}' is a {value.short} whose connections rnnconvert cannot "
                               "read, so it cannot tell whether the layers form a chain; export it with "
                               "matlab/rnnconvert_export.m", path=path)
    if edges is not None and edges != [(k, k + 1) for k in range(n - 1)]:
        raise UnsupportedError(f"variable '{var}' is a {value.short} whose layers do not form a chain "
                               f"(connections {[(a + 1, b + 1) for a, b in edges]}); rnnconvert converts "
                               "layer stacks", path=path)
    return layers


def _find_key(props, key, depth):
    if depth > 3:
        return None
    if isinstance(props, dict):
        if key in props:
            return props[key]
        for v in props.values():
            found = _find_key(v.props if isinstance(v, mcos.MObject) else v, key, depth + 1)
            if found is not None:
                return found
    return None
