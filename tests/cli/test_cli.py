"""The command line end to end: conversions checked by onnxruntime against the source framework's
stored predictions, `predict`, and every error path with its message and exit code."""
from __future__ import annotations

import copy
import json
import os
import re
import shutil

import h5py
import numpy as np
import pytest

from conftest import ROOT, cases, keras_cases
from rnnconvert.cli import cli

ort = pytest.importorskip("onnxruntime")

KERAS = keras_cases()
ONNX_ONLY: set[str] = set()   # selu, not a native ONNX RNN activation, is written as a Scan (tested below)


def run_ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(inp.type, np.float32)   # token ids
    return sess.run(None, {inp.name: x.astype(dtype)})[0]


@pytest.mark.parametrize("case", [c for c in KERAS if c.name not in ONNX_ONLY], ids=lambda c: c.id)
def test_keras_fixture_converts_to_onnx_and_matches_framework(case, runner, tmp_path):
    dst = tmp_path / "model.onnx"
    res = runner.invoke(cli, [str(case.path), str(dst)])
    assert res.exit_code == 0, res.output + res.stderr
    assert "EQUIVALENT" in res.output and "onnxruntime(dst)" in res.output
    for key, x, y in case.io():
        np.testing.assert_allclose(run_ort(dst, x), y, atol=1e-4, rtol=0, err_msg=key)


@pytest.mark.parametrize("case", cases("tfkeras2", "keras3", "torch_onnx", "tf2onnx"), ids=lambda c: c.id)
def test_predict_matches_framework(case, runner, tmp_path):
    for key, x, y in case.io():
        np.save(tmp_path / "x.npy", x)
        res = runner.invoke(cli, ["predict", str(case.path), "--inputs", str(tmp_path / "x.npy"),
                                  "--output", str(tmp_path / "y.npy")])
        assert res.exit_code == 0, res.output + res.stderr
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), y, atol=1e-4, rtol=0, err_msg=key)


