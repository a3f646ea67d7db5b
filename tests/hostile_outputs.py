"""Hostile output paths: command lines and plans that point an output of rnnconvert at its own source, at
another output, at a FIFO or a device, through a symbolic link or outside a plan's folder, and inputs that
are FIFOs or devices (rnnconvert/outputs.py is the policy they test).

Each builder writes one situation into an empty directory and returns a `Situation`: the command line, the
one stderr line it must end with (exit 2), and the files that must stay exactly as they were (regular
files by SHA-256, special files by kind and device number).  FIFOs are made with os.mkfifo and character
devices with os.mknod inside the given directory only (root is needed for mknod); nothing here points at a
system path.  `python -m tests.hostile_outputs DIR` writes every situation into DIR/<name>/.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
H5 = FIXTURES / "tfkeras2" / "lstm_last_softmax" / "model.h5"        # 4 features, 16 KB
PT = FIXTURES / "torch" / "gru_linear" / "model.pt"
SAFETENSORS = FIXTURES / "torch" / "gru_linear" / "model.safetensors"
ARCH = FIXTURES / "torch" / "gru_linear" / "arch.json"
NOT_REGULAR = "is not a regular file; rnnconvert only replaces regular files"
NEVER_INPUT = "rnnconvert never writes over an input of the run, choose another path"
CHAR_NULL = os.makedev(1, 3)        # the numbers of a null device: a node made in the test's own folder
CHAR_ZERO = os.makedev(1, 5)


@dataclass
class Situation:
    name: str
    args: list[str]                      # after `rnnconvert`
    error: str                           # the one stderr line, without "rnnconvert: error: "
    watch: list[Path] = field(default_factory=list)
    absent: list[Path] = field(default_factory=list)     # paths that must not appear
    blocks: bool = False                 # the old code blocks forever: run it in a subprocess with a timeout


def state(path: Path):
    """What is at `path`: ("file", sha256), ("link", target), ("fifo",), ("chr", rdev), ("dir",), None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISREG(st.st_mode):
        return ("file", hashlib.sha256(Path(path).read_bytes()).hexdigest())
    if stat.S_ISFIFO(st.st_mode):
        return ("fifo",)
    if stat.S_ISCHR(st.st_mode):
        return ("chr", st.st_rdev)
    return ("dir",) if stat.S_ISDIR(st.st_mode) else ("other", st.st_mode)


def temporaries(d: Path) -> list[str]:
    """Temporaries rnnconvert would leave: `.NAME.xxxx.tmp` files or folders anywhere under `d`."""
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.name.endswith(".tmp"))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def _inputs(path: Path) -> Path:
    """A valid --inputs array for the H5 model, under exactly this name (np.save would add .npy)."""
    with open(path, "wb") as f:
        np.save(f, np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32))
    return path


def _plan(d: Path, plan: dict, name="plan.yaml") -> Path:
    path = d / name
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


# ------------------------------------------------------------------------ convert's outputs

def report_is_source(d):
    src = _copy(H5, d / "model.h5")
    return Situation("report_is_source", [src, d / "out.onnx", "--report", src],
                     f"{src}: is the source file; {NEVER_INPUT}", [src], [d / "out.onnx"])


def report_is_source_by_hard_link(d):
    src = _copy(H5, d / "model.h5")
    os.link(src, d / "report.json")
    return Situation("report_is_source_by_hard_link", [src, d / "out.onnx", "--report", d / "report.json"],
                     f"{d / 'report.json'}: is the source file; {NEVER_INPUT}", [src], [d / "out.onnx"])


def report_is_source_by_symlink(d):
    src = _copy(H5, d / "model.h5")
    os.symlink("model.h5", d / "report.json")
    return Situation("report_is_source_by_symlink", [src, d / "out.onnx", "--report", d / "report.json"],
                     f"{d / 'report.json'}: is the source file; {NEVER_INPUT}", [src, d / "report.json"],
                     [d / "out.onnx"])


def report_is_dst(d):
    src, dst = _copy(H5, d / "model.h5"), d / "out.onnx"
    dst.write_bytes(b"an earlier conversion")
    return Situation("report_is_dst", [src, dst, "--force", "--report", f"{d}/./out.onnx"],
                     f"{dst}: is also written as --report ({d}/./out.onnx); choose another path", [src, dst])


