"""The conversions of a batch run: `run_task` (one conversion, never raising), and `finish_all_parallel`,
which runs tasks in a pool of spawned worker processes.

A worker computes with one BLAS thread (WORKER_ENV).  A signal to a worker during a conversion unwinds it
(its temporaries removed), between conversions it exits at once; a signal to the parent stops every worker
(each given WORKER_GRACE seconds to clean up) and the pool, its processes reaped, before it is taken.
"""
from __future__ import annotations

import os
import time

from .plan import Task

WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def run_task(task: Task, progress=None) -> dict:
    """One conversion; never raises: {"status": ok|failed|error, "message", "report", "seconds"}.
    `progress(line)`: called with the status line of each finished check (`verification.progress.line`)."""
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
                         read_options=(_given(o, "arch", "accept_windows_paths", "output") or {})
                         | ({"branches": o["if"]} if o.get("if") else {}),
                         write_options=_given(o, "keras_version", "external_data", "quantize", "stateful"),
                         emit_module=o.get("emit_module"), emit_vectors=o.get("emit_vectors"),
                         allow_nonfinite=bool(o.get("allow_nonfinite")), layer=o.get("layer"),
                         strict=bool(o.get("strict")), time_budget=float("inf") if o.get("full_suite") else None,
                         progress=_check_lines(progress))
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


def _check_lines(progress):
    """convert's progress callback that passes on each finished check's status line, or None."""
    if progress is None:
        return None
    from ..verification.progress import line

    def on_event(event):
        if event.check is not None:
            progress(line(event))
    return on_event


def _given(options: dict, *keys) -> dict | None:
    """The options among `keys` that are set (a reader or writer option left out keeps its default)."""
    return {k: options[k] for k in keys if options.get(k)} or None


_lines = None       # in a worker: the queue its checks' status lines go to, (task index, line)


def _init_worker(lines=None) -> None:
    global _lines
    from ..files import interrupt
    _lines = lines
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


def _worker_task(task: Task, k: int) -> dict:
    """run_task in a worker process, its checks' lines sent to the parent as (k, line); an Interrupted
    conversion ends the worker (never its next task)."""
    global _busy
    from ..files.interrupt import Interrupted
    try:
        _busy = True
        return run_task(task, None if _lines is None else lambda text: _lines.put((k, text)))
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


def _drain(lines, on_check) -> None:
    """Every (task index, line) the workers have sent so far, to `on_check`."""
    import queue
    while True:
        try:
            k, text = lines.get_nowait()
        except queue.Empty:
            return
        on_check(k, text)


def finish_all_parallel(tasks, todo, processes, finish, stopped, on_check=None) -> None:
    """Run `todo` (indices into `tasks`) in `processes` workers; `finish(k, result)` for each as it ends,
    `on_check(k, line)` for each check a conversion finishes (None: not sent)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)       # inherited by spawned workers before they import numpy
    from multiprocessing import resource_tracker

    from ..files import interrupt
    pool = lines = None
    try:
        interrupt.defer()       # the tracker's start blocks SIGINT and SIGTERM and unblocks them itself: one
        try:                    # taken at that moment would leave it started but unrecorded, never reaped
            resource_tracker.ensure_running()       # started before held_for_children, whose mask it would undo
        finally:
            interrupt.resume()
        context = multiprocessing.get_context("spawn")
        lines = context.Queue() if on_check is not None else None
        with interrupt.held_for_children():     # workers are started (on submit) with the signals blocked
            pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_init_worker, initargs=(lines,))
            pending = {pool.submit(_worker_task, tasks[k], k): k for k in todo}
        while pending:
            finished, _ = wait(pending, timeout=None if lines is None else 0.25, return_when=FIRST_COMPLETED)
            if lines is not None:
                _drain(lines, on_check)
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
            if lines is not None:
                lines.close()
                lines.join_thread()
                lines = None
            _stop_resource_tracker()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        finally:
            interrupt.resume()
