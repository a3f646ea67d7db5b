"""Issue 21, the command line's own inputs: signals, verification that cannot be empty or infinite,
--inputs / --seed / --atol / NUL bytes, and stderr carrying rnnconvert's lines only.

The files come from `tests/hostile_cli.py`.  Signals are sent to a real `python -m rnnconvert` process
(its own session, so that every process it started can be found by process group in /proc) once its
temporary folder exists; the end checked is the exit code (128 + signal), one line on stderr, no
temporary left, no destination installed and no process of the group alive.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import hostile_cli as hostile
import rnnconvert
from rnnconvert.cli import cli

# subprocesses import the rnnconvert under test
ENV = {**os.environ, "PYTHONPATH": str(Path(rnnconvert.__file__).parent.parent), "KERAS_BACKEND": "torch"}


def _error(res) -> str:
    return res.stderr.strip()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile_cli")
    src, wrong = hostile.overflow_pair(d)
    return {"small": hostile.small_model(d), "slow": hostile.slow_model(d), "overflow": src,
            "overflow_wrong": wrong, "empty_vectors": hostile.empty_vectors(d), "dir": d}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------------------------- signals

def _group_alive(pgid: int, zombies: bool = False) -> list[str]:
    """Processes of group `pgid` still running (zombies excluded unless `zombies`), as 'pid cmdline'."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()     # state, ppid, pgrp, ...
            if int(fields[2]) == pgid and (zombies or fields[0] != "Z"):
                alive.append(f"{entry} {Path(f'/proc/{entry}/cmdline').read_bytes()[:120]!r}")
        except (OSError, ValueError):
            continue
    return alive


