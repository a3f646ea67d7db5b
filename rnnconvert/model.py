"""The canonical model every format reads into and writes from.

A `Model` is an ordered stack of typed layers applied to one input `[batch, time, features]`
(batch-major; `InputSpec.layout` records a source that was time-major); a streaming model also takes
and returns recurrent states as named tensors (`state_inputs`, `state_outputs`: `states.py`).  Tensors between layers
are `[batch, time, features]` until a recurrent layer returns one step, then `[batch, features]`.

Recurrent weights are stored per direction in the canonical gate order (`gates.CANONICAL`:
LSTM `ifgo`, GRU `rzn`), gate blocks along rows, with the ONNX symbols:

    W   [gates*hidden, input]       input weights
    R   [gates*hidden, hidden]      recurrent weights ([gates*hidden, proj] with a projection)
    Wb  [gates*hidden]              input bias
    Rb  [gates*hidden]              recurrent bias (zeros where the source has one bias)
    h0  [hidden] or [batch, hidden] initial hidden state (None: zeros)
    c0  same, LSTM only             initial cell state
    proj [proj, hidden]             LSTM output projection (PyTorch proj_size), or None

The schema of the on-disk form is `schemas/model.schema.json`; `schemas/README.md` is normative.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

from . import gates
from .errors import InputError
from .states import STATE_KINDS, StatePort, state_problems  # noqa: F401 - part of the model (states.py)

CELLS = ("lstm", "gru", "rnn")
DIRECTIONS = ("forward", "reverse", "bidirectional")
MERGE_MODES = ("concat", "sum", "mul", "ave")
OUTPUTS = ("sequence", "last_step", "final_state")
TIME_ORDERS = ("input", "processing")
MASKED_OUTPUTS = ("previous", "zero")

# Activation names and the parameters each one takes (alpha, beta meaning as in ONNX).
ACTIVATIONS = {
    "linear": (), "sigmoid": (), "tanh": (), "relu": (), "softsign": (), "softplus": (),
    "exponential": (), "swish": (), "gelu": (), "softmax": (), "log_softmax": (),
    "hard_sigmoid": ("alpha", "beta"),     # clip(alpha*x + beta, 0, 1)
    "elu": ("alpha",),                     # x if x > 0 else alpha*(exp(x)-1)
    "selu": ("alpha", "beta"),             # beta * (x if x > 0 else alpha*(exp(x)-1)); beta = gamma
    "leaky_relu": ("alpha",),
    "thresholded_relu": ("alpha",),
    "affine": ("alpha", "beta"),           # alpha*x + beta
    "scaled_tanh": ("alpha", "beta"),      # alpha*tanh(beta*x)
    "relu6": (),
}

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_GAMMA = 1.0507009873554804934193349852946


@dataclass(frozen=True)
class Activation:
    name: str
    alpha: float | None = None
    beta: float | None = None

    def __post_init__(self):
        if self.name not in ACTIVATIONS:
            raise InputError(f"unknown activation '{self.name}'; known: {', '.join(sorted(ACTIVATIONS))}")

    def __str__(self):
        params = [f"{k}={getattr(self, k):.6g}" for k in ACTIVATIONS[self.name]]
        return f"{self.name}({', '.join(params)})" if params else self.name

    def to_dict(self) -> dict:
        d = {"name": self.name}
        for k in ACTIVATIONS[self.name]:
            d[k] = getattr(self, k)
        return d


LINEAR = Activation("linear")
SIGMOID = Activation("sigmoid")
TANH = Activation("tanh")
RELU = Activation("relu")
HARD_SIGMOID_KERAS2 = Activation("hard_sigmoid", 0.2, 0.5)   # Keras 1/2, tf.keras 2.x, MATLAB, ONNX default
HARD_SIGMOID_KERAS3 = Activation("hard_sigmoid", 1.0 / 6.0, 0.5)
SELU = Activation("selu", SELU_ALPHA, SELU_GAMMA)


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

    ARRAYS: ClassVar = ("W", "R", "Wb", "Rb", "h0", "c0", "proj")


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
    unmasked steps only; every other layer drops it (see `reference_layers.py`).
    """
    name: str
    mask_value: float = 0.0
    kind: ClassVar[str] = "masking"


LAYER_KINDS = {"dense": Dense, "activation": ActivationLayer, "dropout": Dropout,
               "embedding": Embedding, "conv1d": Conv1D, "pooling1d": Pooling1D, "flatten": Flatten,
               "batch_norm": BatchNorm, "masking": Masking}


