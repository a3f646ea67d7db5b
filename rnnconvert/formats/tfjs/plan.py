"""The Keras 2 layers `keras_json.plan` planned, adapted to what TF.js computes.

TF.js has no ZeroPadding1D and its Conv1D refuses 'causal' padding ("not implemented yet"), so zeros
added before a convolution are written as Reshape [T, 1, F] -> ZeroPadding2D ((left, right), (0, 0))
-> Reshape [T, F] (the same zeros; the reader folds the three back into one padding) and the Conv1D
is 'valid'.  What TF.js's own layers do not compute is written with rnnconvert's layer classes
(`layers_js`, the module written beside the model), recorded by `Planner.custom`: a GRU with
reset_after=True (TF.js's GRUCell throws on it), an LSTM projection or peepholes, a cell clip, non-zero
initial states (as weights), zero outputs at masked steps and a global average pooling a mask reaches
(TF.js repeats the previous output and averages the masked steps too), and a cell's activations
where TF.js names none that computes them (exact, by role), and a time window (TF.js has no Cropping1D:
`RnnconvertTimeWindow`, from any length).  Refused, naming the layer: activations TF.js does not name
outside a recurrent cell, softmax inside one, and whatever else the Keras planner refuses.
"""
from __future__ import annotations

import numpy as np

from ... import model as M
from ..keras_json import plan as keras_plan
from ..keras_json.config import inner_name
from ..keras_json.specs import KLayer, keras_activation
from . import layers_js

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


class Planner(keras_plan.Planner):
    """The Keras planner, keeping what rnnconvert's TF.js classes compute: `custom` maps a written layer's
    name to (its class in `layers_js`, config keys to add, [(weight path below the layer, array)])."""

    def __init__(self, model: M.Model, major: int, **options):
        super().__init__(model, major, **options)
        self.custom: dict[str, tuple[str, dict, list]] = {}
        self.exact: dict[str, list[dict]] = {}          # canonical layer name: its activations, exact

    def recurrent_refusals(self, layer: M.Recurrent):
        """rnnconvert's classes hold initial states, projections, peepholes and the cell clip."""
        return iter(())

    def cell_activations(self, layer: M.Recurrent, problems: list) -> tuple[list, list]:
        """Keras's names (a hard_sigmoid slope folded into the weights) where they compute the layer; else
        the exact activations in rnnconvert's class (`cell_activations`), with placeholder names."""
        if not self.exact_activations(layer):
            return super().cell_activations(layer, problems)
        for act in layer.activations:
            if act.name in ("softmax", "log_softmax"):
                problems.append(f"{act} inside the cell: rnnconvert's TF.js classes apply activations elementwise")
        self.exact[layer.name] = [{k: v for k, v in (("name", a.name), ("alpha", a.alpha), ("beta", a.beta))
                                   if v is not None} for a in layer.activations]
        names = [tfjs_name(a) or "linear" for a in layer.activations]
        return names, [(blocks, None) for blocks in keras_plan._ROLE_BLOCKS[layer.cell]]

    def exact_activations(self, layer: M.Recurrent) -> bool:
        """Does the layer need its activations exact: one TF.js names none for and no slope can be folded
        into the weights, an LSTM whose candidate and output differ, or a slope folded beside a clip or
        peepholes (which act on the unscaled pre-activation)?"""
        acts = layer.activations
        named = [tfjs_name(a) for a in acts]
        blocks = keras_plan._ROLE_BLOCKS[layer.cell]
        folds = [n is None and b is not None and keras_plan.fold(a, MAJOR, self.fold_ok) is not None
                 for a, n, b in zip(acts, named, blocks)]
        if any(n is None and not f for n, f in zip(named, folds)):
            return True
        if layer.cell == "lstm" and acts[1] != acts[2]:
            return True
        return any(folds) and (layer.clip is not None or any(w.P is not None for w in layer.weights))

    def recurrent(self, layer: M.Recurrent, shape: list) -> list[KLayer]:
        out = super().recurrent(layer, shape)
        spec = out[0]
        extra, weights = {}, []
        if layer.cell == "gru" and layer.reset_after:
            extra["reset_after"] = True
        proj = [w.proj for w in layer.weights if w.proj is not None]
        if proj:
            extra["projection_units"] = int(proj[0].shape[0])
            weights += [(side, "projection_kernel", np.asarray(w.proj, dtype=np.float64).T)
                        for side, w in zip(_sides(spec), layer.weights)]
        if any(w.P is not None for w in layer.weights):
            extra["peepholes"] = True
            weights += [(side, "peephole_weights", np.asarray(w.P, dtype=np.float64))
                        for side, w in zip(_sides(spec), layer.weights)]
        if layer.clip is not None:
            extra["cell_clip"] = float(layer.clip)
        if layer.name in self.exact:
            extra["cell_activations"] = self.exact[layer.name]
        if any(getattr(w, s) is not None and np.any(np.asarray(getattr(w, s)) != 0)
               for w in layer.weights for s in ("h0", "c0")):
            batch, states = initial_states(layer)
            extra.update(initial_state=True, initial_state_batch=batch)
            weights += [(side, var, a) for side, arrays in zip(_sides(spec), states) for var, a in arrays]
        if self.masked and layer.output == "sequence" and layer.masked_output == "zero":
            extra["zero_output_for_mask"] = True
        if extra:
            self.custom[spec.name] = ("Rnnconvert" + keras_plan.RNN_CLASSES[layer.cell], extra, weights)
        return out

    def layer(self, layer: M.Layer, shape: list) -> list[KLayer]:
        if isinstance(layer, M.TimeWindow):         # TF.js has no Cropping1D; the class takes any window
            name = self.unique(layer.name, f"layer '{layer.name}'")
            self.custom[name] = (layers_js.WINDOW, {}, [])
            return [KLayer(layers_js.WINDOW, name, {"start": int(layer.start), "single": bool(layer.single),
                                                    "stop": None if layer.stop is None else int(layer.stop)},
                           list(shape))]
        out = super().layer(layer, shape)
        if self.masked and isinstance(layer, M.Pooling1D) and layer.mode == "average" and layer.pool_size is None:
            self.custom[out[0].name] = ("RnnconvertGlobalAveragePooling1D", {}, [])
        return out


