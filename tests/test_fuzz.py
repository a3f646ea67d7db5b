"""Every reader fuzzed: mutated fixtures and random files (tests/fuzz_cases.py, fuzz_formats.py), seeded.

Each case must end in a model or in rnnconvert's own error (exit code 2, one line, a message) within
the per-case time limit and without growing peak RSS past what the file's size justifies; cases that
smuggle in external files, zip bombs or sizes the file cannot hold must be refused, never read.
A subset of the cases that read is converted to .rnnc in-process (NaN/Inf weights must be refused
there); every 10th case also goes through the CLI in-process (CliRunner) and a few per format through
a real `python -m rnnconvert inspect` subprocess.  FUZZ_CASES=N sets the cases per format (default 200; CI may raise it).
The hostile classes of tests/fuzz_hostile.py (names, special files, signals, depth, DAGs, aliasing, declared
sizes) run beside them in a worker process, a fixed number of cases each whatever FUZZ_CASES says (at most it).
The counts per format (read / refused / escaped, tests/fuzz_report.py) are printed as one table at the end
of the pytest run and written as JSON to $FUZZ_REPORT if set; `python -m tests.fuzz_report --cases N`
runs the same harness without pytest.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_cases import FORMATS, cases  # noqa: E402
from fuzz_report import TALLIES, Tally, _cli_args, run_chunk  # noqa: E402
from fuzzing import ROOT, run_case  # noqa: E402

pytestmark = pytest.mark.slow     # run by .ci/run after the README's test command

N = int(os.environ.get("FUZZ_CASES", "200"))
CHUNK = 500
CLI_SUBPROCESS = int(os.environ.get("FUZZ_CLI", "3"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("fmt,start", [(f, s) for f in FORMATS for s in range(0, N, CHUNK)],
                         ids=[f"{f}-{s}:{min(s + CHUNK, N)}" for f in FORMATS for s in range(0, N, CHUNK)])
def test_reader_survives_fuzzing(fmt, start, workdir, runner):
    tally = TALLIES.setdefault(fmt, Tally())
    before = len(tally.escapes)
    run_chunk(cases(fmt, N, workdir / "seeds")[start:start + CHUNK], workdir, runner, tally)
    escapes = tally.escapes[before:]
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
        args = _cli_args(path, case.read)
        res = subprocess.run([sys.executable, "-m", "rnnconvert", *args], capture_output=True, text=True,
                             env=env, timeout=120)
        assert res.returncode in (0, 2), (case.label, res.stderr)
        assert "Traceback" not in res.stderr
        if res.returncode == 2:
            assert res.stderr.startswith("rnnconvert: error: ") and res.stderr.count("\n") == 1, res.stderr
        TALLIES.setdefault(fmt, Tally()).subprocess += 1


def test_the_harness_catches_every_kind_of_escape(workdir, monkeypatch):
    """run_case itself: an uncaught exception, a hang, a refusal after the time limit, an unjustified
    allocation and a multi-line error are escapes; rnnconvert's own one-line error is a refusal."""
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

    def swallow(p):              # a reader that catches the alarm (as h5py's visit callbacks do) and refuses late
        try:
            spin(p)
        except BaseException:
            raise InputError("damaged", path=str(p)) from None

    def hog(_):
        a = np.ones(200 << 20, np.uint8)
        return a.sum()
    readers = {"bug": lambda p: raise_(ValueError("boom")), "hang": spin, "late": swallow, "hog": hog,
               "two lines": lambda p: raise_(InputError("a\nb", path=str(p))),
               "refusal": lambda p: raise_(InputError("bad file", path=str(p)))}
    got = {k: run_case(Case("harness", i, k, make, r, huge=True), workdir)[0] for i, (k, r) in enumerate(readers.items())}
    assert got == {"bug": "escape", "hang": "escape", "late": "escape", "hog": "escape", "two lines": "escape",
                   "refusal": "refused"}


def test_the_tally_sorts_every_case(workdir, runner):
    """check_case: a model is "read", rnnconvert's own error "refused"; a must-refuse file that reads, a
    bug and a multi-line error are "escaped", each with a line naming the case."""
    from fuzz_report import check_case, table

    from fuzzing import Case
    from rnnconvert.errors import InputError

    def make(d):
        (d / "f.bin").write_bytes(b"x")
        return d / "f.bin"

    def raise_(exc):
        raise exc

    def fine(p):
        return "a model"
    readers = [("fine", fine), ("bomb member", fine), ("refusal", lambda p: raise_(InputError("bad", path=str(p)))),
               ("bug", lambda p: raise_(KeyError("k"))), ("two lines", lambda p: raise_(InputError("a\nb")))]
    tally = Tally()
    for i, (label, read) in enumerate(readers):
        check_case(Case("tally", 1 + i, label, make, read), workdir, runner, tally, convert=False)
    assert (tally.cases, tally.read, tally.refused, tally.escaped, tally.cli) == (5, 1, 1, 3, 0)
    assert [e.split(":")[0] for e in tally.escapes] == ["2 bomb member", "4 bug", "5 two lines"]
    assert table({"tally": tally}).splitlines()[1].split()[:5] == ["tally", "5", "1", "1", "3"]


# ------------------------------------------------------------------------------------ hostile classes

from fuzz_hostile import CLASSES, Worker, hostile_cases, run_class  # noqa: E402


@pytest.fixture(scope="module")
def hostile_worker():
    worker = Worker()
    yield worker
    worker.close()


@pytest.mark.parametrize("cls", CLASSES)
def test_hostile_class(cls, workdir, hostile_worker):
    """Files and command lines made as an attacker makes them (tests/fuzz_hostile.py): each case, run in a
    worker process, ends read or refused (exit 2, one line) in bounded time and memory, runs no payload,
    changes nothing outside its folder and leaves no temporary or process behind."""
    tally = TALLIES.setdefault(cls, Tally())
    before = len(tally.escapes)
    run_class(cls, N, workdir / cls, tally, hostile_worker)
    escapes = tally.escapes[before:]
    assert not escapes, "\n".join(escapes[:30])


@pytest.mark.parametrize("cls,first", [("depth", 11), ("dag", 4), ("alias", 6), ("sizes", 6)])
def test_hostile_files_are_the_same_bytes_every_time(cls, first, tmp_path):
    """A case is made from (class, index) alone: two makes give the same file, byte for byte (seed files
    copied beside it, such as a plan's model, are not the case)."""
    made = []
    for run in ("a", "b"):
        files = {}
        for case in hostile_cases(cls, first, tmp_path / run / "seeds")[:first]:
            d = tmp_path / run / str(case.index)
            d.mkdir(parents=True)
            path = case.make(d)
            path = path[0] if isinstance(path, tuple) else path
            files[f"{case.index} {case.label}"] = path.read_bytes()
        made.append(files)
    assert made[0].keys() == made[1].keys() and len(made[0]) == first
    assert [k for k in made[0] if made[0][k] != made[1][k]] == []


def test_a_worker_that_dies_is_an_escape(tmp_path):
    """The worker's death (here: a class it does not know) is an escape naming how it died, and the next
    case gets a fresh worker."""
    worker = Worker()
    try:
        outcome, detail, label = worker.run("no-such-class", 0, 1, tmp_path)
        assert (outcome, label) == ("escape", None) and detail.startswith("the process died: exit 1")
        outcome, _, label = worker.run("depth", 0, 1, tmp_path)
        assert outcome in ("ok", "refused") and label == "safetensors depth 10 dict"
    finally:
        worker.close()
