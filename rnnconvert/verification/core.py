"""Numeric equivalence: one input suite, one tolerance policy, `convert` and `verify`.

Every check compares against the reference forward pass of the *source* model in float64
("expected").  The destination is checked twice where possible: the reference pass on the
model read back from the written file, and the destination format's own runtime
(onnxruntime for ONNX) on the file itself.  A check passes when every element satisfies
`|actual - expected| <= atol + rtol * |expected|`.  The destination is also streamed
(`streaming(reference)`: chunks with the state carried, see `suite.py`) where streaming is defined.
A `convert` of a model over `suite.LARGE_MODEL_PARAMS` parameters runs the same checks in the order of
`verification_large.py`, which holds one copy of the weights and reaches the same verdicts.

A report records both files with their SHA-256, every check, the tolerance policy, the seed, the
oracles that ran and those unavailable, what the conversion preserved, changed in form or refused
(`diagnose.classify`), and on a failure the first diverging layer (`diagnose.localize`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import formats
from ..files import interrupt
from . import runtimes, vectors
from ..formats import read
from ..files.atomic import install_all
from .diagnose import classify, localize, skeleton
from ..errors import DestinationError, InputError, RnnConvertError, UnsupportedError, VerificationError
from ..model import Model
from ..files.outputs import Outputs, identity, same
from ..model.validate import check_finite
from .suite import STREAMING, chunking, initial_states, input_suite, stream, streaming_undefined
from ..formats.per_layer import lookup, scan

# One tolerance policy, by the dtype the written model computes in.
TOLERANCES = {"float32": {"atol": 1e-4, "rtol": 1e-4}, "float64": {"atol": 1e-9, "rtol": 1e-9}}
# Some trained networks amplify rounding over long sequences (the source model's own reference
# pass in float32 then differs from float64 by far more than atol).  A check on such an input
# allows NOISE_FACTOR times that float32 sensitivity on top of atol: a float32 runtime cannot do
# better than the model allows, and a real conversion error shows on the short inputs, whose
# sensitivity stays near float32 epsilon.
NOISE_FACTOR = 10.0
# A float32 pass that overflows (inf or NaN where float64 is finite) measures no rounding: its noise is
# recorded as infinite (null in JSON) and allows nothing, so the check holds the float64 numbers to atol
# and rtol alone.  Zero checks is never a verdict: "nothing was checked" is an InputError (exit 2).
RULE = ("|actual - expected| <= atol + noise_factor * float32_noise + rtol * |expected| for every element; "
        "float32_noise = max |reference_float32 - reference_float64| of the source model on that input, "
        "counted as 0 when it is not finite (the float32 pass overflowed); at least one check must run")
REPORT_KIND = "rnnconvert-report"
# Options that only one kind of destination understands (the CLI's --emit-module, --stateful, ...).
OPTION_FORMATS = {"emit_module": ("torch", "safetensors"), "keras_version": ("keras",), "emit_test": ("c",),
                  "stateful": ("onnx",), "external_data": ("onnx",), "version": ("matlab",)}
REPORT_VERSION = 1


@dataclass
class Check:
    oracle: str          # e.g. "reference(dst)", "onnxruntime(dst)", "streaming(reference)"
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
    dtype: str = "float32"
    initial_states: list[str] = field(default_factory=list)
    conversion: dict = field(default_factory=lambda: {"preserved": [], "changed_in_form": [],
                                                      "refused": [], "assumed": []})
    localization: dict | None = None
    vectors: dict | None = None      # {"path": ..., "role": "written" | "checked"}

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def oracles(self) -> list[str]:
        return sorted({c.oracle for c in self.checks})

    def to_dict(self) -> dict:
        d = {"kind": REPORT_KIND, "version": REPORT_VERSION, **asdict(self)}
        for c in d["checks"]:           # strict JSON: a non-finite error is null
            for key in ("max_abs", "max_rel"):
                if not np.isfinite(c[key]):
                    c[key] = None
        if d["localization"] and d["localization"]["max_abs"] is not None and not np.isfinite(d["localization"]["max_abs"]):
            d["localization"]["max_abs"] = None
        d["passed"] = (self.passed and not self.conversion.get("refused")
                       and bool(self.checks or not self.verified))      # zero checks never passed
        d["tolerance_policy"] = {"dtype": self.dtype, "rule": RULE, "noise_factor": NOISE_FACTOR,
                                 "by_dtype": TOLERANCES}
        for i in d["inputs"]:
            if i.get("float32_noise") is not None and not np.isfinite(i["float32_noise"]):
                i["float32_noise"] = None
        d["oracles"] = {"ran": self.oracles(), "unavailable": list(self.unavailable)}
        return d

    def worst(self) -> Check | None:
        return max(self.checks, key=lambda c: (not c.passed, c.max_abs), default=None)


def file_info(path, fmt) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return {"path": str(path), "format": fmt, "sha256": h.hexdigest()}


class Background(threading.Thread):
    """fn(*args) beside the main work (file hashes, array digests: hashlib releases the GIL); `result()`
    waits and returns it or raises what it raised.  A daemon thread, so a conversion that fails before
    it is needed does not wait for it; it drops fn and args once done (it holds no model afterwards)."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.call, self.value, self.error = (fn, args), None, None
        self.start()

    def run(self):
        fn, args = self.call
        self.call = None
        try:
            self.value = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller by result()
            self.error = exc

    def result(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


def float32_noise(model: Model, x, expected) -> float:
    """How far the model's own float32 reference pass strays from float64 on `x`."""
    from ..reference.network import forward
    return noise_between(forward(model, x, dtype=np.float32), expected)


def noise_between(float32_pass, expected) -> float:
    """max |float32 pass - float64 pass|, NaN in both counting as agreement."""
    a, expected = np.asarray(float32_pass, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        same = (a == expected) | (np.isnan(a) & np.isnan(expected))    # NaN in both is no rounding noise
        diff = np.where(same, 0.0, np.abs(a - expected))
        diff = np.where(np.isnan(diff), np.inf, diff)      # float32 overflowed to inf or NaN: infinite noise
    return float(diff.max(initial=0.0))


def allowance(noise) -> float:
    """What `noise` adds to a tolerance: NOISE_FACTOR times it, nothing when it is not finite (RULE)."""
    allowed = NOISE_FACTOR * float(noise or 0.0)
    return allowed if np.isfinite(allowed) else 0.0


def compare(actual, expected, tol: dict, oracle: str, label: str, noise: float = 0.0) -> Check:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return Check(oracle, f"{label} (shape {list(actual.shape)} != {list(expected.shape)})",
                     float("inf"), float("inf"), [], False)
    with np.errstate(invalid="ignore"):
        diff = np.abs(actual - expected)
        # NaN where both are NaN, or the same infinity in both, is agreement (--allow-nonfinite weights)
        same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
        diff = np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))
        rel = np.where(same, 0.0, diff / np.maximum(np.nan_to_num(np.abs(expected), nan=0.0), 1e-12))
        k = int(np.argmax(diff)) if diff.size else 0
        ok = same | (diff <= tol["atol"] + allowance(noise) + tol["rtol"] * np.abs(expected))
    return Check(oracle, label, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)),
                 [int(i) for i in np.unravel_index(k, diff.shape)] if diff.size else [],
                 bool(ok.all()))


