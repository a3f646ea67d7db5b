"""The oracles that check a written model, each on every input of the suite: reference(dst), the
destination's own runtime (onnxruntime for ONNX), streaming(reference) (chunks with the state carried,
see `suite.py`) where streaming is defined, the source's ONNX node cut out of its graph (`--layer`), and
the state checks (`state_checks.py`).  `check_models` runs them all against reference(src); a failure is
localized to the first diverging layer (`diagnose.localize`).
"""
from __future__ import annotations

import time

import numpy as np

from .. import formats
from ..model import states
from ..formats.per_layer import lookup, scan
from . import runtimes
from .budget import fitted_suite, oracle_passes, planned_checks
from .checks import _run_in_layout, float32_noise, judge_with
from .diagnose import identical, localize
from .report import reason, runtime_failed
from .suite import STREAMING, chunking, initial_states, stream, streaming_undefined


def _runtime_checks(report, fmt, path, model, suite, judge, role, src_model, also=None, written=False, ran=None):
    """`fmt`'s own runtime on `path`, on every input.  A runtime not installed (or too old or new for
    the file: `RuntimeUnavailable`) is `report.not_run` with its reason, never a numeric failure.  So is
    one that cannot load or run a file the user gave.  One that is installed and fails on the file
    rnnconvert wrote (`written`) is a failed check with its reason (`Check.error`, `report.runtime_failed`):
    the file would ship without running where it is meant to, which no reference pass makes EQUIVALENT.
    `also(out, k, oracle, label)`: a second check of the same run (`hybrid_judge`).  `ran`: the
    `RuntimePass` that already ran it on the inputs it timed."""
    runtime = fmt.runtime
    if not runtime:
        return
    oracle = f"{runtime}({role})"
    per_input = 2 if also is not None else 1
    ran = ran or RuntimePass(fmt, path, model, src_model, role)
    try:
        ran.runner()
    except Exception as exc:  # noqa: BLE001 - not installed, or refusing the file: see the docstring
        runtime_failed(report, oracle, written, exc, suite[0][0] if suite else "", True, per_input * len(suite))
        return
    for k, (label, x) in enumerate(suite):
        try:
            out = ran.output(x)
        except Exception as exc:  # noqa: BLE001 - the runtime failing on the file is no number
            runtime_failed(report, oracle, written, exc, label, k == 0, per_input * (len(suite) - k))
            return
        report.checks.append(judge(out, k, oracle, label))
        if also is not None:
            report.checks.append(also(out, k, oracle, label))


class RuntimePass:
    """A format's own runtime on a file, each input run once: `fitted_suite` times it as it fits the suite
    (`__call__`), so the estimate counts the runtime's own cost, and `_runtime_checks` takes the output it
    kept (`output`), or the error it raised, as if it ran then."""

    def __init__(self, fmt, path, model, src_model, role="dst"):
        self.fmt, self.path, self.model, self.src_model = fmt, path, model, src_model
        self.oracle = f"{fmt.runtime}({role})"
        self._run, self._error, self._kept = None, None, {}

    def runner(self):
        """The loaded runtime, or what loading it raised (once)."""
        if self._run is None and self._error is None:
            try:
                self._run = runtimes.runner(self.fmt, self.path, self.model)
            except Exception as exc:  # noqa: BLE001 - kept, raised to `_runtime_checks`
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._run

    def __call__(self, label, x) -> float | None:
        """Run on `x` and keep the output: its seconds, or None when the runtime did not run (not loaded,
        failing on this input or an earlier one)."""
        try:
            self.runner()
        except Exception:  # noqa: BLE001 - `_runtime_checks` reports it
            return None
        if any(isinstance(v, Exception) for v in self._kept.values()):
            return None
        start = time.perf_counter()
        out = self._output(x)
        seconds = time.perf_counter() - start
        self._kept[_key(x)] = out
        return None if isinstance(out, Exception) else seconds

    def _output(self, x):
        try:
            return _run_in_layout(self.runner(), x, self.src_model, self.model)
        except Exception as exc:  # noqa: BLE001 - kept, raised to `_runtime_checks`
            return exc

    def output(self, x):
        """The output on `x` (kept, else run now), or raise what the runtime raised on it."""
        out = self._kept.pop(_key(x), None)
        if out is None:
            out = self._output(x)
        if isinstance(out, Exception):
            raise out
        return out


def _streaming_checks(report, model, suite, judge, src_model):
    why = streaming_undefined(model)
    if why:
        report.not_run(STREAMING, f"not defined ({why})")
        return
    for k, (label, x) in enumerate(suite):
        time_axis = 0 if src_model.input.layout == "time_batch_feature" else 1
        if x.shape[time_axis] > 1:
            out = _run_in_layout(lambda v: stream(model, v), x, src_model, model)
            chunks = "+".join(map(str, chunking(x.shape[time_axis])))
            report.checks.append(judge(out, k, STREAMING, f"{label} chunks {chunks}"))


