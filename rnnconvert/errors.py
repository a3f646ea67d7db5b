"""One exception hierarchy; the CLI turns each into a one-line message and an exit code.

Every error carries its own exit code (as click's exceptions do): 2 for bad input or usage,
1 for a conversion whose numbers do not match.  Messages name the file, the layer, what was
expected and what was found, and what to do about it.
"""
from __future__ import annotations

import re

# What a terminal would act on rather than show: C0/C1 controls, DEL, Unicode line and paragraph
# separators and the bidirectional overrides (text from a file can hold any of them, e.g. a layer name).
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str, keep_newlines: bool = False) -> str:
    """`text` with everything a terminal would act on escaped (`\\x1b`, `\\u2028`), so that a name from a
    file can neither split a one-line message into several nor move the cursor or recolour the screen.
    `keep_newlines`: the text's own line breaks (a report of several lines) stay."""
    def escape(m):
        c = m.group()
        if keep_newlines and c == "\n":
            return c
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
    return _UNPRINTABLE.sub(escape, text)


class RnnConvertError(Exception):
    """Base class: everything rnnconvert raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, layer: str | None = None):
        self.message = message
        self.path = path
        self.layer = layer
        super().__init__(self.format())

    def __str__(self) -> str:
        """The message as it reads now: a path or layer set after the error was made (`convert` naming DST
        for an error raised on its temporary file) is in it."""
        return self.format()

    def format(self) -> str:
        where = []
        if self.path:
            where.append(str(self.path))
        if self.layer:
            where.append(f"layer '{self.layer}'")
        prefix = ": ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class InputError(RnnConvertError):
    """A file or argument that cannot be used: missing, truncated, not a model, bad shapes."""


class UnknownFormatError(InputError):
    """The path's format is not one rnnconvert knows."""


class UnsupportedError(InputError):
    """A valid model using something rnnconvert cannot read, compute or write (yet)."""


class DestinationError(InputError):
    """The destination cannot be written: exists without --force, equals the source, no permission."""


class VerificationError(RnnConvertError):
    """The converted model does not compute what the source computes."""

    exit_code = 1

    def __init__(self, message: str, *, report=None, **kw):
        self.report = report
        super().__init__(message, **kw)


def short_repr(value) -> str:
    """repr() bounded in depth and length: a YAML alias bomb must not be expanded into a message."""
    import reprlib
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxstring, r.maxother = 3, 6, 6, 80, 80
    return r.repr(value)


def one_line(exc) -> str:
    """An exception's text on one line (YAML and HDF5 errors span several)."""
    return " ".join(str(exc).split())


class RuntimeUnavailable(Exception):
    pass
