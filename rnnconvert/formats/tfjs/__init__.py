"""TensorFlow.js layers models: `model.json` (a Keras Sequential config as `modelTopology`, a
`weightsManifest` naming each weight and the shard files that hold them) and the binary shards beside
it, read and written with json and numpy only: no TensorFlow or TF.js needed.

Layout: the weights are Keras's (kernels [input, gates*units], gate blocks along COLUMNS: LSTM ifco,
GRU zrh), little-endian, concatenated across the shards in manifest order.  Odd: TF.js computes
hard_sigmoid as tf.keras 2 does, clip(0.2x+0.5), whatever Keras the topology names; its GRU refuses
reset_after=True, so that, LSTM projections, initial states and Keras's masked outputs and pooling are
written as rnnconvert's own layer classes, an ES module beside the model (`layers_js`), read back by
`classes.py` from the JSON alone.  Shared with the Keras format: `..keras_json`.

    write(model, path, fold_hard_sigmoid=True, selectors=True)   `writer.py`: NAME.json + NAME.bin
                            (+ NAME.layers.mjs when the model names rnnconvert's classes)
    read(path)              `reader.py`
    run(path, x, model)     the model run by @tensorflow/tfjs under Node (`runtime.py`; `runner`: one
                            Node process for every input)
"""
from __future__ import annotations

from .reader import read, sniff
from .runtime import run, runner
from .writer import write

__all__ = ["sniff", "read", "write", "run", "runner"]
# The TF.js runtime reads the weights from the files alone.
RUNTIME_FROM_FILE = True
