"""The ONNX operator tests as a peer suite: `python bench/onnx_peer.py [--writers]`.

The 18 LSTM/GRU/RNN node cases of the installed onnx package (onnx/backend/test/case/node/lstm.py, gru.py,
rnn.py) are made into models: the node's W, R, B, P and sequence_lens become initializers, X and any
initial_h/initial_c stay graph inputs (X with a free time and batch size), its outputs the graph's outputs.
Each row: whether rnnconvert reads it, the largest difference between the reference pass and onnxruntime on
the case's own X and on a batch of 3 random sequences of 1, 4 and 9 steps (saturating magnitudes, random
initial states where the graph takes them), and, with --writers, what every writer does with it: `ok`
(converted and verified by its own runtime), `refused: why`, or `failed: why`.
Nothing is written outside a temporary directory.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")

OPS = (("lstm", "LSTM"), ("gru", "GRU"), ("rnn", "RNN"))
RUNTIME_ROLES = ("X", "initial_h", "initial_c")
WRITERS = {"onnx": ".onnx", "keras": ".keras", "keras-h5": ".h5", "torch": ".pt", "safetensors": ".safetensors",
           "matlab": ".mat", "canonical": ".rnnc", "c": ".c", "js": ".mjs", "numpy": ".py", "tflite": ".tflite",
           "tfjs": ".json"}


def node_cases() -> list[tuple]:
    """(name, node, inputs, outputs) of each LSTM/GRU/RNN case, as the onnx package's export_* functions make them
    (seeded: two cases draw random weights)."""
    out = []
    for module, cls in OPS:
        m = importlib.import_module(f"onnx.backend.test.case.node.{module}")
        saved = m.expect
        m.expect = lambda node, inputs, outputs, name, **_: out.append((name, node, inputs, outputs))
        try:
            maker = getattr(m, cls)
            for attr in sorted(dir(maker)):
                if attr.startswith("export"):
                    np.random.seed(0)
                    getattr(maker, attr)()
        finally:
            m.expect = saved
    return out


def peer_model(name, node, inputs, outputs):
    """(ModelProto, {graph input: the case's value}): the case's node in a graph of its own."""
    import onnx
    from onnx import helper, numpy_helper
    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    free = "sequence_lens" not in node.input      # constant lengths hold for the case's own sizes only
    inits, graph_inputs, feeds = [], [], {}
    for role, arr in zip(node.input, inputs):
        if not role:
            continue
        if role in RUNTIME_ROLES:
            shape = list(arr.shape)
            if role == "X" and free:
                shape[:2] = ["B", "T"] if layout else ["T", "B"]
            elif free:
                shape[0 if layout else 1] = "B"
            graph_inputs.append(helper.make_tensor_value_info(role, onnx.TensorProto.FLOAT, shape))
            feeds[role] = arr
        else:
            inits.append(numpy_helper.from_array(arr, role))
    names = [o for o in node.output if o]
    graph_outputs = [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in names]
    graph = helper.make_graph([node], name, graph_inputs, graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model, feeds


def random_feeds(feeds: dict, layout: int, free: bool = True, seed: int = 0) -> list[dict]:
    """Batches of 3 sequences of 1, 4 and 9 steps (`free`; else the case's own sizes), values up to +-6
    (saturating), initial states random."""
    rng = np.random.default_rng(seed)
    out = []
    for T in (1, 4, 9):
        one = {}
        for role, arr in feeds.items():
            shape = list(arr.shape)
            if free and role == "X":
                shape[:2] = [3, T] if layout else [T, 3]
            elif free:
                shape[0 if layout else 1] = 3
            one[role] = (rng.standard_normal(shape) * (3 if role == "X" else 1)).astype(np.float32)
        out.append(one)
    return out


def prediction_error(path, model, feeds: dict) -> float:
    """Largest |reference - onnxruntime| over the model's output and state outputs."""
    import rnnconvert
    from rnnconvert.formats.onnx.runtime import run_states
    x = feeds["X"]
    states = {p.name: feeds[p.name] for p in model.state_inputs if p.name in feeds}
    try:
        want, want_states = run_states(path, x, model, feeds=states)
        oracle = "onnxruntime"
    except RuntimeError:             # onnxruntime has no layout=1 kernels: onnx's own reference evaluator
        want, want_states = evaluator_outputs(path, model, feeds)
        oracle = "onnx.reference"
    got, got_states = rnnconvert.predict(model, x, states=states or None, return_states=True)
    err = float(np.max(np.abs(np.asarray(got, np.float64) - want))) if want.size else 0.0
    for k, v in want_states.items():
        err = max(err, float(np.max(np.abs(np.asarray(got_states[k], np.float64) - v))))
    return err, oracle


def evaluator_outputs(path, model, feeds: dict):
    """run_states' (output, {state output: array}) from onnx.reference.ReferenceEvaluator."""
    from onnx.reference import ReferenceEvaluator
    from rnnconvert.formats.onnx.runtime import directions_last
    sess = ReferenceEvaluator(str(path))
    names = [o for o in sess.output_names]
    res = dict(zip(names, sess.run(None, {k: v for k, v in feeds.items() if k in sess.input_names})))
    out = res[model.output_name]
    dropped = model.source.get("dropped_output_axis")
    if dropped and out.ndim == dropped[1]:
        out = np.squeeze(out, axis=dropped[0]) if out.shape[dropped[0]] == 1 else directions_last(out, dropped[0])
    return out, {p.name: res[p.name] for p in model.state_outputs}


def writer_result(src: Path, fmt: str, folder: Path, output: str | None = None) -> str:
    import rnnconvert
    from rnnconvert.errors import RnnConvertError, UnsupportedError, VerificationError
    dst = folder / f"{src.stem}.{output or 'all'}.{fmt}{WRITERS[fmt]}"
    options = {"keras_version": 2} if fmt == "keras-h5" else {}
    try:
        report = rnnconvert.convert(src, dst, write_options=options,
                                    read_options={"output": output} if output else None)
    except UnsupportedError as exc:
        return "refused: " + exc.message
    except VerificationError as exc:
        return "failed: " + exc.message.splitlines()[0]
    except RnnConvertError as exc:
        return f"error: {exc.message.splitlines()[0]}"
    d = report.to_dict()
    own = [o for o in d["oracles"]["ran"] if o.endswith("(dst)") and not o.startswith("reference")]
    if not d["passed"]:
        return "failed"
    return f"ok ({', '.join(own)})" if own else "ok, its runtime not run: " + "; ".join(d["oracles"]["unavailable"])


def rows(folder: Path, writers: list[str]) -> list[dict]:
    import onnx
    import rnnconvert
    from rnnconvert.errors import RnnConvertError
    out = []
    for name, node, inputs, outputs in node_cases():
        proto, feeds = peer_model(name, node, inputs, outputs)
        path = folder / f"{name}.onnx"
        onnx.save(proto, str(path))
        layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
        names = [o for o in node.output if o]
        row = {"case": name, "outputs": ", ".join(names)}
        out.append(row)
        try:
            models = {None: rnnconvert.read(path)}
            row["read"] = "yes"
        except RnnConvertError as exc:
            if "pass --output NAME" not in exc.message:
                row["read"] = "refused: " + exc.message.split(": ", 1)[-1]
                continue
            models = {n: rnnconvert.read(path, output=n) for n in names}    # one model per output
            row["read"] = "yes, one output at a time (--output NAME)"
        inputs = [feeds] + random_feeds(feeds, layout, free="sequence_lens" not in node.input)
        checks = [prediction_error(path, m, f) for m in models.values() for f in inputs]
        row["error"], row["oracle"] = max(e for e, _ in checks), checks[0][1]
        for fmt in writers:
            row[fmt] = "; ".join(writer_result(path, fmt, folder, output) for output in models)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", nargs="*", default=None,
                    help=f"convert to these formats (none named: all of {', '.join(WRITERS)})")
    args = ap.parse_args(argv)
    writers = [] if args.writers is None else (args.writers or list(WRITERS))
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        table = rows(Path(tmp), writers)
    print("| case | outputs | read | max error | oracle | " + " | ".join(writers) + " |")
    print("|" + " --- |" * (5 + len(writers)))
    for r in table:
        err = f"{r['error']:.1e}" if "error" in r else ""
        print(f"| {r['case']} | {r['outputs']} | {r['read']} | {err} | {r.get('oracle', '')} | "
              + " | ".join(r.get(w, "") for w in writers) + " |")
    read = sum(r["read"].startswith("yes") for r in table)
    close = sum(r.get("error", 1.0) <= 1e-5 for r in table)
    print(f"\n{read}/{len(table)} read, {close}/{len(table)} within 1e-5 of the oracle")
    for w in writers:
        print(f"{w}: {sum(str(r.get(w, '')).startswith('ok (') for r in table)} ok, "
              f"{sum(str(r.get(w, '')).startswith('refused') for r in table)} refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
