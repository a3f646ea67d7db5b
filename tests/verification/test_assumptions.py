"""Assumptions are part of the proof: each one a reader makes is listed in the JSON report (kind, what,
the hint that settles it), named by the verdict line, and `--strict` turns any of them into exit 2 naming
it and its hint (`rnnconvert/model/assumptions.py`).  Every kind a reader makes is refused through the CLI;
the hints given, the same file converts under --strict, checked against torch running the module.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

import rnnconvert
from conftest import FIXTURES, ROOT
from rnnconvert.cli import cli
from rnnconvert.errors import InputError

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
jsonschema = pytest.importorskip("jsonschema")
from torch import nn  # noqa: E402

REPORT_SCHEMA = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
RNN_RELU = FIXTURES / "torch" / "rnn_relu_linear"


class Tagger(nn.Module):
    """front (a BatchNorm1d, an Embedding or nothing) -> GRU -> Linear on the last step."""

    def __init__(self, front: str = ""):
        super().__init__()
        if front == "bn":
            self.bn = nn.BatchNorm1d(4)
        elif front == "emb":
            self.emb = nn.Embedding(10, 4)
        self.rnn = nn.GRU(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


# every setting the state dict cannot say, given
SETTLED = {"batch_first": True, "head": "last_step", "activations": {}}
FRONT_SETTLED = {"": {}, "bn": {"modules": {"bn": {"eps": 1.0e-5}}}, "emb": {"modules": {"emb": {"type": "embedding"}}}}

# kind -> (front module, the hint key left out, what the refusal names)
KINDS = {
    "layout": ("", "batch_first",
               "layout: batch_first true (settle it: --arch batch_first: true (false if the module was time-major))"),
    "head": ("", "head",
             "head: 'fc' reads out[:, -1] of 'rnn' (settle it: --arch head: last_step (or final_state, h_n[-1], "
             "sequence))"),
    "activation": ("", "activations",
                   "activation: no activation between modules (settle it: --arch activations: {} (or {module: "
                   "softmax} where forward applies one))"),
    "order": ("", "order", "order: modules run in state-dict order rnn, fc (settle it: --arch order: [rnn, fc])"),
    "default": ("bn", "modules", "default: nn.BatchNorm1d 'bn' eps 1e-05 (settle it: --arch modules: {bn: {eps: "
                                 "1.0e-5}})"),
    "architecture": ("emb", "modules", "architecture: 'emb' is an nn.Embedding (settle it: --arch modules: {emb: "
                                       "{type: embedding}} (or linear))"),
}


def _source(tmp_path, front=""):
    torch.manual_seed(1)
    net = Tagger(front).eval()
    src = tmp_path / f"tagger{front}.pt"
    torch.save(net.state_dict(), src)
    return net, src


def _arch(tmp_path, front="", leave_out=None) -> str:
    order = ([front] if front else []) + ["rnn", "fc"]
    hints = {**SETTLED, "order": order, **FRONT_SETTLED[front]}
    hints.pop(leave_out, None)
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(hints))
    return str(path)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_strict_refuses_each_kind_naming_it_and_its_hint(runner, tmp_path, kind):
    front, leave_out, named = KINDS[kind]
    _, src = _source(tmp_path, front)
    dst = tmp_path / "out.onnx"
    arch = _arch(tmp_path, front, leave_out)
    res = runner.invoke(cli, ["convert", str(src), str(dst), "--arch", arch, "--strict"])
    assert res.exit_code == 2, res.output + res.stderr
    assert res.stderr == (f"rnnconvert: error: {src}: --strict: read under 1 assumption the file does not settle: "
                          f"{named}\n")
    assert not dst.exists()
    res = runner.invoke(cli, ["convert", str(src), str(dst), "--arch", arch])     # without --strict: converts
    assert res.exit_code == 0, res.output + res.stderr
    assumed = named.split(": ", 1)[1].split(" (settle it")[0]
    assert res.output.rstrip().splitlines()[-1] == f"  EQUIVALENT (under 1 assumption: {assumed})"
    res = runner.invoke(cli, ["verify", str(src), str(dst), "--arch", arch, "--strict"])
    assert res.exit_code == 2, res.output + res.stderr
    assert res.stderr == (f"rnnconvert: error: {src}: --strict: read under 1 assumption the file does not settle: "
                          f"{named}\n")


def test_strict_converts_when_every_setting_is_given(runner, tmp_path):
    net, src = _source(tmp_path)
    dst = tmp_path / "out.onnx"
    res = runner.invoke(cli, ["convert", str(src), str(dst), "--arch", _arch(tmp_path), "--strict"])
    assert res.exit_code == 0, res.output + res.stderr
    assert res.output.rstrip().endswith("\n  EQUIVALENT")
    x = np.random.default_rng(2).normal(size=(3, 5, 4)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    assert np.abs(sess.run(None, {sess.get_inputs()[0].name: x})[0] - want).max() < 1e-5


def test_library_strict(tmp_path):
    _, src = _source(tmp_path)
    with pytest.raises(InputError) as err:
        rnnconvert.convert(src, tmp_path / "out.onnx", strict=True)
    assert err.value.message.startswith("--strict: read under 4 assumptions the file does not settle: order: ")
    report = rnnconvert.convert(src, tmp_path / "out.onnx", read_options={"arch": _arch(tmp_path)}, strict=True)
    assert report.passed and report.assumptions == []


VERDICT = ("  EQUIVALENT (under 4 assumptions: modules run in state-dict order rnn, fc; batch_first true; 'fc' reads "
           "out[:, -1] of 'rnn'; no activation between modules)")


def test_verdict_line_and_json_report_list_the_assumptions(runner, tmp_path):
    src, dst, report = RNN_RELU / "model.pt", tmp_path / "model.onnx", tmp_path / "r.json"
    (tmp_path / "arch.yaml").write_text("nonlinearity: relu\n")
    res = runner.invoke(cli, ["convert", str(src), str(dst), "--arch", str(tmp_path / "arch.yaml"),
                              "--report", str(report)])
    assert res.exit_code == 0, res.output + res.stderr
    assert res.output.rstrip().splitlines()[-1] == VERDICT
    d = json.loads(report.read_text())
    jsonschema.Draft202012Validator(REPORT_SCHEMA).validate(d)
    assert [(a["kind"], a["hint"], a["file"]) for a in d["assumptions"]] == [
        ("order", "--arch order: [rnn, fc]", str(src)),
        ("layout", "--arch batch_first: true (false if the module was time-major)", str(src)),
        ("head", "--arch head: last_step (or final_state, h_n[-1], sequence)", str(src)),
        ("activation", "--arch activations: {} (or {module: softmax} where forward applies one)", str(src))]
    assert d["assumptions"][1]["text"] == ("batch_first not stored in a state dict: assumed true, input [batch, "
                                           "time, features] (give --arch with batch_first: false if the module "
                                           "was time-major)")
    assert d["passed"] is True
    # the converted file states everything: verify names A's assumptions only
    res = runner.invoke(cli, ["verify", str(src), str(dst), "--arch", str(tmp_path / "arch.yaml"),
                              "--report", str(report)])
    assert res.exit_code == 0 and res.output.rstrip().splitlines()[-1] == VERDICT
    assert {a["file"] for a in json.loads(report.read_text())["assumptions"]} == {str(src)}


def test_a_file_rnnconvert_wrote_is_read_under_no_assumption(runner, tmp_path):
    src, arch = RNN_RELU / "model.pt", tmp_path / "arch.yaml"
    arch.write_text("nonlinearity: relu\n")
    for out in ("model.rnnc", "model.onnx"):
        res = runner.invoke(cli, ["convert", str(src), str(tmp_path / out), "--arch", str(arch)])
        assert res.exit_code == 0, res.output + res.stderr
    back = rnnconvert.read(tmp_path / "model.rnnc")
    assert "assumptions" not in back.source
    assert back.source["assumed_when_converted"][1].startswith("batch_first not stored in a state dict")
    res = runner.invoke(cli, ["verify", str(tmp_path / "model.rnnc"), str(tmp_path / "model.onnx"), "--strict"])
    assert res.exit_code == 0, res.output + res.stderr
    assert res.output.rstrip().endswith("\n  EQUIVALENT")
