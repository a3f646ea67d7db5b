"""The output policy (rnnconvert/outputs.py) against hostile command lines and plans (tests/hostile_outputs.py):
each ends in exit 2 with its one line, every watched file (source, inputs, FIFOs, device nodes made in
tmp_path) exactly as before, nothing created where it must not be, no temporary left.  Situations that
block forever on the old code (FIFOs, devices) run in a subprocess with a time limit and their peak RSS
measured.  Then: two conversions racing to one new DST (exactly one wins), a file or FIFO appearing at DST
during the conversion, links at DST replaced and not followed, batch folders made only on success, the
plan lock, and write failures on a read-only file system (a bind mount; skipped where mounting is not
possible)."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rnnconvert.cli import cli
from tests import hostile_outputs as H
from tests import peak
from progress_lines import without_progress

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "torch", "RNNCONVERT_DEBUG": ""}
SECONDS = 90            # a refused case takes about 5 s (imports); a blocked reader never ends
MAX_RSS = 1 << 30


def run_bounded(args, cwd, timeout=SECONDS):
    """(exit code, stderr, seconds, peak RSS bytes) of `python -m rnnconvert ARGS`; a hang is killed and fails."""
    err, peak_file = Path(cwd) / ".stderr.log", Path(cwd) / ".peak"
    with open(err, "w") as f:
        p = subprocess.Popen(peak.command(args), cwd=cwd, env={**ENV, "RNNCONVERT_TEST_PEAK": str(peak_file)},
                             stdout=subprocess.DEVNULL, stderr=f, stdin=subprocess.DEVNULL)
    t0 = time.monotonic()
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - t0 > timeout:
            p.kill()
            os.wait4(p.pid, 0)
            err.unlink()
            pytest.fail(f"rnnconvert {' '.join(map(str, args))} did not end in {timeout} s")
        time.sleep(0.05)
    text, rss = without_progress(err.read_text()), peak.read(peak_file)
    err.unlink()
    peak_file.unlink(missing_ok=True)
    return os.waitstatus_to_exitcode(status), text, time.monotonic() - t0, rss or 0


def invoke(runner, args):
    res = runner.invoke(cli, [str(a) for a in args])
    return res.exit_code, without_progress(res.stderr)


@pytest.mark.parametrize("builder", H.BUILDERS, ids=lambda b: b.__name__)
def test_hostile_output_paths_end_in_exit_2_with_nothing_touched(runner, tmp_path, builder):
    s = H.build(builder, tmp_path)
    before = {p: H.state(p) for p in s.watch}
    assert all(before.values()), before
    if s.blocks:
        code, err, seconds, rss = run_bounded(s.args, tmp_path)
        assert rss < MAX_RSS, rss
    else:
        code, err = invoke(runner, s.args)
    assert (code, err) == (2, f"rnnconvert: error: {s.error}\n")
    assert {p: H.state(p) for p in s.watch} == before
    assert [p for p in s.absent if os.path.lexists(p)] == []
    assert H.temporaries(tmp_path) == []


# ------------------------------------------------------------------------------- races at install

def test_two_conversions_racing_to_one_new_dst_exactly_one_wins(tmp_path):
    src, dst = H._copy(H.H5, tmp_path / "model.h5"), tmp_path / "out.onnx"
    procs = [subprocess.Popen([sys.executable, "-m", "rnnconvert", str(src), str(dst)], cwd=tmp_path, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((p.wait(timeout=300), without_progress(p.stderr.read())) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    assert results[1][1] in (f"rnnconvert: error: {dst}: appeared while converting; nothing was replaced\n",
                             f"rnnconvert: error: {dst}: exists; pass --force to overwrite it\n")
    assert dst.stat().st_size > 1000 and H.temporaries(tmp_path) == []


def _appear_at_install(monkeypatch, make):
    """Run `make(dst_folder)` just before convert installs DST (after every check and the verification)."""
    from rnnconvert.verification import outputs as verification
    real = verification._make_folder

    def spy(directory, path):
        make(path)
        return real(directory, path)
    monkeypatch.setattr(verification, "_make_folder", spy)


def test_a_file_appearing_at_dst_while_converting_is_kept(runner, tmp_path, monkeypatch):
    src, dst = H._copy(H.H5, tmp_path / "model.h5"), tmp_path / "out.onnx"
    _appear_at_install(monkeypatch, lambda path: Path(path).write_bytes(b"the other conversion's"))
    code, err = invoke(runner, [src, dst])
    assert (code, err) == (2, f"rnnconvert: error: {dst}: appeared while converting; nothing was replaced\n")
    assert dst.read_bytes() == b"the other conversion's" and H.temporaries(tmp_path) == []


def test_force_checks_again_that_dst_is_a_regular_file_before_replacing(runner, tmp_path, monkeypatch):
    src, dst = H._copy(H.H5, tmp_path / "model.h5"), tmp_path / "out.onnx"
    dst.write_bytes(b"old")

    def swap(path):
        os.unlink(path)
        os.mkfifo(path)
    _appear_at_install(monkeypatch, swap)
    code, err = invoke(runner, [src, dst, "--force"])
    assert (code, err) == (2, f"rnnconvert: error: {dst}: {H.NOT_REGULAR}\n")
    assert H.state(dst) == ("fifo",) and H.temporaries(tmp_path) == []


def test_a_link_at_dst_is_replaced_never_followed(runner, tmp_path):
    src, dst, victim = H._copy(H.H5, tmp_path / "model.h5"), tmp_path / "out.onnx", tmp_path / "victim.onnx"
    victim.write_bytes(b"someone else's")
    os.symlink(victim, dst)
    code, err = invoke(runner, [src, dst])
    assert (code, err) == (2, f"rnnconvert: error: {dst}: exists; pass --force to overwrite it\n")
    code, err = invoke(runner, [src, dst, "--force", "--report", tmp_path / "r.json"])
    assert code == 0, err
    assert victim.read_bytes() == b"someone else's"
    assert not dst.is_symlink() and dst.stat().st_size > 1000 and H.temporaries(tmp_path) == []


def test_a_linked_folder_named_in_dst_is_followed(runner, tmp_path):
    """The user's own spelling: folders in the path are theirs to choose (outputs.py's docstring)."""
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "out")
    src = H._copy(H.H5, tmp_path / "model.h5")
    code, err = invoke(runner, [src, tmp_path / "out" / "m.onnx", "--no-verify"])
    assert code == 0, err
    assert (tmp_path / "real" / "m.onnx").is_file() and H.temporaries(tmp_path) == []


# ------------------------------------------------------------------------------- batch

def test_batch_makes_folders_only_for_installed_destinations(runner, tmp_path):
    H._copy(H.H5, tmp_path / "a.h5")
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    plan = H._plan(tmp_path, {"jobs": [{"src": "broken.h5", "dst": "never/made/b.onnx"},
                                       {"src": "a.h5", "dst": "made/deep/a.onnx"}]})
    res = runner.invoke(cli, ["batch", str(plan), "--jobs", "1"])
    assert res.exit_code == 2, res.output + res.stderr
    assert not (tmp_path / "never").exists()
    assert (tmp_path / "made" / "deep" / "a.onnx").is_file() and H.temporaries(tmp_path) == []


def test_allow_outside_lets_a_plan_write_beside_its_folder(runner, tmp_path):
    (tmp_path / "plan").mkdir()
    H._copy(H.H5, tmp_path / "plan" / "a.h5")
    plan = H._plan(tmp_path / "plan", {"allow_outside": True, "jobs": [{"src": "a.h5", "dst": "../out/a.onnx"}]})
    res = runner.invoke(cli, ["batch", str(plan), "--jobs", "1"])
    assert res.exit_code == 0, res.output + res.stderr
    assert (tmp_path / "out" / "a.onnx").is_file() and H.temporaries(tmp_path) == []
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "schemas" / "batch.schema.json").read_text())
    assert jsonschema.Draft202012Validator(schema).is_valid(yaml.safe_load(plan.read_text()))
    assert not jsonschema.Draft202012Validator(schema).is_valid({"allow_outside": "yes", "jobs": [{"src": "a", "dst": "b"}]})


def test_state_temporary_is_never_written_through_a_link(runner, tmp_path):
    H._copy(H.H5, tmp_path / "a.h5")
    victim = tmp_path / "victim.txt"
    victim.write_text("not rnnconvert's")
    os.symlink(victim, tmp_path / ".plan.yaml.rnnconvert-state.json.tmp")     # the old fixed temporary name
    plan = H._plan(tmp_path, {"jobs": [{"src": "a.h5", "dst": "a.onnx"}]})
    res = runner.invoke(cli, ["batch", str(plan), "--jobs", "1"])
    assert res.exit_code == 0, res.output + res.stderr
    assert victim.read_text() == "not rnnconvert's"
    assert (tmp_path / ".plan.yaml.rnnconvert-state.json").is_file()
    assert not (tmp_path / ".plan.yaml.rnnconvert-state.json").is_symlink()


def test_a_second_batch_of_a_running_plan_exits_2(runner, tmp_path):
    H._copy(H.H5, tmp_path / "a.h5")
    plan = H._plan(tmp_path, {"jobs": [{"src": "a.h5", "dst": "a.onnx"}]})
    with open(plan) as held:
        fcntl.flock(held, fcntl.LOCK_EX)           # what the first `rnnconvert batch` holds while it runs
        code, err = invoke(runner, ["batch", plan, "--jobs", "1"])
    assert (code, err) == (2, f"rnnconvert: error: {plan}: another `rnnconvert batch` is running this plan; "
                              "wait for it to finish\n")
    assert sorted(os.listdir(tmp_path)) == ["a.h5", "plan.yaml"]


def test_plan_re_run_replaces_its_own_emit_module(runner, tmp_path):
    H._copy(H.PT, tmp_path / "a.pt")
    plan = H._plan(tmp_path, {"jobs": [{"src": "a.pt", "arch": str(H.ARCH), "dst": "x.safetensors",
                                        "emit_module": "m.py"}]})
    for _ in range(2):
        res = runner.invoke(cli, ["batch", str(plan), "--jobs", "1", "--force"])
        assert res.exit_code == 0, res.output + res.stderr
    assert "class " in (tmp_path / "m.py").read_text() and H.temporaries(tmp_path) == []


# ------------------------------------------------------------------------------- read-only file system

def test_write_failures_on_a_read_only_file_system_are_one_line_exit_2(runner, tmp_path, read_only):
    ro = read_only
    src, x = H._copy(H.H5, tmp_path / "model.h5"), H._inputs(tmp_path / "x.npy")
    why = f"cannot write in '{ro}' (Read-only file system)"
    code, err = invoke(runner, [src, tmp_path / "out.onnx", "--report", ro / "r.json"])
    assert (code, err) == (2, f"rnnconvert: error: {ro / 'r.json'}: {why}\n")
    code, err = invoke(runner, ["predict", src, "--inputs", x, "--output", ro / "y.npy"])
    assert (code, err) == (2, f"rnnconvert: error: {ro / 'y.npy'}: {why}\n")
    plan = H._plan(tmp_path, {"jobs": [{"src": "model.h5", "dst": "b.onnx"}]})
    code, err = invoke(runner, ["batch", plan, "--jobs", "1", "--report", ro / "plan-report.json"])
    assert (code, err) == (2, f"rnnconvert: error: {ro / 'plan-report.json'}: {why}\n")
    assert os.listdir(ro) == []


def test_batch_state_on_a_read_only_file_system_is_one_line_exit_2(runner, tmp_path, read_only):
    ro = read_only
    subprocess.run(["mount", "-o", "remount,rw,bind", str(ro)], check=True)
    H._copy(H.H5, ro / "a.h5")
    plan = H._plan(ro, {"allow_outside": True, "jobs": [{"src": "a.h5", "dst": "../out/a.onnx"}]})
    subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
    code, err = invoke(runner, ["batch", plan, "--jobs", "1"])
    state = ro / ".plan.yaml.rnnconvert-state.json"
    assert (code, err) == (2, f"rnnconvert: error: {state}: cannot save the plan's state: cannot write in "
                              f"'{ro}' (Read-only file system)\n")
    assert sorted(os.listdir(ro)) == ["a.h5", "plan.yaml"]


def test_the_builder_runs_as_a_script(tmp_path):
    res = subprocess.run([sys.executable, "-m", "tests.hostile_outputs", str(tmp_path)], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(b.__name__ for b in H.BUILDERS)
    assert yaml.safe_load((tmp_path / "plan_dst_dotdot" / "plan" / "plan.yaml").read_text())["jobs"][0]["dst"] \
        == "../escape/a.onnx"


def test_without_hard_links_a_new_file_is_renamed_and_an_appeared_one_kept(runner, tmp_path, monkeypatch):
    """File systems without hard links (EPERM): check, then rename (atomic.install's fallback)."""
    def no_link(a, b):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "link", no_link)
    src, dst = H._copy(H.H5, tmp_path / "model.h5"), tmp_path / "out.onnx"
    code, err = invoke(runner, [src, dst, "--no-verify"])
    assert code == 0, err
    assert dst.stat().st_size > 1000
    other = tmp_path / "other.onnx"
    _appear_at_install(monkeypatch, lambda path: Path(path).write_bytes(b"the other conversion's"))
    code, err = invoke(runner, [src, other, "--no-verify"])
    assert (code, err) == (2, f"rnnconvert: error: {other}: appeared while converting; nothing was replaced\n")
    assert other.read_bytes() == b"the other conversion's" and H.temporaries(tmp_path) == []



def test_a_plan_job_never_writes_a_companion_over_another_jobs_source(runner, tmp_path):
    """jobs[0] writes a.c, whose header a.h is jobs[1]'s source (a Keras file under another name)."""
    H._copy(H.H5, tmp_path / "a.h5")
    victim = H._copy(H.H5, tmp_path / "a.h")
    before = H.state(victim)
    plan = H._plan(tmp_path, {"jobs": [{"src": "a.h5", "dst": "a.c"}, {"src": "a.h", "from": "keras", "dst": "b.onnx"}]})
    res = runner.invoke(cli, ["batch", str(plan), "--jobs", "1"])
    assert res.exit_code == 2, res.output + res.stderr
    problems = without_progress(res.stderr)
    assert problems == (f"rnnconvert: jobs[0].dst: a.h5 -> a.c: {victim}: is the source of jobs[1]; "
                          f"{H.NEVER_INPUT}\n")
    assert H.state(victim) == before and not (tmp_path / "a.c").exists()
    assert (tmp_path / "b.onnx").is_file() and H.temporaries(tmp_path) == []