def test_report_json_and_user_inputs(runner, tmp_path):
    case = next(c for c in KERAS if c.name == "bilstm_concat_last")
    x = case.io()[1][1]
    np.save(tmp_path / "x.npy", x)
    res = runner.invoke(cli, [str(case.path), str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npy"),
                              "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passed"] is True
    assert {c["oracle"] for c in report["checks"]} == {"onnxruntime(dst)"}    # read back identical: no reference(dst)
    assert ("reference(dst) and streaming(reference) not run: the file reads back identical to the source, every "
            "setting and every tensor, so they would repeat reference(src)") in report["notes"]
    assert "user inputs" in {c["input"] for c in report["checks"]}
    assert report["tolerance"] == {"atol": 1e-4, "rtol": 1e-4}
    assert len(report["source"]["sha256"]) == 64


def test_onnx_to_onnx_and_canonical(runner, tmp_path):
    src = cases("torch_onnx")[0].path
    assert runner.invoke(cli, [str(src), str(tmp_path / "a.rnnc")]).exit_code == 0
    res = runner.invoke(cli, [str(tmp_path / "a.rnnc"), str(tmp_path / "b.onnx")])
    assert res.exit_code == 0, res.stderr
    res = runner.invoke(cli, ["verify", str(src), str(tmp_path / "b.onnx")])
    assert res.exit_code == 0, res.stderr
    assert "onnxruntime(src)" in res.output and "onnxruntime(dst)" in res.output


# ---- errors: one line on stderr, exit code 2 (bad input) or 1 (not equivalent) ----

def _error(res):
    assert res.stderr.count("\n") == 1, res.stderr     # one line, never a traceback
    return res.stderr.strip()


def test_missing_source(runner, tmp_path):
    res = runner.invoke(cli, [str(tmp_path / "nope.h5"), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert _error(res) == f"rnnconvert: error: {tmp_path / 'nope.h5'}: no such file"


def test_unknown_output_suffix(runner, tmp_path):
    src = KERAS[0].path
    res = runner.invoke(cli, [str(src), str(tmp_path / "out.xyz")])
    assert res.exit_code == 2
    assert _error(res) == (f"rnnconvert: error: {tmp_path / 'out.xyz'}: unknown output suffix '.xyz'; "
                           "formats rnnconvert writes: keras (.h5 .hdf5 .keras), onnx (.onnx), torch (.pt .pth), "
                           "safetensors (.safetensors), matlab (.mat), tfjs (.json), canonical (.rnnc), c (.c), js (.mjs), "
                           "numpy (.py), tflite (.tflite)")


def test_target_that_cannot_express_a_feature_refuses(runner, tmp_path):
    case = next(c for c in cases("torch_onnx") if c.name == "lstm_initial_state_expand")
    res = runner.invoke(cli, [str(case.path), str(tmp_path / "out.keras")])
    assert res.exit_code == 2
    msg = _error(res)
    assert msg.startswith(f"rnnconvert: error: {tmp_path / 'out.keras'}: ") and "initial state" in msg
    assert os.listdir(tmp_path) == []          # nothing written, no temporary left


def test_unknown_input_format(runner, tmp_path):
    p = tmp_path / "weights.bin"
    p.write_bytes(b"\x00" * 64)
    res = runner.invoke(cli, [str(p), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert _error(res).startswith(f"rnnconvert: error: {p}: cannot tell the format of this file (suffix '.bin')")


def test_existing_destination_kept_without_force(runner, tmp_path):
    dst = tmp_path / "out.onnx"
    dst.write_bytes(b"precious")
    res = runner.invoke(cli, [str(KERAS[0].path), str(dst)])
    assert res.exit_code == 2
    assert _error(res) == f"rnnconvert: error: {dst}: exists; pass --force to overwrite it"
    assert dst.read_bytes() == b"precious"
    assert runner.invoke(cli, [str(KERAS[0].path), str(dst), "--force"]).exit_code == 0
    assert dst.read_bytes() != b"precious"


def test_destination_equal_to_source_refused(runner, tmp_path):
    src = tmp_path / "m.onnx"
    shutil.copy(cases("torch_onnx")[0].path, src)
    before = src.read_bytes()
    res = runner.invoke(cli, [str(src), str(src), "--force"])
    assert res.exit_code == 2
    assert _error(res) == f"rnnconvert: error: {src}: destination is the source file; choose another path"
    assert src.read_bytes() == before


def test_truncated_keras_file(runner, tmp_path):
    src = tmp_path / "cut.h5"
    data = KERAS[0].path.read_bytes()
    src.write_bytes(data[: len(data) // 3])
    res = runner.invoke(cli, [str(src), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert _error(res).startswith(f"rnnconvert: error: {src}: not a Keras model file")
    assert not (tmp_path / "out.onnx").exists()


def test_hdf5_that_is_not_keras(runner, tmp_path):
    src = tmp_path / "data.h5"
    with h5py.File(src, "w") as f:
        f["x"] = np.zeros(3)
    res = runner.invoke(cli, [str(src), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert "has no 'model_config' attribute" in _error(res)


def _edit_keras_h5(case, tmp_path, edit):
    p = tmp_path / "edited.h5"
    shutil.copy(case.path, p)
    with h5py.File(p, "r+") as f:
        cfg = f.attrs["model_config"]
        cfg = json.loads(cfg.decode() if isinstance(cfg, bytes) else cfg)
        edit(f, cfg)
        f.attrs["model_config"] = json.dumps(cfg)
    return p


def test_unknown_layer(runner, tmp_path):
    case = next(c for c in KERAS if c.origin == "tfkeras2" and c.name == "lstm_last_softmax")

    def edit(f, cfg):
        cfg["config"]["layers"][-1]["class_name"] = "MysteryLayer"
    res = runner.invoke(cli, [str(_edit_keras_h5(case, tmp_path, edit)), str(tmp_path / "o.onnx")])
    assert res.exit_code == 2
    assert "MysteryLayer" in _error(res)


def test_unsupported_activation(runner, tmp_path):
    case = next(c for c in KERAS if c.origin == "tfkeras2" and c.name == "lstm_last_softmax")

    def edit(f, cfg):
        lstm = next(layer for layer in cfg["config"]["layers"] if layer["class_name"] == "LSTM")
        lstm["config"]["activation"] = "mish_of_my_own"
    res = runner.invoke(cli, [str(_edit_keras_h5(case, tmp_path, edit)), str(tmp_path / "o.onnx")])
    assert res.exit_code == 2
    msg = _error(res)
    assert "mish_of_my_own" in msg and "layer 'lstm" in msg


def test_wrong_weight_shape(runner, tmp_path):
    case = next(c for c in KERAS if c.origin == "tfkeras2" and c.name == "lstm_last_softmax")

    def edit(f, cfg):
        lstm = next(layer for layer in cfg["config"]["layers"] if layer["class_name"] == "LSTM")
        lstm["config"]["units"] += 1
    res = runner.invoke(cli, [str(_edit_keras_h5(case, tmp_path, edit)), str(tmp_path / "o.onnx")])
    assert res.exit_code == 2
    assert re.search(r"expected .*found|shape", _error(res))


def test_selu_rnn_written_by_onnx_writer_as_scan(runner, tmp_path):
    case = next(c for c in KERAS if c.name == "simplernn_selu_dense")
    res = runner.invoke(cli, [str(case.path), str(tmp_path / "o.onnx")])
    assert res.exit_code == 0, res.stderr
    assert "layer 'simple_rnn': written as a Scan over a cell of standard ops" in res.output
    assert os.listdir(tmp_path) == ["o.onnx"]   # no temporary left behind


def test_bad_inputs_shape(runner, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 5, 99), np.float32))
    res = runner.invoke(cli, [str(KERAS[0].path), str(tmp_path / "o.onnx"), "--inputs", str(tmp_path / "x.npy")])
    assert res.exit_code == 2
    assert "--inputs has shape (2, 5, 99), expected [batch, time, " in _error(res)


def test_verification_failure_exits_1_and_writes_nothing(runner, tmp_path, monkeypatch):
    """A writer that swaps two gate blocks is caught; DST is not written (kept only on request)."""
    import rnnconvert.formats.onnx as onnx_format
    real_write = onnx_format.write

    def broken_write(model, path, **kw):
        model = copy.deepcopy(model)
        w = model.recurrent_layers[0].weights[0]
        H = model.recurrent_layers[0].hidden
        w.W[[*range(0, H), *range(H, 2 * H)]] = w.W[[*range(H, 2 * H), *range(0, H)]]   # i <-> f
        return real_write(model, path, **kw)

    monkeypatch.setattr(onnx_format, "write", broken_write)
    case = next(c for c in KERAS if c.name == "lstm_last_softmax")
    dst = tmp_path / "o.onnx"
    res = runner.invoke(cli, [str(case.path), str(dst), "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 1
    assert "NOT EQUIVALENT" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("rnnconvert: error: NOT EQUIVALENT: reference(dst)")
    assert not dst.exists()
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is False
    res = runner.invoke(cli, [str(case.path), str(dst), "--keep-failed"])
    assert res.exit_code == 1 and dst.exists()


def test_no_verify(runner, tmp_path):
    res = runner.invoke(cli, [str(KERAS[0].path), str(tmp_path / "o.onnx"), "--no-verify"])
    assert res.exit_code == 0
    assert "not verified (--no-verify)" in res.output


def test_predict_bad_inputs(runner, tmp_path):
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    res = runner.invoke(cli, ["predict", str(KERAS[0].path), "--inputs", str(tmp_path / "x.npy"),
                              "--output", str(tmp_path / "y.npy")])
    assert res.exit_code == 2
    assert _error(res).startswith(f"rnnconvert: error: {tmp_path / 'x.npy'}: cannot read inputs as a .npy array")


def test_usage_error_exit_2(runner):
    res = runner.invoke(cli, ["convert", "only-one-arg.h5"])
    assert res.exit_code == 2


def test_formats_lists_registry(runner):
    res = runner.invoke(cli, ["formats"])
    assert res.exit_code == 0
    for name in ("keras", "onnx", "canonical"):
        assert name in res.output


def test_readme_documents_every_command_and_format():
    from rnnconvert.cli.render import formats_table
    from rnnconvert.formats import FORMATS
    readme = (ROOT / "README.md").read_text()
    for command in cli.commands:
        assert f"rnnconvert {command}" in readme, command
    table = readme[readme.index("## Commands"):]
    table = table[:table.index("\n\n", table.index("| command |"))]
    for words in re.findall(r"`rnnconvert ([^`]*)`", table):
        first = words.split()[0]
        # a command, or the default command's SRC: never a word the command line would take for a file
        assert first in cli.commands or first.isupper(), f"README command table: `rnnconvert {words}`"
    assert formats_table(FORMATS, markdown=True) in readme, "README formats table is stale: " \
        "regenerate it with `rnnconvert formats --markdown`"
    from rnnconvert.model.layouts import markdown_table
    assert markdown_table() in readme, "README weight layout table is stale: `python -m rnnconvert.model.layouts`"


def _quick_start() -> list[str]:
    """The rnnconvert lines of the README's first shell block (install and convert the shipped example)."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
    return [line for line in block.splitlines() if line.startswith("rnnconvert ")]


def test_readme_quick_start_runs_twice(tmp_path):
    """Every rnnconvert line of the quick start, run as written from a fresh folder holding the fixtures, then
    all of them once more: each exits 0 both times (a second run finds model.onnx from the first)."""
    import shlex
    import subprocess
    import sys
    lines = _quick_start()
    assert lines and any(" verify " in f" {x} " for x in lines), lines
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for attempt in (1, 2):
        for line in lines:
            res = subprocess.run([sys.executable, "-m", "rnnconvert", *shlex.split(line)[1:]], cwd=tmp_path,
                                 env=env, capture_output=True, text=True, timeout=600)
            assert res.returncode == 0, f"run {attempt}: {line}\n{res.stdout}{res.stderr}"
            assert "EQUIVALENT" in res.stdout and "NOT EQUIVALENT" not in res.stdout, res.stdout
    assert (tmp_path / "model.onnx").is_file()


@pytest.mark.parametrize("option,dst,expected", [
    (["--emit-test"], "out.onnx", "--emit-test is for c destinations, not onnx"),
    (["--stateful"], "out.c", "--stateful is for onnx or tflite destinations, not c"),
    (["--keras-version", "2"], "out.onnx", "--keras-version is for keras destinations, not onnx"),
    (["--emit-module", "m.py"], "out.onnx", "--emit-module is for torch or safetensors destinations, not onnx"),
])
def test_destination_options_refused_for_other_formats(runner, tmp_path, option, dst, expected):
    res = runner.invoke(cli, [str(KERAS[0].path), str(tmp_path / dst), *option])
    assert res.exit_code == 2
    assert _error(res) == f"rnnconvert: error: {tmp_path / dst}: {expected}"
    assert os.listdir(tmp_path) == []
