"""What verification may spend, and the seeded suite fitted to it.

The budget is FACTOR times the conversion's own read + write time, or FLOOR_SECONDS, whichever is larger
(`allowance`).  The source's reference passes, which give each input's expected output, run shortest input
first and are timed, and so is the destination's runtime (a probe that keeps its output for its check);
before each seeded input after the first, the rest of the suite's cost is estimated from the longest passes
so far as passes x steps x rows (`oracle_passes`: how many passes each input gets, the float64 reference,
its float32 noise pass, reference(dst), streaming, each runtime, the state checks; the destination
runtime's at its own cost).
When the next input's estimate is past what is left of the budget, the longest seeded inputs are shortened,
or dropped, last first, until it fits (`fit`); the first seeded input is always kept: batch > 1, its saturating row, the
model's fixed length where it has one.  The user's own inputs are never dropped.  `report.suite` says what
was shortened and why, and a note says it in words.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..model import states
from .suite import input_suite, seeded_shapes, streaming_undefined

FACTOR = 10.0
FLOOR_SECONDS = 30.0


@dataclass
class Budget:
    seconds: float          # inf: the full suite, whatever it costs
    basis: str              # how it was set, for the report


def allowance(io_seconds: float, given: float | None = None) -> Budget:
    """FACTOR x `io_seconds` (the read + write time) or FLOOR_SECONDS, whichever is larger; `given`
    (the API's `time_budget`) instead when not None."""
    if given is not None:
        given = float(given)
        return Budget(given, "none: the full suite (--full-suite, time_budget=inf)" if math.isinf(given)
                      else "given (time_budget)")
    scaled = FACTOR * io_seconds
    if scaled > FLOOR_SECONDS:
        return Budget(scaled, f"{FACTOR:g}x the read + write time ({io_seconds:.2f} s)")
    return Budget(FLOOR_SECONDS, f"the {FLOOR_SECONDS:g} s floor ({FACTOR:g}x the read + write time, "
                                 f"{io_seconds:.2f} s, is less)")


@dataclass
class Passes:
    """How many passes verification makes over each input: `reference` of them at the cost of the source's
    reference pass (its float64 pass, the float32 noise pass, reference(dst), streaming, a source runtime),
    `runtime` of them the destination's own runtime (its check, and on an ONNX file with state ports its
    state checks), which `fitted_suite` times apart when a probe runs it."""
    reference: int
    runtime: int = 0

    @property
    def total(self) -> int:
        return self.reference + self.runtime


def oracle_passes(src_model, dst_model, dst_fmt, src_fmt=None, layer: bool = False, large: bool = False,
                  same: bool = False) -> Passes:
    """How many passes over one input verification makes (`Passes`).  `same`: dst reads back identical to
    the source, so reference(dst) and streaming(reference) do not run (`oracles.check_models`)."""
    if large:       # large.py: the float32 reference, the runtime, reference(dst) (not run when identical)
        return Passes(2 + bool(layer), bool(dst_fmt.runtime))
    n = 2 + bool(src_fmt is not None and src_fmt.runtime) + bool(layer)
    runtime = int(bool(dst_fmt.runtime))
    reference_dst = dst_model is not None and not same
    if reference_dst:
        n += 1 + (streaming_undefined(dst_model) is None)
    if src_model.has_state_io:
        # the source from random states (its streaming check compares with that pass) and from zero states
        # (the suite's own pass when its state inputs start from zeros: `SourcePass.zero_states`); each
        # runner's three (`state_checks.runner_oracles`)
        from .state_checks import runner_oracles
        oracles = runner_oracles(src_model, dst_model, dst_fmt, same)
        n += 1 + (not states.inputs_start_at_zero(src_model)) + 3 * ("reference(dst)" in oracles)
        runtime += 3 * (len(oracles) - ("reference(dst)" in oracles))
    return Passes(n, runtime)


def planned_checks(src_model, dst_model, dst_fmt, suite, src_fmt=None, layer: bool = False,
                   same: bool = False) -> int:
    """How many checks `oracles.check_models` (and --layer's node check) will report on `suite`, for
    progress (check i of n); a runtime that turns out missing takes its checks off (`Report.not_run`)."""
    from .state_checks import planned_per_runner, runner_oracles
    time_axis = 0 if src_model.input.layout == "time_batch_feature" else 1
    long = sum(x.shape[time_axis] > 1 for _, x in suite)
    n = len(suite) * (bool(dst_fmt.runtime) + bool(src_fmt is not None and src_fmt.runtime) + bool(layer))
    reference_dst = dst_model is not None and not same
    if reference_dst:
        n += len(suite) + (long if streaming_undefined(dst_model) is None else 0)
    if src_model.has_state_io:
        n += len(runner_oracles(src_model, dst_model, dst_fmt, same)) * planned_per_runner(src_model, suite)
    return n


def fit(shapes, cost, budget: float, fixed_length: bool, extra: float = 0.0, keep: int = 1, floor: int = 0):
    """(kept shapes, what changed): the last of `shapes` shortened (a model without a fixed length) or
    dropped, again and again, until sum(cost(batch, time)) + `extra` fits `budget`; the first `keep` are
    kept.  A shortened input stays longer than the one before it (`floor` before the first).
    `cost(batch, time)` is linear in time."""
    kept, changed = list(shapes), []

    def total():
        return sum(cost(b, t) for b, t in kept) + extra

    while len(kept) > keep and total() > budget:
        batch, steps = kept.pop()
        if not fixed_length:
            fits = int((budget - total()) // cost(batch, 1))
            if fits > (kept[-1][1] if kept else floor):
                kept.append((batch, fits))
                changed.append(f"seeded b{batch} t{steps} shortened to t{fits}")
                break
        changed.append(f"seeded b{batch} t{steps} dropped")
    return kept, changed


def fitted_suite(model, report, inputs, budget: Budget | None, passes: Passes, forward, progress=None, probe=None):
    """(suite, expected): the seeded suite fitted to `budget` (None: the full suite), `forward(x)` the
    expected output of each input; `report.suite` and, when inputs were shortened, a note say so.

    The expected passes run shortest input first and are timed; so is `probe(label, x)` (the destination's
    runtime, `oracles.RuntimePass`, which keeps its output for the check: seconds, or None when the runtime
    does not run).  Before each seeded input after the first, its cost is estimated from the longest passes
    timed so far, scaled by steps and rows: `passes.reference` times the reference pass, `passes.runtime` times
    the runtime's (the reference pass's where no probe ran).  When it does not fit what is left (the user's
    input counted), `fit` drops the longest inputs still to come and shortens this one.  The estimate
    sharpens as the inputs grow, so a one-step input's fixed overhead never condemns the long ones."""
    path = report.source["path"]
    shapes = seeded_shapes(model, path)
    suite = input_suite(model, report.seed, inputs, path)
    say = progress.stage if progress is not None else (lambda text: None)
    limit = math.inf if budget is None else budget.seconds
    fixed = bool(model.input.time_steps)
    axes = (1, 0) if model.input.layout == "time_batch_feature" else (0, 1)
    user = (suite[-1][1].shape[axes[0]], suite[-1][1].shape[axes[1]]) if inputs is not None else None
    kept, changed, expected, timed = list(shapes), [], [], []
    longest = {}                    # "reference", "runtime": (label, batch, steps, seconds) of the longest pass
    i = 0
    while i < len(suite):
        label, x = suite[i]
        if 0 < i < len(kept):       # a seeded input not yet run: does it fit what is left?
            cost = _cost(longest, passes)
            left = limit - sum(seconds for *_, seconds in timed) - (cost(*user) if user else 0.0)
            tail, more = fit(kept[i:], cost, left, fixed, keep=0, floor=kept[i - 1][1]) if cost(*kept[i]) > left \
                else (kept[i:], [])
            if more:
                kept, changed = kept[:i] + tail, changed + more
                suite = input_suite(model, report.seed, inputs, path, shapes=kept)
                continue
        say(f"verifying: reference(src) on {label}")
        start = time.perf_counter()
        expected.append(forward(x))
        seconds = {"reference": time.perf_counter() - start}
        if probe is not None:
            say(f"verifying: {probe.oracle} on {label}")
            seconds["runtime"] = probe(label, x)
        batch, steps = x.shape[axes[0]], (x.shape[axes[1]] if x.ndim > 1 else 1)
        mine = {kind: (label, batch, steps, s) for kind, s in seconds.items() if s is not None}
        for kind, pass_ in mine.items():
            if kind not in longest or steps >= longest[kind][2]:
                longest[kind] = pass_
        timed.append((label, batch, steps, _cost(mine, passes)(batch, steps)))     # this input's every pass
        i += 1
    _record(report, model, budget, limit, passes, shapes, kept, changed, timed, longest, user)
    return suite, expected


def _cost(longest: dict, passes: Passes):
    """cost(batch, steps): seconds of every pass over such an input, from the longest passes timed: the
    reference pass's for `passes.reference`, the runtime's for `passes.runtime` (the reference pass's when
    the runtime was not timed)."""
    def scaled(kind):
        _, b0, t0, seconds = longest.get(kind) or longest["reference"]
        return lambda batch, steps: seconds * steps / t0 * max(1.0, batch / b0)
    reference, runtime = scaled("reference"), scaled("runtime")
    return lambda batch, steps: passes.reference * reference(batch, steps) + passes.runtime * runtime(batch, steps)


def _record(report, model, budget, limit, passes, shapes, kept, changed, timed, longest, user) -> None:
    """report.suite, and a note when inputs were shortened."""
    cost = _cost(longest, passes)
    ran = {f"seeded b{b} t{t}": seconds for label, b, t, seconds in timed}
    full = sum(ran.get(f"seeded b{b} t{t}", cost(b, t)) for b, t in shapes) + (cost(*user) if user else 0.0)
    after = sum(seconds for *_, seconds in timed)
    label, _, _, seconds = longest["reference"]
    report.suite = {"budget_seconds": None if budget is None or math.isinf(limit) else round(limit, 3),
                    "budget": "none (the full suite)" if budget is None else budget.basis,
                    "timed": {"input": label, "seconds": round(seconds, 4), "passes_per_input": passes.total},
                    "estimated_seconds": round(full, 3), "estimated_seconds_run": round(after, 3),
                    "shortened": changed}
    if "runtime" in longest:
        rt_label, _, _, rt_seconds = longest["runtime"]
        report.suite["timed"]["runtime"] = {"input": rt_label, "seconds": round(rt_seconds, 4),
                                            "passes_per_input": passes.runtime}
    if changed:
        why = (f"; the model fixes its length at {model.input.time_steps} steps"
               if model.input.time_steps else "")
        over = (f"; still estimated at {after:.0f} s: the first seeded input is always kept"
                if after > limit else "")
        runtime = (f", the destination's runtime {longest['runtime'][3]:.2f} s on {longest['runtime'][0]}"
                   if "runtime" in longest else "")
        report.notes.append(f"suite shortened to fit verification's time budget of {limit:.3g} s "
                            f"({budget.basis}): {', '.join(changed)}; the full suite was estimated at {full:.0f} s "
                            f"(reference(src) took {seconds:.2f} s on {label}{runtime}, {passes.total} passes per "
                            f"input){why}{over}")
