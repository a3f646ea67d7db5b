"""Writing a file without ever writing through what is at its path: every output (DST and its companions,
--emit-module's .py, --emit-vectors' files, reports, predictions, the batch state) is written under a
temporary name in its own directory and then installed (`install`): renamed over the path when replacing
is allowed (after checking once more that only a regular file or a link is there: a link is replaced,
never followed), or hard-linked to the path when it is not, which fails if a file appeared meanwhile (two
conversions racing to one new path: exactly one wins).  A full disk or a refused write leaves the old
file (or nothing) in place, never half a file.  Which paths may be written is `outputs.py`'s policy.
Failures are DestinationErrors (exit 2): "cannot write in 'DIR' (...)", "cannot write (...)"."""
from __future__ import annotations

import errno
import os
import secrets

from . import interrupt
from ..errors import DestinationError

APPEARED = "appeared while converting; nothing was replaced"


def refuse_existing(paths, force: bool) -> None:
    """DestinationError for the first of `paths` that exists, unless `force` (convert's rule for DST);
    a FIFO, device, socket or directory there is refused even with `force`."""
    from .outputs import check_replaceable
    for path in paths:
        if path and check_replaceable(path) and not force:
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


def install(tmp: str, path: str, replace: bool) -> None:
    """Move the complete file `tmp` to `path` (same file system).  `replace`: a regular file or link there
    is replaced (re-checked just before); otherwise a file that appeared at `path` since the run began is
    kept and DestinationError(APPEARED) raised."""
    from .outputs import check_replaceable
    if replace:
        check_replaceable(path)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise DestinationError(f"cannot install ({exc.strerror or exc})", path=path) from None
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise DestinationError(APPEARED, path=path) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise DestinationError(f"cannot install ({exc.strerror or exc})", path=path) from None
        if os.path.lexists(path):        # no hard links on this file system: check, then rename
            raise DestinationError(APPEARED, path=path) from None
        try:
            os.rename(tmp, path)
        except OSError as exc:
            raise DestinationError(f"cannot install ({exc.strerror or exc})", path=path) from None
        return
    os.unlink(tmp)


def install_all(pairs, replace: bool) -> None:
    """`install` each (tmp, path) in order; when one fails without `replace`, the paths installed before
    it are removed again (they did not exist before: nothing is replaced, nothing half-installed left)."""
    done = []
    try:
        for tmp, path in pairs:
            install(tmp, path, replace)
            done.append(path)
    except BaseException:
        if not replace:
            for path in done:
                os.unlink(path)
        raise


def write_files(items, replace: bool = True) -> None:
    """`items`: (path, mode, write) with write(f) filling an open file.  Every file is written to its
    temporary first; only when all are complete are they installed, in the order given (put an index
    last), so a failure leaves each path as it was.  `replace`: see `install`."""
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
        install_all(done, replace)
    finally:
        for tmp, _ in done:
            if os.path.lexists(tmp):
                os.unlink(tmp)
