"""Numeric equivalence: one input suite, one tolerance policy, `convert` and `verify`.

Every check compares against the reference forward pass of the *source* model in float64
("expected").  The destination is checked twice where possible: the reference pass on the
model read back from the written file, and the destination format's own runtime
(onnxruntime for ONNX) on the file itself.  A check passes when every element satisfies
`|actual - expected| <= atol + rtol * |expected|`.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import asdict, dataclass, field

import numpy as np

from . import formats, runtimes
from .api import read
from .errors import DestinationError, InputError, RnnConvertError, VerificationError
from .model import Model

# One tolerance policy, by the dtype the written model computes in.
TOLERANCES = {"float32": {"atol": 1e-4, "rtol": 1e-4}, "float64": {"atol": 1e-9, "rtol": 1e-9}}

# (batch, time) of the seeded inputs: a single step, a short and a long sequence.
SUITE_SHAPES = ((3, 1), (3, 7), (2, 120))
SATURATION_SCALE = 6.0


@dataclass
class Check:
    oracle: str          # e.g. "reference(dst)", "onnxruntime(dst)"
    input: str           # input label, e.g. "seeded b3 t7"
    max_abs: float
    max_rel: float
    worst: list[int]     # index of the worst element
    passed: bool


@dataclass
class Report:
    source: dict
    destination: dict | None
    tolerance: dict
    seed: int
    inputs: list[dict] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verified: bool = True

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        return d

    def worst(self) -> Check | None:
        return max(self.checks, key=lambda c: (not c.passed, c.max_abs), default=None)


def file_info(path, fmt) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"path": str(path), "format": fmt, "sha256": h.hexdigest()}


def input_suite(model: Model, seed: int = 0, user_inputs: np.ndarray | None = None):
    """[(label, x)] float32 inputs that exercise recurrence, in the model's own layout."""
    rng = np.random.default_rng(seed)
    F = model.input.features
    fixed_batch = _fixed_batch(model)
    suite = []
    for batch, time in SUITE_SHAPES:
        batch = fixed_batch or batch
        if model.input.time_steps:
            time = model.input.time_steps
        x = rng.standard_normal((batch, time, F)).astype(np.float32)
        x[0] *= SATURATION_SCALE           # drives gates into saturation
        if model.input.layout == "time_batch_feature":
            x = np.ascontiguousarray(np.swapaxes(x, 0, 1))
        suite.append((f"seeded b{batch} t{time}", x))
    if user_inputs is not None:
        x = np.asarray(user_inputs)
        if x.ndim == 2:   # one sequence [time, features]
            x = x[:, None] if model.input.layout == "time_batch_feature" else x[None]
        if x.ndim != 3 or x.shape[-1] != F:
            order = "time, batch" if model.input.layout == "time_batch_feature" else "batch, time"
            raise InputError(f"--inputs has shape {x.shape}, expected [{order}, {F}] or [time, {F}]")
        suite.append(("user inputs", x.astype(np.float32)))
    return suite


def _fixed_batch(model: Model) -> int | None:
    """A model whose initial states are per batch row ([batch, H]) runs on that batch size only."""
    for layer in model.recurrent_layers:
        for w in layer.weights:
            for state in (w.h0, w.c0):
                if state is not None and state.ndim == 2:
                    return int(state.shape[0])
    return None


def compare(actual, expected, tol: dict, oracle: str, label: str) -> Check:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return Check(oracle, f"{label} (shape {list(actual.shape)} != {list(expected.shape)})",
                     float("inf"), float("inf"), [], False)
    diff = np.abs(actual - expected)
    diff = np.where(np.isnan(diff), np.inf, diff)
    rel = diff / np.maximum(np.abs(expected), 1e-12)
    k = int(np.argmax(diff)) if diff.size else 0
    excess = diff - (tol["atol"] + tol["rtol"] * np.abs(expected))
    return Check(oracle, label, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)),
                 [int(i) for i in np.unravel_index(k, diff.shape)] if diff.size else [],
                 bool((excess <= 0).all()))


def _relayout(a, src: Model, dst: Model):
    """`a` in src's input layout -> dst's (a time-major source written batch-major, or back)."""
    if src.input.layout != dst.input.layout and a.ndim == 3:
        return np.ascontiguousarray(np.swapaxes(a, 0, 1))
    return a


def _run_in_layout(fn, x, src: Model, dst: Model):
    """Run `fn` (which takes dst's layout) on `x` given in src's layout; output back in src's."""
    return _relayout(fn(_relayout(x, src, dst)), dst, src)


def _runtime_checks(report, fmt, path, model, suite, expected, tol, role, src_model):
    runtime = fmt.runtime
    if not runtime:
        return
    oracle = f"{runtime}({role})"
    for (label, x), y in zip(suite, expected):
        try:
            out = _run_in_layout(lambda v: runtimes.run(fmt, path, v, model), x, src_model, model)
        except runtimes.RuntimeUnavailable as exc:
            report.unavailable.append(f"{oracle}: {exc}")
            return
        except Exception as exc:  # the runtime rejecting our file is a failed check, reported
            report.checks.append(Check(oracle, f"{label} (runtime error: {exc})",
                                       float("inf"), float("inf"), [], False))
            return
        report.checks.append(compare(out, y, tol, oracle, label))


