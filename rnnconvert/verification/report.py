"""The report of a `convert` or `verify`: both files with their SHA-256 (`file_info`), every check, the
tolerance policy, the seed, the oracles that ran and those not run (`Report.not_run`: not installed, or
unable to load or run a file; never a failed check), what the conversion preserved, changed in form or
refused (`diagnose.classify`), on a failure the first diverging layer (`diagnose.localize`), and every
assumption a reader made (`note_reading`), which the verdict names (`verdict`).
`require_checks`: zero checks is never a pass; `_failure_message`: NOT EQUIVALENT.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError, RnnConvertError, RuntimeUnavailable, one_line, printable
from ..model import assumptions as assumed
from .checks import FLOAT64_ORACLES, NOISE_CAP, NOISE_FACTOR, RULE, TOLERANCES, Check

REPORT_KIND = "rnnconvert-report"
REPORT_VERSION = 1
REASON_CHARS = 200      # a runtime's error text (Octave's, gcc's span lines) is cut to one line of this length


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
    assumptions: list[dict] = field(default_factory=list)   # Assumption.to_dict(file) of every file read
    suite: dict | None = None        # the time budget and what it shortened (budget.fitted_suite)

    @property
    def passed(self) -> bool:
        """Every check that ran passed: an oracle not run neither passes nor fails (`require_checks`
        refuses a report where nothing ran)."""
        return all(c.passed for c in self.checks)

    def not_run(self, oracle: str, why, unplanned: int = 0) -> None:
        """`oracle` (e.g. 'octave(src)') did not run: `why` (an exception or text) becomes one line
        '<oracle>: <reason>' in `unavailable`, once; `unplanned`: the checks it will no longer make, taken off
        the progress total.  An error that hides a signal (a C extension returning while the handler
        raised) ends the run as the signal instead."""
        if isinstance(why, BaseException):
            from ..files.interrupt import raise_hidden
            raise_hidden(why)
        tracker = getattr(self.checks, "tracker", None)
        if tracker is not None and unplanned:
            tracker.dropped(unplanned)
        entry = f"{oracle}: {reason(why)}"
        if entry not in self.unavailable:
            self.unavailable.append(entry)

    def oracles(self) -> list[str]:
        return sorted({c.oracle for c in self.checks})

    def to_dict(self) -> dict:
        d = {"kind": REPORT_KIND, "version": REPORT_VERSION, **asdict(self)}
        for c in d["checks"]:           # strict JSON: a non-finite error is null
            for key in ("max_abs", "max_rel", "bound"):
                if c[key] is not None and not np.isfinite(c[key]):
                    c[key] = None
        if d["localization"] and d["localization"]["max_abs"] is not None and not np.isfinite(d["localization"]["max_abs"]):
            d["localization"]["max_abs"] = None
        d["passed"] = (self.passed and not self.conversion.get("refused")
                       and bool(self.checks or not self.verified))      # zero checks never passed
        d["tolerance_policy"] = {"dtype": self.dtype, "rule": RULE, "noise_factor": NOISE_FACTOR,
                                 "noise_cap": NOISE_CAP, "float64_oracles": list(FLOAT64_ORACLES),
                                 "by_dtype": TOLERANCES}
        for i in d["inputs"]:
            if i.get("float32_noise") is not None and not np.isfinite(i["float32_noise"]):
                i["float32_noise"] = None
        d["oracles"] = {"ran": self.oracles(), "unavailable": list(self.unavailable)}
        return d

    def worst(self) -> Check | None:
        return max(self.checks, key=lambda c: (not c.passed, c.max_abs), default=None)


def note_reading(report: Report, model, path) -> None:
    """What reading `path` into `model` said: its assumptions (listed, and printed as notes) and its notes."""
    report.notes += assumed.said(model.source)
    report.assumptions += [a.to_dict(os.fspath(path)) for a in assumed.of(model.source)]


def verdict(report: Report) -> str:
    """EQUIVALENT, with the assumptions it holds under ('EQUIVALENT (under 2 assumptions: ...)'), or
    NOT EQUIVALENT."""
    if not report.passed:
        return "NOT EQUIVALENT"
    listed = getattr(report, "assumptions", [])
    if not listed:
        return "EQUIVALENT"
    return (f"EQUIVALENT (under {len(listed)} assumption{'s' if len(listed) > 1 else ''}: "
            + "; ".join(a["assumed"] for a in listed) + ")")


def sha256_of(path) -> str:
    """The SHA-256 of a file, read a MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_info(path, fmt) -> dict:
    return {"path": str(path), "format": fmt, "sha256": sha256_of(path)}


