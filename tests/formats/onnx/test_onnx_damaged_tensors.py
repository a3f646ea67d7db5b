"""Damaged tensors the fuzzer found escaping (tests/test_fuzz.py with the Loop, mask, lengths, window and
Dense-on-sequence seeds): an initializer whose bytes do not make its data type and shape, met while a Loop is
lifted, and a graph input of a data type onnx does not name.  Each is exit 2, one line naming the file."""
from __future__ import annotations

import subprocess
import sys

import onnx
import pytest
from click.testing import CliRunner

from conftest import FIXTURES
from rnnconvert.cli import cli

MASKED = FIXTURES / "tf2onnx_mask" / "masking_gru_reset_before_seq" / "model.onnx"


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_an_initializer_whose_bytes_do_not_make_its_shape(command, tmp_path):
    model = onnx.load(str(MASKED))
    tensor = next(t for t in model.graph.initializer if t.name == "const_fold_opt__117")
    tensor.data_type = onnx.TensorProto.UINT8        # its 4 bytes were one float32
    src = tmp_path / "damaged.onnx"
    onnx.save(model, str(src))
    args = ["inspect", str(src)] if command == "inspect" else [str(src), str(tmp_path / "m.keras")]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    assert res.stderr == (f"rnnconvert: error: {src}: tensor 'const_fold_opt__117' cannot be read as data type 2, "
                          "shape [1] (ValueError: cannot reshape array of size 4 into shape (1,)); the file is "
                          "damaged\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.onnx"]


def test_a_graph_input_of_an_unknown_data_type(tmp_path):
    model = onnx.load(str(FIXTURES / "tf2onnx" / "gru_dense" / "model.onnx"))
    init = {t.name for t in model.graph.initializer}
    next(i for i in model.graph.input if i.name not in init).type.tensor_type.elem_type = 65
    src = tmp_path / "dtype65.onnx"
    onnx.save(model, str(src))
    res = CliRunner().invoke(cli, [str(src), str(tmp_path / "m.rnnc")])
    assert res.exit_code == 2, res.output
    assert "is data type 65, rnnconvert reads float32 inputs" in res.stderr, res.stderr
    assert not (tmp_path / "m.rnnc").exists()


def test_a_node_name_that_is_not_text_is_refused_naming_it(tmp_path):
    """A name field of bytes that are not UTF-8 comes back from protobuf as bytes, not text: the layer named
    after that node is refused as such, exit 2, where it reached inspect's table as an internal error."""
    data = (FIXTURES / "torch_onnx" / "lstm_last_linear" / "model.onnx").read_bytes()
    field = b"\x1a\x09/rnn/LSTM"                     # NodeProto.name (field 3) of the LSTM node
    assert data.count(field) == 1
    path = tmp_path / "m.onnx"
    path.write_bytes(data.replace(field, b"\x1a\x09" + b"\xff" * 9))
    res = subprocess.run([sys.executable, "-m", "rnnconvert", "inspect", str(path)], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr == (f"rnnconvert: error: {path}: invalid model: layers[0]: name "
                          "b'\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff' is not text\n")
