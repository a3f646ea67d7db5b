"""Shared test helpers: fixture discovery and the CLI runner.

Fixtures live in fixtures/<origin>/<case>/ with the model file, inputs.npz, outputs.npz (the source
framework's own predictions) and case.json; fixtures/README.md says how they were made.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
WILD = ROOT.parent / "shared" / "wild"


class Case:
    def __init__(self, folder: Path, model_file: Path):
        self.folder = folder
        self.path = model_file
        self.origin = folder.parent.name
        self.name = folder.name
        self.meta = json.loads((folder / "case.json").read_text())

    @property
    def id(self):
        return f"{self.origin}/{self.name}/{self.path.name}"

    def io(self):
        """[(key, x, y)] for every stored input/output pair."""
        xs, ys = np.load(self.folder / "inputs.npz"), np.load(self.folder / "outputs.npz")
        return [(k, xs[k], ys[k]) for k in xs.files]


def cases(*origins: str, suffixes=(".h5", ".keras", ".onnx")) -> list[Case]:
    """Every fixture model file of the given origins; fails loudly when there are none."""
    found = []
    for origin in origins:
        for folder in sorted((FIXTURES / origin).glob("*/")):
            for f in sorted(folder.iterdir()):
                if f.suffix in suffixes and f.name.startswith("model"):
                    found.append(Case(folder, f))
    if not found:
        raise RuntimeError(f"no fixtures found for {origins} under {FIXTURES}")
    return found


def keras_cases():
    return cases("tfkeras2", "keras3", suffixes=(".h5", ".keras"))


def matlab_cannot_express(model) -> str | None:
    """What MATLAB's layers cannot hold, from MATLAB's documented layer set, independent of the writer."""
    matlab_activations = ("linear", "relu", "tanh", "sigmoid", "softmax")    # reluLayer, tanhLayer, ...
    for layer in model.layers:
        if layer.kind == "masking" or (layer.kind == "embedding" and layer.mask_zero):
            return "MATLAB layers take no mask"
        if layer.kind == "flatten":             # flattenLayer folds spatial dimensions into channels, not time
            return "flattenLayer collapses only spatial dimensions"
        if layer.kind == "conv1d" and layer.groups != 1:    # groupedConvolution2dLayer only
            return "convolution1dLayer has no groups"
        if layer.kind in ("conv1d", "dense") and layer.activation.name not in matlab_activations:
            return "has no MATLAB layer"
    for layer in model.recurrent_layers:
        if layer.cell == "rnn":
            return "MATLAB has no built-in simple RNN layer"
        if any(w.proj is not None for w in layer.weights):
            return "an LSTM projection has no lstmLayer property"
        if layer.direction == "reverse":
            return "a reverse-only layer has no MATLAB equivalent"
        if layer.direction == "bidirectional" and layer.cell == "gru":
            return "MATLAB has no bidirectional GRU layer"
        if layer.direction == "bidirectional" and layer.merge != "concat":
            return f"merge '{layer.merge}', bilstmLayer concatenates"
        if layer.direction == "bidirectional" and layer.output == "final_state":
            return "the backward direction's final state"
        if layer.cell == "lstm" and layer.activations[1] != layer.activations[2]:
            return "MATLAB takes one StateActivationFunction"
        if layer.cell == "lstm" and layer.activations[1].name == "sigmoid":
            return "MATLAB takes one StateActivationFunction"
        if any(w.h0 is not None and w.h0.ndim == 2 for w in layer.weights):
            return "differs per batch row; MATLAB keeps one state vector"
    return None


@pytest.fixture
def runner():
    from click.testing import CliRunner
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart by default
        return CliRunner()


def pytest_terminal_summary(terminalreporter):
    """The fuzz suite's per-format table (tests/fuzz_report.py), when test_fuzz.py ran; JSON to $FUZZ_REPORT."""
    import sys
    report = sys.modules.get("fuzz_report")
    if report is None or not report.TALLIES:
        return
    terminalreporter.write_sep("=", "fuzz cases per format")
    terminalreporter.write_line(report.table(report.TALLIES))
    if os.environ.get("FUZZ_REPORT"):
        cases = max(t.cases for t in report.TALLIES.values())
        report.write_json(report.TALLIES, os.environ["FUZZ_REPORT"], cases)
        terminalreporter.write_line(f"fuzz counts written to {os.environ['FUZZ_REPORT']}")


@pytest.fixture
def read_only(tmp_path):
    """A folder on a read-only bind mount of itself (root only; CI runs as root)."""
    import subprocess
    d = tmp_path / "ro"
    d.mkdir()
    if subprocess.run(["mount", "--bind", str(d), str(d)], capture_output=True).returncode:
        pytest.skip("cannot bind-mount here (not root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(d)], check=True)
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=True)
