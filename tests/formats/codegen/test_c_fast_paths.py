"""The generated C's fast paths: built as a user building for speed would (gcc -O3 -march=native, fmaf
and the vectorized loops), and with -DRNNC_USE_CBLAS against OpenBLAS, each run on fixtures against the
framework's own predictions and on tail sizes (units not a multiple of the register blocks, steps not a
multiple of 4) against onnxruntime; plus the source's structure: one input projection per layer and
direction over the whole sequence, no libm tanhf/expf in the recurrent steps.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES, Case, cases
from rnnconvert.formats.codegen import c as cgen
from rnnconvert.formats.onnx import runtime as ort_runtime
from rnnconvert.model import (SIGMOID, TANH, Activation, Dense, DirectionWeights, InputSpec, Model, Recurrent)

GCC = shutil.which("gcc")
FAST = ("-O3", "-march=native")
CBLAS = ("-O2", "-DRNNC_USE_CBLAS")
TOL = 1e-5
NAMES = ["keras3/gru_reset_before_last", "keras3/gru_reset_after_seq", "keras3/bilstm_concat_last",
         "keras3/embed_mask_bilstm_seq", "keras3/simplernn_tanh_seq", "keras3/lstm_last_softmax",
         "torch/lstm_proj_linear", "torch/gru_linear", "torch_onnx/lstm_initial_state_expand"]
ALL = {f"{c.origin}/{c.name}": c for c in cases("keras3", suffixes=(".keras",)) + cases("torch", suffixes=(".pt",))
       + cases("torch_onnx", suffixes=(".onnx",))}
PICKED = [ALL[n] for n in NAMES]

pytestmark = pytest.mark.skipif(GCC is None, reason="gcc not installed")


def _has_cblas() -> bool:
    if GCC is None:
        return False
    res = subprocess.run([GCC, "-x", "c", "-", "-o", os.devnull, "-lopenblas"], input="#include <cblas.h>\n"
                         "int main(void) { float x = 1.0f; return (int)cblas_sdot(1, &x, 1, &x, 1) - 1; }\n",
                         capture_output=True, text=True)
    return res.returncode == 0


def _need_cblas():
    if not _has_cblas():
        if os.environ.get("CI"):
            pytest.fail("no cblas.h / -lopenblas: .ci/run installs libopenblas-dev")
        pytest.skip("no cblas.h / -lopenblas (apt-get install libopenblas-dev)")


def _read(case: Case):
    arch = case.folder / "arch.json"
    return rnnconvert.read(case.path, **({"arch": str(arch)} if arch.exists() else {}))


def _against_framework(case, tmp_path, flags, libs=()):
    model = _read(case)
    path = tmp_path / "net.c"
    cgen.write(model, path)
    for key, x, y in case.io():
        np.testing.assert_allclose(cgen.run(path, x, model, flags=flags, libs=libs), y, atol=TOL, rtol=0,
                                   err_msg=f"{case.origin}/{case.name} [{key}] {' '.join(flags)}")


@pytest.mark.parametrize("case", PICKED, ids=NAMES)
def test_c_built_for_speed_matches_the_framework(case, tmp_path):
    _against_framework(case, tmp_path, FAST)


@pytest.mark.parametrize("case", PICKED[:4], ids=NAMES[:4])
def test_c_on_cblas_matches_the_framework(case, tmp_path):
    _need_cblas()
    _against_framework(case, tmp_path, CBLAS, ("-lopenblas",))


@pytest.mark.parametrize("case", [PICKED[0]] + [pytest.param(c, marks=pytest.mark.slow) for c in PICKED[1:3]],
                         ids=NAMES[:3])
def test_golden_program_built_for_speed_passes(case, tmp_path):
    """predict and, where generated, step one step at a time, at -O3 -march=native and on cblas."""
    model = _read(case)
    path = tmp_path / "net.c"
    cgen.write(model, path, emit_test=True)
    builds = [(FAST, ())] + ([(CBLAS, ("-lopenblas",))] if _has_cblas() else [])
    for flags, libs in builds:
        exe = tmp_path / "golden"
        subprocess.run([GCC, *cgen.CFLAGS, *flags, str(path), str(tmp_path / "net_test.c"), "-o", str(exe),
                        *libs, "-lm"], check=True)
        res = subprocess.run([str(exe)], capture_output=True, text=True)
        assert res.returncode == 0 and res.stdout.strip() == "ok", (flags, res.stdout)


def _model(cell: str, H: int, direction: str, F: int = 7, seed: int = 3) -> Model:
    rng = np.random.default_rng(seed)
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    ws = []
    for _ in range(2 if direction == "bidirectional" else 1):
        ws.append(DirectionWeights(rng.normal(0, 0.6, (G * H, F)), rng.normal(0, 0.5, (G * H, H)),
                                   rng.normal(0, 0.3, G * H), rng.normal(0, 0.3, G * H),
                                   h0=rng.normal(0, 0.5, (3, H)), c0=rng.normal(0, 0.5, (3, H)) if cell == "lstm" else None))
    acts = {"lstm": [SIGMOID, TANH, TANH], "gru": [SIGMOID, TANH], "rnn": [TANH]}[cell]
    width = 2 * H if direction == "bidirectional" else H
    layers = [Recurrent("rec", cell, H, direction, ws, acts, output="sequence", reset_after=H % 2 == 1),
              Dense("head", rng.normal(0, 0.5, (width, 3)), rng.normal(0, 0.1, 3), Activation("linear"))]
    for layer in layers:      # float32 weights: both runtimes compute with exactly these
        for owner in getattr(layer, "weights", [layer]):
            for key in ("W", "R", "Wb", "Rb", "h0", "c0", "kernel", "bias"):
                if getattr(owner, key, None) is not None:
                    setattr(owner, key, np.asarray(getattr(owner, key), np.float32))
    return Model(layers, InputSpec(features=F), name=f"{cell}{H}")


@pytest.mark.parametrize("cell,H,direction", [("lstm", 5, "forward"), ("lstm", 70, "bidirectional"),
                                              ("gru", 37, "reverse"), ("gru", 70, "forward"),
                                              ("rnn", 33, "bidirectional")])
def test_tail_sizes_match_onnxruntime(cell, H, direction, tmp_path):
    """H from 5 to 70 leaves columns past the 32/64-column register blocks; 1, 3, 6 and 9 steps leave
    rows past gemm_'s 4-step blocks; batch 3 with per-row initial states and saturating inputs."""
    pytest.importorskip("onnxruntime")
    model = _model(cell, H, direction)
    rnnconvert.write(model, tmp_path / "m.onnx")
    cgen.write(model, tmp_path / "m.c")
    rng = np.random.default_rng(5)
    for T in (1, 3, 6, 9):
        x = (rng.standard_normal((3, T, model.input.features)) * (8.0 if T == 6 else 1.0)).astype(np.float32)
        want = ort_runtime.run(tmp_path / "m.onnx", x, model)
        got = cgen.run(tmp_path / "m.c", x, model, flags=FAST)
        np.testing.assert_allclose(got, want, atol=TOL, rtol=TOL, err_msg=f"{cell} H={H} {direction} T={T}")


