"""The canonical model -> a .mat file holding `layers`, a cell array of one struct per layer.

Each struct has `Name`, `Class` (`nnet.cnn.layer.LSTMLayer` ...) and the layer's properties under
MATLAB's names and shapes (`schemas/matlab.md`).  v7 (zlib, scipy.io.savemat) by default, v7.3
(HDF5, h5py) with version="7.3".  Refused, naming the layer: simple RNN, reverse-only or
bidirectional GRU layers, merge modes other than concat, a bidirectional final state, projections,
clip, activations MATLAB's layers lack, batch-specific initial states; the front-end layers as
`writer_layers` says (masks, Flatten over time and grouped convolutions refused).
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...model import ActivationLayer, Dense, Dropout, Embedding, Model, Recurrent
from ...model.states import refuse_state_io
from .writer_layers import front_end

PKG = "nnet.cnn.layer."
GATE_NAMES = {("sigmoid", None, None): "sigmoid", ("hard_sigmoid", 0.2, 0.5): "hard-sigmoid"}
STATE_NAMES = ("tanh", "softsign", "relu")
ACT_CLASSES = {"relu": "ReLULayer", "tanh": "TanhLayer", "sigmoid": "SigmoidLayer", "softmax": "SoftmaxLayer"}


def write(model: Model, path, version: str = "7", **_options) -> list[str]:
    refuse_state_io(model, "MATLAB", path)
    v73 = str(version) in ("7.3", "v7.3", "73")
    try:
        layers, notes = from_canonical(model, lazy=v73)
    except UnsupportedError as e:
        raise UnsupportedError(e.message, path=str(path)) from None
    if v73:
        from .hdf5 import write_v73
        write_v73(path, {"layers": layers})
    elif str(version) in ("7", "v7", "5", "v5"):
        import scipy.io
        cell = np.empty((len(layers), 1), dtype=object)
        for k, layer in enumerate(layers):
            cell[k, 0] = layer
        scipy.io.savemat(str(path), {"layers": cell}, do_compression=True, oned_as="column")
    else:
        raise UnsupportedError(f"MAT-file version '{version}', expected 7 or 7.3")
    return notes


def _col(a) -> np.ndarray:
    return np.asarray(a).reshape(-1, 1)


def _gate_name(act, where) -> str:
    key = (act.name, None if act.alpha is None else round(act.alpha, 6),
           None if act.beta is None else round(act.beta, 6))
    if key not in GATE_NAMES:
        raise UnsupportedError(f"{where}: gate activation {act} has no MATLAB GateActivationFunction "
                               "(sigmoid, hard-sigmoid = clip(0.2x+0.5, 0, 1))")
    return GATE_NAMES[key]


def from_canonical(model: Model, lazy: bool = False) -> tuple[list[dict], list[str]]:
    """The list of layer structs (dicts) and notes on what changed in form; raises on what MATLAB lacks.
    `lazy`: a recurrent layer's InputWeights and RecurrentWeights are functions making the array, called
    by the v7.3 writer as it writes each (so the weights are not held twice)."""
    problems, notes = [], []
    ids = bool(model.layers) and isinstance(model.layers[0], Embedding)
    layers = [{"Name": "input", "Class": PKG + "SequenceInputLayer",
               "InputSize": 1.0 if ids else float(model.input.features), "Normalization": "none"}]
    if model.input.layout != "batch_time_feature":
        notes.append("the source is time-major; MATLAB takes each observation as channels x time")
    for k, layer in enumerate(model.layers):
        where = f"layers[{k}] '{layer.name}'"
        try:
            if isinstance(layer, Recurrent):
                layers.append(_recurrent(layer, where, notes, lazy))
            elif isinstance(layer, Dense):
                bias = layer.bias if layer.bias is not None else np.zeros(layer.kernel.shape[1], layer.kernel.dtype)
                layers.append({"Name": layer.name, "Class": PKG + "FullyConnectedLayer",
                               "InputSize": float(layer.kernel.shape[0]),
                               "OutputSize": float(layer.kernel.shape[1]),
                               "Weights": np.ascontiguousarray(layer.kernel.T), "Bias": _col(bias)})
                if layer.activation.name != "linear":
                    layers.append(_activation(layer.activation, f"{layer.name}_{layer.activation.name}", where))
                    notes.append(f"{where}: the Dense activation is written as a separate "
                                 f"{ACT_CLASSES[layer.activation.name]}")
            elif isinstance(layer, ActivationLayer):
                layers.append(_activation(layer.activation, layer.name, where))
            elif isinstance(layer, Dropout):
                layers.append({"Name": layer.name, "Class": PKG + "DropoutLayer",
                               "Probability": float(layer.rate) if layer.variant == "dropout" else 0.0})
                if layer.variant != "dropout":
                    notes.append(f"{where}: {layer.variant} (the identity at prediction) written as a dropoutLayer")
            elif (structs := front_end(layer, where, notes, _activation)) is not None:
                layers += structs
            else:
                raise UnsupportedError(f"{where}: layer kind '{layer.kind}' has no MATLAB layer here")
        except UnsupportedError as e:
            problems.append(e.message)
    if problems:
        raise UnsupportedError("cannot write MATLAB layers: " + "; ".join(problems))
    return layers, notes


def _activation(act, name, where) -> dict:
    if act.name not in ACT_CLASSES:
        raise UnsupportedError(f"{where}: activation '{act}' has no MATLAB layer "
                               f"(relu, tanh, sigmoid, softmax have)")
    return {"Name": name, "Class": PKG + ACT_CLASSES[act.name]}


def _recurrent(layer: Recurrent, where: str, notes: list, lazy: bool = False) -> dict:
    if layer.cell == "rnn":
        raise UnsupportedError(f"{where}: MATLAB has no built-in simple RNN layer")
    if layer.clip is not None:
        raise UnsupportedError(f"{where}: cell clip {layer.clip} has no MATLAB equivalent")
    if any(w.proj is not None for w in layer.weights):
        raise UnsupportedError(f"{where}: an LSTM projection has no lstmLayer property")
    if layer.direction == "reverse":
        raise UnsupportedError(f"{where}: a reverse-only layer has no MATLAB equivalent")
    if layer.direction == "bidirectional":
        if layer.cell != "lstm":
            raise UnsupportedError(f"{where}: MATLAB has no bidirectional GRU layer")
        if layer.merge != "concat":
            raise UnsupportedError(f"{where}: merge '{layer.merge}', bilstmLayer concatenates")
        if layer.output == "final_state":
            raise UnsupportedError(f"{where}: the backward direction's final state (Keras "
                                   "return_sequences=False) is not bilstmLayer OutputMode 'last', "
                                   "which takes the backward state after one step")
    if layer.time_order != "input":
        raise UnsupportedError(f"{where}: outputs in processing order (go_backwards) have no MATLAB equivalent")
    layer = _fold_gate_slope(layer, where, notes)
    gate = _gate_name(layer.activations[0], where)
    states = {a.name for a in layer.activations[1:]}
    if len(states) != 1 or next(iter(states)) not in STATE_NAMES or any(
            a.alpha is not None for a in layer.activations[1:]):
        raise UnsupportedError(f"{where}: state activations {', '.join(map(str, layer.activations[1:]))}; "
                               "MATLAB takes one StateActivationFunction (tanh, softsign, relu)")
    for w in layer.weights:
        for a in ("h0", "c0"):
            v = getattr(w, a)
            if v is not None and v.ndim == 2:
                raise UnsupportedError(f"{where}: {a} differs per batch row; MATLAB keeps one state vector")
    H = layer.hidden
    def W():
        return np.concatenate([w.W for w in layer.weights])

    def R():
        return np.concatenate([w.R for w in layer.weights])
    d = {"Name": layer.name, "NumHiddenUnits": float(H), "InputSize": float(layer.input_size),
         "OutputMode": "sequence" if layer.output == "sequence" else "last",
         "StateActivationFunction": next(iter(states)), "GateActivationFunction": gate,
         "InputWeights": W if lazy else W(), "RecurrentWeights": R if lazy else R()}
    if layer.cell == "lstm":
        d["Class"] = PKG + ("BiLSTMLayer" if layer.direction == "bidirectional" else "LSTMLayer")
        d["Bias"] = _col(np.concatenate([w.Wb + w.Rb for w in layer.weights]))
        if any(np.any(w.Rb) for w in layer.weights) and any(np.any(w.Wb) for w in layer.weights):
            notes.append(f"{where}: input and recurrent biases summed into MATLAB's one Bias (the same function)")
    else:
        w = layer.weights[0]
        d["Class"] = PKG + "GRULayer"
        if not layer.reset_after:
            d["ResetGateMode"] = "before-multiplication"
            d["Bias"] = _col(w.Wb + w.Rb)
        elif np.any(w.Rb[2 * H:]):
            d["ResetGateMode"] = "recurrent-bias-after-multiplication"
            d["Bias"] = _col(np.concatenate([w.Wb, w.Rb]))
        else:
            d["ResetGateMode"] = "after-multiplication"
            d["Bias"] = _col(w.Wb + w.Rb)
    dtype = layer.weights[0].W.dtype
    zeros = np.zeros(H, dtype)
    d["HiddenState"] = _col(np.concatenate([zeros if w.h0 is None else w.h0 for w in layer.weights]))
    if layer.cell == "lstm":
        d["CellState"] = _col(np.concatenate([zeros if w.c0 is None else w.c0 for w in layer.weights]))
    return d


def _fold_gate_slope(layer: Recurrent, where: str, notes: list) -> Recurrent:
    """hard_sigmoid(alpha*x + 0.5) with alpha != 0.2 (Keras 3's 1/6) is MATLAB's hard-sigmoid of the
    gate pre-activations scaled by alpha/0.2: the gate rows of W, R and both biases are scaled (exact)."""
    import copy
    act = layer.activations[0]
    if act.name != "hard_sigmoid" or act.beta is None or abs(act.beta - 0.5) > 1e-12 or \
            abs(act.alpha - 0.2) < 1e-12:
        return layer
    H, k = layer.hidden, act.alpha / 0.2
    gate_rows = [(0, 2 * H), (3 * H, 4 * H)] if layer.cell == "lstm" else [(0, 2 * H)]
    out = copy.deepcopy(layer)
    for w in out.weights:
        for name in ("W", "R", "Wb", "Rb"):
            a = getattr(w, name).astype(np.float64)
            for lo, hi in gate_rows:
                a[lo:hi] *= k
            setattr(w, name, a)
    from ...model import HARD_SIGMOID_KERAS2
    out.activations = [HARD_SIGMOID_KERAS2] + list(out.activations[1:])
    notes.append(f"{where}: hard_sigmoid slope {act.alpha:.6g} written as MATLAB's hard-sigmoid (slope 0.2) "
                 f"with the gate rows of the weights and biases scaled by {k:.6g} (the same function)")
    return out
