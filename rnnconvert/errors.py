"""One exception hierarchy; the CLI turns each into a one-line message and an exit code.

Every error carries its own exit code (as click's exceptions do): 2 for bad input or usage,
1 for a conversion whose numbers do not match.  Messages name the file, the layer, what was
expected and what was found, and what to do about it.
"""
from __future__ import annotations


class RnnConvertError(Exception):
    """Base class: everything rnnconvert raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, layer: str | None = None):
        self.message = message
        self.path = path
        self.layer = layer
        super().__init__(self.format())

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
