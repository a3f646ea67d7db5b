"""Hostile runs for tests/fuzz_hostile.py: names carrying code payloads converted to every code
generator, and special files in every path role (signals at seeded moments: fuzz_hostile_signals.py).

names    A payload writes a marker file (absolute path) if any generated code runs it; each case converts
         its source to JS, a NumPy script and .pt with --emit-module (and C for the first NAMES_WITH_C),
         verification on.  Escape: the marker appears, or a conversion ends other than success or exit 2.
special  `python -m rnnconvert` with a FIFO, directory, character device (os.mknod in the case's own
         folder) or symlink (to a file in a sibling `outside/`) as source, --inputs, DST, --report or the
         batch state file.  It must end in exit 2 (exit 0 allowed where a symlink leads to a regular file
         that is read, or is an output path: the link itself is then replaced, its target untouched, as
         rnnconvert/outputs.py says) within SPECIAL_SECONDS, leave the special file and `outside/` as they were, and no
         temporary behind.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

from fuzz_hostile import NAMES_WITH_C, HostileCase
from fuzzing import FIXTURES, ROOT

KERAS_H5 = FIXTURES / "keras3/lstm_last_softmax/model.h5"
SOURCE_FORMATS = (("onnx", "model.onnx"), ("rnnc", "model.rnnc"), ("keras_h5", "model.h5"),
                  ("keras_zip", "model.keras"))
SPECIAL_SECONDS = 15.0


def _env(tmp: Path) -> dict:
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), "KERAS_BACKEND": "torch"}


NOT_OURS = {".ses"}      # written into TMPDIR by importing torch in this environment, not by rnnconvert


def _leftovers(*folders: Path) -> list[str]:
    """Names left in the run's TMPDIR (`tmp`), and `*.tmp` entries left in the other folders."""
    out = []
    for folder in folders:
        if folder.name == "tmp":
            out += [p.name for p in folder.iterdir() if p.name not in NOT_OURS] if folder.exists() else []
        elif folder.exists():
            out += [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    return out


# ------------------------------------------------------------------------------------ names

def payloads(marker: str) -> list[str]:
    touch = f"touch {marker}"
    js = f"import('node:fs').then(f=>f.writeFileSync('{marker}',''))"
    c = f'int system(const char*); __attribute__((constructor)) static void pwn(void){{system("{touch}");}}'
    return [f'"""; import os; os.system("{touch}"); """', f"'\nimport os; os.system('{touch}')\n#",
            f"x\\\nimport os;os.system('{touch}')#", f"*/ {js}; /*", f"x\u2028{js}//", f"x\u2029{js}//",
            f"x\n{js}//", f"*/ {c} /*", f"x\n{c}\n//", f"'); system('{touch}'); %", f"x\nsystem('{touch}')\n%",
            f"</script><script>{js}</script>", "a\0b\\", f"\"\"\"*/'\n{js}//\u2028'''"]


def _named_source(d: Path, fmt: str, name: str, rng) -> tuple[Path, str]:
    """The seed model with payloads as its name, input, output and layer names, written by rnnconvert's
    writer; when the writer refuses them, an ONNX file gets them patched into its graph (graph name,
    input/output and node names) and the others are written without the NUL bytes."""
    import rnnconvert
    model = rnnconvert.read(KERAS_H5)
    pool = payloads(str(d / "PWNED"))
    pick = [pool[int(k)] for k in rng.choice(len(pool), 3 + len(model.layers), replace=False)]   # all differ

    def named(texts):
        model.name, model.input.name, model.output_name = texts[:3]
        for layer, text in zip(model.layers, texts[3:]):
            layer.name = text
    named(pick)
    if fmt.startswith("keras"):         # the Keras writer makes names Keras-legal: put the payloads in its config
        rnnconvert.write(model, d / name)
        _patch_keras_config(d / name, pick)
        return d / name, "(model and input names patched into the config)"
    try:
        rnnconvert.write(model, d / name)
        return d / name, "(written by rnnconvert)"
    except Exception as exc:  # noqa: BLE001 - the writer refused the names: put them in another way
        why = type(exc).__name__
    if fmt != "onnx":
        named([t.replace("\0", "") for t in pick])
        rnnconvert.write(model, d / name)
        return d / name, f"(writer refused NUL: {why})"
    import onnx
    named([f"n{k}" for k in range(len(pick))])
    rnnconvert.write(model, d / name)
    proto = onnx.load(str(d / name))
    g = proto.graph
    renames = {g.input[0].name: pick[1], g.output[0].name: pick[2]}
    g.name, g.input[0].name, g.output[0].name = pick[0], pick[1], pick[2]
    for k, node in enumerate(g.node):
        node.name = pick[3 + k % len(model.layers)]
        node.input[:] = [renames.get(x, x) for x in node.input]
        node.output[:] = [renames.get(x, x) for x in node.output]
    (d / name).write_bytes(proto.SerializeToString())
    return d / name, f"(patched into the graph: writer refused the names: {why})"


def _patch_keras_config(path: Path, pick: list[str]) -> None:
    """The model's name and its InputLayer's name (neither names a weight group) set to payloads."""
    import json

    def patch(text):
        cfg = json.loads(text)
        cfg["config"]["name"] = pick[0]
        for layer in cfg["config"].get("layers", []):
            if layer.get("class_name") == "InputLayer":
                layer["config"]["name"] = pick[1]
        return json.dumps(cfg)
    if path.suffix == ".h5":
        import h5py
        with h5py.File(path, "r+") as f:
            f.attrs["model_config"] = patch(f.attrs["model_config"])
        return
    from fuzz_cases import zip_with
    import zipfile
    with zipfile.ZipFile(path) as z:
        members = [(n, z.read(n)) for n in z.namelist()]
    path.write_bytes(zip_with([(n, patch(b.decode()).encode() if n == "config.json" else b) for n, b in members]))


def _one_line_refusal(exc) -> bool:
    return exc.exit_code == 2 and "\n" not in exc.format()


def names_check(c_too: bool):
    def check(path: Path):
        import rnnconvert
        from rnnconvert.errors import RnnConvertError
        d, marker = path.parent, path.parent / "PWNED"
        targets = [("js", "out.mjs", None), ("numpy", "out.py", None), ("pt", "out.pt", d / "module.py")]
        if c_too:
            targets.append(("c", "out.c", None))
        results, problems = [], []
        for what, dst, module in targets:       # every target, so one case shows each generator's outcome
            try:
                rnnconvert.convert(path, d / dst, force=True, emit_module=module)
                results.append(f"{what} ok")
            except RnnConvertError as exc:
                if _one_line_refusal(exc):
                    results.append(f"{what} refused ({exc.format()[:100]})" if not results else f"{what} refused")
                else:
                    problems.append(f"{what}: {type(exc).__name__} exit {exc.exit_code}: {exc.format()[:160]!r}")
            except Exception as exc:  # noqa: BLE001 - what the class looks for
                problems.append(f"{what}: {type(exc).__name__}: {str(exc)[:160]}")
            if marker.exists():
                problems.insert(0, f"{what}: the payload ran (marker written)")
                marker.unlink()
        if problems:
            return "escape", "; ".join(problems)
        return ("ok" if all(r.endswith(" ok") for r in results) else "refused"), ", ".join(results)
    return check


def names_gen(rng, i, seeds):
    fmt, name = SOURCE_FORMATS[i % len(SOURCE_FORMATS)]
    c_too = i < NAMES_WITH_C
    seed = [int(x) for x in rng.integers(0, 2 ** 31, 2)]

    def make(d):
        import numpy as np
        return _named_source(d, fmt, name, np.random.default_rng(seed))
    label = f"{fmt} payload names -> js, numpy, pt+module" + (", c" if c_too else "")
    return HostileCase("names", i, label, make, None, check=names_check(c_too))


# ------------------------------------------------------------------------------------ special files

ROLES = ("src", "inputs", "dst", "report", "state")
KINDS = ("fifo", "dir", "chardev", "symlink")


def _node(path: Path, kind: str, target: Path, device: tuple[int, int]):
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "chardev":                 # a device node of our own in the case's folder, never /dev/...
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(*device))
    else:
        os.symlink(target, path)


