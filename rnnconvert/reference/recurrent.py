"""A recurrent layer of the reference forward pass: each direction's time loop (`cells`, `lstm`), what the layer
returns of it (`_pick`: sequence, last step or final state), the two directions merged (`_merge`), and
the settings checked first (`_check_recurrent`: UnsupportedError for an unknown one, InputError for a
malformed layer).  The equations are in `network`'s docstring.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError, UnsupportedError
from ..model import CELLS, DIRECTIONS, MERGE_MODES, OUTPUTS, TIME_ORDERS, Recurrent, recurrent_problems
from .activations import _compile
from .cells import State, _gru, _rnn
from .lstm import _lstm


def _recurrent(layer: Recurrent, X: np.ndarray, dtype) -> tuple[np.ndarray, list[State]]:
    _check_recurrent(layer, X)
    acts = [_compile(a, layer.name) for a in layer.activations]
    step = {"lstm": _lstm, "gru": _gru, "rnn": _rnn}[layer.cell]
    outputs, states = [], []
    for direction, w in zip(layer.direction_names(), layer.weights):
        reverse = direction == "reverse"
        if layer.hybrid is not None:        # int8 weights as LiteRT's hybrid kernels run them
            from .hybrid import recurrent
            Y, state = recurrent(layer, w, direction, X, reverse, acts, dtype)
        else:
            Y, state = step(layer, w, X, reverse, acts, dtype)
        outputs.append(_pick(layer, Y, reverse))
        states.append(state)
    return _merge(layer, outputs), states


def _pick(layer: Recurrent, Y: np.ndarray, reverse: bool) -> np.ndarray:
    """From one direction's states Y [time, batch, S] (Y[t] follows input t), what the layer returns.

    sequence: Y, or Y reversed for time_order 'processing' (Keras go_backwards);
    last_step: the last element of that sequence (a backward direction: its state after one step);
    final_state: the state after the whole sequence (a backward direction: Y[0]).
    """
    if layer.output == "sequence":
        return Y[::-1] if layer.time_order == "processing" else Y
    if layer.output == "last_step":
        return Y[0] if layer.time_order == "processing" else Y[-1]
    return Y[0] if reverse else Y[-1]


def _merge(layer: Recurrent, outputs: list[np.ndarray]) -> np.ndarray:
    if len(outputs) == 1:
        return outputs[0]
    y_forward, y_backward = outputs
    if layer.merge == "concat":
        return np.concatenate([y_forward, y_backward], axis=-1)
    if layer.merge == "sum":
        return y_forward + y_backward
    if layer.merge == "mul":
        return y_forward * y_backward
    return (y_forward + y_backward) / 2      # 'ave'; _check_recurrent refused anything else


def _check_recurrent(layer: Recurrent, X: np.ndarray) -> None:
    """Settings this pass does not know raise UnsupportedError; a malformed layer raises InputError."""
    for setting, known in (("cell", CELLS), ("direction", DIRECTIONS), ("output", OUTPUTS),
                           ("merge", MERGE_MODES), ("time_order", TIME_ORDERS)):
        value = getattr(layer, setting)
        if value not in known:
            raise UnsupportedError(f"{setting} '{value}' is not implemented by the reference forward pass; "
                                   f"known: {', '.join(known)}", layer=layer.name)
    if X.ndim != 3:
        raise InputError(f"a recurrent layer needs a sequence [batch, time, features], got shape {X.shape} "
                         "(does the layer before return one step?)", layer=layer.name)
    if X.shape[0] == 0:
        raise InputError("the input sequence has no time steps", layer=layer.name)
    problems = [p.lstrip(":. ") for p in recurrent_problems(layer, "", X.shape[-1])]
    for name, w in zip(layer.direction_names(), layer.weights):
        for flag, array in (("has_input_bias", "Wb"), ("has_recurrent_bias", "Rb")):
            if not getattr(layer, flag) and np.any(getattr(w, array)):
                problems.append(f"{name}.{array}: non-zero although {flag} is False")
        for array in ("h0", "c0"):
            v = getattr(w, array)
            if v is not None and (v.ndim not in (1, 2) or v.ndim == 2 and v.shape[0] != X.shape[1]):
                problems.append(f"{name}.{array}: shape {tuple(v.shape)}, expected (state,) "
                                f"or (batch={X.shape[1]}, state)")
    if problems:
        raise InputError("; ".join(problems), layer=layer.name)