@dataclass
class InputSpec:
    """The model's one input.  dtype 'int64'/'int32': token ids [batch, time] (no feature axis,
    features 0) for a model that starts with an Embedding."""
    name: str = "input"
    features: int = 0
    dtype: str = "float32"
    layout: str = "batch_time_feature"    # or "time_batch_feature" (a time-major source)
    time_steps: int | None = None           # fixed length in the source, if any


@dataclass
class Model:
    layers: list[Layer]
    input: InputSpec
    output_name: str = "output"
    name: str = "model"
    source: dict = field(default_factory=dict)   # format, producer, versions, notes
    state_inputs: list[StatePort] = field(default_factory=list)    # after the input, in this order
    state_outputs: list[StatePort] = field(default_factory=list)   # after the output, in this order

    @property
    def recurrent_layers(self) -> list[Recurrent]:
        return [layer for layer in self.layers if isinstance(layer, Recurrent)]

    @property
    def has_state_io(self) -> bool:
        return bool(self.state_inputs or self.state_outputs)

    def parameter_count(self) -> int:
        return sum(int(a.size) for layer in self.layers for a in layer.arrays().values())

    def validate(self, path: str | None = None) -> "Model":
        """Check shapes and settings all at once; raise InputError listing every problem."""
        problems = list(_problems(self))
        if problems:
            raise InputError("invalid model: " + "; ".join(problems), path=path)
        return self


MAX_DIM = (1 << 31) - 1          # no weight axis or input size of a real model comes near this
WEIGHT_DTYPES = ("float16", "float32", "float64")


def _input_problems(spec: InputSpec):
    for key, low in (("features", 0), ("time_steps", 1)):
        v = getattr(spec, key)
        if v is None and key == "time_steps":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= MAX_DIM:
            yield f"input {key} {str(v)[:40]}, expected an integer from {low} to {MAX_DIM}"
    if spec.layout not in ("batch_time_feature", "time_batch_feature"):
        yield f"input layout '{str(spec.layout)[:40]}', expected batch_time_feature or time_batch_feature"


def _array_problems(model: Model):
    """Weights of a dtype no reader should pass on (complex, bool, integer, records, objects) or of absurd
    shapes, once per model, before any shape arithmetic runs on them."""
    for k, layer in enumerate(model.layers):
        for key, a in layer.arrays().items():
            dtype = getattr(a, "dtype", None)
            if not isinstance(dtype, np.dtype) or dtype.kind != "f" or dtype.itemsize not in (2, 4, 8):
                yield f"layers[{k}] '{layer.name}': tensor '{key}' has dtype {dtype}, expected one of " \
                      f"{', '.join(WEIGHT_DTYPES)}"
            elif any(d > MAX_DIM for d in a.shape):
                yield f"layers[{k}] '{layer.name}': tensor '{key}' has shape {list(a.shape)}, an axis over {MAX_DIM}"


def _problems(model: Model):
    yield from _input_problems(model.input)
    bad_arrays = list(_array_problems(model))
    if bad_arrays:
        yield from bad_arrays
        return
    yield from state_problems(model)
    features = model.input.features
    seq = True
    for k, layer in enumerate(model.layers):
        where = f"layers[{k}] '{layer.name}'"
        if isinstance(layer, Recurrent):
            yield from recurrent_problems(layer, where, features)
            if not seq:
                yield f"{where}: a recurrent layer needs a sequence but the layer before returns one step"
            features = layer.units_out
            seq = layer.output == "sequence"
        elif isinstance(layer, Dense):
            if layer.kernel.ndim != 2 or features and layer.kernel.shape[0] != features:
                yield f"{where}: kernel shape {tuple(layer.kernel.shape)}, expected ({features}, units)"
            elif layer.bias is not None and layer.bias.shape != (layer.kernel.shape[1],):
                yield f"{where}: bias shape {tuple(layer.bias.shape)}, expected ({layer.kernel.shape[1]},)"
            features = layer.units_out if layer.kernel.ndim == 2 else features
        elif isinstance(layer, Embedding):
            if k != 0:
                yield f"{where}: an embedding must be the first layer (it takes the token ids)"
            if layer.table.ndim != 2:
                yield f"{where}: table shape {tuple(layer.table.shape)}, expected (vocabulary, dim)"
            else:
                features = layer.units_out
        elif isinstance(layer, Conv1D):
            yield from _conv_problems(layer, where, features, seq)
            features = layer.units_out if layer.kernel.ndim == 3 else features
        elif isinstance(layer, Pooling1D):
            if layer.mode not in POOL_MODES:
                yield f"{where}: mode '{layer.mode}', expected one of {', '.join(POOL_MODES)}"
            if layer.padding not in ("valid", "same"):
                yield f"{where}: padding '{layer.padding}', expected valid or same"
            if not seq:
                yield f"{where}: pooling over time needs a sequence"
            seq = seq and layer.pool_size is not None
        elif isinstance(layer, Flatten):
            if not seq:
                yield f"{where}: flatten needs a sequence"
            seq = False
            features = 0    # time * features: known only with a fixed length
        elif isinstance(layer, BatchNorm):
            for a in ("mean", "variance", "scale", "offset"):
                v = getattr(layer, a)
                if v is not None and features and v.shape != (features,):
                    yield f"{where}: {a} shape {tuple(v.shape)}, expected ({features},)"


