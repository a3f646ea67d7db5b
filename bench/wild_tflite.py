"""bench/wild.py's `.tflite` column: a `convert` case's whole model -> .tflite (verified, LiteRT among the
checks), then LiteRT running the written file on x.npy, compared with y.npy under the project's tolerance.
A refusal is reported as such; an uncaught exception is a crash (bench/wild.py --check fails on it).
Each case runs in its own process (`python bench/wild_tflite.py CASE MODEL` prints the row as JSON), so a
native crash of LiteRT is reported as one for that case and the bench goes on."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np


def tflite_column(row: dict, folder: Path, path: Path) -> None:
    res = subprocess.run([sys.executable, __file__, str(folder), str(path)], capture_output=True, text=True)
    try:
        row.update(json.loads(res.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        row["tflite_ok"] = False
        row.setdefault("trace", "")
        row["trace"] += f"[tflite] exit {res.returncode}\n" + res.stderr[-3000:]
        row["tflite"] = f"CRASH: the process ended with {res.returncode} (a signal when negative)"


def _column(row: dict, folder: Path, path: Path) -> None:
    import rnnconvert
    from rnnconvert.errors import RnnConvertError
    row["tflite_ok"] = False
    x_path, y_path = folder / "x.npy", folder / "y.npy"
    with tempfile.TemporaryDirectory() as d:
        dst = Path(d) / "model.tflite"
        try:
            report = rnnconvert.convert(path, dst)
            forms = " ".join(n.split(": written as ")[1].split(" ")[0].rstrip(";,").replace("a", "WHILE")
                             for n in report.conversion["changed_in_form"]
                             if ": written as " in n)
            if not (x_path.exists() and y_path.exists()):
                row["tflite"] = f"converted, no y ({forms})"
                return
            from rnnconvert.formats.tflite import run
            from rnnconvert.verification.checks import TOLERANCES, compare
            x, y = np.load(x_path), np.load(y_path)
            check = compare(run(dst, x, rnnconvert.read(dst)), y, TOLERANCES["float32"], "litert", "x.npy")
            row["tflite_ok"] = check.passed
            row["tflite"] = f"litert max abs err {check.max_abs:.2g}" + ("" if check.passed else " exceeds") + \
                (f" ({forms})" if forms else "")
        except RnnConvertError as exc:
            row["tflite"] = f"refused (exit {exc.exit_code}): {str(exc).splitlines()[0]}"
        except Exception as exc:  # noqa: BLE001 - a crash is what the bench exists to find
            row.setdefault("trace", "")
            row["trace"] += "[tflite]\n" + traceback.format_exc()
            row["tflite"] = f"CRASH {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


if __name__ == "__main__":
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    out: dict = {}
    _column(out, Path(sys.argv[1]), Path(sys.argv[2]))
    print(json.dumps(out))
