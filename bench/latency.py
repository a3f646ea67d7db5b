"""What a user waits for in a fresh process (issue 18): `rnnconvert model.h5 model.onnx` on the Keras files
that convert (the wild folder's `convert` cases and the fixtures), verified and `--no-verify`, beside
tf2onnx on the same files in the same run; and `import rnnconvert.cli` + `--help`.

Each conversion is its own process, timed by wall clock, its peak RSS from wait4 (the whole process:
interpreter, libraries and all), both taken by a small launcher process (`LAUNCHER`).  The three runs of a file are interleaved (ours verified, ours
--no-verify, tf2onnx), so load hits them alike.  rnnconvert's modules are compiled to bytecode first,
as `pip install` leaves them (this machine's PYTHONDONTWRITEBYTECODE=1 would otherwise have every run
compile ~250 modules from source).  tf2onnx (`python -m tf2onnx.convert --keras`) runs from the
venv RNNCONVERT_TF_PYTHON names; without it its column says "not run".  The ratio to tf2onnx is of the
medians over the files both converted.
"""
from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
from pathlib import Path

from .table import Row, best_of, judge

ROOT = Path(__file__).resolve().parent.parent
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
CPU: dict = {}       # command -> CPU seconds (user + system) of its last run: what load changes least


def keras_files(wild: Path | None) -> list[Path]:
    """The wild `convert` cases of a Keras suffix, then one file per Keras fixture (model.h5)."""
    files = []
    if wild is not None and wild.is_dir():
        from .wild import expectations, model_file
        for case, expect in sorted(expectations(wild).items()):
            f = model_file(wild / case) if (wild / case).is_dir() else None
            if expect == "convert" and f is not None and f.suffix.lower() in KERAS_SUFFIXES:
                files.append(f)
    for kind in ("keras3", "tfkeras2"):
        files += sorted((ROOT / "fixtures" / kind).glob("*/model.h5"))
    return files


# A small process starts each measured one and reports its wall time and wait4's usage: a child forked from
# this process would report this process's RSS at the fork as its own peak (Linux keeps the pre-exec high-water
# mark in ru_maxrss), and after `convert`/`memory` this process holds gigabytes.
LAUNCHER = ("import os, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "_, s, u = os.wait4(p.pid, 0)\n"
            "print(time.perf_counter() - t, u.ru_maxrss, u.ru_utime + u.ru_stime, os.waitstatus_to_exitcode(s))\n")


def timed(cmd: list[str], env: dict) -> tuple[float, float, bool]:
    """(wall seconds, peak RSS MB, exit 0?) of one process; its CPU seconds go to `CPU[cmd[-1]]`."""
    out = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], env=env, capture_output=True, text=True)
    wall, maxrss, cpu, code = out.stdout.split()
    CPU[tuple(cmd)] = float(cpu)
    return float(wall), int(maxrss) / 1024, int(code) == 0


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
                KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "torch"))


def _pick(files: list, n: int) -> list:
    if not n or n >= len(files):
        return files
    return [files[round(k * (len(files) - 1) / (n - 1))] for k in range(n)] if n > 1 else files[:1]


def bench_latency(ctx, rows, folder):
    compileall.compile_dir(str(ROOT / "rnnconvert"), quiet=1)
    wild = Path(ctx.wild) if ctx.wild else None
    files = _pick(keras_files(wild), ctx.latency_files)
    from .convert import TF_PYTHON
    tf = TF_PYTHON if TF_PYTHON.exists() else None
    env = _env()
    tf_env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    runs = {"verified": [], "no-verify": [], "tf2onnx": []}
    failed = {k: [] for k in runs}
    cpu = {k: [] for k in runs}
    for k, src in enumerate(files):
        dst = os.path.join(folder, f"latency{k}.onnx")
        jobs = {"verified": [sys.executable, "-m", "rnnconvert", str(src), dst, "--force"],
                "no-verify": [sys.executable, "-m", "rnnconvert", str(src), dst, "--force", "--no-verify"]}
        if tf is not None:
            jobs["tf2onnx"] = [str(tf), "-m", "tf2onnx.convert", "--keras", str(src), "--output", dst]
        for name, cmd in jobs.items():
            wall, rss, ok = timed(cmd, tf_env if name == "tf2onnx" else env)
            (runs[name] if ok else failed[name]).append((src, wall, rss))
            cpu[name].append(CPU[tuple(cmd)])
    where = f"{len(files)} Keras files ({'wild convert cases + ' if wild and wild.is_dir() else ''}fixtures)"
    for name, label in (("verified", "verified"), ("no-verify", "--no-verify")):
        got = runs[name]
        if not got:
            rows.append(Row(f"Keras convert, fresh process, {label}: median wall", None, None, "", note="no file converted"))
            continue
        walls = [w for _, w, _ in got]
        note = (f"{where}; {len(failed[name])} failed" if failed[name] else where) + \
            f"; CPU median {statistics.median(cpu[name]):.3f} s"
        if name == "verified":
            both = {s for s, _, _ in runs["tf2onnx"]} & {s for s, _, _ in got}
            ours = statistics.median([w for s, w, _ in got if s in both]) if both else None
            theirs = statistics.median([w for s, w, _ in runs["tf2onnx"] if s in both]) if both else None
            peer = f"tf2onnx median on the {len(both)} files it converted ({len(failed['tf2onnx'])} failed)" \
                if tf is not None else "tf2onnx not run: set RNNCONVERT_TF_PYTHON to a venv python with it"
            tf_rss = max((r for _, _, r in runs["tf2onnx"]), default=None)
            rows.append(judge(Row("Keras convert, fresh process, verified: median wall", statistics.median(walls),
                                  None, "", note=note), below=0.5))
            rows.append(judge(Row("  same, vs tf2onnx (median over files both convert)", ours, theirs, peer,
                                  note="" if tf_rss is None else f"tf2onnx peak RSS max {tf_rss:.0f} MB, CPU median "
                                  f"{statistics.median(cpu['tf2onnx']):.3f} s"),
                              min_speedup=8))
            rows.append(judge(Row("  same, max wall", max(walls), None, ""), below=1.5))
            rows.append(judge(Row("  same, peak RSS (max over files)", max(r for _, _, r in got), None, "",
                                  unit="MB"), below=150))
        else:
            rows.append(judge(Row("Keras convert, fresh process, --no-verify: median wall", statistics.median(walls),
                                  None, "", note=f"max {max(walls):.3f} s; peak RSS max "
                                  f"{max(r for _, _, r in got):.0f} MB; CPU median {statistics.median(cpu[name]):.3f} s"), below=0.25))


def bench_import_help(ctx, rows):
    """`import rnnconvert.cli` + `--help` in one fresh process, beside `python -c pass`."""
    compileall.compile_dir(str(ROOT / "rnnconvert"), quiet=1)
    env = _env()
    code = "import sys\nfrom rnnconvert.cli import main\nsys.argv = ['rnnconvert', '--help']\nmain()"

    def run(*args):
        return lambda: subprocess.run([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, check=True)
    best = best_of({"pass": run("-c", "pass"), "help": run("-c", code)}, max(ctx.repeat, 5))
    rows.append(judge(Row("import rnnconvert.cli + --help (process wall, best)", best["help"], best["pass"],
                          "python -c pass"), below=0.15))
