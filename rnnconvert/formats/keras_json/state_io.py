"""A model with state ports as a Keras 3 functional model: one `Input` per state tensor, the recurrent layer
called with `initial_state=[...]` and `return_state=True`, the model's outputs `[y, states...]`.

Keras gives each direction of each layer its own state tensors (`[batch, size]`; a Bidirectional layer
takes `[h_fw, c_fw, h_bw, c_bw]` and returns `[y, h_fw, c_fw, h_bw, c_bw]`), so a port of several rows
(`[rows, batch, size]`: ONNX `initial_h` of a bidirectional node, PyTorch `h0` of several layers) becomes one
Keras input or output per row, named `<port>_<row>`; a port of one row keeps its name.  A state output is a
linear `Activation` layer named after it (Keras names a model's outputs after the layers making them), an
exact copy of the state.  Refused: an LSTM whose h comes from a state input and whose c does not (or the
reverse; Keras's LSTM takes both in `initial_state`), and one direction of a layer fed while the other is not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import model as M
from ...model import states
from .specs import KLayer


@dataclass
class KState:
    """One Keras state tensor: a row of a canonical port."""
    name: str            # the Keras Input layer (state input) or linear Activation layer (state output)
    port: str
    row: int
    layer: str           # canonical recurrent layer
    direction: int
    state: str           # h or c


def keras_states(model: M.Model, ports, unique) -> list[KState]:
    """The Keras tensors of `ports` in order, each row of a port one tensor."""
    out = []
    for p in ports:
        where = states.rows(model, p)
        for r, (k, d) in enumerate(where):
            base = p.name if len(where) == 1 else f"{p.name}_{r}"
            what = f"row {r} of state '{p.name}'" if len(where) > 1 else f"state '{p.name}'"
            out.append(KState(unique(base, what), p.name, r, model.layers[k].name, d, p.state))
    return out


def slots(layer: M.Recurrent) -> list[tuple[int, str]]:
    """(direction, state) in Keras's order of initial_state and of return_state's extra outputs."""
    kinds = ("h", "c") if layer.cell == "lstm" else ("h",)
    return [(d, s) for d in range(len(layer.weights)) for s in kinds]


def initial_states(model: M.Model, ins: list[KState]) -> tuple[dict, list[str]]:
    """({canonical layer: [Keras input names in initial_state order]}, problems)."""
    fed = {(s.layer, s.direction, s.state): s.name for s in ins}
    out, problems = {}, []
    for layer in model.recurrent_layers:
        want = slots(layer)
        have = [fed.get((layer.name, d, s)) for d, s in want]
        if not any(have):
            continue
        if not all(have):
            missing = [f"{s} of the {layer.direction_names()[d]} direction" for (d, s), n in zip(want, have) if not n]
            problems.append(f"layer '{layer.name}': state inputs feed some of its initial states but not "
                            f"{', '.join(missing)}; Keras's {layer.cell.upper()} layer takes all of them together "
                            f"in initial_state=[{', '.join(s for _, s in want)}]: give every state of the layer "
                            "as an input, or none")
            continue
        out[layer.name] = have
    return out, problems


def _layer(model: M.Model, s: KState) -> M.Recurrent:
    return next(layer for layer in model.recurrent_layers if layer.name == s.layer)


def returned_index(model: M.Model, s: KState) -> int:
    """The output index of `s` in its layer's return_state outputs ([y, states...])."""
    return 1 + slots(_layer(model, s)).index((s.direction, s.state))


def state_size(model: M.Model, s: KState) -> int:
    layer = _layer(model, s)
    return layer.state_size if s.state == "h" else layer.hidden


@dataclass
class StatePlan:
    """The Keras form of a model's state ports (`plan`)."""
    inputs: list[KState]
    outputs: list[KState]
    initial: dict          # Keras layer name -> [state input names in initial_state order]
    returns: set           # Keras layer names called with return_state=True
    spec_of: dict          # canonical layer -> Keras layer name


def plan(model: M.Model, planner) -> tuple[StatePlan | None, list[str]]:
    """(the ports' Keras form, problems), after `planner.plan()` named the layers; None without ports."""
    if not model.has_state_io:
        return None, []
    ins = keras_states(model, model.state_inputs, planner.unique)
    outs = keras_states(model, model.state_outputs, planner.unique)
    initial, problems = initial_states(model, ins)
    spec_of = planner.spec_of
    return StatePlan(ins, outs, {spec_of[k]: v for k, v in initial.items()},
                     {spec_of[s.layer] for s in outs} | {spec_of[k] for k in initial}, spec_of), problems


def notes(sp: StatePlan) -> list[str]:
    split = sorted({s.port for s in sp.inputs + sp.outputs if s.name != s.port})
    text = [f"state inputs {', '.join(s.name for s in sp.inputs) or 'none'} and state outputs "
            f"{', '.join(s.name for s in sp.outputs) or 'none'} kept as Keras inputs and outputs [batch, size]"]
    if split:
        text.append(f"states {', '.join(split)}: Keras takes and returns each direction of each layer as a tensor of "
                    "its own, so each row r of these ports is the Keras input or output '<name>_<r>' (or renamed "
                    "as noted)")
    return text


