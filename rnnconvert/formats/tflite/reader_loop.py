"""The WHILE loops rnnconvert writes (`loop.py`) read back: the file's "rnnconvert.loops" metadata names, per
loop, the layer's settings, the main-subgraph ops the loop spans and the tensors that hold its weights
(W and the input bias in the main subgraph; R, the GRU's inner recurrent bias and a projection in the
body; "Rb": a GRU's recurrent biases in its int8 body) and "pick" where the loop carries only the step it
processed last.  Int8 weight tensors make the layer's `hybrid` setting (their scales, and the metadata's
"hybrid" {"asymmetric_inputs"}, which must say so).  Every index is checked; the weights and scales come
from the tensors, never from the metadata.  A WHILE
without that metadata (TensorFlow's own lowering) is refused by the reader, naming the op and subgraph.
"""
from __future__ import annotations


import numpy as np

from ...errors import InputError
from ...files.text import read_json
from ...model import CELLS, DirectionWeights, Recurrent
from ...model.activations import Activation
from .reader_recurrent import Seq

KEY = "rnnconvert.loops"
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def read_loops(meta: dict, graphs, path) -> dict:
    """{main-subgraph op index: loop record} for every op a loop spans."""
    if KEY not in meta:
        return {}

    def bad(what):
        raise InputError(f"metadata '{KEY}': {what}", path=path)
    recs = read_json(meta[KEY], path, f"metadata '{KEY}'")
    if not isinstance(recs, list):
        bad("not a list")
    main = graphs[0]
    owner = {}
    for n, rec in enumerate(recs):
        if not isinstance(rec, dict):
            bad(f"entry {n} is not an object")
        ops = rec.get("ops")
        if not (isinstance(ops, list) and len(ops) == 2 and all(isinstance(v, int) for v in ops)
                and 0 <= ops[0] <= ops[1] < len(main.ops)):
            bad(f"entry {n}: ops {ops!r} is not a range of the main subgraph's {len(main.ops)} ops")
        body = rec.get("body")
        if not isinstance(body, int) or not 0 < body < len(graphs):
            bad(f"entry {n}: body {body!r} is not a subgraph index")
        if rec.get("cell") not in CELLS or not isinstance(rec.get("hidden"), int) or rec["hidden"] < 1:
            bad(f"entry {n}: cell {rec.get('cell')!r} / hidden {rec.get('hidden')!r}")
        if rec.get("direction") not in ("forward", "reverse") or not isinstance(rec.get("layer"), str):
            bad(f"entry {n}: direction {rec.get('direction')!r} / layer {rec.get('layer')!r}")
        acts = rec.get("activations")
        if not isinstance(acts, list) or len(acts) != {"lstm": 3, "gru": 2, "rnn": 1}[rec["cell"]] or not all(
                isinstance(a, dict) and isinstance(a.get("name"), str)
                and all(a.get(k) is None or type(a.get(k)) in (int, float) for k in ("alpha", "beta")) for a in acts):
            bad(f"entry {n}: activations {str(acts)[:200]}")
        if rec.get("pick") not in (None, "last", "first"):
            bad(f"entry {n}: pick {rec.get('pick')!r} is not 'last' or 'first'")
        if rec.get("clip") is not None and not isinstance(rec["clip"], (int, float)):
            bad(f"entry {n}: clip {rec['clip']!r}")
        for key, g in (("W", main), ("bias", main), ("input", main), ("output", main), ("h0", main), ("c0", main),
                       ("Rbn", graphs[body]), ("proj", graphs[body])):
            v = rec.get(key)
            if v is not None and (not isinstance(v, int) or not 0 <= v < len(g.tensors)):
                bad(f"entry {n}: {key} {v!r} is not a tensor index")
        for key in ("R", "Rb"):
            R = rec.get(key)
            if (key == "R" or R is not None) and (not isinstance(R, list) or not R or not all(
                    isinstance(v, int) and 0 <= v < len(graphs[body].tensors) for v in R)):
                bad(f"entry {n}: {key} {R!r} is not a list of tensor indices")
        hyb = rec.get("hybrid")
        if hyb is not None and not (isinstance(hyb, dict) and isinstance(hyb.get("asymmetric_inputs"), bool)):
            bad(f"entry {n}: hybrid {str(hyb)[:100]} is not {{'asymmetric_inputs': true or false}}")
        rec["_main"], rec["_body"], rec["_path"] = main, graphs[body], path
        rec["_pair"] = sum(1 for r in recs if isinstance(r, dict) and r.get("layer") == rec["layer"]) == 2
        for k in range(ops[0], ops[1] + 1):
            if k in owner:
                bad(f"entry {n}: op {k} belongs to two loops")
            owner[k] = rec
    return owner


