"""The progress lines `convert`, `verify` and `batch` print on stderr when it is not a terminal, one per
finished check or batch job (`[3/11] ok      onnxruntime(dst) seeded b3 t7 (0.4 s)`, a batch job's check
`  jobs[0].dst [3/11] ok ...`): tests that compare stderr word
for word compare what is left without them (only whole lines of that exact form are dropped)."""
from __future__ import annotations

import re

PROGRESS = re.compile(r"(  \S+ )?\[\d+/\d+\] [A-Za-z]+ +\S.* \(\d+\.\d s\)\n?")   # batch: a check of job \S+


def without_progress(stderr: str) -> str:
    return "".join(line for line in stderr.splitlines(True) if not PROGRESS.fullmatch(line))
