"""What every code emitter needs from a canonical model, decided once.

`plan(model)` validates the model, refuses what the emitters cannot compute (naming the layer), and
returns the stack as plain records: per layer its kind, widths, whether a sequence flows after it,
and for recurrent layers each direction's float32 arrays in canonical gate order (LSTM ifgo,
GRU rzn) with the two biases kept apart (GRU reset_after needs Rb of n inside r * (...)).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError, UnsupportedError
from ...model import ACTIVATIONS, Activation, ActivationLayer, Dense, Dropout, Model, Recurrent

ELEMENTWISE = set(ACTIVATIONS) - {"softmax", "log_softmax"}


@dataclass
class Direction:
    name: str              # forward / reverse
    reverse: bool
    W: np.ndarray          # [G*H, F]
    R: np.ndarray          # [G*H, S]
    Wb: np.ndarray         # [G*H]
    Rb: np.ndarray         # [G*H]
    h0: np.ndarray | None  # [rows, S]
    c0: np.ndarray | None  # [rows, H]
    proj: np.ndarray | None  # [S, H]
    pick: str              # output == sequence: "all"; else "first" / "last" processed step to keep


@dataclass
class Step:
    index: int
    kind: str              # lstm / gru / rnn / dense / activation / dropout
    name: str
    width_in: int
    width_out: int
    seq_in: bool
    seq_out: bool
    layer: object
    directions: list[Direction] = field(default_factory=list)
    activations: list[Activation] = field(default_factory=list)


@dataclass
class Plan:
    model: Model
    steps: list[Step]
    input_size: int
    output_size: int
    output_is_sequence: bool
    streamable: bool       # every recurrent layer runs forward: one step at a time is possible
    state_rows: int        # rows of the initial states (a fixed-batch model has > 1)
    max_width: int
    max_state: int


def identifier(name: str, fallback: str = "model") -> str:
    """A C/JS identifier made of `name`: other characters become '_', a leading digit gets 'm_'."""
    s = re.sub(r"[^0-9A-Za-z_]", "_", str(name or "")).strip("_") or fallback
    return f"m_{s}" if s[0].isdigit() else s


def plan(model: Model) -> Plan:
    model.validate()
    problems = []
    steps: list[Step] = []
    width, seq = model.input.features, True
    rows = 1
    for k, layer in enumerate(model.layers):
        if isinstance(layer, Recurrent):
            dirs = []
            for dname, w in zip(layer.direction_names(), layer.weights):
                reverse = dname == "reverse"
                if layer.output == "sequence":
                    pick = "all"
                elif layer.output == "last_step":
                    # the time-aligned output at the last input step: forward after all steps; a
                    # reverse direction after one step (or, in processing order, after all steps)
                    pick = "last" if (not reverse or layer.time_order == "processing") else "first"
                else:
                    pick = "last"
                states = {}
                for key in ("h0", "c0"):
                    v = getattr(w, key)
                    if v is not None:
                        v = np.atleast_2d(np.asarray(v, np.float32))
                        if v.shape[0] > 1:
                            if rows > 1 and v.shape[0] != rows:
                                problems.append(f"layer '{layer.name}': {key} has {v.shape[0]} rows, another "
                                                f"initial state {rows}")
                            rows = max(rows, v.shape[0])
                    states[key] = v
                dirs.append(Direction(dname, reverse, _f32(w.W), _f32(w.R), _f32(w.Wb), _f32(w.Rb),
                                      states["h0"], states["c0"], None if w.proj is None else _f32(w.proj), pick))
            steps.append(Step(k, layer.cell, layer.name, width, layer.units_out, seq,
                              layer.output == "sequence", layer, dirs, list(layer.activations)))
            width, seq = layer.units_out, layer.output == "sequence"
        elif isinstance(layer, Dense):
            steps.append(Step(k, "dense", layer.name, width, layer.units_out, seq, seq, layer,
                              activations=[layer.activation]))
            width = layer.units_out
        elif isinstance(layer, ActivationLayer):
            steps.append(Step(k, "activation", layer.name, width, width, seq, seq, layer,
                              activations=[layer.activation]))
        elif isinstance(layer, Dropout):
            steps.append(Step(k, "dropout", layer.name, width, width, seq, seq, layer))
        else:
            problems.append(f"layer '{getattr(layer, 'name', k)}': code generation does not know layer kind "
                            f"'{layer.kind}'")
            continue
        for act in steps[-1].activations:
            if act.name not in ACTIVATIONS:
                problems.append(f"layer '{layer.name}': activation '{act.name}' is not known")
            for p in ACTIVATIONS.get(act.name, ()):
                if getattr(act, p) is None:
                    problems.append(f"layer '{layer.name}': activation '{act.name}' needs {p}, the model "
                                    "gives none")
    if problems:
        raise UnsupportedError("; ".join(problems))
    if not steps:
        raise InputError("the model has no layers; there is nothing to generate")
    widths = [model.input.features] + [s.width_out for s in steps]
    max_state = max([d.R.shape[1] for s in steps for d in s.directions] + [1])
    streamable = all(d.name == "forward" for s in steps for d in s.directions)
    return Plan(model, steps, model.input.features, width, seq, streamable, rows, max(widths), max_state)


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def golden(model: Model, batch: int | None = None, time: int = 5, seed: int = 0):
    """Seeded inputs [batch, time, F] (batch-major) and the reference pass's float64 outputs."""
    from ...reference import forward
    p_rows = plan(model).state_rows
    batch = p_rows if p_rows > 1 else (batch or 2)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, time, model.input.features)).astype(np.float32)
    x[0] *= 3.0
    xm = np.swapaxes(x, 0, 1) if model.input.layout == "time_batch_feature" else x
    y = forward(model, xm)
    if model.input.layout == "time_batch_feature" and y.ndim == 3:
        y = np.swapaxes(y, 0, 1)
    return x, np.ascontiguousarray(y, dtype=np.float64)


def to_batch_major(x: np.ndarray, model: Model) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return np.ascontiguousarray(np.swapaxes(x, 0, 1) if model.input.layout == "time_batch_feature" else x)


def from_batch_major(y: np.ndarray, model: Model) -> np.ndarray:
    if model.input.layout == "time_batch_feature" and y.ndim == 3:
        return np.ascontiguousarray(np.swapaxes(y, 0, 1))
    return y
