"""The output policy: which paths a run may write, for every file rnnconvert writes (DST and its companion
files, --report, --emit-module, --emit-vectors, `predict --output`, batch destinations, the plan report and
the batch state file), and which files it may read (models, --inputs, --arch, --mapping, plans, vectors).

A run makes one `Outputs`, registers its inputs (`add_input`) and claims each output before any work
(`claim`).  A claim is refused (DestinationError, exit 2, one line) when the path
- is an input of the run or another output of the same run, by any spelling, symlink or hard link
  (the same st_dev/st_ino where the file exists, the same normalized real path otherwise);
- holds anything but a regular file or a symbolic link: a FIFO, device, socket or directory is never
  replaced, even with --force ("is not a regular file; rnnconvert only replaces regular files");
- holds a file and replacing was not asked for ("exists; pass --force to overwrite it").

Symbolic links: the last component of an output path is never followed.  Every file is written to a
temporary beside its path and renamed over it (`atomic.install`), so a link at the path is replaced by
the new file and its target is untouched.  Folders named in the path are the user's choice and are
followed (`out/model.onnx` with `out` a link to another disk writes there); a batch plan's outputs
must still resolve, links followed, inside the plan's folder unless it says `allow_outside: true`.

Inputs must be regular files (`check_input`): a FIFO would block the reader forever, a device never ends.
"""
from __future__ import annotations

import os
import stat

from ..errors import DestinationError, InputError

NOT_REGULAR = "is not a regular file; rnnconvert only replaces regular files"


def check_input(path, what: str = "a model file") -> None:
    """InputError unless `path` (links followed) is an existing regular file."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read ({getattr(exc, 'strerror', None) or exc})", path=path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"is a directory, expected {what}", path=path)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"is not a regular file, expected {what} (rnnconvert reads only regular files)", path=path)


def check_replaceable(path) -> bool:
    """True when a regular file or a link (which would be replaced, never followed) is at `path`, False
    when nothing is; DestinationError for anything else (a FIFO, device, socket or directory)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        raise DestinationError(f"cannot write ({getattr(exc, 'strerror', None) or exc})", path=os.fspath(path)) from None
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        return True
    raise DestinationError(NOT_REGULAR, path=os.fspath(path))


def identity(path) -> tuple:
    """(st_dev, st_ino) of the file `path` leads to (None if there is none) and its normalized real path."""
    path = os.fspath(path)
    if "\0" in str(path):
        raise InputError("the path holds a NUL byte; no file can be named so", path=repr(path))
    try:
        st = os.stat(path)
        ino = (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        ino = None
    return ino, os.path.normcase(os.path.realpath(path))


def same(a: tuple, b: tuple) -> bool:
    return (a[0] is not None and a[0] == b[0]) or a[1] == b[1]


def inside(path, folder) -> bool:
    """Whether `path` resolves (links followed) inside `folder`."""
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, base]) == base


class Index:
    """Values keyed by file identity, found by (st_dev, st_ino) or by real path in constant time."""

    def __init__(self):
        self.by_ino: dict = {}
        self.by_real: dict = {}

    def add(self, ident: tuple, value) -> None:
        if ident[0] is not None:
            self.by_ino.setdefault(ident[0], value)
        self.by_real.setdefault(ident[1], value)

    def find(self, ident: tuple):
        if ident[0] is not None and ident[0] in self.by_ino:
            return self.by_ino[ident[0]]
        return self.by_real.get(ident[1])


class Outputs:
    """The paths one run reads and writes; `claim` each output before any work (see the module docstring)."""

    def __init__(self):
        self.inputs = Index()        # identity -> role
        self.outputs = Index()       # identity -> (role, path)

    def add_input(self, path, role: str) -> None:
        if path:
            self.inputs.add(identity(path), role)

    def add_output(self, path, role: str) -> None:
        """Register an output claimed elsewhere (another job of a plan), without checks."""
        self.outputs.add(identity(path), (role, os.fspath(path)))

    def conflict(self, path) -> str | None:
        """Why `path` may not be written by this run (an input or another output), or None."""
        ident = identity(path)
        role = self.inputs.find(ident)
        if role:
            return f"is {role}; rnnconvert never writes over an input of the run, choose another path"
        other = self.outputs.find(ident)
        if other:
            return f"is also written as {other[0]} ({other[1]}); choose another path"
        return None

    def claim(self, path, role: str, *, replace: bool) -> str:
        """Register `path` as the output `role`; raise DestinationError when the policy refuses it.
        `replace`: an existing regular file (or link) there may be replaced (--force, or an output that
        is always rewritten such as --report)."""
        path = os.fspath(path)
        why = self.conflict(path)
        if why:
            raise DestinationError(why, path=path)
        if check_replaceable(path) and not replace:
            raise DestinationError("exists; pass --force to overwrite it", path=path)
        self.add_output(path, role)
        return path

    def claimed(self, path) -> bool:
        return self.outputs.find(identity(path)) is not None
