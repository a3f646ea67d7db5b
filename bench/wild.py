"""rnnconvert over real published models: `python bench/wild.py [WILD_DIR]` (default ../shared/wild).

Each case folder holds a model file, `x.npy` (inputs), `y.npy` (the original framework's
predictions, where known) and `case.json`; y is compared under the project's one tolerance policy
(atol 1e-4 + rtol 1e-4 * |y|); the folder's README table says what a user expects:
`convert` (the whole model converts and predicts y), `layers` (its recurrent layers are listed and
convert one by one; the whole model is refused cleanly or converts), `refuse` (a clean refusal, or a
conversion that predicts y: a Loop or unrolled cell lifted into a native layer).
Each row: what `inspect` found (the whole model's layers when it reads, and every recurrent layer
`--layer` takes), the whole model converted to ONNX with its max error against y in onnxruntime, and
every recurrent layer converted on its own with `--layer` (verified or not; for ONNX sources the
error of onnxruntime running the node cut out of the source graph), and for `convert` cases the
model written as TF.js and run by @tensorflow/tfjs against y (`wild_tfjs.py`; not part of `ok`); an ONNX
model refused whole is also rewritten with `convert --in-place` (its line says how; not part of a case's
expectation).  A `layers` case passes when
every recurrent layer is listed and converts, and the whole model is refused (exit 2) or converts
and verifies.  Prints the totals; `--check` exits 1 when any case misses its expectation or crashes
(an uncaught exception anywhere is a crash: rnnconvert must answer bad or unsupported files with its
own errors).  Never copies anything from the wild folder.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wild_tfjs import summary as tfjs_summary, tfjs_column  # noqa: E402

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


def _crash(row: dict, where: str, exc: BaseException) -> str:
    row.setdefault("trace", "")
    row["trace"] += f"[{where}]\n" + traceback.format_exc()
    return f"CRASH {type(exc).__name__}: {first_line(exc)}"


def whole_model(row: dict, folder: Path, path: Path) -> None:
    """The whole model -> ONNX, verified, and compared with y.npy in onnxruntime."""
    import rnnconvert
    from rnnconvert.errors import RnnConvertError
    y_path, x_path = folder / "y.npy", folder / "x.npy"
    with tempfile.TemporaryDirectory() as d:
        dst = Path(d) / "model.onnx"
        try:
            rnnconvert.convert(path, dst)
            row["whole_status"] = "converted"
            if x_path.exists() and y_path.exists():
                from rnnconvert.formats.onnx import run
                from rnnconvert.verification.checks import TOLERANCES, compare
                x, y = np.load(x_path), np.load(y_path)
                check = compare(run(dst, x, rnnconvert.read(dst)), y, TOLERANCES["float32"], "onnxruntime", "x.npy")
                row["error"], row["within"] = check.max_abs, check.passed
                row["whole"] = f"onnxruntime max abs err {check.max_abs:.2g} (rel {check.max_rel:.2g})" + \
                    ("" if check.passed else " exceeds tolerance") + \
                    (f" {check.input}" if "shape" in check.input else "")
            else:
                row["whole"] = "converted (no y to compare)"
        except RnnConvertError as exc:
            row["whole_status"] = f"exit {exc.exit_code}"
            row["whole"] = f"refused (exit {exc.exit_code}): {first_line(exc)}"
            if path.suffix.lower() == ".onnx" and exc.exit_code == 2:
                in_place(row, folder, path, Path(d) / "in_place.onnx")
        except Exception as exc:  # noqa: BLE001 - a crash is what this script exists to find
            row["whole_status"] = "crash"
            row["whole"] = _crash(row, "whole model", exc)


def in_place(row: dict, folder: Path, path: Path, dst: Path) -> None:
    """An ONNX graph refused whole, rewritten with convert --in-place (verified by onnxruntime on both graphs, on
    the case's x.npz when it has one, which also decides its If nodes, or its x.npy as the first graph input), its
    first output compared with y.npy."""
    import rnnconvert
    from rnnconvert.errors import RnnConvertError
    given = dict(np.load(folder / "x.npz")) if (folder / "x.npz").exists() else \
        np.load(folder / "x.npy") if (folder / "x.npy").exists() else None      # x.npy: the first graph input
    try:
        report = rnnconvert.convert(path, dst, in_place=True, inputs=given)
        row["in_place"] = report.passed
        row["in_place_note"] = f"in place: rewritten, max err {max(c.max_abs for c in report.checks):.1g}"
        if given is not None and (folder / "y.npy").exists():
            import onnxruntime as ort
            sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
            feeds = given if isinstance(given, dict) else {sess.get_inputs()[0].name: given}
            y = sess.run(None, feeds)[0]
            err = float(np.max(np.abs(y - np.load(folder / "y.npy"))))
            row["in_place"] = row["in_place"] and err <= 1e-4
            row["in_place_note"] += f"; first output vs y.npy {err:.1g}"
    except RnnConvertError as exc:
        row["in_place"] = False
        row["in_place_note"] = f"in place: exit {exc.exit_code}: {first_line(exc)}"
    except Exception as exc:  # noqa: BLE001
        row["in_place"] = False
        row["in_place_note"] = _crash(row, "in place", exc)


def per_layer(row: dict, path: Path, scan) -> None:
    """Each recurrent layer with --layer to ONNX: verified, and for ONNX sources the node check."""
    import rnnconvert
    from rnnconvert.errors import RnnConvertError
    results = []
    for found in scan.layers:
        if found.group:
            continue
        r = {"name": found.name, "kind": found.kind, "verified": False, "node_error": None, "message": ""}
        with tempfile.TemporaryDirectory() as d:
            try:
                report = rnnconvert.convert(path, Path(d) / "layer.onnx", layer=found.name)
                r["verified"] = report.passed
                node = [c.max_abs for c in report.checks if c.oracle == "onnxruntime(src node)"]
                r["node_error"] = max(node) if node else None
            except RnnConvertError as exc:
                r["message"] = f"exit {exc.exit_code}: {first_line(exc)}"
            except Exception as exc:  # noqa: BLE001
                r["message"] = _crash(row, f"layer {found.name}", exc)
        results.append(r)
    row["per_layer"] = results
    row["layers"] = " ".join(
        f"{r['name']}:{'ok' if r['verified'] else 'NO'}" + (f"(node {r['node_error']:.1g})" if r["node_error"] is not None
                                                           else "") for r in results) or "none found"


def run_case(folder: Path, expect: str) -> dict:
    from rnnconvert.formats import per_layer as select
    from rnnconvert.errors import RnnConvertError
    row = {"case": folder.name, "expect": expect, "found": "", "whole": "", "whole_status": "", "error": None,
           "layers": "-", "per_layer": [], "ok": False}
    path = model_file(folder)
    if path is None:
        row["whole"] = "no model file"
        return row
    scan = None
    try:
        scan = select.scan(path)
        found = [f"{f.name}({f.kind}{',bi' if f.bidirectional else ''})" for f in scan.layers if not f.group]
        row["found"] = " ".join(found) or "no recurrent layer"
        if scan.whole is not None:
            row["found"] = "whole: " + ", ".join(layer.kind for layer in scan.whole.layers) + "; " + row["found"]
    except RnnConvertError as exc:
        row["found"] = f"refused: {first_line(exc)}"
    except Exception as exc:  # noqa: BLE001
        row["found"] = _crash(row, "scan", exc)
    whole_model(row, folder, path)
    if expect == "convert":
        tfjs_column(row, folder, path, _crash)
        try:
            from bench.wild_tflite import tflite_column
        except ImportError:                # run as a script: bench/ is on the path
            from wild_tflite import tflite_column
        tflite_column(row, folder, path)
    if scan is not None:
        per_layer(row, path, scan)
    crashed = "trace" in row
    converted = bool(row.get("within"))
    refused = row["whole_status"] == "exit 2"
    layers_ok = bool(row["per_layer"]) and all(r["verified"] for r in row["per_layer"])
    verified = row["whole_status"] == "converted"
    # the wild README: a recurrence written as a Loop or unrolled cell that converts and predicts y meets a
    # `refuse` too (better than a refusal); one whose model, layers or in-place rewrite now converts goes
    # beyond it (counted apart)
    row["ok"] = not crashed and {"convert": converted, "refuse": refused or converted,
                                 "layers": layers_ok and (refused or verified)}.get(expect, False)
    row["beyond"] = row["ok"] and expect == "refuse" and (converted or layers_ok or row.get("in_place", False))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/wild.py")
    ap.add_argument("wild", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared" / "wild"))
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    ap.add_argument("--traces", action="store_true", help="print the traceback of every crash")
    ap.add_argument("--check", action="store_true", help="exit 1 unless every case meets its expectation")
    args = ap.parse_args(argv)
    wild = Path(args.wild)
    if not wild.is_dir():
        print(f"no wild folder at {wild}", file=sys.stderr)
        return 2
    expect = expectations(wild)
    rows = [run_case(f, expect.get(f.name, "?")) for f in sorted(wild.iterdir()) if f.is_dir()]
    w = max(len(r["case"]) for r in rows)
    print(f"{'case':<{w}}  {'expect':<7} {'ok':<4} {'inspect found':<40}  {'whole model -> ONNX':<60}  "
          "per layer -> ONNX (--layer)  .tfjs")
    for r in rows:
        found = r["found"] if len(r["found"]) <= 40 else r["found"][:37] + "..."
        whole = r["whole"] if len(r["whole"]) <= 60 else r["whole"][:57] + "..."
        print(f"{r['case']:<{w}}  {r['expect']:<7} {'yes' if r['ok'] else 'NO':<4} {found:<40}  {whole:<60}  "
              f"{r['layers']}  {r.get('tfjs', '-')}")
        if r.get("tflite"):
            print(f"{'':<{w}}    .tflite: {r['tflite'][:160]}")
        if "in_place_note" in r:
            print(f"{'':<{w}}    {r['in_place_note'][:160]}")
        for p in r["per_layer"]:
            if p["message"]:
                print(f"{'':<{w}}    layer {p['name']}: {p['message'][:160]}")
        if args.traces and "trace" in r:
            print(r["trace"])
    by = {}
    for r in rows:
        by.setdefault(r["expect"], [0, 0])
        by[r["expect"]][0] += r["ok"]
        by[r["expect"]][1] += 1
    crashes = sum("trace" in r for r in rows)
    n_layers = sum(len(r["per_layer"]) for r in rows)
    n_verified = sum(p["verified"] for r in rows for p in r["per_layer"])
    node = [p["node_error"] for r in rows for p in r["per_layer"] if p["node_error"] is not None]
    print("totals: " + ", ".join(f"{k} {ok}/{n}" for k, (ok, n) in sorted(by.items()))
          + f"; all {sum(r['ok'] for r in rows)}/{len(rows)}; per layer {n_verified}/{n_layers} verified"
          + (f" ({len(node)} ONNX node checks, max error {max(node):.2g})" if node else "") + tfjs_summary(rows)
          + f"; .tflite {sum(r.get('tflite_ok', False) for r in rows)}/{sum('tflite' in r for r in rows)} of the "
          "convert cases predict y in LiteRT"
          + (f"; ONNX refused whole, rewritten --in-place {sum(r['in_place'] for r in tried)}/{len(tried)}"
             if (tried := [r for r in rows if "in_place" in r]) else "") + f"; crashes {crashes}"
          + f"; refuse cases whose model or layers now convert, or rewrite --in-place, "
            f"{sum(r.get('beyond', False) for r in rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if k != "trace"} for r in rows], indent=1))
    return 1 if args.check and not all(r["ok"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