def _relayout(a, src: Model, dst: Model):
    """`a` in src's input layout -> dst's (a time-major source written batch-major, or back)."""
    if src.input.layout != dst.input.layout and a.ndim == 3:
        return np.ascontiguousarray(np.swapaxes(a, 0, 1))
    return a


def _run_in_layout(fn, x, src: Model, dst: Model):
    """Run `fn` (which takes dst's layout) on `x` given in src's layout; output back in src's."""
    return _relayout(fn(_relayout(x, src, dst)), dst, src)


def judge_with(expected, tol, noise):
    """judge(out, k, oracle, label) -> Check: `out` against expected[k] with input k's float32 noise."""
    return lambda out, k, oracle, label: compare(out, expected[k], tol, oracle, label, noise[k])


def _runtime_checks(report, fmt, path, model, suite, judge, role, src_model):
    runtime = fmt.runtime
    if not runtime:
        return
    oracle = f"{runtime}({role})"
    run = None
    for k, (label, x) in enumerate(suite):
        try:
            run = run or runtimes.runner(fmt, path, model)
            out = _run_in_layout(run, x, src_model, model)
        except runtimes.RuntimeUnavailable as exc:
            report.unavailable.append(f"{oracle}: {exc}")
            return
        except Exception as exc:  # the runtime rejecting our file is a failed check, reported
            report.checks.append(Check(oracle, f"{label} (runtime error: {exc})",
                                       float("inf"), float("inf"), [], False))
            return
        report.checks.append(judge(out, k, oracle, label))


