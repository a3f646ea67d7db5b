"""Fuzz cases for every reader: seed files, mutators, and a runner that sorts each case's outcome.

A case is (label, bytes or a builder) made deterministically from a seed and an index; `run_case`
writes it into a work directory, calls the reader in-process under a per-case time limit and returns
one of: "ok" (a model came back), "refused" (an RnnConvertError with exit code 2 and a message) or
"escape: ..." (anything else: an uncaught exception, a hang past the limit, an empty message).
`python tests/fuzzing.py [N]` runs the readers alone (no CLI or conversion checks); `python -m
tests.fuzz_report --cases N` runs what tests/test_fuzz.py runs and prints its per-format table.
"""
from __future__ import annotations

import faulthandler
import json
import os
import resource
import signal
import struct
import sys
import time
import traceback
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIXTURES = ROOT / "fixtures"
CASE_SECONDS = 10.0            # per-case time limit (a hang is an escape)
# A case may not grow peak RSS by more than this plus ALLOC_PER_BYTE times its file size.
RSS_SLACK = 96 << 20
ALLOC_PER_BYTE = 64
TRACED_LIMIT = 16 << 20          # "huge" cases (tracemalloc on): at most this plus ALLOC_PER_BYTE per file byte


class CaseTimeout(BaseException):
    """Raised by the alarm: a BaseException, so no reader's `except Exception` can swallow it."""


_fired = []       # set by the alarm: a reader that catches CaseTimeout and answers anyway still took too long


def _alarm(signum, frame):
    _fired.append(True)
    raise CaseTimeout()


@dataclass
class Case:
    fmt: str
    index: int
    label: str
    make: Callable[[Path], Path]     # writes the case into a directory, returns the path to read
    read: Callable[[Path], object]   # how the case is read (rnnconvert.read with its options)
    huge: bool = False               # a case declaring sizes its file cannot hold: memory is measured


def evil_values(rng):
    """Values of the wrong type, size or sign for any JSON/YAML slot."""
    choices = [None, True, False, 0, -1, 1, 3, 2 ** 31, 2 ** 63, -2 ** 63, 10 ** 30, 1.5, -0.0, 1e308,
               float("nan"), float("inf"), "", "x", "lstm", "A" * 300, "../../etc/passwd", [], [1, 2],
               [None], {}, {"a": 1}, {"class_name": None}, [[1, 2], [3]]]
    return choices[int(rng.integers(len(choices)))]


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def mutate_tree(obj, rng, times: int = 1):
    """A deep copy of a JSON-like tree with `times` random edits: delete, replace with a wrong-typed
    value, add an extra key, scale an integer (inconsistent sizes), swap a string."""
    obj = json.loads(json.dumps(obj))
    for _ in range(times):
        paths = list(_paths(obj))
        path = paths[int(rng.integers(len(paths)))]
        if not path:
            obj = evil_values(rng) if rng.random() < 0.3 else obj
            if not isinstance(obj, (dict, list)):
                return obj
            continue
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        op = rng.integers(6)
        value = parent[key]
        if op == 0:
            del parent[key]
        elif op == 1 or op == 5:
            parent[key] = evil_values(rng)
        elif op == 2 and isinstance(parent, dict):
            parent[f"extra_{int(rng.integers(100))}"] = evil_values(rng)
        elif op == 3 and isinstance(value, int) and not isinstance(value, bool):
            parent[key] = int(value * [0, 2, 1000, -1][int(rng.integers(4))] + int(rng.integers(-1, 2)))
        elif op == 4 and isinstance(value, str):
            parent[key] = ["tanh", "relu", "sigmoid", "LSTM", "GRU", "Dense", "", value[::-1]][int(rng.integers(8))]
        else:
            parent[key] = evil_values(rng)
    return obj


def mutate_bytes(data: bytes, rng) -> tuple[str, bytes]:
    """One of: truncation, bit flips, random overwrite, huge integers, zeroed span, insertion, deletion."""
    n = len(data)
    op = int(rng.integers(7))
    b = bytearray(data)
    if op == 0:
        cut = int(rng.integers(0, n))
        return f"truncate@{cut}", bytes(b[:cut])
    if op == 1:
        k = int(rng.integers(1, 17))
        for _ in range(k):
            i = int(rng.integers(n))
            b[i] ^= 1 << int(rng.integers(8))
        return f"flip{k}", bytes(b)
    if op == 2:
        i, m = int(rng.integers(n)), int(rng.integers(1, 64))
        b[i:i + m] = rng.integers(0, 256, m, dtype=np.uint8).tobytes()
        return f"overwrite@{i}+{m}", bytes(b[:n])
    if op == 3:
        i = int(rng.integers(max(1, n - 8))) & ~3
        big = [b"\xff" * 8, struct.pack("<Q", 2 ** 40), struct.pack("<I", 2 ** 31 - 1) * 2,
               struct.pack(">Q", 2 ** 40)][int(rng.integers(4))]
        b[i:i + 8] = big
        return f"huge@{i}", bytes(b[:n])
    if op == 4:
        i, m = int(rng.integers(n)), int(rng.integers(1, 256))
        b[i:i + m] = bytes(min(m, n - i))
        return f"zero@{i}+{m}", bytes(b)
    if op == 5:
        i, j = sorted(int(x) for x in rng.integers(0, n, 2))
        return f"dup@{i}:{j}", bytes(b[:j] + b[i:j] + b[j:])
    i, m = int(rng.integers(n)), int(rng.integers(1, 512))
    return f"delete@{i}+{m}", bytes(b[:i] + b[i + m:])


