"""The fuzz suite's per-format outcome counts, and the harness run standalone.

`check_case` is what tests/test_fuzz.py does with every case: run the reader (fuzzing.run_case), ask that
files smuggling in external data, zip bombs or impossible sizes were refused, send every 10th case
through the CLI in-process, and convert a few that read to .rnnc.  Each case ends as one of
  read     a model came back (and the CLI / conversion checks on it passed),
  refused  rnnconvert's own error, exit code 2 and a one-line message,
  escaped  anything else (uncaught exception, hang, unjustified allocation, multi-line or wrong exit code,
           a must-refuse file that was read, a written file holding the NaN/Inf a case put in its weights).
`Tally` adds them up per format; `table()` prints them, `FUZZ_REPORT=path.json` (pytest) or `--json`
(standalone) writes them as JSON.

    python -m tests.fuzz_report --cases 1000            # every format, 1000 cases each
    python -m tests.fuzz_report --cases 50 onnx rnnc    # some formats
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fuzzing import bounded_memory, run_case  # noqa: E402

MUST_REFUSE = re.compile(r"external-link|external-storage|virtual|bomb|huge(?!@)|central-size-lie|"
                         r"external (\.\./|/|sub/|link\.bin|missing)|-> (\.\./|/|a/\.\./|\.\.\\)")
CONVERT_PER_CHUNK = 10
OUTCOMES = ("read", "refused", "escaped")
TALLIES: dict = {}        # format -> Tally, filled by tests/test_fuzz.py and printed by conftest's summary hook


@dataclass
class Tally:
    """One format's counts; `escapes` keeps the first lines describing each escape."""
    cases: int = 0
    read: int = 0
    refused: int = 0
    escaped: int = 0
    cli: int = 0
    converted: int = 0
    subprocess: int = 0
    seconds: float = 0.0
    escapes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("cases", *OUTCOMES, "cli", "converted", "subprocess")} | {
            "seconds": round(self.seconds, 1), "escapes": self.escapes[:50]}


def _cli_args(path: Path, read) -> list[str]:
    name = getattr(read, "__name__", "")
    if name == "_read_plan":
        return ["batch", str(path), "--check"]
    if name == "_read_arch":
        return ["inspect", str(path.parent / "model.pt"), "--arch", str(path)]
    if name == "_read_mapping":
        return ["inspect", str(path.parent / "bare.mat"), "--mapping", str(path)]
    return ["inspect", str(path)]


def _cli_problem(runner, case) -> str | None:
    """The case through the CLI in-process: exit 0, or 2 with exactly one `rnnconvert: error:` line."""
    from rnnconvert.cli import cli
    args = _cli_args(case.path, case.read)
    res = runner.invoke(cli, args)
    err = res.stderr
    if res.exit_code in (0, 2) and (res.exit_code == 0 or (err.count("\n") == 1 and err.startswith("rnnconvert: error:"))):
        return None
    return f"CLI {args[0]} exit {res.exit_code}: {err[:300]!r}"


def _convert_problem(case, d: Path) -> str | None:
    import rnnconvert
    try:
        rnnconvert.convert(case.path, d / "out.rnnc", verify=False, force=True)
    except rnnconvert.errors.RnnConvertError as exc:
        return None if exc.exit_code == 2 else f"convert exit {exc.exit_code}"
    except Exception as exc:  # noqa: BLE001 - an escape is what is looked for
        return f"convert raised {type(exc).__name__}: {exc}"
    if "nonfinite" not in case.label:
        return None
    # NaN/Inf put into a tensor the model does not compute with (a graph's dead initializer) is dropped with it:
    # what must not happen is a written file holding it
    from rnnconvert.model.validate import nonfinite
    return "converted weights holding NaN/Inf" if nonfinite(rnnconvert.read(d / "out.rnnc")) else None


def check_case(case, workdir: Path, runner, tally: Tally, convert: bool) -> bool:
    """Run one case and count its outcome in `tally`; returns True when it was converted."""
    outcome, detail = run_case(case, workdir)
    tally.cases += 1
    problem = detail if outcome == "escape" else None
    converted = False
    if problem is None and outcome == "ok" and MUST_REFUSE.search(case.label):
        problem = "read, should have been refused"
    if problem is None and case.index % 10 == 0:
        tally.cli += 1
        problem = _cli_problem(runner, case)
    if problem is None and outcome == "ok" and convert and case.read.__name__ == "read" and case.fmt != "rnnc":
        converted = True
        tally.converted += 1
        problem = _convert_problem(case, workdir / f"{case.fmt}_{case.index}")
    if problem is not None:
        tally.escaped += 1
        tally.escapes.append(f"{case.index} {case.label}: {problem}")
    elif outcome == "ok":
        tally.read += 1
    else:
        tally.refused += 1
    return converted


