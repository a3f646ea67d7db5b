"""Independent runtimes: each format's own framework, run on a written file when installed.

Every format module that has one offers `run(path, x, model) -> np.ndarray`: the file run by its
own framework (onnxruntime, Keras 3, torch, ...) on `x` in the model's own layout.  It raises
`RuntimeUnavailable` when that framework is not installed; verification then reports the check as
not run instead of failing.
"""
from __future__ import annotations


class RuntimeUnavailable(Exception):
    pass


def run(fmt, path, x, model):
    """Run `path` (a file of registry format `fmt`) with the format's own runtime."""
    module = fmt.load()
    if not hasattr(module, "run"):
        raise RuntimeUnavailable(f"no runtime for {fmt.name} files")
    return module.run(path, x, model)
