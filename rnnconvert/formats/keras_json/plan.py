"""Canonical model -> the Keras layers that compute it, as flavour-neutral specs for `writer.py`.

Keras kernels are [input, gates*units], gate blocks along COLUMNS (LSTM ifco, GRU zrh).  Keras has
one bias where the canonical model has two (LSTM, SimpleRNN, GRU reset_after=False); both are added
to the same pre-activation, so their sum computes the same function (GRU reset_after=False: the
recurrent bias of the candidate is added outside `r * (h @ U)` in ONNX's linear_before_reset=0 too).

What Keras cannot hold directly is built from standard layers where an exact construction exists:

* hard_sigmoid with another slope than the target Keras's (tf.keras 2 clip(0.2x+0.5), Keras 3
  clip(x/6+0.5)): its argument is linear in the weights, so the slope is folded into the gate
  columns of the kernels and biases (`fold_hard_sigmoid`, default on; Dense likewise);
* a backward direction's output aligned with the input steps, or taken at the last input step
  (PyTorch `y[:, -1]`, MATLAB OutputMode 'last'): Keras's layer returns it in processing order or
  not at all, so the layer returns its sequence and an extra SimpleRNN with identity weights
  (linear, kernel I, recurrent kernel 0, no bias) reverses it or takes one step (`selectors`,
  default on).  It copies its input exactly (x @ I adds only zeros to each element).

Everything else Keras lacks is refused, naming the layer: non-zero initial states, LSTM
projections, cell clip, activations without a Keras form.
"""
from __future__ import annotations

import re

import numpy as np

from ...model import gates
from ... import model as M
from .frontend_writer import next_shape, plan_layer
from .specs import (HARD_SIGMOID_SLOPE, KLayer, Refusal, _activation_layer, describe_missing,
    keras_activation)

RNN_CLASSES = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}
CELL_NAMES = {"LSTM": "lstm_cell", "GRU": "gru_cell", "SimpleRNN": "simple_rnn_cell"}
# Canonical gate blocks whose pre-activation each role covers (LSTM's h role acts on c: none).
_ROLE_BLOCKS = {"lstm": ([0, 1, 3], [2], None), "gru": ([0, 1], [2]), "rnn": ([0],)}
_ROLE_NAMES = {"lstm": ("recurrent_activation (gates)", "activation (cell candidate)",
                        "activation (hidden output)"),
               "gru": ("recurrent_activation (gates)", "activation (candidate)"), "rnn": ("activation",)}


def fold(act: M.Activation, major: int, allowed: bool) -> tuple[float, float] | None:
    """(scale, shift) s.t. Keras's hard_sigmoid(scale*z + shift) == act(z), for a hard_sigmoid."""
    if not allowed or act.name != "hard_sigmoid" or act.alpha is None or act.beta is None or act.alpha <= 0:
        return None
    slope = HARD_SIGMOID_SLOPE[major]
    return act.alpha / slope, (act.beta - 0.5) / slope


