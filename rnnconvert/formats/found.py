"""What a per-layer scan finds in a file: each recurrent layer (`Found`) and the whole model or why it does
not read (`Scan`).  The formats' `per_layer` modules make them; `formats/per_layer.py` uses them."""
from __future__ import annotations
from dataclasses import dataclass, field
from typing import Callable
from ..errors import RnnConvertError
from ..model import Model


@dataclass
class Found:
    name: str
    kind: str                      # lstm | gru | rnn
    bidirectional: bool
    where: str                     # where in the file, for messages and inspect
    build: Callable                # () -> (list[Recurrent], notes[, {extra source entries}])
    node: object = None            # ONNX: the extract.NodeRef, for the node check
    opset: int = 0
    group: list = field(default_factory=list)    # a multi-layer PyTorch module: its layers' names


@dataclass
class Scan:
    path: str
    format: str
    layers: list                   # Found
    whole: Model | None = None     # the whole model, when it reads
    error: RnnConvertError | None = None   # why the whole model does not read
    assumptions: list = field(default_factory=list)
