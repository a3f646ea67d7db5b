"""What a batch run keeps between runs, and its lock.

A state file beside the plan (`.plan.yaml.rnnconvert-state.json`) records a fingerprint of each passed
conversion (source, options, inputs and hints by SHA-256, and the destination's SHA-256), so a re-run
skips what is unchanged.  It is read only if it is a regular file (not a link, FIFO or device: exit 2)
and written under a temporary name and renamed over (a link there is replaced, never followed).
`plan_lock` holds an exclusive lock on the plan file while the CLI runs it: a second `rnnconvert batch`
of the same plan exits 2 at once instead of racing for its outputs and state.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat

from .plan import Plan, Task
from ..errors import DestinationError, InputError
from ..files.text import MAX_JSON_BYTES, read_json
from ..verification.report import sha256_of

STATE_VERSION = 1


def sha256_file(path, cache: dict | None = None) -> str:
    if cache is not None:
        key = (os.path.abspath(path), os.stat(path).st_mtime_ns, os.stat(path).st_size)
        if key not in cache:
            cache[key] = sha256_file(path)
        return cache[key]
    return sha256_of(path)


def fingerprint(task: Task, cache: dict | None = None) -> str:
    """A hash of everything a conversion depends on: source, options, inputs and hint files."""
    from ..version import __version__
    parts = {"rnnconvert": __version__, "src": sha256_file(task.src_path, cache), "options": task.options}
    for key in ("inputs", "arch"):
        if isinstance(task.options.get(key), str):
            parts[key + "_sha256"] = sha256_file(task.options[key], cache)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


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


def _save_state(path, tasks: dict) -> None:
    """Written beside itself under a fresh temporary name and renamed over (rnnconvert/files/atomic.py): never through a
    link; a failure (read-only folder, full disk) is one line, exit 2."""
    from ..files.atomic import write_files
    state = {"version": STATE_VERSION, "tasks": tasks}
    try:
        write_files([(path, "w", lambda f: json.dump(state, f, indent=1, sort_keys=True))], replace=True)
    except DestinationError as exc:
        raise DestinationError(f"cannot save the plan's state: {exc.message}", path=path) from None