def reason(why) -> str:
    """Why an oracle did not run, as one printable line of at most REASON_CHARS characters: the text of
    `why` (an exception: its message, its type named unless it is one of ours or a RuntimeError)."""
    if isinstance(why, BaseException):
        text = str(why) or type(why).__name__
        if not isinstance(why, (RuntimeUnavailable, RnnConvertError, RuntimeError)):
            text = f"{type(why).__name__}: {text}"
    else:
        text = str(why)
    text = printable(one_line(text))
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 3].rstrip() + "..."


def require_checks(report: Report, what, hint: str = "or pass --no-verify to convert without verification") -> None:
    """Zero checks is never EQUIVALENT: InputError (exit 2) saying why none ran (RULE's last clause)."""
    if report.checks:
        return
    why = "; ".join(f"not run: {u}" for u in report.unavailable) or "no input and no oracle"
    exc = InputError(f"nothing was checked: {why}; install what is missing{', ' + hint if hint else ''}",
                     path=os.fspath(what))
    exc.report_so_far = report
    raise exc


def _failure_message(report: Report, dst, kept: bool | None) -> str:
    """NOT EQUIVALENT, the worst check and where it diverged; `convert` says what became of DST (`kept`:
    --keep-failed), `verify` (kept None) writes nothing and says nothing of files."""
    w = report.worst()
    fate = "" if kept is None else f"; {dst} {'kept as requested' if kept else 'not written'}"
    if w is not None and w.error is not None:
        return (f"NOT EQUIVALENT: {w.oracle} could not run the written file on {w.input}: {w.error}; "
                f"the file would not run where it is meant to{fate}")
    where = f"{w.oracle} on {w.input}: max abs error {w.max_abs:.3g} at {w.worst}" if w else ""
    located = f"; {report.localization['message']}" if report.localization else ""
    return (f"NOT EQUIVALENT: {where} exceeds atol={report.tolerance['atol']:g} "
            f"rtol={report.tolerance['rtol']:g}{located}{fate}")


# A runtime's error that says it ran out of memory (onnxruntime, LiteRT, node, Octave, C++'s bad_alloc).
OUT_OF_MEMORY = re.compile(r"out of memory|bad_alloc|failed to allocate|cannot allocate|memory exhausted",
                           re.IGNORECASE)


def runtime_failed(report, oracle: str, written: bool, exc: Exception, label: str, first: bool,
                    unplanned: int) -> None:
    """A runtime that gave no number on input `label` (`first`: the suite's first): `report.not_run`,
    unless it is installed and failed on a file rnnconvert wrote (`written`; anything but
    `RuntimeUnavailable` or running out of memory, which says nothing of the file): then one failed
    check with the reason as its error, and the runtime's other checks taken off the progress total."""
    if not written or isinstance(exc, (RuntimeUnavailable, MemoryError)) or OUT_OF_MEMORY.search(str(exc)):
        report.not_run(oracle, exc if first else f"on {label}: {reason(exc)}", unplanned=unplanned)
        return
    from ..files.interrupt import raise_hidden
    raise_hidden(exc)
    tracker = getattr(report.checks, "tracker", None)
    if tracker is not None and unplanned > 1:
        tracker.dropped(unplanned - 1)
    report.checks.append(Check(oracle, label, float("inf"), float("inf"), [], False, error=reason(exc)))
