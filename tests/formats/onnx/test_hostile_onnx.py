"""Hostile ONNX files (tests/hostile_onnx.py) end in exit 2 with one line, in seconds and under a memory limit.

Each file goes through `rnnconvert inspect` and `rnnconvert convert SRC out.rnnc` in a subprocess limited
to SECONDS of wall time, QUICK seconds of CPU time and LIMIT_AS of address space: the message names the node, attribute or initializer; nothing
is written and no temporary is left beside the source.  The raw recurrent graphs (a node's Y or Y_h as
the graph output, state ports, a fixed batch size) verify against themselves with exit 0.  Graphs of
50,000 nodes whose work grew faster than the file (LINEAR) read cleanly within LINEAR_CPU seconds.  In-process: the folding budget's
time limit, and that folded constants no node still needs are dropped (traced peak).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

import hostile_onnx as hostile
from rnnconvert.cli.commands import cli
from rnnconvert.formats.onnx import _fold

pytestmark = pytest.mark.slow     # run by .ci/run after the README's test command

ROOT = Path(__file__).resolve().parents[3]
SECONDS = 60                 # wall clock: a case that hangs fails here (the old reader ran seqmap_loop forever)
LIMIT_AS = 3 << 30           # address space of the subprocess: a TiB allocation cannot be attempted and survive
QUICK = 10.0                 # CPU seconds a refusal may take, start-up included (wall time varies with load)
LINEAR_CPU = 7.0             # CPU seconds for LINEAR: 3.3 s at most measured, the old reader's fastest case 10.5 s

FOLD_TOO_BIG = "its output on constant inputs would take {n} bytes, more than the file's weights allow ("
REFUSED = {
    "seqmap_loop": "SequenceConstruct node 'construct': sequence and optional values are never evaluated while "
                   "reading; store the weights as initializers",
    "loop_weight": "Loop node 'endless': control flow (Loop) on the way from the input to the output; rnnconvert "
                   "reads graphs whose recurrence is native LSTM/GRU/RNN nodes",
    "expand_weight": "Expand node 'big_expand': " + FOLD_TOO_BIG.format(n=(1 << 40) * 3 * 4),
    "constant_of_shape_weight": "ConstantOfShape node 'big_fill': " + FOLD_TOO_BIG.format(n=(1 << 42) * 4),
    "tile_weight": "Tile node 'big_tile': " + FOLD_TOO_BIG.format(n=(1 << 30) * 24 * 4),
    "range_weight": "Range node 'big_range': " + FOLD_TOO_BIG.format(n=(1 << 40) * 8),
    "branch_expand_weight": "Expand node 'big_expand': " + FOLD_TOO_BIG.format(n=(1 << 31) * 3 * 4),
    "many_constants": "Add node 'add_8': constants computed from the file's would take more than ",
    "opset_999": "the model imports opset 999 of the default ONNX domain; this installation knows opsets 1 to ",
    "layout_7": "node 'lstm_1' (LSTM): attribute 'layout' is 7; expected 0 or 1",
    "hidden_float": "node 'lstm_1' (LSTM): attribute 'hidden_size' is FLOAT 2.0; expected INT",
    "hidden_string": "node 'lstm_1' (LSTM): attribute 'hidden_size' is STRING '2'; expected INT",
    "hidden_negative": "node 'lstm_1' (LSTM): attribute 'hidden_size' is -2; expected a positive integer",
    "hidden_zero": "node 'lstm_1' (LSTM): attribute 'hidden_size' is 0; expected a positive integer",
    "direction_sideways": "node 'lstm_1' (LSTM): attribute 'direction' is 'sideways'; expected 'forward', "
                          "'reverse' or 'bidirectional'",
    "activation_unknown": "node 'lstm_1' (LSTM): attribute 'activations' names ['Exec'], which LSTM does not know",
    **{f"weight_{k}": f"initializer 'W' is {name}; rnnconvert reads float16/32/64, bfloat16, integer and bool "
                      "tensors (export the weights as float32)"
       for k, name in (("int4", "INT4"), ("uint4", "UINT4"), ("float4", "FLOAT4E2M1"), ("float8", "FLOAT8E4M3FN"),
                       ("complex", "COMPLEX64"), ("string", "STRING"))},
    "weight_negative_dims": "initializer 'W' has dims [-1, 8, 3]; dims are never negative",
    "weight_huge_dims": "initializer 'W' declares dims [1099511627776, 8, 3] (26388279066624 elements) in a file of ",
    "input_huge_dim": "graph input 'X' declares shape [1099511627776, 'b', 3], more than 268435456 elements",
    "input_negative_dim": "graph input 'X' declares shape [-5, 'b', 3]; dims are never negative",
    "fanout_neg": "Neg node 'neg_1",      # 10,000 evaluated (+1 per 4 KiB of the file): the count is the budget's
    "concat_chain": "Concat node 'dag_17': " + FOLD_TOO_BIG.format(n=(4 * 2 * 3 * 4) << 18),
}
FANOUT_NODES = ("nodes to evaluate on constant inputs, far more than its weights explain; store the weights as "
                "initializers")
# graphs whose work grew faster than the file (50,000 nodes): a clean result, or exit 2 with this message
LINEAR = {"fanout_identity": {}, "many_lstm": {}, "state_chain": {},
          "state_dag": {"convert": "the graph has 2 inputs ('X', 's'); rnnconvert reads models with one input"}}
RAW = ["raw_y", "raw_y_h", "raw_state_ports", "raw_fixed_batch", "fixed_batch_one"]
CONVERT_OPTIONS = {"branch_expand_weight": ("--layer", "lstm_1")}     # the whole model is refused before


def _limits():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def rnnconvert(*args, cwd):
    """(the finished process, its CPU seconds)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), KERAS_BACKEND="torch")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "rnnconvert", *map(str, args)], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=SECONDS, preexec_fn=_limits)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def test_every_builder_has_an_expectation():
    assert sorted(b.__name__ for b in hostile.BUILDERS) == sorted(list(REFUSED) + RAW + ["raw_two_outputs"] +
                                                                  list(LINEAR))


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_file_is_refused_in_seconds(name, tmp_path):
    src = getattr(hostile, name)(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (("inspect", src.name), ("convert", src.name, "out.rnnc", *CONVERT_OPTIONS.get(name, ()))):
        proc, seconds = rnnconvert(*args, cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr[-2000:])
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"rnnconvert: error: {src.name}: {REFUSED[name]}"), lines[0]
        if name == "fanout_neg":
            assert FANOUT_NODES in lines[0], lines[0]
        assert seconds < QUICK, (args, seconds)
        assert sorted(p.name for p in tmp_path.iterdir()) == before      # nothing written, no temporary left


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_work_grows_with_the_file_not_faster(name, tmp_path):
    """50,000 nodes sharing one weight, LSTM nodes sharing W and R, an Identity chain into a state, a DAG of
    width**levels paths: inspect and convert end in LINEAR_CPU seconds (the old reader: 11 s CPU and 35 s wall,
    past 60 s, exit 3 RecursionError, past 60 s)."""
    src = getattr(hostile, name)(tmp_path)
    for args in (("inspect", src.name), ("convert", src.name, "out.rnnc")):
        before = sorted(p.name for p in tmp_path.iterdir())
        proc, seconds = rnnconvert(*args, cwd=tmp_path)
        assert seconds < LINEAR_CPU, (args, seconds)
        refusal = LINEAR[name].get(args[0])
        if refusal is None:
            assert proc.returncode == 0, (args, proc.returncode, proc.stderr[-2000:])
            if name == "many_lstm" and args[0] == "inspect":        # the unused nodes: ten named, on one line
                names = ", ".join(f"extra_{k}" for k in range(10))
                assert f"notes=recurrent nodes not on the way to 'Y': {names} and 49990 more)" in proc.stdout
            continue
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr[-2000:])
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"rnnconvert: error: {src.name}: {refusal}"), proc.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == before      # nothing written, no temporary left
    if not LINEAR[name]:
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, "out.rnnc"])