def _const(g, k, what, rec):
    t = g.tensors[k]
    if t.data is None:
        raise InputError(f"metadata '{KEY}': layer '{rec['layer']}': the {what} (tensor '{t.name}') is not a "
                         "constant", path=rec["_path"])
    return np.asarray(t.data, np.float32)


def loop_seq(rec, base, loops) -> Seq:
    cell, H = rec["cell"], rec["hidden"]
    acts = [Activation(a.get("name", ""), a.get("alpha"), a.get("beta")) for a in rec["activations"]]
    main, body = rec["_main"], rec["_body"]
    W = _const(main, rec["W"], "input weights", rec)
    Wb = _const(main, rec["bias"], "input bias", rec)
    R = np.concatenate([_const(body, k, "recurrent weights", rec) for k in rec["R"]])
    Rb = np.zeros_like(Wb)
    if rec.get("Rb") is not None:
        Rb = np.concatenate([_const(body, k, "recurrent bias", rec) for k in rec["Rb"]])
    elif rec.get("Rbn") is not None:
        Rb[2 * H:] = _const(body, rec["Rbn"], "recurrent bias", rec)
    w = DirectionWeights(W, R, Wb, Rb,
                         h0=None if rec.get("h0") is None else _const(main, rec["h0"], "initial state", rec),
                         c0=None if rec.get("c0") is None else _const(main, rec["c0"], "initial cell", rec),
                         proj=None if rec.get("proj") is None else _const(body, rec["proj"], "projection", rec))
    if W.ndim != 2 or W.shape[0] != GATES[cell] * H or R.shape[0] != GATES[cell] * H or Rb.shape != Wb.shape:
        raise InputError(f"metadata '{KEY}': layer '{rec['layer']}': input weights of shape {list(W.shape)}, "
                         f"recurrent {list(R.shape)}, biases {list(Wb.shape)} and {list(Rb.shape)} for a "
                         f"{cell.upper()} of {H} units", path=rec["_path"])
    layer = Recurrent(name=rec["layer"], cell=cell, hidden=H, direction=rec["direction"], weights=[w],
                      activations=acts, reset_after=bool(rec.get("reset_after", True)),
                      clip=None if rec.get("clip") is None else float(rec["clip"]),
                      has_recurrent_bias=cell == "gru" and (bool(rec.get("reset_after", True))
                                                            or rec.get("Rb") is not None and bool(np.any(Rb))),
                      masked_output="zero" if rec.get("masked_output") == "zero" else "previous",
                      hybrid=_hybrid(rec))
    return Seq(base, layer, "input", pick=rec.get("pick"), half=rec["_pair"])


