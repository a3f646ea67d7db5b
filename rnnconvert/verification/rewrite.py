"""`convert --in-place` (ONNX -> ONNX): the graph rewritten by `formats/onnx/rewrite.py`, written beside DST,
and verified by running both graphs in onnxruntime on the same inputs, built from the source graph's declared
input shapes and types (free dimensions 1, 2 and 3; a dimension named like time 160, 320 and 512), every source
output compared within the tolerance (default atol 1e-5, rtol 0: the same runtime on the same weights), plus
each replaced node against the reference forward pass of the canonical layer it was written from.
"""
from __future__ import annotations

import os

import numpy as np
import onnx

from ..errors import InputError, VerificationError
from .checks import Check
from .outputs import _install
from .report import Report, _failure_message, file_info, require_checks

SIZES = (1, 2, 3)
MAX_ELEMENTS = 1 << 26          # a declared input past this many values: --inputs says what to run on
TIME_SIZES = (160, 320, 512)      # long enough for a front end that pads or frames audio
_TIME = ("time", "seq", "len", "step", "frame")


def feeds_for(graph: onnx.GraphProto, k: int, rng: np.random.Generator, extra: dict | None = None,
              path: str | None = None) -> dict:
    """Inputs for every graph input that is not an initializer, from its declared shape and type: round `k`
    of SIZES/TIME_SIZES for free dimensions; floats normal * 3 (saturating), integers 0..3, bools random."""
    init = {t.name for t in graph.initializer}
    out = {}
    for vi in graph.input:
        if vi.name in init:
            continue
        t = vi.type.tensor_type
        dims = []
        for d in t.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(d.dim_value)
            else:
                timed = any(w in d.dim_param.lower() for w in _TIME)
                dims.append((TIME_SIZES if timed else SIZES)[k])
        if int(np.prod(dims, dtype=np.float64)) > MAX_ELEMENTS:
            raise InputError(f"the graph input '{vi.name}' declares {dims} ({int(np.prod(dims, dtype=np.float64))} "
                             f"values, past {MAX_ELEMENTS}); pass --inputs with the arrays to verify on", path=path)
        try:
            dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))
        except Exception:  # noqa: BLE001 - an element type without a numpy dtype (string, undefined)
            dtype = None
        if dtype is None or dtype.kind not in "fiub":
            raise InputError(f"the graph input '{vi.name}' is of type {t.elem_type}, for which rnnconvert makes no "
                             "inputs; pass --inputs with the arrays to verify on", path=path)
        if np.issubdtype(dtype, np.floating):
            out[vi.name] = (rng.standard_normal(dims) * 3).astype(dtype)
        elif dtype == np.bool_:
            out[vi.name] = rng.integers(0, 2, dims).astype(bool)
        else:
            out[vi.name] = rng.integers(0, 4, dims).astype(dtype)
    for name, shape in (extra or {}).items():        # added state inputs: zeros, as the source starts
        out[name] = np.zeros([SIZES[k] if s == "batch" else s for s in shape], np.float32)
    return out


