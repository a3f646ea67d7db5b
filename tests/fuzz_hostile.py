"""Hostile classes for the fuzz suite: files and command lines built the way an attacker builds them,
which no random mutation reaches (issue 21), each run in a worker process.

Classes (rows of the fuzz table) and where their generators live:
  names     code payloads in model/layer/input/output names, converted to C, JS, NumPy, .pt + module
  special   a FIFO, a directory, a character device, a symlink as source, --inputs, DST, --report, state
            (those two: fuzz_hostile_runs.py)
  signals   SIGTERM / SIGHUP / SIGINT to `rnnconvert SRC DST` and `batch -j2` at seeded moments
            (fuzz_hostile_signals.py)
  depth     JSON, YAML, MATLAB v5 cells/structs, HDF5 groups, ONNX subgraphs nested 10 to 100,000 deep
            (fuzz_hostile_files.py)
  dag       MATLAB v7.3 #refs# DAGs and cycles, ONNX constants reused many times
  alias     YAML anchors (billion laughs), safetensors entries sharing bytes, .pt views and shared storages
            (those two: fuzz_hostile_refs.py)
  sizes     declared sizes far beyond the bytes written: HDF5 chunks, npy/npz inputs, MATLAB miCOMPRESSED,
            ONNX dims (fuzz_hostile_sizes.py)
Every case is deterministic from (class, index); a class has a fixed number of cases (CAPS, at most
FUZZ_CASES) because each one costs a subprocess, a hang up to the time limit, or a conversion.

A case runs in `python -m tests.fuzz_hostile --worker` (a line of JSON in, one out), so a crash by
signal (a segfault from deep recursion) or a hang inside C code ends that worker only: it is counted
as an escape and the next case gets a fresh worker.  A file read in-process is judged as fuzzing.run_case
judges any fuzz case, and a case marked must_refuse (YAML expanding to 10**8 strings) escapes if it reads.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fuzzing import ROOT, Case, bounded_memory, run_case  # noqa: E402

SEED = 20261206
CLASSES = ("names", "special", "signals", "depth", "dag", "alias", "sizes")
CAPS = {"names": 8, "special": 20, "signals": 12, "depth": 44, "dag": 16, "alias": 24, "sizes": 24}
NAMES_WITH_C = 4          # names cases that also convert to C (gcc): the first four, one per source format
WORKER_SECONDS = 120.0    # a worker that has not answered by then is killed (the case: an escape)


@dataclass
class HostileCase(Case):
    """A Case whose `check(path)`, when given, does the whole run and returns (outcome, detail)
    itself (conversions, subprocesses, signals) instead of run_case's read-under-a-limit."""
    check: Callable | None = None
    must_refuse: bool = False        # reading it is an escape (e.g. YAML expanding to 10**8 strings)


def rng_for(cls: str, index: int):
    import numpy as np
    return np.random.default_rng([SEED, CLASSES.index(cls), index])


def count(cls: str, n: int) -> int:
    return min(n, CAPS[cls])


@lru_cache(maxsize=None)
def _cases(cls: str, n: int, seeds: str) -> list[HostileCase]:
    import fuzz_hostile_files
    import fuzz_hostile_refs
    import fuzz_hostile_runs
    import fuzz_hostile_signals
    import fuzz_hostile_sizes
    gen = {**fuzz_hostile_files.GENERATORS, **fuzz_hostile_refs.GENERATORS, **fuzz_hostile_sizes.GENERATORS,
           **fuzz_hostile_runs.GENERATORS, **fuzz_hostile_signals.GENERATORS}[cls]
    Path(seeds).mkdir(parents=True, exist_ok=True)
    return [gen(rng_for(cls, i), i, Path(seeds)) for i in range(count(cls, n))]


def hostile_cases(cls: str, n: int, seeds) -> list[HostileCase]:
    return _cases(cls, n, str(seeds))