# -- running a written file --------------------------------------------------------------------------

def feed_rows(model: M.Model, feeds: dict | None, batch: int) -> list:
    """The Keras inputs after x, in order: each row of each of `model`'s state inputs ([batch, size]),
    from `feeds` or, where not fed, the model's initial states."""
    given = {**states.default_feeds(model, batch), **(feeds or {})}
    out = []
    for p in model.state_inputs:
        v = given[p.name]
        out += [v] if p.layout == "batch_size" else list(v)
    return out


def state_results(model: M.Model, outs: list) -> dict:
    """{state output name: array} from a Keras model's outputs after y (one per row of each port, in order)."""
    want = sum(len(states.rows(model, p)) for p in model.state_outputs)
    if len(outs) != want:
        raise ValueError(f"the model returns {len(outs) + 1} outputs, expected the output and {want} states")
    found, k = {}, 0
    for p in model.state_outputs:
        n = len(states.rows(model, p))
        found[p.name] = outs[k] if p.layout == "batch_size" else np.stack(outs[k:k + n])
        k += n
    return found


# -- the functional config --------------------------------------------------------------------------

def _tensor(name: str, index: int, shape) -> dict:
    """A reference to output `index` of layer `name` in a Keras 3 inbound node."""
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(shape), "dtype": "float32", "keras_history": [name, 0, index]}}


def _node(major: int, first: tuple, extra: list[tuple] = ()) -> list | dict:
    """One inbound node: `first` = (layer, index, shape) and the `extra` tensors, Keras 3's args/kwargs or
    Keras 2's (and TF.js's) list, whose tensors after the first are the initial states."""
    if major < 3:
        return [[name, 0, index, {}] for name, index, _ in [first, *extra]]
    return {"args": [_tensor(*first)], "kwargs": {"initial_state": [_tensor(*t) for t in extra]} if extra else {}}


def _input_entry(name: str, shape: list, dtype: str, full: bool, major: int = 3) -> dict:
    if major < 3:
        e = {"class_name": "InputLayer", "config": {"batch_input_shape": shape, "dtype": dtype, "sparse": False,
                                                     "ragged": False, "name": name}}
        return {**e, "name": name, "inbound_nodes": []}
    config = {"batch_shape": shape, "dtype": dtype, "sparse": False, "ragged": False, "name": name,
              "optional": False}
    e = {"class_name": "InputLayer", "config": config}
    if full:
        e = {"module": "keras.layers", **e, "registered_name": None}
    return {**e, "name": name, "inbound_nodes": []}


def functional(model: M.Model, sp: StatePlan, name: str, inp: dict, entries: list[dict], specs: list[KLayer],
               out_shapes: list, full: bool, major: int = 3) -> dict:
    """The Functional config (Keras 3's, or `major` 2: tf.keras 2's and TF.js's nodes): x and the state
    inputs, the chain of `entries` (one per spec, as `config.spec_entry` makes them), the linear
    Activation layers naming the state outputs."""
    sizes = {s.name: [None, state_size(model, s)] for s in sp.inputs + sp.outputs}
    shape = inp.get("batch_shape", inp.get("batch_input_shape"))
    layers = [_input_entry(inp["name"], shape, inp["dtype"], full, major)]
    layers += [_input_entry(s.name, sizes[s.name], "float32", full, major) for s in sp.inputs]
    prev, prev_shape = inp["name"], shape
    for spec, e, out_shape in zip(specs, entries, out_shapes):
        e = dict(e, name=spec.name)
        initial = [(n, 0, sizes[n]) for n in sp.initial.get(spec.name, [])]
        if initial and full:
            e["build_config"] = {"shapes_dict": {"sequences_shape": prev_shape,
                                                 "initial_state_shape": [sizes[n] for n in sp.initial[spec.name]]}}
        e["inbound_nodes"] = [_node(major, (prev, 0, prev_shape), initial)]
        layers.append(e)
        prev, prev_shape = spec.name, out_shape
    by_port = {s.name: s for s in sp.outputs}
    for s in sp.outputs:
        config = {"name": s.name, "trainable": True, "dtype": _policy() if major >= 3 else "float32",
                  "activation": "linear"}
        e = {"class_name": "Activation", "config": config}
        if full:
            e = {"module": "keras.layers", **e, "registered_name": None, "build_config": {"input_shape": sizes[s.name]}}
        index = returned_index(model, by_port[s.name])
        layers.append({**e, "name": s.name,
                       "inbound_nodes": [_node(major, (sp.spec_of[s.layer], index, sizes[s.name]))]})
    config = {"name": name, "trainable": True, "layers": layers,
              "input_layers": [[inp["name"], 0, 0]] + [[s.name, 0, 0] for s in sp.inputs],
              "output_layers": [[prev, 0, 0]] + [[s.name, 0, 0] for s in sp.outputs]}
    if not full:
        return {"class_name": "Functional", "config": config}
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": config,
            "registered_name": "Functional", "build_config": {"input_shape": None}}


def weightless(config: dict) -> list[tuple[str, str]]:
    """(class, name) of each layer of a functional config, in order (the weights file numbers them)."""
    return [(e["class_name"], e["name"]) for e in config["config"]["layers"]]


def _policy() -> dict:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}