def convert_in_place(src: str, dst: str, tmp: str, tol: dict, seed: int, stateful: bool, force: bool,
                     policy, directory: str, verify: bool = True, keep_failed: bool = False,
                     branches: dict | None = None, given=None) -> Report:
    """`branches`: {If node or condition name: 'then' | 'else'} (`formats/onnx/branches.py`); the other If nodes
    of the main graph are decided by a constant condition or by its value on the inputs verification uses, and
    both graphs are compared with those branches taken.  `given` (--inputs: {graph input: array}, or one array for
    the first): the only inputs conditions are decided and both graphs compared on."""
    from ..formats.onnx import branches as ifs
    from ..formats.onnx.reader import load
    from ..formats.onnx.rewrite import rewrite
    from ..formats.onnx.runtime import import_onnxruntime, ort_error, quiet_options
    proto = load(src)
    rng = np.random.default_rng(seed)
    rounds = [_given(proto.graph, given, src)] if given is not None else \
        [feeds_for(proto.graph, k, rng, path=src) for k in range(len(SIZES))] if verify else []
    fixed, if_notes = ifs.fix(proto, branches or {}, src, feeds=rounds if verify else None)
    new, replaced, notes = rewrite(fixed, src, stateful=stateful)
    notes = if_notes + notes
    onnx.save(new, tmp)
    report = Report(source=file_info(src, "onnx"), destination=None, tolerance=tol, seed=seed)
    report.notes += notes + [(f"{r.lifted_from} '{r.name}' (a {r.ref.node.op_type} cell) rewritten in place as a native "
                              f"{r.ref.node.op_type} node" if r.lifted_from else
                              f"{r.ref.node.op_type} node '{r.name}' rewritten in place as a native node")
                             + (f"; state inputs {', '.join(r.state_inputs) or 'none'}, state outputs "
                                f"{', '.join(r.state_outputs)}" if stateful else "") for r in replaced]
    report.conversion = {"preserved": [], "changed_in_form": [r.name for r in replaced], "refused": [],
                         "assumed": []}
    if verify:
        ort = import_onnxruntime()
        opts = quiet_options(ort)
        opts.log_severity_level = 4       # an input the source cannot run on is a check not run, said once
        try:
            a = ort.InferenceSession(src if fixed is proto else fixed.SerializeToString(), opts,
                                     providers=["CPUExecutionProvider"])
            b = ort.InferenceSession(tmp, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
            raise InputError(f"onnxruntime cannot load the graph: {ort_error(exc)}", path=src) from None
        added = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
                 for i in new.graph.input if any(i.name in r.state_inputs for r in replaced)}
        names = [o.name for o in proto.graph.output]
        for k, feeds in enumerate(rounds):
            label = "--inputs" if given is not None else f"declared shapes, round {k + 1}"
            try:
                want = a.run(names, feeds)
            except Exception as exc:  # noqa: BLE001 - the source itself cannot run on this input: not run
                report.not_run("onnxruntime(src)", f"on {label}: {ort_error(exc)}")
                continue
            try:
                got = b.run(names, feeds | feeds_for(onnx.GraphProto(), k, rng, added))
            except Exception as exc:  # noqa: BLE001 - the source ran, the rewritten graph did not: a failure
                report.checks.append(Check(f"onnxruntime(dst): {ort_error(exc)[:200]}", label, float("inf"),
                                           float("inf"), [], False))
                continue
            for name, w, g in zip(names, want, got):
                report.checks.append(_compare(f"onnxruntime(dst) output '{name}'", label, w, g, tol))
        report.checks += [_node_check(r, tol, seed) for r in replaced]
        require_checks(report, dst)
    report.verified = verify
    report.destination = file_info(tmp, "onnx") | {"path": dst}
    if report.passed or keep_failed:
        _install(policy, os.path.dirname(tmp), directory, dst, force)
    if not report.passed:
        raise VerificationError(_failure_message(report, dst, keep_failed), report=report)
    return report


def _given(graph: onnx.GraphProto, given, path: str) -> dict:
    """--inputs as feeds: an .npz keyed by graph input names (each one the graph has), or one array for its first."""
    init = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in init]
    if not isinstance(given, dict):
        return {names[0]: np.asarray(given)}
    missing = [n for n in names if n not in given]
    if missing:
        raise InputError(f"--inputs has no array for the graph input{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(repr(m) for m in missing)}; it has {', '.join(sorted(given))}", path=path)
    return {n: np.asarray(given[n]) for n in names}


def _compare(oracle: str, label: str, want, got, tol: dict) -> Check:
    want, got = np.asarray(want, np.float64), np.asarray(got, np.float64)
    if want.shape != got.shape:
        return Check(oracle, label, float("inf"), float("inf"), [], False)
    if not want.size:
        return Check(oracle, label, 0.0, 0.0, [], True, None)
    diff = np.abs(want - got)
    bound = tol["atol"] + tol["rtol"] * np.abs(want)
    worst = int(np.argmax(diff - bound))
    rel = diff / np.maximum(np.abs(want), 1e-12)
    at = [int(i) for i in np.unravel_index(worst, want.shape)]
    return Check(oracle, label, float(diff.max()), float(rel.max()), at, bool(np.all(diff <= bound)),
                 float(bound.flat[worst]))


def _node_check(r, tol: dict, seed: int) -> Check:
    """The source node (a lifted part: the native node lifting gave) cut out of its graph (onnxruntime) against the reference pass of the canonical layer the
    new node was written from, on 3 sequences of 7 steps."""
    from ..formats.onnx.extract import run_node
    from ..model import InputSpec, Model
    from ..reference import forward
    x = (np.random.default_rng(seed).standard_normal((3, 7, r.layer.input_size)) * 3).astype(np.float32)
    model = Model([r.layer], InputSpec("x", r.layer.input_size))
    want = run_node(r.ref, r.opset, x)
    who = f"lifted node '{r.name}'" if r.lifted_from else f"src node '{r.name}'"   # a Loop: its step was checked
    return _compare(f"onnxruntime({who}) vs reference", "b3 t7", want, forward(model, x), tol)     # by the lift

