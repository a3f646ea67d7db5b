"""The layer types of the canonical model: `Recurrent` (LSTM, GRU, simple RNN, weights per direction in
canonical gate order, `DirectionWeights`) and the front-end and head layers real models carry around
it (Dense, Activation, Dropout, Embedding, Conv1D, pooling, Flatten, BatchNorm, Masking, TimeWindow).

`LAYER_KINDS` maps each non-recurrent layer's `kind` (its name in `.rnnc` files) to its class.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from . import gates
from .activations import LINEAR, Activation


CELLS = ("lstm", "gru", "rnn")
DIRECTIONS = ("forward", "reverse", "bidirectional")
MERGE_MODES = ("concat", "sum", "mul", "ave")
OUTPUTS = ("sequence", "last_step", "final_state")
TIME_ORDERS = ("input", "processing")
MASKED_OUTPUTS = ("previous", "zero")

@dataclass
class DirectionWeights:
    """One direction of a recurrent layer, gate blocks in canonical order."""
    W: np.ndarray
    R: np.ndarray
    Wb: np.ndarray
    Rb: np.ndarray
    h0: np.ndarray | None = None
    c0: np.ndarray | None = None
    proj: np.ndarray | None = None
    P: np.ndarray | None = None      # LSTM peepholes [3, hidden], rows i, f, o (ONNX's P is i, o, f)

    ARRAYS: ClassVar = ("W", "R", "Wb", "Rb", "h0", "c0", "proj", "P")


class Layer:
    """Base of all layer kinds; `kind` is the discriminator written to the manifest."""
    kind: ClassVar[str] = ""
    name: str

    def arrays(self) -> dict[str, np.ndarray]:
        return {}


@dataclass
class Recurrent(Layer):
    """LSTM, GRU or simple RNN, one or two directions.

    activations, in ONNX's f, g, h roles:
      LSTM [gate (f), cell candidate (g), hidden output (h)]
      GRU  [gate (f), candidate (g)]
      RNN  [hidden (f)]
    output: 'sequence' -> [batch, time, H']; 'last_step' -> the time-aligned output at the
      last input step (for a backward direction: after one step, as PyTorch `y[:, -1]` and
      MATLAB OutputMode 'last'); 'final_state' -> each direction's state after the whole
      sequence (Keras return_sequences=False).
    time_order: 'processing' only for a reverse layer whose sequence is returned in the order
      it was processed (Keras go_backwards); 'input' aligns outputs with input steps.
    reset_after (GRU): True applies the reset gate after the recurrent matmul
      (ONNX linear_before_reset=1, Keras reset_after=True, PyTorch); False before it.
    masked_output: what a step skipped by a mask (Embedding mask_zero, Masking) outputs:
      'previous' (the last output, zeros before the first: Keras's default) or 'zero' (Keras
      zero_output_for_mask=True, which Bidirectional forces on when it returns sequences).
    """
    name: str
    cell: str
    hidden: int
    direction: str
    weights: list[DirectionWeights]
    activations: list[Activation]
    output: str = "sequence"
    merge: str = "concat"
    time_order: str = "input"
    reset_after: bool = True
    clip: float | None = None
    has_input_bias: bool = True
    has_recurrent_bias: bool = True
    masked_output: str = "previous"
    hybrid: dict | None = None          # int8 weights run as LiteRT's hybrid kernels (`hybrid.py`)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.cell

    @property
    def gate_order(self) -> str:
        return gates.CANONICAL[self.cell]

    @property
    def input_size(self) -> int:
        return int(self.weights[0].W.shape[1])

    @property
    def state_size(self) -> int:
        p = self.weights[0].proj
        return int(p.shape[0]) if p is not None else self.hidden

    @property
    def units_out(self) -> int:
        n = self.state_size
        return 2 * n if self.direction == "bidirectional" and self.merge == "concat" else n

    def arrays(self):
        out = {}
        for d, w in zip(self.direction_names(), self.weights):
            for a in DirectionWeights.ARRAYS:
                v = getattr(w, a)
                if v is not None:
                    out[f"{d}.{a}"] = v
        return out

    def direction_names(self) -> list[str]:
        return {"forward": ["forward"], "reverse": ["reverse"],
                "bidirectional": ["forward", "reverse"]}[self.direction]


@dataclass
class Dense(Layer):
    """y = activation(x @ kernel + bias); kernel [in, units]; on [batch, time, in] per step."""
    name: str
    kernel: np.ndarray
    bias: np.ndarray | None = None
    activation: Activation = LINEAR
    hybrid: dict | None = None          # int8 weights run as LiteRT's hybrid kernels (`hybrid.py`)
    kind: ClassVar[str] = "dense"

    @property
    def units_out(self) -> int:
        return int(self.kernel.shape[1])

    def arrays(self):
        out = {"kernel": self.kernel}
        if self.bias is not None:
            out["bias"] = self.bias
        return out


@dataclass
class ActivationLayer(Layer):
    """A standalone activation over the last axis (softmax included)."""
    name: str
    activation: Activation
    kind: ClassVar[str] = "activation"


@dataclass
class Dropout(Layer):
    """Identity at inference; kept so that a round trip restores the stack.

    variant: the source's class (`dropout`, `spatial_dropout1d`, `gaussian_noise`,
    `gaussian_dropout`, `alpha_dropout`): all are the identity at inference.
    """
    name: str
    rate: float = 0.0
    variant: str = "dropout"
    kind: ClassVar[str] = "dropout"


@dataclass
class Embedding(Layer):
    """Token ids [batch, time] (integers) -> rows of `table` [vocab, dim]: [batch, time, dim].

    mask_zero: id 0 marks a padding step (Keras `mask_zero=True`); the recurrent layers that follow
    skip masked steps exactly as `Masking` says.  An id outside [0, vocab) is an input error.
    """
    name: str
    table: np.ndarray
    mask_zero: bool = False
    kind: ClassVar[str] = "embedding"

    @property
    def units_out(self) -> int:
        return int(self.table.shape[1])

    def arrays(self):
        return {"table": self.table}


CONV_PADDINGS = ("valid", "same", "causal", "explicit")


@dataclass
class Conv1D(Layer):
    """Convolution over time on [batch, time, in]: kernel [width, in/groups, filters] (Keras layout).

    Output step t reads input steps t*strides + k*dilation - pad_left, k = 0..width-1 (cross-
    correlation, as every framework computes it).  padding: 'valid' (none), 'same' (Keras/ONNX
    SAME_UPPER: total = max((ceil(T/s)-1)*s + (width-1)*d + 1 - T, 0), left = total // 2), 'causal'
    (left (width-1)*dilation, right 0), 'explicit' (`pads` = (left, right) zeros, PyTorch padding=p).
    """
    name: str
    kernel: np.ndarray
    bias: np.ndarray | None = None
    strides: int = 1
    dilation: int = 1
    padding: str = "valid"
    pads: tuple[int, int] = (0, 0)
    groups: int = 1
    activation: Activation = LINEAR
    hybrid: dict | None = None          # int8 filter run as LiteRT's hybrid kernel (`hybrid.py`)
    kind: ClassVar[str] = "conv1d"

    @property
    def units_out(self) -> int:
        return int(self.kernel.shape[2])

    def arrays(self):
        out = {"kernel": self.kernel}
        if self.bias is not None:
            out["bias"] = self.bias
        return out


POOL_MODES = ("max", "average")


@dataclass
class Pooling1D(Layer):
    """Max or average pooling over time.  pool_size None: global pooling, [batch, features] out.

    Windowed pooling: output step t covers input steps t*strides .. t*strides+pool_size-1 after
    padding ('valid': none; 'same': as Conv1D, padded steps ignored by max and not counted by
    average, as Keras computes it).
    """
    name: str
    mode: str
    pool_size: int | None = None
    strides: int | None = None
    padding: str = "valid"
    kind: ClassVar[str] = "pooling1d"


@dataclass
class Flatten(Layer):
    """[batch, time, features] -> [batch, time*features] (row-major: time outer); needs a fixed length."""
    name: str
    kind: ClassVar[str] = "flatten"


@dataclass
class BatchNorm(Layer):
    """Inference batch normalization over the last axis: (x - mean) / sqrt(variance + epsilon) * scale + offset."""
    name: str
    mean: np.ndarray
    variance: np.ndarray
    scale: np.ndarray | None = None
    offset: np.ndarray | None = None
    epsilon: float = 1e-3
    kind: ClassVar[str] = "batch_norm"

    def arrays(self):
        out = {"mean": self.mean, "variance": self.variance}
        if self.scale is not None:
            out["scale"] = self.scale
        if self.offset is not None:
            out["offset"] = self.offset
        return out


@dataclass
class Masking(Layer):
    """Keras `Masking`: a step whose features all equal `mask_value` is masked.

    The layer outputs its input with the masked steps set to zero (as Keras does); a masked step is
    skipped by the recurrent layers that follow (state carried over; `Recurrent.masked_output` says
    what a skipped step outputs).  The mask passes through Dropout, Dense, Activation and BatchNorm
    and through a recurrent layer that returns its sequence; global average pooling averages the
    unmasked steps only; every other layer drops it (see `rnnconvert/reference/layers.py`).
    """
    name: str
    mask_value: float = 0.0
    kind: ClassVar[str] = "masking"


@dataclass
class TimeWindow(Layer):
    """Some time steps of a sequence [batch, time, features], as Python indexes them.

    single False: x[:, start:stop] (step 1) -> [batch, steps, features]; start and stop count from
      the end when negative, stop None runs to the end, bounds past either end are clamped (Python's
      and ONNX Slice's rule).  A window that keeps no step of the given sequence is an input error.
    single True: x[:, start] -> [batch, features], one step (negative from the end; stop is None);
      a step outside the sequence is an input error.
    The mask of a masked sequence does not pass (a Keras Cropping1D drops it).
    """
    name: str
    start: int = 0
    stop: int | None = None
    single: bool = False
    kind: ClassVar[str] = "time_window"

    def steps(self, T: int) -> range:
        """The input steps kept from a sequence of T steps (empty when none)."""
        if self.single:
            i = self.start + T if self.start < 0 else self.start
            return range(i, i + 1) if 0 <= i < T else range(0)
        return range(T)[self.start:self.stop]


LAYER_KINDS = {"dense": Dense, "activation": ActivationLayer, "dropout": Dropout,
               "embedding": Embedding, "conv1d": Conv1D, "pooling1d": Pooling1D, "flatten": Flatten,
               "batch_norm": BatchNorm, "masking": Masking,
               "time_window": TimeWindow}


def layer_fields(layer: Layer) -> dict:
    """Non-array settings of a layer, for manifests and reports."""
    out = {}
    for f in fields(layer):  # type: ignore[arg-type]
        v = getattr(layer, f.name)
        if isinstance(v, np.ndarray) or f.name == "weights":
            continue
        out[f.name] = v
    return out
