"""A .keras archive's stored model.weights.h5 is read in place (not copied into memory first), with the
CRC-32 that zipfile would check: a damaged member is refused, an intact one reads as Keras predicts."""
from __future__ import annotations

import shutil
import zipfile

import numpy as np
from click.testing import CliRunner
from conftest import FIXTURES, Case

import rnnconvert
from rnnconvert.cli.commands import cli

CASE = FIXTURES / "keras3" / "bigru_sum_seq" / "model.keras"


def test_a_stored_member_is_read_in_place_and_predicts_as_keras(monkeypatch):
    read_members = []
    real_read = zipfile.ZipFile.read

    def spy(self, name, pwd=None):
        read_members.append(name if isinstance(name, str) else name.filename)
        return real_read(self, name, pwd)
    monkeypatch.setattr(zipfile.ZipFile, "read", spy)
    model = rnnconvert.read(CASE)
    assert "model.weights.h5" not in read_members and "config.json" in read_members
    for _, x, y in Case(CASE.parent, CASE).io():         # Keras 3's own predictions
        np.testing.assert_allclose(rnnconvert.predict(model, x), y, atol=1e-5, rtol=1e-5)


def test_a_deflated_member_still_reads(tmp_path):
    deflated = tmp_path / "model.keras"
    with zipfile.ZipFile(CASE) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    a, b = rnnconvert.read(CASE), rnnconvert.read(deflated)
    x = Case(CASE.parent, CASE).io()[0][1]
    np.testing.assert_array_equal(rnnconvert.predict(a, x), rnnconvert.predict(b, x))


def test_a_flipped_byte_in_the_stored_weights_is_refused(tmp_path):
    damaged = tmp_path / "model.keras"
    shutil.copy(CASE, damaged)
    with zipfile.ZipFile(CASE) as z:
        info = z.getinfo("model.weights.h5")
    raw = bytearray(damaged.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.file_size - 100] ^= 0x01           # inside the member, near its end (array data)
    damaged.write_bytes(bytes(raw))
    res = CliRunner().invoke(cli, ["inspect", str(damaged)])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == (
        f"rnnconvert: error: {damaged}: not a Keras model file (cannot read the .keras zip archive: "
        "Bad CRC-32 for file 'model.weights.h5')")
