"""Reading rnnconvert's TF.js layer classes (`layers_js`) back, from model.json and the shards only: each
is read as the Keras layer it extends (`plain_classes`), plus what that layer lacks (`ClassConverter`):

    RnnconvertLSTM, -GRU, -SimpleRNN  initial_state (+ initial_state_batch): weights `initial_h`,
                                      `initial_c` per direction, [units] or [batch, units] -> h0, c0
    RnnconvertLSTM                    projection_units P: `recurrent_kernel` [P, 4*units],
                                      `projection_kernel` [units, P] -> R [4*units, P], proj [P, units];
                                      peepholes: `peephole_weights` [3, units] (rows i, f, o) -> P
    RnnconvertLSTM, -GRU, -SimpleRNN  cell_clip -> clip; cell_activations [{name, alpha, beta}] per role
                                      -> activations
    RnnconvertTimeWindow              start, stop, single -> a TimeWindow (no weights)
A name of the same family that `layers_js` does not define is left to the Keras reader, which refuses it
naming the class.
"""
from __future__ import annotations

import copy
import math

import numpy as np

from ... import model as M
from ...errors import InputError
from ..keras_json.layers import Converter, _canonical
from . import layers_js

# Settings and weights of rnnconvert's classes that the Keras layers they extend do not have.
EXTRA_SETTINGS = ("projection_units", "peepholes", "cell_clip", "cell_activations", "initial_state",
                  "initial_state_batch")
ROLES = {"lstm": 3, "gru": 2, "rnn": 1}
EXTRA_WEIGHTS = ("initial_h", "initial_c", "projection_kernel", "peephole_weights")


def plain_classes(config: dict, path: str) -> tuple[dict, dict[str, dict]]:
    """(the model config with rnnconvert's classes named as the Keras classes they extend, {layer name: the
    settings Keras's layer lacks})."""
    config = copy.deepcopy(config)
    body = config.get("config")
    entries = body.get("layers") if isinstance(body, dict) else body
    extras: dict[str, dict] = {}
    for entry in entries if isinstance(entries, list) else []:
        cfg = entry.get("config") if isinstance(entry, dict) else None
        if not isinstance(cfg, dict):
            continue
        target = cfg.get("layer") if entry.get("class_name") == "Bidirectional" else entry
        if not isinstance(target, dict) or target.get("class_name") not in layers_js.CLASSES:
            continue
        target["class_name"] = layers_js.CLASSES[target["class_name"]]
        inner = target.get("config") if isinstance(target.get("config"), dict) else {}
        extras[str(cfg.get("name"))] = {k: inner.pop(k) for k in EXTRA_SETTINGS if k in inner}
    return config, extras


def _var(name: str) -> str:
    return name.split("/")[-1].split(":")[0]


def _side(name: str) -> int:
    parts = name.split("/")
    return 1 if len(parts) > 2 and parts[1].startswith("backward_") else 0