def _streaming_checks(report, model, suite, judge, src_model):
    reason = streaming_undefined(model)
    if reason:
        report.unavailable.append(f"{STREAMING}: not defined ({reason})")
        return
    for k, (label, x) in enumerate(suite):
        time_axis = 0 if src_model.input.layout == "time_batch_feature" else 1
        if x.shape[time_axis] > 1:
            out = _run_in_layout(lambda v: stream(model, v), x, src_model, model)
            chunks = "+".join(map(str, chunking(x.shape[time_axis])))
            report.checks.append(judge(out, k, STREAMING, f"{label} chunks {chunks}"))


def reference_checks(report, src_model, dst_model, suite, judge):
    """reference(dst) on every input, and streaming(reference) where it is defined."""
    from ..reference.network import forward
    for k, (label, x) in enumerate(suite):
        out = _run_in_layout(lambda v: forward(dst_model, v), x, src_model, dst_model)
        report.checks.append(judge(out, k, "reference(dst)", label))
    _streaming_checks(report, dst_model, suite, judge, src_model)


def check_models(src_model, dst_model, dst_fmt, dst_path, report, *, inputs=None,
                 src_fmt=None, src_path=None):
    """Run every check of dst (and src's own runtime where it has one) against reference(src).

    Returns (suite, expected): the inputs in src's layout and the reference outputs of src.
    """
    from ..reference.network import forward
    tol = report.tolerance
    suite = input_suite(src_model, report.seed, inputs, path=report.source["path"])
    report.initial_states = initial_states(src_model)
    expected = [forward(src_model, x) for _, x in suite]
    noise = [float32_noise(src_model, x, y) for (_, x), y in zip(suite, expected)]
    report.inputs = [{"label": label, "shape": list(x.shape), "float32_noise": n}
                     for (label, x), n in zip(suite, noise)]
    judge = judge_with(expected, tol, noise)
    if dst_model is not None:       # a write-only format (generated code): its runtime is the check
        reference_checks(report, src_model, dst_model, suite, judge)
    if src_fmt is not None:
        _runtime_checks(report, src_fmt, src_path, src_model, suite, judge, "src", src_model)
    _runtime_checks(report, dst_fmt, dst_path, dst_model or src_model, suite, judge, "dst", src_model)
    if src_model.has_state_io:
        from .state_checks import state_checks
        state_checks(report, src_model, dst_model, dst_fmt, dst_path, suite, tol)
    if not report.passed and dst_model is not None:
        localize_worst(report, suite, src_model, dst_model)
    return suite, expected


def require_checks(report: Report, what) -> None:
    """Zero checks is never EQUIVALENT: InputError (exit 2) saying why none ran (RULE's last clause)."""
    if report.checks:
        return
    why = "; ".join(report.unavailable) or "no input and no oracle"
    exc = InputError(f"nothing was checked: {why}; install what is missing, or pass --no-verify to convert "
                     "without verification", path=os.fspath(what))
    exc.report_so_far = report
    raise exc