IDENTICAL = ("reference(dst){} and streaming(reference) not run: the file reads back identical to the source, "
             "every setting and every tensor{}, so they would repeat reference(src)")


def reference_checks(report, src_model, dst_model, suite, judge):
    """reference(dst) on every input, and streaming(reference) where it is defined: float64 reference passes
    on both sides, so `judge` gives them no noise allowance (checks.FLOAT64_ORACLES): atol + rtol*|b| alone."""
    from ..reference.network import forward
    for k, (label, x) in enumerate(suite):
        out = _run_in_layout(lambda v: forward(dst_model, v), x, src_model, dst_model)
        report.checks.append(judge(out, k, "reference(dst)", label))
    _streaming_checks(report, dst_model, suite, judge, src_model)


class SourcePass:
    """forward(src, x), the expected output of each input, keeping each pass's final states: the zero-state
    check of a model with state inputs and outputs is then that pass again (`zero_states`), not a new one."""

    def __init__(self, model):
        self.model, self.finals = model, {}

    def __call__(self, x):
        from ..reference.network import forward_with_states
        y, final = forward_with_states(self.model, x)
        if self.model.has_state_io:
            self.finals[_key(x)] = (y, final)
        return y

    def zero_states(self, x):
        """(output, state outputs) of the source with every state input zero, when a pass on `x` already
        computed them (the model's own initial states are zeros); None otherwise."""
        from ..reference.network import state_outputs
        known = self.finals.get(_key(x))
        if known is None or not states.inputs_start_at_zero(self.model):
            return None
        return known[0], state_outputs(self.model, known[1])


def _key(x) -> tuple:
    import hashlib
    return x.shape, str(x.dtype), hashlib.sha1(np.ascontiguousarray(x)).digest()


def check_models(src_model, dst_model, dst_fmt, dst_path, report, *, inputs=None,
                 src_fmt=None, src_path=None, budget=None, progress=None, layer=False, written=True):
    """Run every check of dst (and src's own runtime where it has one) against reference(src), on the
    suite fitted to `budget` (`budget.py`; None: the full suite); `progress`: a `progress.Tracker`;
    `layer`: --layer's node check follows (counted in the budget and the checks planned); `written`:
    rnnconvert wrote dst (convert), so its runtime failing on it fails a check (`_runtime_checks`).

    A destination that reads back identical to the source (`diagnose.identical`) gets no reference(dst) and
    no streaming(reference) (they would repeat reference(src)), a note saying so, unless no runtime ran:
    then reference(dst) is the numeric check.  Returns (suite, expected): the inputs in src's layout and
    the reference outputs of src.
    """
    tol = report.tolerance
    same = dst_model is not None and identical(src_model, dst_model)
    passes = oracle_passes(src_model, dst_model, dst_fmt, src_fmt, layer, same=same)
    source = SourcePass(src_model)
    ran = RuntimePass(dst_fmt, dst_path, dst_model or src_model, src_model) if dst_fmt.runtime else None
    suite, expected = fitted_suite(src_model, report, inputs, budget, passes, source, progress, ran)
    report.initial_states = initial_states(src_model)
    if progress is not None:
        progress.planned(planned_checks(src_model, dst_model, dst_fmt, suite, src_fmt, layer, same=same))
    noise = [float32_noise(src_model, x, y) for (_, x), y in zip(suite, expected)]
    report.inputs = [{"label": label, "shape": list(x.shape), "float32_noise": n}
                     for (label, x), n in zip(suite, noise)]
    judge = judge_with(expected, tol, noise, 0 if src_model.input.layout == "time_batch_feature" else 1)
    if dst_model is not None and not same:      # (a write-only format, generated code: its runtime is the check)
        reference_checks(report, src_model, dst_model, suite, judge)
    if src_fmt is not None:
        _runtime_checks(report, src_fmt, src_path, src_model, suite, judge, "src", src_model)
    also = hybrid_judge(report, src_model, dst_model, suite, dst_fmt.runtime, progress) if dst_fmt.runtime else None
    _runtime_checks(report, dst_fmt, dst_path, dst_model or src_model, suite, judge, "dst", src_model, also,
                    written=written, ran=ran)
    if same:
        if report.checks:
            report.notes.append(IDENTICAL.format(" (with and without states)" if src_model.has_state_io else "", ""))
            why = streaming_undefined(src_model)
            if why:             # no streaming claimed, by any runner: say why, as reference_checks does
                report.not_run(STREAMING, f"not defined ({why})")
        else:           # no runtime ran: reference(dst) is the one numeric check
            if progress is not None:
                progress.added(planned_checks(src_model, dst_model, dst_fmt, suite, src_fmt, layer)
                               - planned_checks(src_model, dst_model, dst_fmt, suite, src_fmt, layer, same=True))
            reference_checks(report, src_model, dst_model, suite, judge)
            same = False
    if src_model.has_state_io:
        from .state_checks import state_checks
        state_checks(report, src_model, dst_model, dst_fmt, dst_path, suite, tol, source.zero_states, same,
                     written=written)
    if not report.passed and dst_model is not None:
        localize_worst(report, suite, src_model, dst_model)
    return suite, expected


