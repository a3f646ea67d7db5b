"""What the report page plots, kept small in the JSON report: the error per time step (`step_curve`: at most
CURVE_POINTS points, each the largest error over a window of steps with the bound at that element) and
the output channels that differ most (`worst_channels`)."""
from __future__ import annotations

import numpy as np

CURVE_POINTS = 200
WORST_CHANNELS = 5


def _finite(v: float):
    """4 significant digits (a plot's, and a small report), null when not finite."""
    return float(f"{v:.4g}") if np.isfinite(v) else None


def step_curve(diff: np.ndarray, bound: np.ndarray, time_axis: int | None) -> dict | None:
    """{"steps", "window", "max_abs", "bound"} of an output with a time axis, else None: per window of
    `window` steps starting at `steps[j]`, the largest |actual - expected| and the bound of that element."""
    if time_axis is None or diff.ndim != 3 or diff.shape[time_axis] < 1:
        return None
    d = np.moveaxis(diff, time_axis, 0).reshape(diff.shape[time_axis], -1)
    b = np.moveaxis(np.broadcast_to(bound, diff.shape), time_axis, 0).reshape(d.shape)
    at = np.argmax(d, axis=1) if d.shape[1] else np.zeros(d.shape[0], dtype=int)
    rows = np.arange(d.shape[0])
    d_step, b_step = d[rows, at], b[rows, at]
    T = d.shape[0]
    window = max(1, -(-T // CURVE_POINTS))
    starts = np.arange(0, T, window)
    pick = [s + int(np.argmax(d_step[s:s + window])) for s in starts]
    return {"steps": [int(s) for s in starts], "window": window,
            "max_abs": [_finite(d_step[k]) for k in pick], "bound": [_finite(b_step[k]) for k in pick]}


def worst_channels(diff: np.ndarray) -> list[dict] | None:
    """The WORST_CHANNELS output channels (last axis) with the largest |actual - expected|, worst first."""
    if diff.ndim < 2 or not diff.size:
        return None
    per = diff.reshape(-1, diff.shape[-1]).max(axis=0)
    order = np.argsort(-np.nan_to_num(per, nan=np.inf), kind="stable")[:WORST_CHANNELS]
    return [{"channel": int(c), "max_abs": _finite(per[c])} for c in order]
