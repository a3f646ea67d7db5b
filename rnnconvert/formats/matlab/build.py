"""MATLAB layers -> the canonical model: `build` turns a list of layer objects (MCOS) or rnnconvert's
structs into a Model, layer by layer, from each one's class and properties (`fields`).  Gate blocks
stay in MATLAB's row order, which is the canonical one; an input normalization is folded into the
first weighted layer (`_fold`), and untrained or damaged layers are reported together.  A recurrent
setting missing from the properties takes MATLAB's default, an `Assumption` (`_setting`).
"""
from __future__ import annotations

import numpy as np

from ...errors import InputError, UnsupportedError
from ...model.assumptions import Assumption
from ...model import (HARD_SIGMOID_KERAS2, RELU, SIGMOID, TANH, Activation, ActivationLayer, Conv1D, Dense,
    DirectionWeights, Dropout, Embedding, InputSpec, Model, Recurrent)
from . import mcos
from .reader_layers import CLASSES as FRONT_END, _text, front_end

GATE_ACTS = {"sigmoid": SIGMOID, "hard-sigmoid": HARD_SIGMOID_KERAS2}
STATE_ACTS = {"tanh": TANH, "softsign": Activation("softsign"), "relu": RELU}
ACTIVATION_LAYERS = {"ReLULayer": "relu", "TanhLayer": "tanh", "SigmoidLayer": "sigmoid",
                     "SoftmaxLayer": "softmax"}
IDENTITY_LAYERS = ("FlattenLayer", "SequenceFoldingLayer", "SequenceUnfoldingLayer")
OUTPUT_SUFFIX = "OutputLayer"


def fields(layer) -> tuple[str, dict]:
    """(class short name, properties) of a layer object or struct, saveobj structs merged in."""
    if isinstance(layer, mcos.MObject):
        props = dict(layer.props)
        for key in ("any",):
            if isinstance(props.get(key), dict):
                props.update(props.pop(key))
        return layer.short, props
    return str(layer["Class"]).rsplit(".", 1)[-1], dict(layer)


def _value(v):
    """A learnable: the array itself or its saved struct's Value; None when empty."""
    if isinstance(v, dict):
        v = v.get("Value")
    if v is None or isinstance(v, (list, str)):
        return None
    a = np.asarray(v)
    return None if a.size == 0 else a.astype(np.float32) if a.dtype != np.float64 else a


def _num(v, default=None):
    a = np.asarray(v) if v is not None and not isinstance(v, (list, str, dict)) else None
    return default if a is None or a.size == 0 else a.reshape(-1)[0].item()


def build(layers: list, path: str, var: str, release: bool = False) -> Model:
    """The canonical model of a list of layer objects or structs.  `release`: the list is the caller's
    to give away: each entry is dropped once converted, so the weights are not held twice."""
    problems, out, notes, ignored, assumed = [], [], [], [], []
    features, norm = 0, None
    untrained, damaged = [], []
    for k in range(len(layers)):
        layer = layers[k]
        if release:
            layers[k] = None
        cls, p = fields(layer)
        del layer
        name = _text(p.get("Name"), f"layer{k}") or f"layer{k}"
        where = f"layers({k + 1}) '{name}' ({cls})"
        try:
            if cls in ("SequenceInputLayer", "FeatureInputLayer"):
                features = int(_num(p.get("InputSize"), 0) or 0)
                norm = _normalization(p, features, where)
            elif cls in ("LSTMLayer", "BiLSTMLayer", "GRULayer"):
                if _value(p.get("InputWeights")) is None:
                    untrained.append(name)
                    continue
                out.append(_recurrent(cls, name, p, where, assumed.append))
            elif cls == "FullyConnectedLayer":
                if _value(p.get("Weights")) is None:
                    untrained.append(name)
                    continue
                W = _value(p["Weights"])
                b = _value(p.get("Bias"))
                out.append(Dense(name, np.ascontiguousarray(W.T),
                                 None if b is None else b.reshape(-1)))
            elif cls in ACTIVATION_LAYERS:
                out.append(ActivationLayer(name, Activation(ACTIVATION_LAYERS[cls])))
            elif cls == "DropoutLayer":
                out.append(Dropout(name, float(_num(p.get("Probability"), 0.0))))
            elif cls in FRONT_END:
                layer_out = front_end(cls, name, p, where, _value, _num)
                if layer_out is None:
                    untrained.append(name)
                    continue
                out.append(layer_out)
            elif cls in IDENTITY_LAYERS:
                notes.append(f"{where}: identity on [batch, time, features], left out")
            elif cls.endswith(OUTPUT_SUFFIX):
                ignored.append(f"{name} ({cls})")
            else:
                problems.append(f"{where}: layer class not supported (supported: sequenceInputLayer, "
                                "lstmLayer, bilstmLayer, gruLayer, fullyConnectedLayer, relu/tanh/sigmoid/"
                                "softmax layers, dropoutLayer, flattenLayer, wordEmbeddingLayer, "
                                "convolution1dLayer, max/average/global pooling 1-D layers, "
                                "batchNormalizationLayer, output layers)")
        except UnsupportedError as e:
            problems.append(e.message if e.message.startswith("layers(") else f"{where}: {e.message}")
        except (TypeError, ValueError, OverflowError, KeyError, IndexError, AttributeError) as e:
            damaged.append(f"{where}: property values of unexpected type or shape ({type(e).__name__}: {e})")
    if untrained:
        raise InputError(f"variable '{var}' has no learned weights (layers {', '.join(untrained)} are "
                         "untrained layer definitions); train the network first and save the trained "
                         "network (save('net.mat','net')) or export it with matlab/rnnconvert_export.m",
                         path=path)
    if damaged:
        raise InputError("; ".join(damaged + problems), path=path)
    if problems:
        raise UnsupportedError("; ".join(problems), path=path)
    if not out:
        raise InputError(f"variable '{var}' has no layers with weights", path=path)
    ids = isinstance(out[0], Embedding)
    if ids:
        features = 0
        notes.append("token ids are MATLAB word indices - 1 (wordEmbeddingLayer counts from 1)")
    elif not features:
        first = out[0]
        features = first.input_size if isinstance(first, Recurrent) else (
            first.kernel.shape[0] if isinstance(first, Dense) else int(first.kernel.shape[1]) * first.groups
            if isinstance(first, Conv1D) else 0)
    if norm is not None:
        notes.append(_fold(out, norm, path))
    source = {"format": "matlab", "variable": var}
    if ignored:
        source["ignored_layers"] = ignored
    if notes:
        source["notes"] = notes
    if assumed:
        source["assumptions"] = assumed
    return Model(out, InputSpec(name="input", features=features, dtype="int64" if ids else "float32"),
                 name=var, source=source).validate(path)


