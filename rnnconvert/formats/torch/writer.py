"""Writing: canonical model -> state dict of nn.LSTM/nn.GRU/nn.RNN/nn.Linear (+ the module code).

One module per canonical layer, named after the layer (sanitised to a module path; `lstm`,
`dense_1`, `model.lstm`).  The one exception keeps round trips exact: consecutive recurrent layers
named `X_l0, X_l1, ...` (as the reader names the layers of one multi-layer module) that PyTorch can
stack are written back as one `nn.LSTM(num_layers=k)` named `X`.  What the state dict cannot hold
(head, merge mode, reverse-only layers, activations, dropout) is in the emitted module's forward and,
for reading back, in rnnconvert's metadata inside the file.
"""
from __future__ import annotations

import json
import keyword
import re
from collections import OrderedDict

import numpy as np

from ...version import __version__
from ...errors import UnsupportedError
from ...model import (ActivationLayer, BatchNorm, Conv1D, Dense, DirectionWeights, Dropout, Embedding, Flatten,
    Masking, Model, Pooling1D, Recurrent, TimeWindow, json_default)
from ...model.states import refuse_state_io
from . import module_code, safetensors_io
from .loading import METADATA_KEY, METADATA_VERSION, SAFETENSORS_METADATA_KEY, import_torch, is_safetensors
from .reader import LOADER_KEYS
from .statedict import (MODULE_SPECS, TORCH_CLASS, ActivationSpec, BatchNormSpec, ConvSpec, DropoutSpec,
    EmbeddingSpec, FlattenSpec, LinearSpec, PoolSpec, RNNSpec, to_state_dict)
from .steps import WindowSpec, step_of

TORCH_ACTIVATIONS = {"lstm": ("sigmoid", "tanh", "tanh"), "gru": ("sigmoid", "tanh")}

# Attributes of nn.Module (torch 2.13): a submodule cannot take these names.
_RESERVED = frozenset("""
T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda double
dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter get_submodule half
ipu load_state_dict modules mtia named_buffers named_children named_modules named_parameters parameters
register_backward_hook register_buffer register_forward_hook register_forward_pre_hook
register_full_backward_hook register_full_backward_pre_hook register_load_state_dict_post_hook
register_load_state_dict_pre_hook register_module register_parameter register_state_dict_post_hook
register_state_dict_pre_hook requires_grad_ set_extra_state set_submodule share_memory state_dict to
to_empty train training type xpu zero_grad""".split())
_SEGMENT = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*|\d+)$")
_STACKED = re.compile(r"^(?P<base>.+)_l(?P<k>\d+)$")


def write(model: Model, path, emit_module=None, **options) -> list[str]:
    path = str(path)
    refuse_state_io(model, "PyTorch state dict", path)
    specs, notes = from_canonical(model)
    sd = to_state_dict(specs)
    meta = json.dumps(metadata(model, specs), separators=(",", ":"), default=json_default)
    if is_safetensors(path):
        safetensors_io.write(path, sd, {SAFETENSORS_METADATA_KEY: meta})
    else:
        save_pt(path, sd, meta)
    if emit_module:
        write_module(model, emit_module, weights=path)
    else:
        notes.append("a state dict holds weights only: pass emit_module (--emit-module model.py) for the "
                     "nn.Module that runs them")
    return notes


def write_module(model: Model, code_path, weights=None, force: bool = True) -> None:
    """The standalone PyTorch module file for `model` (what emit_module writes); `weights`: the
    state-dict file it is meant to load, named in its docstring.  Written beside `code_path` under a
    temporary name and renamed (rnnconvert/files/atomic.py); an existing file is kept unless `force`."""
    from ...files.atomic import refuse_existing, write_files
    refuse_existing([code_path], force)
    specs, _ = from_canonical(model)
    code = module_code.generate(specs, model, weights=weights)
    write_files([(code_path, "w", lambda f: f.write(code))], replace=force)


def save_pt(path, sd: dict, meta: str) -> None:
    torch = import_torch(path, verb="writing .pt files")
    out = OrderedDict((k, torch.from_numpy(np.array(v, order="C", copy=True))) for k, v in sd.items())
    out._metadata = OrderedDict({METADATA_KEY: {"json": meta}})     # survives torch.load(weights_only=True)
    torch.save(out, path)


# ----------------------------------------------------------------------- canonical -> specs

