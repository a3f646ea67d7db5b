"""Progress of a conversion or verification, as `convert(progress=...)` and `verify(progress=...)` receive it.

`Tracker` turns the stages (reading, writing, the reference passes) and every finished check into `Event`s
for the caller's `progress(event)`; `Checks` is the report's list of checks that tells the tracker when one
is added, so the oracles report progress by recording their checks.  `Printer` is what the CLI passes: on a
terminal one live line (the stage, check i of n, elapsed), redrawn in place every second; otherwise one line
per finished check, `[3/12] ok      onnxruntime(dst) seeded b2 t120 (4.1 s)` (the batch's line, elapsed since
the start).  Both go to the stream given (the CLI: stderr, never stdout, where reports and JSON go).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from ..errors import printable


@dataclass
class Event:
    message: str            # "reading a.h5 (keras)", "reference(src) on seeded b3 t7", or the check's oracle + input
    done: int               # checks finished so far
    total: int | None       # checks planned (None: not known yet)
    elapsed: float          # seconds since the start
    check: object = None    # the finished check (verification.checks.Check), None for a stage

    def __str__(self) -> str:
        return self.message


class Tracker:
    """Calls `callback(Event)` for each stage and each finished check."""

    def __init__(self, callback):
        self.callback, self.start, self.done, self.total = callback, time.perf_counter(), 0, None

    def _event(self, message: str, check=None) -> Event:
        return Event(message, self.done, self.total, time.perf_counter() - self.start, check)

    def stage(self, message: str) -> None:
        self.callback(self._event(message))

    def planned(self, n: int) -> None:
        self.total = self.done + n

    def added(self, n: int) -> None:
        """`n` more checks than planned will be made."""
        self.total = (self.total or self.done) + n

    def dropped(self, n: int) -> None:
        """`n` planned checks will not be made (their runtime is not run)."""
        if self.total is not None:
            self.total = max(self.done, self.total - n)

    def check(self, check) -> None:
        self.done += 1
        self.callback(self._event(f"{check.oracle} {check.input}", check))


class Checks(list):
    """A report's checks; each one added is told to `tracker` (None: nobody)."""

    def __init__(self, items=(), tracker: Tracker | None = None):
        super().__init__(items)
        self.tracker = tracker

    def _told(self, items):
        tracker = getattr(self, "tracker", None)        # unpickling appends before the attribute is back
        for c in items:
            if tracker is not None:
                tracker.check(c)

    def append(self, check) -> None:
        super().append(check)
        self._told([check])

    def extend(self, checks) -> None:
        checks = list(checks)
        super().extend(checks)
        self._told(checks)

    def __iadd__(self, checks):
        self.extend(checks)
        return self


def observe(report, progress) -> Tracker | None:
    """The tracker of `progress` (None: none), the report's checks made to tell it."""
    if progress is None:
        return None
    tracker = progress if isinstance(progress, Tracker) else Tracker(progress)
    report.checks = Checks(report.checks, tracker)
    return tracker


class Printer:
    """`progress=` for a terminal (`tty`: one live line, redrawn every second) or a pipe (a line per check).
    Use it as a context manager: leaving it erases the live line."""

    def __init__(self, stream, tty: bool):
        self.stream, self.tty = stream, tty
        self.last: Event | None = None
        self.width = 0
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.ticker = None
        self.start = time.perf_counter()
        self.columns = terminal_columns(stream) if tty else 0

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.last = event
            if self.tty:
                self._draw()
                if self.ticker is None:
                    self.ticker = threading.Thread(target=self._tick, daemon=True)
                    self.ticker.start()
            elif event.check is not None:
                self.stream.write(line(event) + "\n")
                self.stream.flush()

    def _draw(self) -> None:
        e = self.last
        elapsed = time.perf_counter() - self.start
        if e.check is None and not e.done:
            text = f"  {e.message} ... {elapsed:.0f} s"
        else:
            total = f" of {max(e.total, e.done)}" if e.total else ""
            now = "" if e.check is None else f" ({e.message})"
            text = f"  verifying: check {e.done}{total} done{now}, {elapsed:.0f} s"
            if e.check is None:
                text += f": {e.message}"
        text = printable(text)[:self.columns - 1]       # a file's name never acts on the terminal; one row
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()
        self.width = len(text)

    def _tick(self) -> None:
        while not self.stopped.wait(1.0):
            with self.lock:
                if self.width:
                    self._draw()

    def close(self) -> None:
        self.stopped.set()
        with self.lock:
            if self.tty and self.width:
                self.stream.write("\r" + " " * self.width + "\r")
                self.stream.flush()
            self.width = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def terminal_columns(stream) -> int:
    """The terminal's width (80 when it does not say): a longer live line would wrap, and \\r redraw only
    its last row."""
    import os
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80


def status_line(done: int, total: int, word: str, what: str, seconds: float | None = None) -> str:
    """`[3/12] ok      onnxruntime(dst) seeded b2 t120 (4.1 s)`: the line a finished check, or a batch job,
    prints; escaped, so that a name from a file never acts on the terminal."""
    return printable(f"[{done}/{total}] {word:<7} {what}" + ("" if seconds is None else f" ({seconds:.1f} s)"))


def line(event: Event) -> str:
    """One finished check as a status line."""
    word = "ok" if event.check.passed else "FAIL"
    return status_line(event.done, max(event.total or 0, event.done), word, event.message, event.elapsed)