def localize_worst(report, suite, src_model, dst_model) -> None:
    """report.localization on the input of the worst check (the 7-step one when no input matches)."""
    worst = report.worst()
    x = next((x for label, x in suite if worst.input == label or worst.input.startswith(label + " ")),
             suite[min(1, len(suite) - 1)][1])
    report.localization = localize(src_model, dst_model, x, report.tolerance)


def _claim_outputs(policy: Outputs, force: bool, emit_module=None, emit_vectors=None) -> None:
    """--emit-module's file and --emit-vectors' files follow DST's rule (outputs.py), checked before any
    work: never an input or another output, never anything but a regular file, kept unless `force`."""
    if emit_module:
        policy.claim(emit_module, "--emit-module", replace=force)
    for path in vectors.outputs(emit_vectors) if emit_vectors else []:
        policy.claim(path, "--emit-vectors", replace=force)


def _register_inputs(policy: Outputs, read_options: dict | None) -> None:
    for key, role in (("arch", "the --arch file"), ("mapping", "the --mapping file")):
        if isinstance((read_options or {}).get(key), (str, os.PathLike)):
            policy.add_input((read_options or {})[key], role)


def _emit_vectors(directory, report, info, suite, expected, src_model, model, force):
    """Vectors for the file `info` describes, in that model's own layout."""
    suite = [(label, _relayout(x, src_model, model)) for label, x in suite]
    expected = [_relayout(y, src_model, model) for y in expected]
    path = vectors.emit(directory, info, suite, expected, report.tolerance, report.seed, force=force)
    report.vectors = {"path": path, "role": "written"}


def _existing_folder(directory: str, make_dirs: bool, dst: str) -> str:
    """The folder the temporary goes in: DST's own, or with `make_dirs` its nearest existing ancestor (the
    missing folders are made only when DST is installed)."""
    if os.path.isdir(directory):
        return directory
    if make_dirs:
        parent = directory
        while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
            if os.path.lexists(parent):
                raise DestinationError(f"'{parent}' is not a directory", path=dst)
            parent = os.path.dirname(parent)
        return parent
    raise DestinationError(f"directory '{directory}' does not exist", path=dst)


def _install(policy: Outputs, tmpdir: str, directory: str, dst: str, force: bool) -> None:
    """DST and its companion files (a C header, a NumPy script's weights, ONNX external data) from the
    temporary folder to DST's folder, DST last; each companion is claimed first like DST itself."""
    base = os.path.basename(dst)
    pairs = []
    for name in sorted(os.listdir(tmpdir), key=lambda n: n == base):
        final = os.path.join(directory, name)
        if name != base:
            policy.claim(final, f"a companion file of {dst}", replace=force)
        pairs.append((os.path.join(tmpdir, name), final))
    _make_folder(directory, dst)
    install_all(pairs, force)