def check_models(src_model, dst_model, dst_fmt, dst_path, report, *, inputs=None,
                 src_fmt=None, src_path=None):
    """Run every check of dst (and src's own runtime where it has one) against reference(src)."""
    from .reference import forward
    tol = report.tolerance
    suite = input_suite(src_model, report.seed, inputs)
    report.inputs = [{"label": label, "shape": list(x.shape)} for label, x in suite]
    expected = [forward(src_model, x) for _, x in suite]
    for (label, x), y in zip(suite, expected):
        out = _run_in_layout(lambda v: forward(dst_model, v), x, src_model, dst_model)
        report.checks.append(compare(out, y, tol, "reference(dst)", label))
    if src_fmt is not None:
        _runtime_checks(report, src_fmt, src_path, src_model, suite, expected, tol, "src", src_model)
    _runtime_checks(report, dst_fmt, dst_path, dst_model, suite, expected, tol, "dst", src_model)
    return report


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def convert(src, dst, *, verify: bool = True, atol: float | None = None, rtol: float | None = None,
            inputs: np.ndarray | None = None, force: bool = False, keep_failed: bool = False,
            src_format: str | None = None, dst_format: str | None = None, seed: int = 0,
            read_options: dict | None = None, write_options: dict | None = None, emit_module=None,
            progress=None) -> Report:
    """Read `src`, write `dst`, read it back and verify; `dst` appears only when all checks pass.

    On a failed verification nothing is left at `dst` (an existing file there is untouched)
    unless `keep_failed`; the VerificationError carries the report.  `read_options` go to the
    source's reader (e.g. `arch` hints for a PyTorch state dict), `write_options` to the destination's
    writer (e.g. `keras_version=2`).  `emit_module`: for a PyTorch
    destination, also write a standalone module file that loads it (after verification passed).
    """
    say = progress or (lambda msg: None)
    src, dst = os.fspath(src), os.fspath(dst)
    formats.check_exists(src)
    if _same_file(src, dst):
        raise DestinationError("destination is the source file; choose another path", path=dst)
    dst_fmt = formats.for_writing(dst, dst_format)
    src_fmt = formats.for_reading(src, src_format)
    if emit_module and dst_fmt.name not in ("torch", "safetensors"):
        raise DestinationError(f"--emit-module goes with a PyTorch destination (.pt, .pth, .safetensors), "
                               f"not {dst_fmt.name}", path=dst)
    if os.path.exists(dst) and not force:
        raise DestinationError("exists; pass --force to overwrite it", path=dst)
    directory = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(directory):
        raise DestinationError(f"directory '{directory}' does not exist", path=dst)

    say(f"reading {src} ({src_fmt.name})")
    model = src_fmt.load().read(src, **(read_options or {}))
    tol = _tolerance(atol, rtol)
    report = Report(source=file_info(src, src_fmt.name), destination=None, tolerance=tol, seed=seed)
    report.notes += model.source.get("assumptions", [])

    suffix = os.path.splitext(dst)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dst)}.", suffix=f".tmp{suffix}", dir=directory)
    os.close(fd)
    installed = False
    try:
        say(f"writing {dst} ({dst_fmt.name})")
        try:
            report.notes += dst_fmt.load().write(model, tmp, **(write_options or {})) or []
            if verify:
                say("verifying")
                back = dst_fmt.load().read(tmp)
                check_models(model, back, dst_fmt, tmp, report, inputs=inputs)
            else:
                report.verified = False
        except OSError as exc:
            raise DestinationError(f"cannot write ({exc.strerror or exc})", path=dst) from None
        except RnnConvertError as exc:
            if exc.path == tmp:          # name the file the user asked for, not our temporary
                exc.path = dst
            raise
        report.destination = file_info(tmp, dst_fmt.name) | {"path": dst}
        if report.passed or keep_failed:
            os.replace(tmp, dst)
            installed = True
        if emit_module and report.passed:
            from .formats.torch import write_module
            write_module(model, emit_module, weights=os.path.basename(dst))
            report.notes.append(f"wrote {emit_module}: a standalone PyTorch module that loads {dst}")
        if not report.passed:
            raise VerificationError(_failure_message(report, dst, keep_failed), report=report)
        return report
    finally:
        if not installed and os.path.exists(tmp):
            os.remove(tmp)


def verify(a, b, *, atol: float | None = None, rtol: float | None = None,
           inputs: np.ndarray | None = None, seed: int = 0, read_options: dict | None = None) -> Report:
    """Compare two model files of any supported formats; raises VerificationError when they differ."""
    a, b = os.fspath(a), os.fspath(b)
    ma, mb = read(a, **(read_options or {})), read(b, **(read_options or {}))
    fa, fb = formats.for_reading(a), formats.for_reading(b)
    report = Report(source=file_info(a, fa.name), destination=file_info(b, fb.name),
                    tolerance=_tolerance(atol, rtol), seed=seed)
    report.notes += ma.source.get("assumptions", []) + mb.source.get("assumptions", [])
    check_models(ma, mb, fb, b, report, inputs=inputs, src_fmt=fa, src_path=a)
    if not report.passed:
        raise VerificationError(_failure_message(report, b, True), report=report)
    return report


def _tolerance(atol, rtol) -> dict:
    tol = dict(TOLERANCES["float32"])
    if atol is not None:
        tol["atol"] = float(atol)
    if rtol is not None:
        tol["rtol"] = float(rtol)
    return tol


def _failure_message(report: Report, dst, kept: bool) -> str:
    w = report.worst()
    where = f"{w.oracle} on {w.input}: max abs error {w.max_abs:.3g} at {w.worst}" if w else ""
    fate = "kept as requested" if kept else "not written"
    return (f"NOT EQUIVALENT: {where} exceeds atol={report.tolerance['atol']:g} "
            f"rtol={report.tolerance['rtol']:g}; {dst} {fate}")