def report_is_inputs(d):
    src, x = _copy(H5, d / "model.h5"), _inputs(d / "x.npy")
    return Situation("report_is_inputs", [src, d / "out.onnx", "--inputs", x, "--report", x],
                     f"{x}: is the --inputs file; {NEVER_INPUT}", [src, x], [d / "out.onnx"])


def report_is_fifo(d):
    src, fifo = _copy(H5, d / "model.h5"), d / "report.json"
    os.mkfifo(fifo)
    return Situation("report_is_fifo", [src, d / "out.onnx", "--report", fifo], f"{fifo}: {NOT_REGULAR}",
                     [src, fifo], [d / "out.onnx"], blocks=True)


def emit_module_is_source(d):
    src = _copy(PT, d / "model.pt")
    return Situation("emit_module_is_source", [src, d / "out.safetensors", "--emit-module", src, "--force"],
                     f"{src}: is the source file; {NEVER_INPUT}", [src], [d / "out.safetensors"])


def emit_module_is_dst(d):
    src = _copy(PT, d / "model.pt")
    dst = d / "out.pt"
    return Situation("emit_module_is_dst", [src, dst, "--emit-module", dst, "--force"],
                     f"{dst}: is also written as DST ({dst}); choose another path", [src], [dst])


def emit_module_is_device(d):
    src, dev = _copy(PT, d / "model.pt"), d / "module.py"
    os.mknod(dev, stat.S_IFCHR | 0o666, CHAR_NULL)
    return Situation("emit_module_is_device", [src, d / "out.safetensors", "--emit-module", dev, "--force"],
                     f"{dev}: {NOT_REGULAR}", [src, dev], [d / "out.safetensors"])


def dst_is_fifo(d):
    src, fifo = _copy(H5, d / "model.h5"), d / "out.onnx"
    os.mkfifo(fifo)
    return Situation("dst_is_fifo", [src, fifo, "--force"], f"{fifo}: {NOT_REGULAR}", [src, fifo])


def dst_is_device(d):
    src, dev = _copy(H5, d / "model.h5"), d / "null.onnx"
    os.mknod(dev, stat.S_IFCHR | 0o666, CHAR_NULL)
    return Situation("dst_is_device", [src, dev, "--force"], f"{dev}: {NOT_REGULAR}", [src, dev])


def vectors_index_is_directory(d):
    """--emit-vectors DIR --force where DIR/vectors.json is a folder (click itself refuses a folder as DST)."""
    src, folder = _copy(H5, d / "model.h5"), d / "vec" / "vectors.json"
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("kept")
    return Situation("vectors_index_is_directory", [src, d / "out.onnx", "--emit-vectors", d / "vec", "--force"],
                     f"{folder}: {NOT_REGULAR}", [src, folder / "keep.txt"], [d / "out.onnx"])


def companion_is_inputs(d):
    """A C destination's header m.h is the --inputs file (an .npy under another name)."""
    src, x = _copy(H5, d / "model.h5"), _inputs(d / "m.h")
    return Situation("companion_is_inputs", [src, d / "m.c", "--no-verify", "--inputs", x, "--force"],
                     f"{x}: is the --inputs file; {NEVER_INPUT}", [src, x], [d / "m.c"])


def companion_is_fifo(d):
    """An ONNX destination's external data file is a FIFO."""
    src, fifo = _copy(H5, d / "model.h5"), d / "out.onnx.data"
    os.mkfifo(fifo)
    return Situation("companion_is_fifo", [src, d / "out.onnx", "--external-data", "--no-verify", "--force"],
                     f"{fifo}: {NOT_REGULAR}", [src, fifo], [d / "out.onnx"])


def emit_vectors_is_source_folder(d):
    """--emit-vectors DIR where DIR/vectors.json is a hard link of the source."""
    src = _copy(H5, d / "model.h5")
    (d / "vec").mkdir()
    os.link(src, d / "vec" / "vectors.json")
    return Situation("emit_vectors_is_source_folder", [src, d / "out.onnx", "--emit-vectors", d / "vec", "--force"],
                     f"{d / 'vec' / 'vectors.json'}: is the source file; {NEVER_INPUT}", [src], [d / "out.onnx"])


# ------------------------------------------------------------------------ inputs that never end

