"""No data loss, no code execution, no NaN/Inf passed on silently: each rule with a crafted file.

Data loss: DST is written in its own directory under a temporary name and renamed; an existing DST
is kept unless --force; the source is never modified (SHA-256 and mtime); DST naming SRC (the same
path, a symlink, another spelling, a hard link) is refused; a full disk (a 64 KiB tmpfs, or
RLIMIT_FSIZE where mounting is impossible) and a directory the user may not write to (a process that
drops root for `nobody`, so that the kernel really answers EACCES; and a read-only bind mount, EROFS)
end in exit 2 with one line and nothing left behind.  The --emit-module and --emit-vectors files follow
the same rules (an existing one kept unless --force; full disk, EFBIG, EROFS leave nothing half-written).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import FIXTURES, ROOT
from rnnconvert.cli import cli

SRC = FIXTURES / "tfkeras2" / "lstm_last_softmax" / "model.h5"
PT = FIXTURES / "torch" / "gru_linear" / "model.pt"


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def fingerprint(path):
    st = os.stat(path)
    return sha(path), st.st_mtime_ns, st.st_size, st.st_mode


def invoke(runner, *args):
    """(exit code, output, stderr without the progress lines of the checks that ran before the failure)."""
    res = runner.invoke(cli, [str(a) for a in args])
    return res.exit_code, res.output, without_progress(res.stderr)


def without_progress(stderr: str) -> str:
    return "".join(line for line in stderr.splitlines(True) if not line.startswith("["))


# ----------------------------------------------------------------------------------- data loss

def test_dst_is_written_beside_itself_under_a_temporary_name_then_renamed(tmp_path, monkeypatch):
    import rnnconvert.formats.onnx as onnx_format
    seen, replaced = [], []
    real_write, real_replace, real_link = onnx_format.write, os.replace, os.link

    def spy_write(model, path, **kw):
        seen.append(path)
        return real_write(model, path, **kw)

    def spy_replace(a, b):
        replaced.append((a, b))
        return real_replace(a, b)

    def spy_link(a, b):            # a new DST is installed by a hard link (fails if DST appeared meanwhile)
        replaced.append((a, b))
        return real_link(a, b)
    monkeypatch.setattr(onnx_format, "write", spy_write)
    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "link", spy_link)
    import rnnconvert
    dst = tmp_path / "out" / "model.onnx"
    dst.parent.mkdir()
    rnnconvert.convert(SRC, dst)
    tmp = seen[0]
    assert os.path.dirname(os.path.dirname(tmp)) == str(dst.parent)        # a folder inside dst's own
    assert os.path.basename(os.path.dirname(tmp)).startswith(".model.onnx.")
    assert replaced == [(tmp, str(dst))]
    assert sorted(os.listdir(dst.parent)) == ["model.onnx"]                   # nothing else left


def test_existing_destination_is_kept_unless_force(runner, tmp_path):
    dst = tmp_path / "model.onnx"
    dst.write_bytes(b"precious")
    code, out, err = invoke(runner, SRC, dst)
    assert (code, err) == (2, f"rnnconvert: error: {dst}: exists; pass --force to overwrite it\n")
    assert dst.read_bytes() == b"precious"
    code, out, err = invoke(runner, SRC, dst, "--force")
    assert code == 0, err
    assert dst.read_bytes()[:1] == b"\x08" and sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_failed_verification_keeps_the_existing_destination(runner, tmp_path, monkeypatch):
    from rnnconvert.verification import checks as verification
    dst = tmp_path / "model.onnx"
    dst.write_bytes(b"precious")
    monkeypatch.setattr(verification, "TOLERANCES", {"float32": {"atol": -1.0, "rtol": 0.0}})
    code, out, err = invoke(runner, SRC, dst, "--force")
    assert code == 1 and "NOT EQUIVALENT" in err
    assert dst.read_bytes() == b"precious" and sorted(os.listdir(tmp_path)) == ["model.onnx"]


@pytest.mark.parametrize("command", ["convert", "verify", "inspect", "predict"])
def test_source_is_never_modified(runner, tmp_path, command):
    src = tmp_path / "model.h5"
    shutil.copyfile(SRC, src)
    os.utime(src, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = fingerprint(src)
    np.save(tmp_path / "x.npy", np.ones((2, 5, 4), np.float32))
    args = {"convert": [src, tmp_path / "m.onnx"], "verify": [src, src], "inspect": ["inspect", src],
            "predict": ["predict", src, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy"]}[command]
    if command == "verify":
        args = ["verify", *args]
    code, out, err = invoke(runner, *args)
    assert code == 0, err
    assert fingerprint(src) == before


def _same_file_spellings(tmp_path):
    src = tmp_path / "a" / "model.h5"
    src.parent.mkdir()
    shutil.copyfile(SRC, src)
    (tmp_path / "link.h5").symlink_to(src)
    os.link(src, tmp_path / "hard.h5")
    return src, {"same path": src, "dot-dot": tmp_path / "a" / ".." / "a" / "model.h5",
                 "dot": tmp_path / "a" / "." / "model.h5", "symlink": tmp_path / "link.h5",
                 "hard link": tmp_path / "hard.h5"}


@pytest.mark.parametrize("spelling", ["same path", "dot-dot", "dot", "symlink", "hard link"])
def test_destination_equal_to_source_is_refused_even_with_force(runner, tmp_path, spelling):
    src, spellings = _same_file_spellings(tmp_path)
    before = fingerprint(src)
    dst = spellings[spelling]
    code, out, err = invoke(runner, src, dst, "--force", "--to", "keras")
    assert (code, err) == (2, f"rnnconvert: error: {dst}: destination is the source file; choose another path\n")
    assert fingerprint(src) == before


def _leftovers(directory, keep=()):
    return sorted(set(os.listdir(directory)) - set(keep))


@pytest.fixture
def full_disk(tmp_path):
    """A 64 KiB tmpfs: the written model (about 20 KiB of weights, more as ONNX + temp) does not fit."""
    d = tmp_path / "full"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root); test_file_size_limit_... covers disk full")
    with open(d / "filler", "wb") as f:          # fill it: no data block is left for anything else
        try:
            for _ in range(64):
                f.write(b"\0" * 1024)
                f.flush()
        except OSError:
            pass
    yield d
    subprocess.run(["umount", str(d)], check=True)


@pytest.mark.parametrize("dst_name", ["model.onnx", "model.keras", "model.rnnc", "model.c"])
def test_disk_full_is_one_line_exit_2_and_leaves_nothing(runner, full_disk, dst_name):
    big = FIXTURES / "tfkeras2" / "stacked_lstm_dense" / "model.h5"
    dst = full_disk / dst_name
    code, out, err = invoke(runner, big, dst)
    assert code == 2, err
    assert err.startswith(f"rnnconvert: error: {dst}: cannot write") and err.count("\n") == 1
    assert err.endswith("No space left on device)\n"), err
    assert _leftovers(full_disk) == ["filler"]


def _run_python(code: str, *, preexec=None, env=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "torch", **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, preexec_fn=preexec, timeout=300)


def test_file_size_limit_is_reported_like_a_full_disk(tmp_path):
    """RLIMIT_FSIZE (EFBIG) in a child: the CLI itself, no monkeypatching, whatever the machine allows."""
    dst = tmp_path / "out" / "model.onnx"
    dst.parent.mkdir()
    res = _run_python(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
        from rnnconvert.cli import main
        sys.argv = ["rnnconvert", {str(FIXTURES / 'tfkeras2' / 'stacked_lstm_dense' / 'model.h5')!r}, {str(dst)!r}]
        main()
        """)
    assert res.returncode == 2, res.stderr
    assert res.stderr == f"rnnconvert: error: {dst}: cannot write (File too large)\n"
    assert _leftovers(dst.parent) == []


