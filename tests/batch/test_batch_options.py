"""The CLI's one-conversion options in batch plans (`layer`, `accept_windows_paths`, `external_data`;
`allow_nonfinite` is in test_untrusted.py) and `--external-data` on the CLI: each plan converts and the
written ONNX file is run by onnxruntime against the framework's own output (torch live, Keras 3 live, or
the torch outputs committed with the fixture)."""
from __future__ import annotations

import io
import json
import zipfile

import h5py
import numpy as np
import pytest
import yaml

from conftest import FIXTURES, ROOT
from rnnconvert.cli import cli

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
jsonschema = pytest.importorskip("jsonschema")
PLAN_SCHEMA = json.loads((ROOT / "schemas" / "batch.schema.json").read_text())
TORCH = FIXTURES / "torch" / "gru_linear"
ATOL = 1e-5


def _x(batch, time, features, seed=0):
    x = np.random.default_rng(seed).normal(size=(batch, time, features)).astype(np.float32)
    x[-1] *= 6.0                     # saturating magnitudes in the last row
    return x


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _run_plan(runner, tmp_path, plan: dict):
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(plan)
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    res = runner.invoke(cli, ["batch", str(path), "--jobs", "1", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output + res.stderr
    return json.loads((tmp_path / "r.json").read_text())


def _torch_outputs():
    inputs, outputs = np.load(TORCH / "inputs.npz"), np.load(TORCH / "outputs.npz")
    return [(inputs[k], outputs[k]) for k in inputs]


# ------------------------------------------------------------------------------ external data

def test_cli_external_data_writes_a_sidecar_onnxruntime_runs(runner, tmp_path):
    dst = tmp_path / "gru.onnx"
    res = runner.invoke(cli, [str(TORCH / "model.safetensors"), str(dst), "--external-data"])
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gru.onnx", "gru.onnx.data"]
    import onnx
    proto = onnx.load(str(dst), load_external_data=False)
    big = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) * 4 >= 128]
    assert big and all(t.data_location == onnx.TensorProto.EXTERNAL for t in big)      # the weights, not shapes
    for x, want in _torch_outputs():                     # torch's own module forward, committed
        np.testing.assert_allclose(_ort(dst, x), want, atol=ATOL)
    res = runner.invoke(cli, [str(TORCH / "model.safetensors"), str(tmp_path / "gru.keras"), "--external-data"])
    assert (res.exit_code, res.stderr) == (
        2, f"rnnconvert: error: {tmp_path / 'gru.keras'}: --external-data is for onnx destinations, not keras\n")


def test_plan_external_data(runner, tmp_path):
    plan = {"jobs": [{"src": str(TORCH / "model.safetensors"), "dst": ["a.onnx", "a.rnnc"], "external_data": True},
                     {"src": str(TORCH / "model.safetensors"), "dst": "b.onnx"}]}
    report = _run_plan(runner, tmp_path, plan)
    assert [j["status"] for j in report["results"]] == ["ok", "ok", "ok"], report
    assert (tmp_path / "a.onnx.data").is_file() and not (tmp_path / "b.onnx.data").exists()
    for x, want in _torch_outputs():
        np.testing.assert_allclose(_ort(tmp_path / "a.onnx", x), want, atol=ATOL)
        np.testing.assert_allclose(_ort(tmp_path / "b.onnx", x), want, atol=ATOL)


# ------------------------------------------------------------------------------------- layer

