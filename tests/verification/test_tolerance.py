"""The tolerance a reader can check (issue 15): the float32-noise allowance, its bound, the bound each row
prints, and no allowance for the float64 reference-vs-reference checks.

The model is built here, not read from ../shared/wild: a 3-layer GRU with large recurrent weights, like
`pt_seqclf_gru3x256_hn` there (nn.GRU(9, 256, 3) -> Linear on the last step), amplifies float32 rounding
on the long inputs of the suite.  Broken conversions of it (two gate blocks swapped, the candidate's
activation changed) are made by editing the written ONNX file (`verify`) or by a writer that corrupts the
canonical model before writing (`convert`); both must exit 1.  Expected outputs for the bound come from
torch in float64, not from rnnconvert's reference pass.
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import rnnconvert
from rnnconvert.cli import cli
from rnnconvert.model import SIGMOID, TANH, Activation, Dense, DirectionWeights, InputSpec, Model, Recurrent

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

F, H, LAYERS, CLASSES = 9, 48, 3, 5
GAIN = 4.0          # recurrent weights ~ N(0, GAIN / sqrt(H)): past the edge of chaos, as the wild GRU is
ATOL = RTOL = 1e-4
SOFTSIGN = Activation("softsign")


def amplifying_gru(seed: int = 0) -> Model:
    """A 3-layer GRU (torch's layout, reset after) whose float32 pass strays from float64 on long inputs."""
    rng = np.random.default_rng(seed)
    layers, width = [], F
    for k in range(LAYERS):
        w = DirectionWeights(rng.normal(0, 2.0 / np.sqrt(width), (3 * H, width)).astype(np.float32),
                             rng.normal(0, GAIN / np.sqrt(H), (3 * H, H)).astype(np.float32),
                             rng.normal(0, 0.5, 3 * H).astype(np.float32), rng.normal(0, 0.5, 3 * H).astype(np.float32))
        layers.append(Recurrent(f"gru_{k}", "gru", H, "forward", [w], [SIGMOID, TANH],
                                output="last_step" if k == LAYERS - 1 else "sequence"))
        width = H
    layers.append(Dense("fc", rng.normal(0, 1 / np.sqrt(H), (H, CLASSES)).astype(np.float32),
                        rng.normal(0, 0.1, CLASSES).astype(np.float32)))
    return Model(layers, InputSpec(features=F), name="amplifying_gru")


def torch_run(model: Model, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """The model run by torch, in float64 unless `dtype` says otherwise (nn.GRU keeps the canonical rzn
    order and both biases); the Linear head in float64."""
    gru = torch.nn.GRU(F, H, num_layers=LAYERS, batch_first=True).to(torch.from_numpy(np.zeros(0, dtype)).dtype)
    with torch.no_grad():
        for k, layer in enumerate(model.recurrent_layers):
            w = layer.weights[0]
            for name, a in (("weight_ih", w.W), ("weight_hh", w.R), ("bias_ih", w.Wb), ("bias_hh", w.Rb)):
                getattr(gru, f"{name}_l{k}").copy_(torch.from_numpy(np.asarray(a, dtype)))
        out, _ = gru(torch.from_numpy(x.astype(dtype)))
    fc = model.layers[-1]
    return out[:, -1].double().numpy() @ fc.kernel.astype(np.float64) + fc.bias.astype(np.float64)


def long_input(steps: int = 80) -> np.ndarray:
    return np.random.default_rng(11).standard_normal((2, steps, F)).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("amplifying")
    model = amplifying_gru()
    rnnconvert.write(model, d / "src.rnnc")
    rnnconvert.write(model, d / "good.onnx")
    np.save(d / "x.npy", long_input())
    return d, model


def _report(path) -> dict:
    return json.loads(path.read_text())


def _rows(stdout: str) -> dict:
    """(check, input) -> (max abs, max rel, bound, result) cells of the printed table."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if len(cells) >= 6 and cells[-1] in ("ok", "FAIL") and cells[0].endswith(")"):
            rows[(cells[0], " ".join(cells[1:-4]))] = tuple(cells[-4:])
    return rows


# ------------------------------------------------------------------ the model amplifies float32 rounding

def test_the_model_amplifies_rounding_and_its_correct_conversion_passes(files, runner, tmp_path):
    d, model = files
    res = runner.invoke(cli, ["convert", str(d / "src.rnnc"), str(tmp_path / "m.onnx"), "--inputs", str(d / "x.npy"),
                              "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output + res.stderr
    report = _report(tmp_path / "r.json")
    noise = {i["label"]: i["float32_noise"] for i in report["inputs"]}
    assert noise["seeded b3 t1"] < ATOL / 10                  # one step: rounding stays near float32 epsilon
    assert noise["user inputs"] > 10 * ATOL, noise              # 80 steps: 10x atol and more
    assert noise["seeded b2 t300"] > 0.1, noise                  # chaotic in float32, as the wild GRU is
    # an independent float32 run strays as far: torch in float32 against torch in float64
    x = np.load(d / "x.npy")
    assert np.abs(torch_run(model, x) - torch_run(model, x, np.float32)).max() > 10 * ATOL
    # the allowance is what let onnxruntime pass there: its error is past atol + rtol*|b| but within its bound
    ort = next(c for c in report["checks"] if c["oracle"] == "onnxruntime(dst)" and c["input"] == "user inputs")
    b = torch_run(model, x)[tuple(ort["worst"])]
    assert ort["passed"] and ATOL + RTOL * abs(b) < ort["max_abs"] <= ort["bound"]


# ------------------------------------------------------------------ broken conversions are still caught

def _swap_update_and_reset(model_proto, node):
    """ONNX GRU blocks are z, r, h: swap z and r in W, R and both halves of B."""
    from onnx import numpy_helper
    inits = {t.name: t for t in model_proto.graph.initializer}
    for name in node.input[1:4]:
        t = inits[name]
        a = numpy_helper.to_array(t).copy()
        h = a.shape[1] // (6 if name == node.input[3] else 3)
        blocks = [a[:, i * h:(i + 1) * h].copy() for i in range(a.shape[1] // h)]
        blocks[0], blocks[1] = blocks[1], blocks[0]
        if len(blocks) == 6:
            blocks[3], blocks[4] = blocks[4], blocks[3]
        t.CopyFrom(numpy_helper.from_array(np.concatenate(blocks, axis=1), name))


def _softsign_candidate(model_proto, node):
    from onnx import helper
    attrs = [a for a in node.attribute if a.name != "activations"]
    del node.attribute[:]
    node.attribute.extend(attrs + [helper.make_attribute("activations", ["Sigmoid", "Softsign"])])


def _broken_onnx(src, dst, corrupt, layer: int = 1):
    proto = onnx.load(str(src))
    node = [n for n in proto.graph.node if n.op_type == "GRU"][layer]
    corrupt(proto, node)
    onnx.save(proto, str(dst))


def _swap_canonical(model):
    w = model.recurrent_layers[1].weights[0]
    for a in ("W", "R", "Wb", "Rb"):
        m = getattr(w, a).copy()
        m[:H], m[H:2 * H] = m[H:2 * H].copy(), m[:H].copy()          # r <-> z
        setattr(w, a, m)


def _softsign_canonical(model):
    model.recurrent_layers[1].activations[1] = SOFTSIGN


BREAKS = {"gate blocks swapped": (_swap_update_and_reset, _swap_canonical),
          "candidate activation changed": (_softsign_candidate, _softsign_canonical)}


@pytest.mark.parametrize("what", BREAKS)
def test_verify_catches_a_broken_conversion_of_the_amplifying_model(what, files, runner, tmp_path):
    d, _ = files
    _broken_onnx(d / "good.onnx", tmp_path / "broken.onnx", BREAKS[what][0])
    res = runner.invoke(cli, ["verify", str(d / "src.rnnc"), str(tmp_path / "broken.onnx"),
                              "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 1, res.output + res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("rnnconvert: error: NOT EQUIVALENT: ")
    assert "first difference at layer 'gru_1' (layers[1])" in res.stderr
    report = _report(tmp_path / "r.json")
    failed = {(c["oracle"], c["input"]) for c in report["checks"] if not c["passed"]}
    # caught where rounding is small, and by the float64 check even where it is large
    assert ("onnxruntime(dst)", "seeded b3 t7") in failed and ("reference(dst)", "seeded b2 t300") in failed


@pytest.mark.parametrize("what", BREAKS)
def test_convert_catches_a_writer_that_breaks_the_amplifying_model(what, files, runner, tmp_path, monkeypatch):
    import rnnconvert.formats.onnx as onnx_format
    d, _ = files
    write = onnx_format.write

    def broken_write(model, path, **options):
        model = copy.deepcopy(model)
        BREAKS[what][1](model)
        return write(model, path, **options)

    monkeypatch.setattr(onnx_format, "write", broken_write)
    res = runner.invoke(cli, ["convert", str(d / "src.rnnc"), str(tmp_path / "m.onnx")])
    assert res.exit_code == 1, res.output + res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("rnnconvert: error: NOT EQUIVALENT: ")
    assert not (tmp_path / "m.onnx").exists()


# ------------------------------------------------------------------ the bound each row prints

def test_each_row_prints_atol_plus_allowance_plus_rtol_b(files, runner, tmp_path):
    d, model = files
    res = runner.invoke(cli, ["verify", str(d / "src.rnnc"), str(d / "good.onnx"), "--inputs", str(d / "x.npy"),
                              "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output + res.stderr
    report = _report(tmp_path / "r.json")
    noise = next(i["float32_noise"] for i in report["inputs"] if i["label"] == "user inputs")
    b = torch_run(model, np.load(d / "x.npy"))
    allowance = min(10 * noise, 2 * np.abs(b).max())
    assert allowance == 10 * noise                                   # the cap does not bite here
    # the .onnx reads back identical (no reference(dst)); a .rnnc, which has no runtime, is checked by reference(dst)
    rnnconvert.write(model, tmp_path / "good.rnnc")
    by_rnnc = runner.invoke(cli, ["verify", str(d / "src.rnnc"), str(tmp_path / "good.rnnc"), "--inputs",
                                  str(d / "x.npy"), "--report", str(tmp_path / "rnnc.json")])
    assert by_rnnc.exit_code == 0, by_rnnc.output + by_rnnc.stderr
    for oracle, extra, output, data in (("onnxruntime(dst)", allowance, res.output, report),
                                        ("reference(dst)", 0.0, by_rnnc.output, _report(tmp_path / "rnnc.json"))):
        check = next(c for c in data["checks"] if c["oracle"] == oracle and c["input"] == "user inputs")
        bound = ATOL + extra + RTOL * abs(b[tuple(check["worst"])])
        assert check["bound"] == pytest.approx(bound, rel=1e-9), oracle
        assert _rows(output)[(oracle, "user inputs")][2] == f"{bound:.3g}", oracle
    assert ("allowance = min(10*noise, 2*max|b|), noise: the input's float32 noise; none for "
            "reference(dst) and streaming(reference) (float64 on both sides); bound: at the max abs element") in res.output
    policy = report["tolerance_policy"]
    assert (policy["noise_factor"], policy["noise_cap"]) == (10, 2)
    assert policy["float64_oracles"] == ["reference(dst)", "streaming(reference)"]


def test_allowance_is_capped():
    from rnnconvert.verification.checks import compare
    tol = {"atol": ATOL, "rtol": RTOL}
    expected = np.array([0.5, -1.0])             # cap: 2 * max|b| = 2
    assert compare(expected + 1.9, expected, tol, "onnxruntime(dst)", "x", noise=1.0).passed
    check = compare(expected + 2.5, expected, tol, "onnxruntime(dst)", "x", noise=1.0)     # 10*noise would be 10
    assert not check.passed
    assert check.bound == pytest.approx(ATOL + 2.0 + RTOL * 0.5)


# ------------------------------------------------------------------ reference(dst): no noise allowance

def test_float64_checks_get_no_allowance_by_themselves():
    from rnnconvert.verification.checks import compare
    tol = {"atol": ATOL, "rtol": RTOL}
    expected = np.array([0.5, -1.0])
    actual = expected + 5e-4                    # past atol + rtol*|b|, inside 10 * noise
    assert compare(actual, expected, tol, "onnxruntime(dst)", "x", noise=1e-4).passed
    for oracle in ("reference(dst)", "streaming(reference)"):
        check = compare(actual, expected, tol, oracle, "x", noise=1e-4)
        assert not check.passed and check.bound == pytest.approx(ATOL + RTOL * 0.5), oracle


def test_a_difference_inside_the_allowance_fails_reference_dst(files, runner, tmp_path):
    """The head's bias moved by a few times the float32 noise of the long input: onnxruntime, allowed 10x
    the noise there, passes that input; reference(dst), allowed none, fails it."""
    d, model = files
    res = runner.invoke(cli, ["verify", str(d / "src.rnnc"), str(d / "good.onnx"), "--inputs", str(d / "x.npy"),
                              "--report", str(tmp_path / "good.json")])
    assert res.exit_code == 0, res.stderr
    noise = next(i["float32_noise"] for i in _report(tmp_path / "good.json")["inputs"] if i["label"] == "user inputs")
    shifted = copy.deepcopy(model)
    shift = 3 * noise
    assert shift > ATOL + RTOL * np.abs(torch_run(model, np.load(d / "x.npy"))).max()
    shifted.layers[-1].bias = shifted.layers[-1].bias + np.float32(shift)
    rnnconvert.write(shifted, tmp_path / "shifted.onnx")
    res = runner.invoke(cli, ["verify", str(d / "src.rnnc"), str(tmp_path / "shifted.onnx"), "--inputs",
                              str(d / "x.npy"), "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 1, res.output + res.stderr
    rows = _rows(res.stderr)
    assert rows[("onnxruntime(dst)", "user inputs")][3] == "ok"
    assert rows[("reference(dst)", "user inputs")][3] == "FAIL"
