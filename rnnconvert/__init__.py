"""rnnconvert: move trained LSTM, GRU and simple RNN models between frameworks, verified.

    import rnnconvert
    model = rnnconvert.read("model.h5")
    rnnconvert.write(model, "model.onnx")
    report = rnnconvert.convert("model.h5", "model.onnx")   # read, write, read back, verify
    report = rnnconvert.verify("model.h5", "model.onnx")
    y = rnnconvert.predict("model.h5", x)                    # the reference forward pass
    description = rnnconvert.inspect("model.h5")

The packages, from the top down (each imports only those below it; tests/test_architecture.py checks):

    cli            the command line, a thin layer over api
    api            the public functions above
    batch          YAML plans of many conversions
    verification   the input suite, the checks and `convert`'s stages
    formats        one package per format (sniff/read/write, a runtime), the registry
    reference      the forward pass of the canonical model, in numpy
    model          the canonical model, gate orders, layouts, state ports
    files          files from strangers, outputs written atomically, signals, scratch directories
    errors         the exception hierarchy
"""
from .version import __version__

__all__ = ["read", "write", "convert", "verify", "predict", "inspect", "__version__"]


def __getattr__(name):
    # Imported on first use so that `rnnconvert --help` does not pay for numpy, h5py and onnx.
    if name in ("read", "write", "convert", "verify", "predict", "inspect"):
        from . import api
        return getattr(api, name)
    raise AttributeError(name)