def _make_folder(directory: str, path: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise DestinationError(f"cannot make the directory '{directory}' ({exc.strerror or exc})", path=path) from None


def convert(src, dst, *, verify: bool = True, atol: float | None = None, rtol: float | None = None,
            inputs: np.ndarray | None = None, force: bool = False, keep_failed: bool = False,
            src_format: str | None = None, dst_format: str | None = None, seed: int = 0,
            read_options: dict | None = None, write_options: dict | None = None, emit_module=None,
            emit_vectors=None, progress=None, layer: str | None = None,
            allow_nonfinite: bool = False, outputs: Outputs | None = None, make_dirs: bool = False) -> Report:
    """Read `src`, write `dst`, read it back and verify; `dst` appears only when all checks pass.

    On a failed verification nothing is left at `dst` (an existing file there is untouched)
    unless `keep_failed`; the VerificationError carries the report.  A writer's refusal
    (UnsupportedError) carries a report too, as `exc.report_so_far`, with the refusal in
    `conversion["refused"]`.  `read_options` go to the source's reader (e.g. `arch` hints for a
    PyTorch state dict), `write_options` to the destination's writer (e.g. `keras_version=2`).
    `emit_module`: for a PyTorch destination, also write a standalone module file that loads it
    (after verification passed).  `emit_vectors`: a directory for golden test vectors of `dst`.
    `layer`: convert only that recurrent layer of `src`, as a standalone model (`select.py`); for an
    ONNX source it is also checked against onnxruntime running the node cut out of the source graph.
    Weights holding NaN or Inf are refused (InputError naming layer and tensor) unless `allow_nonfinite`.
    `outputs`: the run's output policy (outputs.py) with the caller's own inputs and outputs (--inputs,
    --report) registered; every path written is claimed in it.  `make_dirs`: DST's missing folders are
    made when it is installed (never before verification passed).
    """
    from . import large as verification_large
    from .inputs import check as check_inputs
    from .suite import check_seed
    say = progress or (lambda msg: None)
    src, dst = os.fspath(src), os.fspath(dst)
    tol, seed = _tolerance(atol, rtol), check_seed(seed)       # usage errors before any work
    formats.check_exists(src)
    if same(identity(src), identity(dst)):
        raise DestinationError("destination is the source file; choose another path", path=dst)
    policy = outputs or Outputs()
    policy.add_input(src, "the source file")
    _register_inputs(policy, read_options)
    dst_fmt = formats.for_writing(dst, dst_format)
    src_fmt = formats.for_reading(src, src_format)
    for option, value in ({"emit_module": emit_module} | (write_options or {})).items():
        allowed = OPTION_FORMATS.get(option)
        if value and allowed and dst_fmt.name not in allowed:
            raise DestinationError(f"--{option.replace('_', '-')} is for {' or '.join(allowed)} destinations, "
                                   f"not {dst_fmt.name}", path=dst)
    policy.claim(dst, "DST", replace=force)
    _claim_outputs(policy, force, emit_module, emit_vectors)
    directory = os.path.dirname(os.path.abspath(dst))
    scratch = _existing_folder(directory, make_dirs, dst)

    say(f"reading {src} ({src_fmt.name})")
    src_info = Background(file_info, src, src_fmt.name)
    model = _read_source(src, src_fmt, read_options or {}, layer)
    if not allow_nonfinite:
        check_finite(model, src)
    if inputs is not None and verify:
        inputs = check_inputs(model, inputs)
    report = Report(source=src_info.result(), destination=None, tolerance=tol, seed=seed)
    report.notes += model.source.get("assumptions", [])

    # A temporary directory beside dst holding a file of dst's name: a writer's companion files
    # (a C header, a NumPy script's weights) get their final names and are installed with dst.
    interrupt.defer()           # no signal between the folder's creation and the try that removes it
    try:
        tmpdir = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.", suffix=".tmp", dir=scratch)
    except OSError as exc:
        interrupt.resume()
        raise DestinationError(f"cannot write in '{scratch}' ({exc.strerror or exc})", path=dst) from None
    tmp = os.path.join(tmpdir, os.path.basename(dst))
    try:
        interrupt.resume()
        say(f"writing {dst} ({dst_fmt.name})")
        large = verify and verification_large.applies(model, dst_fmt)
        digests = Background(skeleton, model) if large else None
        try:
            try:
                written = dst_fmt.load().write(model, tmp, **(write_options or {})) or []
            except UnsupportedError as exc:
                report.verified = False
                report.conversion = classify(model, None, refused=[exc.format().replace(tmp, dst)],
                                             assumed=report.notes)
                exc.report_so_far = report
                raise
            report.notes += written
            dst_info = Background(file_info, tmp, dst_fmt.name)
            assumed = model.source.get("assumptions", [])
            if large:
                say("verifying (a large model: one copy of its weights at a time)")
                held, model = [model], None

                def reread():
                    return _read_source(src, src_fmt, read_options or {}, layer)
                model, suite, expected = verification_large.verify(
                    held, digests, dst_fmt, tmp, report, inputs=inputs, notes=written, assumed=assumed,
                    reread=reread)
                if layer is not None:
                    pass
                    judge = verification_large.LazyNoise(report, suite, expected)
                    report.checks += node_checks(src, layer, suite, judge, src_fmt.name)
                    if judge.failed:
                        judge.settle(model or reread())
                if model is None and (emit_module or emit_vectors):
                    model = reread()
                back = model
            elif verify:
                say("verifying")
                back = dst_fmt.load().read(tmp) if dst_fmt.reads else None
                report.conversion = classify(model, back, notes=written, assumed=assumed)
                suite, expected = check_models(model, back, dst_fmt, tmp, report, inputs=inputs)
                if layer is not None:
                    pass
                    noise = [i["float32_noise"] for i in report.inputs]
                    report.checks += node_checks(src, layer, suite, judge_with(expected, report.tolerance, noise),
                                                 src_fmt.name)
            else:
                report.conversion = classify(model, None, notes=written, assumed=assumed)
                report.verified = False
        except OSError as exc:
            raise DestinationError(f"cannot write ({exc.strerror or exc})", path=dst) from None
        except RnnConvertError as exc:
            if exc.path == tmp:          # name the file the user asked for, not our temporary
                exc.path = dst
            raise
        if verify:
            require_checks(report, dst)
        report.destination = dst_info.result() | {"path": dst}
        if report.passed or keep_failed:
            _install(policy, tmpdir, directory, dst, force)
        if emit_module and report.passed:
            from ..formats.torch import write_module
            if make_dirs:
                _make_folder(os.path.dirname(os.path.abspath(emit_module)), emit_module)
            write_module(model, emit_module, weights=os.path.basename(dst), force=force)
            report.notes.append(f"wrote {emit_module}: a standalone PyTorch module that loads {dst}")
        if emit_vectors and verify and report.passed:
            _emit_vectors(emit_vectors, report, report.destination, suite, expected, model, back or model, force)
        if not report.passed:
            raise VerificationError(_failure_message(report, dst, keep_failed), report=report)
        return report
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _read_source(src, src_fmt, read_options: dict, layer: str | None) -> Model:
    """The whole model, or with `layer` that layer alone; a refused whole model suggests --layer."""
    from ..formats import per_layer as select
    if layer is not None:
        return select.extract(src, layer, src_fmt.name, **read_options)
    try:
        return src_fmt.load().read(src, **read_options)
    except InputError as exc:
        raise select.with_suggestion(exc, src, src_fmt.name, **read_options) from None


def verify(a, b=None, *, atol: float | None = None, rtol: float | None = None,
           inputs: np.ndarray | None = None, seed: int = 0, read_options: dict | None = None,
           vectors_path=None, emit_vectors=None, allow_nonfinite: bool = False, force: bool = False,
           outputs: Outputs | None = None) -> Report:
    """Compare two model files of any supported formats; raises VerificationError when they differ.

    With `vectors_path` (and no `b`): check `a` against golden vectors written by `emit_vectors`.
    With `emit_vectors`: write vectors of `b` (expected: the reference pass of `a`) after a pass;
    vectors already there are kept (DestinationError) unless `force`.
    """
    if vectors_path is not None:
        if b is not None:
            raise InputError("verify takes one model file with --vectors, not two")
        return verify_vectors(a, vectors_path, atol=atol, rtol=rtol, read_options=read_options,
                              allow_nonfinite=allow_nonfinite)
    if b is None:
        raise InputError("verify needs two model files A B, or one file and --vectors DIR")
    a, b = os.fspath(a), os.fspath(b)
    policy = outputs or Outputs()
    policy.add_input(a, "file A")
    policy.add_input(b, "file B")
    _register_inputs(policy, read_options)
    _claim_outputs(policy, force, emit_vectors=emit_vectors)
    tol = _tolerance(atol, rtol)
    ma, mb = read(a, **(read_options or {})), read(b, **(read_options or {}))
    if not allow_nonfinite:
        check_finite(ma, a)
        check_finite(mb, b)
    fa, fb = formats.for_reading(a), formats.for_reading(b)
    report = Report(source=file_info(a, fa.name), destination=file_info(b, fb.name),
                    tolerance=tol, seed=seed)
    assumed = ma.source.get("assumptions", []) + mb.source.get("assumptions", [])
    report.notes += assumed
    report.conversion = classify(ma, mb, assumed=assumed)
    suite, expected = check_models(ma, mb, fb, b, report, inputs=inputs, src_fmt=fa, src_path=a)
    require_checks(report, b)
    if not report.passed:
        raise VerificationError(_failure_message(report, b, True), report=report)
    if emit_vectors:
        _emit_vectors(emit_vectors, report, report.destination, suite, expected, ma, mb, force)
    return report


def verify_vectors(path, vectors_path, *, atol=None, rtol=None, read_options=None,
                   allow_nonfinite: bool = False) -> Report:
    """Re-check one model file against golden vectors: its reference pass and its own runtime."""
    from ..reference.network import forward
    path = os.fspath(path)
    index, vecs = vectors.load(vectors_path)
    model = read(path, **(read_options or {}))
    if not allow_nonfinite:
        check_finite(model, path)
    fmt = formats.for_reading(path)
    tol = dict(index.get("tolerance") or _tolerance(None, None))
    tol = _tolerance(tol["atol"] if atol is None else atol, tol["rtol"] if rtol is None else rtol)
    report = Report(source=file_info(path, fmt.name), destination=None, tolerance=tol,
                    seed=int(index.get("seed", 0)))
    report.vectors = {"path": os.fspath(vectors_path), "role": "checked"}
    report.notes += model.source.get("assumptions", [])
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
    for (label, x), y, n in zip(suite, expected, noise):
        report.checks.append(compare(forward(model, x), y, tol, "reference(file)", label, n))
    _runtime_checks(report, fmt, path, model, suite, judge_with(expected, tol, noise), "file", model)
    require_checks(report, path)
    if not report.passed:
        raise VerificationError(_failure_message(report, path, True), report=report)
    return report


def _tolerance(atol, rtol) -> dict:
    tol = dict(TOLERANCES["float32"])
    for name, value in (("atol", atol), ("rtol", rtol)):
        if value is not None:
            tol[name] = check_tolerance(name, value)
    return tol


def check_tolerance(name: str, value) -> float:
    """A tolerance as a float: finite and >= 0 (NaN would pass nothing, inf everything), else InputError."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not np.isfinite(v) or v < 0:
        raise InputError(f"{name} {value!r}: a tolerance must be a finite number >= 0")
    return v


def _failure_message(report: Report, dst, kept: bool) -> str:
    w = report.worst()
    where = f"{w.oracle} on {w.input}: max abs error {w.max_abs:.3g} at {w.worst}" if w else ""
    fate = "kept as requested" if kept else "not written"
    located = f"; {report.localization['message']}" if report.localization else ""
    return (f"NOT EQUIVALENT: {where} exceeds atol={report.tolerance['atol']:g} "
            f"rtol={report.tolerance['rtol']:g}{located}; {dst} {fate}")


def node_checks(path, name: str, suite, judge, fmt: str | None = None):
    """ONNX sources: onnxruntime running the recurrent node cut out of the source graph, on every
    input of the suite, judged by `judge(out, k, oracle, label)` (verification.judge_with).  Returns a list
    of `verification.Check`."""
    f = formats.for_reading(path, fmt)
    if f.name != "onnx":
        return []
    found = lookup(scan(path, f.name), name)
    if found.node is None:          # not a native recurrent node (a layer rnnconvert wrote as a Scan)
        return []
    from ..formats.onnx.extract import run_node
    checks = []
    for k, (label, x) in enumerate(suite):
        try:
            out = run_node(found.node, found.opset, x)
        except ImportError as exc:
            raise InputError(f"the node check needs onnxruntime ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - onnxruntime refusing the node is a failed check
            checks.append(Check("onnxruntime(src node)", f"{label} (runtime error: {exc})",
                                float("inf"), float("inf"), [], False))
            continue
        checks.append(judge(out, k, "onnxruntime(src node)", label))
    return checks
