"""Verification of a large model: the same checks, in an order that holds one copy of the weights.

A model over `suite.LARGE_MODEL_PARAMS` parameters (without state inputs/outputs, written to a format
whose runtime, if any, reads the weights from the file alone: ONNX, Keras, MATLAB) is verified with
the oracles, tolerance and report of any other model, in this order, so that besides a runtime's own
memory at most one copy of its weights is held at a time and no pass repeats another:

1. expected: the reference pass of the source on the suite for large models (suite.py, fitted to the
   time budget: budget.py), in float32
   (float64 costs 2-6x more on matrices of this size and copies each layer's weights);
2. the source's arrays are reduced to SHA-1 digests (`diagnose.skeleton`, on a `convert.Background`
   thread started before the destination is written) and its weights released;
3. the destination's own runtime runs the written file, one session for every input;
4. the destination is read back and compared with the source by digest (`diagnose.classify`).  When the
   two are identical, setting for setting and tensor for tensor (`diagnose.identical`), reference(dst)
   and streaming(reference) would compute step 1's numbers again: they are not run, and a note says so,
   unless no runtime ran (then reference(dst) is the one numeric check).  Otherwise they run as for any
   model;
5. an input on which a check fails, or whose float32 pass overflowed (inf or NaN there proves nothing),
   gets the rule of every other model: its float64 reference pass
   becomes the expected output, its float32 noise (|float32 - float64|, checks.py) is measured
   and its failed checks are judged again.  The verdict is the rule's: a check within atol + rtol of
   the float32 pass is within atol + noise + rtol of the float64 one, noise being at least their
   distance (for reference(dst) and streaming(reference), allowed no noise by the rule, this is the one
   place they pass within the noise: meeting the rule exactly would cost the source's float64 pass).
   Such an input's report entry says `"reference": "float64"`, the others `"float32"` with
   float32_noise null (not measured).
A failure is localized as for any model, with the source read again.  `verify_written` is this order as
`convert`'s verify stage (the strategy it picks when `applies`).
"""
from __future__ import annotations

import numpy as np

from . import oracles, runtimes
from . import suite as suites
from .diagnose import classify, identical, skeleton
from ..model import Model
from .budget import fitted_suite, oracle_passes, planned_checks
from .checks import compare, noise_between
from .oracles import _runtime_checks, localize_worst, node_checks, reference_checks

# The large-model path compares the tensors by their SHA-1 digests (`diagnose.skeleton`); it has no state ports.
IDENTICAL = oracles.IDENTICAL.format("", " (SHA-1)")


def applies(model: Model, dst_fmt) -> bool:
    """A large model, without state ports, for a destination whose runtime (if any) needs no weights of ours."""
    return (model.parameter_count() > suites.LARGE_MODEL_PARAMS and not model.has_state_io
            and (not dst_fmt.runtime or runtimes.from_file(dst_fmt)))


class LazyNoise:
    """judge(out, k, oracle, label) against the float32 reference; `settle` re-judges the failures by the
    float64 rule."""

    def __init__(self, report, suite, expected):
        self.report, self.suite, self.expected = report, suite, expected
        self.failed = []

    def __call__(self, out, k, oracle, label):
        check = compare(out, self.expected[k], self.report.tolerance, oracle, label, 0.0)
        # a failure, or a float32 pass that overflowed (its inf agreeing with the runtime's proves nothing),
        # is judged again by the float64 rule in settle()
        if not check.passed or not np.isfinite(self.expected[k]).all():
            self.failed.append((check, out, k))
        return check

    def settle(self, model: Model) -> None:
        """Judge every failed check again by the float64 rule, the passes of `model` (the source's
        computation) giving input k's float64 expected output and float32 noise."""
        from ..reference.network import forward
        for check, out, k in self.failed:
            entry = self.report.inputs[k]
            if entry.get("reference") != "float64":     # expected[k] is still the float32 pass
                float32_pass, self.expected[k] = self.expected[k], forward(model, self.suite[k][1])
                entry.update(reference="float64", float32_noise=noise_between(float32_pass, self.expected[k]))
            at = next(i for i, c in enumerate(self.report.checks) if c is check)
            self.report.checks[at] = compare(out, self.expected[k], self.report.tolerance, check.oracle,
                                             check.input, entry["float32_noise"])
        self.failed = []


def _float32_pass(model: Model):
    from ..reference.network import forward
    return lambda x: forward(model, x, dtype=np.float32).astype(np.float64)


def verify(held: list, digests, dst_fmt, path, report, *, inputs, reread, notes, assumed, budget=None,
           progress=None, layer=False):
    """Check the file `path` against the source model `held.pop()` (the caller keeps no other reference,
    so its weights are released after step 1); `digests`: verification.Background making its skeleton.
    `reread()` reads the source again (failures only).  `budget`, `progress`: as `oracles.check_models`.

    Returns (model, suite, expected): `model` the read-back model when it is identical to the source
    (the source's stand-in for what follows verification), else None.
    """
    model = held.pop()
    passes = oracle_passes(model, None, dst_fmt, layer=layer, large=True)
    suite, expected = fitted_suite(model, report, inputs, budget, passes, _float32_pass(model), progress)
    report.initial_states = suites.initial_states(model)
    if progress is not None:
        progress.planned(planned_checks(model, model, dst_fmt, suite, layer=layer))
    report.inputs = [{"label": label, "shape": list(x.shape), "float32_noise": None, "reference": "float32"}
                     for label, x in suite]
    src = digests.result()
    del model
    judge = LazyNoise(report, suite, expected)
    _runtime_checks(report, dst_fmt, path, src, suite, judge, "dst", src, written=True)
    back = dst_fmt.load().read(path) if dst_fmt.reads else None
    same = False
    if back is None:
        report.conversion = classify(src, None, notes=notes, assumed=assumed)
    else:
        back_digests = skeleton(back)
        report.conversion = classify(src, back_digests, notes=notes, assumed=assumed)
        same = identical(src, back_digests)
        if same and report.checks:          # without a runtime check, reference(dst) is the only one
            report.notes.append(IDENTICAL)
            if progress is not None:
                progress.planned(len(suite) if layer else 0)
        else:
            reference_checks(report, src, back, suite, judge)
    if judge.failed:
        judge.settle(back if same else reread())
    if not report.passed and back is not None:
        localize_worst(report, suite, reread(), back)
    return (back if same else None), suite, expected


def verify_written(digests, job, report, tmp, written):
    """`convert`'s verify stage for a large model (the strategy `convert._verification` picks, `digests`
    bound): `verify` above, then with --layer the source's ONNX node.  `job.model` becomes the read-back
    model standing in for the source, or the source read again when --emit-module or --emit-vectors need
    it.  Returns (back, suite, expected) as the ordinary order does."""
    job.say("verifying (a large model: one copy of its weights at a time)")
    assumed = job.model.source.get("assumptions", [])
    held, job.model = [job.model], None
    model, suite, expected = verify(held, digests, job.dst_fmt, tmp, report, inputs=job.inputs, notes=written,
                                    assumed=assumed, reread=job.reread, budget=job.budget(), progress=job.tracker,
                                    layer=job.layer is not None)
    if job.layer is not None:
        judge = LazyNoise(report, suite, expected)
        report.checks += node_checks(job.src, job.layer, suite, judge, job.src_fmt.name, report=report)
        if judge.failed:
            judge.settle(model or job.reread())
    if model is None and (job.emit_module or job.emit_vectors):
        model = job.reread()
    job.model = model
    return model, suite, expected