def _hybrid(rec) -> dict | None:
    """The layer's `hybrid` setting from its int8 weight tensors (one scale, or one per row), or None when
    they are float32; the metadata's "hybrid" must agree."""
    from .reader_hybrid import _scales
    where = f"metadata '{KEY}': layer '{rec['layer']}'"
    parts = {"W": [rec["_main"].tensors[rec["W"]]], "R": [rec["_body"].tensors[k] for k in rec["R"]]}
    if rec.get("proj") is not None:
        parts["proj"] = [rec["_body"].tensors[rec["proj"]]]
    flags = [t.quantized for ts in parts.values() for t in ts]
    if not any(flags) and rec.get("hybrid") is None:
        return None
    if not all(flags) or rec.get("hybrid") is None:
        raise InputError(f"{where}: {sum(flags)} of its {len(flags)} weight tensors are int8 and the metadata says "
                         f"{'hybrid' if rec.get('hybrid') else 'float'}; a loop's products are all int8 or all "
                         "float", path=rec["_path"])
    d = rec["direction"]
    scales = {f"{d}.{k}": np.concatenate([_scales(t, t.shape[0], True, where) for t in ts]) for k, ts in parts.items()}
    return {"asymmetric_inputs": rec["hybrid"]["asymmetric_inputs"],
            "scales": {k: [float(v) for v in s] for k, s in scales.items()}}


SPANS_KEY = "rnnconvert.spans"
SPAN_KINDS = ("mask_zero", "masking", "masked_mean")


def read_spans(meta: dict, graphs, path, taken: dict) -> dict:
    """{main-subgraph op index: span} for the mask constructs rnnconvert wrote (`masks.py`)."""
    if SPANS_KEY not in meta:
        return {}

    def bad(what):
        raise InputError(f"metadata '{SPANS_KEY}': {what}", path=path)
    spans = read_json(meta[SPANS_KEY], path, f"metadata '{SPANS_KEY}'")
    if not isinstance(spans, list):
        bad("not a list")
    main = graphs[0]
    owner = {}
    for n, span in enumerate(spans):
        if not isinstance(span, dict) or span.get("kind") not in SPAN_KINDS or not isinstance(span.get("layer"), str):
            bad(f"entry {n} is not a span of kind {', '.join(SPAN_KINDS)} with a layer name")
        ops = span.get("ops")
        if not (isinstance(ops, list) and len(ops) == 2 and all(isinstance(v, int) for v in ops)
                and 0 <= ops[0] <= ops[1] < len(main.ops)):
            bad(f"entry {n}: ops {ops!r} is not a range of the main subgraph's {len(main.ops)} ops")
        for key in ("input", "output"):
            v = span.get(key)
            if span["kind"] != "mask_zero" and (not isinstance(v, int) or not 0 <= v < len(main.tensors)):
                bad(f"entry {n}: {key} {v!r} is not a tensor index")
        if span["kind"] == "masking" and not isinstance(span.get("mask_value"), (int, float)):
            bad(f"entry {n}: mask_value {span.get('mask_value')!r}")
        for k in range(ops[0], ops[1] + 1):
            if k in owner or k in taken:
                bad(f"entry {n}: op {k} belongs to two constructs")
            owner[k] = span
    return owner


STATES_KEY = "rnnconvert.states"


def read_ports(meta: dict, graphs, path) -> list:
    """The state ports of a --stateful file (inputs after the first, outputs after the first), checked."""
    if STATES_KEY not in meta:
        return []

    def bad(what):
        raise InputError(f"metadata '{STATES_KEY}': {what}", path=path)
    ports = read_json(meta[STATES_KEY], path, f"metadata '{STATES_KEY}'")
    main = graphs[0]
    if not isinstance(ports, list) or len(main.inputs) != 1 + len(ports) or len(main.outputs) != 1 + len(ports):
        bad(f"not a list of the {len(main.inputs) - 1} state inputs the main subgraph has")
    for n, port in enumerate(ports):
        if not (isinstance(port, dict) and isinstance(port.get("layer"), str) and port.get("state") in ("h", "c")
                and isinstance(port.get("size"), int) and port.get("input") == main.inputs[n + 1]
                and port.get("output") == main.outputs[n + 1]):
            bad(f"entry {n} does not describe state input {n + 1}")
        init = port.get("initial")
        if init is not None:
            a = np.asarray(init, dtype=object)
            if a.ndim not in (1, 2) or a.shape[-1] != port["size"] or not all(
                    type(v) in (int, float) for v in a.reshape(-1)):
                bad(f"entry {n}: initial value is not [{port['size']}] numbers")
    return ports
