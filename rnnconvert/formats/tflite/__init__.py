"""TFLite (`.tflite`): the FlatBuffer LiteRT (TensorFlow Lite) runs, written and read without TensorFlow.

Layout: one subgraph; LSTM and simple RNN as TFLite's sequence ops, one tensor per gate ([H, in] and [H, S],
gates i, f, c, o: canonical ifgo) and one bias per gate; Dense weights [units, in] (the transpose of the
canonical kernel).  Odd about it: the sequence ops' state tensors are variables that outlive `invoke`,
so the writer zeroes them before each op (`recurrent.py`).  Owns the FlatBuffer writer (`flatbuf`,
`graph`), the schema's field tables (`schema`), LiteRT as the runtime (`runtime`), the reader of int8 hybrid
ops (`reader_hybrid`) and of TensorFlow's WHILE lowering of a recurrent layer (`lift_while`), and the WHILE
loops it writes for the other recurrent layers (`loop`, a returned sequence in chunks: `loop_chunks`; read
back by `reader_loop`).
"""
from .runtime import run, runner
from .writer import write

__all__ = ["sniff", "read", "write", "run", "runner"]
RUNTIME_FROM_FILE = True


def sniff(path) -> bool:
    """A FlatBuffer whose file identifier (bytes 4..8) is TFLite's "TFL3"."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == b"TFL3"


def read(path, **options):
    from .reader import read as _read
    return _read(path, **options)
