"""Hostile JSON, YAML, PyTorch, safetensors and .rnnc files (built by tests/hostile_containers.py) through
the CLI in a subprocess with an address-space limit and a timeout: each ends in exit 2 with its one line,
or in a clean result, in bounded time and memory (issue 21)."""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import FIXTURES, ROOT
from tests import hostile_containers as H

pytestmark = pytest.mark.slow     # run by .ci/run after the README's test command

MEMORY = 4 << 30          # address space: torch and onnxruntime import in it; 4 GB of views do not fit
TIMEOUT = 120
PT = FIXTURES / "torch" / "gru_linear" / "model.pt"


def _limit():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run(*args, timeout=TIMEOUT, cwd=None):
    """(exit code, stdout, stderr, seconds) of `python -m rnnconvert ARGS` under the limits."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "torch"}
    env.pop("RNNCONVERT_DEBUG", None)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "rnnconvert", *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, preexec_fn=_limit, env=env, cwd=cwd)
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0


def refused(args, path, message, **kw):
    """Exit 2 and one line: the file and the message (word for word, or its start when it ends in '...')."""
    code, out, err, _ = run(*args, **kw)
    assert code == 2, (code, err[-2000:])
    assert err.count("\n") == 1, err[-2000:]
    expected = f"rnnconvert: error: {path}: {message}"
    if message.endswith("..."):
        assert err.startswith(expected[:-3]), err
    else:
        assert err == expected + "\n"


TOO_DEEP = "nests lists or objects 100000 deep, more than the 128 rnnconvert reads"


# ------------------------------------------------------------------------------- JSON too deep

@pytest.mark.parametrize("make, what", [
    (H.make_deep_safetensors, "corrupt safetensors file: the header"),
    (H.make_deep_rnnc, "model.json (the manifest)"),
    (H.make_deep_pt, "rnnconvert metadata in the file"),
    (H.make_deep_st_metadata, "rnnconvert metadata in the file"),
    (H.make_deep_h5, "the 'model_config' attribute"),
    (H.make_deep_keras, "config.json"),
], ids=lambda v: getattr(v, "__name__", "")[5:])
def test_json_nested_100000_deep_is_one_line(tmp_path, make, what):
    path = make(tmp_path)
    refused(["inspect", path], path, f"{what} {TOO_DEEP}")


def test_deep_onnx_metadata_is_ignored_as_foreign(tmp_path):
    path = H.make_deep_onnx_metadata(tmp_path)
    code, out, err, _ = run("inspect", path)
    assert (code, err) == (0, ""), err[-2000:]
    assert "r0" in out


def test_deep_vectors_index(tmp_path):
    folder, model = H.make_deep_vectors(tmp_path), H.make_small_rnnc(tmp_path)
    refused(["verify", model, "--vectors", folder], folder / "vectors.json", f"vectors.json {TOO_DEEP}")


def test_deep_batch_state_is_ignored(tmp_path):
    plan = H.make_deep_state(tmp_path)
    code, out, err, _ = run("batch", plan)
    assert code == 0, err[-2000:]
    assert (plan.parent / "out.onnx").is_file()


# ---------------------------------------------------------------------------- YAML aliases

def test_billion_laughs_plan_is_invalid_to_check(tmp_path):
    plan = H.make_laughs_plan(tmp_path)
    refused(["batch", plan, "--check"], plan, "the plan file uses a YAML anchor '&l0' at line 5; rnnconvert "
            "refuses YAML anchors and aliases (they can expand a small file without bound): write the values out")
    assert not (plan.parent / "out.onnx").exists()


def test_billion_laughs_arch_hints(tmp_path):
    y = H.make_laughs_yaml(tmp_path)
    refused(["inspect", PT, "--arch", y], y, "the architecture hints file uses a YAML anchor '&l0' at line 1; ...")


def test_billion_laughs_mapping(tmp_path):
    import scipy.io
    mat = tmp_path / "bare.mat"
    scipy.io.savemat(str(mat), {"W": np.ones((16, 3))})
    y = H.make_laughs_yaml(tmp_path)
    refused(["inspect", mat, "--mapping", y], y, "the mapping file uses a YAML anchor '&l0' at line 1; ...")


# ------------------------------------------------------------------ bytes made beyond the file

def test_safetensors_entries_on_one_range(tmp_path):
    path = H.make_shared_range_safetensors(tmp_path)
    refused(["inspect", path], path, "corrupt safetensors header: 't1' bytes [0, 4194304] overlap 't0' bytes "
            "[0, 4194304]; each tensor needs its own bytes; 't2' bytes [0, 4194304] overlap ...")


def test_pt_stride0_views(tmp_path):
    path = H.make_stride0_pt(tmp_path)
    assert path.stat().st_size < 10_000
    refused(["inspect", path], path, "tensor 'lstm.weight_ih_l0' ([65536, 16384] float32) would make "
            "4,294,967,296 bytes, and the file's tensors together more than 4x its size: views that repeat one "
            "storage (stride 0, overlapping ranges) are refused")


def test_rnnc_array_named_by_many_layers(tmp_path):
    path = H.make_shared_array_rnnc(tmp_path)
    refused(["inspect", path], path, "model.json names arrays of ...")
    code, _, err, _ = run("inspect", path)
    assert "more than 4x the file's size: an array named by many layers is refused" in err


# ------------------------------------------------------------------------------- odd dtypes

@pytest.mark.parametrize("dtype", H.PT_DTYPES)
def test_pt_odd_dtype(tmp_path, dtype):
    path = H.make_odd_pt(tmp_path, dtype)
    if dtype.startswith("float8"):
        message = (f"tensor 'lstm.weight_ih_l0' has dtype {dtype}; rnnconvert reads float16, bfloat16, float32 and "
                   "float64 weights (and integer buffers)")
    else:
        message = ("weights must be float16, bfloat16, float32 or float64 tensors, but 'lstm.weight_ih_l0' is "
                   f"{np.dtype(dtype if dtype != 'bool' else '?')}")
    refused(["inspect", path], path, message)


@pytest.mark.parametrize("dtype", H.ST_DTYPES)
def test_safetensors_odd_dtype(tmp_path, dtype):
    path = H.make_odd_safetensors(tmp_path, dtype)
    numpy = {"I32": "int32", "BOOL": "bool", "U8": "uint8", "I64": "int64"}[dtype]
    refused(["inspect", path], path, "weights must be float16, bfloat16, float32 or float64 tensors, but "
            f"'lstm.weight_ih_l0' is {numpy} (and 3 more)")


@pytest.mark.parametrize("kind, shown", [("complex", "'<c8'"), ("record", "[('a', '<f4'), ('b', '<i4')]"),
                                         ("string", "'<U3'")])
def test_rnnc_odd_dtype(tmp_path, kind, shown):
    path = H.make_odd_rnnc(tmp_path, kind)
    refused(["inspect", path], path, f"member 'layers/0/forward/W_ifgo.npy' has dtype {shown} (records, strings, "
            "complex or dates); rnnconvert reads numeric arrays only")


@pytest.mark.parametrize("kind", ["int", "bool"])
def test_rnnc_numeric_but_not_float(tmp_path, kind):
    path = H.make_odd_rnnc(tmp_path, kind)
    refused(["inspect", path], path, f"invalid model: layers[0] 'r0': tensor 'forward.W' has dtype "
            f"{np.dtype(H.NPY_DTYPES[kind])}, expected one of float16, float32, float64")


def test_rnnc_object_array(tmp_path):
    path = H.make_object_rnnc(tmp_path)
    refused(["inspect", path], path, "member 'layers/0/forward/W_ifgo.npy' holds Python objects; rnnconvert reads "
            "numeric arrays only")


# ----------------------------------------------------------------------------- absurd shapes

@pytest.mark.parametrize("key", H.SHAPES)
def test_safetensors_absurd_shape(tmp_path, key):
    path = H.make_shape_safetensors(tmp_path, key)
    refused(["inspect", path], path, f"corrupt safetensors header: 'lstm.weight_ih_l0': shape {H.SHAPES[key]} has "
            "an axis over 2147483647")


@pytest.mark.parametrize("key", H.SHAPES)
def test_rnnc_absurd_shape(tmp_path, key):
    path = H.make_shape_rnnc(tmp_path, key)
    refused(["inspect", path], path, f"member 'layers/0/forward/W_ifgo.npy' declares shape {H.SHAPES[key]}, an axis "
            "over 2**31-1")


@pytest.mark.parametrize("make", [H.make_negative_steps_rnnc, H.make_negative_steps_pt], ids=["rnnc", "pt"])
def test_negative_time_steps(tmp_path, make):
    path = make(tmp_path)
    refused(["convert", path, tmp_path / "out.onnx"], path,
            "invalid model: input time_steps -5, expected an integer from 1 to 2147483647...")
    assert not (tmp_path / "out.onnx").exists()


# ------------------------------------------------------------------- many layers, long chains

@pytest.mark.parametrize("make, last", [(H.make_many_rnnc, "r5999"), (H.make_many_onnx, "r5999"),
                                        (H.make_many_h5, "simple_rnn_5999")], ids=["rnnc", "onnx", "h5"])
def test_inspect_6000_layers_is_linear(tmp_path, make, last):
    path = make(tmp_path)
    code, out, err, seconds = run("inspect", path)
    assert (code, err) == (0, ""), err[-2000:]
    assert re.search(rf"^\s*5999\s+{last}\s+(rnn|simple_rnn)\b", out, re.M), out[-2000:]
    assert seconds < 90, seconds


@pytest.mark.parametrize("make", [H.make_chain_rnnc, H.make_chain_keras], ids=["rnnc", "keras"])
def test_600_chained_activations_convert_to_onnx(tmp_path, make):
    path = make(tmp_path)
    code, out, err, _ = run("convert", path, tmp_path / "out.onnx")
    assert code == 0, err[-2000:]
    assert "EQUIVALENT" in out


# --------------------------------------------------------------------------- one loader each

def test_every_json_and_yaml_goes_through_one_loader():
    for p in (ROOT / "rnnconvert").rglob("*.py"):
        if p.relative_to(ROOT).as_posix() == "rnnconvert/files/text.py":
            continue
        s = p.read_text()
        assert not re.search(r"json\.loads?\(", s), p
        assert not re.search(r"yaml\.(safe_)?load\(", s), p
