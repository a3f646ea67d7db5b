"""Recurrent states in a Keras functional config: `Input` layers passed as a recurrent layer's
`initial_state` (Keras 3: the node's `initial_state` keyword; Keras 2: tensors after the sequence in the
node's list) and `return_state=True` outputs `[y, states...]` among the model's outputs, directly or
through linear `Activation` layers (what rnnconvert's writer adds to name them).  `graph.py` walks the
chain; this module tells the state tensors apart and checks them; `ports` turns them into canonical
`StatePort`s (layout batch_size, one per Keras tensor).
"""
from __future__ import annotations

from ...errors import UnsupportedError

RECURRENT = ("LSTM", "GRU", "SimpleRNN", "Bidirectional", "CuDNNLSTM", "CuDNNGRU", "RNN")


def state_output(layers: dict, ref) -> tuple[str, int, list[str]] | None:
    """(recurrent layer, index >= 1 in its [y, states...], layers passed through) that the model output
    `ref` is a state of, or None when it is not a state (through linear Activation layers only)."""
    name, index, via = ref[0], int(ref[2]) if len(ref) > 2 else 0, []
    for _ in range(len(layers) + 1):
        layer = layers.get(name) if isinstance(name, str) else None
        if layer is None:
            return None
        config = layer.get("config") or {}
        cls = layer.get("class_name")
        if cls == "Activation" and config.get("activation") == "linear":
            nodes = layer.get("inbound_nodes") or []
            refs = _refs_of(nodes[0]) if len(nodes) == 1 else []
            if len(refs) != 1:
                return None
            via.append(name)
            name, index = refs[0][0], int(refs[0][2]) if len(refs[0]) > 2 else 0
            continue
        inner = (config.get("layer") or {}).get("config") or {} if cls == "Bidirectional" else config
        if cls in RECURRENT and inner.get("return_state") and index >= 1:
            return name, index, via
        return None
    return None


def _refs_of(node) -> list:
    return _node_inputs(node)[0]


def split_node(cls: str, node) -> tuple[list, list, list[str]]:
    """(sequence refs, initial-state refs, other keyword arguments that carry tensors) of one inbound node."""
    if isinstance(node, dict) and cls in RECURRENT:                # Keras 3
        kwargs = node.get("kwargs") or {}
        refs, kw = _node_inputs({"args": node.get("args", []),
                                 "kwargs": {k: v for k, v in kwargs.items() if k != "initial_state"}})
        return refs, _keras3_tensors(kwargs.get("initial_state")), kw
    refs, kw = _node_inputs(node)
    if cls in RECURRENT and len(refs) > 1:                        # Keras 2: [x, *initial_state]
        return refs[:1], refs[1:], kw
    return refs, [], kw


def check_inputs(state_inputs: dict, model_inputs: list, main: str, path) -> None:
    """Every model input other than `main` feeds exactly one initial state, and only model inputs do.
    `state_inputs`: {recurrent layer: [refs]}."""
    fed: dict[str, str] = {}
    for layer, refs in state_inputs.items():
        for r in refs:
            if r[0] not in model_inputs or r[0] == main:
                raise UnsupportedError(f"its initial state comes from '{r[0]}', which is not an input of the model "
                                       "(a state passed from layer to layer, as in an encoder-decoder); rnnconvert "
                                       "reads initial states given as model inputs", path=path, layer=layer)
            if r[0] in fed:
                raise UnsupportedError(f"the state input '{r[0]}' is the initial state of both '{fed[r[0]]}' and "
                                       f"'{layer}'; rnnconvert reads one state input per state", path=path)
            fed[r[0]] = layer
    unused = [n for n in model_inputs if n != main and n not in fed]
    if unused:
        raise UnsupportedError(f"the model has {len(model_inputs)} inputs and '{unused[0]}' is neither the "
                               "sequence nor an initial state of a recurrent layer; rnnconvert reads one input "
                               "and the initial states", path=path)


def ports(model, entries, path):
    """The state inputs and outputs of the chain's `entries` (`Entry.initial_state`, `Entry.state_outputs`)
    as canonical ports, in the order of the model's inputs and outputs."""
    from ...model import StatePort
    from .state_io import slots
    by_name = {layer.name: layer for layer in model.recurrent_layers}
    ins, outs = [], []
    for e in entries:
        if not (e.initial_state or e.state_outputs):
            continue
        layer = by_name.get(e.name)
        if layer is None:
            raise UnsupportedError("its states are inputs or outputs of the model, but it is not read as a "
                                   "recurrent layer", path=path, layer=e.name)
        kinds = slots(layer)
        if e.initial_state and len(e.initial_state) != len(kinds):
            raise UnsupportedError(f"initial_state has {len(e.initial_state)} tensors, expected {len(kinds)} "
                                   f"({', '.join(s for _, s in kinds)} of each direction)", path=path, layer=e.name)
        bi = len(layer.weights) > 1
        for (order, name), (d, s) in zip(e.initial_state, kinds):
            ins.append((order, StatePort(name, s, [layer.name], "batch_size", d if bi else None)))
        for order, name, index in e.state_outputs:
            if index > len(kinds):
                raise UnsupportedError(f"the model returns its output #{index}, and it has {len(kinds)} states",
                                       path=path, layer=e.name)
            d, s = kinds[index - 1]
            name = name or f"{layer.name}_{('forward_', 'backward_')[d] if bi else ''}{s}"
            outs.append((order, StatePort(name, s, [layer.name], "batch_size", d if bi else None)))
    return [p for _, p in sorted(ins, key=lambda t: t[0])], [p for _, p in sorted(outs, key=lambda t: t[0])]


# -- inbound nodes ----------------------------------------------------------------------------------

def _node_inputs(node) -> tuple[list, list[str]]:
    """(tensor references [name, node, tensor], names of keyword arguments that carry tensors)."""
    if isinstance(node, dict):                      # Keras 3
        refs = _keras3_tensors(node.get("args", []))
        kw = [k for k, v in (node.get("kwargs") or {}).items() if _keras3_tensors(v)]
        return refs, kw
    refs, kw = [], []
    if node and isinstance(node[0], str):           # TF op layers: one bare [name, node, tensor, kwargs]
        node = [node]
    for item in node:                               # Keras 1 / 2: [name, node, tensor(, kwargs)]
        refs.append(item[:3])
        if len(item) > 3 and isinstance(item[3], dict):
            kw += [k for k, v in item[3].items() if _keras2_tensors(v)]
    return refs, kw


def _keras3_tensors(obj) -> list:
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            return [obj.get("config", {}).get("keras_history", ["?", 0, 0])]
        return [t for v in obj.values() for t in _keras3_tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _keras3_tensors(v)]
    return []


def _keras2_tensors(obj) -> bool:
    if isinstance(obj, list):
        if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int):
            return True
        return any(_keras2_tensors(v) for v in obj)
    if isinstance(obj, dict):
        return obj.get("class_name") == "__keras_tensor__" or any(_keras2_tensors(v) for v in obj.values())
    return False
