"""ONNX external data (models past protobuf's 2 GB): the writer's sidecar, the reader's guard, and
the temporary-file-then-rename of `convert` moving the sidecar with the .onnx.

The size threshold is forced low on small fixtures (tf.keras 2.x / Keras 3 files with their stored
predictions); onnxruntime runs every written file and is compared with those predictions."""
from __future__ import annotations

import os
import shutil

import numpy as np
import onnx
import pytest
from conftest import FIXTURES, Case

import rnnconvert
from rnnconvert.errors import InputError, VerificationError
from rnnconvert.formats.onnx import writer

ort = pytest.importorskip("onnxruntime")
SOURCES = ["tfkeras2/bilstm_concat_last", "keras3/stacked_lstm_dense"]


def case(name) -> Case:
    folder = FIXTURES / name
    return Case(folder, folder / "model.h5")


def run_ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.asarray(x, np.float32)})[0]


def external_locations(path) -> set[str]:
    proto = onnx.load(str(path), load_external_data=False)
    return {e.value for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
            for e in t.external_data if e.key == "location"}


@pytest.mark.parametrize("name", SOURCES)
def test_threshold_forces_external_data_and_onnxruntime_runs_it(name, tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "EXTERNAL_DATA_BYTES", 100)      # as if the weights passed 1 GB
    c = case(name)
    out = tmp_path / "out"
    out.mkdir()
    before = sorted(os.listdir(c.folder))
    report = rnnconvert.convert(c.path, out / "m.onnx")
    assert report.passed and "onnxruntime(dst)" in report.oracles()
    assert sorted(os.listdir(out)) == ["m.onnx", "m.onnx.data"]         # nothing else, no temporaries
    assert sorted(os.listdir(c.folder)) == before
    assert external_locations(out / "m.onnx") == {"m.onnx.data"}       # relative, beside the file
    assert any("external data" in n for n in report.notes)
    for _, x, y in c.io():
        np.testing.assert_allclose(run_ort(out / "m.onnx", x), y, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(rnnconvert.predict(out / "m.onnx", x), y, atol=1e-4, rtol=1e-4)
    # the pair moves together: a copy elsewhere still runs
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in ("m.onnx", "m.onnx.data"):
        shutil.move(out / f, moved / f)
    _, x, y = c.io()[0]
    np.testing.assert_allclose(run_ort(moved / "m.onnx", x), y, atol=1e-4, rtol=1e-4)


def test_small_model_stays_one_file(tmp_path):
    c = case(SOURCES[0])
    rnnconvert.convert(c.path, tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == ["m.onnx"] and external_locations(tmp_path / "m.onnx") == set()


def test_external_data_option(tmp_path):
    c = case(SOURCES[1])
    rnnconvert.convert(c.path, tmp_path / "m.onnx", write_options={"external_data": True})
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]
    _, x, y = c.io()[0]
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), y, atol=1e-4, rtol=1e-4)


def test_failed_verification_leaves_neither_file(tmp_path, monkeypatch):
    """A writer whose sidecar is corrupted (one weight changed): verification fails and neither the
    .onnx nor its sidecar appears; an existing destination pair is kept untouched."""
    import rnnconvert.formats.onnx as onnx_format
    write = onnx_format.write

    def corrupting(model, path, **options):
        notes = write(model, path, **options)
        data = str(path) + ".data"
        raw = bytearray(open(data, "rb").read())
        w = np.frombuffer(raw, np.float32, count=1, offset=len(raw) - 256).copy()    # a weight, not padding
        raw[len(raw) - 256:len(raw) - 252] = (w + 0.5).astype(np.float32).tobytes()
        open(data, "wb").write(bytes(raw))
        return notes

    monkeypatch.setattr(onnx_format, "write", corrupting)
    c = case(SOURCES[0])
    with pytest.raises(VerificationError, match="NOT EQUIVALENT"):
        rnnconvert.convert(c.path, tmp_path / "m.onnx", write_options={"external_data": True})
    assert os.listdir(tmp_path) == []
    (tmp_path / "m.onnx").write_bytes(b"old")
    (tmp_path / "m.onnx.data").write_bytes(b"old data")
    with pytest.raises(VerificationError):
        rnnconvert.convert(c.path, tmp_path / "m.onnx", write_options={"external_data": True}, force=True)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.data"]
    assert (tmp_path / "m.onnx").read_bytes() == b"old" and (tmp_path / "m.onnx.data").read_bytes() == b"old data"


@pytest.mark.parametrize("location", ["../secret.data", "/etc/passwd", "sub/../../x.data", "link.data"])
def test_reader_refuses_external_data_outside_the_model_directory(location, tmp_path):
    c = case(SOURCES[0])
    folder = tmp_path / "model"
    folder.mkdir()
    rnnconvert.convert(c.path, folder / "m.onnx", write_options={"external_data": True})
    (tmp_path / "secret.data").write_bytes((folder / "m.onnx.data").read_bytes())
    os.symlink(tmp_path / "secret.data", folder / "link.data")
    proto = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    for t in proto.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    onnx.save(proto, str(folder / "m.onnx"))
    name = next(t.name for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    with pytest.raises(InputError) as exc:
        rnnconvert.read(folder / "m.onnx")
    message = exc.value.format()       # the wording is safety.check_onnx_external's (tests/test_untrusted.py)
    assert message.startswith(f"{folder / 'm.onnx'}: ONNX external data refused: tensor '{name}': "), message
    assert f"'{location}'" in message and "\n" not in message
