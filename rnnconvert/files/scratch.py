"""Running the programs verification needs on generated code, in a scratch directory: one helper.

Every program rnnconvert starts on a file it wrote (gcc and the compiled model, node on an ES module,
python on a NumPy script, Octave on a .mat) runs through `run()`: in a fresh temporary working
directory, removed afterwards, with an environment of only PATH, HOME and TMPDIR (both that scratch
directory) and LANG/LC_ALL=C.  Nothing of the caller's environment that changes what a runtime loads
or runs reaches it (PYTHONPATH, PYTHONSTARTUP, NODE_OPTIONS, NODE_PATH, LD_PRELOAD, LD_LIBRARY_PATH,
OCTAVE_PATH, ...), and a file the generated code finds relative to its working directory is the
scratch directory's, not the user's.  Python runs isolated (`python -I`: no user site, no script
folder on sys.path), so a `numpy.py` beside the destination is never imported.
"""
from __future__ import annotations

import os
import subprocess
import sys

KEPT = ("PATH", "SYSTEMROOT")   # SYSTEMROOT: Windows processes cannot start without it


def environment(scratch: str) -> dict[str, str]:
    """The whole environment a generated program sees."""
    env = {k: os.environ[k] for k in KEPT if k in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=scratch, TMPDIR=scratch, TMP=scratch, TEMP=scratch, LANG="C", LC_ALL="C")
    return env


def python() -> list[str]:
    """This interpreter, isolated from the environment and the script's folder."""
    return [sys.executable, "-I"]


def run(argv, timeout: float | None = None) -> subprocess.CompletedProcess:
    """`argv` (absolute paths for its files) in a fresh scratch directory; output captured as text."""
    from .interrupt import temporary_directory
    with temporary_directory("rnnconvert-run-") as scratch:
        return subprocess.run([str(a) for a in argv], cwd=scratch, env=environment(scratch), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace", timeout=timeout)