def run_hostile(case: HostileCase, workdir: Path) -> tuple[str, str]:
    """(outcome, detail) of one case in this process: "ok", "refused" or "escape"."""
    if case.check is None:
        outcome, detail = run_case(case, workdir)
        if outcome == "ok" and case.must_refuse:
            return "escape", f"read, should have been refused {detail}"
        return outcome, detail
    d = workdir / f"{case.fmt}_{case.index}"
    d.mkdir(parents=True, exist_ok=True)
    path = case.make(d)
    if isinstance(path, tuple):
        path, label = path
        case.label = f"{case.label} {label}"
    case.path = path
    t0 = time.perf_counter()
    try:
        outcome, detail = case.check(path)
    except Exception as exc:  # noqa: BLE001 - the harness's own failure is reported, not hidden
        outcome, detail = "escape", f"harness: {type(exc).__name__}: {exc}"
    return outcome, f"{detail} [{time.perf_counter() - t0:.3f}s]"


# ------------------------------------------------------------------------------------ the worker

def worker_main() -> int:
    """Read {"cls", "index", "n", "work"} lines from stdin, answer {"outcome", "detail", "label"} lines."""
    from fuzz_report import warm_up
    warm_up()
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")    # the protocol's own descriptor; fd 1 itself (what readers, payloads
    os.dup2(2, 1)                      # and child processes print) goes to stderr
    sys.stdout = sys.stderr
    with bounded_memory():
        for line in sys.stdin:
            job = json.loads(line)
            work = Path(job["work"])
            case = hostile_cases(job["cls"], job["n"], work / "seeds")[job["index"]]
            outcome, detail = run_hostile(case, work)
            out.write(json.dumps({"outcome": outcome, "detail": detail, "label": case.label}) + "\n")
            out.flush()
    return 0


class Worker:
    """One `python -m tests.fuzz_hostile --worker` process, restarted after a case ends it."""

    def __init__(self):
        self.proc = None

    def _start(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch")}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz_hostile", "--worker"], cwd=str(ROOT),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env=env, text=True)

    def run(self, cls: str, index: int, n: int, work: Path) -> tuple[str, str, str | None]:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        p = self.proc
        p.stdin.write(json.dumps({"cls": cls, "index": index, "n": n, "work": str(work)}) + "\n")
        p.stdin.flush()
        ready, _, _ = select.select([p.stdout], [], [], WORKER_SECONDS)
        line = p.stdout.readline() if ready else ""
        if line:
            got = json.loads(line)
            return got["outcome"], got["detail"], got["label"]
        if ready:                            # end of file: the worker is dying; let it finish
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if p.poll() is None:                 # no answer in time: a hang the alarm could not break
            p.kill()
            p.wait()
            self.proc = None
            return "escape", f"hang: no answer in {WORKER_SECONDS:.0f}s (worker killed)", None
        p.wait()
        self.proc = None
        code = p.returncode
        what = f"killed by signal {-code}" if code < 0 else f"exit {code} (faulthandler: a hang in C code)" \
            if code == 1 else f"exit {code}"
        return "escape", f"the process died: {what}", None

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def run_class(cls: str, n: int, work: Path, tally, worker: Worker | None = None) -> None:
    """Every case of `cls` through the worker, counted in `tally` (fuzz_report.Tally)."""
    own = worker is None
    worker = worker or Worker()
    t0 = time.perf_counter()
    try:
        for index in range(count(cls, n)):
            t1 = time.perf_counter()
            outcome, detail, label = worker.run(cls, index, n, work)
            if label is None:            # the worker died before naming the case: name it here
                label = hostile_cases(cls, n, work / "seeds")[index].label
            if os.environ.get("FUZZ_TRACE"):
                print(f"  {cls} {index} {label}: {outcome} {time.perf_counter() - t1:.1f}s {detail[:150]}",
                      file=sys.stderr, flush=True)
            tally.cases += 1
            if cls in ("names", "special", "signals"):
                tally.subprocess += 1
            if outcome == "escape":
                tally.escaped += 1
                tally.escapes.append(f"{index} {label}: {detail}")
            elif outcome == "ok":
                tally.read += 1
            else:
                tally.refused += 1
    finally:
        if own:
            worker.close()
    tally.seconds += time.perf_counter() - t0


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        sys.exit(worker_main())
    sys.exit("usage: python -m tests.fuzz_hostile --worker (python -m tests.fuzz_report runs the classes)")
