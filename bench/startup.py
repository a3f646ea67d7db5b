"""Start-up: `rnnconvert --help` and `rnnconvert formats` as a user runs them, beside `python -c pass`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .table import Row, best_of, judge

ROOT = Path(__file__).resolve().parent.parent


def bench_startup(ctx, rows):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))

    def run(*args):
        return lambda: subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, check=True)

    best = best_of({"pass": run("-c", "pass"), "help": run("-m", "rnnconvert", "--help"),
                    "formats": run("-m", "rnnconvert", "formats")}, max(ctx.repeat, 5))
    for cmd in ("--help", "formats"):
        rows.append(judge(Row(f"rnnconvert {cmd} (process wall time)", best[cmd.strip('-')], best["pass"],
                              "python -c pass"), below=0.3))
