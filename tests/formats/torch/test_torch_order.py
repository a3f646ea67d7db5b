"""The forward order of a state dict's modules (`rnnconvert/formats/torch/order.py`): when several orders
chain the sizes, the file is refused with each order written as the `--arch` line that picks it, and the
line printed converts it.  Oracle: the torch module itself, run by torch, against onnxruntime running the
converted file.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from rnnconvert.cli import cli

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
from torch import nn  # noqa: E402


class Ambiguous(nn.Module):
    """a (3 -> 5), then the GRU, then b (5 -> 5) on the last step; registered b, a, rnn, so the state-dict
    order does not chain, and both a, rnn, b and a, b, rnn chain the sizes."""

    def __init__(self):
        super().__init__()
        self.b = nn.Linear(5, 5)
        self.a = nn.Linear(3, 5)
        self.rnn = nn.GRU(5, 5, batch_first=True)

    def forward(self, x):
        out, _ = self.rnn(self.a(x))
        return self.b(out[:, -1])


def _save(net, path):
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(net.state_dict(), str(path))
    else:
        torch.save(net.state_dict(), path)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_several_orders_refused_listing_each_then_the_printed_line_converts(runner, tmp_path, suffix):
    torch.manual_seed(3)
    net = Ambiguous().eval()
    src, dst = tmp_path / f"net{suffix}", tmp_path / "net.onnx"
    _save(net, src)
    res = runner.invoke(cli, ["convert", str(src), str(dst)])
    assert res.exit_code == 2, res.output + res.stderr
    why = ("safetensors files do not keep module order" if suffix == ".safetensors"
           else "the state-dict order does not chain")
    assert res.stderr.startswith(
        f"rnnconvert: error: {src}: {why}, and 2 orders chain the sizes, so the file does not say which one forward "
        "runs: order: [a, b, rnn] | order: [a, rnn, b]; rnnconvert does not pick one: give the right one as a "
        "line of --arch"), res.stderr
    assert not dst.exists()

    line = re.search(r"order: \[a, rnn, b\]", res.stderr).group(0)     # the line for the forward above
    (tmp_path / "arch.yaml").write_text(line + "\n")
    res = runner.invoke(cli, ["convert", str(src), str(dst), "--arch", str(tmp_path / "arch.yaml")])
    assert res.exit_code == 0, res.output + res.stderr
    x = np.random.default_rng(0).normal(size=(4, 7, 3)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert np.abs(got - want).max() < 1e-5


def test_the_refusal_leaves_each_recurrent_layer_convertible(runner, tmp_path):
    """The whole model is refused; its GRU still converts on its own, as --layer says."""
    torch.manual_seed(3)
    src = tmp_path / "net.pt"
    _save(Ambiguous().eval(), src)
    res = runner.invoke(cli, ["convert", str(src), str(tmp_path / "net.onnx")])
    assert res.exit_code == 2 and "pass --layer NAME (recurrent layers found: rnn (gru))" in res.stderr
    res = runner.invoke(cli, ["convert", str(src), str(tmp_path / "rnn.onnx"), "--layer", "rnn"])
    assert res.exit_code == 0, res.output + res.stderr
