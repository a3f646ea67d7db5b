"""Keras layer configs and weights -> canonical layers.

Keras keeps kernels as [input, gates*units] with gates along COLUMNS (LSTM ifco, GRU zrh), so
each is transposed and permuted into canonical row blocks.  LSTM and SimpleRNN have one bias;
GRU has one (reset_after=False, [3H]) or two rows (reset_after=True, [2, 3H]: input, recurrent).
"""
from __future__ import annotations

import numpy as np

from ...model import gates
from ... import model as M
from ...errors import InputError, UnsupportedError
from . import layers_front as front
from .activations import activation, layer_activation
from .graph import MODEL_CLASSES, Entry

RNN_CELLS = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn", "CuDNNLSTM": "lstm", "CuDNNGRU": "gru"}
CELL_CLASSES = {"LSTMCell": "lstm", "GRUCell": "gru", "SimpleRNNCell": "rnn"}
DROPOUTS = tuple(front.DROPOUT_VARIANTS)
ACTIVATION_LAYERS = ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax")
SUPPORTED = ("InputLayer", *RNN_CELLS, "RNN", "Bidirectional", "Dense", "TimeDistributed(Dense)",
             *DROPOUTS, *ACTIVATION_LAYERS, *front.FRONTEND)


class Converter:
    """Walks the chain once, tracking the feature size and whether the tensor is a sequence."""

    def __init__(self, path, keras_major: int, lookup, *, model_class: str, features: int | None,
                 allow_stateful: bool = True, backend: str | None = None, time_steps: int | None = None,
                 release=None):
        """`release(entry)`: the container may drop that layer's arrays, now held by the converter alone
        (each dropped as soon as its canonical copy exists, so the weights are not held twice)."""
        self.path, self.major, self.lookup = path, keras_major, lookup
        self.release = release or (lambda entry: None)
        self.model_class, self.allow_stateful = model_class, allow_stateful
        self.features, self.input_features, self.seq = features, features, True
        self.backend, self.time_steps, self.layers_seen = backend, time_steps, 0
        self.pending_pad: tuple[int, int, str] | None = None      # a ZeroPadding1D waiting for its Conv1D
        self.notes: list[str] = []
        self.stateful: list[str] = []           # layers read as the first call from zero states
        self.keras1_names: dict[str, list[str]] = {}    # Keras 1: each layer's arrays as the file names them

    # -- helpers ------------------------------------------------------------------------------
    def unsupported(self, e: Entry, msg: str):
        return UnsupportedError(msg, path=self.path, layer=e.name)

    def act(self, e: Entry, spec, what="activation"):
        return activation(spec, self.major, path=self.path, layer=e.name, what=what)

    def weights(self, e: Entry, counts: tuple[int, ...]) -> list[np.ndarray]:
        found, where = self.lookup(e)
        found = found or []
        if len(found) not in counts:
            expected = " or ".join(str(c) for c in counts)
            names = ", ".join(n for n, _ in found) or "none"
            raise InputError(f"expected {expected} weight arrays at {where}, found {len(found)} ({names})",
                             path=self.path, layer=e.name)
        self.release(e)
        if self.major < 2:
            self.keras1_names[e.name] = [str(n) for n, _ in found]
        return [a for _, a in found]

    def check(self, e: Entry, what: str, a: np.ndarray, shape: tuple, why: str):
        if tuple(a.shape) != tuple(shape):
            raise InputError(f"{what} shape {tuple(a.shape)} does not match the config ({why}): expected "
                             f"{tuple(shape)}", path=self.path, layer=e.name)

    def units(self, e: Entry, cfg: dict) -> int:
        units = cfg.get("units", cfg.get("output_dim"))          # output_dim: Keras 1
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise InputError(f"the config gives units={units!r}, expected a positive integer",
                             path=self.path, layer=e.name)
        return units

    def take_features(self, n_in: int):
        if self.features is None:
            self.features = n_in
            if self.input_features is None:
                self.input_features = n_in

    # -- dispatch -----------------------------------------------------------------------------
    def convert(self, e: Entry) -> M.Layer | None:
        if self.pending_pad is not None and e.cls not in front.CONV_CLASSES:
            raise front.unconsumed_padding(self)
        layer = self._convert(e)
        self.layers_seen += 1
        return layer

    def finish_chain(self):
        """A problem left at the end of the chain (a ZeroPadding1D with no convolution), or None."""
        return front.unconsumed_padding(self)

    def _convert(self, e: Entry) -> M.Layer | None:
        cls, cfg = e.cls, e.config
        if cls in MODEL_CLASSES:
            raise self.unsupported(e, f"nested model (class {cls}); rnnconvert reads one flat chain of layers: "
                                      "rebuild the model without nesting")
        if cls in RNN_CELLS or cls == "RNN":
            return self.recurrent(e)
        if cls == "Bidirectional":
            return self.bidirectional(e)
        if cls == "Dense":
            return self.dense(e, cfg)
        if cls == "TimeDistributed":
            inner = cfg.get("layer") or {}
            if inner.get("class_name") == "Dense":
                return self.dense(e, inner.get("config") or {})
            if inner.get("class_name") in DROPOUTS:
                return front.dropout(self, e, inner["class_name"], inner.get("config") or {})
            raise self.unsupported(e, f"unsupported layer TimeDistributed({inner.get('class_name')}); "
                                      f"supported: {', '.join(SUPPORTED)}")
        if cls in DROPOUTS:
            return front.dropout(self, e, cls, cfg)
        if cls == "Embedding":
            return front.embedding(self, e)
        if cls == "Masking":
            return front.masking(self, e)
        if cls == "ZeroPadding1D":
            return front.zero_padding(self, e)
        if cls in front.CONV_CLASSES:
            return front.conv1d(self, e)
        if cls in front.POOL_CLASSES:
            return front.pooling(self, e, cls)
        if cls == "BatchNormalization":
            return front.batch_norm(self, e)
        if cls == "Cropping1D":
            return front.cropping(self, e)
        if cls == "Activation":
            return M.ActivationLayer(e.name, self.act(e, cfg.get("activation")))
        if cls in ACTIVATION_LAYERS:
            c = dict(cfg)
            if cls == "Softmax" and c.get("axis") in (1 if not self.seq else 2, [1 if not self.seq else 2]):
                c["axis"] = -1
            a = layer_activation(cls, c)
            if a is None:
                raise self.unsupported(e, f"{cls} with these settings has no canonical form "
                                          f"({', '.join(f'{k}={c.get(k)}' for k in sorted(c) if k != 'name')})")
            return M.ActivationLayer(e.name, a)
        if cls == "Flatten" and not self.seq:
            self.notes.append(f"Flatten layer '{e.name}' dropped: it is an identity after the last time step")
            return None
        if cls == "Flatten":
            return front.flatten(self, e)
        raise self.unsupported(e, f"unsupported layer class {cls}; supported: {', '.join(SUPPORTED)}")

    # -- Dense ----------------------------------------------------------------------------------
    def dense(self, e: Entry, cfg: dict) -> M.Dense:
        for key in ("lora_rank", "quantization_config"):
            if cfg.get(key):
                raise self.unsupported(e, f"Dense with {key}={cfg[key]} (LoRA / quantized weights)")
        dtype = cfg.get("dtype")
        if isinstance(dtype, dict) and "Quantized" in str(dtype.get("class_name")):
            raise self.unsupported(e, f"quantized weights (dtype policy {(dtype.get('config') or {}).get('name')})")
        units = self.units(e, cfg)
        use_bias = bool(cfg.get("use_bias", cfg.get("bias", True)))
        arrays = self.weights(e, (2,) if use_bias else (1,))
        kernel = arrays[0]
        if kernel.ndim != 2:
            raise InputError(f"kernel shape {tuple(kernel.shape)}, expected a matrix", path=self.path, layer=e.name)
        self.take_features(kernel.shape[0])
        self.check(e, "kernel", kernel, (self.features, units), f"units={units}, {self.features} input features")
        bias = arrays[1] if use_bias else None
        if bias is not None:
            self.check(e, "bias", bias, (units,), f"units={units}")
        self.features = int(units)
        return M.Dense(e.name, kernel, bias, self.act(e, cfg.get("activation")))

    # -- recurrent ------------------------------------------------------------------------------
    def settings(self, e: Entry, cls: str, cfg: dict) -> dict:
        """Cell, units, activations and flags of LSTM/GRU/SimpleRNN/CuDNN*/RNN(cell)."""
        cell_cfg = cfg
        if cls == "RNN":
            cell = cfg.get("cell")
            if not isinstance(cell, dict) or cell.get("class_name") not in CELL_CLASSES:
                name = cell.get("class_name") if isinstance(cell, dict) else type(cell).__name__
                raise self.unsupported(e, f"RNN wrapper around cell '{name}'; supported cells: "
                                          f"{', '.join(CELL_CLASSES)}")
            kind, cell_cfg = CELL_CLASSES[cell["class_name"]], cell.get("config") or {}
        else:
            kind = RNN_CELLS[cls]
        if cfg.get("stateful"):
            if not self.allow_stateful:
                raise self.unsupported(e, f"stateful={cfg.get('stateful')}: Keras carries the state from one "
                                          "batch to the next, which the converted model would not do; to convert "
                                          "it as a layer that starts every sequence from zero states, read with "
                                          "allow_stateful=True")
            self.stateful.append(e.name)
        if cfg.get("time_major"):
            raise self.unsupported(e, "time_major=True (the layer reads [time, batch, features]); re-save the "
                                      "model with time_major=False")
        cudnn = cls.startswith("CuDNN")
        s = {"cell": kind, "units": self.units(e, cell_cfg), "cudnn": cudnn,
             "use_bias": True if cudnn else bool(cell_cfg.get("use_bias", True)),
             "reset_after": True if cudnn else cell_cfg.get("reset_after"),
             "return_sequences": bool(cfg.get("return_sequences", False)),
             "go_backwards": bool(cfg.get("go_backwards", False)),
             "return_state": bool(cfg.get("return_state", False)),
             "zero_output_for_mask": bool(cfg.get("zero_output_for_mask", False))}
        if cudnn:
            gate, act = M.SIGMOID, M.TANH
        else:
            default_rec = "hard_sigmoid" if self.major < 2 else "sigmoid"
            act = self.act(e, cell_cfg.get("activation", "tanh"))
            gate = self.act(e, cell_cfg.get("recurrent_activation", cell_cfg.get("inner_activation", default_rec)),
                            "recurrent_activation")
        s["activations"] = {"lstm": [gate, act, act], "gru": [gate, act], "rnn": [act]}[kind]
        return s

    def direction_weights(self, e: Entry, s: dict, arrays: list[np.ndarray]) -> tuple[M.DirectionWeights, bool]:
        """One direction's arrays -> canonical weights; returns (weights, has_recurrent_bias).  The kernels
        leave `arrays` once copied, so a caller holding nothing else frees each source array right away."""
        cell, H, G = s["cell"], int(s["units"]), gates.GATE_COUNT[s["cell"]]
        arrays = _keras1_per_gate(cell, arrays)
        kernel, rec = arrays[0], arrays[1]
        arrays[0] = arrays[1] = None
        if kernel.ndim != 2:
            raise InputError(f"kernel shape {tuple(kernel.shape)}, expected a matrix", path=self.path, layer=e.name)
        self.take_features(kernel.shape[0])
        why = f"units={H}, {self.features} input features"
        self.check(e, "kernel", kernel, (self.features, G * H), why)
        self.check(e, "recurrent_kernel", rec, (H, G * H), f"units={H}")
        if s["cudnn"]:
            kernel = np.hstack([k.T.reshape(k.shape, order="F") for k in np.hsplit(kernel, G)])
            rec = np.hstack([k.T for k in np.hsplit(rec, G)])
        W = _canonical(kernel, cell)
        del kernel
        R = _canonical(rec, cell)
        del rec
        zeros = np.zeros(G * H, dtype=W.dtype)
        if len(arrays) < 3:
            return M.DirectionWeights(W, R, zeros, zeros.copy()), False
        bias = arrays[2]
        if s["cudnn"]:
            self.check(e, "bias", bias, (2 * G * H,), f"CuDNN layer, units={H}")
            two = bias.reshape(2, G * H)
        elif cell == "gru" and (s["reset_after"] or (s["reset_after"] is None and bias.ndim == 2)):
            s["reset_after"] = True
            self.check(e, "bias", bias, (2, G * H), f"reset_after=True, units={H}")
            two = bias
        else:
            if cell == "gru":
                s["reset_after"] = False
            self.check(e, "bias", bias, (G * H,), f"units={H}")
            return M.DirectionWeights(W, R, gates.to_canonical(bias, cell, "keras"), zeros), False
        return M.DirectionWeights(W, R, gates.to_canonical(two[0], cell, "keras"),
                                  gates.to_canonical(two[1], cell, "keras")), True

    def recurrent(self, e: Entry) -> M.Recurrent:
        s = self.settings(e, e.cls, e.config)
        self.check_state_outputs(e, s, bidirectional=False)
        n = (12 if s["cell"] == "lstm" else 9 if s["cell"] == "gru" else 3, 3) if self.major < 2 else ()
        arrays = self.weights(e, n or ((3,) if s["use_bias"] else (2,)))
        w, rbias = self.direction_weights(e, s, arrays)
        return self.finish(e, s, [w], rbias, "reverse" if s["go_backwards"] else "forward")

    def bidirectional(self, e: Entry) -> M.Recurrent:
        cfg = e.config
        inner = cfg.get("layer") or {}
        icls, icfg = inner.get("class_name"), inner.get("config") or {}
        if icls not in RNN_CELLS and icls != "RNN":
            raise self.unsupported(e, f"Bidirectional({icls}); supported: Bidirectional of "
                                      f"{', '.join(RNN_CELLS)}, RNN")
        merge = cfg.get("merge_mode", "concat")
        if merge not in M.MERGE_MODES:
            raise self.unsupported(e, f"merge_mode={merge!r}: " + (
                "the two directions are returned as separate outputs" if merge is None else
                f"supported merge modes: {', '.join(M.MERGE_MODES)}"))
        s = self.settings(e, icls, icfg)
        if s["go_backwards"]:
            raise self.unsupported(e, "Bidirectional around a layer with go_backwards=True")
        back = cfg.get("backward_layer")
        if isinstance(back, dict):
            b = self.settings(e, back.get("class_name"), back.get("config") or {}) \
                if back.get("class_name") == icls else None
            same = b is not None and all(b[k] == s[k] for k in ("units", "use_bias", "reset_after", "activations",
                                                                "return_sequences")) and b["go_backwards"]
            if not same:
                raise self.unsupported(e, "Bidirectional with a backward_layer that differs from the forward "
                                          "layer; the canonical model shares one configuration")
        self.check_state_outputs(e, s, bidirectional=True)
        per = 3 if s["use_bias"] else 2
        n = tuple(2 * k for k in ((12 if s["cell"] == "lstm" else 9 if s["cell"] == "gru" else 3, 3)
                                  if self.major < 2 else (per,)))
        arrays = self.weights(e, n)
        half = len(arrays) // 2
        fw_arrays, bw_arrays = arrays[:half], arrays[half:]
        del arrays
        fw, rb1 = self.direction_weights(e, s, fw_arrays)
        bw, rb2 = self.direction_weights(e, s, bw_arrays)
        s["merge"] = merge
        s["zero_output_for_mask"] = s["return_sequences"]     # Bidirectional forces it so, Keras 2 and 3
        return self.finish(e, s, [fw, bw], rb1 or rb2, "bidirectional")

    def check_state_outputs(self, e: Entry, s: dict, bidirectional: bool):
        if not s["return_state"]:
            return
        if self.model_class == "Sequential":
            raise self.unsupported(e, "return_state=True in a Sequential model: the model returns the states "
                                      "as extra outputs")
        if e.output_index == 0:
            return
        if e.output_index == 1 and not bidirectional and not s["return_sequences"]:
            return                        # the hidden state h: the same tensor as the output
        raise self.unsupported(e, f"the next layer takes state output #{e.output_index} of a return_state layer, "
                                  "not its output")

    def finish(self, e: Entry, s: dict, ws, rbias: bool, direction: str) -> M.Recurrent:
        if not self.seq:
            raise InputError("a recurrent layer needs a sequence, but the layer before returns one step",
                             path=self.path, layer=e.name)
        layer = M.Recurrent(
            name=e.name, cell=s["cell"], hidden=int(s["units"]), direction=direction, weights=ws,
            activations=s["activations"], output="sequence" if s["return_sequences"] else "final_state",
            merge=s.get("merge", "concat"),
            time_order="processing" if direction == "reverse" and s["return_sequences"] else "input",
            reset_after=bool(s["reset_after"]) if s["cell"] == "gru" else True,
            has_input_bias=s["use_bias"], has_recurrent_bias=rbias,
            masked_output="zero" if s["zero_output_for_mask"] else "previous")
        self.features, self.seq = layer.units_out, s["return_sequences"]
        return layer


def _canonical(kernel: np.ndarray, cell: str) -> np.ndarray:
    """A Keras kernel [in, gates*units] as the canonical [gates*units, in]: transposed and put in
    canonical gate order by one copy."""
    return gates.permute_into(np.empty(kernel.shape[::-1], kernel.dtype), kernel.T, cell, gates.ORDERS["keras"][cell],
                              gates.CANONICAL[cell])


def _keras1_per_gate(cell: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Keras 1 stored one W, U, b per gate: LSTM in order i, c, f, o; GRU z, r, h."""
    if cell == "lstm" and len(arrays) == 12:
        order = (0, 2, 1, 3)                              # i, c, f, o -> i, f, c, o
        return [np.concatenate([arrays[3 * g + k] for g in order], axis=-1) for k in range(3)]
    if cell == "gru" and len(arrays) == 9:
        return [np.concatenate([arrays[3 * g + k] for g in range(3)], axis=-1) for k in range(3)]
    return arrays

