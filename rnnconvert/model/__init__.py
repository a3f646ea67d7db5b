"""The canonical model every format reads into and writes from.

A `Model` is an ordered stack of typed layers applied to one input `[batch, time, features]`
(batch-major; `InputSpec.layout` records a source that was time-major); a streaming model also takes
and returns recurrent states as named tensors (`state_inputs`, `state_outputs`: `states.py`).  Tensors between layers
are `[batch, time, features]` until a recurrent layer returns one step, then `[batch, features]`.

Recurrent weights are stored per direction in the canonical gate order (`gates.CANONICAL`:
LSTM `ifgo`, GRU `rzn`), gate blocks along rows, with the ONNX symbols:

    W   [gates*hidden, input]       input weights
    R   [gates*hidden, hidden]      recurrent weights ([gates*hidden, proj] with a projection)
    Wb  [gates*hidden]              input bias
    Rb  [gates*hidden]              recurrent bias (zeros where the source has one bias)
    h0  [hidden] or [batch, hidden] initial hidden state (None: zeros)
    c0  same, LSTM only             initial cell state
    proj [proj, hidden]             LSTM output projection (PyTorch proj_size), or None
    P   [3, hidden]                 LSTM peepholes, rows i, f, o (ONNX's P), or None

The schema of the on-disk form is `schemas/model.schema.json`; `schemas/README.md` is normative.

Owns: the model's types (`core`, `layers`, `activations`), its validity (`validate`), gate orders and
permutations (`gates`), each framework's weight layout (`layouts`), state ports (`states`), what a reader
assumed (`assumptions`), the int8 hybrid setting of a layer (`hybrid`) and the description `inspect` prints (`describe`; a Keras 1 file's own array
names: `own_names`).  May import: `rnnconvert.errors`, `rnnconvert.files`.
Nothing here runs a model: the forward pass is `rnnconvert.reference`, which imports this.
"""
from .activations import (ACTIVATIONS, HARD_SIGMOID_KERAS2, HARD_SIGMOID_KERAS3, LINEAR, RELU, SELU, SELU_ALPHA,
                          SELU_GAMMA, SIGMOID, TANH, Activation)
from .core import InputSpec, Model, json_default
from .layers import (CELLS, CONV_PADDINGS, DIRECTIONS, LAYER_KINDS, MASKED_OUTPUTS, MERGE_MODES, OUTPUTS, POOL_MODES,
                     TIME_ORDERS, ActivationLayer, BatchNorm, Conv1D, Dense, DirectionWeights, Dropout, Embedding,
                     Flatten, Layer, Masking, Pooling1D, Recurrent, TimeWindow, layer_fields)
from .states import STATE_KINDS, StatePort, state_problems
from .validate import MAX_DIM, WEIGHT_DTYPES, recurrent_problems

__all__ = [
    "ACTIVATIONS", "HARD_SIGMOID_KERAS2", "HARD_SIGMOID_KERAS3", "LINEAR", "RELU", "SELU", "SELU_ALPHA", "SELU_GAMMA",
    "SIGMOID", "TANH", "Activation", "InputSpec", "Model", "json_default", "CELLS", "CONV_PADDINGS", "DIRECTIONS",
    "LAYER_KINDS", "MASKED_OUTPUTS", "MERGE_MODES", "OUTPUTS", "POOL_MODES", "TIME_ORDERS", "ActivationLayer",
    "BatchNorm", "Conv1D", "Dense", "DirectionWeights", "Dropout", "Embedding", "Flatten", "Layer", "Masking",
    "Pooling1D", "Recurrent", "TimeWindow", "layer_fields", "STATE_KINDS", "StatePort", "state_problems", "MAX_DIM",
    "WEIGHT_DTYPES", "recurrent_problems",
]