def _setting(p: dict, key: str, default: str, kind: str, name: str, assume) -> str:
    """Property `key` of layer `name`, or MATLAB's default for it, said as an assumption."""
    value = _text(p.get(key), "")
    if value:
        return value
    assume(Assumption(f"layer '{name}': {key} not stored: assumed '{default}' (MATLAB's default)", kind,
                      f"layer '{name}' {key} {default}",
                      f"{key} among the layer's properties (matlab/rnnconvert_export.m saves every one; a --mapping "
                      "file may give it)"))
    return default


def _recurrent(cls: str, name: str, p: dict, where: str, assume=lambda a: None) -> Recurrent:
    H = int(_num(p.get("NumHiddenUnits")))
    W = _value(p["InputWeights"])
    R = _value(p.get("RecurrentWeights"))
    bias = _value(p.get("Bias"))
    bias = np.zeros(W.shape[0], W.dtype) if bias is None else bias.reshape(-1)
    gate = _setting(p, "GateActivationFunction", "sigmoid", "activation", name, assume)
    state = _setting(p, "StateActivationFunction", "tanh", "activation", name, assume)
    if gate not in GATE_ACTS:
        raise UnsupportedError(f"{where}: GateActivationFunction '{gate}', expected one of "
                               f"{', '.join(GATE_ACTS)}")
    if state not in STATE_ACTS:
        raise UnsupportedError(f"{where}: StateActivationFunction '{state}', expected one of "
                               f"{', '.join(STATE_ACTS)}")
    mode = _text(p.get("OutputMode"), "")
    if not mode:
        rs = p.get("ReturnSequence")
        mode = (_setting(p, "OutputMode", "sequence", "head", name, assume) if rs is None
                else "sequence" if bool(_num(rs, 1)) else "last")
    if mode not in ("sequence", "last"):
        raise UnsupportedError(f"{where}: OutputMode '{mode}', expected 'sequence' or 'last'")
    h0, c0 = _state(p, "HiddenState", "InitialHiddenState"), _state(p, "CellState", "InitialCellState")
    cell = "gru" if cls == "GRULayer" else "lstm"
    acts = [GATE_ACTS[gate], STATE_ACTS[state]] + ([STATE_ACTS[state]] if cell == "lstm" else [])
    G = 3 if cell == "gru" else 4
    n_dirs = 2 if cls == "BiLSTMLayer" else 1
    if W.shape[0] != n_dirs * G * H or R is None or R.shape != (n_dirs * G * H, H):
        raise UnsupportedError(f"{where}: InputWeights {W.shape} / RecurrentWeights "
                               f"{None if R is None else R.shape}, expected ({n_dirs * G * H}, C) / "
                               f"({n_dirs * G * H}, {H})")
    reset_after, rb_used = True, False
    if cell == "gru":
        reset = _text(p.get("ResetGateMode"), "after-multiplication")     # absent: a release without the choice
        if reset not in ("after-multiplication", "before-multiplication",
                         "recurrent-bias-after-multiplication"):
            raise UnsupportedError(f"{where}: ResetGateMode '{reset}' is not known")
        reset_after = reset != "before-multiplication"
        rb_used = reset == "recurrent-bias-after-multiplication"
        expected_bias = (6 if rb_used else 3) * H
    else:
        expected_bias = n_dirs * 4 * H
    if bias.shape[0] != expected_bias:
        raise UnsupportedError(f"{where}: Bias has {bias.shape[0]} rows, expected {expected_bias}")
    weights = []
    n = G * H
    for d in range(n_dirs):
        Wb = bias[:n] if rb_used else bias[d * n:(d + 1) * n]
        Rb = bias[n:] if rb_used else np.zeros_like(Wb)
        weights.append(DirectionWeights(
            W=np.ascontiguousarray(W[d * n:(d + 1) * n]), R=np.ascontiguousarray(R[d * n:(d + 1) * n]),
            Wb=np.ascontiguousarray(Wb), Rb=np.ascontiguousarray(Rb),
            h0=None if h0 is None else h0[d * H:(d + 1) * H],
            c0=None if c0 is None or cell != "lstm" else c0[d * H:(d + 1) * H]))
    return Recurrent(name=name, cell=cell, hidden=H,
                     direction="bidirectional" if n_dirs == 2 else "forward", weights=weights,
                     activations=acts, output="sequence" if mode == "sequence" else "last_step",
                     reset_after=reset_after, has_recurrent_bias=rb_used)