def from_canonical(model: Model) -> tuple[list, list[str]]:
    """Module specs for `model`; UnsupportedError listing every layer PyTorch modules cannot express."""
    problems, notes = [], []
    for layer in model.layers:
        if isinstance(layer, Recurrent):
            problems += [f"layer '{layer.name}': {p}" for p in _refusals(layer)]
        elif isinstance(layer, Masking):
            problems.append(f"layer '{layer.name}': a Keras Masking layer makes the recurrent layers after it skip "
                            "masked steps, and PyTorch modules carry no mask (their RNNs would compute those steps)")
        elif isinstance(layer, Embedding) and layer.mask_zero:
            problems.append(f"layer '{layer.name}': mask_zero makes the recurrent layers after it skip steps whose "
                            "id is 0, and PyTorch modules carry no mask (nn.Embedding's padding_idx is no mask; "
                            "their RNNs would compute those steps)")
        elif not isinstance(layer, (Dense, ActivationLayer, Dropout, Embedding, Conv1D, BatchNorm, Pooling1D,
                                    Flatten, TimeWindow)):
            problems.append(f"layer '{layer.name}': {layer.kind} layers are not written to PyTorch")
    if problems:
        raise UnsupportedError("cannot write as PyTorch modules: " + "; ".join(problems))
    paths = _module_paths(model.layers)
    specs = []
    k = 0
    layers = model.layers
    while k < len(layers):
        layer = layers[k]
        if isinstance(layer, Recurrent):
            group = _stack(layers, k)
            module = _STACKED.match(layer.name)["base"] if len(group) > 1 else paths[k]
            if len(group) > 1:
                module = _sanitise(module)
            specs.append(_rnn_spec(module, group, notes))
            k += len(group)
            continue
        if isinstance(layer, Dense):
            act = layer.activation if layer.activation.name != "linear" else None
            specs.append(LinearSpec(path=paths[k], weight=np.ascontiguousarray(layer.kernel.T), bias=layer.bias,
                                    activation=act, name=layer.name))
        elif isinstance(layer, ActivationLayer):
            specs.append(ActivationSpec(layer.activation, name=layer.name))
        elif isinstance(layer, Dropout):
            specs.append(DropoutSpec(layer.rate, name=layer.name, variant=layer.variant))
        else:
            specs.append(_front_spec(layer, paths[k]))
        k += 1
    _dedupe(specs)
    return specs, notes


def _front_spec(layer, path: str):
    if isinstance(layer, Embedding):
        return EmbeddingSpec(path=path, weight=layer.table, name=layer.name)
    if isinstance(layer, Conv1D):
        act = layer.activation if layer.activation.name != "linear" else None
        return ConvSpec(path=path, weight=np.ascontiguousarray(np.transpose(layer.kernel, (2, 1, 0))), bias=layer.bias,
                        stride=int(layer.strides), dilation=int(layer.dilation), groups=int(layer.groups), padding=layer.padding,
                        pads=tuple(int(p) for p in layer.pads), activation=act, name=layer.name)
    if isinstance(layer, BatchNorm):
        weight, bias = layer.scale, layer.offset
        if (weight is None) != (bias is None):            # nn.BatchNorm1d has both affine parameters or neither
            weight = np.ones_like(layer.mean) if weight is None else weight
            bias = np.zeros_like(layer.mean) if bias is None else bias
        return BatchNormSpec(path=path, running_mean=layer.mean, running_var=layer.variance, weight=weight, bias=bias,
                             eps=float(layer.epsilon), name=layer.name)
    if isinstance(layer, Pooling1D):
        return PoolSpec(layer.mode, None if layer.pool_size is None else int(layer.pool_size),
                        None if layer.strides is None else int(layer.strides), layer.padding, name=layer.name)
    if isinstance(layer, TimeWindow):
        return WindowSpec(int(layer.start), layer.stop, bool(layer.single), name=layer.name)
    return FlattenSpec(name=layer.name)


def _refusals(layer: Recurrent):
    acts = tuple(a.name for a in layer.activations)
    cls = f"nn.{TORCH_CLASS.get(layer.cell, layer.cell)}"
    if layer.cell == "rnn":
        if acts not in (("tanh",), ("relu",)):
            yield f"{cls} computes tanh or relu, this layer uses {layer.activations[0]}"
    elif acts != TORCH_ACTIVATIONS[layer.cell]:
        want = "/".join(TORCH_ACTIVATIONS[layer.cell])
        yield (f"{cls} has the fixed activations {want}, this layer uses "
               f"{'/'.join(str(a) for a in layer.activations)}")
    if layer.cell == "gru" and not layer.reset_after:
        yield ("nn.GRU applies the reset gate after the recurrent matmul; this layer has reset_after=False "
               "(Keras reset_after=False, ONNX linear_before_reset=0), which nn.GRU cannot compute")
    if layer.clip is not None:
        yield f"{cls} has no cell clip, this layer clips at {layer.clip:g}"