def source_is_fifo(d):
    fifo = d / "model.h5"
    os.mkfifo(fifo)
    return Situation("source_is_fifo", [fifo, d / "out.onnx"],
                     f"{fifo}: is not a regular file, expected a model file (rnnconvert reads only regular files)",
                     [fifo], [d / "out.onnx"], blocks=True)


def inputs_is_fifo(d):
    src, fifo = _copy(H5, d / "model.h5"), d / "x.npy"
    os.mkfifo(fifo)
    return Situation("inputs_is_fifo", [src, d / "out.onnx", "--inputs", fifo],
                     f"{fifo}: is not a regular file, expected an inputs array (.npy or .npz) "
                     "(rnnconvert reads only regular files)", [src, fifo], [d / "out.onnx"], blocks=True)


def arch_is_device(d):
    src, dev = _copy(SAFETENSORS, d / "model.safetensors"), d / "arch.yaml"
    os.mknod(dev, stat.S_IFCHR | 0o666, CHAR_ZERO)
    return Situation("arch_is_device", [src, d / "out.onnx", "--arch", dev],
                     f"{dev}: is not a regular file, expected a YAML file (--arch) (rnnconvert reads only regular "
                     "files)", [src, dev], [d / "out.onnx"], blocks=True)


# ------------------------------------------------------------------------ predict

def predict_output_is_model(d):
    model, x = _copy(H5, d / "model.npy"), _inputs(d / "x.npy")
    return Situation("predict_output_is_model", ["predict", model, "--inputs", x, "--output", model],
                     f"{model}: is the model file; {NEVER_INPUT}", [model, x])


def predict_output_is_inputs(d):
    model, x = _copy(H5, d / "model.h5"), _inputs(d / "x.npy")
    return Situation("predict_output_is_inputs", ["predict", model, "--inputs", x, "--output", x],
                     f"{x}: is the --inputs file; {NEVER_INPUT}", [model, x])


# ------------------------------------------------------------------------ vectors

def _vectors(d: Path, arrays: str) -> Path:
    folder = d / "vec"
    folder.mkdir()
    index = {"kind": "rnnconvert-vectors", "version": 1, "arrays": arrays, "vectors": [],
             "tolerance": {"atol": 1e-4, "rtol": 1e-4}, "seed": 0}
    (folder / "vectors.json").write_text(json.dumps(index))
    return folder


def _vectors_case(name, d, arrays, make=None):
    src = _copy(H5, d / "model.h5")
    (d / "secret.npz").write_bytes(b"outside the vectors folder")
    folder = _vectors(d, arrays)
    if make:
        make(folder)
    return Situation(name, ["verify", src, "--vectors", folder],
                     f"{folder / 'vectors.json'}: 'arrays' names {arrays!r}, outside the vectors folder; it must "
                     "be a file beside vectors.json (such as vectors.npz)", [src, d / "secret.npz"])


def vectors_arrays_absolute(d):
    return _vectors_case("vectors_arrays_absolute", d, str(d / "secret.npz"))


def vectors_arrays_dotdot(d):
    return _vectors_case("vectors_arrays_dotdot", d, "../secret.npz")


def vectors_arrays_symlink_out(d):
    return _vectors_case("vectors_arrays_symlink_out", d, "link.npz",
                         lambda folder: os.symlink(d / "secret.npz", folder / "link.npz"))


def vectors_arrays_device(d):
    src = _copy(H5, d / "model.h5")
    folder = _vectors(d, "zero.npz")
    os.mknod(folder / "zero.npz", stat.S_IFCHR | 0o666, CHAR_ZERO)
    return Situation("vectors_arrays_device", ["verify", src, "--vectors", folder],
                     f"{folder / 'zero.npz'}: is not a regular file, expected the vectors' arrays (.npz) "
                     "(rnnconvert reads only regular files)", [src, folder / "zero.npz"], blocks=True)


# ------------------------------------------------------------------------ batch plans

def _batch(name, d, plan, problems, watch=(), absent=(), extra=()):
    path = _plan(d, plan)
    n = len(problems)
    return Situation(name, ["batch", path, *extra],
                     f"{path}: invalid plan, nothing was run; {n} problem{'s' if n > 1 else ''}: " + "; ".join(problems),
                     [path, *watch], list(absent))