class ClassConverter(Converter):
    """The Keras config reader, taking the extra settings and weights of rnnconvert's classes."""

    def __init__(self, *args, extras: dict[str, dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.extras = extras
        self.extra_arrays: dict[str, dict] = {}

    def _convert(self, e):
        if e.cls == layers_js.WINDOW:
            return self.time_window(e)
        return super()._convert(e)

    def time_window(self, e) -> M.TimeWindow:
        """RnnconvertTimeWindow {start, stop, single}: x[:, start:stop] or x[:, start], as Python indexes."""
        cfg = e.config
        start, stop, single = cfg.get("start"), cfg.get("stop"), cfg.get("single", False)
        for key, v in (("start", start), ("stop", stop)):
            if (v is not None or key == "start") and (isinstance(v, bool) or not isinstance(v, int)
                                                       or abs(v) > M.MAX_DIM):
                raise InputError(f"{key} {str(v)[:40]}, expected an integer step index", path=self.path,
                                 layer=e.name)
        if not isinstance(single, bool) or (single and stop is not None):
            raise InputError(f"single {str(single)[:40]} with stop {stop}, expected true (no stop) or false",
                             path=self.path, layer=e.name)
        if not self.seq:
            raise InputError("a time window needs a sequence, but the layer before returns one step",
                             path=self.path, layer=e.name)
        layer = M.TimeWindow(e.name, start, stop, single)
        if self.time_steps:
            kept = layer.steps(self.time_steps)
            if not kept:
                raise InputError(f"the time window keeps none of the {self.time_steps} time steps the model fixes",
                                 path=self.path, layer=e.name)
            self.time_steps = len(kept)
        self.seq = not single
        return layer

    def weights(self, e, counts):
        extras = self.extras.get(e.name)
        if extras is None:
            return super().weights(e, counts)
        lookup = self.lookup

        def split(entry):
            found, where = lookup(entry)
            found = found or []
            self.extra_arrays[e.name] = {(_side(n), _var(n)): np.asarray(a, dtype=np.float64)
                                         for n, a in found if _var(n) in EXTRA_WEIGHTS}
            return [(n, a) for n, a in found if _var(n) not in EXTRA_WEIGHTS], where
        self.lookup = split
        try:
            return super().weights(e, counts)
        finally:
            self.lookup = lookup

    def direction_weights(self, e, s, arrays):
        proj = self.extras.get(e.name, {}).get("projection_units")
        if not proj:
            return super().direction_weights(e, s, arrays)
        H = int(s["units"])
        if not isinstance(proj, int) or isinstance(proj, bool) or not 0 < proj:
            raise InputError(f"projection_units {proj!r}, expected a positive integer", path=self.path, layer=e.name)
        rec = np.asarray(arrays[1])
        self.check(e, "recurrent_kernel", rec, (proj, 4 * H), f"units={H}, projection_units={proj}")
        arrays[1] = np.zeros((H, 4 * H), dtype=rec.dtype)      # what the Keras check expects; replaced below
        w, rbias = super().direction_weights(e, s, arrays)
        w.R = _canonical(rec, "lstm")
        return w, rbias

    def finish(self, e, s, ws, rbias, direction):
        settings = self.extras.get(e.name)
        if settings is None:
            return super().finish(e, s, ws, rbias, direction)
        arrays = self.extra_arrays.pop(e.name, {})
        proj = settings.get("projection_units")
        if proj:
            if s["cell"] != "lstm":
                raise InputError("projection_units on a layer that is no LSTM", path=self.path, layer=e.name)
            for k, w in enumerate(ws):
                p = self._take(e, arrays, k, "projection_kernel", (int(s["units"]), proj))
                w.proj = np.ascontiguousarray(p.T)
        if settings.get("initial_state"):
            batch = settings.get("initial_state_batch")
            if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
                raise InputError(f"initial_state_batch {batch!r}, expected a positive integer or null",
                                 path=self.path, layer=e.name)
            lead = () if batch is None else (batch,)
            for k, w in enumerate(ws):
                w.h0 = self._take(e, arrays, k, "initial_h", lead + (int(proj or s["units"]),))
                if s["cell"] == "lstm":
                    w.c0 = self._take(e, arrays, k, "initial_c", lead + (int(s["units"]),))
        if settings.get("peepholes"):
            if s["cell"] != "lstm":
                raise InputError("peepholes on a layer that is no LSTM", path=self.path, layer=e.name)
            for k, w in enumerate(ws):
                w.P = self._take(e, arrays, k, "peephole_weights", (3, int(s["units"])))
        if arrays:
            raise InputError(f"weights {', '.join(v for _, v in arrays)} that its config does not use",
                             path=self.path, layer=e.name)
        clip = settings.get("cell_clip")
        if clip is not None and (not isinstance(clip, (int, float)) or isinstance(clip, bool)
                                 or not math.isfinite(clip) or clip <= 0):
            raise InputError(f"cell_clip {clip!r}, expected a positive number", path=self.path, layer=e.name)
        acts = settings.get("cell_activations")
        if acts is not None:
            s["activations"] = self.exact_activations(e, acts, s["cell"])
        layer = super().finish(e, s, ws, rbias, direction)
        layer.clip = None if clip is None else float(clip)
        return layer

    def exact_activations(self, e, acts, cell: str) -> list:
        """`cell_activations`: one {name, alpha?, beta?} per role of the cell -> canonical activations."""
        if not isinstance(acts, list) or len(acts) != ROLES[cell] or not all(isinstance(a, dict) for a in acts):
            raise InputError(f"cell_activations {str(acts)[:80]}: expected {ROLES[cell]} objects (one per role of "
                             f"the {cell} cell)", path=self.path, layer=e.name)
        out = []
        for a in acts:
            params = {k: a.get(k) for k in ("alpha", "beta")}
            if not isinstance(a.get("name"), str) or any(
                    v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v))
                    for v in params.values()):
                raise InputError(f"cell activation {str(a)[:80]}: expected a name and finite alpha, beta",
                                 path=self.path, layer=e.name)
            try:
                act = M.Activation(a["name"], **{k: None if v is None else float(v) for k, v in params.items()})
            except InputError as exc:
                raise InputError(exc.message, path=self.path, layer=e.name) from None
            if act.name in ("softmax", "log_softmax") or any(
                    getattr(act, p) is None for p in M.ACTIVATIONS[act.name]):
                raise InputError(f"cell activation {act.name}: not elementwise, or without its parameters",
                                 path=self.path, layer=e.name)
            out.append(act)
        return out

    def _take(self, e, arrays: dict, side: int, var: str, shape: tuple) -> np.ndarray:
        a = arrays.pop((side, var), None)
        if a is None:
            raise InputError(f"no weight '{var}' for direction {side}, which its config names", path=self.path,
                             layer=e.name)
        self.check(e, var, a, shape, "rnnconvert's TF.js class")
        return a
