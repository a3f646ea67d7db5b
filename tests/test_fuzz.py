"""Every reader fuzzed: mutated fixtures and random files (tests/fuzz_cases.py, fuzz_formats.py), seeded.

Each case must end in a model or in rnnconvert's own error (exit code 2, one line, a message) within
the per-case time limit and without growing peak RSS past what the file's size justifies; cases that
smuggle in external files, zip bombs or sizes the file cannot hold must be refused, never read.
A subset of the cases that read is converted to .rnnc in-process (NaN/Inf weights must be refused
there); every 10th case also goes through the CLI in-process (CliRunner) and a few per format through
a real `python -m rnnconvert inspect` subprocess.  FUZZ_CASES=N sets the cases per format (default 200; CI may raise it).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_cases import FORMATS, cases  # noqa: E402
from fuzzing import ROOT, bounded_memory, run_case  # noqa: E402

N = int(os.environ.get("FUZZ_CASES", "200"))
CHUNK = 500
CLI_SUBPROCESS = int(os.environ.get("FUZZ_CLI", "3"))
MUST_REFUSE = re.compile(r"external-link|external-storage|virtual|bomb|huge(?!@)|central-size-lie|"
                         r"external (\.\./|/|sub/|link\.bin|missing)|-> (\.\./|/|a/\.\./|\.\.\\)")
RESULTS: dict[str, dict] = {}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _cli_check(runner, path, read):
    """The same case through the CLI: exit 0 or 2, and on 2 exactly one line on stderr."""
    from rnnconvert.cli import cli
    if read.__name__ in ("_read_plan",):
        args = ["batch", str(path), "--check"]
    elif read.__name__ == "_read_arch":
        args = ["inspect", str(path.parent / "model.pt"), "--arch", str(path)]
    elif read.__name__ == "_read_mapping":
        args = ["inspect", str(path.parent / "bare.mat"), "--mapping", str(path)]
    else:
        args = ["inspect", str(path)]
    res = runner.invoke(cli, args)
    return res.exit_code, res.stderr, args


@pytest.mark.parametrize("fmt,start", [(f, s) for f in FORMATS for s in range(0, N, CHUNK)],
                         ids=[f"{f}-{s}:{min(s + CHUNK, N)}" for f in FORMATS for s in range(0, N, CHUNK)])
def test_reader_survives_fuzzing(fmt, start, workdir, runner):
    import rnnconvert
    all_cases = cases(fmt, N, workdir / "seeds")[start:start + CHUNK]
    counts = RESULTS.setdefault(fmt, {"cases": 0, "ok": 0, "refused": 0, "converted": 0, "cli": 0})
    escapes, converted = [], 0
    with bounded_memory():
        for case in all_cases:
            outcome, detail = run_case(case, workdir)
            counts["cases"] += 1
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome == "escape":
                escapes.append(f"{case.index} {case.label}: {detail}")
                continue
            if outcome == "ok" and MUST_REFUSE.search(case.label):
                escapes.append(f"{case.index} {case.label}: read, should have been refused")
            d, path = workdir / f"{case.fmt}_{case.index}", case.path
            if case.index % 10 == 0:
                code, err, args = _cli_check(runner, path, case.read)
                counts["cli"] += 1
                if code not in (0, 2) or (code == 2 and (err.count("\n") != 1 or not err.startswith("rnnconvert: error:"))):
                    escapes.append(f"{case.index} {case.label}: CLI {' '.join(args[:1])} exit {code}: {err[:300]!r}")
            if outcome == "ok" and converted < 10 and case.read.__name__ == "read" and fmt != "rnnc":
                converted += 1
                counts["converted"] += 1
                try:
                    rnnconvert.convert(path, d / "out.rnnc", verify=False, force=True)
                    if "nonfinite" in case.label:
                        escapes.append(f"{case.index} {case.label}: converted weights holding NaN/Inf")
                except rnnconvert.errors.RnnConvertError as exc:
                    if exc.exit_code != 2:
                        escapes.append(f"{case.index} {case.label}: convert exit {exc.exit_code}")
                except Exception as exc:  # noqa: BLE001 - an escape is what is looked for
                    escapes.append(f"{case.index} {case.label}: convert raised {type(exc).__name__}: {exc}")
    print(f"\n{fmt} {start}:{start + len(all_cases)}: {counts}")
    assert not escapes, "\n".join(escapes[:30])


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_subprocess_on_fuzzed_files(fmt, workdir):
    """A few fuzzed files through a real `python -m rnnconvert` process: exit 0 or 2, one line, no traceback."""
    picked = [c for c in cases(fmt, N, workdir / "seeds")][1:CLI_SUBPROCESS * 7:7]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for case in picked:
        d = workdir / f"sub_{fmt}_{case.index}"
        d.mkdir(exist_ok=True)
        path = case.make(d)
        path = path[0] if isinstance(path, tuple) else path
        from rnnconvert.cli import cli  # noqa: F401 - argument shapes as in _cli_check
        args = {"_read_plan": ["batch", str(path), "--check"],
                "_read_arch": ["inspect", str(path.parent / "model.pt"), "--arch", str(path)],
                "_read_mapping": ["inspect", str(path.parent / "bare.mat"), "--mapping", str(path)]
                }.get(case.read.__name__, ["inspect", str(path)])
        res = subprocess.run([sys.executable, "-m", "rnnconvert", *args], capture_output=True, text=True,
                             env=env, timeout=120)
        assert res.returncode in (0, 2), (case.label, res.stderr)
        assert "Traceback" not in res.stderr
        if res.returncode == 2:
            assert res.stderr.startswith("rnnconvert: error: ") and res.stderr.count("\n") == 1, res.stderr
        RESULTS.setdefault(fmt, {}).setdefault("subprocess", 0)
        RESULTS[fmt]["subprocess"] += 1


def test_fuzz_summary():
    """Prints the per-format table (run with -s); fails if a format ran no cases."""
    print("\nformat        cases     ok  refused  escapes  converted  cli  subprocess")
    for fmt in FORMATS:
        r = RESULTS.get(fmt, {})
        print(f"{fmt:12s} {r.get('cases', 0):6d} {r.get('ok', 0):6d} {r.get('refused', 0):8d} "
              f"{r.get('escape', 0):8d} {r.get('converted', 0):10d} {r.get('cli', 0):4d} {r.get('subprocess', 0):11d}")
    if RESULTS:
        assert all(RESULTS.get(f, {}).get("cases", 0) for f in FORMATS if f in RESULTS)


def test_the_harness_catches_every_kind_of_escape(workdir, monkeypatch):
    """run_case itself: an uncaught exception, a hang, an unjustified allocation and a multi-line
    error are escapes; rnnconvert's own one-line error is a refusal."""
    import time

    import numpy as np

    import fuzzing
    from fuzzing import Case
    from rnnconvert.errors import InputError
    monkeypatch.setattr(fuzzing, "CASE_SECONDS", 3.0)

    def make(d):
        (d / "f.bin").write_bytes(b"x")
        return d / "f.bin"

    def raise_(exc):
        raise exc

    def spin(_):
        while True:
            time.sleep(0.01)

    def hog(_):
        a = np.ones(200 << 20, np.uint8)
        return a.sum()
    readers = {"bug": lambda p: raise_(ValueError("boom")), "hang": spin, "hog": hog,
               "two lines": lambda p: raise_(InputError("a\nb", path=str(p))),
               "refusal": lambda p: raise_(InputError("bad file", path=str(p)))}
    got = {k: run_case(Case("harness", i, k, make, r, huge=True), workdir)[0] for i, (k, r) in enumerate(readers.items())}
    assert got == {"bug": "escape", "hang": "escape", "hog": "escape", "two lines": "escape", "refusal": "refused"}
