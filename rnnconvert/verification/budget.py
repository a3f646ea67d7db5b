"""What verification may spend, and the seeded suite fitted to it.

The budget is FACTOR times the conversion's own read + write time, or FLOOR_SECONDS, whichever is larger
(`allowance`).  The reference pass of the source on the suite's first (shortest) input is timed; the whole
suite's cost is estimated from it as passes x steps x rows (`oracle_passes`: how many passes each input
gets, the float64 reference, its float32 noise pass, reference(dst), streaming, each runtime, the state
checks).  When the estimate is past the budget, the longest seeded inputs are shortened, or dropped, last
first, until it fits (`fit`); the first seeded input is always kept: batch > 1, its saturating row, the
model's fixed length where it has one.  The user's own inputs are never dropped.  `report.suite` says what
was shortened and why, and a note says it in words.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

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


def oracle_passes(src_model, dst_model, dst_fmt, src_fmt=None, layer: bool = False, large: bool = False) -> int:
    """How many passes over one input verification makes, each counted as one reference pass (a
    runtime is often faster: the estimate errs long)."""
    if large:       # large.py: the float32 reference, the runtime, reference(dst) (not run when identical)
        return 2 + bool(dst_fmt.runtime) + bool(layer)
    n = 2 + bool(dst_fmt.runtime) + bool(src_fmt is not None and src_fmt.runtime) + bool(layer)
    if dst_model is not None:
        n += 1 + (streaming_undefined(dst_model) is None)
    if src_model.has_state_io:
        runners = (dst_model is not None) + (dst_fmt.name == "onnx")
        n += 3 * (1 + runners)      # random states, zero states, then streaming with states carried
    return n


def planned_checks(src_model, dst_model, dst_fmt, suite, src_fmt=None, layer: bool = False) -> int:
    """How many checks `oracles.check_models` (and --layer's node check) will report on `suite`, for
    progress (check i of n); a runtime that turns out missing makes fewer."""
    time_axis = 0 if src_model.input.layout == "time_batch_feature" else 1
    long = sum(x.shape[time_axis] > 1 for _, x in suite)
    n = len(suite) * (bool(dst_fmt.runtime) + bool(src_fmt is not None and src_fmt.runtime) + bool(layer))
    if dst_model is not None:
        n += len(suite) + (long if streaming_undefined(dst_model) is None else 0)
    if src_model.has_state_io:
        runners = (dst_model is not None) + (dst_fmt.name == "onnx")
        n += len(suite) * 2 * runners * (1 + len(src_model.state_outputs))
        n += long * runners if streaming_undefined(src_model) is None else 0
    return n


def fit(shapes, cost, budget: float, fixed_length: bool, extra: float = 0.0):
    """(kept shapes, what changed): the last of `shapes` shortened (a model without a fixed length) or
    dropped, again and again, until sum(cost(batch, time)) + `extra` fits `budget`; the first is kept.
    `cost(batch, time)` is linear in time."""
    kept, changed = list(shapes), []

    def total():
        return sum(cost(b, t) for b, t in kept) + extra

    while len(kept) > 1 and total() > budget:
        batch, steps = kept.pop()
        if not fixed_length:
            fits = int((budget - total()) // cost(batch, 1))
            if fits > kept[-1][1]:
                kept.append((batch, fits))
                changed.append(f"seeded b{batch} t{steps} shortened to t{fits}")
                break
        changed.append(f"seeded b{batch} t{steps} dropped")
    return kept, changed


def fitted_suite(model, report, inputs, budget: Budget | None, passes: int, forward, progress=None):
    """(suite, expected): the seeded suite fitted to `budget` (None: the full suite), `forward(x)` the
    expected output of each input; `report.suite` and, when inputs were shortened, a note say so."""
    path = report.source["path"]
    suite = input_suite(model, report.seed, inputs, path)
    say = progress.stage if progress is not None else (lambda text: None)
    label, x = suite[0]
    say(f"verifying: reference(src) on {label}")
    start = time.perf_counter()
    expected = [forward(x)]
    first = time.perf_counter() - start
    shapes = seeded_shapes(model, path)
    (b0, t0), user = shapes[0], suite[-1] if inputs is not None else None

    def cost(batch, steps):
        return first * passes * steps / t0 * max(1.0, batch / b0)

    extra = 0.0
    if user is not None:
        axes = (1, 0) if model.input.layout == "time_batch_feature" else (0, 1)
        extra = cost(user[1].shape[axes[0]], user[1].shape[axes[1]])
    full = sum(cost(b, t) for b, t in shapes) + extra
    limit = math.inf if budget is None else budget.seconds
    kept, changed = fit(shapes, cost, limit, bool(model.input.time_steps), extra)
    after = sum(cost(b, t) for b, t in kept) + extra
    report.suite = {"budget_seconds": None if budget is None or math.isinf(limit) else round(limit, 3),
                    "budget": "none (the full suite)" if budget is None else budget.basis,
                    "timed": {"input": label, "seconds": round(first, 4), "passes_per_input": passes},
                    "estimated_seconds": round(full, 3), "estimated_seconds_run": round(after, 3),
                    "shortened": changed}
    if changed:
        suite = input_suite(model, report.seed, inputs, path, shapes=kept)
        why = (f"; the model fixes its length at {model.input.time_steps} steps"
               if model.input.time_steps else "")
        over = (f"; still estimated at {after:.0f} s: the first seeded input is always kept"
                if after > limit else "")
        report.notes.append(f"suite shortened to fit verification's time budget of {limit:.3g} s "
                            f"({budget.basis}): {', '.join(changed)}; the full suite was estimated at {full:.0f} s "
                            f"(reference(src) took {first:.2f} s on {label}, {passes} passes per input){why}{over}")
    for label, x in suite[1:]:
        say(f"verifying: reference(src) on {label}")
        expected.append(forward(x))
    return suite, expected
