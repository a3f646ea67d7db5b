"""SIGTERM, SIGHUP and SIGINT (what `timeout`, `kill`, a closed terminal, a container stop and Ctrl-C
send) end rnnconvert the way an error does: every `finally` runs, so temporaries are removed, child
processes are killed (`subprocess.run` kills its child on any exception) and batch workers are stopped,
then the process exits 128 + the signal's number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP) with one line.

`install()` (cli.main, and each batch worker) makes the three signals raise `Interrupted`, a
BaseException, so that no `except Exception` swallows it.  The first signal disarms the handler: a
second one while the first is being cleaned up is ignored, so cleanup completes.  A signal that arrives
during an import is held until the import is done (retried every 20 ms on SIGALRM): an extension module's
initialisation runs Python code (onnx's enums), and an exception raised there aborts the process from
C++ (`terminate called after throwing an instance of 'nanobind::python_error'`, exit -6).  Code that
creates a temporary and then enters the `try` that removes it holds signals in between with `defer()` /
`resume()` (a signal held is raised by `resume()`, inside the `try`); `temporary_directory()` is
`tempfile.TemporaryDirectory` made and removed that way.  `held_for_children()` also blocks
the signals in the kernel while child processes are started: a child inherits the blocked mask, so a
Ctrl-C reaching a batch worker still starting (before `install()` runs in it, then `unblock()`) cannot
print a KeyboardInterrupt traceback; it is handled once the worker is ready.

`install()` runs first thing in `python -m rnnconvert` (before the CLI's imports) and `ignore_from_now()` last
(before the interpreter's teardown), so no moment of the run is left to Python's own KeyboardInterrupt or to
the default action.

An error whose causes include an Interrupted (`hidden()`) is that Interrupted, and an Interrupted that Python
swallows (raised in a weakref callback or a `__del__`: "Exception ignored in ...") is raised again 20 ms later.

`quiet_warnings()`, the other setting of a command-line process (cli.main, batch workers): stderr
carries rnnconvert's own lines only.
"""
from __future__ import annotations

import contextlib
import signal
import sys

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Interrupted(BaseException):
    """Raised in the main thread by a terminating signal; `exit_code` is 128 + its number."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


RETRY_SECONDS = 0.02
_action = None
_held: int | None = None
_fired = False
_deferred = 0
_again: int | None = None
_default_unraisable = sys.unraisablehook


def defer() -> None:
    """Hold signals until `resume()` (nested calls count)."""
    global _deferred
    _deferred += 1


def resume() -> None:
    """End a `defer()`; a signal that arrived meanwhile is handled now, in the caller."""
    global _deferred
    _deferred -= 1
    if _deferred == 0 and _held is not None:
        _handle(_held, None)


@contextlib.contextmanager
def held_for_children():
    """Signals held (`defer()`) and blocked in the kernel while the body starts child processes, which
    inherit the blocked mask; a signal that arrived meanwhile is raised on leaving, in the caller."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    defer()
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        resume()


@contextlib.contextmanager
def temporary_directory(prefix: str):
    """`tempfile.TemporaryDirectory` that no signal leaves behind: made and removed with signals held (a
    signal after `mkdtemp` inside TemporaryDirectory's constructor, or during its rmtree, left the folder)."""
    import shutil
    import tempfile
    defer()
    path = None
    try:
        path = tempfile.mkdtemp(prefix=prefix)
    finally:
        if path is None:         # mkdtemp failed: its error goes on
            resume()
    try:
        resume()                 # a signal held meanwhile is raised here, inside the try
        yield path
    finally:
        defer()
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            resume()


def unblock() -> None:
    """In a child started under `held_for_children()`, once `install()` has run: take signals again."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def disarm() -> None:
    """Ignore the signals from now on (the first one is being handled).  The handler stays installed and
    returns: setting SIG_IGN would make Python raise OSError ("Signal 15 ignored due to race condition")
    for a second signal already caught, in the middle of the cleanup."""
    global _fired
    _fired = True
    signal.setitimer(signal.ITIMER_REAL, 0)


def hidden(exc: BaseException) -> Interrupted | None:
    """The Interrupted behind `exc`, if any.  A handler that raises while a C extension is returning (h5py's
    lock, a Cython callback of an HDF5 walk) surfaces as SystemError("... returned a result with an exception
    set") caused by the Interrupted, which a reader may then report as a damaged file: the CLI and batch look
    through the causes and contexts of an error before reporting it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Interrupted):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def raise_hidden(exc: BaseException) -> None:
    """Raise the Interrupted behind `exc` (`hidden()`), if any: the run ends as the signal, not as the error."""
    signalled = hidden(exc)
    if signalled is not None:
        raise signalled from None


def check() -> None:
    """Raise a signal still held from an import now (the caller is outside any import), rather than leave it
    to the retry timer, which a short command can outrun."""
    if _held is not None and not _deferred and not _fired:
        _handle(_held, None)


def ignore_from_now() -> None:
    """The run is over (cli.main's end): the signals are ignored while the interpreter shuts down.  Python's
    finalisation resets a signal with a Python handler to the default action, so a signal during the
    seconds of torch's and onnx's teardown would kill the finished process (exit -2 instead of 0);
    SIG_IGN is kept.  Disarmed first, so a signal caught just before runs the handler as a no-op."""
    disarm()
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _raise(signum: int):
    raise Interrupted(signum)


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _handle(signum, frame):
    global _held
    if _fired:
        return
    if _deferred:
        _held = signum
        return
    if _importing(frame):            # held: raising inside an extension module's init aborts the process
        _held = signum
        signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
        return
    _held = None
    disarm()
    _action(signum)


def _retry(_, frame):
    global _again
    if _again is not None:           # an Interrupted that Python swallowed: raised again, outside any import
        if _deferred or _importing(frame):
            signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
            return
        signum, _again = _again, None
        _action(signum)
    elif _held is not None:
        _handle(_held, frame)


def _unraisable(info) -> None:
    """sys.unraisablehook: a handler that raised inside a weakref callback, a __del__ or a GC callback had its
    Interrupted printed as "Exception ignored in ..." and dropped, so a worker went on to finish (and
    install) its conversion.  It is raised again RETRY_SECONDS later instead, quietly."""
    global _again
    if isinstance(info.exc_value, Interrupted):
        _again = info.exc_value.signum
        signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
        return
    _default_unraisable(info)


def install(action=_raise) -> None:
    """Make SIGTERM, SIGHUP and SIGINT call `action(signum)` (by default: raise Interrupted) outside any
    import.  Main thread only."""
    global _action
    _action = action
    for sig in SIGNALS:
        signal.signal(sig, _handle)
    signal.signal(signal.SIGALRM, _retry)
    if sys.unraisablehook is not _unraisable:
        sys.unraisablehook = _unraisable


def message(exc: Interrupted) -> str:
    return f"rnnconvert: {exc}; temporary files removed, exit {exc.exit_code}"


def quiet_warnings() -> None:
    """Drop Python warnings (numpy RuntimeWarnings, torch and Keras UserWarnings, DeprecationWarnings),
    unless the user asked for them with -W or PYTHONWARNINGS."""
    import warnings
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