def _conv_problems(layer: "Conv1D", where: str, features: int, seq: bool):
    if not seq:
        yield f"{where}: a convolution over time needs a sequence"
    if layer.padding not in CONV_PADDINGS:
        yield f"{where}: padding '{layer.padding}', expected one of {', '.join(CONV_PADDINGS)}"
    if layer.strides < 1 or layer.dilation < 1 or layer.groups < 1:
        yield f"{where}: strides, dilation and groups must be at least 1"
    if layer.kernel.ndim != 3:
        yield f"{where}: kernel shape {tuple(layer.kernel.shape)}, expected (width, in/groups, filters)"
        return
    if features and layer.kernel.shape[1] * layer.groups != features:
        yield f"{where}: kernel shape {tuple(layer.kernel.shape)} with groups {layer.groups} does not take {features} input features"
    if layer.bias is not None and layer.bias.shape != (layer.kernel.shape[2],):
        yield f"{where}: bias shape {tuple(layer.bias.shape)}, expected ({layer.kernel.shape[2]},)"


def recurrent_problems(layer: Recurrent, where: str, features: int):
    if layer.cell not in CELLS:
        yield f"{where}: cell '{layer.cell}', expected one of {', '.join(CELLS)}"
        return
    for attr, allowed in (("direction", DIRECTIONS), ("output", OUTPUTS),
                          ("merge", MERGE_MODES), ("time_order", TIME_ORDERS),
                          ("masked_output", MASKED_OUTPUTS)):
        if getattr(layer, attr) not in allowed:
            yield f"{where}: {attr} '{getattr(layer, attr)}', expected one of {', '.join(allowed)}"
    if layer.time_order == "processing" and layer.direction != "reverse":
        yield f"{where}: time_order 'processing' is only meaningful for a reverse layer"
    n_acts = {"lstm": 3, "gru": 2, "rnn": 1}[layer.cell]
    if len(layer.activations) != n_acts:
        yield f"{where}: {len(layer.activations)} activations, a {layer.cell.upper()} takes {n_acts}"
    n_dirs = 2 if layer.direction == "bidirectional" else 1
    if len(layer.weights) != n_dirs:
        yield f"{where}: {len(layer.weights)} weight sets for direction '{layer.direction}'"
        return
    G, H = gates.GATE_COUNT[layer.cell], layer.hidden
    for name, w in zip(layer.direction_names(), layer.weights):
        S = w.proj.shape[0] if w.proj is not None else H
        expected = {"W": (G * H, features), "R": (G * H, S), "Wb": (G * H,), "Rb": (G * H,)}
        if w.proj is not None:
            if layer.cell != "lstm":
                yield f"{where}.{name}: a projection is only defined for LSTM"
            expected["proj"] = (S, H)
        for a, shape in expected.items():
            got = tuple(getattr(w, a).shape)
            if got != shape:
                yield f"{where}.{name}.{a}: shape {got}, expected {shape}"
        for a, size in (("h0", S), ("c0", H)):
            v = getattr(w, a)
            if v is not None and v.shape[-1:] != (size,):
                yield f"{where}.{name}.{a}: shape {tuple(v.shape)}, expected (..., {size})"
        if w.c0 is not None and layer.cell != "lstm":
            yield f"{where}.{name}: c0 given for a {layer.cell.upper()} layer"


def layer_fields(layer: Layer) -> dict:
    """Non-array settings of a layer, for manifests and reports."""
    out = {}
    for f in fields(layer):  # type: ignore[arg-type]
        v = getattr(layer, f.name)
        if isinstance(v, np.ndarray) or f.name == "weights":
            continue
        out[f.name] = v
    return out


def json_default(v):
    """`json.dumps(default=...)` for settings that hold numpy scalars or arrays."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