def _stack(layers, k) -> list[Recurrent]:
    """Layers k, k+1, ... named X_l0, X_l1, ... that one multi-layer PyTorch module computes.

    The last one may be a reverse layer returning its final state after bidirectional ones: that
    is h_n[-1] of a bidirectional module (the reader's reading of it), its forward half unused.
    """
    first = layers[k]
    m = _STACKED.match(first.name)
    if not m or m["k"] != "0" or first.direction == "reverse":
        return [first]
    group = [first]
    for j in range(k + 1, len(layers)):
        layer = layers[j]
        prev = group[-1]
        if not (isinstance(layer, Recurrent) and layer.name == f"{m['base']}_l{len(group)}"):
            break
        tail = (first.direction == "bidirectional" and layer.direction == "reverse"
                and layer.output == "final_state")
        same = (layer.cell == first.cell and layer.hidden == first.hidden
                and layer.state_size == first.state_size
                and (layer.weights[0].proj is None) == (first.weights[0].proj is None)
                and (layer.direction == first.direction or tail)
                and [a.name for a in layer.activations] == [a.name for a in first.activations]
                and _bias(layer) == _bias(first)
                and prev.output == "sequence" and prev.merge == "concat" and prev.time_order == "input")
        if not same or not _states_stack(group + [layer]):
            break
        group.append(layer)
        if tail:
            break
    return group


def _bias(layer: Recurrent) -> bool:
    return layer.has_input_bias or layer.has_recurrent_bias


def _states_stack(group) -> bool:
    batches = {v.shape[0] for layer in group for w in layer.weights for v in (w.h0, w.c0)
               if v is not None and v.ndim == 2}
    return len(batches) <= 1


def _slots(layer: Recurrent, bidirectional: bool) -> list:
    """The layer's DirectionWeights per PyTorch direction (None: a direction the layer does not have)."""
    if bidirectional and layer.direction == "reverse":
        return [None, layer.weights[0]]
    return list(layer.weights)


def _rnn_spec(module: str, group: list[Recurrent], notes: list[str]) -> RNNSpec:
    first, last = group[0], group[-1]
    bias = _bias(first)
    reverse = first.direction == "reverse"
    bidirectional = first.direction == "bidirectional"
    slots = [_slots(layer, bidirectional) for layer in group]
    weights, flags = [], []
    for layer, per_layer in zip(group, slots):
        per_dir = []
        for w in per_layer:
            if w is None:                     # the unused forward half of h_n[-1]'s layer
                w = _zero_like(next(x for x in per_layer if x is not None))
                notes.append(f"layer '{layer.name}' is h_n[-1] of bidirectional '{module}': its forward "
                             "direction, which the output does not use, is written as zeros")
            d = {"weight_ih": w.W, "weight_hh": w.R}
            if bias:
                d["bias_ih"], d["bias_hh"] = w.Wb, w.Rb
            if w.proj is not None:
                d["weight_hr"] = w.proj
            per_dir.append(d)
        weights.append(per_dir)
        flags.append({"has_input_bias": layer.has_input_bias, "has_recurrent_bias": layer.has_recurrent_bias,
                      "masked_output": layer.masked_output,
                      "initial": {s: [_present(getattr(w, s) if w is not None else None) for w in per_layer]
                                  for s in ("h0", "c0")}})
        if bias and not (layer.has_input_bias and layer.has_recurrent_bias):
            which = "bias_hh" if layer.has_input_bias else "bias_ih"
            notes.append(f"layer '{layer.name}' has one bias; {which} written as zeros")
    output = last.output
    if bidirectional and last.direction == "reverse":
        output = "backward_final_state"
    spec = RNNSpec(path=module, cell=first.cell, input_size=first.input_size, hidden=first.hidden,
                   num_layers=len(group), bidirectional=bidirectional, bias=bias,
                   proj_size=first.state_size if first.weights[0].proj is not None else 0,
                   nonlinearity=first.activations[0].name if first.cell == "rnn" else "tanh",
                   weights=weights, reverse_only=reverse, output=output, time_order=last.time_order,
                   merge=last.merge, layer_names=[layer.name for layer in group], layer_flags=flags)
    spec.h0 = _state_buffer(slots, "h0", spec.state_size)
    spec.c0 = _state_buffer(slots, "c0", spec.hidden) if first.cell == "lstm" else None
    if first.cell == "lstm" and (spec.h0 is None) != (spec.c0 is None):
        if spec.h0 is None:
            spec.h0 = np.zeros(spec.c0.shape[:2] + (spec.state_size,), spec.c0.dtype)
        else:
            spec.c0 = np.zeros(spec.h0.shape[:2] + (spec.hidden,), spec.h0.dtype)
    if reverse:
        notes.append(f"layer '{first.name}' runs backwards: PyTorch has no reverse-only RNN, so '{module}' is a "
                     "forward module the emitted code runs on x.flip(time)")
    if bidirectional and last.merge != "concat":
        notes.append(f"layer '{last.name}' merges its directions by {last.merge}: done in the emitted forward")
    if spec.h0 is not None:
        notes.append(f"initial states of '{module}' stored as buffers {module}.h0"
                     + (f"/{module}.c0" if spec.c0 is not None else "") + " ([layers*dirs, batch, size])")
    return spec


