"""`convert`: read the source, write DST to a temporary place beside it, verify, install, emit the extras
(--emit-module, --emit-vectors).  A model over `suite.LARGE_MODEL_PARAMS` parameters is verified in the
order of `large.py`, which holds one copy of the weights and reaches the same verdicts.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading

import numpy as np

from .. import formats
from ..errors import DestinationError, InputError, RnnConvertError, UnsupportedError, VerificationError
from ..files import interrupt
from ..files.outputs import Outputs, identity, same
from ..model import Model
from ..model.validate import check_finite
from .checks import _tolerance, judge_with
from .diagnose import classify, skeleton
from .oracles import check_models, node_checks
from .outputs import _claim_outputs, _emit_vectors, _existing_folder, _install, _make_folder, _register_inputs
from .report import Report, _failure_message, file_info, require_checks

# Options that only one kind of destination understands (the CLI's --emit-module, --stateful, ...).
OPTION_FORMATS = {"emit_module": ("torch", "safetensors"), "keras_version": ("keras",), "emit_test": ("c",),
                  "stateful": ("onnx",), "external_data": ("onnx",), "version": ("matlab",)}


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
