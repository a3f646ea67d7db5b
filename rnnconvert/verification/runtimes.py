"""Independent runtimes: each format's own framework, run on a written file when installed.

Every format module that has one offers `run(path, x, model) -> np.ndarray`: the file run by its
own framework (onnxruntime, Keras 3, torch, ...) on `x` in the model's own layout; a module whose
runtime takes long to load a file (an onnxruntime session of a large model takes seconds) also offers
`runner(path, model) -> (x -> np.ndarray)`, loaded once for every input.  It raises
`RuntimeUnavailable` when that framework is not installed.  Verification (`oracles._runtime_checks`)
reports that, and any failure of the runtime to load or run the file (Octave on a MATLAB object file,
onnxruntime refusing a graph), as the check not run, with the reason on one line: never as a failure.
"""
from __future__ import annotations
from ..errors import RuntimeUnavailable


def run(fmt, path, x, model):
    """Run `path` (a file of registry format `fmt`) with the format's own runtime."""
    module = fmt.load()
    if not hasattr(module, "run"):
        raise RuntimeUnavailable(f"no runtime for {fmt.name} files")
    return module.run(path, x, model)


def runner(fmt, path, model):
    """x -> output: `path` run by its format's runtime, loaded once for all the inputs it is given."""
    module = fmt.load()
    if hasattr(module, "runner"):
        return module.runner(path, model)
    if not hasattr(module, "run"):
        raise RuntimeUnavailable(f"no runtime for {fmt.name} files")
    return lambda x: module.run(path, x, model)


def from_file(fmt) -> bool:
    """Does `fmt`'s runtime take the weights from the file alone (the model only for its structure)?"""
    return bool(getattr(fmt.load(), "RUNTIME_FROM_FILE", False))
