"""Reading: a state dict (`loading.py`) -> module specs (`statedict.py`) -> canonical model.

Files rnnconvert wrote carry its settings (`_metadata["__rnnconvert__"]` in a .pt, `__metadata__
["rnnconvert"]` in a .safetensors) and read back exactly; anything else is inferred from key names
and shapes plus the architecture hints (`arch.py`), every default applied being recorded in
`model.source["assumptions"]` as an `Assumption` (kind, what, the `--arch` line that settles it) and
notes that do not change the function in `source["read_notes"]`.  The module order is `order.py`'s.
"""
from __future__ import annotations

import os

import numpy as np

from ...errors import InputError, UnsupportedError
from ...model.assumptions import Assumption
from ...model import (LINEAR, RELU, SIGMOID, TANH, Activation, ActivationLayer, BatchNorm, Conv1D, Dense,
    DirectionWeights, Dropout, Embedding, Flatten, InputSpec, Model, Pooling1D, Recurrent, TimeWindow)
from . import arch as arch_hints
from .loading import key_list, load
from .order import check_chain, forward_order
from .statedict import (TORCH_CLASS, ActivationSpec, BatchNormSpec, ConvSpec, DropoutSpec, EmbeddingSpec,
    FlattenSpec, LinearSpec, PoolSpec, RNNSpec, parse, to_state_dict)
from .steps import WindowSpec, resolve_embeddings, settle_modules, spec_from_step

# model.source entries about how one file was loaded: not carried into files written from the model
LOADER_KEYS = ("assumptions", "read_notes", "key_renames", "ignored_keys", "state_dict_key", "safetensors_metadata",
               "written_by", "converted_from")


# ------------------------------------------------------------------------------------ reading

def read(path, arch=None, **options) -> Model:
    path = str(path)
    hints = arch_hints.load(arch)
    sd, meta, info = load(path, hints.state_dict_key)
    modules, state_keys, unknown = parse(sd, path, ignore=hints.ignore)
    unknown += info.pop("non_tensor_keys", [])
    source = {"format": info["format"], "path": path, **{k: v for k, v in info.items() if k != "format"}}
    if hints.ignore:
        source["ignored_keys"] = [k for k in sd if any(k == p or k.startswith(p + ".") for p in hints.ignore)]
    if not any(isinstance(m, RNNSpec) for m in modules.values()):
        raise InputError("no nn.LSTM/nn.GRU/nn.RNN weights found (keys named weight_ih_l0, weight_hh_l0, ...); "
                         f"keys: {key_list(sd) or 'none'}", path=path)
    if unknown:
        raise UnsupportedError("keys that are not nn.LSTM/nn.GRU/nn.RNN/nn.Linear/nn.Embedding/nn.Conv1d/"
                               f"nn.BatchNorm1d parameters: {key_list(unknown)}; "
                               "rnnconvert reads only those (and h0/c0 initial-state buffers); if these "
                               "modules are not on the inference path, give --arch with ignore: [module]",
                               path=path)
    if meta is not None:
        specs, input_spec = _specs_from_metadata(meta, modules, sd, state_keys, path)
        earlier = {k: v for k, v in (meta.get("source") or {}).items() if k not in LOADER_KEYS}
        if "format" in earlier:
            earlier["converted_from"] = {"format": earlier.pop("format"), "path": earlier.pop("path", None)}
        source = {**earlier, **source, "written_by": meta.get("rnnconvert")}
        if hints.given:
            source["read_notes"] = ["--arch hints ignored: the file carries rnnconvert's own settings"]
        name, output_name = meta.get("name", "model"), meta.get("output_name", "output")
    else:
        assumptions: list[Assumption] = []
        notes: list[str] = []
        specs, input_spec = _specs_from_hints(modules, state_keys, sd, hints, info, assumptions.append,
                                              notes.append, path)
        source["assumptions"] = assumptions
        if notes:
            source["read_notes"] = notes
        if info.get("key_renames"):
            source["key_renames"] = info["key_renames"]
        name, output_name = os.path.splitext(os.path.basename(path))[0], "output"
    layers = specs_to_layers(specs)
    return Model(layers=layers, input=input_spec, output_name=output_name, name=name,
                 source=source).validate(path)


# ------------------------------------------------------------------------- hints and defaults

