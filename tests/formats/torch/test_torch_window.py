"""A state dict whose forward keeps some steps of an RNN's output (`out[:, -3:]`, `out[:, 2]`, time-major
`out[-3:]`): `--arch head:` names the window, and the model reads as the module returning its sequence then a
TimeWindow; torch itself is the oracle (the module's forward), and the ONNX written from it runs in onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import rnnconvert
from rnnconvert.cli import cli

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
TOL = 1e-4


HEADS = {"out[:, -3:]": lambda out: out[:, -3:], "out[:, 2]": lambda out: out[:, 2],
         "out[:, 1:-1]": lambda out: out[:, 1:-1], "out[-3:]": lambda out: out[-3:]}


class Net(torch.nn.Module):
    def __init__(self, head, batch_first=True):
        super().__init__()
        self.rnn = torch.nn.GRU(3, 4, batch_first=batch_first, bidirectional=True)
        self.fc = torch.nn.Linear(8, 2)
        self.head = head

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(HEADS[self.head](out))


@pytest.mark.parametrize("head,batch_first", [("out[:, -3:]", True), ("out[:, 2]", True), ("out[:, 1:-1]", True),
                                              ("out[-3:]", False)])
def test_arch_head_window_reads_and_predicts_as_torch(head, batch_first, tmp_path):
    torch.manual_seed(0)
    net = Net(head, batch_first).eval()
    torch.save(net.state_dict(), tmp_path / "m.pt")
    (tmp_path / "arch.yaml").write_text(yaml.safe_dump({"head": head, "batch_first": batch_first}))
    model = rnnconvert.read(str(tmp_path / "m.pt"), arch=str(tmp_path / "arch.yaml"))
    assert [layer.kind for layer in model.layers] == ["gru", "time_window", "dense"]
    assert model.layers[0].output == "sequence"
    rnnconvert.write(model, str(tmp_path / "m.onnx"))
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for b, t in ((3, 5), (2, 9)):
        x = rng.standard_normal((b, t, 3) if batch_first else (t, b, 3)).astype(np.float32)
        x[-1] *= 6
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(rnnconvert.predict(model, x), want, atol=TOL, rtol=TOL)
        np.testing.assert_allclose(sess.run(None, {sess.get_inputs()[0].name: x})[0], want, atol=TOL, rtol=TOL)


def test_arch_head_that_is_no_window_is_refused(tmp_path):
    torch.save(Net("out[:, -3:]").state_dict(), tmp_path / "m.pt")
    (tmp_path / "arch.yaml").write_text("head: 'out[:, ::2]'\n")
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path / "m.pt"), "--arch", str(tmp_path / "arch.yaml")])
    assert result.exit_code == 2, result.output
    assert ("head: 'out[:, ::2]', expected one of last_step, final_state, h_n[-1], sequence or a time window such "
            "as out[:, -5:], out[:, 3]") in result.output