def _wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _signalled(args, cwd: Path, ready, sig, group: bool = False,
               left: list | None = None) -> subprocess.CompletedProcess:
    """Run `python -m rnnconvert ARGS` in its own session; once `ready(pid)` send `sig` (to the whole process
    group if `group`, as Ctrl-C does); wait for the end and for every process of its group (whose id is pid)
    to be gone.  `left` receives the processes of the group, zombies included, at the moment the parent ended."""
    proc = subprocess.Popen([sys.executable, "-m", "rnnconvert", *args], cwd=cwd, env=ENV, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: ready(proc.pid) or proc.poll() is not None, 300, "the moment to signal")
        assert proc.poll() is None, f"finished before the signal: {proc.communicate()}"
        (os.killpg if group else os.kill)(proc.pid, sig)
        out, err = proc.communicate(timeout=120)
        if left is not None:
            left.extend(_group_alive(proc.pid, zombies=True))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _wait_for(lambda: not _group_alive(proc.pid), 30, f"the group's processes to end: {_group_alive(proc.pid)}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_mid_conversion_removes_the_temporary_and_exits_128_plus_signal(files, tmp_path, sig):
    out = tmp_path / "out"
    out.mkdir()
    res = _signalled([files["slow"], str(out / "slow.onnx")], tmp_path,
                     lambda pid: any(p.name.endswith(".tmp") for p in out.iterdir()), sig)
    assert res.returncode == 128 + sig
    assert res.stderr == f"rnnconvert: stopped by {sig.name}; temporary files removed, exit {128 + sig}\n"
    assert list(out.iterdir()) == []          # no temporary folder, no destination


def _group_runs(pgid: int, name: str) -> bool:
    """Is a process called `name` running in group `pgid`?"""
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and Path(f"/proc/{pid}/comm").read_text().strip() == name \
                    and os.getpgid(int(pid)) == pgid:
                return True
        except OSError:
            continue
    return False


def test_sigterm_while_verification_runs_node_ends_node_too(files, tmp_path):
    """The ES module's runtime (node) is a child process: it ends with rnnconvert, not after it."""
    import shutil
    if not shutil.which("node"):
        pytest.fail("node is not installed; the JS runtime is part of the test environment")
    out = tmp_path / "out"
    out.mkdir()
    res = _signalled([files["slow"], str(out / "m.mjs")], tmp_path, lambda pid: _group_runs(pid, "node"),
                     signal.SIGTERM)
    assert res.returncode == 143, res.stderr
    assert res.stderr == "rnnconvert: stopped by SIGTERM; temporary files removed, exit 143\n"
    assert list(out.iterdir()) == []


def test_sigterm_to_batch_stops_its_workers_and_installs_nothing(files, tmp_path):
    import shutil
    shutil.copy(files["slow"], tmp_path / "slow.rnnc")
    (tmp_path / "plan.yaml").write_text("jobs:\n  - src: slow.rnnc\n    dst: [out/a.onnx, out/b.onnx]\n")
    out = tmp_path / "out"

    def both_started(pid):      # out/ is made only on install: the temporaries sit in its nearest folder
        return sum(p.name.endswith(".tmp") for p in tmp_path.iterdir()) == 2
    processes: list = []
    res = _signalled(["batch", "plan.yaml", "-j2"], tmp_path, both_started, signal.SIGTERM, left=processes)
    assert res.returncode == 143, res.stderr
    assert res.stderr == "rnnconvert: stopped by SIGTERM; temporary files removed, exit 143\n"
    assert processes == []          # workers and multiprocessing's resource tracker reaped, not left to init
    left = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert left == [] and not out.exists()    # both workers removed their temporaries, neither installed
    time.sleep(3)                             # no worker goes on to install after the parent ended
    assert not out.exists()


def _workers_starting(pgid: int) -> bool:
    """Has the batch started a worker (a spawned interpreter of group `pgid`)?"""
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.getpgid(int(pid)) == pgid \
                    and b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_ctrl_c_while_batch_workers_start_is_one_line(files, tmp_path):
    """Ctrl-C reaches the whole process group, workers still importing included: a worker started with the
    signals blocked takes it once its handler is installed, so no KeyboardInterrupt traceback is printed."""
    import shutil
    shutil.copy(files["slow"], tmp_path / "slow.rnnc")
    (tmp_path / "plan.yaml").write_text("jobs:\n  - src: slow.rnnc\n    dst: [out/a.onnx, out/b.onnx]\n")
    processes: list = []
    res = _signalled(["batch", "plan.yaml", "-j2"], tmp_path, _workers_starting, signal.SIGINT, group=True,
                     left=processes)
    assert res.returncode == 130, res.stderr
    assert res.stderr == "rnnconvert: stopped by SIGINT; temporary files removed, exit 130\n"
    assert processes == []
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == [] and not (tmp_path / "out").exists()


TEARDOWN_SIGNAL = """
import os, signal, sys, time
from rnnconvert.cli import main
class Late:             # sends SIGINT from the interpreter's teardown, after the signal module's own
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
late = Late()
sys.argv = ["rnnconvert", "formats"]
main()
"""


def test_a_signal_during_the_interpreters_teardown_leaves_the_finished_runs_exit_code():
    """Python resets a signal handled in Python to the default action while it shuts down: a Ctrl-C in the
    seconds of torch's teardown killed a finished conversion (exit -2).  The run is over: exit 0."""
    res = subprocess.run([sys.executable, "-c", TEARDOWN_SIGNAL], env=ENV, capture_output=True, text=True,
                         timeout=60)
    assert (res.returncode, res.stderr) == (0, "")
    assert "onnxruntime" in res.stdout


def test_ctrl_c_while_the_cli_is_imported_is_one_line(tmp_path):
    """`python -m rnnconvert` handles the signals before importing the CLI (click, rnnconvert.cli.commands)."""
    (tmp_path / "click.py").write_text(       # Ctrl-C during `import click`, which then imports the real click
        "import importlib, os, signal, sys, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(0.5)\n"
        f"sys.path.remove({str(tmp_path)!r})\ndel sys.modules['click']\n"
        "sys.modules['click'] = importlib.import_module('click')\n")
    env = {**ENV, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ENV['PYTHONPATH']}"}
    res = subprocess.run([sys.executable, "-m", "rnnconvert", "formats"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert (res.returncode, res.stderr) == (130, "rnnconvert: stopped by SIGINT; temporary files removed, exit 130\n")


HIDDEN_SIGNAL = """
import signal, sys
import h5py
from rnnconvert.files import interrupt
from rnnconvert.cli import main
def walk(self, fn):     # SIGTERM's handler raising while h5py's lock returns, as measured with a real SIGTERM
    try:
        interrupt.disarm()
        raise interrupt.Interrupted(signal.SIGTERM)
    except interrupt.Interrupted as exc:
        raise SystemError("<cyfunction FastRLock.__exit__> returned a result with an exception set") from exc
h5py.Group.visititems_links = walk
sys.argv = ["rnnconvert", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", [["inspect"], ["batch"]], ids=["inspect", "batch"])
def test_a_signal_that_surfaces_as_another_error_ends_the_run_as_the_signal(tmp_path, command):
    """A signal raised while a C extension returns comes out as SystemError, which the HDF5 check reported as a
    damaged file (exit 2: `its object tree cannot be walked (<cyfunction FastRLock.__exit__ ...> returned a
    result with an exception set)`, seen with SIGTERM 0.15 s into a conversion); batch took it as one failed job."""
    import shutil
    shutil.copy(Path(rnnconvert.__file__).parent.parent / "fixtures/keras3/lstm_last_softmax/model.h5", tmp_path)
    (tmp_path / "plan.yaml").write_text("jobs:\n  - src: model.h5\n    dst: [out/a.rnnc, out/b.rnnc]\n")
    args = ["inspect", "model.h5"] if command == ["inspect"] else ["batch", "plan.yaml", "-j1"]
    res = subprocess.run([sys.executable, "-c", HIDDEN_SIGNAL, *args], cwd=tmp_path, env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert (res.returncode, res.stderr) == (143, "rnnconvert: stopped by SIGTERM; temporary files removed, exit 143\n")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------- verification rules

def test_float32_overflow_allows_no_error(runner, files):
    """Old rule: the float32 pass overflowing on the 300-step input made the noise allowance infinite, so an
    error of 8e89 there passed (exit 0).  Now such noise allows nothing."""
    res = runner.invoke(cli, ["verify", files["overflow"], files["overflow_wrong"]])
    assert res.exit_code == 1, res.output + res.stderr
    assert "reference(dst)       seeded b2 t300" in res.stderr and "FAIL" in res.stderr
    assert ("note: on seeded b2 t300 the float32 reference pass overflows (inf or NaN where float64 is finite): "
            "no noise allowance, atol and rtol alone") in res.stderr
    assert "NOT EQUIVALENT: reference(dst) on seeded b2 t300: max abs error 8.44e+89" in _error(res)


def test_float32_overflow_still_passes_an_exact_copy(runner, files, tmp_path):
    import shutil
    copy = tmp_path / "copy.rnnc"
    shutil.copy(files["overflow"], copy)
    res = runner.invoke(cli, ["verify", files["overflow"], str(copy), "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.stderr
    import json
    report = json.loads((tmp_path / "r.json").read_text())
    noise = {i["label"]: i["float32_noise"] for i in report["inputs"]}
    assert noise["seeded b2 t300"] is None and noise["seeded b3 t7"] == 0.0


def test_noise_rule_by_itself():
    from rnnconvert.verification.checks import compare, noise_between
    expected = np.array([1e40, 1.0])
    noise = noise_between(np.array([np.inf, 1.0], np.float32), expected)
    assert noise == np.inf
    assert not compare(expected + 1e39, expected, {"atol": 1e-4, "rtol": 1e-4}, "o", "x", noise).passed
    assert compare(expected, expected, {"atol": 1e-4, "rtol": 1e-4}, "o", "x", noise).passed


def test_empty_vectors_check_nothing(runner, files):
    res = runner.invoke(cli, ["verify", files["small"], "--vectors", files["empty_vectors"]])
    assert res.exit_code == 2
    assert _error(res) == (f"rnnconvert: error: {files['empty_vectors']}: nothing was checked: the vectors index "
                           "lists no vector; write vectors with --emit-vectors DIR")


def test_conversion_whose_only_oracle_is_missing_checks_nothing(runner, files, tmp_path, monkeypatch):
    """A write-only format (ES module) whose runtime (node) is not on PATH: zero checks, exit 2, no DST."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    dst, report = tmp_path / "m.mjs", tmp_path / "r.json"
    res = runner.invoke(cli, [files["small"], str(dst), "--report", str(report)])
    assert res.exit_code == 2, res.output
    assert _error(res) == (f"rnnconvert: error: {dst}: nothing was checked: not run: node(dst): node is not on PATH; "
                           "install what is missing, or pass --no-verify to convert without verification")
    import json
    written = json.loads(report.read_text())
    assert written["passed"] is False and written["checks"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_batch_job_that_checks_nothing_is_bad_input(runner, files, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    (tmp_path / "plan.yaml").write_text(f"jobs:\n  - src: {files['small']}\n    dst: m.mjs\n")
    res = runner.invoke(cli, ["batch", str(tmp_path / "plan.yaml"), "-j1"])
    assert res.exit_code == 2
    assert "nothing was checked: not run: node(dst): node is not on PATH" in res.stderr
    assert not (tmp_path / "m.mjs").exists()


# ------------------------------------------------------------------------------ usage: tolerances, seed

@pytest.mark.parametrize("option,value", [("--atol", "nan"), ("--atol", "-1"), ("--atol", "inf"),
                                          ("--rtol", "-1e-3"), ("--rtol", "NaN"), ("--atol", "abc")])
def test_tolerance_must_be_finite_and_not_negative(runner, files, tmp_path, option, value):
    dst = tmp_path / "m.onnx"
    res = runner.invoke(cli, [files["small"], str(dst), option, value])
    assert res.exit_code == 2
    assert _error(res) == f"rnnconvert: error: {option} {value}: a tolerance must be a finite number >= 0"
    assert list(tmp_path.iterdir()) == []


def test_tolerance_in_the_api_and_in_a_plan(runner, files, tmp_path):
    from rnnconvert.errors import InputError
    from rnnconvert.verification.convert import convert
    with pytest.raises(InputError, match=r"^atol nan: a tolerance must be a finite number >= 0$"):
        convert(files["small"], tmp_path / "m.onnx", atol=float("nan"))
    (tmp_path / "plan.yaml").write_text(f"jobs:\n  - src: {files['small']}\n    dst: m.onnx\n    rtol: .inf\n"
                                        f"  - src: {files['small']}\n    dst: n.onnx\n    seed: -1\n")
    res = runner.invoke(cli, ["batch", str(tmp_path / "plan.yaml")])
    assert res.exit_code == 2
    assert _error(res) == (f"rnnconvert: error: {tmp_path / 'plan.yaml'}: invalid plan, nothing was run; 2 problems: "
                           "jobs[0].rtol: expected a finite number >= 0, found float inf; "
                           "jobs[1].seed: expected an integer from 0 to 4294967295, found int -1")


@pytest.mark.parametrize("value", ["-1", "4294967296", "x"])
def test_seed_out_of_range(runner, files, tmp_path, value):
    res = runner.invoke(cli, ["verify", files["small"], files["small"], "--seed", value])
    assert res.exit_code == 2
    assert _error(res) == f"rnnconvert: error: --seed {value}: expected an integer from 0 to 4294967295"


@pytest.mark.parametrize("args", [["SRC", "a\0b.onnx"], ["inspect", "x\0.h5"],
                                  ["verify", "SRC", "SRC", "--report", "r\0"]])
def test_nul_bytes_in_arguments(runner, files, tmp_path, args):
    args = [files["small"] if a == "SRC" else a for a in args]
    k = next(i for i, a in enumerate(args, 1) if "\0" in a)
    res = runner.invoke(cli, args)
    assert res.exit_code == 2
    shown = args[k - 1].replace("\0", "\\0")
    assert _error(res) == f"rnnconvert: error: argument {k} '{shown}' holds a NUL byte, which no path or name can hold"


def test_nul_bytes_in_a_plan(runner, files, tmp_path):
    (tmp_path / "plan.yaml").write_text(f'jobs:\n  - src: "{files["small"]}"\n    dst: "o\\0ut.onnx"\n'
                                        '  - src: "a.rnnc"\n    dst: [x.onnx, "y\\0.onnx"]\n')
    res = runner.invoke(cli, ["batch", str(tmp_path / "plan.yaml")])
    assert res.exit_code == 2
    assert _error(res) == (f"rnnconvert: error: {tmp_path / 'plan.yaml'}: invalid plan, nothing was run; 2 problems: "
                           "jobs[0].dst: holds a NUL byte, which no path or name can hold; "
                           "jobs[1].dst[1]: holds a NUL byte, which no path or name can hold")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.yaml"]


# ------------------------------------------------------------------------------------------- --inputs

INPUT_ERRORS = {
    "batch0": "--inputs has shape [0, 5, 3]: batch is 0; expected at least one sequence of at least one step",
    "time0": "--inputs has shape [2, 0, 3]: time is 0; expected at least one sequence of at least one step",
    "strings": "{path}: inputs hold string values (<U1); expected real numbers (float or integer)",
    "complex": "{path}: inputs hold complex values (complex64); expected real numbers (float or integer)",
    "bool": "{path}: inputs hold boolean values (bool); expected real numbers (float or integer)",
    "nan": "--inputs hold NaN or Inf (first at [0, 0, 1]; float32 holds up to 3.4e38); verification compares "
           "finite inputs only",
    "huge": "--inputs hold NaN or Inf (first at [0, 1, 2]; float32 holds up to 3.4e38); verification compares "
            "finite inputs only",
    "features": "--inputs has shape (1, 2, 5), expected [batch, time, 3] or [time, 3]",
    "axes4": "--inputs has shape (1, 1, 2, 3), expected [batch, time, 3] or [time, 3]",
}


@pytest.mark.parametrize("name", sorted(INPUT_ERRORS))
def test_bad_inputs_are_refused_before_anything_runs(runner, files, tmp_path, name):
    path = hostile.inputs_file(tmp_path, name)
    out = tmp_path / "out"
    out.mkdir()
    res = runner.invoke(cli, [files["small"], str(out / "m.onnx"), "--inputs", path])
    assert res.exit_code == 2, res.output + res.stderr
    assert _error(res) == "rnnconvert: error: " + INPUT_ERRORS[name].format(path=path)
    assert list(out.iterdir()) == []


def test_batch0_inputs_in_a_parallel_batch(runner, files, tmp_path):
    """Was: onnxruntime aborted the worker (exit 134), every job was marked a bug, one destination stayed."""
    np.save(tmp_path / "x.npy", hostile.INPUTS["batch0"])
    (tmp_path / "plan.yaml").write_text(f"jobs:\n  - src: {files['small']}\n    dst: [a.onnx, b.onnx]\n"
                                        "    inputs: x.npy\n")
    res = subprocess.run([sys.executable, "-m", "rnnconvert", "batch", "plan.yaml", "-j2"], cwd=tmp_path, env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 2, res.stderr
    assert res.stdout.splitlines()[-1].startswith("2 conversions: 0 ok, 0 not equivalent, 2 bad input;")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["plan.yaml", "x.npy"]


def test_npy_declaring_more_than_it_holds(runner, files, tmp_path):
    path = hostile.inputs_npy_liar(tmp_path)
    res = runner.invoke(cli, ["verify", files["small"], files["small"], "--inputs", path])
    assert res.exit_code == 2
    assert _error(res) == (f"rnnconvert: error: {path}: inputs declare shape [1, 1099511627776, 3] float32 "
                           "(12288.0 GiB) but the file holds 12 bytes")


def test_npz_member_inflating_past_the_ratio_is_refused_unread(files, tmp_path):
    path = hostile.inputs_npz_bomb(tmp_path)
    assert os.path.getsize(path) < 3 << 20
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31)); "
            "from rnnconvert.cli import main; sys.argv = ['rnnconvert'] + sys.argv[1:]; main()")
    res = subprocess.run([sys.executable, "-c", code, "predict", files["small"], "--inputs", path,
                          "--output", str(tmp_path / "y.npz")], env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr == (f"rnnconvert: error: {path}: inputs .npz refused: member 'input.npy' declares 2.0 GiB "
                          "from 2.0 MiB compressed (ratio over 100:1, a zip bomb)\n")
    assert not (tmp_path / "y.npz").exists()


def test_npz_inputs_for_convert_are_refused(runner, files, tmp_path):
    np.savez(tmp_path / "x.npz", input=np.zeros((1, 2, 3), np.float32))
    res = runner.invoke(cli, [files["small"], str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npz")])
    assert res.exit_code == 2
    assert _error(res) == (f"rnnconvert: error: {tmp_path / 'x.npz'}: --inputs is an .npz; convert and verify take "
                           "one .npy array [batch, time, features]")


@pytest.mark.parametrize("name,message", [
    ("x.npz", "{path}: --inputs is an .npz; convert and verify take one .npy array [batch, time, features]"),
    ("x.npy", "{path}: inputs hold string values (<U1); expected real numbers (float or integer)")])
def test_plan_inputs_go_through_the_same_validation(runner, files, tmp_path, name, message):
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, input=np.zeros((1, 2, 3), np.float32))
    else:
        np.save(path, hostile.INPUTS["strings"])
    (tmp_path / "plan.yaml").write_text(f"jobs:\n  - src: {files['small']}\n    dst: m.onnx\n    inputs: {name}\n")
    res = runner.invoke(cli, ["batch", str(tmp_path / "plan.yaml"), "-j1"])
    assert res.exit_code == 2
    assert f"jobs[0].dst: {files['small']} -> m.onnx: " + message.format(path=path) in res.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_api_inputs_go_through_the_same_validation(files, tmp_path):
    from rnnconvert.errors import InputError
    from rnnconvert.verification.convert import convert
    with pytest.raises(InputError, match=r"batch is 0"):
        convert(files["small"], tmp_path / "m.onnx", inputs=np.zeros((0, 4, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- stderr

@pytest.mark.parametrize("suffix", [".onnx", ".keras", ".pt", ".safetensors", ".c", ".mjs", ".py"])
def test_stderr_is_empty_on_success_for_every_runtime(files, tmp_path, suffix):
    res = subprocess.run([sys.executable, "-m", "rnnconvert", files["small"], str(tmp_path / f"m{suffix}")],
                         env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    # nothing but the progress lines, one per finished check (no warning of a runtime)
    lines = res.stderr.splitlines()
    assert "EQUIVALENT" in res.stdout and lines
    assert all(re.fullmatch(r"\[\d+/\d+\] ok +\S.* \(\d+\.\d s\)", line) for line in lines), res.stderr


def test_predict_of_an_overflowing_model_prints_no_warning(files, tmp_path):
    np.save(tmp_path / "x.npy", np.full((1, 300, 1), 3.0, np.float32))
    res = subprocess.run([sys.executable, "-m", "rnnconvert", "predict", files["overflow"], "--inputs",
                          str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stderr == ""    # was: RuntimeWarning: overflow encountered in cast


def test_from_safetensors_on_a_file_that_is_not_one_says_so_without_torch(tmp_path):
    junk = tmp_path / "weights.bin"
    junk.write_bytes(b"abc\n")
    code = ("import sys; sys.modules['torch'] = None; from rnnconvert.cli import main; "
            "sys.argv = ['rnnconvert'] + sys.argv[1:]; main()")
    res = subprocess.run([sys.executable, "-c", code, str(junk), str(tmp_path / "m.onnx"), "--from", "safetensors"],
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr == (f"rnnconvert: error: {junk}: truncated safetensors file: 4 bytes, the 8-byte header "
                          "length is missing\n")


def test_large_model_order_judges_an_overflowed_float32_pass_by_float64(files, tmp_path, monkeypatch):
    """The large-model order compares with the float32 pass: its inf agreed with onnxruntime's inf."""
    from rnnconvert.verification import suite
    from rnnconvert.errors import VerificationError
    from rnnconvert.verification.convert import convert
    monkeypatch.setattr(suite, "LARGE_MODEL_PARAMS", 0)
    x = np.full((1, 300, 1), 3.0, np.float32)
    with pytest.raises(VerificationError) as info:
        convert(files["overflow"], tmp_path / "m.onnx", inputs=x)
    failed = [c for c in info.value.report.checks if not c.passed]
    assert [(c.oracle, c.input) for c in failed] == [("onnxruntime(dst)", "user inputs")]
    assert info.value.report.inputs[-1]["reference"] == "float64"
    assert list(tmp_path.iterdir()) == []


def test_a_signal_during_an_import_is_held_until_the_import_is_done(tmp_path):
    """Raising inside an extension module's initialisation aborted the process (exit -6, from C++); the
    signal is held while any import runs and raised right after it."""
    (tmp_path / "slowmod.py").write_text("import os, signal, time\nos.kill(os.getpid(), signal.SIGTERM)\n"
                                         "end = time.time() + 0.3\nwhile time.time() < end:\n    pass\ndone = True\n")
    code = (f"import sys, time; sys.path.insert(0, {str(tmp_path)!r}); from rnnconvert.files import interrupt\n"
            "interrupt.install()\ntry:\n    import slowmod\n    time.sleep(5)\n    print('not interrupted')\n"
            "except interrupt.Interrupted as exc:\n"
            "    done = getattr(sys.modules.get('slowmod'), 'done', False)\n"
            "    print('interrupted after import:', done, exc.exit_code)\n")
    res = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    assert res.stdout == "interrupted after import: True 143\n", res.stderr


@pytest.mark.parametrize("args, line", [
    (["{d}", "out.onnx"], "Invalid value for 'SRC': File '{d}' is a directory. (see 'rnnconvert convert --help')"),
    (["--bogus"], "No such option '--bogus'. (see 'rnnconvert --help')"),
    (["inspect"], "Missing argument 'PATH'. (see 'rnnconvert inspect --help')"),
])
def test_usage_errors_are_one_line(tmp_path, args, line):
    """click's own usage errors end like every refusal: one line, exit 2, no usage block."""
    (tmp_path / "d").mkdir()
    res = subprocess.run([sys.executable, "-m", "rnnconvert", *[a.format(d="d") for a in args]], cwd=tmp_path,
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr == f"rnnconvert: error: {line.format(d='d')}\n"


def test_inputs_declaring_an_axis_past_what_numpy_indexes_are_refused(tmp_path):
    """A .npy header of shape [10**30, 0, 4] holds no bytes, so no size check catches it: numpy's
    loader overflowed (exit 3)."""
    from numpy.lib import format as npy
    from click.testing import CliRunner

    from rnnconvert.cli import cli
    x = tmp_path / "x.npy"
    with open(x, "wb") as f:
        npy.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10 ** 30, 0, 4)})
    src = Path(__file__).resolve().parents[2] / "fixtures/keras3/lstm_last_softmax/model.h5"
    res = CliRunner().invoke(cli, [str(src), str(tmp_path / "out.onnx"), "--inputs", str(x)])
    assert res.exit_code == 2
    assert res.stderr == (f"rnnconvert: error: {x}: inputs declare shape [{10 ** 30}, 0, 4]: an axis of {10 ** 30} "
                          "elements; expected [batch, time, features] of an inputs array\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_a_fixed_input_longer_than_verification_runs_is_refused_before_it_is_made(tmp_path):
    """A 300-byte ONNX file fixing its input to 50,000,000 steps: the suite would allocate 1.2 GB per pass
    and run for hours; refused in one line, with what to do, and nothing written."""
    src = hostile.fixed_length_onnx(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    res = subprocess.run([sys.executable, "-m", "rnnconvert", src, str(out / "m.rnnc")], env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr == (f"rnnconvert: error: {src}: the model fixes its input to 3 rows of 50000000 steps of 1 "
                          "features (150000000 values); verification runs at most 100000 steps and 33554432 "
                          "values per input: convert with --no-verify\n")
    assert list(out.iterdir()) == []


def test_a_signal_raised_where_python_ignores_exceptions_is_raised_again():
    """A handler raising inside a `__del__` or weakref callback was printed as "Exception ignored in ..." and
    dropped (seen in a batch worker, which then went on converting); it is raised again just after."""
    code = ("import os, signal, time\nfrom rnnconvert.files import interrupt\ninterrupt.install()\n"
            "class Dropped:\n    def __del__(self):\n        os.kill(os.getpid(), signal.SIGTERM)\n"
            "        for _ in range(1000):\n            pass\n"
            "try:\n    Dropped()\n    time.sleep(3)\n    print('not interrupted')\n"
            "except interrupt.Interrupted as exc:\n    print('interrupted', exc.exit_code)\n")
    res = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=60)
    assert (res.stdout, res.stderr) == ("interrupted 143\n", "")


TEMPORARY_SIGNAL = """
import os, shutil, signal, sys, tempfile
from rnnconvert.files import interrupt
interrupt.install()
made = []
real_mkdtemp, real_rmtree = tempfile.mkdtemp, shutil.rmtree
def mkdtemp(*a, **kw):      # the signal lands just after the folder is made
    made.append(real_mkdtemp(*a, **kw))
    os.kill(os.getpid(), signal.SIGTERM)
    sum(range(1000))
    return made[-1]
def rmtree(path, **kw):     # the signal lands while the folder is being removed
    os.kill(os.getpid(), signal.SIGTERM)
    sum(range(1000))
    real_rmtree(path, **kw)
tempfile.mkdtemp = mkdtemp if sys.argv[1] == "make" else real_mkdtemp
shutil.rmtree = rmtree if sys.argv[1] == "remove" else real_rmtree
try:
    with interrupt.temporary_directory("rnnconvert-t-") as d:
        made.append(d)
    print("not interrupted")
except interrupt.Interrupted as exc:
    print("interrupted", exc.exit_code, [m for m in made if os.path.exists(m)])
"""


@pytest.mark.parametrize("moment", ["make", "remove"])
def test_a_signal_while_a_temporary_folder_is_made_or_removed_leaves_none(moment):
    """tempfile.TemporaryDirectory left its folder when the signal landed between mkdtemp and the `with`, or
    during its rmtree (a `rnnconvert_torch_*` folder in TMPDIR after SIGINT to batch -j2, 1 in 36 fuzz cases)."""
    res = subprocess.run([sys.executable, "-c", TEMPORARY_SIGNAL, moment], env=ENV, capture_output=True, text=True,
                         timeout=60)
    assert (res.stdout, res.stderr) == ("interrupted 143 []\n", "")
