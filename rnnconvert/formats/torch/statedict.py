"""PyTorch state dicts <-> module specs: which nn.LSTM/GRU/RNN/Linear/Embedding/Conv1d/BatchNorm1d a key
set describes.

nn.LSTM/GRU/RNN keys are `<module>.weight_ih_l{k}[_reverse]` [G*H, in], `weight_hh_l{k}` [G*H, S],
`bias_ih_l{k}`/`bias_hh_l{k}` [G*H] (both or neither: bias=False), `weight_hr_l{k}` [S, H] (LSTM
proj_size, S = proj_size, else S = H); G = 4 (LSTM, gates ifgo), 3 (GRU, rzn), 1 (RNN).  Gate order
and layout equal the canonical ones, so nothing is permuted or transposed here.  nn.Linear is
`<module>.weight` [out, in] + optional `<module>.bias` [out]; nn.Embedding `weight` [vocab, dim] (told
from a bias-free Linear by the reader); nn.Conv1d `weight` [out, in/groups, width] + `bias`;
nn.BatchNorm1d `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`.  rnnconvert's writer adds the initial
state as buffers `<module>.h0` / `<module>.c0`, shaped like PyTorch's hx: [layers*dirs, 1 or batch, S|H].
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError, UnsupportedError
from ...model import Activation

GATES = {4: "lstm", 3: "gru", 1: "rnn"}
TORCH_CLASS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}
RNN_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
_RNN_KEY = re.compile(r"^(?:(?P<module>.*)\.)?(?P<param>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
                      r"_l(?P<layer>\d+)(?P<reverse>_reverse)?$")
_LINEAR_KEY = re.compile(r"^(?:(?P<module>.*)\.)?(?P<param>weight|bias|running_mean|running_var|num_batches_tracked)$")
_STATE_KEY = re.compile(r"^(?:(?P<module>.*)\.)?(?P<param>h0|c0)$")


@dataclass
class RNNSpec:
    """One nn.LSTM/GRU/RNN module and how the generated forward uses its result."""
    path: str                      # module path in the state dict: 'rnn', 'model.lstm', '' (a bare module)
    cell: str                      # lstm | gru | rnn
    input_size: int
    hidden: int
    num_layers: int
    bidirectional: bool
    bias: bool
    proj_size: int = 0
    nonlinearity: str = "tanh"     # nn.RNN only
    weights: list = field(default_factory=list)   # weights[layer][direction] = {param: array}
    h0: np.ndarray | None = None   # [layers*dirs, 1 or batch, S]
    c0: np.ndarray | None = None   # [layers*dirs, 1 or batch, H]
    # Not in the state dict: how the forward reads the module.
    reverse_only: bool = False     # a canonical 'reverse' layer: the module runs on the time-flipped input
    output: str = "sequence"       # sequence | last_step | final_state | backward_final_state (h_n[-1], bidir)
    time_order: str = "input"
    merge: str = "concat"
    batch_first: bool = True
    layer_names: list = field(default_factory=list)    # canonical name of each layer
    layer_flags: list = field(default_factory=list)    # per layer: canonical settings to restore

    kind = "rnn"

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_size(self) -> int:
        return self.proj_size or self.hidden

    @property
    def units_out(self) -> int:
        if self.output == "backward_final_state" or (self.bidirectional and self.merge != "concat"):
            return self.state_size
        return self.state_size * self.directions

    def gates(self) -> int:
        return {"lstm": 4, "gru": 3, "rnn": 1}[self.cell]


@dataclass
class LinearSpec:
    path: str
    weight: np.ndarray             # [out, in]
    bias: np.ndarray | None = None
    activation: Activation | None = None    # applied after the module (not in the state dict)
    name: str = ""

    kind = "linear"

    @property
    def input_size(self) -> int:
        return int(self.weight.shape[1])

    @property
    def units_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class EmbeddingSpec:
    """nn.Embedding: `weight` [vocab, dim]; takes token ids."""
    path: str
    weight: np.ndarray
    name: str = ""
    kind = "embedding"
    input_size = None

    @property
    def units_out(self) -> int:
        return int(self.weight.shape[1])


@dataclass
class ConvSpec:
    """nn.Conv1d: `weight` [out, in/groups, width], `bias` [out]; padding as the canonical Conv1D's."""
    path: str
    weight: np.ndarray
    bias: np.ndarray | None = None
    stride: int = 1
    dilation: int = 1
    groups: int = 1
    padding: str = "explicit"             # valid | same | causal | explicit (pads)
    pads: tuple = (0, 0)
    activation: Activation | None = None
    name: str = ""
    kind = "conv1d"

    @property
    def input_size(self) -> int:
        return int(self.weight.shape[1]) * self.groups

    @property
    def units_out(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class BatchNormSpec:
    """nn.BatchNorm1d: `weight`/`bias` (affine), `running_mean`, `running_var` [C], `num_batches_tracked`."""
    path: str
    running_mean: np.ndarray
    running_var: np.ndarray
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    eps: float = 1e-5
    name: str = ""
    kind = "batch_norm"

    @property
    def input_size(self) -> int:
        return int(self.running_mean.shape[0])

    units_out = input_size


@dataclass
class PoolSpec:
    """Pooling over time, done in the forward (no parameters): pool_size None is global."""
    mode: str
    pool_size: int | None = None
    strides: int | None = None
    padding: str = "valid"
    name: str = ""
    kind = "pooling1d"


@dataclass
class FlattenSpec:
    name: str = ""
    kind = "flatten"


@dataclass
class ActivationSpec:
    activation: Activation
    name: str = ""
    kind = "activation"


@dataclass
class DropoutSpec:
    rate: float
    name: str = ""
    variant: str = "dropout"
    kind = "dropout"


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# ------------------------------------------------------------------------------------ parsing

def parse(sd: dict[str, np.ndarray], path=None, ignore=()) -> tuple[dict, list[str], list[str]]:
    """Group state-dict keys into modules, in the order the keys first name them.

    Returns (modules {module path: RNNSpec | LinearSpec}, state keys {module: h0/c0 keys}, unknown keys).
    Shapes are checked; every inconsistency is reported at once, naming the key.
    """
    groups: "OrderedDict[str, dict]" = OrderedDict()
    states, unknown = [], []
    for key, value in sd.items():
        if any(key == p or key.startswith(p + ".") for p in ignore):
            continue
        m = _RNN_KEY.match(key)
        if m:
            g = groups.setdefault(m["module"] or "", {"type": "rnn", "keys": {}})
            if g["type"] != "rnn":
                unknown.append(key)
                continue
            g["keys"][(int(m["layer"]), 1 if m["reverse"] else 0, m["param"])] = key
            continue
        m = _LINEAR_KEY.match(key)
        if m:
            g = groups.setdefault(m["module"] or "", {"type": "linear", "keys": {}})
            if g["type"] != "linear":
                unknown.append(key)
                continue
            g["keys"][m["param"]] = key
            continue
        if _STATE_KEY.match(key):
            states.append(key)
            continue
        unknown.append(key)
    not_float = [f"'{k}' is {sd[k].dtype}" for g in groups.values() for k in g["keys"].values()
                 if getattr(sd[k], "dtype", np.dtype("f4")).kind != "f" and not k.endswith("num_batches_tracked")]
    not_float += [f"'{k}' is {sd[k].dtype}" for k in states if getattr(sd[k], "dtype", np.dtype("f4")).kind != "f"]
    if not_float:
        raise UnsupportedError(f"weights must be float16, bfloat16, float32 or float64 tensors, but {not_float[0]}"
                               + (f" (and {len(not_float) - 1} more)" if len(not_float) > 1 else ""), path=path)
    modules, problems = OrderedDict(), []
    for name, g in groups.items():
        if g["type"] == "rnn":
            spec = _rnn_spec(name, g["keys"], sd, problems)
        else:
            spec = _linear_spec(name, g["keys"], sd, problems, unknown)
        if spec is not None:
            modules[name] = spec
    if problems:
        raise InputError("inconsistent state dict: " + "; ".join(problems), path=path)
    return modules, states, unknown


def _shape(a) -> list[int]:
    return [int(d) for d in a.shape]


def _rnn_spec(name, keys, sd, problems) -> RNNSpec | None:
    n_before = len(problems)
    layers = sorted({k[0] for k in keys})
    if layers != list(range(len(layers))):
        problems.append(f"{_key(name, 'weight_ih_l*')}: layers {layers}, expected 0..{len(layers) - 1}")
        return None
    bidirectional = any(k[1] == 1 for k in keys)
    dirs = (0, 1) if bidirectional else (0,)
    suffix = ("", "_reverse")

    def get(layer, d, param):
        key = keys.get((layer, d, param))
        return (key, sd[key]) if key else (_key(name, f"{param}_l{layer}{suffix[d]}"), None)

    hh_key, hh = get(0, 0, "weight_hh")
    hr_key, hr = get(0, 0, "weight_hr")
    if hh is None or hh.ndim != 2:
        problems.append(f"{hh_key}: missing or not 2-D")
        return None
    if hr is not None:
        if hr.ndim != 2:
            problems.append(f"{hr_key}: shape {_shape(hr)}, expected [proj_size, hidden]")
            return None
        S, H = hr.shape
        G = hh.shape[0] // H if H else 0
        if G != 4 or hh.shape != (4 * H, S):
            problems.append(f"{hh_key}: shape {_shape(hh)}, expected [4*{H}, {S}] for an LSTM with "
                            f"proj_size {S} ({hr_key} is {_shape(hr)})")
            return None
    else:
        H = S = int(hh.shape[1])
        G = hh.shape[0] // H if H else 0
        if G not in GATES or hh.shape[0] != G * H:
            problems.append(f"{hh_key}: shape {_shape(hh)}, expected [G*hidden, hidden] with G = 4 (LSTM), "
                            "3 (GRU) or 1 (RNN)")
            return None
    cell = GATES[G]
    has_bias = (0, 0, "bias_ih") in keys or (0, 0, "bias_hh") in keys
    weights = []
    input_size = None
    for layer in layers:
        per_dir = []
        for d in dirs:
            w = {}
            expected_in = input_size if layer == 0 else S * len(dirs)
            for param in RNN_PARAMS:
                key, a = get(layer, d, param)
                if param == "weight_hr" and hr is None:
                    if a is not None:
                        problems.append(f"{key}: present although {hr_key} is not")
                    continue
                if param.startswith("bias") and not has_bias:
                    if a is not None:
                        problems.append(f"{key}: present although other bias keys are not")
                    continue
                if a is None:
                    problems.append(f"{key}: missing")
                    continue
                want = {"weight_ih": (G * H, expected_in), "weight_hh": (G * H, S), "bias_ih": (G * H,),
                        "bias_hh": (G * H,), "weight_hr": (S, H)}[param]
                if param == "weight_ih" and layer == 0 and d == 0:
                    if a.ndim == 2:
                        input_size = int(a.shape[1])
                        want = (G * H, input_size)
                if tuple(a.shape) != tuple(x if x is not None else -1 for x in want):
                    problems.append(f"{key}: shape {_shape(a)}, expected {list(want)}")
                w[param] = a
            per_dir.append(w)
        weights.append(per_dir)
    if len(problems) > n_before:
        return None
    return RNNSpec(path=name, cell=cell, input_size=input_size, hidden=H, num_layers=len(layers),
                   bidirectional=bidirectional, bias=has_bias, proj_size=S if hr is not None else 0,
                   weights=weights)


def _linear_spec(name, keys, sd, problems, unknown):
    """nn.Linear [out, in] (or nn.Embedding, decided later by the reader), nn.Conv1d (3-D weight) or
    nn.BatchNorm1d (running statistics)."""
    if "running_mean" in keys or "running_var" in keys:
        return _batch_norm_spec(name, keys, sd, problems)
    if "weight" in keys and sd[keys["weight"]].ndim == 3:
        w, b = sd[keys["weight"]], sd[keys["bias"]] if "bias" in keys else None
        if b is not None and b.shape != (w.shape[0],):
            problems.append(f"{keys['bias']}: shape {_shape(b)}, expected [{w.shape[0]}] to match "
                            f"{keys['weight']} {_shape(w)} (nn.Conv1d [out, in/groups, width])")
            return None
        return ConvSpec(path=name, weight=w, bias=b)
    if set(keys) - {"weight", "bias"}:
        unknown.extend(keys.values())
        return None
    if "weight" not in keys:
        unknown.extend(keys.values())
        return None
    w = sd[keys["weight"]]
    b = sd[keys["bias"]] if "bias" in keys else None
    if w.ndim != 2 or (b is not None and b.ndim != 1):
        unknown.extend(keys.values())          # a norm, convolution or embedding: not read here
        return None
    if b is not None and b.shape != (w.shape[0],):
        problems.append(f"{keys['bias']}: shape {_shape(b)}, expected [{w.shape[0]}] to match "
                        f"{keys['weight']} {_shape(w)}")
        return None
    return LinearSpec(path=name, weight=w, bias=b)


def _batch_norm_spec(name, keys, sd, problems) -> BatchNormSpec | None:
    missing = [p for p in ("running_mean", "running_var") if p not in keys]
    if missing or ("weight" in keys) != ("bias" in keys):
        want = ", ".join(_key(name, p) for p in missing) or _key(name, "weight and bias (both or neither)")
        problems.append(f"{want}: missing (nn.BatchNorm1d keeps running_mean, running_var and, when affine, "
                        "weight and bias)")
        return None
    arrays = {p: sd[k] for p, k in keys.items() if p != "num_batches_tracked"}
    C = arrays["running_mean"].shape
    bad = [f"{keys[p]}: shape {_shape(a)}, expected {list(C)}" for p, a in arrays.items()
           if a.ndim != 1 or a.shape != C]
    if bad:
        problems.extend(bad)
        return None
    return BatchNormSpec(path=name, running_mean=arrays["running_mean"], running_var=arrays["running_var"],
                         weight=arrays.get("weight"), bias=arrays.get("bias"))


# ------------------------------------------------------------------------------------ writing

def to_state_dict(specs) -> "OrderedDict[str, np.ndarray]":
    """The state dict the generated module's load_state_dict(strict=True) expects, in module order."""
    sd: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for spec in specs:
        if isinstance(spec, RNNSpec):
            for layer, per_dir in enumerate(spec.weights):
                for d, w in enumerate(per_dir):
                    for param in RNN_PARAMS:
                        if param in w:
                            sd[_key(spec.path, f"{param}_l{layer}{('', '_reverse')[d]}")] = w[param]
            for name in ("h0", "c0"):
                if getattr(spec, name) is not None:
                    sd[_key(spec.path, name)] = getattr(spec, name)
        elif isinstance(spec, (LinearSpec, EmbeddingSpec, ConvSpec)):
            sd[_key(spec.path, "weight")] = spec.weight
            if getattr(spec, "bias", None) is not None:
                sd[_key(spec.path, "bias")] = spec.bias
        elif isinstance(spec, BatchNormSpec):
            if spec.weight is not None:
                sd[_key(spec.path, "weight")] = spec.weight
                sd[_key(spec.path, "bias")] = spec.bias
            sd[_key(spec.path, "running_mean")] = spec.running_mean
            sd[_key(spec.path, "running_var")] = spec.running_var
            sd[_key(spec.path, "num_batches_tracked")] = np.array(0, dtype=np.int64)
    return sd


MODULE_SPECS = (RNNSpec, LinearSpec, EmbeddingSpec, ConvSpec, BatchNormSpec)    # the specs with parameters
