"""The one input suite every verification uses, and the streaming check.

The suite is seeded and reproducible: batch > 1, sequences of 1, 7, 120 and 300 steps (a model with a
fixed length gets that length; a convolution or pooling window raises the shortest length to what it
needs), one batch row scaled x6 so that gates saturate, in the model's own layout, plus the user's
`--inputs` (validated before anything runs: `inputs.py`).  A model that starts with an Embedding gets int64 token ids in [0, vocab) instead, zeros
included; when it masks (mask_zero, Masking), row 1 is left-padded and the last row right-padded, so
that the masked steps are exercised, and no row is masked entirely (a global average over no step is
0/0 in Keras too).  A large model (over LARGE_MODEL_PARAMS parameters, where every time step reads all
the weights and verification would dominate the conversion) gets the shorter LARGE_SUITE_SHAPES: still
batch > 1, a saturating row and several lengths (a wrong gate order, transposition, bias or direction
shows from the first steps on; the long inputs of smaller models probe how rounding accumulates), and
is verified in the order of `large.py`.  Past verification's time budget (`budget.py`) the longest
seeded inputs are shortened or dropped (`input_suite(shapes=...)`).  The model's own initial
states (`h0`, `c0`) are part of the model and so of every pass.

Streaming: a model whose every recurrent layer runs forward, and whose recurrent layers before the last
return their whole sequence, computes the same when a sequence is fed in chunks with each layer's
final state carried into the next chunk as `h0`/`c0` (`reference.forward_with_states`).
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np

from ..errors import InputError
from ..model import Conv1D, Embedding, Flatten, Masking, Model, Pooling1D, Recurrent, TimeWindow
from .inputs import check, fixed_batch_size, shortest_length, tokens

# (batch, time) of the seeded inputs: a single step, a short, a long and a very long sequence.
SUITE_SHAPES = ((3, 1), (3, 7), (2, 120), (2, 300))
LARGE_SUITE_SHAPES = ((3, 1), (3, 7), (2, 32))
LARGE_MODEL_PARAMS = 20_000_000
SATURATION_SCALE = 6.0
STREAMING = "streaming(reference)"


def input_suite(model: Model, seed: int = 0, user_inputs: np.ndarray | None = None, path=None,
                shapes: list[tuple[int, int]] | None = None):
    """[(label, x)] float32 inputs that exercise recurrence, in the model's own layout (`path`: the model's
    file, named when its fixed input is past what verification runs).  `shapes`: the seeded inputs to
    make, a prefix of `seeded_shapes(model)` whose last may be shorter (`budget.fit`); each input kept is
    the one of the full suite, bit for bit, but a shortened one."""
    user = None if user_inputs is None else check(model, user_inputs)      # refused before anything runs
    rng = np.random.default_rng(check_seed(seed))
    keep = seeded_shapes(model, path) if shapes is None else list(shapes)
    suite, seen = [], set()
    for batch, time in _shapes(model, path):
        if len(suite) == len(keep):
            break
        if (batch, time) in seen:          # a fixed-length model: one seeded input per length (drawn all the
            _seeded(model, rng, batch, time)        # same, so that the inputs after it are the full suite's)
            continue
        seen.add((batch, time))
        batch, time = keep[len(suite)]
        x = _seeded(model, rng, batch, time)
        if model.input.layout == "time_batch_feature":
            x = np.ascontiguousarray(np.swapaxes(x, 0, 1))
        suite.append((f"seeded b{batch} t{time}", x))
    if user is not None:
        suite.append(("user inputs", user))
    return suite


def seeded_shapes(model: Model, path=None) -> list[tuple[int, int]]:
    """(batch, time) of each seeded input of the full suite, in order (shortest first)."""
    out = []
    for shape in _shapes(model, path):
        if shape not in out:
            out.append(shape)
    return out


def _shapes(model: Model, path=None):
    """suite_shapes with the model's fixed batch, fixed length and shortest length applied (repeats kept)."""
    fixed_batch = fixed_batch_size(model)
    shortest = shortest_length(model)
    for batch, time in suite_shapes(model):
        batch = fixed_batch or batch
        time = model.input.time_steps or max(time, shortest)
        check_size(model, batch, time, path)
        yield batch, time


SEED_MAX = 2**32 - 1
# Bounds on what a file can make verification allocate and run through the seeded suite: a model that
# fixes its length or batch (an ONNX input of shape [1, 10**8, 1]) would otherwise have every pass of the
# reference run that many steps.  Real fixed-length models are far below (the longest seen: 4001 steps).
MAX_SUITE_STEPS = 100_000
MAX_SUITE_VALUES = 1 << 25


def check_size(model: Model, batch: int, time: int, path=None) -> None:
    """InputError when a seeded input of [batch, time, features] is past MAX_SUITE_STEPS / _VALUES."""
    features = 1 if tokens(model) is not None else int(model.input.features or 1)
    if time > MAX_SUITE_STEPS or batch * time * features > MAX_SUITE_VALUES:
        raise InputError(f"the model fixes its input to {batch} rows of {time} steps of {features} features "
                         f"({batch * time * features} values); verification runs at most {MAX_SUITE_STEPS} "
                         f"steps and {MAX_SUITE_VALUES} values per input: convert with --no-verify", path=path)


