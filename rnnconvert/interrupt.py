"""SIGTERM, SIGHUP and SIGINT (what `timeout`, `kill`, a closed terminal, a container stop and Ctrl-C
send) end rnnconvert the way an error does: every `finally` runs, so temporaries are removed, child
processes are killed (`subprocess.run` kills its child on any exception) and batch workers are stopped,
then the process exits 128 + the signal's number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP) with one line.

`install()` (cli.main, and each batch worker) makes the three signals raise `Interrupted`, a
BaseException, so that no `except Exception` swallows it.  The first signal disarms the handler: a
second one while the first is being cleaned up is ignored, so cleanup completes.

`quiet_warnings()`, the other setting of a command-line process (cli.main, batch workers): stderr
carries rnnconvert's own lines only.
"""
from __future__ import annotations

import signal

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Interrupted(BaseException):
    """Raised in the main thread by a terminating signal; `exit_code` is 128 + its number."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def disarm() -> None:
    """Ignore the signals from now on (the first one is being handled)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _raise(signum, frame):
    disarm()
    raise Interrupted(signum)


def install(handler=_raise) -> None:
    """Make SIGTERM, SIGHUP and SIGINT call `handler` (by default: raise Interrupted).  Main thread only."""
    for sig in SIGNALS:
        signal.signal(sig, handler)


def message(exc: Interrupted) -> str:
    return f"rnnconvert: {exc}; temporary files removed, exit {exc.exit_code}"


def quiet_warnings() -> None:
    """Drop Python warnings (numpy RuntimeWarnings, torch and Keras UserWarnings, DeprecationWarnings),
    unless the user asked for them with -W or PYTHONWARNINGS."""
    import sys
    import warnings
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
