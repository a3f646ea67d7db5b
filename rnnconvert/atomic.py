"""Side outputs (--emit-module's .py, --emit-vectors' files) written the way convert writes DST: under a
temporary name in the destination's own directory, then renamed over it, so that a full disk or a
refused write leaves the old file (or nothing) in place, never half a file; an existing file is kept
unless the caller passes force (`refuse_existing`).  Failures are DestinationErrors (exit 2) worded as
convert's: "cannot write in 'DIR' (...)" when no file can be created there, "cannot write (...)"."""
from __future__ import annotations

import os
import secrets

from . import interrupt
from .errors import DestinationError


def refuse_existing(paths, force: bool) -> None:
    """DestinationError for the first of `paths` that exists, unless `force` (convert's rule for DST)."""
    if force:
        return
    for path in paths:
        if path and os.path.lexists(path):
            raise DestinationError("exists; pass --force to overwrite it", path=os.fspath(path))


def _create_beside(path: str) -> tuple[int, str]:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise DestinationError(f"directory '{directory}' does not exist", path=path)
    for _ in range(100):
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
        try:     # 0o666 less the umask, as open() would give the file itself (mkstemp's 0o600 would not)
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise DestinationError(f"cannot write in '{directory}' ({exc.strerror or exc})", path=path) from None
    raise DestinationError(f"cannot write in '{directory}' (no free temporary name)", path=path)


def write_files(items) -> None:
    """`items`: (path, mode, write) with write(f) filling an open file.  Every file is written to its
    temporary first; only when all are complete are they renamed, in the order given (put an index
    last), so a failure leaves each path as it was."""
    done: list[tuple[str, str]] = []
    try:
        for path, mode, write in items:
            path = os.fspath(path)
            interrupt.defer()       # a signal lands once the temporary is in `done`, which finally removes
            try:
                fd, tmp = _create_beside(path)
                done.append((tmp, path))
            finally:
                interrupt.resume()
            try:
                with os.fdopen(fd, mode) as f:
                    write(f)
            except OSError as exc:
                raise DestinationError(f"cannot write ({exc.strerror or exc})", path=path) from None
        for tmp, path in done:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise DestinationError(f"cannot install ({exc.strerror or exc})", path=path) from None
    finally:
        for tmp, _ in done:
            if os.path.lexists(tmp):
                os.unlink(tmp)