def plan_dst_dotdot(d):
    (d / "plan").mkdir()
    _copy(H5, d / "plan" / "a.h5")
    return _batch("plan_dst_dotdot", d / "plan", {"jobs": [{"src": "a.h5", "dst": "../escape/a.onnx"}]},
                  ["jobs[0].dst: '../escape/a.onnx' is outside the plan's folder; write inside it, or set "
                   "allow_outside: true in the plan"], [d / "plan" / "a.h5"], [d / "escape"])


def plan_dst_absolute(d):
    (d / "plan").mkdir()
    _copy(H5, d / "plan" / "a.h5")
    target = d / "elsewhere" / "a.onnx"
    return _batch("plan_dst_absolute", d / "plan", {"jobs": [{"src": "a.h5", "dst": str(target)}]},
                  [f"jobs[0].dst: '{target}' is outside the plan's folder; write inside it, or set "
                   "allow_outside: true in the plan"], [d / "plan" / "a.h5"], [d / "elsewhere"])


def plan_dst_symlinked_folder_out(d):
    (d / "plan").mkdir()
    (d / "elsewhere").mkdir()
    _copy(H5, d / "plan" / "a.h5")
    os.symlink(d / "elsewhere", d / "plan" / "out")
    return _batch("plan_dst_symlinked_folder_out", d / "plan", {"jobs": [{"src": "a.h5", "dst": "out/a.onnx"}]},
                  ["jobs[0].dst: 'out/a.onnx' is outside the plan's folder; write inside it, or set "
                   "allow_outside: true in the plan"], [d / "plan" / "a.h5"], [d / "elsewhere" / "a.onnx"])


def plan_dst_device(d):
    _copy(H5, d / "a.h5")
    os.mknod(d / "null", stat.S_IFCHR | 0o666, CHAR_NULL)
    return _batch("plan_dst_device", d, {"jobs": [{"src": "a.h5", "dst": "null", "to": "onnx"}]},
                  [f"jobs[0].dst: 'null' {NOT_REGULAR}"], [d / "a.h5", d / "null"])


def plan_dst_is_other_source(d):
    _copy(H5, d / "a.h5")
    _copy(H5, d / "b.keras.h5")
    return _batch("plan_dst_is_other_source", d,
                  {"jobs": [{"src": "a.h5", "dst": "a.onnx"}, {"src": "b.keras.h5", "dst": "./a.h5"}]},
                  ["jobs[1].dst: './a.h5' is the source of jobs[0]"], [d / "a.h5", d / "b.keras.h5"],
                  [d / "a.onnx"])


def plan_emit_module_twice(d):
    _copy(PT, d / "a.pt")
    shutil.copyfile(ARCH, d / "arch.json")
    plan = {"defaults": {"arch": "arch.json"},
            "jobs": [{"src": "a.pt", "dst": "x.safetensors", "emit_module": "m.py"},
                     {"src": "a.pt", "dst": "y.safetensors", "emit_module": "m.py"}]}
    return _batch("plan_emit_module_twice", d, plan, ["jobs[1].emit_module: 'm.py' is also written by jobs[0].emit_module"],
                  [d / "a.pt"], [d / "x.safetensors", d / "m.py"])


def plan_emit_module_is_source(d):
    _copy(PT, d / "a.pt")
    shutil.copyfile(ARCH, d / "arch.json")
    plan = {"jobs": [{"src": "a.pt", "arch": "arch.json", "dst": "x.safetensors", "emit_module": "arch.json"}]}
    return _batch("plan_emit_module_is_source", d, plan, ["jobs[0].emit_module: 'arch.json' is the arch of jobs[0]"],
                  [d / "a.pt", d / "arch.json"], [d / "x.safetensors"])


def plan_emit_vectors_shared(d):
    _copy(H5, d / "a.h5")
    plan = {"defaults": {"emit_vectors": "vec"},
            "jobs": [{"src": "a.h5", "dst": "a.onnx"}, {"src": "a.h5", "dst": "b.onnx"}]}
    return _batch("plan_emit_vectors_shared", d, plan,
                  ["jobs[1].emit_vectors: 'vec/vectors.npz' is also written by jobs[0].emit_vectors",
                   "jobs[1].emit_vectors: 'vec/vectors.json' is also written by jobs[0].emit_vectors"],
                  [d / "a.h5"], [d / "vec"])


