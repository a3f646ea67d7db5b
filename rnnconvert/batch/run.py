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
work starts (`batch_plan.py`): every problem is reported at once with its location (`jobs[3].dst`).
Paths resolve relative to the plan file.  Each (job, destination) pair is one conversion (`verification.convert`);
they run in worker processes.  A state file beside the plan (`.plan.yaml.rnnconvert-state.json`)
records a fingerprint of each passed conversion (source, options, inputs and hints by SHA-256, and
the destination's SHA-256), so a re-run skips what is unchanged.  It is read only if it is a regular file
(not a link, FIFO or device: exit 2) and written under a temporary name and renamed over (a link there is
replaced, never followed).  `plan_lock` holds an exclusive lock on the plan file while the CLI runs it: a
second `rnnconvert batch` of the same plan exits 2 at once instead of racing for its outputs and state.

Outputs follow rnnconvert/outputs.py (validated for the whole plan in batch_plan.py): a re-run replaces
its own earlier outputs, which are regular files inside the plan's folder that are no job's input and no
other job's output; a destination's missing folders are made only when it is installed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import sys
import time
from dataclasses import dataclass, field

from .plan import OPTION_KEYS, Plan, Task, load_plan, parse_shard, plan_outputs  # noqa: F401 - the batch API
from ..errors import DestinationError, InputError
from ..files.text import MAX_JSON_BYTES, read_json

STATE_VERSION = 1
REPORT_KIND = "rnnconvert-plan-report"
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------------ running

def sha256_file(path, cache: dict | None = None) -> str:
    if cache is not None:
        key = (os.path.abspath(path), os.stat(path).st_mtime_ns, os.stat(path).st_size)
        if key not in cache:
            cache[key] = sha256_file(path)
        return cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(task: Task, cache: dict | None = None) -> str:
    """A hash of everything a conversion depends on: source, options, inputs and hint files."""
    from ..version import __version__
    parts = {"rnnconvert": __version__, "src": sha256_file(task.src_path, cache), "options": task.options}
    for key in ("inputs", "arch"):
        if isinstance(task.options.get(key), str):
            parts[key + "_sha256"] = sha256_file(task.options[key], cache)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def run_task(task: Task) -> dict:
    """One conversion; never raises: {"status": ok|failed|error, "message", "report", "seconds"}."""
    start = time.perf_counter()
    out = {"status": "ok", "message": "", "report": None}
    from ..files.interrupt import raise_hidden     # a signal that surfaced as another error stops the run, not the job
    try:
        from ..errors import RnnConvertError, UnsupportedError, VerificationError
        from ..verification.convert import convert
        o = task.options
        inputs = None
        if o.get("inputs"):
            from ..verification.inputs import load_one
            inputs = load_one(o["inputs"])
        report = convert(task.src_path, task.dst_path, atol=o.get("atol"), rtol=o.get("rtol"), inputs=inputs,
                         force=True, make_dirs=True, outputs=task.policy(), src_format=o.get("from"), dst_format=o.get("to"), seed=o.get("seed", 0),
                         read_options=_given(o, "arch", "accept_windows_paths"),
                         write_options=_given(o, "keras_version", "external_data"),
                         emit_module=o.get("emit_module"), emit_vectors=o.get("emit_vectors"),
                         allow_nonfinite=bool(o.get("allow_nonfinite")), layer=o.get("layer"))
        out["report"] = report.to_dict()
    except VerificationError as exc:
        raise_hidden(exc)
        out.update(status="failed", message=exc.format(), report=exc.report.to_dict())
    except RnnConvertError as exc:
        raise_hidden(exc)
        so_far = getattr(exc, "report_so_far", None)
        out.update(status="refused" if isinstance(exc, UnsupportedError) else "error", message=exc.format(),
                   report=so_far.to_dict() if so_far else None)
    except Exception as exc:  # a bug: reported, the other jobs go on
        raise_hidden(exc)
        out.update(status="internal", message=f"internal error ({type(exc).__name__}: {exc})")
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


def _given(options: dict, *keys) -> dict | None:
    """The options among `keys` that are set (a reader or writer option left out keeps its default)."""
    return {k: options[k] for k in keys if options.get(k)} or None


def _init_worker() -> None:
    from ..files import interrupt
    os.environ.update(WORKER_ENV)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    interrupt.install(_worker_signal)
    interrupt.unblock()             # blocked since the parent started this worker (held_for_children)
    interrupt.quiet_warnings()


_busy = False       # a worker inside a conversion (whose temporaries a signal must remove first)
WORKER_GRACE = 60   # seconds a signalled worker has to clean up before it is killed


def _worker_signal(signum) -> None:
    """In a worker: a signal during a conversion unwinds it (its finally blocks remove its temporaries,
    `_worker_task` then exits); between conversions the worker exits at once, taking no next task."""
    from ..files.interrupt import Interrupted
    if _busy:
        raise Interrupted(signum)
    os._exit(128 + signum)


def _worker_task(task: Task) -> dict:
    """run_task in a worker process; an Interrupted conversion ends the worker (never its next task)."""
    global _busy
    from ..files.interrupt import Interrupted
    try:
        _busy = True
        return run_task(task)
    except Interrupted as exc:
        os._exit(exc.exit_code)
    finally:
        _busy = False


def _stop_workers(pool) -> None:
    """SIGTERM to every worker (each removes its temporaries and exits, `_worker_signal`), then wait for
    them; one still running after WORKER_GRACE seconds is killed."""
    procs = list((getattr(pool, "_processes", None) or {}).values())    # the executor's own table
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(WORKER_GRACE)
        if p.is_alive():
            p.kill()
            p.join()


def _stop_resource_tracker() -> None:
    """Stop and reap multiprocessing's resource tracker, once the pool is shut down.  The pool's spawn-context
    queues start it (a process that unlinks their semaphores if rnnconvert dies); left running, it exits only
    after rnnconvert has and stays a zombie of the run until init reaps it.  The pool's semaphores are
    collected first, so the tracker has none left to report as leaked."""
    import gc
    from multiprocessing import resource_tracker
    gc.collect()
    stop = getattr(resource_tracker._resource_tracker, "_stop", None)     # CPython >= 3.8
    if stop is not None:
        stop()


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
    """`[3/10] ok    src -> dst (1.2 s)` lines; on a terminal one updating line, failures kept."""

    def __init__(self, tty: bool = False, stream=None):
        self.tty = tty
        self.stream = stream
        self.width = 0

    def _out(self):
        return self.stream or sys.stdout

    def __call__(self, done: int, total: int, task: Task, result: dict) -> None:
        word = STATUS_WORD[result["status"]]
        line = f"[{done}/{total}] {word:<7} {task.src} -> {task.dst}"
        if result.get("seconds"):
            line += f" ({result['seconds']:.1f} s)"
        out = self._out()
        if self.tty:
            keep = result["status"] not in ("ok", "skipped")
            out.write("\r" + line.ljust(self.width) + ("\n" if keep or done == total else ""))
            self.width = 0 if keep else len(line)
        else:
            out.write(line + "\n")
        out.flush()


    def close(self) -> None:
        """End an updating terminal line left open (after --fail-fast stopped early)."""
        if self.tty and self.width:
            self._out().write("\n")
            self.width = 0


@contextlib.contextmanager
def plan_lock(plan: Plan):
    """An exclusive flock on the plan file for the duration (advisory: the file is not changed); a second
    holder gets InputError at once."""
    import fcntl
    fd = os.open(plan.path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError("another `rnnconvert batch` is running this plan; wait for it to finish",
                             path=plan.path) from None
        yield
    finally:
        os.close(fd)


def _load_state(path) -> dict:
    """The state's task records; {} when there is none or it is unreadable JSON.  A state path holding
    anything but a regular file (a link, FIFO, device, directory) is refused: InputError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        if os.path.islink(path):
            raise InputError("the plan's state file is a symbolic link, expected a regular file; remove it",
                             path=path) from None
        raise InputError(f"cannot read the plan's state file ({exc.strerror or exc})", path=path) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):      # a directory, FIFO or device
        os.close(fd)
        raise InputError("the plan's state file is not a regular file; remove it", path=path)
    with os.fdopen(fd, "rb") as f:
        try:         # a damaged state only costs a re-run
            state = read_json(f.read(MAX_JSON_BYTES + 1), path, "the batch state")
            return state.get("tasks", {}) if state.get("version") == STATE_VERSION else {}
        except (OSError, ValueError, AttributeError, InputError):
            return {}


def _unchanged(task: Task, record: dict | None, fp: str) -> bool:
    if not record or record.get("fingerprint") != fp or not os.path.isfile(task.dst_path):
        return False
    if any(task.options.get(k) and not os.path.exists(task.options[k]) for k in ("emit_module", "emit_vectors")):
        return False
    return sha256_file(task.dst_path) == record.get("dst_sha256")


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

    if processes == 1:
        for k in todo:
            if stop:
                break
            finish(k, run_task(tasks[k]))
    elif todo:
        finish_all_parallel(tasks, todo, processes, finish, lambda: stop)
    for k in todo:
        if k not in done:
            done[k] = {"status": "cancelled", "message": "not run (--fail-fast)", "report": None}
    _save_state(plan.state_path, state)
    if hasattr(report, "close"):
        report.close()
    result.results = [(tasks[k], done[k]) for k in range(len(tasks))]
    result.seconds = time.perf_counter() - start
    return result


def finish_all_parallel(tasks, todo, processes, finish, stopped) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)       # inherited by spawned workers before they import numpy
    from multiprocessing import resource_tracker

    from ..files import interrupt
    pool = None
    try:
        interrupt.defer()       # the tracker's start blocks SIGINT and SIGTERM and unblocks them itself: one
        try:                    # taken at that moment would leave it started but unrecorded, never reaped
            resource_tracker.ensure_running()       # started before held_for_children, whose mask it would undo
        finally:
            interrupt.resume()
        with interrupt.held_for_children():     # workers are started (on submit) with the signals blocked
            pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker)
            pending = {pool.submit(_worker_task, tasks[k]): k for k in todo}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                k = pending.pop(fut)
                if fut.cancelled():
                    continue
                try:
                    r = fut.result()
                except Exception as exc:   # a worker that died
                    r = {"status": "internal", "message": f"worker failed ({type(exc).__name__}: {exc})",
                         "report": None}
                finish(k, r)
            if stopped():
                for fut in pending:
                    fut.cancel()
                pending = {f: k for f, k in pending.items() if not f.cancelled()}
    except BaseException:     # a signal (interrupt.Interrupted) or a bug: no worker goes on to install
        if pool is not None:
            _stop_workers(pool)
        raise
    finally:
        interrupt.defer()       # every process of the pool ended and reaped before a signal is taken
        try:                    # (all futures are done here: shutdown only waits for idle workers to exit)
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            pool = None
            _stop_resource_tracker()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        finally:
            interrupt.resume()


def _save_state(path, tasks: dict) -> None:
    """Written beside itself under a fresh temporary name and renamed over (atomic.py): never through a
    link; a failure (read-only folder, full disk) is one line, exit 2."""
    from ..files.atomic import write_files
    state = {"version": STATE_VERSION, "tasks": tasks}
    try:
        write_files([(path, "w", lambda f: json.dump(state, f, indent=1, sort_keys=True))], replace=True)
    except DestinationError as exc:
        raise DestinationError(f"cannot save the plan's state: {exc.message}", path=path) from None
