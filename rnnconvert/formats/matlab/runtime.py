"""Octave on a written .mat: matlab/rnnconvert_predict.m implements MATLAB's documented layer
equations over the time loop (independently of rnnconvert's reference pass) and runs on the file.
Token ids [batch, time] are fed as MATLAB word indices (id + 1) [batch, time, 1].
v7.3 files are rewritten as v7 for Octave first (Octave does not read MATLAB's HDF5 layout), once for
all the inputs of a verification (`runner`)."""
from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np

from ...files import scratch
from ...errors import RuntimeUnavailable
from ..literals import matlab_str

SCRIPTS = Path(__file__).resolve().parents[3] / "matlab"


def run(path, x, model) -> np.ndarray:
    return runner(path, model)(x)


def runner(path, model):
    """x -> Octave's output; a v7.3 file is rewritten as v7 once for every input (uncompressed: it is
    read once and deleted), in a folder removed with the runner."""
    octave = shutil.which("octave-cli") or shutil.which("octave")
    if octave is None:
        raise RuntimeUnavailable("octave is not installed (apt-get install octave)")
    if not (SCRIPTS / "rnnconvert_predict.m").is_file():
        raise RuntimeUnavailable(f"matlab/rnnconvert_predict.m not found next to the package ({SCRIPTS})")
    from . import mcos
    tmp = tempfile.mkdtemp(prefix="rnnconvert_octave_")
    src = str(path)
    try:
        if mcos.is_v73(src):
            src = os.path.join(tmp, "net_v7.mat")
            v73_to_v7(str(path), src)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    def run_one(x) -> np.ndarray:
        return _predict(octave, src, tmp, x, model)
    weakref.finalize(run_one, shutil.rmtree, tmp, True)
    return run_one


def _predict(octave, src, tmp, x, model) -> np.ndarray:
    import scipy.io
    x = np.asarray(x, dtype=np.float64)
    if model is not None and model.input.layout == "time_batch_feature":
        x = np.swapaxes(x, 0, 1)
    if model is not None and model.layers and model.layers[0].kind == "embedding":
        x = (x if x.ndim == 3 else x[..., None]) + 1.0      # MATLAB word indices are token ids + 1
    xin, yout = os.path.join(tmp, "x.mat"), os.path.join(tmp, "y.mat")
    for f in (xin, yout):
        if os.path.exists(f):
            os.remove(f)
    scipy.io.savemat(xin, {"X": x})
    code = (f"addpath({matlab_str(SCRIPTS)}); S = load({matlab_str(os.path.abspath(src))}); I = load({matlab_str(xin)}); "
            f"[Y, seq] = rnnconvert_predict(S.layers, I.X); save('-v7', {matlab_str(yout)}, 'Y', 'seq');")
    proc = scratch.run([octave, "--no-gui", "--quiet", "--norc", "--eval", code], timeout=600)
    if proc.returncode != 0 or not os.path.exists(yout):
        var = (getattr(model, "source", None) or {}).get("variable", "layers")
        held = "" if var == "layers" else f" (the file holds '{var}', not the 'layers' cell rnnconvert writes)"
        raise RuntimeError(f"Octave cannot run this file: {octave_error(proc.stderr, proc.returncode)}{held}")
    out = scipy.io.loadmat(yout)
    y, sequence = out["Y"], bool(out["seq"].reshape(-1)[0])
    if sequence and y.ndim == 2:
        y = y[:, :, None]              # MATLAB drops a trailing singleton dimension
    if y.ndim == 3 and model is not None and model.input.layout == "time_batch_feature":
        y = y.transpose(1, 0, 2)
    return y


def octave_error(stderr: str, returncode) -> str:
    """Octave's error (several lines: the error, then 'error: called from' and the stack) as its first line."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    first = next((line for line in lines if line.startswith("error:")), lines[-1] if lines else "")
    return first.removeprefix("error:").strip() or f"exit status {returncode}"


def v73_to_v7(src: str, dst: str, compress: bool = False) -> None:
    """Rewrite a v7.3 `layers` file as v7 (what Octave loads); uncompressed unless `compress`."""
    import scipy.io
    from . import mcos
    variables = mcos.load(src)
    out = {}
    for name, value in variables.items():
        out[name] = _to_scipy(value)
    scipy.io.savemat(dst, out, do_compression=compress, oned_as="column")


def _to_scipy(v):
    if isinstance(v, list):
        cell = np.empty((len(v), 1), dtype=object)
        for k, x in enumerate(v):
            cell[k, 0] = _to_scipy(x)
        return cell
    if isinstance(v, dict):
        return {k: _to_scipy(x) for k, x in v.items()}
    return v