def _specs_from_hints(modules, state_keys, sd, hints, info, assume, note, path):
    key = info.get("state_dict_key")
    if key and hints.state_dict_key is None:
        assume(Assumption(f"state dict taken from the checkpoint's '{key}' entry", "architecture",
                          f"the model's weights are the checkpoint's '{key}' entry", f"--arch state_dict_key: {key}"))
    resolve_embeddings(modules, hints, assume, path)
    order = forward_order(modules, hints, info["format"], assume, path)
    specs = [modules[name] for name in order]
    settle_modules(specs, hints, assume, note, path)
    rnns = [s for s in specs if isinstance(s, RNNSpec)]
    renames = info.setdefault("key_renames", {})
    for spec in specs:
        if spec.path == "":                       # a bare module's state dict: keys without a prefix
            before = list(to_state_dict([spec]))
            spec.path = spec.cell if isinstance(spec, RNNSpec) else "linear"
            renames.update(zip(before, to_state_dict([spec])))
            note(f"keys without a module prefix read as one nn.{TORCH_CLASS.get(getattr(spec, 'cell', ''), 'Linear')} "
                f"named '{spec.path}'")
    _assign_states(rnns, state_keys, sd, assume, path, renames)

    batch_first = hints.batch_first
    if batch_first is None:
        batch_first = True
        assume(Assumption("batch_first not stored in a state dict: assumed true, input [batch, time, features] "
                          "(give --arch with batch_first: false if the module was time-major)", "layout",
                          "batch_first true", "--arch batch_first: true (false if the module was time-major)"))
    for spec in rnns:
        if spec.cell == "rnn":
            nl = hints.nonlinearity_for(spec.path)
            if nl is None:
                nl = "tanh"
                assume(Assumption(f"nn.RNN '{spec.path}' nonlinearity not stored in a state dict: assumed tanh "
                                  "(give --arch with nonlinearity: relu if it was)", "activation",
                                  f"nn.RNN '{spec.path}' nonlinearity tanh",
                                  f"--arch nonlinearity: {{{spec.path}: tanh}} (or relu)"))
            spec.nonlinearity = nl
    if isinstance(hints.nonlinearity, dict):
        bad = set(hints.nonlinearity) - {s.path for s in rnns if s.cell == "rnn"}
        if bad:
            raise InputError(f"--arch nonlinearity names {', '.join(sorted(bad))}, not nn.RNN modules of "
                             f"this state dict", path=path)

    last = rnns[-1]
    follows = specs.index(last) < len(specs) - 1
    head = hints.head
    window = arch_hints.window_head(head)
    if window is not None:          # some steps of out: the module returns its sequence, a TimeWindow cuts it
        head = "sequence"
    if head is None:
        head = "last_step" if follows else "sequence"
        if follows:
            nxt = specs[specs.index(last) + 1]
            same = ("; for a one-direction module h_n[-1] is the same" if not last.bidirectional
                    else "; the backward half of out[:, -1] is the backward direction after one step")
            assume(Assumption(f"head not stored in a state dict: '{nxt.path}' assumed to read out[:, -1] of "
                              f"'{last.path}' (head: last_step{same}; give --arch with head: final_state if it "
                              "reads h_n)", "head", f"'{nxt.path}' reads out[:, -1] of '{last.path}'",
                              "--arch head: last_step (or final_state, h_n[-1], sequence)"))
        else:
            assume(Assumption(f"'{last.path}' is the last module: its whole output sequence assumed to be the "
                              "model's output (head: sequence; give --arch with head: last_step or final_state "
                              "otherwise)", "head", f"the model returns every step of '{last.path}'",
                              "--arch head: sequence (or last_step, final_state, h_n[-1])"))
    for spec in rnns:
        spec.output = "sequence"
    last.output = head
    if head == "h_n[-1]":
        last.output = "backward_final_state" if last.bidirectional else "final_state"
    if head == "final_state" and last.bidirectional and follows:
        nxt = specs[specs.index(last) + 1]
        if getattr(nxt, "input_size", None) == last.state_size:
            last.output = "backward_final_state"
            note(f"'{nxt.path}' takes {last.state_size} inputs: it reads h_n[-1] of bidirectional "
                f"'{last.path}', the backward direction's final state only")
    if last.output == "backward_final_state":
        note(f"h_n[-1] of bidirectional '{last.path}' is the backward direction only: its last layer becomes "
            "a canonical reverse layer and that layer's forward weights, which the output does not use, "
            "are dropped")

    unknown_acts = set(hints.activations) - set(modules)
    if unknown_acts:
        raise InputError(f"--arch activations name {', '.join(sorted(unknown_acts))}, not modules of this "
                         f"state dict (modules: {', '.join(modules)})", path=path)
    out = []
    for spec in specs:
        act = hints.activations.get(spec.path)
        if isinstance(spec, (LinearSpec, ConvSpec)):
            spec.activation = act
            out.append(spec)
        else:
            out.append(spec)
            if spec is last and window is not None:
                out.append(WindowSpec(*window, name=f"{last.path}_window"))
            if act is not None and act.name != "linear":
                out.append(ActivationSpec(act, name=f"{spec.path or spec.cell}_activation"))
    if not hints.activations_given:
        assume(Assumption("activations between modules not stored in a state dict: none assumed "
                          "(give --arch with activations: {module: softmax} if forward applies one)", "activation",
                          "no activation between modules",
                          "--arch activations: {} (or {module: softmax} where forward applies one)"))

    check_chain(out, path)
    layout = "batch_time_feature" if batch_first else "time_batch_feature"
    if isinstance(out[0], EmbeddingSpec):
        return out, InputSpec(features=0, dtype="int64", layout=layout)
    features = out[0].input_size
    if hints.input_features is not None and hints.input_features != features:
        raise InputError(f"--arch input_features {hints.input_features}, but the first module "
                         f"'{out[0].path}' takes {features}", path=path)
    return out, InputSpec(features=features, layout=layout)


