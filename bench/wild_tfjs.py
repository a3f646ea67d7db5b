"""bench/wild.py's `.tfjs` column: a `convert` case's whole model written as a TF.js layers model and run by
@tensorflow/tfjs under Node on x.npy, against y.npy under the project's tolerance (the same as the ONNX
column's), importing rnnconvert's layer classes written beside it where the model names them (a GRU with
reset_after=True, initial states, masks).  Not a verdict of the row: a refusal naming the layer is an
answer; a crash (an exception that is not rnnconvert's) is one."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def tfjs_column(row: dict, folder: Path, path: Path, crash) -> None:
    """row["tfjs"]: 'ok 3e-07', 'EXCEEDS 0.2', 'refused: ...', 'not run: ...'; row["tfjs_within"]."""
    import rnnconvert
    from rnnconvert.errors import RnnConvertError, RuntimeUnavailable
    from rnnconvert.formats.tfjs import runtime
    from rnnconvert.verification.checks import TOLERANCES, compare
    x_path, y_path = folder / "x.npy", folder / "y.npy"
    if not (x_path.exists() and y_path.exists()):
        row["tfjs"] = "no y"
        return
    with tempfile.TemporaryDirectory() as d:
        dst = Path(d) / "model.json"
        try:
            model = rnnconvert.read(path)
            rnnconvert.write(model, dst)
            out = runtime.run(dst, np.load(x_path), model)
            check = compare(out, np.load(y_path), TOLERANCES["float32"], "tfjs", "x.npy")
            row["tfjs_within"] = check.passed
            row["tfjs"] = f"{'ok' if check.passed else 'EXCEEDS'} {check.max_abs:.1g}"
        except RuntimeUnavailable as exc:
            row["tfjs"] = f"not run: {exc}"
        except RnnConvertError as exc:
            row["tfjs"] = f"refused: {exc.message.splitlines()[0]}"
        except Exception as exc:  # noqa: BLE001 - a crash is what the wild run exists to find
            row["tfjs"] = crash(row, "tfjs", exc)


def summary(rows) -> str:
    """'tfjs: 7/9 convert cases within tolerance, 2 refused' for the totals line."""
    cases = [r for r in rows if r.get("tfjs")]
    within = sum(bool(r.get("tfjs_within")) for r in cases)
    refused = sum(r["tfjs"].startswith("refused") for r in cases)
    return f"; .tfjs {within}/{len(cases)} convert cases within tolerance, {refused} refused"
