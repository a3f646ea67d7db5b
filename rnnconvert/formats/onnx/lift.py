"""Recurrences written without native nodes, lifted into them before the graph is read: Loops and Scans over
a cell (`lift_loop`, `lift_scan`) and cells unrolled over fixed steps (`lift_unrolled`); `lift_model` runs
them all."""
from __future__ import annotations

from . import lite as onnx     # the lifters import onnx itself (helper): only when there is something to lift
from .extract import Constants, folder_for, opset_of
from .metadata import _metadata
from .scan import is_scan_file

_SLICES = ("Gather", "Slice", "Split")


def might_lift(proto: onnx.ModelProto) -> bool:
    """Whether `lift_model` could change the graph (a Loop, or steps sliced out of a graph without
    native nodes): the reader loads the file's tensors for it only then."""
    ops = {n.op_type for n in proto.graph.node}
    return "Loop" in ops or "Scan" in ops or (not ops & {"LSTM", "GRU", "RNN"} and bool(ops & set(_SLICES)))


def lift_model(proto: onnx.ModelProto, path: str, full: onnx.ModelProto | None = None,
               masks: dict | None = None) -> tuple[onnx.ModelProto, list]:
    """The model with its lifted recurrences as native nodes, and their names; the main graph's constants are
    read from `full` (the model with every tensor loaded; `proto` itself when it has them).  `masks`: a dict
    to lift masked Loops into (`lift_mask`; only the reader, which puts the mask into the canonical model)."""
    if not might_lift(proto) or is_scan_file(_metadata(proto)):      # rnnconvert's own Scan layers: scan.py
        return proto, []
    from . import lift_loop, lift_scan, lift_unrolled
    full = proto if full is None else full
    opset = opset_of(proto)
    consts = Constants([full.graph], opset, folder_for(full, path))
    native = any(n.op_type in ("LSTM", "GRU", "RNN") for n in proto.graph.node)
    proto, loops = lift_loop.lift(proto, path, consts, opset, masks)
    proto, scans = lift_scan.lift(proto, path, consts, opset, native)
    proto, steps = lift_unrolled.lift(proto, path, consts, opset)
    return proto, loops + scans + steps