def _assign_states(rnns, state_keys, sd, assume, path, renames):
    by_path = {s.path: s for s in rnns}
    for key in state_keys:
        module, _, name = key.rpartition(".")
        spec = by_path.get(module)
        if spec is None:
            if len(rnns) != 1:
                raise UnsupportedError(f"initial-state buffer '{key}' belongs to none of the recurrent modules "
                                       f"({', '.join(by_path)}); rnnconvert cannot tell which one uses it", path=path)
            spec = rnns[0]
            assume(Assumption(f"buffer '{key}' taken as the initial {name} of '{spec.path}' "
                              "(forward called with it, broadcast over the batch)", "architecture",
                              f"buffer '{key}' is the initial {name} of '{spec.path}'",
                              f"--arch ignore: [{key}] if forward does not use it (no --arch line says it does)"))
        a = sd[key]
        size = spec.hidden if name == "c0" else spec.state_size
        n = spec.num_layers * spec.directions
        if a.ndim == 2 and a.shape == (n, size):
            a = a[:, None, :]
        if a.ndim != 3 or a.shape[0] != n or a.shape[2] != size:
            raise InputError(f"{key}: shape {list(a.shape)}, expected [{n}, 1 or batch, {size}] "
                             "(layers*directions, batch, size) as PyTorch's hx", path=path)
        if name == "c0" and spec.cell != "lstm":
            raise InputError(f"{key}: a cell state for a {TORCH_CLASS[spec.cell]}", path=path)
        setattr(spec, name, a)
        if key != f"{spec.path}.{name}":
            renames[key] = f"{spec.path}.{name}"


# --------------------------------------------------------------------------------- metadata

