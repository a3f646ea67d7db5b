"""Every reader x every writer over the fixtures.

Each fixture is converted with `rnnconvert.convert` (which verifies), then the written file is run by
its own framework here: onnxruntime, Keras 3 (`load_model`), torch (the emitted module loading
the written state dict), Octave (matlab/rnnconvert_predict.m, MATLAB's documented equations). Its output must match the
SOURCE framework's stored predictions within 1e-4.  A writer may refuse only where the table
REFUSALS says so, with a message naming the feature.
"""
from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

import rnnconvert
from conftest import Case, cases, matlab_cannot_express
from rnnconvert.errors import UnsupportedError

TARGETS = ("model.onnx", "model.keras", "model.h5", "model.pt", "model.safetensors", "model.mat")

SOURCES = (cases("tfkeras2", suffixes=(".h5",)) + cases("keras3", suffixes=(".keras",))
           + cases("torch_onnx", "tf2onnx", suffixes=(".onnx",)) + cases("torch", suffixes=(".pt",)))

# (source case name, target suffix) -> words the refusal must contain.
REFUSALS = {
    **{(name, sfx): "initial state" for name in ("lstm_initial_state_expand", "lstm_initial_state_const")
       for sfx in (".keras", ".h5")},
    **{(name, sfx): "projection" for name in ("lstm_proj_linear",) for sfx in (".keras", ".h5")},
    # PyTorch modules have fixed sigmoid/tanh cells and always reset after the recurrent product.
    **{(name, sfx): "hard_sigmoid" for name in ("lstm_hard_sigmoid", "gru_hard_sigmoid")
       for sfx in (".pt", ".safetensors")},
    **{(name, sfx): "reset" for name in ("gru_reset_before_last",) for sfx in (".pt", ".safetensors")},
    **{(name, sfx): "sigmoid" for name in ("lstm_sigmoid_sigmoid",) for sfx in (".pt", ".safetensors")},
    **{(name, sfx): "selu" for name in ("simplernn_selu_dense",) for sfx in (".pt", ".safetensors")},
    # PyTorch modules carry no mask (Keras mask_zero / Masking).
    **{(name, sfx): "PyTorch modules carry no mask"
       for name in ("embed_mask_bigru_last", "embed_mask_bilstm_seq", "embed_mask_gru_backwards_seq_dense",
                    "embed_mask_lstm_seq_gap_dense", "masking_lstm_seq_lstm") for sfx in (".pt", ".safetensors")},
}


def arch_for(case: Case):
    arch = case.folder / "arch.json"
    return {"arch": str(arch)} if arch.exists() else {}


def run_target(path, x, model):
    suffix = path.suffix
    if suffix == ".onnx":
        import onnxruntime as ort
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(inp.type, np.float32)   # token ids
        return sess.run(None, {inp.name: x.astype(dtype)})[0]
    if suffix == ".mat":
        from rnnconvert.formats import matlab
        return matlab.run(path, x, model)
    if suffix in (".keras", ".h5"):
        import keras
        return np.asarray(keras.models.load_model(path, compile=False).predict(x.astype(np.float32), verbose=0))
    import torch
    from rnnconvert.formats.torch import write_module
    code = path.with_suffix(".module.py")
    write_module(model, code, weights=path.name)
    spec = importlib.util.spec_from_file_location(f"emitted_{abs(hash(str(code)))}", code)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Model()
    if suffix == ".pt":
        state = torch.load(path, map_location="cpu", weights_only=True)
    else:
        from safetensors.torch import load_file
        state = load_file(str(path))
    net.load_state_dict(state, strict=True)
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(x.astype(np.float32))).numpy()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("case", SOURCES, ids=lambda c: c.id)
def test_convert_and_run_in_target_framework(case, target, tmp_path):
    if target.endswith((".pt", ".safetensors")):
        pytest.importorskip("torch")
    if target.endswith((".keras", ".h5")):
        pytest.importorskip("keras")
    if target.endswith(".mat") and not shutil.which("octave"):
        pytest.skip("octave is not installed (.ci/run installs it)")
    dst = tmp_path / target
    expected_refusal = REFUSALS.get((case.name, dst.suffix))
    if dst.suffix == ".mat":
        expected_refusal = matlab_cannot_express(rnnconvert.read(case.path, **arch_for(case)))
    if expected_refusal:
        with pytest.raises(UnsupportedError) as exc:
            rnnconvert.convert(case.path, dst, read_options=arch_for(case))
        assert expected_refusal in str(exc.value)
        assert not dst.exists()
        return
    report = rnnconvert.convert(case.path, dst, read_options=arch_for(case))
    assert report.passed and report.checks
    model = rnnconvert.read(dst)
    for key, x, y in case.io():
        if case.meta.get("input_layout") == "time_batch_feature" and model.input.layout != "time_batch_feature":
            out = np.swapaxes(run_target(dst, np.swapaxes(x, 0, 1), model), 0, 1) if y.ndim == 3 else \
                run_target(dst, np.swapaxes(x, 0, 1), model)
        else:
            out = run_target(dst, x, model)
        np.testing.assert_allclose(out, y, atol=1e-4, rtol=0, err_msg=f"{case.id} -> {target} [{key}]")


@pytest.mark.parametrize("via", ["model.onnx", "model.keras"])
@pytest.mark.parametrize("case", cases("torch", suffixes=(".pt",)), ids=lambda c: c.id)
def test_torch_fixtures_go_out_and_come_back(case, via, tmp_path):
    """PyTorch -> ONNX or Keras -> PyTorch: the state dict that comes back runs in torch like the original."""
    pytest.importorskip("torch")
    mid, back = tmp_path / via, tmp_path / "back.pt"
    expected_refusal = REFUSALS.get((case.name, mid.suffix))
    if expected_refusal:
        with pytest.raises(UnsupportedError, match=expected_refusal):
            rnnconvert.convert(case.path, mid, read_options=arch_for(case))
        return
    rnnconvert.convert(case.path, mid, read_options=arch_for(case))
    rnnconvert.convert(mid, back)
    model = rnnconvert.read(back)
    for key, x, y in case.io():
        np.testing.assert_allclose(run_target(back, x, model), y, atol=1e-4, rtol=0, err_msg=f"{case.id} via {via} [{key}]")
