"""The report of a `convert` or `verify`: both files with their SHA-256 (`file_info`), every check, the
tolerance policy, the seed, the oracles that ran and those unavailable, what the conversion preserved,
changed in form or refused (`diagnose.classify`), on a failure the first diverging layer
(`diagnose.localize`).  `require_checks`: zero checks is never a pass; `_failure_message`: NOT EQUIVALENT.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError
from .checks import NOISE_FACTOR, RULE, TOLERANCES, Check

REPORT_KIND = "rnnconvert-report"
REPORT_VERSION = 1


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
    suite: dict | None = None        # the time budget and what it shortened (budget.fitted_suite)

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


def require_checks(report: Report, what) -> None:
    """Zero checks is never EQUIVALENT: InputError (exit 2) saying why none ran (RULE's last clause)."""
    if report.checks:
        return
    why = "; ".join(report.unavailable) or "no input and no oracle"
    exc = InputError(f"nothing was checked: {why}; install what is missing, or pass --no-verify to convert "
                     "without verification", path=os.fspath(what))
    exc.report_so_far = report
    raise exc


def _failure_message(report: Report, dst, kept: bool) -> str:
    w = report.worst()
    where = f"{w.oracle} on {w.input}: max abs error {w.max_abs:.3g} at {w.worst}" if w else ""
    fate = "kept as requested" if kept else "not written"
    located = f"; {report.localization['message']}" if report.localization else ""
    return (f"NOT EQUIVALENT: {where} exceeds atol={report.tolerance['atol']:g} "
            f"rtol={report.tolerance['rtol']:g}{located}; {dst} {fate}")
