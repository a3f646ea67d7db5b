"""What makes a canonical model valid, checked all at once (`Model.validate` lists every problem), and
the checks readers apply to weights from a stranger: NaN or Inf (`check_finite`), activation
parameters that are not numbers (`check_activation_numbers`).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import gates
from ..errors import InputError, short_repr
from .layers import (CELLS, CONV_PADDINGS, DIRECTIONS, MASKED_OUTPUTS, MERGE_MODES, OUTPUTS, POOL_MODES, TIME_ORDERS,
                     BatchNorm, Conv1D, Dense, Embedding, Flatten, Pooling1D, Recurrent, TimeWindow)
from .hybrid import problems as hybrid_problems
from .states import state_problems


MAX_DIM = (1 << 31) - 1          # no weight axis or input size of a real model comes near this
WEIGHT_DTYPES = ("float16", "float32", "float64")


def _input_problems(spec):
    for key, low in (("features", 0), ("time_steps", 1)):
        v = getattr(spec, key)
        if v is None and key == "time_steps":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= MAX_DIM:
            yield f"input {key} {str(v)[:40]}, expected an integer from {low} to {MAX_DIM}"
    if spec.layout not in ("batch_time_feature", "time_batch_feature"):
        yield f"input layout '{str(spec.layout)[:40]}', expected batch_time_feature or time_batch_feature"


def _array_problems(model):
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


def _name_problems(model):
    """Names that are not text (an ONNX string field of bytes that are not UTF-8 comes back as bytes): every
    message, report and writer takes names as text."""
    for k, layer in enumerate(model.layers):
        if not isinstance(layer.name, str):
            yield f"layers[{k}]: name {short_repr(layer.name)} is not text"
    for what, name in (("input", model.input.name), ("output", model.output_name)):
        if name is not None and not isinstance(name, str):
            yield f"{what} name {short_repr(name)} is not text"


def _problems(model):
    yield from _input_problems(model.input)
    bad_names = list(_name_problems(model))
    if bad_names:
        yield from bad_names
        return
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
            if not layer.weights:   # (said above) the layers after it are measured from its output: none
                return
            if not seq:
                yield f"{where}: a recurrent layer needs a sequence but the layer before returns one step"
            features = layer.units_out
            seq = layer.output == "sequence"
        elif isinstance(layer, Dense):
            if layer.kernel.ndim != 2 or features and layer.kernel.shape[0] != features:
                yield f"{where}: kernel shape {tuple(layer.kernel.shape)}, expected ({features}, units)"
            elif layer.bias is not None and layer.bias.shape != (layer.kernel.shape[1],):
                yield f"{where}: bias shape {tuple(layer.bias.shape)}, expected ({layer.kernel.shape[1]},)"
            elif layer.hybrid is not None:
                yield from hybrid_problems(layer, where)
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
        elif isinstance(layer, TimeWindow):
            yield from _window_problems(layer, where, seq)
            seq = seq and not layer.single
        elif isinstance(layer, BatchNorm):
            for a in ("mean", "variance", "scale", "offset"):
                v = getattr(layer, a)
                if v is not None and features and v.shape != (features,):
                    yield f"{where}: {a} shape {tuple(v.shape)}, expected ({features},)"


def _window_problems(layer: "TimeWindow", where: str, seq: bool):
    if not seq:
        yield f"{where}: a time window needs a sequence"
    for key in ("start", "stop"):
        v = getattr(layer, key)
        if (v is not None or key == "start") and (isinstance(v, bool) or not isinstance(v, int)
                                                   or abs(v) > MAX_DIM):
            yield f"{where}: {key} {str(v)[:40]}, expected an integer step index"
    if not isinstance(layer.single, bool):
        yield f"{where}: single {str(layer.single)[:40]}, expected true or false"
    elif layer.single and layer.stop is not None:
        yield f"{where}: a single step (single true) takes no stop"


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
    elif layer.hybrid is not None:
        if layer.groups != 1 or isinstance(layer.hybrid, dict) and layer.hybrid.get("asymmetric_inputs") is False:
            yield f"{where}: hybrid arithmetic for a convolution is LiteRT's per-channel CONV_2D: groups 1, " \
                  "asymmetric inputs"
        else:
            yield from hybrid_problems(layer, where)


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
        if w.P is not None:
            if layer.cell != "lstm":
                yield f"{where}.{name}: peepholes are only defined for LSTM"
            expected["P"] = (3, H)
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
    if layer.hybrid is not None:
        if any(w.P is not None for w in layer.weights) or layer.clip is not None or \
                any(w.proj is not None for w in layer.weights) and layer.cell != "lstm":
            yield f"{where}: hybrid arithmetic is LiteRT's kernels': no peepholes or clip"
        elif not any(True for _ in recurrent_problems(replace(layer, hybrid=None), where, features)):
            yield from hybrid_problems(layer, where)


def nonfinite(model) -> list[tuple[str, str, int, int]]:
    """(layer, tensor, NaN/Inf count, size) of every weight tensor holding NaN or Inf."""
    out = []
    for layer in model.layers:
        for key, a in layer.arrays().items():
            a = np.asarray(a)
            if a.dtype.kind in "fc":
                bad = int(np.count_nonzero(~np.isfinite(a)))
                if bad:
                    out.append((layer.name, key, bad, int(a.size)))
    return out


def check_finite(model, path) -> None:
    """Refuse a model whose weights hold NaN or Inf (the CLI's --allow-nonfinite skips this)."""
    bad = nonfinite(model)
    if not bad:
        return
    name, key, n, size = bad[0]
    more = f" (and {len(bad) - 1} more tensor{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
    raise InputError(f"tensor '{key}' holds {n} NaN/Inf value{'s' if n > 1 else ''} of {size}{more}; the weights "
                     "are not finite, so the conversion cannot be verified: fix the model, or pass "
                     "--allow-nonfinite to convert it anyway", path=str(path), layer=name)


def check_activation_numbers(model, path) -> None:
    """Activation parameters (alpha, beta) read from metadata must be numbers, not strings or lists."""
    from numbers import Real

    from . import Activation
    for layer in model.layers:
        for value in vars(layer).values():
            for act in value if isinstance(value, list) else [value]:
                if isinstance(act, Activation):
                    for key in ("alpha", "beta"):
                        v = getattr(act, key, None)
                        if v is not None and (isinstance(v, bool) or not isinstance(v, Real)):
                            raise InputError(f"activation '{act.name}' has {key}={short_repr(v)}, expected a number",
                                             path=str(path), layer=layer.name)