def test_plan_layer(runner, tmp_path):
    torch.manual_seed(1)
    gru = torch.nn.GRU(4, 6, num_layers=2, batch_first=True)
    conv = torch.nn.Conv2d(4, 4, 3)     # a front end the state dict reader does not take: the whole model is refused
    sd = {**{f"enc.{k}": v for k, v in gru.state_dict().items()},
          **{f"front.{k}": v for k, v in conv.state_dict().items()}}
    torch.save(sd, str(tmp_path / "model.pt"))
    _run_plan(runner, tmp_path, {"defaults": {"layer": "enc.l1"}, "jobs": [{"src": "model.pt", "dst": "l1.onnx"}]})
    one = torch.nn.GRU(6, 6, batch_first=True)
    one.load_state_dict({k.replace("_l1", "_l0"): v for k, v in gru.state_dict().items() if k.endswith("_l1")})
    for x in (_x(3, 8, 6, seed=2), _x(2, 1, 6, seed=3), _x(1, 40, 6, seed=4)):
        with torch.no_grad():
            want = one(torch.from_numpy(x))[0].numpy()
        np.testing.assert_allclose(_ort(tmp_path / "l1.onnx", x), want, atol=ATOL)


# ---------------------------------------------------------------------- accept_windows_paths

def _windows_keras(tmp_path):
    """A Keras 3 .keras whose weights groups use Windows separators (`layers\\lstm\\cell/vars/0`), as
    tf.keras 2.x wrote them on Windows; with Keras's own prediction of the original."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(5, name="lstm"),
                              keras.layers.Dense(2, name="dense")])
    src = tmp_path / "model.keras"
    model.save(src)
    x = _x(3, 9, 3, seed=5)
    want = np.asarray(keras.models.load_model(src, compile=False).predict(x, verbose=0))
    dst = tmp_path / "win.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "model.weights.h5":
                buf = io.BytesIO()
                with h5py.File(io.BytesIO(data), "r") as fin, h5py.File(buf, "w") as fout:
                    found = []
                    fin.visititems(lambda n, o: found.append((n, o[()])) if isinstance(o, h5py.Dataset) else None)
                    for n, a in found:
                        head, _, tail = n.rpartition("/vars/")
                        fout.create_dataset(head.replace("/", "\\") + "/vars/" + tail if tail else n, data=a)
                data = buf.getvalue()
            zout.writestr(name, data)
    return dst, x, want


def test_plan_accept_windows_paths(runner, tmp_path):
    src, x, want = _windows_keras(tmp_path)
    plan = {"jobs": [{"src": "win.keras", "dst": "refused.onnx"},
                     {"src": "win.keras", "dst": "read.onnx", "accept_windows_paths": True}]}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    res = runner.invoke(cli, ["batch", str(path), "--jobs", "1", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 2                       # the first job: refused without the key
    jobs = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [j["status"] for j in jobs] == ["error", "ok"]
    assert "pass --accept-windows-paths to read them" in jobs[0]["message"]
    assert not (tmp_path / "refused.onnx").exists()
    np.testing.assert_allclose(_ort(tmp_path / "read.onnx", x), want, atol=ATOL)


# -------------------------------------------------------------------------------- validation

def test_plan_option_types_and_external_data_without_onnx(runner, tmp_path):
    src = str(TORCH / "model.safetensors")
    plan = {"defaults": {"external_data": "yes", "layer": ""},
            "jobs": [{"src": src, "dst": "a.keras", "external_data": True},
                     {"src": src, "dst": "b.onnx", "accept_windows_paths": 1, "layer": ["gru"]}]}
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    res = runner.invoke(cli, ["batch", str(path), "--check"])
    assert (res.exit_code, res.stderr) == (2, (
        f"rnnconvert: error: {path}: invalid plan, nothing was run; 5 problems: "
        "defaults.external_data: expected true or false, found str 'yes'; "
        "defaults.layer: expected a layer name (rnnconvert inspect lists them), found str ''; "
        "jobs[0].external_data: goes with an ONNX destination (.onnx), the job has none; "
        "jobs[1].accept_windows_paths: expected true or false, found int 1; "
        "jobs[1].layer: expected a layer name (rnnconvert inspect lists them), found list ['gru']\n"))
    errors = sorted(list(e.absolute_path) for e in jsonschema.Draft202012Validator(PLAN_SCHEMA).iter_errors(plan))
    assert errors == [["defaults", "external_data"], ["defaults", "layer"], ["jobs", 1, "accept_windows_paths"],
                      ["jobs", 1, "layer"]]
