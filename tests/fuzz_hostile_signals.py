"""The `signals` class of tests/fuzz_hostile.py: SIGTERM / SIGHUP / SIGINT sent to `rnnconvert SRC DST`
(a .pt with --emit-module) or to `batch -j2` (four jobs), each started in its own session, after a delay
drawn from the case's seed.  It must end with exit 128+signal (or 0: the run finished), leave no process
of its session and no temporary (its TMPDIR and `*.tmp` beside the destinations), and each destination
must be absent or verify against the source.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from fuzz_hostile import HostileCase
from fuzz_hostile_runs import KERAS_H5, _env, _leftovers

SIGNAL_WAIT = 15.0


# ------------------------------------------------------------------------------------ signals

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
BATCH_DSTS = ("a.onnx", "b.pt", "c.safetensors", "d.rnnc")


def signals_gen(rng, i, seeds):
    sig = SIGNALS[i % len(SIGNALS)]
    batch = i // len(SIGNALS) % 2 == 1
    delay = float(rng.uniform(0.5, 5.0 if batch else 3.0))
    label = f"{sig.name} to {'batch -j2' if batch else 'convert'} after {delay:.2f}s"

    def make(d):
        (d / "out").mkdir(exist_ok=True)
        shutil.copyfile(KERAS_H5, d / "model.h5")
        if batch:
            (d / "plan.yaml").write_text("jobs:\n" + "".join(f"- src: model.h5\n  dst: out/{x}\n" for x in BATCH_DSTS))
        return d / "model.h5"

    def check(src: Path):
        import rnnconvert
        d = src.parent
        args = ["batch", str(d / "plan.yaml"), "-j2"] if batch else [str(src), str(d / "out" / "model.pt"),
                                                                       "--emit-module", str(d / "out" / "module.py")]
        with open(d / "stderr", "w") as err_file:       # a file, not a pipe: workers left behind may hold it
            proc = subprocess.Popen([sys.executable, "-m", "rnnconvert", *args], cwd=d, env=_env(d / "tmp"),
                                    stdout=subprocess.DEVNULL, stderr=err_file, start_new_session=True)
        time.sleep(delay)
        sent = proc.poll() is None
        if sent:
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=SIGNAL_WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return "escape", f"still running {SIGNAL_WAIT:.0f}s after {sig.name}"
        err = (d / "stderr").read_text(errors="replace")
        problems = []
        if proc.returncode not in (0, 128 + sig):
            last = err.strip().splitlines()[-1][:160] if err.strip() else ""
            problems.append(f"exit {proc.returncode} (expected {128 + sig} or 0) {last!r}")
        time.sleep(0.5)
        try:
            os.killpg(proc.pid, 0)              # anything left in the run's own session?
            problems.append("processes of the run left running")
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        left = _leftovers(d / "tmp", d / "out")
        if left:
            problems.append(f"temporaries left: {left[:3]}")
        for name in (BATCH_DSTS if batch else ("model.pt",)):
            dst = d / "out" / name
            if dst.exists():
                try:
                    rnnconvert.verify(src, dst)
                except Exception as exc:  # noqa: BLE001 - an installed DST that does not verify
                    problems.append(f"{name} installed but does not verify: {type(exc).__name__}: {str(exc)[:120]}")
        if problems:
            return "escape", "; ".join(problems)
        return ("ok" if proc.returncode == 0 else "refused"), f"exit {proc.returncode}" + ("" if sent else " (finished first)")
    return HostileCase("signals", i, label, make, None, check=check)


GENERATORS = {"signals": signals_gen}
