"""The four YAML inputs (a batch plan, --arch for a Keras weights-only file, --arch hints for a PyTorch
state dict, --mapping for bare MATLAB arrays) are read by one loader, text.read_yaml: each failure
through the CLI is exit 2 and one line naming the file, its role and (for YAML) the line, word for word."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from conftest import FIXTURES
from rnnconvert.files import text
from rnnconvert.cli import cli

PT = FIXTURES / "torch" / "gru_linear" / "model.pt"
H5 = FIXTURES / "tfkeras2" / "lstm_last_softmax" / "model.h5"


def _weights_only(tmp_path):
    path = tmp_path / "weights.h5"
    with h5py.File(H5, "r") as s, h5py.File(path, "w") as d:
        d.attrs["layer_names"] = [b"lstm", b"dense"]
        for name in ("lstm", "dense"):
            s.copy(s[f"model_weights/{name}"], d, name)
    return path


def _bare(tmp_path):
    import scipy.io
    path = tmp_path / "bare.mat"
    scipy.io.savemat(str(path), {"W": np.ones((16, 3))})
    return path


# role in messages, how the CLI is given the YAML file
INPUTS = {
    "plan": lambda tmp, y: ["batch", y, "--check"],
    "architecture": lambda tmp, y: ["convert", _weights_only(tmp), tmp / "out.onnx", "--arch", y],
    "architecture hints": lambda tmp, y: ["inspect", PT, "--arch", y],
    "mapping": lambda tmp, y: ["inspect", _bare(tmp), "--mapping", y],
}

BAD = {
    "not YAML": (b"layers:\n  - [a\n", "is not valid YAML at line 3, column 1 (expected ',' or ']', but got "
                                       "'<stream end>')"),
    "not UTF-8": (b"layers:\n  - lstm\n  - \xff\n", "is not UTF-8 text (byte 0xff at line 3)"),
    "control character": (b"layers:\n\n  - a\x01\n", "is not valid YAML at line 3 (special characters are not "
                                                    "allowed #x0001)"),
    "too deep": (b"[" * 5000, "nests lists or mappings too deeply to be read"),
    "python tag": (b"!!python/object/apply:os.system ['true']\n",
                   "is not valid YAML at line 1, column 1 (could not determine a constructor for the tag "
                   "'tag:yaml.org,2002:python/object/apply:os.system')"),
}


def _run(runner, args):
    res = runner.invoke(cli, [str(a) for a in args])
    return res.exit_code, res.stderr


@pytest.mark.parametrize("what", INPUTS)
@pytest.mark.parametrize("case", BAD)
def test_bad_yaml_is_one_line_naming_file_role_and_line(runner, tmp_path, what, case):
    data, message = BAD[case]
    y = tmp_path / "input.yaml"
    y.write_bytes(data)
    assert _run(runner, INPUTS[what](tmp_path, y)) == (2, f"rnnconvert: error: {y}: the {what} file {message}\n")


@pytest.mark.parametrize("what", INPUTS)
def test_missing_and_oversized_yaml(runner, tmp_path, what, monkeypatch):
    y = tmp_path / "none.yaml"
    assert _run(runner, INPUTS[what](tmp_path, y)) == (2, f"rnnconvert: error: {y}: no such {what} file\n")
    monkeypatch.setattr(text, "MAX_YAML_BYTES", 1 << 10)
    y.write_text("# padding\n" * 103)
    assert _run(runner, INPUTS[what](tmp_path, y)) == (
        2, f"rnnconvert: error: {y}: the {what} file is over 1.0 KiB, more than a YAML {what} needs; "
           "is it the right file?\n")


def test_the_same_loader_reads_what_the_four_need(tmp_path):
    """The good path: a BOM-less UTF-8 file with non-ASCII text parses to plain data."""
    y = tmp_path / "ok.yaml"
    y.write_text("layers: [{name: lstm}]\nnote: ünïcode\n", encoding="utf-8")
    assert text.read_yaml(y, "architecture") == {"layers": [{"name": "lstm"}], "note": "ünïcode"}
    y.write_text("")
    assert text.read_yaml(y, "mapping") is None
    with pytest.raises(text.InputError) as info:          # a directory (click refuses it before this)
        text.read_yaml(tmp_path, "plan")
    assert info.value.format() == f"{tmp_path}: no such plan file"
