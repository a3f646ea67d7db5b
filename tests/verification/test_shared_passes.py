"""Verification at the cost of the model: passes are shared, and a pass whose result is already known is
not run again (`oracles.check_models`, `state_checks.py`, `budget.fitted_suite`).

A destination that reads back identical to the source gets no reference(dst) and no streaming(reference)
(they would repeat reference(src)) and a note saying so; the destination's own runtime still runs every
input, and a changed read-back still gets reference(dst).  A state-port model's zero-state check reuses the
suite's own pass, bit for bit.  The progress total falls when a runtime turns out missing, so the last
line reads [n/n].  The suite's estimate rests on the longest pass timed, not on a one-step input's overhead;
the destination's runtime is timed apart as the suite is fitted (its output kept: one run per input), and the
passes counted are those that run.
The oracles are onnxruntime (on torch's own export) and Keras 3.
"""
from __future__ import annotations

import io
import re

import numpy as np
import pytest

from conftest import FIXTURES
import rnnconvert
from rnnconvert.model import states
from rnnconvert.reference import forward_with_feeds
from rnnconvert.verification import budget, runtimes
from rnnconvert.verification.oracles import SourcePass
from rnnconvert.verification.progress import Printer
from rnnconvert.verification.suite import input_suite

pytest.importorskip("onnxruntime")
STATES = FIXTURES / "torch_onnx" / "states" / "lstm_linear_batch_first" / "model.onnx"
KERAS = FIXTURES / "keras3" / "stacked_lstm_dense" / "model.keras"
KERAS_STATES = FIXTURES / "keras3" / "states" / "lstm_seq_dense" / "model.keras"   # initial_state, return_state
ONNX_TWO_BIASES = FIXTURES / "torch_onnx" / "lstm_last_linear" / "model.onnx"   # Keras keeps their sum
IDENTICAL = ("reference(dst){} and streaming(reference) not run: the file reads back identical to the source, "
             "every setting and every tensor, so they would repeat reference(src)")
LINE = re.compile(r"^\[(\d+)/(\d+)\] ")


def test_an_identical_read_back_runs_its_runtime_and_not_reference_dst(tmp_path):
    report = rnnconvert.convert(KERAS, tmp_path / "m.onnx", time_budget=float("inf"))
    assert report.passed
    assert report.oracles() == ["onnxruntime(dst)"]
    assert IDENTICAL.format("") in report.notes
    assert [c.input for c in report.checks] == [i["label"] for i in report.inputs]     # every input, by onnxruntime


def test_a_changed_read_back_still_gets_reference_dst_and_streaming(tmp_path):
    report = rnnconvert.convert(ONNX_TWO_BIASES, tmp_path / "m.keras", time_budget=float("inf"))
    assert report.passed
    assert {"reference(dst)", "streaming(reference)", "keras(dst)"} <= set(report.oracles())
    assert not any(n.startswith("reference(dst)") for n in report.notes)


def test_without_a_runtime_an_identical_read_back_is_still_checked_by_reference_dst(tmp_path, monkeypatch):
    def missing(fmt, path, model):
        raise runtimes.RuntimeUnavailable("onnxruntime is not installed")
    monkeypatch.setattr(runtimes, "runner", missing)
    report = rnnconvert.convert(KERAS, tmp_path / "m.onnx", time_budget=float("inf"))
    assert report.passed and "reference(dst)" in report.oracles()
    assert IDENTICAL.format("") not in report.notes
    assert report.unavailable == ["onnxruntime(dst): onnxruntime is not installed"]


def test_a_state_port_model_read_back_identical_skips_only_the_repeated_passes(tmp_path):
    report = rnnconvert.convert(STATES, tmp_path / "m.onnx", time_budget=float("inf"))
    assert report.passed
    assert IDENTICAL.format(" (with and without states)") in report.notes
    oracles = set(report.oracles())
    assert oracles == {"onnxruntime(dst)", "streaming onnxruntime(dst), states carried"}
    labels = [i["label"] for i in report.inputs]
    for label in labels:                  # onnxruntime still runs every input, from random and from zero states
        for kind in ("random states", "zero states"):
            assert any(c.input == f"{label} + {kind}" and c.oracle == "onnxruntime(dst)" for c in report.checks)


