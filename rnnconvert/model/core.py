"""`Model` (an ordered stack of layers over one input, with its state ports) and `InputSpec`; the
layer types are in `layers.py`, what makes a model valid in `validate.py`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .states import StatePort
from .layers import Layer, Recurrent
from .validate import _problems


@dataclass
class InputSpec:
    """The model's one input.  dtype 'int64'/'int32': token ids [batch, time] (no feature axis,
    features 0) for a model that starts with an Embedding."""
    name: str = "input"
    features: int = 0
    dtype: str = "float32"
    layout: str = "batch_time_feature"    # or "time_batch_feature" (a time-major source)
    time_steps: int | None = None           # fixed length in the source, if any


@dataclass
class Model:
    layers: list[Layer]
    input: InputSpec
    output_name: str = "output"
    name: str = "model"
    source: dict = field(default_factory=dict)   # format, producer, versions, notes
    state_inputs: list[StatePort] = field(default_factory=list)    # after the input, in this order
    state_outputs: list[StatePort] = field(default_factory=list)   # after the output, in this order

    @property
    def recurrent_layers(self) -> list[Recurrent]:
        return [layer for layer in self.layers if isinstance(layer, Recurrent)]

    @property
    def has_state_io(self) -> bool:
        return bool(self.state_inputs or self.state_outputs)

    def parameter_count(self) -> int:
        return sum(int(a.size) for layer in self.layers for a in layer.arrays().values())

    def validate(self, path: str | None = None) -> "Model":
        """Check shapes and settings all at once; raise InputError listing every problem."""
        problems = list(_problems(self))
        if problems:
            raise InputError("invalid model: " + "; ".join(problems), path=path)
        return self


def json_default(v):
    """`json.dumps(default=...)` for settings that hold numpy scalars or arrays."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
