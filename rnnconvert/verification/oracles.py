"""The oracles that check a written model, each on every input of the suite: reference(dst), the
destination's own runtime (onnxruntime for ONNX), streaming(reference) (chunks with the state carried,
see `suite.py`) where streaming is defined, the source's ONNX node cut out of its graph (`--layer`), and
the state checks (`state_checks.py`).  `check_models` runs them all against reference(src); a failure is
localized to the first diverging layer (`diagnose.localize`).
"""
from __future__ import annotations

from .. import formats
from ..formats.per_layer import lookup, scan
from . import runtimes
from .budget import fitted_suite, oracle_passes, planned_checks
from .checks import _run_in_layout, float32_noise, judge_with
from .diagnose import localize
from .report import reason
from .suite import STREAMING, chunking, initial_states, stream, streaming_undefined


def _runtime_checks(report, fmt, path, model, suite, judge, role, src_model):
    """`fmt`'s own runtime on `path`, on every input; a runtime not installed, or one that cannot load or
    run the file, is `report.not_run` with its reason (on which input, when earlier ones ran), never a
    numeric failure: NOT EQUIVALENT rests on numbers that disagree."""
    runtime = fmt.runtime
    if not runtime:
        return
    oracle = f"{runtime}({role})"
    try:
        run = runtimes.runner(fmt, path, model)
    except Exception as exc:  # noqa: BLE001 - not installed, or refusing the file: not run, with the reason
        report.not_run(oracle, exc)
        return
    for k, (label, x) in enumerate(suite):
        try:
            out = _run_in_layout(run, x, src_model, model)
        except Exception as exc:  # noqa: BLE001 - the runtime failing on the file is no number
            report.not_run(oracle, exc if k == 0 else f"on {label}: {reason(exc)}")
            return
        report.checks.append(judge(out, k, oracle, label))


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


def reference_checks(report, src_model, dst_model, suite, judge):
    """reference(dst) on every input, and streaming(reference) where it is defined: float64 reference passes
    on both sides, so `judge` gives them no noise allowance (checks.FLOAT64_ORACLES): atol + rtol*|b| alone."""
    from ..reference.network import forward
    for k, (label, x) in enumerate(suite):
        out = _run_in_layout(lambda v: forward(dst_model, v), x, src_model, dst_model)
        report.checks.append(judge(out, k, "reference(dst)", label))
    _streaming_checks(report, dst_model, suite, judge, src_model)


def check_models(src_model, dst_model, dst_fmt, dst_path, report, *, inputs=None,
                 src_fmt=None, src_path=None, budget=None, progress=None, layer=False):
    """Run every check of dst (and src's own runtime where it has one) against reference(src), on the
    suite fitted to `budget` (`budget.py`; None: the full suite); `progress`: a `progress.Tracker`;
    `layer`: --layer's node check follows (counted in the budget and the checks planned).

    Returns (suite, expected): the inputs in src's layout and the reference outputs of src.
    """
    from ..reference.network import forward
    tol = report.tolerance
    passes = oracle_passes(src_model, dst_model, dst_fmt, src_fmt, layer)
    suite, expected = fitted_suite(src_model, report, inputs, budget, passes, lambda x: forward(src_model, x),
                                   progress)
    report.initial_states = initial_states(src_model)
    if progress is not None:
        progress.planned(planned_checks(src_model, dst_model, dst_fmt, suite, src_fmt, layer))
    noise = [float32_noise(src_model, x, y) for (_, x), y in zip(suite, expected)]
    report.inputs = [{"label": label, "shape": list(x.shape), "float32_noise": n}
                     for (label, x), n in zip(suite, noise)]
    judge = judge_with(expected, tol, noise, 0 if src_model.input.layout == "time_batch_feature" else 1)
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
                report.not_run(oracle, exc if k == 0 else f"on {label}: {reason(exc)}")
            break
        checks.append(judge(out, k, oracle, label))
    return checks