@pytest.fixture
def world_readable():
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp(prefix="rnnconvert-perm-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


def test_permission_denied_as_an_unprivileged_user(world_readable):
    """Root ignores file permissions, so the child drops to `nobody` before converting: the kernel
    answers EACCES exactly as it would for a user writing into someone else's directory."""
    shared = world_readable / "shared"
    shared.mkdir(mode=0o755)
    src = shared / "model.h5"
    shutil.copyfile(SRC, src)
    os.chmod(src, 0o644)
    locked = shared / "locked"
    locked.mkdir(mode=0o755)                     # owned by root: nobody may not create files in it
    dst = locked / "model.onnx"
    res = _run_python(f"""
        import os, sys
        import importlib, pkgutil, rnnconvert   # every module imported as root: the clone's folder may be 0700
        for m in pkgutil.walk_packages(rnnconvert.__path__, "rnnconvert."):
            if not m.name.endswith("__main__"):
                importlib.import_module(m.name)
        from rnnconvert.cli import main
        os.setgid(65534); os.setuid(65534)
        sys.argv = ["rnnconvert", {str(src)!r}, {str(dst)!r}]
        main()
        """, env={"HOME": "/tmp"})
    assert res.returncode == 2, res.stderr
    assert res.stderr == f"rnnconvert: error: {dst}: cannot write in '{locked}' (Permission denied)\n"
    assert _leftovers(locked) == []


def test_read_only_file_system_is_one_line_exit_2(runner, read_only):
    d = read_only
    dst = d / "model.onnx"
    code, out, err = invoke(runner, SRC, dst)
    assert (code, err) == (2, f"rnnconvert: error: {dst}: cannot write in '{d}' (Read-only file system)\n")
    assert _leftovers(d) == []


# ----------------------------------------------------------- --emit-module and --emit-vectors outputs

def _emit(tmp_path, *extra):
    return [PT, tmp_path / "out.safetensors", *extra]


def test_emit_outputs_are_written_beside_themselves_then_renamed(runner, tmp_path, monkeypatch):
    replaced = []
    real_replace, real_link = os.replace, os.link

    def spy_replace(a, b):
        replaced.append((os.fspath(a), os.fspath(b)))
        return real_replace(a, b)

    def spy_link(a, b):                 # a new file is installed by a hard link, an existing one by a rename
        replaced.append((os.fspath(a), os.fspath(b)))
        return real_link(a, b)
    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "link", spy_link)
    module, vec = tmp_path / "mod" / "m.py", tmp_path / "vec"
    module.parent.mkdir()
    code, out, err = invoke(runner, *_emit(tmp_path, "--emit-module", module, "--emit-vectors", vec))
    assert code == 0, err
    side = [(a, b) for a, b in replaced if not b.endswith("out.safetensors")]
    assert [b for _, b in side] == [str(module), str(vec / "vectors.npz"), str(vec / "vectors.json")]
    for a, b in side:                   # a temporary in the file's own directory, named after it
        assert os.path.dirname(a) == os.path.dirname(b) and os.path.basename(a).startswith(f".{os.path.basename(b)}.")
    assert _leftovers(module.parent) == ["m.py"] and _leftovers(vec) == ["vectors.json", "vectors.npz"]
    assert oct(os.stat(module).st_mode & 0o777) == oct(0o666 & ~_umask())      # as open() makes it, not 0600
    compile(module.read_text(), str(module), "exec")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("command,output", [("convert", "module"), ("convert", "vectors.npz"),
                                            ("convert", "vectors.json"), ("verify", "vectors.npz"),
                                            ("verify", "vectors.json")])
