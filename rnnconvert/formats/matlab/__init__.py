"""MATLAB .mat files: trained networks saved by MATLAB, and the layer-struct layout rnnconvert writes.

Layout (`schemas/matlab.md`): MATLAB's own, which is the canonical one: gate blocks along rows
(LSTM i,f,g,o; GRU r,z,h~), InputWeights [G*H, C], RecurrentWeights [G*H, H], one Bias [G*H, 1]
(GRU 'recurrent-bias-after-multiplication': 6H, input over recurrent), BiLSTM forward rows over
backward rows, FullyConnected Weights [out, in].  What is odd: MATLAB networks are MCOS objects
(decoded by `mcos.py`), data is channel-by-time (rnnconvert's input is [batch, time, features]), and
OutputMode 'last' of a BiLSTM takes the backward direction after one step.

    read(path, var=None, mapping=None)   a network/layer-array object (v5 or v7.3), rnnconvert's
                                         `layers` cell, or bare matrices with a mapping YAML
    write(model, path, version="7")      the `layers` cell of structs (version "7.3": HDF5)
    run(path, x, model)                  Octave runs matlab/rnnconvert_predict.m on the written file
"""
from __future__ import annotations

from .reader import read
from .runtime import run, runner
from .writer import write

__all__ = ["sniff", "read", "write", "run", "runner"]
# Octave runs a written file from the file itself: verification may pass it a model whose weights
# were released (rnnconvert/verification/large.py).
RUNTIME_FROM_FILE = True


def sniff(path) -> bool:
    """A MAT-file header: v5 text header or a v7.3 HDF5 file with MATLAB's header."""
    try:
        with open(path, "rb") as f:
            head = f.read(128)
    except OSError:
        return False
    return head.startswith(b"MATLAB 5.0 MAT-file") or head.startswith(b"MATLAB 7.3 MAT-file")