def test_the_zero_state_check_reuses_the_suites_pass_bit_for_bit():
    model = rnnconvert.read(STATES)
    source = SourcePass(model)
    for _, x in input_suite(model):
        y = source(x)
        reused, outs = source.zero_states(x)
        again, again_outs = forward_with_feeds(model, x, states.zero_feeds(model, x.shape[0]))
        assert np.array_equal(reused, again) and np.array_equal(y, again)
        assert outs.keys() == again_outs.keys()
        for name in outs:
            assert np.array_equal(outs[name], again_outs[name])
    assert source.zero_states(np.zeros((1, 2, model.input.features), np.float32)) is None    # never run on it


def _progress_lines(run) -> list[tuple[int, int]]:
    stream = io.StringIO()
    with Printer(stream, tty=False) as printer:
        run(printer)
    return [tuple(map(int, m.groups())) for m in map(LINE.match, stream.getvalue().splitlines()) if m]


def test_the_progress_total_falls_when_a_runtime_is_missing(tmp_path, monkeypatch):
    def missing(fmt, path, model):
        raise runtimes.RuntimeUnavailable("onnxruntime is not installed")
    monkeypatch.setattr(runtimes, "runner", missing)
    lines = _progress_lines(lambda p: rnnconvert.convert(ONNX_TWO_BIASES, tmp_path / "m.onnx", progress=p,
                                                         time_budget=float("inf")))
    assert lines and lines[-1][0] == lines[-1][1]            # [n/n]: no check promised that never came
    assert all(total == lines[-1][1] for _, total in lines)


@pytest.mark.parametrize("src, dst", [(STATES, "m.onnx"),                 # rows ports, onnxruntime's runner
                                      (KERAS_STATES, "m.keras")])         # Keras 3's runner, reference(dst)'s
def test_the_progress_total_is_exact_for_a_state_port_model(tmp_path, src, dst):
    lines = _progress_lines(lambda p: rnnconvert.convert(src, tmp_path / dst, progress=p,
                                                         time_budget=float("inf")))
    assert [done for done, _ in lines] == list(range(1, len(lines) + 1))
    assert {total for _, total in lines} == {len(lines)}


def test_the_estimate_rests_on_the_longest_pass_not_a_one_step_overhead(tmp_path, monkeypatch):
    """A pass that costs 50 ms whatever its length: extrapolated from the 1-step input it would be 300 x 50 ms
    for the 300-step one; from the longest pass so far it is what it costs, and nothing is dropped."""
    import time
    from rnnconvert.reference import network
    forward = network.forward_with_states

    def slow(model, x, *args, **kwargs):
        time.sleep(0.05)
        return forward(model, x, *args, **kwargs)
    monkeypatch.setattr(network, "forward_with_states", slow)
    model = rnnconvert.read(KERAS)
    report = rnnconvert.convert(KERAS, tmp_path / "m.onnx", time_budget=30.0)
    passes = report.suite["timed"]["passes_per_input"]
    assert 0.05 * passes * 300 > 30.0                   # the one-step extrapolation would drop inputs
    assert report.suite["shortened"] == []
    assert [i["label"] for i in report.inputs] == [label for label, _ in input_suite(model)]
    assert report.suite["timed"]["input"] == "seeded b2 t300"
    assert budget.fit([(3, 1), (2, 300)], lambda b, t: 1.0, 1.5, False, keep=0) == ([(3, 1)], ["seeded b2 t300 dropped"])


def _counted_runtime(monkeypatch, delay=0.0):
    """Every call of a destination runtime's runner, counted (and slowed by `delay` seconds)."""
    import time
    calls = []
    make = runtimes.runner

    def runner(fmt, path, model):
        run = make(fmt, path, model)

        def counted(x):
            calls.append(x.shape)
            time.sleep(delay)
            return run(x)
        return counted
    monkeypatch.setattr(runtimes, "runner", runner)
    return calls


