"""The Keras 2 layers `keras_json.plan` planned, adapted to what TF.js computes.

TF.js has no ZeroPadding1D and its Conv1D refuses 'causal' padding ("not implemented yet"), so zeros
added before a convolution are written as Reshape [T, 1, F] -> ZeroPadding2D ((left, right), (0, 0))
-> Reshape [T, F] (the same zeros; the reader folds the three back into one padding) and the Conv1D
is 'valid'.  Refused, naming the layer: a time window (TF.js has no Cropping1D), GRU with reset_after=True (TF.js's GRUCell throws on it), activations
TF.js does not name, and where a mask (Embedding mask_zero, Masking) reaches a layer that TF.js masks
otherwise than Keras: a recurrent layer whose masked steps output zeros (TF.js repeats the previous
output) and global average pooling (TF.js averages the masked steps too).
"""
from __future__ import annotations

from ... import model as M
from ..keras_json.plan import mask_after
from ..keras_json.specs import KLayer

MAJOR = 2           # Keras configs as tf.keras 2 writes them, which is what TF.js reads
INSTEAD = "; for JavaScript, write an ES module (.mjs) instead, which computes it"
ACTIVATIONS = ("elu", "gelu", "hard_sigmoid", "linear", "log_softmax", "relu", "relu6", "selu", "sigmoid",
               "softmax", "softplus", "softsign", "swish", "tanh")


def adapt(specs: list[KLayer], planner) -> tuple[list[KLayer], list[str]]:
    """(specs TF.js computes, problems naming each layer it cannot)."""
    out, problems = [], []
    for spec in specs:
        problems += refusals(spec)
        if spec.cls == "ZeroPadding1D":
            left, right = spec.settings["padding"]
            out += padding(spec.name, left, right, spec.input_shape, planner)
        elif spec.cls == "Conv1D" and spec.settings["padding"] == "causal":
            left = (spec.settings["kernel_size"] - 1) * spec.settings["dilation_rate"]
            name = planner.unique(f"{spec.name}_padding", f"layer '{spec.name}'s padding")
            out += padding(name, left, 0, spec.input_shape, planner)
            out.append(KLayer(spec.cls, spec.name, dict(spec.settings, padding="valid"), spec.input_shape,
                              spec.weights))
            planner.notes.append(f"layer '{spec.name}': causal padding written as {left} zero steps before a 'valid' "
                                 "Conv1D (TF.js's Conv1D has no causal padding)")
        else:
            out.append(spec)
    return out, problems


def padding(name: str, left: int, right: int, shape: list, planner) -> list[KLayer]:
    """Zero steps before and after the sequence, in layers TF.js has; `name` (already unique) is the
    ZeroPadding2D's."""
    features = int(shape[2])
    steps = None if shape[1] is None else shape[1] + left + right
    into, back = (planner.unique(f"{name}_{d}", f"padding '{name}'") for d in ("4d", "3d"))
    return [KLayer("Reshape", into, {"target_shape": [-1, 1, features]}, list(shape)),
            KLayer("ZeroPadding2D", name, {"padding": [[int(left), int(right)], [0, 0]],
                                           "data_format": "channels_last"}, [None, shape[1], 1, features]),
            KLayer("Reshape", back, {"target_shape": [-1, features]}, [None, steps, 1, features])]


def refusals(spec: KLayer) -> list[str]:
    """What TF.js cannot load or computes otherwise, in one planned layer."""
    out = []
    s = spec.settings.get("layer", spec.settings)
    cls = spec.wrapped or spec.cls
    if cls == "Cropping1D":
        out.append(f"layer '{spec.name}': a time window, which Keras writes as a Cropping1D: TF.js has no Cropping1D "
                   f"layer{INSTEAD}")
    if cls == "GRU" and s.get("reset_after"):
        out.append(f"layer '{spec.name}': a GRU with the reset gate applied after the recurrent matmul "
                   "(reset_after=True, as PyTorch, ONNX linear_before_reset=1 and tf.keras 2's default compute "
                   f"it): TF.js's GRU computes only reset_after=False{INSTEAD}")
    for key in ("activation", "recurrent_activation"):
        act = s.get(key)
        if isinstance(act, str) and act not in ACTIVATIONS:
            out.append(f"layer '{spec.name}': {key} '{act}' has no TF.js activation{INSTEAD}")
    return out


def mask_refusals(model: M.Model) -> list[str]:
    """The layers a mask reaches that TF.js would compute otherwise than the canonical model says."""
    out, masked = [], False
    for layer in model.layers:
        if masked and isinstance(layer, M.Recurrent) and layer.output == "sequence" and layer.masked_output == "zero":
            out.append(f"layer '{layer.name}': a mask reaches it and its masked steps output zeros (Keras's "
                       "Bidirectional returning sequences): TF.js's recurrent layers repeat the previous "
                       f"output{INSTEAD}")
        if masked and isinstance(layer, M.Pooling1D) and layer.mode == "average" and layer.pool_size is None:
            out.append(f"layer '{layer.name}': a mask reaches this global average pooling: TF.js averages the "
                       f"masked steps too, Keras only the others{INSTEAD}")
        masked = mask_after(layer, masked)
    return out