def test_predict_projects_each_sequence_once_and_steps_call_no_libm(tmp_path):
    model = _model("lstm", 70, "bidirectional")
    cgen.write(model, tmp_path / "m.c", prefix="m")
    src = (tmp_path / "m.c").read_text()
    predict = src[src.index("int m_predict_row("):]
    assert re.findall(r"m_l0[fr]_proj\([^;]*;", predict) == ["m_l0f_proj(cur, n, gin);", "m_l0r_proj(cur, n, gin);"]
    steps = re.findall(r"static void m_l0[fr]_step\(.*?\n}\n", src, re.S)
    assert len(steps) == 2 and all("gemv_(" in s for s in steps)
    assert not re.search(r"\b(tanhf|expf)\(", "".join(steps)), steps
    assert "tanhf(" not in src and "cblas_sgemm(" in src and "cblas_sgemv(" in src


def test_stream_step_holds_a_head_wider_than_every_sequence(tmp_path):
    """A last-step LSTM on 1 feature under a Dense(9) (a published text generator's shape: LSTM(256) on 1
    feature, Dense(58)): the step's buffers were sized by the widest sequence (1), and the Dense wrote 9
    floats into a 1-float stack array (gcc -O2 -Werror=array-bounds refused the file)."""
    rng = np.random.default_rng(2)
    w = DirectionWeights(*(np.asarray(a, np.float32) for a in (rng.normal(0, 0.5, (16, 1)), rng.normal(0, 0.5, (16, 4)),
                                                                rng.normal(0, 0.2, 16), rng.normal(0, 0.2, 16))))
    model = Model([Recurrent("lstm", "lstm", 4, "forward", [w], [SIGMOID, TANH, TANH], output="final_state"),
                   Dense("head", rng.normal(0, 0.5, (4, 9)).astype(np.float32), np.zeros(9, np.float32),
                         Activation("linear"))], InputSpec(features=1), name="wide_head")
    cgen.write(model, tmp_path / "m.c", emit_test=True)
    assert "float buf0[9], buf1[9];" in (tmp_path / "m.c").read_text()
    for flags in (("-O2",), FAST):
        exe = tmp_path / "golden"
        subprocess.run([GCC, *cgen.CFLAGS, *flags, str(tmp_path / "m.c"), str(tmp_path / "m_test.c"), "-o", str(exe),
                        "-lm"], check=True)
        res = subprocess.run([str(exe)], capture_output=True, text=True)
        assert res.returncode == 0 and res.stdout.strip() == "ok", res.stdout
    pytest.importorskip("onnxruntime")
    rnnconvert.write(model, tmp_path / "m.onnx")
    x = np.random.default_rng(3).standard_normal((2, 5, 1)).astype(np.float32)
    np.testing.assert_allclose(cgen.run(tmp_path / "m.c", x, model), ort_runtime.run(tmp_path / "m.onnx", x, model),
                               atol=TOL, rtol=TOL)


def test_fixture_folder_is_there():
    assert (FIXTURES / "keras3").is_dir() and len(PICKED) == len(NAMES)
