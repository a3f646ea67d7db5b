"""What a batch run shows: `PlanResult` (the plan report: counts, the one-line summary, the problems and
the JSON of `--report`, with the exit code of the worst result) and `Progress` (a `[3/10] ok  src -> dst`
line per conversion, on stderr: the lines `convert` prints per check, `verification/progress.py`, have the same form).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

from .plan import Plan, Task
from .state import sha256_file
from ..errors import printable
from ..verification.progress import terminal_columns, status_line

REPORT_KIND = "rnnconvert-plan-report"
STATUS_EXIT = {"ok": 0, "skipped": 0, "cancelled": 0, "failed": 1, "error": 2, "refused": 2, "internal": 3}
STATUS_WORD = {"ok": "ok", "skipped": "skip", "failed": "FAIL", "error": "ERROR", "refused": "REFUSED",
               "internal": "BUG", "cancelled": "stop"}


@dataclass
class PlanResult:
    plan: Plan
    results: list[tuple[Task, dict]] = field(default_factory=list)
    processes: int = 1
    seconds: float = 0.0
    shard: tuple[int, int] | None = None

    @property
    def exit_code(self) -> int:
        codes = {STATUS_EXIT[r["status"]] for _, r in self.results}
        for code in (3, 2, 1):
            if code in codes:
                return code
        return 0

    def counts(self) -> dict:
        c: dict[str, int] = {}
        for _, r in self.results:
            c[r["status"]] = c.get(r["status"], 0) + 1
        return c

    def summary(self) -> str:
        c = self.counts()
        parts = [f"{c.get(k, 0)} {w}" for k, w in (("ok", "ok"), ("skipped", "skipped (unchanged)"),
                                                    ("failed", "not equivalent"), ("error", "bad input"), ("refused", "refused"),
                                                    ("internal", "internal errors"), ("cancelled", "not run"))
                 if c.get(k) or k in ("ok", "failed", "error")]
        return (f"{len(self.results)} conversions: {', '.join(parts)}; {self.seconds:.1f} s with "
                f"{self.processes} process{'es' if self.processes > 1 else ''}")

    def problems(self) -> list[str]:
        return [f"{t.location}: {t.src} -> {t.dst}: {r['message']}" for t, r in self.results
                if r["status"] in ("failed", "error", "refused", "internal")]

    def to_dict(self) -> dict:
        return {"kind": REPORT_KIND, "version": 1,
                "plan": {"path": self.plan.path, "sha256": sha256_file(self.plan.path)},
                "shard": list(self.shard) if self.shard else None, "processes": self.processes,
                "wall_seconds": round(self.seconds, 3), "exit_code": self.exit_code,
                "passed": self.exit_code == 0, "counts": self.counts(),
                "results": [{"job": t.job, "location": t.location, "src": t.src, "dst": t.dst,
                             "status": r["status"], "message": r["message"], "seconds": r.get("seconds", 0.0),
                             "report": r.get("report")} for t, r in self.results]}


class Progress:
    """`[3/10] ok    src -> dst (1.2 s)` lines on `stream` (default stderr); on a terminal one updating line,
    failures kept.  Each finished check of a conversion (`check`) is a line too, indented and naming the job:
    `  jobs[2].dst [5/17] ok      onnxruntime(dst) seeded b3 t7 (0.4 s)`; on a terminal it updates the line."""

    def __init__(self, tty: bool = False, stream=None):
        self.tty = tty
        self.stream = stream
        self.width = 0

    def _out(self):
        return self.stream or sys.stderr

    def __call__(self, done: int, total: int, task: Task, result: dict) -> None:
        line = status_line(done, total, STATUS_WORD[result["status"]], f"{task.src} -> {task.dst}",
                           result.get("seconds") or None)
        out = self._out()
        if self.tty:
            keep = result["status"] not in ("ok", "skipped")
            out.write("\r" + line.ljust(self.width) + ("\n" if keep or done == total else ""))
            self.width = 0 if keep else len(line)
        else:
            out.write(line + "\n")
        out.flush()

    def check(self, task: Task, text: str) -> None:
        """A check of `task`'s conversion finished; `text` is its status line (`verification.progress.line`)."""
        out = self._out()
        row = printable(f"  {task.location} ") + text
        if self.tty:
            row = row[:terminal_columns(out) - 1]
            out.write("\r" + row.ljust(self.width))
            self.width = len(row)
        else:
            out.write(row + "\n")
        out.flush()

    def close(self) -> None:
        """End an updating terminal line left open (after --fail-fast stopped early)."""
        if self.tty and self.width:
            self._out().write("\n")
            self.width = 0
