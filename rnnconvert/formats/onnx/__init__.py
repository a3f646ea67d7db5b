"""ONNX (`.onnx`): native LSTM/GRU/RNN nodes; W [dirs, gates*H, in] in gate order iofc (LSTM) / zrh (GRU).

Odd about it: B packs input and recurrent biases side by side ([dirs, 2*gates*H]); Y is time-major
[T, dirs, batch, H] and everything a framework's predict returns is built around it with glue ops
(Transpose, Squeeze, Slice, Gather, Reshape), which the reader follows and the writer emits.
The modules take onnx's messages, checker and schemas through `lite` (never `import onnx`, whose
ml_dtypes import costs a fresh process ~0.6 s); what lite does not hold comes from onnx on first use.
"""
from .reader import read, sniff
from .runtime import run, runner
from .writer import write

__all__ = ["sniff", "read", "write", "run", "runner"]
# onnxruntime runs a written file from the file itself: verification may pass it a model whose weights
# were released (rnnconvert/verification/large.py).
RUNTIME_FROM_FILE = True
