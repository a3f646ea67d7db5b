"""The files `convert` and `verify` write besides the report, under the run's output policy
(`files.outputs`): --emit-module's and --emit-vectors' paths claimed before any work, the --arch and
--mapping files registered as inputs, DST and its companion files installed from the temporary folder
(DST last, its missing folders made only then), the standalone PyTorch module and the golden vectors.
"""
from __future__ import annotations

import os

from ..errors import DestinationError
from ..files.atomic import install_all
from ..files.outputs import Outputs
from . import vectors
from .checks import _relayout


def _claim_outputs(policy: Outputs, force: bool, emit_module=None, emit_vectors=None) -> None:
    """--emit-module's file and --emit-vectors' files follow DST's rule (outputs.py), checked before any
    work: never an input or another output, never anything but a regular file, kept unless `force`."""
    if emit_module:
        policy.claim(emit_module, "--emit-module", replace=force)
    for path in vectors.outputs(emit_vectors) if emit_vectors else []:
        policy.claim(path, "--emit-vectors", replace=force)


def _register_inputs(policy: Outputs, read_options: dict | None) -> None:
    for key, role in (("arch", "the --arch file"), ("mapping", "the --mapping file")):
        if isinstance((read_options or {}).get(key), (str, os.PathLike)):
            policy.add_input((read_options or {})[key], role)


def _existing_folder(directory: str, make_dirs: bool, dst: str) -> str:
    """The folder the temporary goes in: DST's own, or with `make_dirs` its nearest existing ancestor (the
    missing folders are made only when DST is installed)."""
    if os.path.isdir(directory):
        return directory
    if make_dirs:
        parent = directory
        while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
            if os.path.lexists(parent):
                raise DestinationError(f"'{parent}' is not a directory", path=dst)
            parent = os.path.dirname(parent)
        return parent
    raise DestinationError(f"directory '{directory}' does not exist", path=dst)


def _install(policy: Outputs, tmpdir: str, directory: str, dst: str, force: bool) -> None:
    """DST and its companion files (a C header, a NumPy script's weights, ONNX external data) from the
    temporary folder to DST's folder, DST last; each companion is claimed first like DST itself."""
    base = os.path.basename(dst)
    pairs = []
    for name in sorted(os.listdir(tmpdir), key=lambda n: n == base):
        final = os.path.join(directory, name)
        if name != base:
            policy.claim(final, f"a companion file of {dst}", replace=force)
        pairs.append((os.path.join(tmpdir, name), final))
    _make_folder(directory, dst)
    install_all(pairs, force)


def _make_folder(directory: str, path: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise DestinationError(f"cannot make the directory '{directory}' ({exc.strerror or exc})", path=path) from None


def _emit_module(model, emit_module, dst: str, force: bool, make_dirs: bool, report) -> None:
    """--emit-module: a standalone PyTorch module file that loads DST."""
    from ..formats.torch import write_module
    if make_dirs:
        _make_folder(os.path.dirname(os.path.abspath(emit_module)), emit_module)
    write_module(model, emit_module, weights=os.path.basename(dst), force=force)
    report.notes.append(f"wrote {emit_module}: a standalone PyTorch module that loads {dst}")


def _emit_vectors(directory, report, info, suite, expected, src_model, model, force):
    """Vectors for the file `info` describes, in that model's own layout."""
    suite = [(label, _relayout(x, src_model, model)) for label, x in suite]
    expected = [_relayout(y, src_model, model) for y in expected]
    path = vectors.emit(directory, info, suite, expected, report.tolerance, report.seed, force=force)
    report.vectors = {"path": path, "role": "written"}