def _state(p: dict, key: str, fallback: str):
    v = _value(p.get(key))
    if v is None:
        v = _value(p.get(fallback))
    if v is None or not np.any(v):
        return None
    return np.ascontiguousarray(v.reshape(-1))


def _normalization(p: dict, C: int, where: str):
    """(scale, shift) with normalized x = scale*x + shift per channel, or None for 'none'."""
    norm = p.get("Normalization")
    stats = dict(p)
    if isinstance(norm, dict):
        stats.update(norm)
        kind = _text(norm.get("Type"), "none")
    else:
        kind = _text(norm, "none") or "none"
    kind = kind.lower()
    if kind in ("none", ""):
        return None

    def stat(*names):
        for n in names:
            v = _value(stats.get(n))
            if v is not None:
                return np.broadcast_to(v.reshape(-1).astype(np.float64), (C,)).copy()
        raise UnsupportedError(f"{where}: Normalization '{kind}' without stored {names[0]}; "
                               "re-export with matlab/rnnconvert_export.m")
    if kind == "zerocenter":
        return np.ones(C), -stat("Mean")
    if kind == "zscore":
        s = stat("StandardDeviation", "Std", "StdDev")
        return 1.0 / s, -stat("Mean") / s
    if kind in ("rescale", "rescale-symmetric", "rescale-zero-one"):
        lo, hi = stat("Min"), stat("Max")
        t_lo = _num(stats.get("TargetMin"), -1.0 if kind == "rescale-symmetric" else 0.0)
        t_hi = _num(stats.get("TargetMax"), 1.0)
        span = np.where(hi - lo == 0, 1.0, hi - lo)
        scale = (t_hi - t_lo) / span
        return scale, t_lo - lo * scale
    raise UnsupportedError(f"{where}: Normalization '{kind}' is not supported (none, zerocenter, zscore, "
                           "rescale-symmetric, rescale-zero-one are); a function handle cannot be "
                           "converted")


def _fold(layers: list, norm, path: str) -> str:
    """Fold x' = scale*x + shift into the first layer that has weights (exact)."""
    scale, shift = norm
    for layer in layers:
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, Recurrent):
            for w in layer.weights:
                W = w.W.astype(np.float64)
                w.Wb = w.Wb.astype(np.float64) + W @ shift
                w.W = W * scale[None, :]
            return (f"input normalization folded into the input weights and bias of '{layer.name}' "
                    "(W*diag(scale), bias + W*shift: the same function)")
        if isinstance(layer, Dense):
            K = layer.kernel.astype(np.float64)
            bias = np.zeros(K.shape[1]) if layer.bias is None else layer.bias.astype(np.float64)
            layer.bias = (bias + shift @ K).astype(layer.kernel.dtype)
            layer.kernel = (K * scale[:, None]).astype(layer.kernel.dtype)
            return f"input normalization folded into the weights and bias of '{layer.name}' (the same function)"
        break
    raise UnsupportedError("input normalization can only be folded into a recurrent or fully connected "
                           "first layer", path=path)