def test_the_runtime_timed_for_the_estimate_runs_each_input_once(tmp_path, monkeypatch):
    """The destination's runtime runs while the suite is fitted, timed; its check takes the output kept
    then: one run per input, and the report says what it cost."""
    calls = _counted_runtime(monkeypatch)
    report = rnnconvert.convert(KERAS, tmp_path / "m.onnx", time_budget=float("inf"))
    assert report.passed
    suite = [x.shape for _, x in input_suite(rnnconvert.read(KERAS))]
    assert calls == suite                                # once each, in the suite's order
    assert sum(c.oracle == "onnxruntime(dst)" for c in report.checks) == len(suite)
    timed = report.suite["timed"]
    assert timed["runtime"]["passes_per_input"] == 1 and timed["runtime"]["input"] == "seeded b2 t300"
    assert timed["passes_per_input"] == budget.oracle_passes(rnnconvert.read(KERAS), None,
                                                              rnnconvert.formats.for_writing("m.onnx")).total


def test_the_estimate_counts_the_runtime_at_its_own_cost(tmp_path, monkeypatch):
    """A reference pass slowed to 0.2 s and onnxruntime's own few milliseconds: the estimate counts the
    runtime's pass at the runtime's cost, below what counting it as one more reference pass gives; a runtime
    slowed to 1 s a run makes the estimate grow past a 3 s budget, and the suite is shortened, naming it."""
    import time
    from rnnconvert.reference import network
    forward = network.forward_with_states

    def slow(model, x, *args, **kwargs):
        time.sleep(0.2)
        return forward(model, x, *args, **kwargs)
    monkeypatch.setattr(network, "forward_with_states", slow)
    report = rnnconvert.convert(KERAS, tmp_path / "m.onnx", time_budget=float("inf"))
    n, total = len(report.inputs), report.suite["timed"]["passes_per_input"]
    assert report.suite["estimated_seconds"] < 0.2 * n * total            # all at the reference's cost: more
    assert report.suite["timed"]["runtime"]["seconds"] < report.suite["timed"]["seconds"]
    monkeypatch.setattr(network, "forward_with_states", forward)
    _counted_runtime(monkeypatch, delay=1.0)
    report = rnnconvert.convert(KERAS, tmp_path / "m2.onnx", time_budget=3.0)
    assert report.passed and report.suite["shortened"]
    assert report.suite["timed"]["runtime"]["seconds"] >= 1.0
    note = next(n for n in report.notes if n.startswith("suite shortened"))
    assert ", the destination's runtime " in note


def test_the_passes_the_estimate_counts_are_the_passes_that_run(tmp_path, monkeypatch):
    """The state-port model to ONNX: the time steps the reference pass and onnxruntime run, over the
    suite's steps, are the passes `report.suite` counts for each (its zero-state check shares the suite's
    own pass, which is not counted twice; a one-step input is not streamed, hence one step fewer)."""
    from rnnconvert.formats.onnx import runtime as onnx_runtime
    from rnnconvert.reference import network
    ran = {"reference": 0, "runtime": 0}
    forward, run_states = network.forward_with_states, onnx_runtime.run_states

    def reference(model, x, *args, **kwargs):
        ran["reference"] += x.shape[0 if (kwargs.get("layout") or model.input.layout) == "time_batch_feature" else 1]
        return forward(model, x, *args, **kwargs)

    def runtime(path, x, model, *args, **kwargs):
        ran["runtime"] += x.shape[0 if model.input.layout == "time_batch_feature" else 1]
        return run_states(path, x, model, *args, **kwargs)
    monkeypatch.setattr(network, "forward_with_states", reference)
    monkeypatch.setattr(onnx_runtime, "run_states", runtime)
    report = rnnconvert.convert(STATES, tmp_path / "m.onnx", time_budget=float("inf"))
    steps = sum(i["shape"][1] for i in report.inputs)
    timed = report.suite["timed"]
    runtime_passes = timed["runtime"]["passes_per_input"]
    assert ran["reference"] == (timed["passes_per_input"] - runtime_passes) * steps
    one_step = sum(i["shape"][1] == 1 for i in report.inputs)
    assert runtime_passes * steps - one_step <= ran["runtime"] <= runtime_passes * steps