def structured_random(rng, magic: bytes = b"") -> bytes:
    """Random bytes, optionally behind a format's magic number, of a random small size."""
    n = int(rng.integers(0, 4096))
    return magic + rng.integers(0, 256, n, dtype=np.uint8).tobytes()


# ------------------------------------------------------------------------------------ running

ADDRESS_SPACE_LIMIT = 8 << 30    # a runaway allocation fails as MemoryError (an escape), not the OOM killer


class bounded_memory:
    """Cap this process's address space while fuzzing (restored on exit)."""

    def __enter__(self):
        self.old = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_LIMIT, self.old[1]))
        return self

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_AS, self.old)


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_case(case: Case, workdir: Path) -> tuple[str, str]:
    """(outcome, detail): outcome is "ok", "refused" or "escape"."""
    from rnnconvert.errors import RnnConvertError
    d = workdir / f"{case.fmt}_{case.index}"
    d.mkdir(parents=True, exist_ok=True)
    path = case.make(d)                    # made before the clock starts: only the reader is timed
    if isinstance(path, tuple):            # a structural mutation names itself when it is made
        path, label = path
        case.label = f"{case.label} {label}"
        case.huge = case.huge or "huge" in label or "bomb" in label
    case.path = path
    _fired.clear()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    # a hang inside C code never returns to the interpreter for the alarm: dump stacks and exit
    faulthandler.dump_traceback_later(3 * CASE_SECONDS, exit=True)
    before = peak_rss()
    if case.huge:                        # declared sizes the file cannot hold: trace Python/numpy allocations
        tracemalloc.start()
    try:
        size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        t0 = time.perf_counter()
        try:
            case.read(path)
            outcome, detail = "ok", ""
        except RnnConvertError as exc:
            message = exc.format()
            if exc.exit_code != 2 or not exc.message.strip() or "\n" in message:
                outcome, detail = "escape", f"bad error {type(exc).__name__} exit {exc.exit_code}: {message!r}"
            else:
                outcome, detail = "refused", f"{type(exc).__name__}: {message}"
        elapsed = time.perf_counter() - t0
        grown = peak_rss() - before
        traced = tracemalloc.get_traced_memory()[1] if case.huge else 0
        if _fired:                        # the alarm fired but a reader caught it and answered late
            outcome, detail = "escape", f"answered after the {CASE_SECONDS}s limit ({elapsed:.1f}s): {detail}"
        elif grown > RSS_SLACK + ALLOC_PER_BYTE * size:
            outcome, detail = "escape", f"peak RSS grew {grown >> 20} MiB for {size} bytes of file; {detail}"
        elif traced > TRACED_LIMIT + ALLOC_PER_BYTE * size:
            outcome, detail = "escape", f"allocated {traced >> 20} MiB for {size} bytes of file; {detail}"
        return outcome, detail + f" [{elapsed:.3f}s]"
    except CaseTimeout:
        return "escape", f"hang: more than {CASE_SECONDS}s"
    except Exception as exc:  # noqa: BLE001 - what the suite is looking for
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb) if "rnnconvert" in f.filename),
                     "?")
        return "escape", f"{type(exc).__name__} at {where}: {str(exc)[:300]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        tracemalloc.stop()
        signal.signal(signal.SIGALRM, old)


def summarize(results) -> dict:
    return dict(Counter(outcome for outcome, _ in results))


def main(argv):
    import tempfile

    from fuzz_cases import FORMATS, cases
    n = int(argv[1]) if len(argv) > 1 else 200
    only = argv[2:] or list(FORMATS)
    with tempfile.TemporaryDirectory() as tmp, bounded_memory():
        for fmt in only:
            t0 = time.time()
            results = []
            for c in cases(fmt, n, Path(tmp) / "seeds"):
                if os.environ.get("FUZZ_TRACE"):
                    print("  case", c.index, flush=True)
                results.append((c, run_case(c, Path(tmp))))
            counts = summarize([r for _, r in results])
            print(f"{fmt:12s} {len(results):5d} cases {time.time() - t0:6.1f}s {counts}", flush=True)
            for c, (outcome, detail) in results:
                if outcome == "escape":
                    print(f"   {c.index} {c.label}: {detail}"[:400], flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main(sys.argv)
