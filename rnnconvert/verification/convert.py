"""`convert` as its stages: resolve the formats and refuse early (every output claimed), read the source,
write to a temporary place beside DST, verify, install, emit the extras (--emit-module, --emit-vectors).
The verify stage is a strategy picked before DST is written: none (--no-verify), `_ordinary` (the file
read back, `oracles.check_models`), or over `suite.LARGE_MODEL_PARAMS` parameters `large.verify_written`,
which holds one copy of the weights.  `Job` carries what the stages share.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np

from .. import formats
from ..errors import DestinationError, InputError, RnnConvertError, UnsupportedError, VerificationError
from ..files import interrupt
from ..files.outputs import Outputs, identity, same
from ..model import Model
from ..model.assumptions import strict as refuse_assumptions
from ..model.validate import check_finite
from . import large
from .budget import Budget, allowance
from .checks import _tolerance, judge_with
from .diagnose import classify, skeleton
from .inputs import check as check_inputs
from .oracles import check_models, node_checks
from .outputs import (_claim_outputs, _emit_module, _emit_vectors, _existing_folder, _install,
                      _register_inputs)
from .progress import Tracker, observe
from .report import Report, _failure_message, file_info, note_reading, require_checks
from .suite import check_seed

# Options that only one kind of destination understands (the CLI's --emit-module, --stateful, ...).
OPTION_FORMATS = {"emit_module": ("torch", "safetensors"), "keras_version": ("keras",), "emit_test": ("c",),
                  "stateful": ("onnx", "tflite"), "external_data": ("onnx",), "version": ("matlab",),
                  "quantize": ("tflite",)}


def convert(src, dst, *, verify: bool = True, atol: float | None = None, rtol: float | None = None,
            inputs: np.ndarray | None = None, force: bool = False, keep_failed: bool = False,
            src_format: str | None = None, dst_format: str | None = None, seed: int = 0,
            read_options: dict | None = None, write_options: dict | None = None, emit_module=None,
            emit_vectors=None, progress=None, layer: str | None = None,
            allow_nonfinite: bool = False, outputs: Outputs | None = None, make_dirs: bool = False,
            strict: bool = False, time_budget: float | None = None, in_place: bool = False) -> Report:
    """Read `src`, write `dst`, read it back and verify; `dst` appears only when all checks pass.

    On a failed verification nothing is left at `dst` (an existing file there is untouched)
    unless `keep_failed`; the VerificationError carries the report.  A writer's refusal
    (UnsupportedError) carries a report too, as `exc.report_so_far`, with the refusal in
    `conversion["refused"]`.  `read_options` go to the source's reader (e.g. `arch` hints for a
    PyTorch state dict), `write_options` to the destination's writer (e.g. `keras_version=2`).
    `emit_module`: for a PyTorch destination, also write a standalone module file that loads it
    (after verification passed).  `emit_vectors`: a directory for golden test vectors of `dst`.
    `layer`: convert only that recurrent layer of `src`, as a standalone model (`rnnconvert/formats/per_layer.py`); for an
    ONNX source it is also checked against onnxruntime running the node cut out of the source graph.
    Weights holding NaN or Inf are refused (InputError naming layer and tensor) unless `allow_nonfinite`.
    `outputs`: the run's output policy (rnnconvert/files/outputs.py) with the caller's own inputs and outputs (--inputs,
    --report) registered; every path written is claimed in it.  `make_dirs`: DST's missing folders are
    made when it is installed (never before verification passed).  `strict`: a source read under any
    assumption (`model.source["assumptions"]`) is refused (InputError naming each and what settles it).
    `progress`: called with a `progress.Event` for each stage and each finished check (`progress.Printer`
    prints them).  `time_budget`: seconds verification may spend (None: 10x the read + write time or 30 s,
    whichever is larger; inf: the full suite): past it the longest seeded inputs are shortened
    (`budget.py`, `report.suite`).  `in_place` (ONNX -> ONNX): the source graph kept whole, each recurrent node of
    its main graph rewritten as a native node (`rewrite.py`; with write option `stateful`, its states as graph
    inputs and outputs), verified by onnxruntime on both graphs (default atol 1e-5, rtol 0), on `inputs` when given
    ({graph input: array}, or one array for the first input).
    """
    job = Job(os.fspath(src), os.fspath(dst), verify=verify, force=force, keep_failed=keep_failed,
              make_dirs=make_dirs, layer=layer, read_options=read_options or {}, write_options=write_options or {},
              emit_module=emit_module, emit_vectors=emit_vectors, time_budget=time_budget,
              tracker=None if progress is None else Tracker(progress), strict=strict)
    tol, seed = _tolerance(atol, rtol), check_seed(seed)       # usage errors before any work
    _resolve(job, src_format, dst_format, outputs)
    if in_place:         # ONNX -> ONNX, the graph kept and its recurrent nodes rewritten (verification/rewrite.py)
        return _in_place(job, atol, rtol, seed, keep_failed, inputs)
    report = _read(job, tol, seed, inputs, allow_nonfinite)
    tmp = _temporary_place(job)
    try:
        interrupt.resume()          # held since the folder was made: now inside the try that removes it
        job.say(f"writing {job.dst} ({job.dst_fmt.name})")
        verify_written = _verification(job)
        with _errors_name_dst(tmp, job.dst):
            written = _write(job, report, tmp)
            dst_info = Background(file_info, tmp, job.dst_fmt.name)
            back, suite, expected = verify_written(job, report, tmp, written)
        _install_if_passed(job, report, tmp, dst_info)
        _emit_extras(job, report, back, suite, expected)
        if not report.passed:
            raise VerificationError(_failure_message(report, job.dst, job.keep_failed), report=report)
        return report
    finally:
        shutil.rmtree(os.path.dirname(tmp), ignore_errors=True)


@dataclass
class Job:
    """One conversion as its stages share it: what was asked, what `_resolve` found, and the source model
    (`model`) while a stage needs it (the large-model order lets it go, and may read it again)."""
    src: str
    dst: str
    verify: bool
    force: bool
    keep_failed: bool
    make_dirs: bool
    layer: str | None
    read_options: dict
    write_options: dict
    emit_module: object
    emit_vectors: object
    time_budget: float | None
    tracker: Tracker | None
    strict: bool = False
    src_fmt: object = None
    dst_fmt: object = None
    policy: Outputs | None = None
    directory: str = ""             # DST's folder
    scratch: str = ""               # the existing folder the temporary one is made in
    inputs: np.ndarray | None = None
    model: Model | None = None
    io_seconds: float = 0.0         # reading the source and writing DST: what the verification budget scales with

    def say(self, message: str) -> None:
        if self.tracker is not None:
            self.tracker.stage(message)

    def budget(self) -> Budget:
        return allowance(self.io_seconds, self.time_budget)

    def reread(self) -> Model:
        return _read_source(self.src, self.src_fmt, self.read_options, self.layer)


def _resolve(job: Job, src_format, dst_format, outputs: Outputs | None) -> None:
    """The formats, DST and every extra output claimed, the folder the temporary goes in: each refusal
    before any work."""
    formats.check_exists(job.src)
    if same(identity(job.src), identity(job.dst)):
        raise DestinationError("destination is the source file; choose another path", path=job.dst)
    job.policy = outputs or Outputs()
    job.policy.add_input(job.src, "the source file")
    _register_inputs(job.policy, job.read_options)
    job.dst_fmt = formats.for_writing(job.dst, dst_format)
    job.src_fmt = formats.for_reading(job.src, src_format)
    for option, value in ({"emit_module": job.emit_module} | job.write_options).items():
        allowed = OPTION_FORMATS.get(option)
        if value and allowed and job.dst_fmt.name not in allowed:
            raise DestinationError(f"--{option.replace('_', '-')} is for {' or '.join(allowed)} destinations, "
                                   f"not {job.dst_fmt.name}", path=job.dst)
    job.policy.claim(job.dst, "DST", replace=job.force)
    _claim_outputs(job.policy, job.force, job.emit_module, job.emit_vectors)
    job.directory = os.path.dirname(os.path.abspath(job.dst))
    job.scratch = _existing_folder(job.directory, job.make_dirs, job.dst)


def _in_place(job: Job, atol, rtol, seed: int, keep_failed: bool, inputs) -> Report:
    from .rewrite import convert_in_place
    if (job.src_fmt.name, job.dst_fmt.name) != ("onnx", "onnx") or job.layer is not None:
        raise InputError("--in-place rewrites an ONNX graph into an ONNX file: SRC and DST must both be ONNX, "
                         "without --layer", path=job.dst)
    tol = _tolerance(1e-5 if atol is None else atol, 0.0 if rtol is None else rtol)
    tmp = _temporary_place(job)
    try:
        interrupt.resume()
        job.say(f"rewriting {job.src} in place into {job.dst}")
        with _errors_name_dst(tmp, job.dst):
            return convert_in_place(job.src, job.dst, tmp, tol, seed, bool(job.write_options.get("stateful")),
                                    job.force, job.policy, job.directory, verify=job.verify, keep_failed=keep_failed,
                                    branches=job.read_options.get("branches"), given=inputs)
    finally:
        shutil.rmtree(os.path.dirname(tmp), ignore_errors=True)


def _read(job: Job, tol: dict, seed: int, inputs, allow_nonfinite: bool) -> Report:
    """The source model (`job.model`), its weights finite, `inputs` checked against it; the report begun."""
    job.say(f"reading {job.src} ({job.src_fmt.name})")
    src_info = Background(file_info, job.src, job.src_fmt.name)
    start = time.perf_counter()
    job.model = job.reread()
    job.io_seconds += time.perf_counter() - start
    if job.strict:
        refuse_assumptions(job.model, job.src)
    if not allow_nonfinite:
        check_finite(job.model, job.src)
    if inputs is not None and job.verify:
        inputs = check_inputs(job.model, inputs)
    job.inputs = inputs
    report = Report(source=src_info.result(), destination=None, tolerance=tol, seed=seed)
    note_reading(report, job.model, job.src)
    report.notes += job.model.source.get("picked", [])      # what the reader chose among the file's contents
    observe(report, job.tracker)
    return report


def _read_source(src, src_fmt, read_options: dict, layer: str | None) -> Model:
    """The whole model, or with `layer` that layer alone; a refused whole model suggests --layer."""
    from ..formats import per_layer as select
    if layer is not None:
        return select.extract(src, layer, src_fmt.name, **read_options)
    try:
        return src_fmt.load().read(src, **read_options)
    except InputError as exc:
        raise select.with_suggestion(exc, src, src_fmt.name, **read_options) from None


def _temporary_place(job: Job) -> str:
    """A file of DST's name in a temporary folder beside it: a writer's companion files (a C header, a
    NumPy script's weights) get their final names and are installed with DST.  Returns with signals held
    (`interrupt.defer`): the caller resumes them inside the try that removes the folder."""
    interrupt.defer()           # no signal between the folder's creation and the try that removes it
    try:
        tmpdir = tempfile.mkdtemp(prefix=f".{os.path.basename(job.dst)}.", suffix=".tmp", dir=job.scratch)
    except OSError as exc:
        interrupt.resume()
        raise DestinationError(f"cannot write in '{job.scratch}' ({exc.strerror or exc})", path=job.dst) from None
    return os.path.join(tmpdir, os.path.basename(job.dst))


@contextmanager
def _errors_name_dst(tmp: str, dst: str):
    """While writing and verifying: an OSError is DST's DestinationError, an error naming the temporary
    names DST (the file the user asked for)."""
    try:
        yield
    except OSError as exc:
        raise DestinationError(f"cannot write ({exc.strerror or exc})", path=dst) from None
    except RnnConvertError as exc:
        if exc.path == tmp:
            exc.path = dst
        raise


def _write(job: Job, report: Report, tmp: str) -> list:
    """The source model written at `tmp`; the writer's notes.  A refusal (UnsupportedError) carries the
    report so far, the refusal in `conversion["refused"]`."""
    start = time.perf_counter()
    try:
        formats.peepholes_written_by(job.model, job.dst_fmt.name, tmp)
        written = job.dst_fmt.load().write(job.model, tmp, **job.write_options) or []
    except UnsupportedError as exc:
        report.verified = False
        report.conversion = classify(job.model, None, refused=[exc.format().replace(tmp, job.dst)],
                                     assumed=job.model.source.get("assumptions", []))
        exc.report_so_far = report
        raise
    job.io_seconds += time.perf_counter() - start
    report.notes += written
    return written


def _verification(job: Job):
    """The verify stage's strategy, picked before DST is written: verify_written(job, report, tmp, written)
    -> (back, suite, expected).  The large-model order starts the source's digests now, beside the writer."""
    if not job.verify:
        return _unverified
    if large.applies(job.model, job.dst_fmt):
        return partial(large.verify_written, Background(skeleton, job.model))
    return _ordinary


def _ordinary(job: Job, report: Report, tmp: str, written: list):
    """The file read back, every check of `check_models`, and with --layer on an ONNX source the node cut
    out of the source graph."""
    job.say("verifying")
    back = job.dst_fmt.load().read(tmp) if job.dst_fmt.reads else None
    report.conversion = classify(job.model, back, notes=written, assumed=job.model.source.get("assumptions", []))
    suite, expected = check_models(job.model, back, job.dst_fmt, tmp, report, inputs=job.inputs,
                                   budget=job.budget(), progress=job.tracker, layer=job.layer is not None)
    if job.layer is not None:
        noise = [i["float32_noise"] for i in report.inputs]
        report.checks += node_checks(job.src, job.layer, suite, judge_with(expected, report.tolerance, noise),
                                     job.src_fmt.name, report=report)
    return back, suite, expected


def _unverified(job: Job, report: Report, tmp: str, written: list):
    """--no-verify: what the conversion preserved, changed or refused, and no check."""
    report.conversion = classify(job.model, None, notes=written, assumed=job.model.source.get("assumptions", []))
    report.verified = False
    return None, None, None


def _install_if_passed(job: Job, report: Report, tmp: str, dst_info) -> None:
    """The verdict settled (zero checks is never a pass), DST's file info in the report, and DST with its
    companion files installed when every check passed, or with --keep-failed."""
    if job.verify:
        require_checks(report, job.dst)
    report.destination = dst_info.result() | {"path": job.dst}
    if report.passed or job.keep_failed:
        _install(job.policy, os.path.dirname(tmp), job.directory, job.dst, job.force)


def _emit_extras(job: Job, report: Report, back, suite, expected) -> None:
    """--emit-module and --emit-vectors, once verification passed."""
    if job.emit_module and report.passed:
        _emit_module(job.model, job.emit_module, job.dst, job.force, job.make_dirs, report)
    if job.emit_vectors and job.verify and report.passed:
        _emit_vectors(job.emit_vectors, report, report.destination, suite, expected, job.model,
                      back or job.model, job.force)


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