def test_all_schema_problems_on_one_line(tmp_path):
    model = hostile._lstm_model(attrs={"layout": 3, "hidden_size": 2.5, "clip": -1.0})
    src = hostile._save(model, tmp_path, "three")
    result = CliRunner().invoke(cli, ["inspect", str(src)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"rnnconvert: error: {src}: node 'lstm_1' (LSTM): attribute 'hidden_size' is FLOAT 2.5; expected INT; "
        "node 'lstm_1' (LSTM): attribute 'layout' is 3; expected 0 or 1; node 'lstm_1' (LSTM): attribute 'clip' is "
        "-1.0; expected a positive threshold"]


@pytest.mark.parametrize("name", RAW)
def test_raw_recurrent_graph_verifies_against_itself(name, tmp_path):
    src = getattr(hostile, name)(tmp_path)
    proc, _ = rnnconvert("verify", src.name, src.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "onnxruntime(src)" in proc.stdout and proc.stdout.rstrip().endswith("EQUIVALENT")
    if name == "raw_state_ports":
        assert "not run: streaming with states: not defined (layer 'rec' has no state input and output carrying " \
               "its c state)" in proc.stdout


def test_folding_time_budget(tmp_path, monkeypatch):
    """Past FOLD_SECONDS of folding in all, the next node is refused by name."""
    monkeypatch.setattr(_fold, "FOLD_SECONDS", -1.0)
    monkeypatch.setattr(_fold, "SECONDS_PER", float("inf"))
    src = hostile.range_weight(tmp_path)
    result = CliRunner().invoke(cli, ["inspect", str(src)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"rnnconvert: error: {src}: Range node 'big_range': constant folding took "
                                    "more than -1 s in all; the graph computes too much from its constants")


def test_folded_constants_no_node_needs_are_dropped(tmp_path, monkeypatch):
    """32 ConstantOfShape of 4 MiB added up (about 250 MB folded in all, allowed here): the traced peak stays
    near three of them, not all of them."""
    import rnnconvert
    monkeypatch.setattr(_fold, "TOTAL_SLACK", 1 << 30)
    src = hostile.many_constants(tmp_path, count=32)
    tracemalloc.start()
    try:
        model = rnnconvert.read(src)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model.layers[0].weights[0].W.shape == (8, 3)
    assert peak < 40 << 20, peak


def test_raw_graph_output_picked_by_name_verifies(tmp_path):
    """onnxruntime's output is the one the model was read from, not the graph's first."""
    import rnnconvert
    src = hostile.raw_two_outputs(tmp_path)
    report = rnnconvert.verify(src, src, read_options={"output": "Y"})
    assert report.passed and "onnxruntime(src)" in report.oracles()
