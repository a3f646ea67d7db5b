"""The thread count of the BLAS numpy calls (OpenBLAS), read and set through the loaded library, and the
kernel family it runs (`core`).

The reference forward pass runs a large batch as independent column chunks on its own threads, and
then wants each BLAS call single-threaded: OpenBLAS's threads spin while they wait, which on a busy
machine costs several times the work.  Where the BLAS is not OpenBLAS (or not found in this
process's memory map), `threads()` is None and nothing is changed.
"""
from __future__ import annotations

import ctypes
import functools
import threading
from contextlib import contextmanager

_NAMES = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_", "scipy_openblas_get_corename64_"),
          ("openblas_get_num_threads64_", "openblas_set_num_threads64_", "openblas_get_corename64_"),
          ("openblas_get_num_threads", "openblas_set_num_threads", "openblas_get_corename"))
_lock = threading.Lock()
_users = 0
_saved: int | None = None


@functools.lru_cache(maxsize=1)
def _functions():
    """(get, set) of the OpenBLAS numpy loaded, or None."""
    found = _library()
    return None if found is None else found[:2]


@functools.lru_cache(maxsize=1)
def core() -> str | None:
    """The kernel family OpenBLAS picked for this CPU, lower case ('skylakex', 'haswell', ...); None when
    the BLAS is not OpenBLAS or does not say."""
    found = _library()
    if found is None or found[2] is None:
        return None
    name = found[2]()
    return name.decode("ascii", "replace").strip().lower() if name else None


@functools.lru_cache(maxsize=1)
def _library():
    """(get, set, corename or None) of the OpenBLAS numpy loaded, or None."""
    import numpy  # noqa: F401  (loads the BLAS)
    try:
        with open("/proc/self/maps") as fh:
            libs = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line})
    except OSError:
        return None
    for lib in libs:
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for get, set_, corename in _NAMES:
            if hasattr(handle, get) and hasattr(handle, set_):
                getter, setter = getattr(handle, get), getattr(handle, set_)
                getter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                name = getattr(handle, corename, None)
                if name is not None:
                    name.restype, name.argtypes = ctypes.c_char_p, []
                return getter, setter, name
    return None


def threads() -> int | None:
    """How many threads a BLAS call may use now; None when the BLAS is not OpenBLAS."""
    fns = _functions()
    return None if fns is None else int(fns[0]())


@contextmanager
def single_threaded():
    """Every BLAS call inside runs on its caller's thread; the count is restored when the last user
    leaves (the context may be entered from several threads at once)."""
    global _users, _saved
    fns = _functions()
    if fns is None:
        yield
        return
    with _lock:
        if _users == 0:
            _saved = int(fns[0]())
            fns[1](1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                fns[1](_saved)