def _specs_from_metadata(meta, modules, sd, state_keys, path):
    try:
        specs = []
        for k, step in enumerate(meta["steps"]):
            kind = step["kind"]
            where = f"rnnconvert metadata steps[{k}]"
            if kind in ("rnn", "linear"):
                spec = modules.get(step["module"])
                if spec is None or spec.kind != kind:
                    raise InputError(f"{where}: module '{step['module']}' ({kind}) is not in the state dict",
                                     path=path)
            if kind == "rnn":
                if spec.cell != step["cell"]:
                    raise InputError(f"{where}: '{spec.path}' is an nn.{TORCH_CLASS[spec.cell]}, the metadata "
                                     f"says {step['cell']}", path=path)
                for attr in ("nonlinearity", "reverse_only", "output", "time_order", "merge",
                             "layer_names", "layer_flags"):
                    setattr(spec, attr, step[attr])
                for name in ("h0", "c0"):
                    key = f"{spec.path}.{name}" if spec.path else name
                    if key in sd:
                        setattr(spec, name, sd[key])
            elif kind == "linear":
                spec.name = step["name"]
                spec.activation = Activation(**step["activation"]) if step.get("activation") else None
            elif kind == "activation":
                spec = ActivationSpec(Activation(**step["activation"]), name=step["name"])
            elif kind == "dropout":
                spec = DropoutSpec(float(step["rate"]), name=step["name"], variant=step.get("variant", "dropout"))
            elif kind in ("embedding", "conv1d", "batch_norm", "pooling1d", "flatten", "time_window"):
                spec = spec_from_step(step, modules, where, path)
            else:
                raise InputError(f"{where}: unknown step kind '{kind}'", path=path)
            specs.append(spec)
        used = {s.path for s in specs if hasattr(s, "path")}
        unused = [m for m in modules if m not in used]
        if unused:
            raise InputError(f"modules {', '.join(unused)} are in the state dict but not in its rnnconvert "
                             "metadata", path=path)
        return specs, InputSpec(**meta["input"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"rnnconvert metadata does not match this version ({type(exc).__name__}: {exc})",
                         path=path) from None


# ------------------------------------------------------------------------- specs -> canonical

def specs_to_layers(specs) -> list:
    layers = []
    for spec in specs:
        if isinstance(spec, RNNSpec):
            layers += _recurrent_layers(spec)
        elif isinstance(spec, LinearSpec):
            layers.append(Dense(name=spec.name or spec.path or "linear",
                                kernel=np.ascontiguousarray(spec.weight.T), bias=spec.bias,
                                activation=spec.activation or LINEAR))
        elif isinstance(spec, ActivationSpec):
            layers.append(ActivationLayer(name=spec.name, activation=spec.activation))
        elif isinstance(spec, DropoutSpec):
            layers.append(Dropout(name=spec.name, rate=spec.rate, variant=spec.variant))
        elif isinstance(spec, EmbeddingSpec):
            layers.append(Embedding(name=spec.name or spec.path, table=spec.weight))
        elif isinstance(spec, ConvSpec):
            layers.append(Conv1D(name=spec.name or spec.path, kernel=np.ascontiguousarray(spec.weight.transpose(2, 1, 0)),
                                 bias=spec.bias, strides=spec.stride, dilation=spec.dilation, padding=spec.padding,
                                 pads=tuple(spec.pads), groups=spec.groups, activation=spec.activation or LINEAR))
        elif isinstance(spec, BatchNormSpec):
            layers.append(BatchNorm(name=spec.name or spec.path, mean=spec.running_mean, variance=spec.running_var,
                                    scale=spec.weight, offset=spec.bias, epsilon=spec.eps))
        elif isinstance(spec, PoolSpec):
            layers.append(Pooling1D(name=spec.name, mode=spec.mode, pool_size=spec.pool_size, strides=spec.strides,
                                    padding=spec.padding))
        elif isinstance(spec, FlattenSpec):
            layers.append(Flatten(name=spec.name))
        elif isinstance(spec, WindowSpec):
            layers.append(TimeWindow(name=spec.name, start=spec.start, stop=spec.stop, single=spec.single))
    return layers


def _recurrent_layers(spec: RNNSpec) -> list[Recurrent]:
    acts = {"lstm": [SIGMOID, TANH, TANH], "gru": [SIGMOID, TANH],
            "rnn": [RELU if spec.nonlinearity == "relu" else TANH]}[spec.cell]
    D = spec.directions
    out = []
    for k in range(spec.num_layers):
        last = k == spec.num_layers - 1
        flags = spec.layer_flags[k] if k < len(spec.layer_flags) else {}
        if k < len(spec.layer_names):
            name = spec.layer_names[k]
        else:
            base = spec.path or spec.cell
            name = base if spec.num_layers == 1 else f"{base}_l{k}"
        if spec.reverse_only:
            direction, dirs = "reverse", [0]
        elif last and spec.output == "backward_final_state":
            direction, dirs = "reverse", [1]
        else:
            direction, dirs = ("bidirectional", [0, 1]) if spec.bidirectional else ("forward", [0])
        weights = []
        for d in dirs:
            w = spec.weights[k][d]
            zeros = np.zeros(w["weight_hh"].shape[0], w["weight_hh"].dtype)
            present = flags.get("initial", {})
            h0 = _state(spec.h0, k * D + d, present.get("h0"), d)
            c0 = _state(spec.c0, k * D + d, present.get("c0"), d)
            weights.append(DirectionWeights(W=w["weight_ih"], R=w["weight_hh"], Wb=w.get("bias_ih", zeros),
                                            Rb=w.get("bias_hh", zeros), h0=h0, c0=c0, proj=w.get("weight_hr")))
        if last:
            output = "final_state" if spec.output == "backward_final_state" else spec.output
            merge, time_order = spec.merge, spec.time_order
        else:
            output, merge, time_order = "sequence", "concat", "input"
        out.append(Recurrent(name=name, cell=spec.cell, hidden=spec.hidden, direction=direction,
                             weights=weights, activations=list(acts), output=output, merge=merge,
                             time_order=time_order,
                             has_input_bias=flags.get("has_input_bias", spec.bias),
                             has_recurrent_bias=flags.get("has_recurrent_bias", spec.bias),
                             masked_output=flags.get("masked_output", "previous")))
    return out


def _state(buffer, index, present, d):
    """Direction d's [S] or [batch, S] initial state from a [layers*dirs, 1|batch, S] buffer.

    `present` (rnnconvert's own files) says per direction whether the canonical model had one
    (False), of shape [S] (True) or [batch, S] ('batched').
    """
    if buffer is None:
        return None
    a = buffer[index]
    if present is not None and not present[d] and not np.any(a):
        return None                       # written as zeros for a direction that had none
    batched = present is not None and present[d] == "batched"
    return a[0].copy() if a.shape[0] == 1 and not batched else a.copy()
