"""A file's own names for a recurrent layer's arrays where they are not the framework's usual ones.

Keras 1 named each array after its layer: one W, U, b per gate (`lstm_1_W_i`, `lstm_1_U_i`, `lstm_1_b_i`,
stored gate by gate i, c, f, o; GRU z, r, h), or one each (`lstm_1_W`, `_U`, `_b`, with
consume_less='gpu'; `forward_lstm_1_W` inside a Bidirectional), where Keras 2 and 3 say `kernel`,
`recurrent_kernel`, `bias`.  The Keras reader records them (`source["keras1_names"]`, per layer, in the
order it read them); `describe` shows them in place of the Keras 2 names.
"""
from __future__ import annotations

from . import gates
from .layers import Recurrent

KERAS1_ORDER = {"lstm": "icfo", "gru": "zrh", "rnn": "h"}     # the order Keras 1 stored its per-gate arrays
_INDEX = {"kernel": 0, "recurrent_kernel": 1, "bias": 2}       # W, U, b
KERAS_TENSORS = tuple(_INDEX)


class OwnNames:
    """One layer's arrays as the file names them, per direction (`names[d]`: W, U, b, or W, U, b of each gate)."""

    def __init__(self, names: list[list[str]], per_gate: bool, cell: str):
        self.names, self.per_gate, self.cell = names, per_gate, cell

    def tensor(self, tensor_name: str, d: int) -> str:
        """The file's array holding what Keras 2 calls `tensor_name` (per gate: the arrays, comma-separated)."""
        k = _INDEX[tensor_name]
        if not self.per_gate:
            return self.names[d][k]
        return ", ".join(self.names[d][3 * g + k] for g in range(len(KERAS1_ORDER[self.cell])))

    def gate(self, tensor_name: str, d: int, letter: str) -> str:
        """Per gate: the array of gate `letter` (a Keras gate letter) of what Keras 2 calls `tensor_name`."""
        return self.names[d][3 * KERAS1_ORDER[self.cell].index(letter) + _INDEX[tensor_name]]


def keras1(layer: Recurrent, names) -> OwnNames | None:
    """The Keras 1 names of `layer` when `names` (the arrays the reader took, in order) are what Keras 1
    stores for it, else None (the layer is then shown with the Keras 2 names)."""
    D, G = len(layer.weights), gates.GATE_COUNT[layer.cell]
    if not isinstance(names, list) or not names or len(names) % D or not layer.has_input_bias:
        return None
    n = len(names) // D
    if n not in (3, 3 * G) or (layer.cell == "gru" and layer.reset_after):
        return None
    own = [[_bare(x) for x in names[d * n:(d + 1) * n]] for d in range(D)]
    return OwnNames(own, n == 3 * G and G > 1, layer.cell)


def _bare(name) -> str:
    """`lstm_1_W_i:0` -> `lstm_1_W_i` (the TensorFlow output index is not part of the name)."""
    name = str(name).rsplit("/", 1)[-1]
    return name[:-2] if name.endswith(":0") else name
