"""Recurrent states as named inputs and outputs of a model (streaming graphs).

A `StatePort` names a tensor `[rows, batch, size]` whose rows are the directions of its layers, stacked
in order, as ONNX `initial_h`/`Y_h` and PyTorch `h0`/`h_n` stack them.  `Model.state_inputs` replace
the initial states when given (else the layers' `h0`/`c0`, zeros when absent); `Model.state_outputs`
return each direction's state after the whole sequence.  `forward` is the reference pass with them;
`stream` feeds a sequence chunk by chunk with every state output fed back to its state input.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

STATE_KINDS = ("h", "c")
PORT_LAYOUTS = ("rows_batch_size", "batch_size")


@dataclass
class StatePort:
    """A named tensor that carries recurrent states into (`Model.state_inputs`) or out of
    (`Model.state_outputs`) the model: `[rows, batch, size]`, the rows being the directions of
    `layers` stacked in order (forward before reverse).  `state` 'h' is the hidden state (size: the
    layers' state_size), 'c' the LSTM cell state (size: hidden).  layout 'batch_size': one direction of one
    layer as `[batch, size]`, without the rows axis (Keras `initial_state` inputs and `return_state`);
    `direction` (0 forward, 1 backward) says which direction of a bidirectional layer it holds (Keras's
    Bidirectional takes and returns each direction's states as tensors of their own)."""
    name: str
    state: str
    layers: list[str]
    layout: str = "rows_batch_size"
    direction: int | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "state": self.state, "layers": list(self.layers)}
        if self.direction is not None:
            d["direction"] = self.direction
        return d if self.layout == "rows_batch_size" else {**d, "layout": self.layout}


def state_problems(model):
    """Problems of a model's state ports (for `Model.validate`)."""
    rec = {layer.name: layer for layer in model.recurrent_layers}
    names = [model.input.name, model.output_name]
    for group, ports in (("state_inputs", model.state_inputs), ("state_outputs", model.state_outputs)):
        for k, port in enumerate(ports):
            where = f"{group}[{k}] '{port.name}'"
            names.append(port.name)
            if port.state not in STATE_KINDS:
                yield f"{where}: state '{port.state}', expected h or c"
            if not port.layers:
                yield f"{where}: names no layer"
            if port.layout not in PORT_LAYOUTS:
                yield f"{where}: layout '{port.layout}', expected one of {', '.join(PORT_LAYOUTS)}"
            elif port.layout == "batch_size" and (len(port.layers) != 1 or any(
                    len(layer.weights) != 1 and port.direction not in range(len(layer.weights))
                    for layer in model.recurrent_layers if layer.name in port.layers)):
                yield (f"{where}: layout 'batch_size' holds one direction of one layer (of a bidirectional "
                       "layer: direction 0 or 1)")
            elif port.direction is not None and port.layout != "batch_size":
                yield f"{where}: direction {port.direction} is for layout 'batch_size' only"
            sizes = set()
            for name in port.layers:
                layer = rec.get(name)
                if layer is None:
                    yield f"{where}: '{name}' is not a recurrent layer of the model"
                elif port.state == "c" and layer.cell != "lstm":
                    yield f"{where}: a cell state of {layer.cell.upper()} layer '{name}'"
                else:
                    sizes.add(layer.state_size if port.state == "h" else layer.hidden)
            if len(sizes) > 1:
                yield f"{where}: its layers have different state sizes {sorted(sizes)}"
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        yield f"input, output and state names must differ: {', '.join(dup)} used twice"


def rows(model, port: StatePort) -> list[tuple[int, int]]:
    """(index into model.layers, direction) of each row of `port`."""
    index = {layer.name: k for k, layer in enumerate(model.layers)}
    if port.direction is not None:
        return [(index[name], port.direction) for name in port.layers]
    return [(index[name], d) for name in port.layers for d in range(len(model.layers[index[name]].weights))]


def inputs_start_at_zero(model) -> bool:
    """Whether every state input's rows start from zeros when not fed (no h0/c0 of their own): the pass
    with them zero is then the model's plain pass."""
    return all(getattr(model.layers[k].weights[d], f"{p.state}0") is None
               for p in model.state_inputs for k, d in rows(model, p))


def size(model, port: StatePort) -> int:
    layer = next(layer for layer in model.recurrent_layers if layer.name == port.layers[0])
    return layer.state_size if port.state == "h" else layer.hidden


def shape(model, port: StatePort, batch) -> list:
    """The port's tensor shape for `batch` rows of input."""
    head = [] if port.layout == "batch_size" else [len(rows(model, port))]
    return head + [batch, size(model, port)]


def describe(model) -> list[str]:
    """One line per port, e.g. "state input 'h0' [1, batch, 5]: hidden state of 'lstm'"."""
    out = []
    for role, ports in (("input", model.state_inputs), ("output", model.state_outputs)):
        for p in ports:
            what = "hidden state" if p.state == "h" else "cell state"
            dims = ", ".join(map(str, shape(model, p, "batch")))
            out.append(f"state {role} '{p.name}' [{dims}]: {what} of "
                       f"{', '.join(repr(n) for n in p.layers)}")
    return out


def with_states(model, feeds: dict | None):
    """A copy of `model` whose layers start from the fed state inputs (`[rows, batch, size]` each)."""
    feeds = feeds or {}
    unknown = sorted(set(feeds) - {p.name for p in model.state_inputs})
    if unknown:
        known = ", ".join(p.name for p in model.state_inputs) or "none"
        raise InputError(f"no state input named {', '.join(unknown)}; the model's state inputs: {known}")
    m = copy.copy(model)
    m.layers = [copy.copy(layer) for layer in model.layers]
    for layer in m.layers:
        if hasattr(layer, "weights") and isinstance(layer.weights, list):
            layer.weights = [dataclasses.replace(w) for w in layer.weights]
    for port in model.state_inputs:
        if port.name not in feeds:
            continue
        v = np.asarray(feeds[port.name])
        where = rows(model, port)
        if port.layout == "batch_size" and v.ndim == 2:
            v = v[None]
        if v.ndim != 3 or v.shape[0] != len(where) or v.shape[2] != size(model, port):
            want = ", ".join(map(str, shape(model, port, "batch")))
            raise InputError(f"state input '{port.name}' has shape {list(v.shape)}, expected [{want}]")
        for r, (k, d) in enumerate(where):
            setattr(m.layers[k].weights[d], f"{port.state}0", v[r])
    return m


def carried(model) -> list[tuple[StatePort, StatePort]]:
    """(state output, state input) pairs that continue a stream: same state of the same layers."""
    ins = {(p.state, tuple(p.layers), p.layout, p.direction): p for p in model.state_inputs}
    return [(o, ins[(o.state, tuple(o.layers), o.layout, o.direction)]) for o in model.state_outputs
            if (o.state, tuple(o.layers), o.layout, o.direction) in ins]


def stream(run, model, x, feeds: dict, chunks: list[int]):
    """`run(x_chunk, feeds) -> (y, state outputs)` over chunks of `x`, every state output fed back."""
    time_axis = 0 if model.input.layout == "time_batch_feature" else 1
    pairs = carried(model)
    feeds, ys, pos = dict(feeds), [], 0
    for n in chunks:
        y, outs = run(np.take(x, range(pos, pos + n), axis=time_axis), feeds)
        ys.append(y)
        feeds.update({i.name: outs[o.name] for o, i in pairs})
        pos += n
    return (np.concatenate(ys, axis=time_axis) if ys[-1].ndim == 3 else ys[-1]), feeds


def random_feeds(model, batch: int, rng, scale: float = 0.8) -> dict:
    return {p.name: (rng.standard_normal(shape(model, p, batch)) * scale).astype(np.float32)
            for p in model.state_inputs}


def zero_feeds(model, batch: int) -> dict:
    return {p.name: np.zeros(shape(model, p, batch), np.float32) for p in model.state_inputs}


def default_feeds(model, batch: int) -> dict:
    """What the model starts from when no state is given: its h0/c0 broadcast, zeros where absent."""
    out = {}
    for p in model.state_inputs:
        vals = []
        for k, d in rows(model, p):
            v = getattr(model.layers[k].weights[d], f"{p.state}0")
            vals.append(np.zeros((batch, size(model, p))) if v is None else np.broadcast_to(v, (batch, size(model, p))))
        v = np.stack(vals).astype(np.float32)
        out[p.name] = v[0] if p.layout == "batch_size" else v
    return out


def _ports_text(model) -> str:
    ins = ", ".join(p.name for p in model.state_inputs)
    outs = ", ".join(p.name for p in model.state_outputs)
    layers = list(dict.fromkeys(n for p in model.state_inputs + model.state_outputs for n in p.layers))
    ports = " and ".join(text for text in (ins and f"state inputs {ins}", outs and f"state outputs {outs}") if text)
    return f"{ports} (of {', '.join(repr(n) for n in layers)})"


def refuse_state_io(model, target: str, path=None) -> None:
    """Writers whose format cannot take or return states refuse a model that has them, naming them."""
    if not model.has_state_io:
        return
    from ..errors import UnsupportedError
    raise UnsupportedError(f"{target} files cannot take recurrent states as inputs or return them, and the model has "
                           f"{_ports_text(model)}; write ONNX, Keras 3, TF.js or .rnnc to keep them, or C/JavaScript/NumPy code "
                           "whose step API carries the states", path=None if path is None else str(path))


def codegen_notes(model) -> list[str]:
    """Generated code keeps its states in its own step API: what that means for a model with state ports."""
    if not model.has_state_io:
        return []
    return [f"the model's {_ports_text(model)} are not arguments of the generated predict, which starts from "
            "the layers' initial states; the streaming step API (init/step/reset) carries each layer's state "
            "from one call to the next instead"]
