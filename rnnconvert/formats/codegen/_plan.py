"""What every code emitter needs from a canonical model, decided once.

`plan(model)` validates the model, refuses what the emitters cannot compute (naming the layer), and
returns the stack as plain records: per layer its kind, widths, whether a sequence flows after it,
and for recurrent layers each direction's float32 arrays in canonical gate order (LSTM ifgo,
GRU rzn) with the two biases kept apart (GRU reset_after needs Rb of n inside r * (...)).
Front-end layers (Conv1D, pooling) change the number of time steps: `conv_geometry` and
`pool_geometry` give a layer's output length and left padding for an input length, as `rnnconvert/model`
defines them; a model with one of them, a Flatten or a TimeWindow, cannot be streamed one step at a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError, UnsupportedError
from ...model import (ACTIVATIONS, Activation, ActivationLayer, BatchNorm, Conv1D, Dense, Dropout, Embedding,
    Flatten, Masking, Model, Pooling1D, Recurrent, TimeWindow)

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
    kind: str              # lstm / gru / rnn / dense / activation / dropout / embedding / conv1d / pooling1d
    name: str              # / flatten / batch_norm
    width_in: int
    width_out: int
    seq_in: bool
    seq_out: bool
    layer: object
    directions: list[Direction] = field(default_factory=list)
    activations: list[Activation] = field(default_factory=list)
    time_in: int | None = None   # the input length at this layer when the model's length is fixed
    masked: bool = False   # a mask (Embedding mask_zero, Masking) reaches this layer


@dataclass
class Plan:
    model: Model
    steps: list[Step]
    input_size: int
    output_size: int
    output_is_sequence: bool
    streamable: bool       # one step at a time is exact: every recurrent layer forward, no time window
    state_rows: int        # rows of the initial states (a fixed-batch model has > 1)
    max_width: int         # widest per-step vector
    max_state: int
    stream_blocker: str = ""     # why not streamable: the layer that needs the whole sequence
    input_dtype: str = "float32"   # int32 / int64: token ids for an Embedding
    extra_steps: int = 0   # explicit padding can lengthen a sequence by at most this many steps
    flat_width: int = 0    # widest one-row output (a Flatten, global pooling, a last step)
    fixed_time: int | None = None  # the one input length a model with a Flatten takes
    has_mask: bool = False


def conv_geometry(layer: Conv1D, T: int) -> tuple[int, int]:
    """(output length, left padding) of a Conv1D on T steps; the length is < 1 when T is too short."""
    w, d, s = int(layer.kernel.shape[0]), int(layer.dilation), int(layer.strides)
    span = (w - 1) * d + 1
    if layer.padding == "valid":
        left, right = 0, 0
    elif layer.padding == "causal":
        left, right = span - 1, 0
    elif layer.padding == "explicit":
        left, right = int(layer.pads[0]), int(layer.pads[1])
    else:   # same
        out = -(-T // s)
        total = max((out - 1) * s + span - T, 0)
        left, right = total // 2, total - total // 2
    n = T + left + right - span
    return (n // s + 1 if n >= 0 else 0), left


def pool_geometry(layer: Pooling1D, T: int) -> tuple[int, int, int, int]:
    """(output length, left padding, window, stride) of a windowed pooling on T steps."""
    p = int(layer.pool_size)
    s = int(layer.strides or p)
    if layer.padding == "same":
        out = -(-T // s)
        return out, max((out - 1) * s + p - T, 0) // 2, p, s
    return ((T - p) // s + 1 if T >= p else 0), 0, p, s


def plan(model: Model, path=None) -> Plan:
    """The model as emitter records; a refusal names `path` (the file being written) when given."""
    model.validate()
    problems = []
    steps: list[Step] = []
    width, seq = model.input.features, True
    time = model.input.time_steps
    rows = 1
    blocker, extra, flat_width, fixed_time = "", 0, 0, None
    input_dtype = "float32"
    mask = has_mask = False
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
                if reverse and not blocker:
                    blocker = "a reverse or bidirectional layer needs the whole sequence"
            steps.append(Step(k, layer.cell, layer.name, width, layer.units_out, seq,
                              layer.output == "sequence", layer, dirs, list(layer.activations), time))
            width, seq = layer.units_out, layer.output == "sequence"
            time = time if seq else None
        elif isinstance(layer, Dense):
            steps.append(Step(k, "dense", layer.name, width, layer.units_out, seq, seq, layer,
                              activations=[layer.activation], time_in=time))
            width = layer.units_out
        elif isinstance(layer, ActivationLayer):
            steps.append(Step(k, "activation", layer.name, width, width, seq, seq, layer,
                              activations=[layer.activation], time_in=time))
        elif isinstance(layer, Dropout):
            steps.append(Step(k, "dropout", layer.name, width, width, seq, seq, layer, time_in=time))
        elif isinstance(layer, Embedding):
            input_dtype = model.input.dtype if model.input.dtype in ("int32", "int64") else "int64"
            steps.append(Step(k, "embedding", layer.name, 1, layer.units_out, seq, seq, layer, time_in=time))
            width = layer.units_out
        elif isinstance(layer, Conv1D):
            if layer.padding == "explicit":
                extra += max(int(layer.pads[0]) + int(layer.pads[1]) - (int(layer.kernel.shape[0]) - 1)
                             * int(layer.dilation), 0)
            steps.append(Step(k, "conv1d", layer.name, width, layer.units_out, seq, seq, layer,
                              activations=[layer.activation], time_in=time))
            blocker = blocker or f"layer '{layer.name}' (Conv1D) reads neighbouring time steps"
            width = layer.units_out
            time = None if time is None else conv_geometry(layer, time)[0]
        elif isinstance(layer, Pooling1D):
            glob = layer.pool_size is None
            steps.append(Step(k, "pooling1d", layer.name, width, width, seq, seq and not glob, layer, time_in=time))
            blocker = blocker or f"layer '{layer.name}' (Pooling1D) reads a window of time steps"
            seq = seq and not glob
            time = None if (time is None or glob) else pool_geometry(layer, time)[0]
        elif isinstance(layer, Flatten):
            if time is None or fixed_time is not None:
                problems.append(f"layer '{layer.name}' (Flatten): needs a fixed sequence length and the model's "
                                "input has none; give the input a fixed number of time steps")
                continue
            fixed_time = model.input.time_steps
            steps.append(Step(k, "flatten", layer.name, width, width * time, seq, False, layer, time_in=time))
            blocker = blocker or f"layer '{layer.name}' (Flatten) needs the whole sequence"
            width, seq, time = width * time, False, None
            flat_width = width
        elif isinstance(layer, BatchNorm):
            steps.append(Step(k, "batch_norm", layer.name, width, width, seq, seq, layer, time_in=time))
        elif isinstance(layer, Masking):
            steps.append(Step(k, "masking", layer.name, width, width, seq, seq, layer, time_in=time))
        elif isinstance(layer, TimeWindow):
            steps.append(Step(k, "time_window", layer.name, width, width, seq, not layer.single, layer, time_in=time))
            blocker = blocker or f"layer '{layer.name}' (TimeWindow) picks steps of the whole sequence"
            seq = not layer.single
            time = None if (time is None or not seq) else len(layer.steps(time))
        else:
            problems.append(f"layer '{getattr(layer, 'name', k)}': code generation does not know layer kind "
                            f"'{layer.kind}'")
            continue
        steps[-1].masked = mask
        mask = _mask_after(layer, mask, steps[-1].seq_out)
        has_mask = has_mask or mask
        for act in steps[-1].activations:
            if act.name not in ACTIVATIONS:
                problems.append(f"layer '{layer.name}': activation '{act.name}' is not known")
            for p in ACTIVATIONS.get(act.name, ()):
                if getattr(act, p) is None:
                    problems.append(f"layer '{layer.name}': activation '{act.name}' needs {p}, the model "
                                    "gives none")
    if problems:
        raise UnsupportedError("; ".join(problems), path=None if path is None else str(path))
    if not steps:
        raise InputError("the model has no layers; there is nothing to generate", path=None if path is None else str(path))
    input_size = 1 if input_dtype != "float32" else model.input.features
    widths = [input_size] + [s.width_out for s in steps if s.kind != "flatten" and s.seq_out] + \
        [s.width_in for s in steps if s.seq_in]
    max_state = max([d.R.shape[1] for s in steps for d in s.directions] + [1])
    return Plan(model, steps, input_size, width, seq, not blocker, rows, max(widths), max_state, blocker,
                input_dtype, extra, max([flat_width] + [s.width_out for s in steps if not s.seq_out]), fixed_time,
                has_mask)


def _mask_after(layer, mask: bool, seq_out: bool) -> bool:
    """Whether a Keras mask leaves `layer` (`rnnconvert/reference/layers.py`: Embedding mask_zero and Masking make one;
    Dropout, Dense, Activation, BatchNorm and a recurrent layer returning its sequence pass it on)."""
    if isinstance(layer, Embedding):
        return layer.mask_zero
    if isinstance(layer, Masking):
        return True
    if isinstance(layer, (Dropout, Dense, ActivationLayer, BatchNorm)):
        return mask
    return mask and isinstance(layer, Recurrent) and seq_out


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def golden(model: Model, batch: int | None = None, time: int = 5, seed: int = 0):
    """Seeded inputs [batch, time, F] (batch-major; token ids [batch, time] for an Embedding) and the
    reference pass's float64 outputs."""
    from ...reference.network import forward
    p = plan(model)
    batch = p.state_rows if p.state_rows > 1 else (batch or 2)
    time = p.fixed_time or time
    rng = np.random.default_rng(seed)
    if p.input_dtype != "float32":
        vocab = int(p.steps[0].layer.table.shape[0])
        x = rng.integers(0, vocab, (batch, time)).astype(p.input_dtype)
    else:
        x = rng.standard_normal((batch, time, model.input.features)).astype(np.float32)
        x[0] *= 3.0
    xm = np.swapaxes(x, 0, 1) if model.input.layout == "time_batch_feature" else x
    y = forward(model, xm)
    if model.input.layout == "time_batch_feature" and y.ndim == 3:
        y = np.swapaxes(y, 0, 1)
    return x, np.ascontiguousarray(y, dtype=np.float64)


def to_batch_major(x: np.ndarray, model: Model, dtype: str = "float32") -> np.ndarray:
    x = np.asarray(x, dtype=dtype)
    return np.ascontiguousarray(np.swapaxes(x, 0, 1) if model.input.layout == "time_batch_feature" else x)


def from_batch_major(y: np.ndarray, model: Model) -> np.ndarray:
    if model.input.layout == "time_batch_feature" and y.ndim == 3:
        return np.ascontiguousarray(np.swapaxes(y, 0, 1))
    return y


def output_steps(p: Plan, T: int) -> int:
    """The number of output rows of the model on T input steps (1 for a one-step output; 0: too short)."""
    for s in p.steps:
        if s.kind == "conv1d":
            T = conv_geometry(s.layer, T)[0]
        elif s.kind == "pooling1d" and s.layer.pool_size is not None:
            T = pool_geometry(s.layer, T)[0]
        elif s.kind == "time_window":
            T = len(s.layer.steps(T))
        if T < 1:
            return 0
    return T if p.output_is_sequence else 1
