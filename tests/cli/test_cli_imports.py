"""What a fresh process imports: `import rnnconvert.cli` and a Keras -> ONNX conversion load only what they use.

`import onnx` runs onnx/__init__.py, which imports onnx.helper -> ml_dtypes (~0.6 s of a fresh process);
the ONNX format reads and writes through `formats/onnx/lite.py` instead.  Each case runs in a subprocess
and prints the heavy top-level packages present in sys.modules afterwards.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "fixtures" / "keras3" / "lstm_hard_sigmoid" / "model.h5"
HEAVY = ("numpy", "h5py", "onnx", "ml_dtypes", "onnxruntime", "scipy", "torch", "keras", "tensorflow")


def _loaded(code: str, *args) -> list[str]:
    code += f"\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "torch"})
    assert res.returncode == 0, res.stderr
    return eval(res.stdout.splitlines()[-1])        # a list of names this test printed


CONVERT = ("import sys\nfrom rnnconvert.cli import main\nsys.argv = ['rnnconvert', *sys.argv[1:]]\n"
           "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n")


def test_importing_the_cli_loads_no_heavy_package():
    assert _loaded("import sys\nimport rnnconvert.cli") == []


def test_keras_to_onnx_without_verification_imports_neither_onnx_nor_a_framework(tmp_path):
    dst = tmp_path / "m.onnx"
    assert _loaded(CONVERT, str(SOURCE), str(dst), "--no-verify") == ["h5py", "numpy"]
    import onnx
    onnx.checker.check_model(onnx.load(str(dst)), full_check=True)       # onnx itself accepts the file


def test_keras_to_onnx_verified_runs_onnxruntime_without_importing_onnx(tmp_path):
    dst = tmp_path / "m.onnx"
    assert _loaded(CONVERT, str(SOURCE), str(dst)) == ["h5py", "numpy", "onnxruntime"]
    assert dst.exists()


@pytest.mark.parametrize("code", ["import rnnconvert.formats.onnx.lite as L\nL.helper.make_tensor",
                                  "import rnnconvert.formats.onnx.lite as L\nL.shape_inference"])
def test_what_lite_does_not_hold_comes_from_onnx(code):
    assert "onnx" in _loaded("import sys\n" + code)


def test_onnx_imported_after_lite_is_whole():
    """lite loads onnx's submodules without the package; onnx imported afterwards works and has them."""
    code = ("import sys\nfrom rnnconvert.formats.onnx import lite\nonnx = lite.full()\n"
            "from onnx import helper, numpy_helper\nimport numpy as np\n"
            "assert onnx.onnx_ml_pb2 is lite.pb and onnx.ModelProto is lite.ModelProto\n"
            "t = numpy_helper.from_array(np.ones(2, np.float32), 'w')\n"
            "g = helper.make_graph([helper.make_node('Relu', ['w'], ['y'])], 'g', [], "
            "[helper.make_tensor_value_info('y', 1, [2])], [t])\n"
            "onnx.checker.check_model(helper.make_model(g), full_check=True)")
    assert "onnx" in _loaded(code)
