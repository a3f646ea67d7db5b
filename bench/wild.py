"""rnnconvert over real published models: `python bench/wild.py [WILD_DIR]` (default ../shared/wild).

Each case folder holds a model file, `x.npy` (inputs), `y.npy` (the original framework's
predictions, where known) and `case.json`; y is compared under the project's one tolerance policy
(atol 1e-4 + rtol 1e-4 * |y|); the folder's README table says what a user expects:
`convert` (the whole model converts and predicts y), `layers` (its recurrent layers are listed and
convert one by one; the whole model is refused cleanly or converts), `refuse` (a clean refusal).
Prints one row per case and the totals; exits 1 when any case misses its expectation or crashes
(an uncaught exception is a crash: rnnconvert must answer bad or unsupported files with its own
errors).  Never copies anything from the wild folder.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")

MODEL_SUFFIXES = (".h5", ".hdf5", ".keras", ".onnx", ".pt", ".pth", ".mat", ".safetensors")


def expectations(wild: Path) -> dict[str, str]:
    """case name -> expect, from the README's table (| case | file | made by | contents | expect | y |)."""
    out = {}
    readme = wild / "README.md"
    if readme.exists():
        for line in readme.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 6 and cells[4] in ("convert", "layers", "refuse"):
                out[cells[0]] = cells[4]
    return out


def model_file(folder: Path) -> Path | None:
    files = [f for f in sorted(folder.iterdir()) if f.suffix.lower() in MODEL_SUFFIXES]
    return files[0] if files else None


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def run_case(folder: Path, expect: str) -> dict:
    import rnnconvert
    from rnnconvert.errors import RnnConvertError
    row = {"case": folder.name, "expect": expect, "found": "", "whole": "", "error": None,
           "layers": "-", "ok": False}
    path = model_file(folder)
    if path is None:
        row["whole"] = "no model file"
        return row
    try:
        model = rnnconvert.read(path)
        row["found"] = ", ".join(f"{layer.kind}" + ("(bi)" if getattr(layer, "direction", "") == "bidirectional"
                                                     else "") for layer in model.layers)
    except RnnConvertError as exc:
        row["found"] = f"refused: {first_line(exc)}"
        model = None
    except Exception as exc:  # noqa: BLE001 - a crash is what this script exists to find
        row["found"] = f"CRASH {type(exc).__name__}: {first_line(exc)}"
        row["trace"] = traceback.format_exc()
        return row
    y_path, x_path = folder / "y.npy", folder / "x.npy"
    if model is not None:
        with tempfile.TemporaryDirectory() as d:
            dst = Path(d) / "model.onnx"
            try:
                rnnconvert.convert(path, dst)
                if x_path.exists() and y_path.exists():
                    from rnnconvert.formats.onnx import run
                    from rnnconvert.verification import TOLERANCES, compare
                    x, y = np.load(x_path), np.load(y_path)
                    check = compare(run(dst, x, rnnconvert.read(dst)), y, TOLERANCES["float32"], "onnxruntime", "x.npy")
                    row["error"], row["within"] = check.max_abs, check.passed
                    row["whole"] = f"onnxruntime max abs err {check.max_abs:.2g} (rel {check.max_rel:.2g})" + \
                        ("" if check.passed else " exceeds tolerance") + \
                        (f" {check.input}" if "shape" in check.input else "")
                else:
                    row["whole"] = "converted (no y to compare)"
            except RnnConvertError as exc:
                row["whole"] = f"refused: {first_line(exc)}"
            except Exception as exc:  # noqa: BLE001
                row["whole"] = f"CRASH {type(exc).__name__}: {first_line(exc)}"
                row["trace"] = traceback.format_exc()
    else:
        row["whole"] = "refused (see found)"
    crashed = "CRASH" in row["found"] + row["whole"]
    converted = bool(row.get("within"))
    refused = row["whole"].startswith("refused")
    row["ok"] = not crashed and {"convert": converted, "refuse": refused,
                                 "layers": converted or refused}.get(expect, False)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/wild.py")
    ap.add_argument("wild", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared" / "wild"))
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    ap.add_argument("--traces", action="store_true", help="print the traceback of every crash")
    args = ap.parse_args(argv)
    wild = Path(args.wild)
    if not wild.is_dir():
        print(f"no wild folder at {wild}", file=sys.stderr)
        return 2
    expect = expectations(wild)
    rows = [run_case(f, expect.get(f.name, "?")) for f in sorted(wild.iterdir()) if f.is_dir()]
    w = max(len(r["case"]) for r in rows)
    print(f"{'case':<{w}}  {'expect':<7} {'ok':<4} {'inspect found':<40}  whole model -> ONNX")
    for r in rows:
        found = r["found"] if len(r["found"]) <= 40 else r["found"][:37] + "..."
        print(f"{r['case']:<{w}}  {r['expect']:<7} {'yes' if r['ok'] else 'NO':<4} {found:<40}  {r['whole'][:110]}")
        if args.traces and "trace" in r:
            print(r["trace"])
    by = {}
    for r in rows:
        by.setdefault(r["expect"], [0, 0])
        by[r["expect"]][0] += r["ok"]
        by[r["expect"]][1] += 1
    crashes = sum("CRASH" in r["found"] + r["whole"] for r in rows)
    print("totals: " + ", ".join(f"{k} {ok}/{n}" for k, (ok, n) in sorted(by.items()))
          + f"; all {sum(r['ok'] for r in rows)}/{len(rows)}; crashes {crashes}")
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if k != "trace"} for r in rows], indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