def localize_worst(report, suite, src_model, dst_model) -> None:
    """report.localization on the input of the worst check (the 7-step one when no input matches)."""
    worst = report.worst()
    x = next((x for label, x in suite if worst.input == label or worst.input.startswith(label + " ")),
             suite[min(1, len(suite) - 1)][1])
    report.localization = localize(src_model, dst_model, x, report.tolerance)


def node_checks(path, name: str, suite, judge, fmt: str | None = None, report=None):
    """ONNX sources: onnxruntime running the recurrent node cut out of the source graph, on every
    input of the suite, judged by `judge(out, k, oracle, label)` (checks.judge_with).  Returns a list
    of `checks.Check`; onnxruntime missing or refusing the node is `report.not_run`, not a check."""
    f = formats.for_reading(path, fmt)
    if f.name != "onnx":
        return []
    found = lookup(scan(path, f.name), name)
    if found.node is None:          # not a native recurrent node (a layer rnnconvert wrote as a Scan)
        return []
    from ..formats.onnx.extract import run_node
    oracle = "onnxruntime(src node)"
    checks = []
    for k, (label, x) in enumerate(suite):
        try:
            out = run_node(found.node, found.opset, x)
        except Exception as exc:  # noqa: BLE001 - not installed, or refusing the node: not run
            if report is not None:
                report.not_run(oracle, exc if k == 0 else f"on {label}: {reason(exc)}", unplanned=len(suite) - k)
            break
        checks.append(judge(out, k, oracle, label))
    return checks


HYBRID = "{} vs reference(dst)"
FLOAT_WEIGHTS = "{} vs reference(float weights)"
CHANGED = ("arithmetic changed: layers {layers} of the source run LiteRT's hybrid int8 kernels (activations quantized "
           "on the fly); the destination holds their weights dequantized, computed in float (.rnnc keeps that "
           "arithmetic, .tflite for Dense, Conv1D, the fused LSTM / RNN ops and its WHILE loops without a clip or a "
           "mask, no other format).  The checks against the source measure that change (accept it with a "
           "looser --atol); '{runtime}(dst) vs reference(float weights)' checks the file against the float model of "
           "the same weights (atol={atol:g} rtol={rtol:g})")
RUNS_HYBRID = ("layers {layers} run LiteRT's hybrid int8 kernels (activations quantized on the fly): '{runtime}(dst) "
               "vs reference(dst)' checks the runtime against that arithmetic (atol={atol:g} rtol={rtol:g}); the "
               "other checks measure the distance from the source's arithmetic")


def hybrid_judge(report, src_model, dst_model, suite, runtime: str, progress=None):
    """Where int8 hybrid arithmetic (`model.hybrid`) is on one side: also(out, k, oracle, label), the runtime's
    output against the reference pass of what the file itself computes, at the float32 tolerance (or the
    user's, when tighter: a looser --atol, chosen for the distance from the source, does not loosen it).
    A hybrid destination: reference(dst), which computes LiteRT's arithmetic.  A hybrid source written
    where no hybrid layer is kept: the float model of the same weights, with a note that the arithmetic
    changed.  None when neither side, or both alike, run hybrid kernels."""
    from ..model.hybrid import any_hybrid, dequantized, note
    from ..reference.network import forward
    from .checks import TOLERANCES, compare, noise_between
    src_h, dst_h = any_hybrid(src_model), dst_model is not None and any_hybrid(dst_model)
    if not dst_h and not src_h or dst_h and identical(src_model, dst_model):
        return None
    tol = {k: min(v, report.tolerance[k]) for k, v in TOLERANCES["float32"].items()}
    model, name = (dst_model, HYBRID) if dst_h else (dequantized(src_model), FLOAT_WEIGHTS)
    text = RUNS_HYBRID if dst_h else CHANGED
    report.notes.append(text.format(layers=", ".join(note(dst_model if dst_h else src_model)), runtime=runtime,
                                    **tol))
    if progress is not None:
        progress.added(len(suite))
    time_axis = 0 if src_model.input.layout == "time_batch_feature" else 1

    def also(out, k, oracle, label):
        x = suite[k][1]
        expected = _run_in_layout(lambda v: forward(model, v), x, src_model, model)
        noise = noise_between(_run_in_layout(lambda v: forward(model, v, dtype=np.float32), x, src_model, model),
                              expected)
        return compare(out, expected, tol, name.format(oracle), label, noise, time_axis)
    return also