def plan_allow_outside_not_boolean(d):
    _copy(H5, d / "a.h5")
    return _batch("plan_allow_outside_not_boolean", d, {"allow_outside": "yes", "jobs": [{"src": "a.h5", "dst": "a.onnx"}]},
                  ["allow_outside: expected true or false, found str 'yes'"], [d / "a.h5"], [d / "a.onnx"])


def plan_source_fifo(d):
    os.mkfifo(d / "a.h5")
    return _batch("plan_source_fifo", d, {"jobs": [{"src": "a.h5", "dst": "a.onnx"}]},
                  ["jobs[0].src: 'a.h5' is not a regular file"], [d / "a.h5"], [d / "a.onnx"])


def plan_report_is_plan(d):
    _copy(H5, d / "a.h5")
    path = _plan(d, {"jobs": [{"src": "a.h5", "dst": "a.onnx"}]})
    return Situation("plan_report_is_plan", ["batch", path, "--report", path],
                     f"{path}: is the plan file; {NEVER_INPUT}", [path, d / "a.h5"], [d / "a.onnx"])


def plan_report_is_dst(d):
    _copy(H5, d / "a.h5")
    path = _plan(d, {"jobs": [{"src": "a.h5", "dst": "a.onnx"}]})
    return Situation("plan_report_is_dst", ["batch", path, "--report", d / "a.onnx"],
                     f"{d / 'a.onnx'}: is also written as jobs[0].dst ({d / 'a.onnx'}); choose another path",
                     [path, d / "a.h5"], [d / "a.onnx"])


def plan_state_fifo(d):
    _copy(H5, d / "a.h5")
    path = _plan(d, {"jobs": [{"src": "a.h5", "dst": "a.onnx"}]})
    state_path = d / ".plan.yaml.rnnconvert-state.json"
    os.mkfifo(state_path)
    return Situation("plan_state_fifo", ["batch", path],
                     f"{state_path}: the plan's state file is not a regular file; remove it",
                     [path, d / "a.h5", state_path], [d / "a.onnx"], blocks=True)


def plan_state_symlink(d):
    _copy(H5, d / "a.h5")
    (d / "victim.txt").write_text("not rnnconvert's")
    path = _plan(d, {"jobs": [{"src": "a.h5", "dst": "a.onnx"}]})
    state_path = d / ".plan.yaml.rnnconvert-state.json"
    os.symlink("victim.txt", state_path)
    return Situation("plan_state_symlink", ["batch", path],
                     f"{state_path}: the plan's state file is a symbolic link, expected a regular file; remove it",
                     [path, d / "a.h5", d / "victim.txt", state_path], [d / "a.onnx"])


BUILDERS = [report_is_source, report_is_source_by_hard_link, report_is_source_by_symlink, report_is_dst,
            report_is_inputs, report_is_fifo, emit_module_is_source, emit_module_is_dst, emit_module_is_device,
            dst_is_fifo, dst_is_device, vectors_index_is_directory, companion_is_inputs, companion_is_fifo,
            emit_vectors_is_source_folder, source_is_fifo, inputs_is_fifo, arch_is_device,
            predict_output_is_model, predict_output_is_inputs, vectors_arrays_absolute, vectors_arrays_dotdot,
            vectors_arrays_symlink_out, vectors_arrays_device, plan_dst_dotdot, plan_dst_absolute,
            plan_dst_symlinked_folder_out, plan_dst_device, plan_dst_is_other_source, plan_emit_module_twice,
            plan_emit_module_is_source, plan_emit_vectors_shared, plan_allow_outside_not_boolean,
            plan_source_fifo, plan_report_is_plan, plan_report_is_dst, plan_state_fifo, plan_state_symlink]


def build(builder, directory: Path) -> Situation:
    """Run `builder` in `directory`/<its name> (made empty); the Situation's paths are absolute."""
    d = Path(directory).resolve() / builder.__name__
    d.mkdir(parents=True)
    return builder(d)


def main(argv) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.hostile_outputs DIR", file=sys.stderr)
        return 2
    for builder in BUILDERS:
        s = build(builder, Path(argv[0]))
        print(f"{s.name}: rnnconvert {' '.join(map(str, s.args))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
