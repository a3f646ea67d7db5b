"""The tolerance policy and one check: TOLERANCES by dtype, RULE, the float32 noise an input allows, and
`compare`, one oracle's output against the expected one (the source's float64 reference pass) as a
`Check`: it passes when every element is within its bound, atol + allowance + rtol * |expected|, the
allowance being NOISE_FACTOR times the source's own float32 noise on that input, at most NOISE_CAP times
the output's largest |expected|, and nothing for FLOAT64_ORACLES.  `check_tolerance` refuses an --atol or --rtol.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model import Model

# One tolerance policy, by the dtype the written model computes in.
TOLERANCES = {"float32": {"atol": 1e-4, "rtol": 1e-4}, "float64": {"atol": 1e-9, "rtol": 1e-9}}
# Some trained networks amplify rounding over long sequences (the source model's own reference
# pass in float32 then differs from float64 by far more than atol).  A check on such an input
# allows NOISE_FACTOR times that float32 sensitivity on top of atol: a float32 runtime cannot do
# better than the model allows, and a real conversion error shows on the short inputs, whose
# sensitivity stays near float32 epsilon, and in FLOAT64_ORACLES, which allow no noise.
NOISE_FACTOR = 10.0
# The allowance's upper bound: NOISE_CAP times the largest |expected| on the input.  A model whose float32
# noise comes near that is chaotic in float32 there (a 3-layer GRU over 300 steps: noise 1.6 on outputs
# up to 15): float32 runtimes then agree with float64 in magnitude only, which is all such a check can
# show; a larger allowance would accept answers outside the output's own range.
NOISE_CAP = 2.0
# Checks whose two sides are both float64 reference passes (the source's and the converted model's, in
# one call or in chunks): any difference past float64 rounding is the conversion changing the function,
# so they get atol + rtol * |expected| and no noise allowance.
FLOAT64_ORACLES = ("reference(dst)", "streaming(reference)")
# A float32 pass that overflows (inf or NaN where float64 is finite) measures no rounding: its noise is
# recorded as infinite (null in JSON) and allows nothing, so the check holds the float64 numbers to atol
# and rtol alone.  Zero checks is never a verdict: "nothing was checked" is an InputError (exit 2).
RULE = ("|actual - expected| <= bound = atol + allowance + rtol * |expected| for every element; "
        "allowance = min(noise_factor * float32_noise, noise_cap * max |expected|), "
        "float32_noise = max |reference_float32 - reference_float64| of the source model on that input; "
        "the allowance is 0 when float32_noise is not finite (the float32 pass overflowed) and for "
        "reference(dst) and streaming(reference) (float64 reference passes on both sides); "
        "at least one check must run")


@dataclass
class Check:
    oracle: str          # e.g. "reference(dst)", "onnxruntime(dst)", "streaming(reference)"
    input: str           # input label, e.g. "seeded b3 t7"
    max_abs: float
    max_rel: float
    worst: list[int]     # index of the worst element
    passed: bool
    bound: float | None = None   # atol + allowance + rtol * |expected| at `worst`; None: nothing compared
    per_step: dict | None = None      # the error per time step, downsampled (curves.step_curve)
    channels: list | None = None      # the worst output channels (curves.worst_channels)
    error: str | None = None          # the destination's runtime failed on the written file: its reason


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


def allowance(noise, scale: float, oracle: str = "") -> float:
    """What `noise` adds to `oracle`'s tolerance (RULE): NOISE_FACTOR times it, at most NOISE_CAP times
    `scale` (the largest finite |expected|); nothing for FLOAT64_ORACLES or when the noise is not finite."""
    if oracle in FLOAT64_ORACLES:
        return 0.0
    allowed = NOISE_FACTOR * float(noise or 0.0)
    if not np.isfinite(allowed):
        return 0.0
    return min(allowed, NOISE_CAP * scale)


def compare(actual, expected, tol: dict, oracle: str, label: str, noise: float = 0.0,
            time_axis: int | None = None) -> Check:
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
        scale = float(np.abs(expected[np.isfinite(expected)]).max(initial=0.0))
        bound = tol["atol"] + allowance(noise, scale, oracle) + tol["rtol"] * np.abs(expected)
        ok = same | (diff <= bound)
    from .curves import step_curve, worst_channels
    return Check(oracle, label, float(diff.max(initial=0.0)), float(rel.max(initial=0.0)),
                 [int(i) for i in np.unravel_index(k, diff.shape)] if diff.size else [],
                 bool(ok.all()), float(bound.flat[k]) if diff.size else None,
                 step_curve(diff, bound, time_axis), worst_channels(diff))


def _relayout(a, src: Model, dst: Model):
    """`a` in src's input layout -> dst's (a time-major source written batch-major, or back)."""
    if src.input.layout != dst.input.layout and a.ndim == 3:
        return np.ascontiguousarray(np.swapaxes(a, 0, 1))
    return a


def _run_in_layout(fn, x, src: Model, dst: Model):
    """Run `fn` (which takes dst's layout) on `x` given in src's layout; output back in src's."""
    return _relayout(fn(_relayout(x, src, dst)), dst, src)


def judge_with(expected, tol, noise, time_axis: int | None = 1):
    """judge(out, k, oracle, label) -> Check: `out` against expected[k] with input k's float32 noise;
    `time_axis`: the outputs' time axis (0 for a time-major model), for the error per step."""
    return lambda out, k, oracle, label: compare(out, expected[k], tol, oracle, label, noise[k], time_axis)


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
