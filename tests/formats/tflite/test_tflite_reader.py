"""The TFLite reader on damaged and unknown files: every offset is checked, so a truncated, bit-flipped or
lying FlatBuffer is an InputError (exit 2, one line), never a crash, an IndexError or an allocation larger
than the file; an op the reader does not know is refused naming the op and its subgraph."""
from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

import rnnconvert
from conftest import FIXTURES
from rnnconvert.cli import cli
from rnnconvert.errors import InputError, UnsupportedError
from rnnconvert.formats.tflite import schema as s
from rnnconvert.formats.tflite.graph import TFLiteModel

SRC = FIXTURES / "tfkeras2" / "lstm_last_softmax" / "model.h5"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("tfl") / "good.tflite"
    rnnconvert.write(rnnconvert.read(SRC), path)
    return path.read_bytes()


def _read(tmp_path, data: bytes):
    p = tmp_path / "x.tflite"
    p.write_bytes(data)
    return rnnconvert.read(p)


def test_every_truncation_is_an_input_error(good, tmp_path):
    for n in sorted({0, 4, 7, 8, 12, 40, 100} | set(range(0, len(good), max(1, len(good) // 60)))):
        with pytest.raises(InputError):
            _read(tmp_path, good[:n])


def _flipped(tmp_path, good: bytes, seed: int, cases: int, flips: int) -> dict:
    """Read `cases` copies of `good` with `flips` random bytes changed each: how many read and how many were
    refused; anything else (a crash) fails the test."""
    rng = np.random.default_rng(seed)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(cases):
        data = bytearray(good)
        for pos in rng.integers(8, len(data), flips):
            data[pos] = int(rng.integers(0, 256))
        try:
            _read(tmp_path, bytes(data))
            outcomes["read"] += 1
        except InputError:          # UnsupportedError is one too
            outcomes["refused"] += 1
    return outcomes


def test_flipped_bytes_never_crash(good, tmp_path):
    assert _flipped(tmp_path, good, 17, 150, 4)["refused"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("case", ["lstm_seq_quantized", "conv_lstm_quantized", "gru_quantized", "gru_seq_dense",
                                  "bigru_reset_before_quantized", "lstm_hard_sigmoid_seq"])
def test_flipped_bytes_in_tensorflow_files_never_crash(case, tmp_path):
    """The same on files TensorFlow wrote: its int8 hybrid ops (`reader_hybrid`) and its WHILE loops
    (`lift_while`, whose candidate cells run on the file's weights) end in a model or an InputError."""
    _flipped(tmp_path, (FIXTURES / "tflite" / case / "model.tflite").read_bytes(), 23, 120, 3)


def test_a_vector_claiming_four_billion_elements(good, tmp_path):
    data = bytearray(good)
    root = struct.unpack_from("<I", data, 0)[0]
    vt = root - struct.unpack_from("<i", data, root)[0]
    field = struct.unpack_from("<H", data, vt + 4 + 2 * s.MODEL["buffers"])[0]
    slot = root + field
    vec = slot + struct.unpack_from("<I", data, slot)[0]
    struct.pack_into("<I", data, vec, 0xFFFFFFF0)
    with pytest.raises(InputError, match="buffers .4294967280 elements. lies outside the file"):
        _read(tmp_path, bytes(data))


def test_cli_says_the_file_is_damaged(good, tmp_path):
    p = tmp_path / "cut.tflite"
    p.write_bytes(good[: len(good) // 2])
    res = subprocess.run([sys.executable, "-m", "rnnconvert", "convert", str(p), str(tmp_path / "o.onnx")],
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "not a valid TFLite FlatBuffer" in res.stderr and "the file is truncated or damaged" in res.stderr
    assert "Traceback" not in res.stderr


def _one_op_file(path, op: str, custom: str | None = None):
    tm = TFLiteModel()
    g = tm.subgraph("main")
    x = g.tensor("x", [1, 4, 3], signature=[-1, -1, 3])
    y = g.tensor("y", [1, 4, 3], signature=[-1, -1, 3])
    g.inputs, g.outputs = [x], [y]
    g.op(op, [x], [y])
    data = tm.to_bytes()
    path.write_bytes(data)
    return path


def test_unknown_op_refused_naming_op_and_subgraph(runner, tmp_path):
    p = _one_op_file(tmp_path / "hs.tflite", "HARD_SWISH")
    with pytest.raises(UnsupportedError, match=r"main: op HARD_SWISH is not one rnnconvert reads "
                                               r"\(on the data path, output 'y'\)"):
        rnnconvert.read(p)
    res = runner.invoke(cli, ["convert", str(p), str(tmp_path / "o.onnx")])
    assert res.exit_code == 2
    assert "main: op HARD_SWISH is not one rnnconvert reads" in res.stderr


def test_tensorflow_while_loop_refused(tmp_path):
    """A WHILE without rnnconvert's loop metadata that loops over no time-major input (so no lowering of a
    recurrent layer TensorFlow writes: test_tflite_tf_while.py) is named, not guessed."""
    p = _one_op_file(tmp_path / "w.tflite", "WHILE")
    with pytest.raises(UnsupportedError, match="main: op WHILE is not one rnnconvert reads"):
        rnnconvert.read(p)


def test_not_a_tflite_file(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="not a TFLite file: its FlatBuffer identifier"):
        rnnconvert.read(p)


@pytest.mark.parametrize("value,words", [
    ("[" * 5000 + "]" * 5000, "nests lists or objects 5000 deep, more than the 128 rnnconvert reads"),
    ("{not json", "is not JSON"),
    ('[{"layer": "x"}]', "is not a range of the main subgraph"),
    ("{}", "not a list"),
    ('[{"ops": [0, 1], "body": 99}]', "body 99 is not a subgraph index"),
])
def test_hostile_loop_metadata_is_an_input_error(tmp_path, monkeypatch, value, words):
    """The writer's loop metadata replaced by hostile JSON: an InputError naming the metadata, never a crash."""
    from rnnconvert.formats.tflite import writer
    model = rnnconvert.read(FIXTURES / "tfkeras2" / "gru_reset_before_last" / "model.h5")
    monkeypatch.setattr(writer.json, "dumps", lambda obj: value)
    p = tmp_path / "w.tflite"
    writer.write(model, p)
    monkeypatch.undo()
    with pytest.raises(InputError, match=f"metadata 'rnnconvert.loops'.*{words}"):
        rnnconvert.read(p)


@pytest.mark.slow
@pytest.mark.parametrize("case, quantize", [("keras3/bigru_sum_seq", None), ("keras3/gru_reset_after_seq", "dynamic"),
                                            ("keras3/embed_mask_gru_backwards_seq_dense", None),
                                            ("keras3/gru_reset_before_last", None)])
def test_flipped_bytes_in_written_while_loops_never_crash(case, quantize, tmp_path):
    """The same on rnnconvert's own WHILE loops, read back through their metadata (`reader_loop`): a sequence
    in chunks of 32 steps, int8 products, a mask gathered per chunk, a last step carried alone."""
    path = tmp_path / "loop.tflite"
    rnnconvert.write(rnnconvert.read(FIXTURES / case / "model.keras"), path, quantize=quantize)
    good = path.read_bytes()
    assert b"rnnconvert.loops" in good and _read(tmp_path, good).recurrent_layers
    outcomes = _flipped(tmp_path, good, 29, 120, 3)
    assert outcomes["read"] and outcomes["refused"], outcomes