class Planner:
    def __init__(self, model: M.Model, major: int, *, fold_hard_sigmoid=True, selectors=True):
        self.model, self.major = model, major
        self.fold_ok, self.selectors_ok = fold_hard_sigmoid, selectors
        self.notes: list[str] = []
        self.used: set[str] = set()
        self.spec_of: dict[str, str] = {}     # canonical recurrent layer -> its Keras layer's name (state ports)
        self.input_name = self.unique(model.input.name or "input_layer", f"input '{model.input.name}'")

    # -- names --------------------------------------------------------------------------------
    def unique(self, name: str, what: str) -> str:
        """A Keras-safe, unique layer name (no '/', no '.': Keras 3 on torch refuses a parameter path with
        a dot; starts with a letter), with a note if changed."""
        base = re.sub(r"[^A-Za-z0-9_\-]", "_", str(name)).strip("_") or "layer"
        if not base[0].isalpha():
            base = "layer_" + base
        out, k = base, 1
        while out in self.used:
            out, k = f"{base}_{k}", k + 1
        self.used.add(out)
        if out != name:
            self.notes.append(f"{what} is named '{out}' in the Keras file (Keras layer names are unique "
                              "and use letters, digits, '_', '-')")
        return out

    # -- the stack ----------------------------------------------------------------------------
    def plan(self) -> tuple[list[KLayer], list[str]]:
        """(specs, problems); shapes follow the canonical layers so a refused layer hides no other."""
        specs, problems = [], []
        shape = [None, self.model.input.time_steps]
        if not str(self.model.input.dtype).startswith("int"):
            shape.append(self.model.input.features)
        self.masked = False                 # does a mask (Embedding mask_zero, Masking) reach the layer?
        for layer in self.model.layers:
            try:
                specs += self.layer(layer, shape)
            except Refusal as exc:
                problems.append(f"layer '{layer.name}': {exc}")
            shape = _next_shape(layer, shape)
            self.masked = mask_after(layer, self.masked)
        return specs, problems

    def layer(self, layer: M.Layer, shape: list) -> list[KLayer]:
        if isinstance(layer, M.Recurrent):
            return self.recurrent(layer, shape)
        if isinstance(layer, M.Dense):
            return self.dense(layer, shape)
        if isinstance(layer, M.ActivationLayer):
            return [self.activation_layer(layer.name, layer.activation, shape)]
        out = plan_layer(self, layer, shape)
        if out is not None:
            return out
        raise Refusal(f"{layer.kind} layers are not written to Keras")

    # -- Dense and activations ------------------------------------------------------------------
    def dense(self, layer: M.Dense, shape: list) -> list[KLayer]:
        kernel = np.asarray(layer.kernel, dtype=np.float64)
        bias = None if layer.bias is None else np.asarray(layer.bias, dtype=np.float64)
        act, extra = keras_activation(layer.activation, self.major), None
        if act is None and (f := fold(layer.activation, self.major, self.fold_ok)):
            s, t = f
            kernel = kernel * s
            if bias is not None or t:
                bias = (bias if bias is not None else np.zeros(kernel.shape[1])) * s + t
            act = "hard_sigmoid"
            self.notes.append(f"layer '{layer.name}': {layer.activation} written as Keras {self.major}'s "
                              f"hard_sigmoid with kernel and bias scaled by {s:.6g}" + (f", bias shifted by {t:.6g}"
                                                                                        if t else "")
                              + " (same function)")
        elif act is None and _activation_layer(layer.activation, self.major):
            act, extra = "linear", layer.activation
        elif act is None:
            raise Refusal(describe_missing(layer.activation, self.major, "activation"))
        name = self.unique(layer.name, f"layer '{layer.name}'")
        weights = [kernel] + ([bias] if bias is not None else [])
        out = [KLayer("Dense", name, {"units": int(kernel.shape[1]), "activation": act,
                                      "use_bias": bias is not None}, list(shape), weights)]
        if extra is not None:
            out.append(self.activation_layer(f"{name}_activation", extra, shape[:-1] + [int(kernel.shape[1])]))
            self.notes.append(f"layer '{layer.name}': activation {extra} is written as a separate "
                              f"{out[-1].cls} layer '{out[-1].name}' (Keras names no such activation function)")
        return out

    def activation_layer(self, name: str, act: M.Activation, shape: list) -> KLayer:
        keras = keras_activation(act, self.major)
        if keras is not None:
            return KLayer("Activation", self.unique(name, f"layer '{name}'"), {"activation": keras}, list(shape))
        cls = _activation_layer(act, self.major)
        if cls is None:
            raise Refusal(describe_missing(act, self.major, "activation"))
        key = "negative_slope" if cls == "LeakyReLU" and self.major >= 3 else "alpha"
        return KLayer(cls, self.unique(name, f"layer '{name}'"), {key: float(act.alpha)}, list(shape))

    # -- recurrent ------------------------------------------------------------------------------
    def recurrent(self, layer: M.Recurrent, shape: list) -> list[KLayer]:
        problems = list(self.recurrent_refusals(layer))
        acts, folds = self.cell_activations(layer, problems)
        return_sequences, go_backwards, selector = self.directions(layer, problems)
        masked_output = getattr(layer, "masked_output", "previous")
        if self.masked and selector:
            problems.append("a mask reaches this layer and the identity SimpleRNN that would select its output "
                            "steps would skip the masked steps too")
        if self.masked and layer.direction == "bidirectional" and return_sequences and masked_output != "zero":
            problems.append("a mask reaches this layer and Keras's Bidirectional outputs zeros at masked steps "
                            "(it forces zero_output_for_mask on); this layer repeats the previous output there")
        if problems:
            raise Refusal("; ".join(problems))
        cls = RNN_CLASSES[layer.cell]
        weights, use_bias = [], False
        for w in layer.weights:
            arrays, has_bias = self.cell_weights(layer, w, folds)
            weights.append(arrays)
            use_bias = use_bias or has_bias
        if use_bias is False:
            weights = [a[:2] for a in weights]
        else:
            self.bias_note(layer)
        settings = {"units": int(layer.hidden), "activation": acts[1] if layer.cell == "lstm" else acts[-1],
                    "use_bias": use_bias, "return_sequences": return_sequences, "go_backwards": go_backwards,
                    "zero_output_for_mask": masked_output == "zero"}
        if layer.cell != "rnn":
            settings["recurrent_activation"] = acts[0]
        if layer.cell == "gru":
            settings["reset_after"] = bool(layer.reset_after)
        name = self.spec_of[layer.name] = self.unique(layer.name, f"layer '{layer.name}'")
        flat = [a for arrays in weights for a in arrays]
        if layer.direction == "bidirectional":
            out = [KLayer("Bidirectional", name, {"merge_mode": layer.merge, "layer": settings}, list(shape),
                          flat, wrapped=cls)]
        else:
            out = [KLayer(cls, name, settings, list(shape), flat)]
        if selector:
            out.append(self.selector(layer, name, selector, shape))
        return out

    def recurrent_refusals(self, layer: M.Recurrent):
        for d, w in zip(layer.direction_names(), layer.weights):
            for s in ("h0", "c0"):
                v = getattr(w, s)
                if v is not None and np.any(np.asarray(v) != 0):
                    yield (f"{d} direction has a non-zero initial state {s} {tuple(np.shape(v))}: a Keras layer in a "
                           "saved model always starts from zeros (pass states as model inputs in Keras instead)")
            if w.proj is not None:
                yield (f"{d} direction has an LSTM output projection ({w.proj.shape[0]} of {layer.hidden} units, "
                       "PyTorch proj_size): Keras's LSTM has none")
        if layer.clip is not None:
            yield f"cell clip {layer.clip:g}: Keras's recurrent layers do not clip"

    def cell_activations(self, layer: M.Recurrent, problems: list) -> tuple[list, list]:
        """Keras names per role and (scale, shift) per role's blocks where a slope is folded."""
        names, folds = [], []
        for k, act in enumerate(layer.activations):
            role, blocks = _ROLE_NAMES[layer.cell][k], _ROLE_BLOCKS[layer.cell][k]
            keras = keras_activation(act, self.major)
            f = None if keras or blocks is None else fold(act, self.major, self.fold_ok)
            if keras is None and f is None:
                problem = describe_missing(act, self.major, role)
                if blocks is not None and act.name == "hard_sigmoid" and not self.fold_ok:
                    problem += "; write with fold_hard_sigmoid=True to fold its slope into the weights"
                problems.append(problem)
            names.append(keras or ("hard_sigmoid" if f else None))
            folds.append((blocks, f))
            if f:
                self.notes.append(f"layer '{layer.name}': {role} {act} written as Keras {self.major}'s "
                                  f"hard_sigmoid, its pre-activation scaled by {f[0]:.6g}"
                                  + (f" and shifted by {f[1]:.6g}" if f[1] else "")
                                  + " in the kernels and biases (same function)")
        if layer.cell == "lstm" and None not in names[1:] and names[1] != names[2]:
            problems.append(f"the cell candidate uses {layer.activations[1]} and the hidden output "
                            f"{layer.activations[2]}: Keras's LSTM applies one activation to both")
        return names, folds

    def directions(self, layer: M.Recurrent, problems: list):
        """(return_sequences, go_backwards, selector kind or None)."""
        d, out = layer.direction, layer.output
        if d == "forward":
            return out == "sequence", False, None
        if out == "final_state":
            return False, d == "reverse", None
        if d == "reverse" and out == "sequence" and layer.time_order == "processing":
            return True, True, None
        kind = {("reverse", "sequence"): "reverse", ("reverse", "last_step"): "first",
                ("bidirectional", "sequence"): None, ("bidirectional", "last_step"): "last"}[(d, out)]
        if kind and not self.selectors_ok:
            problems.append("Keras cannot express the backward direction's output at the last step (PyTorch "
                            "y[:, -1] / MATLAB OutputMode 'last'); write with selectors=True to take it with an "
                            "identity SimpleRNN after the layer" if out == "last_step" else
                            "Keras's go_backwards returns the sequence in processing (reversed) order and this "
                            "layer's is aligned with the input steps; write with selectors=True to reverse it "
                            "with an identity SimpleRNN after the layer")
        return True, d == "reverse", kind

    def selector(self, layer: M.Recurrent, name: str, kind: str, shape: list) -> KLayer:
        n = layer.units_out
        what = {"reverse": ("input_order", "reverses the sequence into input order", True, True),
                "first": ("last_step", "takes the output at the last input step (the first one processed)",
                          True, False),
                "last": ("last_step", "takes the output at the last input step", False, False)}[kind]
        sel = self.unique(f"{name}_{what[0]}", f"selector of layer '{layer.name}'")
        backwards = ", go_backwards" if what[2] else ""
        self.notes.append(f"layer '{layer.name}': written returning its sequence; an extra SimpleRNN '{sel}' with "
                          f"identity weights (linear, kernel I, recurrent kernel 0, no bias{backwards}) "
                          f"{what[1]}: Keras has no layer that selects time steps")
        settings = {"units": n, "activation": "linear", "use_bias": False, "return_sequences": what[3],
                    "go_backwards": what[2]}
        return KLayer("SimpleRNN", sel, settings, [None, shape[1], n], [np.eye(n), np.zeros((n, n))])

    def cell_weights(self, layer: M.Recurrent, w: M.DirectionWeights, folds) -> tuple[list, bool]:
        """[kernel, recurrent_kernel, bias] in Keras's layout (bias summed or stacked); has a bias?
        The kernels are functions making them, called by the writer as it writes each (`writer._f32`),
        so that a large model's weights are not held twice."""
        H, cell = layer.hidden, layer.cell

        def folded(a, shift=False):          # float64, a folded gate slope applied to its rows
            a = np.array(a, dtype=np.float64)
            for blocks, f in folds:
                if f:
                    rows = np.concatenate([np.arange(b * H, (b + 1) * H) for b in blocks])
                    a[rows] *= f[0]
                    if shift:
                        a[rows] += f[1]
            return a
        Wb, Rb = folded(w.Wb, shift=True), folded(w.Rb)
        has_bias = layer.has_input_bias or layer.has_recurrent_bias or bool(np.any(Wb) or np.any(Rb))
        bias = np.stack([Wb, Rb]) if cell == "gru" and layer.reset_after else Wb + Rb
        return [lambda: gates.from_canonical(folded(w.W), cell, "keras").T,
                lambda: gates.from_canonical(folded(w.R), cell, "keras").T,
                gates.from_canonical(bias, cell, "keras", axis=-1)], has_bias

    def bias_note(self, layer: M.Recurrent):
        if not any(np.any(np.asarray(w.Rb) != 0) for w in layer.weights):
            return
        if layer.cell == "gru" and layer.reset_after:
            return
        why = (" (reset_after=False: the candidate's recurrent bias is added outside the reset gate, as in "
               "ONNX linear_before_reset=0)" if layer.cell == "gru" else "")
        self.notes.append(f"layer '{layer.name}': input and recurrent biases summed into Keras's single bias "
                          f"(same function){why}")


def mask_after(layer: M.Layer, masked: bool) -> bool:
    """Does the mask reach the layer after `layer` (Keras's propagation, as the canonical model says)?"""
    if isinstance(layer, M.Embedding):
        return bool(layer.mask_zero)
    if isinstance(layer, M.Masking):
        return True
    if isinstance(layer, (M.Dropout, M.Dense, M.ActivationLayer, M.BatchNorm)):
        return masked
    if isinstance(layer, M.Recurrent):
        return masked and layer.output == "sequence"
    return False


def _next_shape(layer: M.Layer, shape: list) -> list:
    front = next_shape(layer, shape)
    if front is not None:
        return front
    if isinstance(layer, M.Recurrent):
        return [None, shape[1], layer.units_out] if layer.output == "sequence" else [None, layer.units_out]
    if isinstance(layer, M.Dense):
        return shape[:-1] + [layer.units_out]
    return list(shape)
