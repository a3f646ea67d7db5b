"""Architecture hints: what a state dict cannot say about the nn.Module that used it.

Given as a dict or a YAML (or JSON) file.  Every field is optional; the defaults below apply when
a field is absent and each one applied is recorded in `model.source["assumptions"]`.

    batch_first: true         # input [batch, time, features]; false: [time, batch, features]
    nonlinearity: tanh        # nn.RNN: tanh | relu; one value, or {module: value}
    head: last_step           # how the module after the LAST recurrent module reads it:
                              #   last_step   out[:, -1]                       (default when a module follows)
                              #   final_state h_n[-1]; bidirectional: cat(h_n[-2], h_n[-1])
                              #   h_n[-1]     literally h_n[-1]: for a bidirectional module only the
                              #               backward direction's final state
                              #   sequence    every step of out            (default when the RNN is last)
                              #   out[:, -5:], out[:, 3], out[:, 2:6]: some steps of out (a time window;
                              #               out[-5:] when batch_first is false)
    order: [rnn, fc]          # forward order of the modules (default: state-dict order; safetensors
                              # files sort their keys, so there the order that chains sizes; when
                              # several orders chain, the file is refused: `order.py`)
    activations: {fc: softmax}  # activation applied to a module's result (canonical or torch names,
                                # or {name: leaky_relu, alpha: 0.01}); default none
    input_features: 4         # checked against the first module's input size
    state_dict_key: state_dict  # where a checkpoint dict keeps the state dict (default: found)
    ignore: [aux_head]        # module paths whose keys are left out (e.g. a training-only head)
    modules:                  # what the keys of one module cannot say:
      conv: {padding: 1, stride: 1, dilation: 1, groups: 1}   # nn.Conv1d (defaults PyTorch's: 0, 1, 1,
                              #   groups from the sizes); padding: an int, [left, right] (F.pad), same,
                              #   valid or causal (left (width-1)*dilation)
      bn: {eps: 1.0e-5}       # nn.BatchNorm1d (default 1e-5)
      emb: {type: embedding}  # a bias-free 2-D weight: embedding or linear (default: embedding when
                              #   it comes first and its name says emb, else linear)

The fixtures' `arch.json` form (`{"rnn": {"class", "batch_first", "nonlinearity", ...},
"head": {"applied_to": "out[:, -1] ...", "activation"}}`) is accepted too and translated.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ...errors import InputError
from ...files.text import read_yaml
from ...errors import short_repr
from ...model import ACTIVATIONS, SELU, Activation

HEADS = ("last_step", "final_state", "h_n[-1]", "sequence")
FIELDS = ("batch_first", "nonlinearity", "head", "order", "activations", "input_features",
          "state_dict_key", "ignore", "modules")
MODULE_FIELDS = {"type": ("embedding", "linear"), "padding": None, "stride": None, "dilation": None, "groups": None,
                 "eps": None}

# torch spellings -> canonical activations (parameters as torch's defaults)
TORCH_ACTIVATIONS = {
    "identity": Activation("linear"), "none": Activation("linear"), "silu": Activation("swish"),
    "hardsigmoid": Activation("hard_sigmoid", 1.0 / 6.0, 0.5), "logsoftmax": Activation("log_softmax"),
    "elu": Activation("elu", 1.0), "selu": SELU, "leaky_relu": Activation("leaky_relu", 0.01),
    "leakyrelu": Activation("leaky_relu", 0.01),
}


@dataclass
class Hints:
    batch_first: bool | None = None
    nonlinearity: str | dict | None = None
    head: str | None = None
    order: list | None = None
    activations: dict = field(default_factory=dict)
    input_features: int | None = None
    state_dict_key: str | None = None
    ignore: list = field(default_factory=list)
    modules: dict = field(default_factory=dict)
    activations_given: bool = False
    given: bool = False                 # any hints at all
    origin: str = ""                    # where they came from, for messages

    def nonlinearity_for(self, module: str) -> str | None:
        if isinstance(self.nonlinearity, dict):
            return self.nonlinearity.get(module)
        return self.nonlinearity


def load(arch) -> Hints:
    """Hints from None, a dict, or a path to a YAML/JSON file; InputError listing every problem."""
    if arch is None:
        return Hints()
    origin = "arch hints"
    if isinstance(arch, (str, os.PathLike)):
        origin = str(arch)
        arch = read_yaml(arch, "architecture hints")
    if arch is None:
        arch = {}
    if not isinstance(arch, dict):
        raise InputError(f"architecture hints must be a mapping, got {type(arch).__name__}", path=origin)
    if isinstance(arch.get("rnn"), dict) and "class" in arch["rnn"]:
        arch = _from_fixture_json(arch)
    problems = []
    unknown = sorted(set(arch) - set(FIELDS))
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    h = Hints(given=True, origin=origin)
    if "batch_first" in arch:
        if not isinstance(arch["batch_first"], bool):
            problems.append(f"batch_first: {short_repr(arch['batch_first'])}, expected true or false")
        h.batch_first = arch["batch_first"]
    if "nonlinearity" in arch:
        v = arch["nonlinearity"]
        values = v.values() if isinstance(v, dict) else [v]
        if any(x not in ("tanh", "relu") for x in values):
            problems.append(f"nonlinearity: {short_repr(v)}, expected tanh or relu (or {{module: tanh|relu}})")
        h.nonlinearity = v
    if "head" in arch:
        if arch["head"] not in HEADS and window_head(arch["head"]) is None:
            problems.append(f"head: {short_repr(arch['head'])}, expected one of {', '.join(HEADS)} or a time "
                            "window such as out[:, -5:], out[:, 3]")
        h.head = arch["head"]
    if "order" in arch:
        if not (isinstance(arch["order"], list) and all(isinstance(x, str) for x in arch["order"])):
            problems.append(f"order: {short_repr(arch['order'])}, expected a list of module names")
        h.order = arch["order"]
    if "ignore" in arch:
        if not (isinstance(arch["ignore"], list) and all(isinstance(x, str) for x in arch["ignore"])):
            problems.append(f"ignore: {short_repr(arch['ignore'])}, expected a list of module names")
        else:
            h.ignore = arch["ignore"]
    if "activations" in arch:
        acts = arch["activations"] or {}
        h.activations_given = True
        if not isinstance(acts, dict):
            problems.append(f"activations: {short_repr(acts)}, expected {{module: activation}}")
        else:
            for module, spec in acts.items():
                try:
                    h.activations[str(module)] = activation(spec)
                except InputError as exc:
                    problems.append(f"activations.{module}: {exc.message}")
    if "input_features" in arch:
        v = arch["input_features"]
        if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            problems.append(f"input_features: {short_repr(v)}, expected a positive integer")
        h.input_features = v
    if "modules" in arch:
        problems += _modules(arch["modules"], h)
    if "state_dict_key" in arch:
        h.state_dict_key = str(arch["state_dict_key"])
    if problems:
        raise InputError("invalid architecture hints: " + "; ".join(problems), path=origin)
    return h


def _positive(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _modules(value, h: Hints) -> list[str]:
    """Per-module settings: type (embedding | linear), conv padding/stride/dilation/groups, norm eps."""
    if not isinstance(value, dict):
        return [f"modules: {value!r}, expected {{module: {{setting: value}}}}"]
    problems = []
    for module, settings in value.items():
        where = f"modules.{module}"
        if not isinstance(settings, dict):
            problems.append(f"{where}: {settings!r}, expected {{setting: value}}")
            continue
        unknown = sorted(set(settings) - set(MODULE_FIELDS))
        if unknown:
            problems.append(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(MODULE_FIELDS)}")
        if "type" in settings and settings["type"] not in MODULE_FIELDS["type"]:
            problems.append(f"{where}.type: {settings['type']!r}, expected embedding or linear")
        for k in ("stride", "dilation", "groups"):
            if k in settings and not _positive(settings[k]):
                problems.append(f"{where}.{k}: {settings[k]!r}, expected a positive integer")
        if "padding" in settings:
            p = settings["padding"]
            ok = (p in ("same", "valid", "causal") or (isinstance(p, int) and not isinstance(p, bool) and p >= 0)
                  or (isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) and x >= 0 for x in p)))
            if not ok:
                problems.append(f"{where}.padding: {p!r}, expected an integer, [left, right], same, valid or causal")
        if "eps" in settings and not (isinstance(settings["eps"], (int, float)) and settings["eps"] > 0):
            problems.append(f"{where}.eps: {settings['eps']!r}, expected a positive number")
        h.modules[str(module)] = dict(settings)
    return problems


def activation(spec) -> Activation:
    """An Activation from 'relu', 'softmax', 'silu', ... or {name: leaky_relu, alpha: 0.1}."""
    if spec is None:
        return Activation("linear")
    if isinstance(spec, dict):
        spec = dict(spec)
        name = str(spec.pop("name", "")).lower()
        if name in TORCH_ACTIVATIONS:
            base = TORCH_ACTIVATIONS[name]
        elif name in ACTIVATIONS:
            base = Activation(name)
        else:
            raise InputError(f"unknown activation {name!r}")
        unknown = set(spec) - {"alpha", "beta"}
        if unknown:
            raise InputError(f"activation parameters {sorted(unknown)}: only alpha, beta")
        return Activation(base.name, spec.get("alpha", base.alpha), spec.get("beta", base.beta))
    if not isinstance(spec, str):
        raise InputError(f"activation {short_repr(spec)}, expected a name")
    name = spec.lower()
    if name in TORCH_ACTIVATIONS:
        return TORCH_ACTIVATIONS[name]
    if name not in ACTIVATIONS:
        raise InputError(f"unknown activation {short_repr(spec)}; known: {', '.join(sorted(set(ACTIVATIONS) | set(TORCH_ACTIVATIONS)))}")
    params = ACTIVATIONS[name]
    if params:
        raise InputError(f"activation {short_repr(spec)} needs {', '.join(params)}: give {{name: {name}, "
                         + ", ".join(f"{p}: ..." for p in params) + "}")
    return Activation(name)


def _from_fixture_json(arch: dict) -> dict:
    """The fixtures' arch.json (one rnn + optional head module) as hints."""
    rnn, head = arch["rnn"], arch.get("head") or {}
    out = {"batch_first": bool(rnn.get("batch_first", True))}
    rnn_path = str(rnn.get("state_dict_prefix", "rnn.")).rstrip(".")
    if rnn.get("nonlinearity"):
        out["nonlinearity"] = rnn["nonlinearity"]
    if rnn.get("input_size"):
        out["input_features"] = rnn["input_size"]
    applied = str(head.get("applied_to", "")).replace(" ", "")
    if applied.startswith(("out[:,-1]", "out[-1]")):
        out["head"] = "last_step"
    elif applied.startswith("h_n[-1]"):
        out["head"] = "h_n[-1]"
    elif applied.startswith("out"):
        out["head"] = "sequence"
    if head:
        head_path = str(head.get("state_dict_prefix", "fc.")).rstrip(".")
        out["order"] = [rnn_path, head_path]
        out["activations"] = {head_path: head["activation"]} if head.get("activation") else {}
    return out


_WINDOW = re.compile(r"out\[(:,)?(-?\d{1,10})(:(-?\d{1,10})?)?\]")


def window_head(text) -> tuple[int, int | None, bool] | None:
    """(start, stop, single) of a head written as a time window of out: out[:, -5:], out[:, 3], out[:, 2:6]
    (out[-5:] time-major); None for anything else."""
    m = _WINDOW.fullmatch(text.replace(" ", "")) if isinstance(text, str) else None
    if m is None:
        return None
    start, colon, stop = int(m.group(2)), m.group(3), m.group(4)
    return (start, None, True) if colon is None else (start, None if stop is None else int(stop), False)