def warm_up() -> None:
    """Import what the readers import, once, before any case is measured: the first case to import
    torch would otherwise be charged its ~180 MiB of peak RSS."""
    import importlib
    for name in ("torch", "onnx", "onnxruntime", "h5py", "scipy.io", "yaml", "rnnconvert.cli.commands", "rnnconvert.verification.convert",
                 "rnnconvert.batch.run", "rnnconvert.formats.keras", "rnnconvert.formats.onnx",
                 "rnnconvert.formats.torch", "rnnconvert.formats.matlab", "rnnconvert.formats.canonical"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def run_chunk(fmt_cases, workdir: Path, runner, tally: Tally) -> None:
    """Cases of one format, the first CONVERT_PER_CHUNK that read also converted to .rnnc."""
    warm_up()
    converted = 0
    t0 = time.perf_counter()
    with bounded_memory():
        for case in fmt_cases:
            converted += check_case(case, workdir, runner, tally, converted < CONVERT_PER_CHUNK)
    tally.seconds += time.perf_counter() - t0


def table(tallies: dict[str, Tally]) -> str:
    head = f"{'format':<13}{'cases':>6}{'read':>7}{'refused':>8}{'escaped':>8}{'cli':>6}{'converted':>10}" \
           f"{'subprocess':>11}{'seconds':>9}"
    lines = [head]
    total = Tally()
    for fmt, t in tallies.items():
        lines.append(f"{fmt:<13}{t.cases:>6}{t.read:>7}{t.refused:>8}{t.escaped:>8}{t.cli:>6}{t.converted:>10}"
                     f"{t.subprocess:>11}{t.seconds:>9.1f}")
        for k in ("cases", *OUTCOMES, "cli", "converted", "subprocess", "seconds"):
            setattr(total, k, getattr(total, k) + getattr(t, k))
    lines.append(f"{'total':<13}{total.cases:>6}{total.read:>7}{total.refused:>8}{total.escaped:>8}{total.cli:>6}"
                 f"{total.converted:>10}{total.subprocess:>11}{total.seconds:>9.1f}")
    for fmt, t in tallies.items():
        lines += [f"  escape {fmt} {line}"[:400] for line in t.escapes[:20]]
    return "\n".join(lines)


def write_json(tallies: dict[str, Tally], path, cases_per_format: int) -> None:
    with open(path, "w") as f:
        json.dump({"cases_per_format": cases_per_format, "formats": {k: t.to_dict() for k, t in tallies.items()}},
                  f, indent=1)


def main(argv=None) -> int:
    from click.testing import CliRunner

    from fuzz_cases import FORMATS, cases
    from fuzz_hostile import CLASSES, run_class
    p = argparse.ArgumentParser(prog="python -m tests.fuzz_report", description=__doc__.split("\n\n")[0])
    p.add_argument("formats", nargs="*", metavar="FORMAT", help=f"formats to fuzz, or hostile classes (tests/fuzz_hostile.py) to run "
                   f"(default all: {', '.join(FORMATS + CLASSES)})")
    p.add_argument("--cases", type=int, default=200, help="cases per format (default 200)")
    p.add_argument("--json", dest="json_path", help="also write the counts as JSON here")
    args = p.parse_args(argv)
    unknown = [f for f in args.formats if f not in FORMATS + CLASSES]
    if unknown:
        p.error(f"unknown format(s) {', '.join(unknown)}; known: {', '.join(FORMATS + CLASSES)}")
    try:
        runner = CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 keeps stderr apart by default
        runner = CliRunner()
    tallies: dict[str, Tally] = {}
    with tempfile.TemporaryDirectory(prefix="rnnconvert-fuzz-") as tmp:
        for fmt in args.formats or FORMATS + CLASSES:
            work = Path(tmp) / fmt
            if fmt in CLASSES:              # a hostile class: a fixed number of cases, in a worker process
                tally = tallies[fmt] = Tally()
                run_class(fmt, args.cases, work, tally)
                print(f"{fmt}: {tally.cases} cases, {tally.escaped} escaped, {tally.seconds:.1f}s", file=sys.stderr,
                      flush=True)
                continue
            all_cases = cases(fmt, args.cases, work / "seeds")
            tally = tallies[fmt] = Tally()
            for start in range(0, len(all_cases), 500):     # as the test's chunks: 10 conversions per 500
                run_chunk(all_cases[start:start + 500], work, runner, tally)
            print(f"{fmt}: {tally.cases} cases, {tally.escaped} escaped, {tally.seconds:.1f}s", file=sys.stderr,
                  flush=True)
    print(table(tallies))
    if args.json_path:
        write_json(tallies, args.json_path, args.cases)
    return 1 if any(t.escaped for t in tallies.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
