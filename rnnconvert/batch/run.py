"""`rnnconvert batch plan.yaml`: many verified conversions from one YAML plan, in parallel.

    defaults: {atol: 1e-4, keras_version: 3}
    jobs:
      - src: models/a.h5
        dst: [out/a.onnx, out/a.safetensors]
      - src: models/b.pt
        arch: models/b.arch.yaml        # or an inline mapping
        dst: out/b.onnx
        rtol: 1e-3

The plan (`schemas/batch.schema.json`) is read with `yaml.safe_load` and validated whole before any
work starts (`plan`): every problem is reported at once with its location (`jobs[3].dst`).
Paths resolve relative to the plan file.  Each (job, destination) pair is one conversion (`verification.convert`).
`run_plan` reads as its stages: fingerprint each task and skip what the state file says is unchanged
(`state`), run the rest in worker processes (`workers`), save the state, and return the plan report
(`report`).  This module is the batch API the CLI calls (`load_plan`, `plan_lock`, `run_plan`, ...).

Outputs follow rnnconvert/files/outputs.py (validated for the whole plan in `plan`): a re-run replaces
its own earlier outputs, which are regular files inside the plan's folder that are no job's input and no
other job's output; a destination's missing folders are made only when it is installed.
"""
from __future__ import annotations

import os
import time
from functools import partial

from .plan import OPTION_KEYS, Plan, Task, load_plan, parse_shard, plan_outputs
from .report import PlanResult, Progress
from .state import _load_state, _save_state, _unchanged, fingerprint, plan_lock
from .workers import finish_all_parallel, run_task

__all__ = ["OPTION_KEYS", "Plan", "PlanResult", "Progress", "Task", "load_plan", "parse_shard", "plan_lock",
           "plan_outputs", "run_plan"]      # the batch API


def run_plan(plan: Plan, *, jobs: int | None = None, fail_fast: bool = False, force: bool = False,
             shard: tuple[int, int] | None = None, progress=None) -> PlanResult:
    """Run the plan's conversions (the shard's, if given); never raises for a failed conversion."""
    start = time.perf_counter()
    tasks = [t for t in plan.tasks if shard is None or t.job % shard[1] == shard[0] - 1]
    state = _load_state(plan.state_path)
    rel = {t.dst_path: os.path.relpath(t.dst_path, os.path.dirname(os.path.abspath(plan.path))) for t in tasks}
    result = PlanResult(plan, shard=shard)
    done: dict[int, dict] = {}
    fps: dict[int, str] = {}
    todo = []
    report = progress or (lambda *a: None)
    hashes: dict = {}
    for k, t in enumerate(tasks):
        try:
            fps[k] = fingerprint(t, hashes)
        except OSError as exc:          # a source removed after validation
            done[k] = {"status": "error", "message": f"{t.src_path}: cannot read ({exc})", "report": None}
            continue
        if not force and _unchanged(t, state.get(rel[t.dst_path]), fps[k]):
            done[k] = {"status": "skipped", "message": "unchanged since the last run", "report": None,
                       "seconds": 0.0}
        else:
            todo.append(k)
    n = 0
    for k in sorted(done):
        n += 1
        report(n, len(tasks), tasks[k], done[k])
    processes = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
    result.processes = processes
    stop = False

    def finish(k, r):
        nonlocal n, stop
        done[k] = r
        n += 1
        report(n, len(tasks), tasks[k], r)
        if r["status"] == "ok":
            state[rel[tasks[k].dst_path]] = {"fingerprint": fps[k], "dst_sha256": r["report"]["destination"]["sha256"]}
        else:
            state.pop(rel[tasks[k].dst_path], None)
            stop = stop or fail_fast

    checks = getattr(report, "check", None)       # a Progress shows each conversion's checks too
    on_check = None if checks is None else (lambda k, text: checks(tasks[k], text))
    if processes == 1:
        for k in todo:
            if stop:
                break
            finish(k, run_task(tasks[k], None if on_check is None else partial(on_check, k)))
    elif todo:
        finish_all_parallel(tasks, todo, processes, finish, lambda: stop, on_check)
    for k in todo:
        if k not in done:
            done[k] = {"status": "cancelled", "message": "not run (--fail-fast)", "report": None}
    _save_state(plan.state_path, state)
    if hasattr(report, "close"):
        report.close()
    result.results = [(tasks[k], done[k]) for k in range(len(tasks))]
    result.seconds = time.perf_counter() - start
    return result