def _zero_like(w: DirectionWeights) -> DirectionWeights:
    z = np.zeros_like
    return DirectionWeights(W=z(w.W), R=z(w.R), Wb=z(w.Wb), Rb=z(w.Rb),
                            proj=None if w.proj is None else z(w.proj))


def _present(v):
    if v is None:
        return False
    return "batched" if v.ndim == 2 else True


def _state_buffer(slots, name, size):
    arrays = [getattr(w, name) if w is not None else None for per_layer in slots for w in per_layer]
    if all(a is None for a in arrays):
        return None
    batch = max((a.shape[0] for a in arrays if a is not None and a.ndim == 2), default=1)
    dtype = next(a.dtype for a in arrays if a is not None)
    out = np.zeros((len(arrays), batch, size), dtype)
    for k, a in enumerate(arrays):
        if a is not None:
            out[k] = a
    return out


# ----------------------------------------------------------------------------- module names

def _sanitise(name: str) -> str:
    segments = []
    for seg in str(name).split("."):
        if not _SEGMENT.match(seg):
            seg = re.sub(r"\W", "_", seg).strip("_") or "layer"
            if seg[0].isdigit():
                seg = "m" + seg
        if keyword.iskeyword(seg) or seg in _RESERVED or seg.startswith("_"):
            seg = f"{seg.strip('_') or 'm'}_"
        segments.append(seg)
    if segments[0].isdigit():
        segments[0] = "m" + segments[0]
    return ".".join(segments)


def _module_paths(layers) -> list[str]:
    return [_sanitise(getattr(layer, "name", "") or layer.kind) for layer in layers]


def _dedupe(specs) -> None:
    """Make module paths unique, and no path a prefix of another (a module cannot also be a container).
    Sets of the paths taken and of their dotted prefixes: linear in the layers (comparing each path with
    every path taken made 6000 layers 18 million comparisons)."""
    taken: set[str] = set()
    containers: set[str] = set()           # every proper dotted prefix of a taken path
    suffix: dict[str, int] = {}            # the next _n to try for a base (6000 layers named alike)
    for spec in specs:
        if not isinstance(spec, MODULE_SPECS):
            continue
        parts = spec.path.split(".")
        if any(".".join(parts[:k]) in taken for k in range(1, len(parts))):
            spec.path = spec.path.replace(".", "_")    # inside a module taken whole: no suffix would help
        base = spec.path
        n = suffix.get(base, 1)
        while _clash(spec.path, taken, containers):
            spec.path = f"{base}_{n}"
            n += 1
        suffix[base] = n
        taken.add(spec.path)
        parts = spec.path.split(".")
        containers.update(".".join(parts[:k]) for k in range(1, len(parts)))


def _clash(path: str, taken: set, containers: set) -> bool:
    parts = path.split(".")
    return path in taken or path in containers or any(".".join(parts[:k]) in taken for k in range(1, len(parts)))


# -------------------------------------------------------------------------------- metadata

def metadata(model: Model, specs) -> dict:
    steps = []
    for spec in specs:
        if isinstance(spec, RNNSpec):
            steps.append({"kind": "rnn", "module": spec.path, "cell": spec.cell, "nonlinearity": spec.nonlinearity,
                          "reverse_only": spec.reverse_only, "output": spec.output, "time_order": spec.time_order,
                          "merge": spec.merge, "layer_names": spec.layer_names, "layer_flags": spec.layer_flags})
        elif isinstance(spec, LinearSpec):
            steps.append({"kind": "linear", "module": spec.path, "name": spec.name,
                          "activation": spec.activation.to_dict() if spec.activation else None})
        elif isinstance(spec, ActivationSpec):
            steps.append({"kind": "activation", "name": spec.name, "activation": spec.activation.to_dict()})
        elif isinstance(spec, DropoutSpec):
            steps.append({"kind": "dropout", "name": spec.name, "rate": spec.rate, "variant": spec.variant})
        elif step_of(spec) is not None:
            steps.append(step_of(spec))
    source = {k: v for k, v in model.source.items() if k not in LOADER_KEYS}
    return {"format": "rnnconvert-torch", "version": METADATA_VERSION, "rnnconvert": __version__,
            "name": model.name, "output_name": model.output_name, "input": vars(model.input),
            "source": source, "steps": steps}