def _sides(spec: KLayer) -> list[str]:
    """The weight path prefix of each direction below the layer: '' or 'forward_lstm', 'backward_lstm'."""
    if spec.cls != "Bidirectional":
        return [""]
    inner = inner_name(spec)
    return [f"forward_{inner}", f"backward_{inner}"]


def initial_states(layer: M.Recurrent) -> tuple[int | None, list[list[tuple[str, np.ndarray]]]]:
    """(the batch the states hold, or None for one state every row starts from; per direction
    [('initial_h', [batch?, n]), ('initial_c', ...)]), a missing state as zeros."""
    batches = {int(np.shape(a)[0]) for w in layer.weights for a in (w.h0, w.c0) if a is not None and np.ndim(a) == 2}
    batch = max(batches) if batches else None
    out = []
    for w in layer.weights:
        h_size = int(w.proj.shape[0]) if w.proj is not None else layer.hidden
        sizes = [("initial_h", w.h0, h_size)] + ([("initial_c", w.c0, layer.hidden)] if layer.cell == "lstm" else [])
        lead = [] if batch is None else [batch]
        out.append([(var, np.broadcast_to(np.zeros(n) if a is None else np.asarray(a, dtype=np.float64),
                                          lead + [n]).copy()) for var, a, n in sizes])
    return batch, out


def tfjs_name(act: M.Activation) -> str | None:
    """The activation name that computes `act` in both tf.keras 2 and TF.js, or None."""
    name = keras_activation(act, MAJOR)
    return name if name in ACTIVATIONS else None


def refusals(spec: KLayer) -> list[str]:
    """What TF.js cannot load or computes otherwise, in one planned layer."""
    out = []
    s = spec.settings.get("layer", spec.settings)
    for key in ("activation", "recurrent_activation"):
        act = s.get(key)
        if isinstance(act, str) and act not in ACTIVATIONS:
            out.append(f"layer '{spec.name}': {key} '{act}' has no TF.js activation{INSTEAD}")
    return out