def check_seed(seed) -> int:
    """The suite's seed: an integer from 0 to SEED_MAX (what the CLI's --seed and a plan's seed accept)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= SEED_MAX:
        raise InputError(f"seed {seed!r}: expected an integer from 0 to {SEED_MAX}")
    return int(seed)


def _seeded(model: Model, rng, batch: int, time: int) -> np.ndarray:
    """One seeded input [batch, time(, features)], batch-major (the caller swaps for time-major)."""
    embedding = tokens(model)
    masking = next((layer for layer in model.layers if isinstance(layer, Masking)), None)
    if embedding is not None:
        x = rng.integers(0, embedding.table.shape[0], (batch, time), dtype=np.int64)
        x[0, 1::3] = 0                     # id 0: a real token or, with mask_zero, a masked step (never all)
    else:
        x = rng.standard_normal((batch, time, model.input.features)).astype(np.float32)
        x[0] *= SATURATION_SCALE           # drives gates into saturation
    masked = embedding is not None and embedding.mask_zero or masking is not None
    if masked and time > 1:
        pad = 0 if embedding is not None else np.float32(masking.mask_value)
        if batch > 2:
            x[1, :time // 2] = pad         # left-padded
        x[-1, time - time // 3:] = pad     # right-padded
    return x


def suite_shapes(model: Model) -> tuple[tuple[int, int], ...]:
    """(batch, time) of the seeded inputs for `model`: the shorter suite for a large model."""
    return LARGE_SUITE_SHAPES if model.parameter_count() > LARGE_MODEL_PARAMS else SUITE_SHAPES


def initial_states(model: Model) -> list[str]:
    """The layers that carry non-zero initial states, e.g. ["layers[0] 'lstm': h0, c0"]."""
    out = []
    for k, layer in enumerate(model.layers):
        if isinstance(layer, Recurrent):
            names = sorted({a for w in layer.weights for a in ("h0", "c0")
                            if getattr(w, a) is not None and np.any(getattr(w, a))})
            if names:
                out.append(f"layers[{k}] '{layer.name}': {', '.join(names)}")
    return out


def streaming_undefined(model: Model) -> str | None:
    """Why streaming is not defined for `model`, or None when it is."""
    rec = [(k, layer) for k, layer in enumerate(model.layers) if isinstance(layer, Recurrent)]
    if not rec:
        return "the model has no recurrent layer"
    for k, layer in enumerate(model.layers):
        if isinstance(layer, (Conv1D, Pooling1D, Flatten)):
            return f"layers[{k}] '{layer.name}' ({layer.kind}) mixes time steps across chunk boundaries"
        if isinstance(layer, TimeWindow):
            return f"layers[{k}] '{layer.name}' ({layer.kind}) picks steps of the whole sequence"
        if isinstance(layer, Masking) or isinstance(layer, Embedding) and layer.mask_zero:
            return f"layers[{k}] '{layer.name}' masks steps, and a masked step's output depends on the chunk"
    for k, layer in rec:
        if layer.direction != "forward":
            return f"layers[{k}] '{layer.name}' is {layer.direction}"
    for k, layer in rec[:-1]:
        if layer.output != "sequence":
            return f"layers[{k}] '{layer.name}' returns one step before another recurrent layer"
    return None


def chunking(T: int) -> list[int]:
    """Chunk sizes summing to T: one step at a time for short sequences, then growing chunks."""
    if T <= 16:
        return [1] * T
    sizes = [1, 2, 5]
    rest = T - sum(sizes)
    return sizes + [rest // 3, rest - rest // 3]


def stream(model: Model, x: np.ndarray, chunks: list[int] | None = None, dtype=np.float64) -> np.ndarray:
    """`model` on `x` fed chunk by chunk, each recurrent layer's final state carried as h0/c0."""
    from ..reference.network import forward_with_states
    time_axis = 0 if model.input.layout == "time_batch_feature" else 1
    T = x.shape[time_axis]
    chunks = chunks or chunking(T)
    m = copy.copy(model)
    m.layers = [copy.copy(layer) for layer in model.layers]
    for layer in m.layers:
        if isinstance(layer, Recurrent):
            layer.weights = [dataclasses.replace(w) for w in layer.weights]
    outs, pos = [], 0
    for n in chunks:
        y, states = forward_with_states(m, np.take(x, range(pos, pos + n), axis=time_axis), dtype)
        pos += n
        outs.append(y)
        for layer, layer_states in zip(m.layers, states):
            if isinstance(layer, Recurrent):
                w, s = layer.weights[0], layer_states[0]
                w.h0 = s.h
                if layer.cell == "lstm":
                    w.c0 = s.c
    if outs[-1].ndim == 3:
        return np.concatenate(outs, axis=time_axis)
    return outs[-1]
