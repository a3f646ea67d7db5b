"""rnnconvert: move trained LSTM, GRU and simple RNN models between frameworks, verified.

    import rnnconvert
    model = rnnconvert.read("model.h5")
    rnnconvert.write(model, "model.onnx")
    report = rnnconvert.convert("model.h5", "model.onnx")   # read, write, read back, verify
    report = rnnconvert.verify("model.h5", "model.onnx")
"""
__version__ = "0.1.0"

__all__ = ["read", "write", "convert", "verify", "predict", "__version__"]


def __getattr__(name):
    # Imported on first use so that `rnnconvert --help` does not pay for numpy, h5py and onnx.
    if name in ("read", "write", "predict"):
        from . import api
        return getattr(api, name)
    if name in ("convert", "verify"):
        from . import verification
        return getattr(verification, name)
    raise AttributeError(name)
