"""`verify`: two model files of any formats checked against each other (the first one's reference pass
is the expected output, both files' own runtimes run), or one file against golden vectors
(`verify_vectors`, its reference pass and its own runtime against the vectors' outputs).
"""
from __future__ import annotations

import os
import time

import numpy as np

from .. import formats
from ..errors import InputError, VerificationError
from ..files.outputs import Outputs
from ..formats import read
from ..model.assumptions import strict as refuse_assumptions
from ..model.validate import check_finite
from . import vectors
from .budget import allowance
from .checks import _tolerance, compare, float32_noise, judge_with
from .diagnose import classify
from .oracles import _runtime_checks, check_models
from .outputs import _claim_outputs, _emit_vectors, _register_inputs
from .progress import Tracker, observe
from .report import Report, _failure_message, file_info, note_reading, require_checks


def verify(a, b=None, *, atol: float | None = None, rtol: float | None = None,
           inputs: np.ndarray | None = None, seed: int = 0, read_options: dict | None = None,
           vectors_path=None, emit_vectors=None, allow_nonfinite: bool = False, force: bool = False,
           outputs: Outputs | None = None, strict: bool = False, progress=None,
           time_budget: float | None = None) -> Report:
    """Compare two model files of any supported formats; raises VerificationError when they differ.

    With `vectors_path` (and no `b`): check `a` against golden vectors written by `emit_vectors`.
    With `emit_vectors`: write vectors of `b` (expected: the reference pass of `a`) after a pass;
    vectors already there are kept (DestinationError) unless `force`.  `strict`: a file read under any
    assumption is refused (InputError naming each and what settles it).
    `progress`, `time_budget`: as `convert`'s (the budget scales with the time reading both files takes).
    """
    if vectors_path is not None:
        if b is not None:
            raise InputError("verify takes one model file with --vectors, not two")
        return verify_vectors(a, vectors_path, atol=atol, rtol=rtol, read_options=read_options,
                              allow_nonfinite=allow_nonfinite, strict=strict, progress=progress)
    if b is None:
        raise InputError("verify needs two model files A B, or one file and --vectors DIR")
    a, b = os.fspath(a), os.fspath(b)
    policy = outputs or Outputs()
    policy.add_input(a, "file A")
    policy.add_input(b, "file B")
    _register_inputs(policy, read_options)
    _claim_outputs(policy, force, emit_vectors=emit_vectors)
    tol = _tolerance(atol, rtol)
    tracker = Tracker(progress) if progress is not None else None
    if tracker is not None:
        tracker.stage(f"reading {a} and {b}")
    start = time.perf_counter()
    ma, mb = read(a, **(read_options or {})), read(b, **(read_options or {}))
    io_seconds = time.perf_counter() - start
    if strict:
        refuse_assumptions(ma, a)
        refuse_assumptions(mb, b)
    if not allow_nonfinite:
        check_finite(ma, a)
        check_finite(mb, b)
    fa, fb = formats.for_reading(a), formats.for_reading(b)
    report = Report(source=file_info(a, fa.name), destination=file_info(b, fb.name),
                    tolerance=tol, seed=seed)
    note_reading(report, ma, a)
    note_reading(report, mb, b)
    report.notes += ma.source.get("picked", []) + mb.source.get("picked", [])
    report.conversion = classify(ma, mb, assumed=ma.source.get("assumptions", []) + mb.source.get("assumptions", []))
    observe(report, tracker)
    suite, expected = check_models(ma, mb, fb, b, report, inputs=inputs, src_fmt=fa, src_path=a,
                                   budget=allowance(io_seconds, time_budget), progress=tracker, written=False)
    require_checks(report, b, hint="")
    if not report.passed:
        raise VerificationError(_failure_message(report, b, None), report=report)
    if emit_vectors:
        _emit_vectors(emit_vectors, report, report.destination, suite, expected, ma, mb, force)
    return report


def verify_vectors(path, vectors_path, *, atol=None, rtol=None, read_options=None,
                   allow_nonfinite: bool = False, strict: bool = False, progress=None) -> Report:
    """Re-check one model file against golden vectors: its reference pass and its own runtime."""
    from ..reference.network import forward
    path = os.fspath(path)
    index, vecs = vectors.load(vectors_path)
    model = read(path, **(read_options or {}))
    if strict:
        refuse_assumptions(model, path)
    if not allow_nonfinite:
        check_finite(model, path)
    fmt = formats.for_reading(path)
    tol = dict(index.get("tolerance") or _tolerance(None, None))
    tol = _tolerance(tol["atol"] if atol is None else atol, tol["rtol"] if rtol is None else rtol)
    report = Report(source=file_info(path, fmt.name), destination=None, tolerance=tol,
                    seed=int(index.get("seed", 0)))
    report.vectors = {"path": os.fspath(vectors_path), "role": "checked"}
    tracker = observe(report, progress)
    note_reading(report, model, path)
    made_for = index.get("model", {}).get("sha256")
    if made_for and made_for != report.source["sha256"]:
        report.notes.append(f"the vectors were made for another file ({index['model'].get('path')}, "
                            f"sha256 {made_for[:12]}...)")
    suite = [(label, x) for label, x, _ in vecs]
    if not suite:
        raise InputError("nothing was checked: the vectors index lists no vector; write vectors with "
                         "--emit-vectors DIR", path=os.fspath(vectors_path))
    expected = [y for _, _, y in vecs]
    noise = [float32_noise(model, x, forward(model, x)) for _, x in suite]
    report.inputs = [{"label": label, "shape": list(x.shape), "float32_noise": n}
                     for (label, x), n in zip(suite, noise)]
    if tracker is not None:
        tracker.planned(len(suite) * (1 + bool(fmt.runtime)))
    time_axis = 0 if model.input.layout == "time_batch_feature" else 1
    for (label, x), y, n in zip(suite, expected, noise):
        report.checks.append(compare(forward(model, x), y, tol, "reference(file)", label, n, time_axis))
    _runtime_checks(report, fmt, path, model, suite, judge_with(expected, tol, noise, time_axis), "file", model)
    require_checks(report, path, hint="")
    if not report.passed:
        raise VerificationError(_failure_message(report, path, None), report=report)
    return report
