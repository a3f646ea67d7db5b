"""The peak memory of one `rnnconvert` run in a subprocess, measured in that run alone.

`ru_maxrss` from wait4 is no measure of it: on exec Linux folds the forked parent's high-water mark
into the child's (exec_mmap keeps the old mm's hiwater_rss in the process's maxrss), so a child of a
pytest process grown to 600 MiB reports 600 MiB whatever it did.  `command(args)` runs the CLI through
a few lines that write the process's own VmHWM (its address space after exec) to the file named by
$RNNCONVERT_TEST_PEAK when it exits; `read(path)` returns it in bytes (None when the process died
before it could write it, e.g. by a signal)."""
from __future__ import annotations

import sys
from pathlib import Path

CODE = """\
import atexit, os, runpy, sys
def _peak():
    with open('/proc/self/status') as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))
    with open(os.environ['RNNCONVERT_TEST_PEAK'], 'w') as f:
        f.write(str(kb * 1024))
atexit.register(_peak)
sys.argv[0] = 'rnnconvert'
runpy.run_module('rnnconvert', run_name='__main__', alter_sys=True)
"""


def command(args) -> list[str]:
    """`python -m rnnconvert ARGS`, measured."""
    return [sys.executable, "-c", CODE, *map(str, args)]


def read(path) -> int | None:
    try:
        return int(Path(path).read_text())
    except (OSError, ValueError):
        return None