def _state(path: Path) -> tuple:
    st = os.lstat(path)
    extra = os.readlink(path) if stat.S_ISLNK(st.st_mode) else sorted(os.listdir(path)) if stat.S_ISDIR(st.st_mode) else ""
    return stat.S_IFMT(st.st_mode), st.st_rdev, extra


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_mode, hashlib.sha1(p.read_bytes()).hexdigest()) for p in sorted(folder.iterdir())}


def special_gen(rng, i, seeds):
    role, kind = ROLES[i // len(KINDS) % len(ROLES)], KINDS[i % len(KINDS)]
    reads = role in ("src", "inputs")

    def make(d):
        import numpy as np
        case, outside = d / "case", d / "outside"
        for f in (case / "out", outside):
            f.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(KERAS_H5, case / "model.h5")
        shutil.copyfile(KERAS_H5, outside / "model.h5")
        np.save(outside / "x.npy", np.random.default_rng(i).normal(size=(2, 5, 4)).astype(np.float32))
        (outside / "victim.onnx").write_bytes(b"victim")
        (outside / "victim.json").write_text("{}")
        src, dst = case / "model.h5", case / "out" / "model.onnx"
        node = {"src": case / "model.onnx", "inputs": case / "x.npy", "dst": dst,
                "report": case / "out" / "report.json", "state": case / ".plan.yaml.rnnconvert-state.json"}[role]
        if role == "src" and kind == "symlink":
            node = case / "linked.h5"
        target = {"src": outside / "model.h5", "inputs": outside / "x.npy", "dst": outside / "victim.onnx"}.get(
            role, outside / "victim.json")
        _node(node, kind, target, (1, 5) if reads else (1, 3))
        args = {"src": [str(node), str(dst)], "inputs": [str(src), str(dst), "--inputs", str(node)],
                "dst": [str(src), str(dst), "--force"], "report": [str(src), str(dst), "--report", str(node)]}.get(role)
        if role == "state":
            (case / "plan.yaml").write_text("jobs:\n- src: model.h5\n  dst: out/model.onnx\n")
            args = ["batch", str(case / "plan.yaml"), "-j1"]
        (d / "args").write_text("\0".join(args))
        return node

    def check(node: Path):
        d = next(p for p in node.parents if (p / "args").exists())
        case, outside = d / "case", d / "outside"
        args = (d / "args").read_text().split("\0")
        before, outside_before = _state(node), _snapshot(outside)
        t0 = time.perf_counter()
        try:
            res = subprocess.run([sys.executable, "-m", "rnnconvert", *args], cwd=case, env=_env(case / "tmp"),
                                 capture_output=True, text=True, timeout=SPECIAL_SECONDS)
        except subprocess.TimeoutExpired:
            return "escape", f"hang: still running after {SPECIAL_SECONDS:.0f}s"
        took = time.perf_counter() - t0
        problems = []
        # The output policy (rnnconvert/outputs.py): a link at an output path is never followed; with
        # --force (DST) or as a report it is replaced by a regular file, its target untouched.
        relinked = kind == "symlink" and role in ("dst", "report") and stat.S_ISREG(os.lstat(node).st_mode)
        if _state(node) != before and not (relinked and res.returncode == 0):
            problems.append(f"the {kind} was replaced or changed")
        if _snapshot(outside) != outside_before:
            problems.append("a file outside the case's folder changed")
        left = _leftovers(case / "tmp", case / "out", case)
        if left:
            problems.append(f"temporaries left: {left[:3]}")
        ok_codes = (0, 2) if kind == "symlink" and role != "state" else (2,)
        err = res.stderr.strip().splitlines()
        if res.returncode not in ok_codes:
            problems.insert(0, f"exit {res.returncode}: {err[-1][:200] if err else ''!r}")
        elif res.returncode == 2 and (len(err) != 1 or not err[0].startswith("rnnconvert: error: ")):
            problems.insert(0, f"exit 2 but not one error line: {res.stderr[:200]!r}")
        if problems:
            return "escape", "; ".join(problems)
        return ("ok" if res.returncode == 0 else "refused"), f"exit {res.returncode} in {took:.1f}s"
    return HostileCase("special", i, f"{kind} as {role}", make, None, check=check)


GENERATORS = {"names": names_gen, "special": special_gen}     # signals: fuzz_hostile_signals.py
