"""The registry: one literal table of formats, keyed by name, with their suffixes.

Every format module offers the same verbs: `sniff(path) -> bool`, `read(path, **options) -> Model`
and, where it writes, `write(model, path, **options) -> list[str]` (notes on what changed in form).
Modules are imported only when a command needs them, so `rnnconvert --help` stays fast.

Owns: one package per format (`keras`, `onnx`, `torch`, `matlab`, `tfjs`, `codegen` for C, JavaScript and
NumPy code; `keras_json`, the Keras layer configs `keras` and `tfjs` share), the canonical `.rnnc` form (`canonical`), per-layer reading across formats (`per_layer`, `found`),
and the escaping of file text into generated code (`literals`).  A format's own runtime (`run`, `runner`)
lives in its package.  May import: `rnnconvert.reference`, `rnnconvert.model`, `rnnconvert.files`,
`rnnconvert.errors`; the format packages never import each other.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from ..errors import UnknownFormatError


@dataclass(frozen=True)
class Format:
    name: str
    module: str
    suffixes: tuple[str, ...]
    reads: bool
    writes: bool
    runtime: str          # the independent runtime that runs written files, if installed
    description: str

    def load(self):
        return importlib.import_module(self.module)


FORMATS: dict[str, Format] = {
    "keras": Format("keras", "rnnconvert.formats.keras", (".h5", ".hdf5", ".keras"), True, True,
                    "keras", "Keras .keras (Keras 3 zip) and legacy HDF5 .h5 (tf.keras 2.x, Keras 3)"),
    "onnx": Format("onnx", "rnnconvert.formats.onnx", (".onnx",), True, True,
                   "onnxruntime", "ONNX with native LSTM/GRU/RNN nodes (a Scan where they cannot express a layer)"),
    "torch": Format("torch", "rnnconvert.formats.torch", (".pt", ".pth"), True, True,
                    "torch", "PyTorch state dicts of nn.LSTM/nn.GRU/nn.RNN/nn.Linear (read without torch)"),
    "safetensors": Format("safetensors", "rnnconvert.formats.torch.safetensors_format", (".safetensors",),
                          True, True,
                          "torch", "PyTorch state dicts as safetensors (read and written without torch)"),
    "matlab": Format("matlab", "rnnconvert.formats.matlab", (".mat",), True, True, "octave",
                     "MATLAB networks saved with save() (v5, v7.3) and layer structs; bare matrices with --mapping"),
    "tfjs": Format("tfjs", "rnnconvert.formats.tfjs", (".json",), True, True, "tfjs",
                   "TensorFlow.js layers model: model.json + a weights shard beside it (NAME.bin)"),
    "canonical": Format("canonical", "rnnconvert.formats.canonical", (".rnnc",), True, True,
                        "", "rnnconvert's own lossless form: JSON manifest + .npy arrays in a zip"),
    "c": Format("c", "rnnconvert.formats.codegen.c", (".c",), False, True, "gcc",
                "C99 source and header: float32, static weights, no allocation, streaming step (write-only)"),
    "js": Format("js", "rnnconvert.formats.codegen.js", (".mjs",), False, True, "node",
                 "ES module without dependencies for Node and browsers, streaming step (write-only)"),
    "numpy": Format("numpy", "rnnconvert.formats.codegen.numpy_script", (".py",), False, True, "python",
                    "standalone NumPy script with named gate slices, weights in a sidecar .npz (write-only)"),
    "tflite": Format("tflite", "rnnconvert.formats.tflite", (".tflite",), True, True, "litert",
                     "TFLite FlatBuffer for LiteRT: LSTM/RNN as its sequence ops (written and read without TensorFlow)"),
}


def _suffix(path) -> str:
    return os.path.splitext(str(path))[1].lower()


def known() -> str:
    return ", ".join(f"{f.name} ({' '.join(f.suffixes)})" for f in FORMATS.values())


def by_name(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise UnknownFormatError(f"unknown format '{name}'; known formats: {known()}") from None


def for_reading(path, fmt: str | None = None) -> Format:
    if fmt:
        return by_name(fmt)
    suffix = _suffix(path)
    for f in FORMATS.values():
        if suffix in f.suffixes and f.reads:
            return f
    if os.path.isfile(path):
        for f in FORMATS.values():
            if f.reads and f.load().sniff(path):
                return f
    raise UnknownFormatError(f"cannot tell the format of this file (suffix '{suffix or 'none'}'); "
                             f"formats rnnconvert reads: {known()}", path=str(path))


def for_writing(path, fmt: str | None = None) -> Format:
    f = by_name(fmt) if fmt else None
    if f is None:
        suffix = _suffix(path)
        f = next((f for f in FORMATS.values() if suffix in f.suffixes), None)
        if f is None:
            raise UnknownFormatError(f"unknown output suffix '{suffix or 'none'}'; formats rnnconvert writes: "
                                     + ", ".join(f"{x.name} ({' '.join(x.suffixes)})"
                                                 for x in FORMATS.values() if x.writes), path=str(path))
    if not f.writes:
        raise UnknownFormatError(f"rnnconvert reads {f.name} files but does not write them yet; "
                                 "formats it writes: " + ", ".join(x.name for x in FORMATS.values() if x.writes),
                                 path=str(path))
    return f


def check_exists(path) -> None:
    """InputError unless `path` is a regular file (a FIFO would block the reader forever, a device never
    ends): "no such file", "is a directory, expected a model file", "is not a regular file, ..."."""
    from ..files.outputs import check_input
    check_input(path, "a model file")


def read(path, format: str | None = None, **options):
    """Read any supported file into the canonical model (`rnnconvert.read`)."""
    path = os.fspath(path)
    check_exists(path)
    return for_reading(path, format).load().read(path, **options)


def write(model, path, format: str | None = None, **options) -> list[str]:
    """Write `model` to `path` in the format its suffix names; returns notes on what changed in form
    (`rnnconvert.write`)."""
    path = os.fspath(path)
    fmt = for_writing(path, format)
    peepholes_written_by(model, fmt.name, path)
    return fmt.load().write(model, path, **options) or []


PEEPHOLE_WRITERS = ("onnx", "canonical", "tfjs")     # the formats whose LSTM has ONNX's peepholes (P)


def peepholes_written_by(model, fmt: str, path: str) -> None:
    """UnsupportedError naming the first LSTM layer with peepholes when `fmt` has no place for them."""
    from ..errors import UnsupportedError
    layer = next((layer for layer in getattr(model, "recurrent_layers", [])
                  if any(getattr(w, "P", None) is not None for w in layer.weights)), None)
    if layer is not None and fmt not in PEEPHOLE_WRITERS:
        raise UnsupportedError(f"layer '{layer.name}': an LSTM with peepholes (ONNX P: the gates i, f, o also see "
                               f"the cell state), which {fmt} has no form for; write ONNX or .rnnc", path=path)
