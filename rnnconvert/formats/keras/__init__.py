"""Keras: the legacy HDF5 file (`.h5`, Keras 1 to 3, tf.keras 2.x) and the Keras 3 zip (`.keras`),
read with h5py, zipfile and json only: no TensorFlow or Keras needed.

Layout: kernels are [input, gates*units] with gate blocks along COLUMNS (LSTM ifco, GRU zrh).
Odd: `hard_sigmoid` is clip(0.2x+0.5) before Keras 3 and clip(x/6+0.5) from Keras 3 on;
`go_backwards` returns its sequence in processing (reversed) order; a `.keras` weights file names
its groups by layer class (`layers/lstm_1`), not by layer name.  `container.py` has the file
layouts, `..keras_json` the config shapes and the weight conversion (shared with TF.js).

    write(model, path, keras_version=3, fold_hard_sigmoid=True, selectors=True)   `writer.py`, `plan.py`
    run(path, x, model)     the file run by Keras itself (needs keras; `runtime.py`)
"""
from __future__ import annotations


from ...errors import InputError, RnnConvertError, UnsupportedError
from ...model import InputSpec, Model, Recurrent
from ...model.assumptions import Assumption
from ..keras_json import graph, state_graph
from ..keras_json.build import combined, convert_chain, fold_selectors, shape_text
from . import container
from ..keras_json.layers import SUPPORTED, Converter
from .runtime import run
from .writer import write

__all__ = ["sniff", "read", "write", "run", "SUPPORTED"]
# Keras runs a written file from the file itself: verification may pass it a model whose weights
# were released (rnnconvert/verification/large.py).
RUNTIME_FROM_FILE = True


def sniff(path) -> bool:
    """True for a Keras model (or Keras weights) file; never raises."""
    return container.sniff(path)


def read(path, **options) -> Model:
    """Read a Keras model file into the canonical model.

    Options: allow_stateful (default True) reads `stateful=True` layers as the first call of a freshly
    reset model (zero states), an `Assumption` in `source["assumptions"]`; False refuses them.
    accept_windows_paths (default False) reads a `.keras` whose weights file names its groups with
    Windows path separators (`layers\\lstm\\cell`), which Keras itself cannot load.
    arch= the architecture of a weights-only file (`weights_only.py`).
    """
    path = str(path)
    from . import weights_only
    try:
        if weights_only.is_weights_only(path):
            return weights_only.read(path, arch=options.get("arch"))
        return _read(path, allow_stateful=bool(options.get("allow_stateful", True)),
                     accept_windows_paths=bool(options.get("accept_windows_paths", False)))
    except RnnConvertError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError, IndexError, OSError, RuntimeError) as exc:
        raise InputError(f"cannot read this Keras file: unexpected content ({type(exc).__name__}: {exc})",
                         path=path) from None


def _read(path: str, allow_stateful: bool, accept_windows_paths: bool = False) -> Model:
    saved = container.open_file(path, accept_windows_paths=accept_windows_paths)
    notes = list(saved.notes)
    model_class, name, entries = graph.chain(saved.config, path)
    refusal = saved.windows_refusal([e.key for e in entries], path)
    if refusal:
        raise refusal
    major = graph.keras_major(saved.keras_version, saved.config, notes)
    shape = graph.input_shape(entries, saved.config)
    tokens = any(e.cls == "Embedding" for e in entries[:2])
    features = shape[-1] if shape and isinstance(shape[-1], int) and not tokens else None
    time_steps = shape[1] if shape is not None and len(shape) > 1 and isinstance(shape[1], int) else None
    conv = Converter(path, major, saved.layer_weights, model_class=model_class, features=features,
                     allow_stateful=allow_stateful, backend=saved.backend, time_steps=time_steps,
                     release=saved.release)
    layers, problems = convert_chain(conv, entries)
    if problems:
        raise saved.missing_weights(problems, path) or combined(problems, path)
    if not any(isinstance(layer, Recurrent) for layer in layers):
        raise UnsupportedError("the model has no LSTM, GRU or SimpleRNN layer; nothing to convert", path=path)
    if shape is not None and len(shape) != (2 if tokens else 3):
        expected = "token ids [batch, time]" if tokens else "[batch, time, features]"
        raise UnsupportedError(f"input shape {shape_text(shape)}: rnnconvert reads models whose input is "
                               f"{expected}", path=path)
    notes += conv.notes
    layers = fold_selectors(layers, notes)
    input_name = entries[0].name if entries and entries[0].cls == "InputLayer" else "input"
    source = {"format": "keras", "container": saved.container, "keras_version": saved.keras_version,
              "backend": saved.backend, "model_class": model_class}
    if notes:
        source["notes"] = notes
    if saved.read_notes:
        source["read_notes"] = list(saved.read_notes)
    if conv.keras1_names:
        source["keras1_names"] = conv.keras1_names      # what inspect calls the arrays (model/own_names.py)
    if conv.stateful:
        source["assumptions"] = [_stateful_assumption(conv.stateful, shape)]
    model = Model(layers=layers, input=InputSpec(name=input_name, features=int(conv.input_features or 0),
                                                 dtype="int64" if tokens else "float32",
                                                 time_steps=time_steps),
                  output_name="output", name=str(name), source=source)
    model.state_inputs, model.state_outputs = state_graph.ports(model, entries, path)
    return model.validate(path)


def _stateful_assumption(names: list[str], shape) -> Assumption:
    batch = shape[0] if shape and isinstance(shape[0], int) else None
    fixed = (f"; the source fixes the batch size at {batch} (batch_input_shape), the converted model takes "
             "any batch size" if batch else "")
    listed = ', '.join(repr(n) for n in names)
    return Assumption(f"stateful layers {listed} read as a freshly reset model: predictions are "
                      "those of the first call after reset_states() (zero initial states), with no state carried "
                      f"from one call to the next{fixed}", "default",
                      f"stateful layers {listed} start from zero states",
                      "save the model with stateful=False (the file does not hold the states carried between calls)")
