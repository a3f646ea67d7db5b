"""Regenerate the pictures under docs/pictures/ (the README shows them): `inspect --plot` of five kinds of
layer, and `--report-html` pages of a passing, a failing, a long-sequence conversion and a batch plan.

    KERAS_BACKEND=torch python docs/make_pictures.py [--only layouts|reports]

Every model is a committed fixture made by its real framework, or made here by the real framework
(seed 001's Keras LSTM(2) with the weights the question prints; a 1024-unit Keras 3 LSTM; a MATLAB
BiLSTM written by rnnconvert from a tf.keras fixture and checked by Octave).  Needs keras 3 and cairosvg
(for the PNG copies).  Models made here go to a temporary folder, never into the repository.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "pictures"
FIX = ROOT / "fixtures"

# Seed 001 (a Keras user asking what LSTM(2)'s weight matrices are): the weights the question prints.
SEED001 = [
    [[0.11056691, 0.03153521, -0.78214532, 0.04079598, 0.32587671, 0.72789955, 0.58123612, -0.57094401]],
    [[-0.16277026, -0.43958429, 0.30112407, 0.07443386, 0.70584315, 0.17196879, -0.14703408, 0.36694485],
     [-0.03672785, -0.55035251, 0.27230391, -0.45381972, -0.06399836, -0.00104597, 0.14719161, -0.62441903]],
    [0., 0., 1., 1., 0., 0., 0., 0.],
]


def rnnconvert(*args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="torch")
    subprocess.run([sys.executable, "-m", "rnnconvert", *args], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL)


def seed001_model(folder: Path) -> Path:
    import keras
    model = keras.Sequential([keras.Input((2, 1)), keras.layers.LSTM(2, name="lstm_1")])
    model.layers[0].set_weights([np.asarray(w, dtype=np.float32) for w in SEED001])
    path = folder / "seed001_lstm2.h5"
    model.save(path)
    return path


def big_model(folder: Path) -> Path:
    import keras
    keras.utils.set_random_seed(1024)
    model = keras.Sequential([keras.Input((None, 16)), keras.layers.LSTM(1024, name="lstm_1024")])
    path = folder / "lstm1024.keras"
    model.save(path)
    return path


def layouts(folder: Path) -> None:
    bilstm_mat = folder / "bilstm.mat"
    rnnconvert("convert", "fixtures/tf2onnx/bilstm_concat_seq/source_model.h5", str(bilstm_mat), "--force")
    cases = {
        "layout_seed001_keras_lstm2": seed001_model(folder),
        "layout_tfkeras_gru": FIX / "tfkeras2" / "gru_reset_after_seq" / "model.h5",
        "layout_matlab_bilstm": bilstm_mat,
        "layout_onnx_bilstm": FIX / "tf2onnx" / "bilstm_concat_seq" / "model.onnx",
        "layout_keras3_lstm1024": big_model(folder),
    }
    for name, path in cases.items():
        rnnconvert("inspect", str(path), "--plot", str(OUT / (name + ".svg")))
        print(f"wrote docs/pictures/{name}.svg")
    rnnconvert("inspect", str(cases["layout_seed001_keras_lstm2"]), "--plot", str(OUT / "layout_seed001_keras_lstm2.png"))
    print("wrote docs/pictures/layout_seed001_keras_lstm2.png (the README's picture)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("layouts", "reports"))
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "layouts"):
            layouts(Path(tmp))
        if args.only in (None, "reports"):
            reports(Path(tmp))


def run_in(folder: Path, *args: str, ok=(0,)) -> None:
    """rnnconvert run in `folder` with relative paths, so the pages name no folder of this machine."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="torch")
    r = subprocess.run([sys.executable, "-m", "rnnconvert", *args], env=env, cwd=folder,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if r.returncode not in ok:
        raise SystemExit(f"rnnconvert {' '.join(args)}: exit {r.returncode}")


def swap_first_two_blocks(onnx_in: Path, onnx_out: Path) -> None:
    """The deliberate error of the failing page: W's first two gate blocks swapped (GRU z and r)."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(onnx_in)
    w = next(i for i in m.graph.initializer if numpy_helper.to_array(i).ndim == 3)
    a = numpy_helper.to_array(w)
    H = a.shape[1] // 3
    w.CopyFrom(numpy_helper.from_array(np.concatenate([a[:, H:2 * H], a[:, :H], a[:, 2 * H:]], axis=1), w.name))
    onnx.save(m, onnx_out)


def screenshot(page: Path, png: Path, size: str) -> None:
    import shutil
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        print("chromium not found: no screenshot of", page.name)
        return
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={png}",
                    f"--window-size={size}", page.resolve().as_uri()], check=True, capture_output=True)


def reports(folder: Path) -> None:
    import shutil
    shutil.copy(FIX / "tfkeras2" / "gru_reset_after_seq" / "model.h5", folder / "gru.h5")
    shutil.copy(FIX / "tfkeras2" / "lstm_last_softmax" / "model.h5", folder / "lstm.h5")
    run_in(folder, "convert", "gru.h5", "gru.onnx", "--force", "--report-html", "passing.html")
    swap_first_two_blocks(folder / "gru.onnx", folder / "gru_swapped.onnx")
    run_in(folder, "verify", "gru.h5", "gru_swapped.onnx", "--report-html", "failing.html", ok=(1,))
    x = np.random.default_rng(3).normal(size=(2, 4001, 4)).astype(np.float32)
    x[1] *= 6
    np.save(folder / "long.npy", x)
    run_in(folder, "convert", "gru.h5", "gru_long.onnx", "--force", "--inputs", "long.npy",
           "--report-html", "long_sequence.html")
    (folder / "plan.yaml").write_text("jobs:\n  - src: gru.h5\n    dst: [out/gru.onnx, out/gru.mat]\n"
                                      "  - src: lstm.h5\n    dst: out/lstm.onnx\n"
                                      "  - src: lstm.h5\n    dst: out/lstm_x.onnx\n    layer: nosuch\n")
    run_in(folder, "batch", "plan.yaml", "--jobs", "1", "--force", "--report-html", "plan.html", ok=(2,))
    for name in ("passing", "failing", "long_sequence"):
        shutil.copy(folder / f"{name}.html", OUT / f"report_{name}.html")
        print(f"wrote docs/pictures/report_{name}.html")
    shutil.rmtree(OUT / "report_plan_pages", ignore_errors=True)
    (OUT / "report_plan_pages").mkdir()
    local = str(folder.resolve()) + os.sep          # batch reports name resolved paths: show them relative
    for page in sorted((folder / "plan_pages").iterdir()):
        (OUT / "report_plan_pages" / page.name).write_text(page.read_text().replace(local, ""))
    (OUT / "report_plan.html").write_text((folder / "plan.html").read_text().replace(local, "")
                                          .replace("plan_pages/", "report_plan_pages/"))
    print("wrote docs/pictures/report_plan.html and report_plan_pages/")
    screenshot(OUT / "report_failing.html", OUT / "report_failing.png", "1280,2300")
    screenshot(OUT / "report_plan.html", OUT / "report_plan.png", "1100,330")
    print("wrote docs/pictures/report_failing.png and report_plan.png")


if __name__ == "__main__":
    main()
