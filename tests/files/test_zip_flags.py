"""Zip members flagged encrypted or patched (a .rnnc here; every zip reader shares `files.safety`): refused
with one line, exit 2, from the central directory's flags (`check_zip`); and whatever zipfile raises opening a
member is an InputError (`_open_member`): its RuntimeError for an encrypted member was an escape (the fuzz
suite at 3000 cases)."""
from __future__ import annotations

import zipfile

import pytest
from click.testing import CliRunner

from conftest import FIXTURES
import rnnconvert
from rnnconvert.cli import cli

SRC = FIXTURES / "torch_onnx" / "lstm_last_linear" / "model.onnx"


@pytest.fixture
def rnnc(tmp_path):
    path = tmp_path / "m.rnnc"
    rnnconvert.write(rnnconvert.read(SRC), path)
    return path


def _flag(path, signature: bytes, offset: int, bit: int) -> str:
    """Set `bit` in the flags of the first record starting with `signature`; returns that member's name."""
    data = bytearray(path.read_bytes())
    at = data.index(signature)
    data[at + offset] |= bit
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as z:
        return z.infolist()[0].filename


def _err(path):
    res = CliRunner().invoke(cli, ["inspect", str(path)])
    assert res.exit_code == 2
    return res.stderr


def test_a_member_the_central_directory_says_is_encrypted_is_refused(rnnc):
    name = _flag(rnnc, b"PK\x01\x02", 8, 0x01)
    assert _err(rnnc) == (f"rnnconvert: error: {rnnc}: .rnnc archive refused: member '{name}' is encrypted or "
                          "patched (zip flags 0x1); rnnconvert reads plain stored or deflated members\n")


@pytest.mark.parametrize("raised", [RuntimeError("File 'a.npy' is encrypted, password required for extraction"),
                                    NotImplementedError("strong encryption (flag bit 6)"),
                                    zipfile.BadZipFile("Bad magic number for file header")])
def test_what_zipfile_raises_opening_a_member_is_an_input_error(raised):
    """What zipfile raises when it opens a member (the flags it checks, the local header it reads) is an
    InputError naming the member, whichever reader asked."""
    from rnnconvert.errors import InputError
    from rnnconvert.files import safety

    class Archive:
        def open(self, name):
            raise raised
    with pytest.raises(InputError) as err:
        safety.read_member(type("Z", (Archive,), {"getinfo": lambda self, n: zipfile.ZipInfo(n)})(), "a.npy", "x.rnnc")
    assert str(err.value) == f"x.rnnc: member 'a.npy' cannot be read ({raised})"