def test_existing_emit_outputs_are_kept_unless_force(runner, tmp_path, command, output):
    vec = tmp_path / "vec"
    vec.mkdir()
    kept = tmp_path / "m.py" if output == "module" else vec / output
    kept.write_bytes(b"precious")
    if command == "convert":
        args = _emit(tmp_path, "--emit-module", tmp_path / "m.py", "--emit-vectors", vec)
    else:
        shutil.copyfile(PT.parent / "model.safetensors", tmp_path / "b.safetensors")
        args = ["verify", PT, tmp_path / "b.safetensors", "--emit-vectors", vec]
    code, out, err = invoke(runner, *args)
    assert (code, err) == (2, f"rnnconvert: error: {kept}: exists; pass --force to overwrite it\n")
    assert kept.read_bytes() == b"precious" and not (tmp_path / "out.safetensors").exists()
    code, out, err = invoke(runner, *args, "--force")
    assert code == 0, err
    assert kept.read_bytes() != b"precious"
    assert json.loads((vec / "vectors.json").read_text())["kind"] == "rnnconvert-vectors"


def test_disk_full_under_emit_module_and_emit_vectors_leaves_nothing(runner, full_disk, tmp_path):
    code, out, err = invoke(runner, *_emit(tmp_path, "--emit-module", full_disk / "m.py"))
    assert (code, err) == (2, f"rnnconvert: error: {full_disk / 'm.py'}: cannot write (No space left on device)\n")
    assert _leftovers(full_disk) == ["filler"]
    code, out, err = invoke(runner, *_emit(tmp_path, "--emit-vectors", full_disk / "vec", "--force"))
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"rnnconvert: error: {full_disk / 'vec'}") and err.endswith("(No space left on device)\n")
    assert _leftovers(full_disk) == ["filler"]          # neither half a file nor the directory made for it


def test_file_size_limit_under_emit_vectors_keeps_the_old_vectors(tmp_path):
    """RLIMIT_FSIZE (EFBIG) in a child: the 2 KB model fits, the 16 KB vectors.npz does not; the
    vectors already there (written by a run without the limit) are untouched, no temporary is left."""
    vec = tmp_path / "vec"
    vec.mkdir()
    (vec / "vectors.npz").write_bytes(b"old npz")
    (vec / "vectors.json").write_bytes(b"old index")
    res = _run_python(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from rnnconvert.cli import main
        sys.argv = ["rnnconvert", {str(PT)!r}, {str(tmp_path / 'out.safetensors')!r}, "--emit-vectors", {str(vec)!r},
                    "--force"]
        main()
        """)
    assert res.returncode == 2, res.stderr
    assert without_progress(res.stderr) == f"rnnconvert: error: {vec / 'vectors.npz'}: cannot write (File too large)\n"
    assert (vec / "vectors.npz").read_bytes() == b"old npz" and (vec / "vectors.json").read_bytes() == b"old index"
    assert _leftovers(vec) == ["vectors.json", "vectors.npz"]


def test_read_only_directory_under_emit_module_is_one_line_exit_2(runner, tmp_path, read_only):
    d = read_only
    code, out, err = invoke(runner, *_emit(tmp_path, "--emit-module", d / "m.py"))
    assert (code, err) == (2, f"rnnconvert: error: {d / 'm.py'}: cannot write in '{d}' (Read-only file system)\n")
    assert _leftovers(d) == []
    code, out, err = invoke(runner, *_emit(tmp_path, "--emit-vectors", d / "vec", "--force"))
    assert (code, err) == (2, f"rnnconvert: error: {d / 'vec'}: cannot make the vectors directory "
                              "(Read-only file system)\n")
