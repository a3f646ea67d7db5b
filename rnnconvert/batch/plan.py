"""Batch plans: `load_plan` reads a YAML plan (`schemas/batch.schema.json`) and validates it whole before
any work starts, every problem reported at once with its location (`jobs[3].dst`); each (job,
destination) pair becomes a `Task` with its options resolved (paths relative to the plan file).
`run` runs the tasks.

Outputs (destinations, emit_module, emit_vectors' files) follow rnnconvert/files/outputs.py's policy, checked
here for the whole plan: inside the plan's folder (links followed) unless the plan says
`allow_outside: true`; never an input of any job (src, inputs, arch), the plan or its state file; never
written by two jobs; never anything but a regular file where something already exists.  Inputs must be
regular files."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..errors import InputError
import bisect

from ..files.outputs import NOT_REGULAR, Index, Outputs, check_input, identity, inside, same
from ..files.text import read_yaml
from ..errors import short_repr
from ..verification.suite import SEED_MAX

PLAN_KEYS = ("version", "defaults", "jobs", "allow_outside")
OPTION_KEYS = ("atol", "rtol", "seed", "inputs", "arch", "keras_version", "emit_module", "emit_vectors",
               "from", "to", "allow_nonfinite", "layer", "accept_windows_paths", "external_data", "strict",
               "full_suite", "output", "if", "quantize", "stateful")
FLAG_OPTIONS = ("allow_nonfinite", "accept_windows_paths", "external_data", "strict", "full_suite", "stateful")
ONLY_FOR = {"quantize": ("tflite",), "stateful": ("onnx", "tflite")}     # write options some formats take
TAKERS = {"quantize": "a TFLite destination (.tflite)", "stateful": "an ONNX or TFLite destination (.onnx, .tflite)"}      # the CLI's --allow-nonfinite, ...
JOB_KEYS = ("src", "dst", *OPTION_KEYS)
PATH_OPTIONS = ("inputs", "emit_module", "emit_vectors")


@dataclass
class Task:
    job: int                 # index in the plan's jobs
    location: str            # "jobs[2].dst" or "jobs[2].dst[1]"
    src: str                 # as written in the plan
    dst: str
    src_path: str            # resolved
    dst_path: str
    options: dict            # resolved paths
    # what the task's DST companions (a C header, a script's weights: named after DST's stem, beside it)
    # must not be, set by load_plan: (role, path) of the plan's inputs and (location, path) of other
    # tasks' outputs in DST's folder whose names begin with DST's stem; everything else about the task's
    # outputs was checked for the whole plan
    inputs_of_plan: tuple = ()
    outputs_of_others: tuple = ()

    def policy(self):
        """The task's output policy (rnnconvert/files/outputs.py), knowing the plan's paths beside DST."""
        policy = Outputs()
        for role, path in self.inputs_of_plan:
            policy.add_input(path, role)
        for loc, path in self.outputs_of_others:
            policy.add_output(path, loc)
        return policy


@dataclass
class Plan:
    path: str
    jobs: list
    tasks: list[Task]

    @property
    def state_path(self) -> str:
        d, name = os.path.split(os.path.abspath(self.path))
        return os.path.join(d, f".{name}.rnnconvert-state.json")


# ------------------------------------------------------------------------------------ validation

def load_plan(path) -> Plan:
    """Read and validate a plan; raise InputError listing every problem with its location."""
    path = os.fspath(path)
    if os.path.exists(path):          # a missing plan is read_yaml's "no such plan file"
        check_input(path, "a batch plan (YAML)")
    raw = read_yaml(path, "plan")
    problems: list[str] = []
    base = os.path.dirname(os.path.abspath(path))
    tasks = _validate(raw, base, problems)
    if tasks:
        _check_outputs(Plan(path, raw["jobs"], tasks), raw.get("allow_outside") is True, problems)
        _share_paths(Plan(path, raw["jobs"], tasks))
    if problems:
        n = len(problems)
        raise InputError(f"invalid plan, nothing was run; {n} problem{'s' if n > 1 else ''}: " + "; ".join(problems),
                         path=path)
    return Plan(path, raw["jobs"], tasks)


def _type_problem(where, value, expected) -> str:
    return f"{where}: expected {expected}, found {type(value).__name__} {short_repr(value)}"


def _check_options(where: str, entry: dict, base: str, problems: list) -> None:
    for key in ("atol", "rtol"):
        if key in entry:
            v = entry[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                problems.append(_type_problem(f"{where}.{key}", v, "a finite number >= 0"))
    if "seed" in entry and (isinstance(entry["seed"], bool) or not isinstance(entry["seed"], int)
                            or not 0 <= entry["seed"] <= SEED_MAX):
        problems.append(_type_problem(f"{where}.seed", entry["seed"], f"an integer from 0 to {SEED_MAX}"))
    for key in FLAG_OPTIONS:
        if key in entry and not isinstance(entry[key], bool):
            problems.append(_type_problem(f"{where}.{key}", entry[key], "true or false"))
    if "layer" in entry and (not isinstance(entry["layer"], str) or not entry["layer"]):
        problems.append(_type_problem(f"{where}.layer", entry["layer"], "a layer name (rnnconvert inspect lists them)"))
    if "output" in entry and (not isinstance(entry["output"], str) or not entry["output"]):
        problems.append(_type_problem(f"{where}.output", entry["output"], "a graph output name"))
    if "if" in entry and (not isinstance(entry["if"], dict) or not entry["if"] or not all(
            isinstance(k, str) and k and v in ("then", "else") for k, v in entry["if"].items())):
        problems.append(_type_problem(f"{where}.if", entry["if"], "a mapping of If node names to then or else"))
    if "quantize" in entry and entry["quantize"] != "dynamic":
        problems.append(_type_problem(f"{where}.quantize", entry["quantize"], "dynamic"))
    if "keras_version" in entry and entry["keras_version"] not in (2, 3):
        problems.append(f"{where}.keras_version: expected 2 or 3, found {short_repr(entry['keras_version'])}")
    for key in (*PATH_OPTIONS, "from", "to"):
        if key in entry and not isinstance(entry[key], str):
            problems.append(_type_problem(f"{where}.{key}", entry[key], "a string"))
    if "arch" in entry and not isinstance(entry["arch"], (str, dict)):
        problems.append(_type_problem(f"{where}.arch", entry["arch"], "a path or a mapping"))
    for key in ("inputs",) + (("arch",) if isinstance(entry.get("arch"), str) else ()):
        if isinstance(entry.get(key), str):
            problem = _not_a_file(os.path.join(base, entry[key]), entry[key])
            if problem:
                problems.append(f"{where}.{key}: {problem}")
    for key in ("from", "to"):
        if isinstance(entry.get(key), str):
            from ..formats import FORMATS
            if entry[key] not in FORMATS:
                problems.append(f"{where}.{key}: unknown format '{entry[key]}'; known: {', '.join(FORMATS)}")


def _not_a_file(path, shown) -> str | None:
    """Why an input path cannot be read ("no such file 'x'", "'x' is not a regular file"), or None."""
    if os.path.isfile(path):
        return None
    return f"'{shown}' is not a regular file" if os.path.exists(path) else f"no such file '{shown}'"


def _unknown_keys(where, entry: dict, known, problems) -> None:
    for key in entry:
        if key not in known:
            problems.append(f"{where}: unknown key '{key}' (known: {', '.join(known)})")


def _nul_strings(value, where: str):
    """Locations (`jobs[0].dst`) of the strings holding a NUL byte in a plan's mappings and lists."""
    if isinstance(value, str) and "\0" in value:
        yield where
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _nul_strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nul_strings(v, f"{where}[{i}]")


def _validate(raw, base: str, problems: list) -> list[Task]:
    from .. import formats
    from ..errors import RnnConvertError
    if not isinstance(raw, dict):
        problems.append(_type_problem("plan", raw, "a mapping with 'jobs'"))
        return []
    nul = list(_nul_strings(raw, ""))
    if nul:     # no path can hold one (the command line refuses them the same way)
        problems.extend(f"{where}: holds a NUL byte, which no path or name can hold" for where in nul)
        return []
    _unknown_keys("plan", raw, PLAN_KEYS, problems)
    if raw.get("version", 1) != 1:
        problems.append(f"version: expected 1, found {short_repr(raw['version'])}")
    if "allow_outside" in raw and not isinstance(raw["allow_outside"], bool):
        problems.append(_type_problem("allow_outside", raw["allow_outside"], "true or false"))
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append(_type_problem("defaults", defaults, "a mapping"))
        defaults = {}
    _unknown_keys("defaults", defaults, OPTION_KEYS, problems)
    _check_options("defaults", defaults, base, problems)
    jobs = raw.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        problems.append("jobs: expected a non-empty list of jobs" if jobs is None or jobs == []
                        else _type_problem("jobs", jobs, "a non-empty list"))
        return []
    tasks, written = [], {}
    for i, job in enumerate(jobs):
        where = f"jobs[{i}]"
        if not isinstance(job, dict):
            problems.append(_type_problem(where, job, "a mapping with src and dst"))
            continue
        _unknown_keys(where, job, JOB_KEYS, problems)
        _check_options(where, job, base, problems)
        options = {**defaults, **job}
        src = job.get("src")
        src_path = None
        if src is None:
            problems.append(f"{where}.src: missing (the model file to convert)")
        elif not isinstance(src, str):
            problems.append(_type_problem(f"{where}.src", src, "a path"))
        else:
            src_path = os.path.join(base, src)
            if _not_a_file(src_path, src):
                problems.append(f"{where}.src: {_not_a_file(src_path, src)}")
            else:
                try:
                    formats.for_reading(src_path, options.get("from") if isinstance(options.get("from"), str) else None)
                except RnnConvertError:
                    problems.append(f"{where}.src: cannot tell the format of '{src}' (known: {', '.join(formats.FORMATS)}, "
                                    "or name it with 'from')")
        dst = job.get("dst")
        if dst is None:
            problems.append(f"{where}.dst: missing (one path or a list of paths to write)")
            continue
        dsts = [(f"{where}.dst", dst)] if isinstance(dst, str) else (
            [(f"{where}.dst[{j}]", d) for j, d in enumerate(dst)] if isinstance(dst, list) and dst else None)
        if dsts is None:
            problems.append(_type_problem(f"{where}.dst", dst, "a path or a non-empty list of paths"))
            continue
        torch_dsts = onnx_dsts = 0
        takers = {key: 0 for key in ONLY_FOR}
        for loc, d in dsts:
            if not isinstance(d, str):
                problems.append(_type_problem(loc, d, "a path"))
                continue
            dst_path = os.path.normpath(os.path.join(base, d))
            try:
                fmt = formats.for_writing(dst_path, options.get("to") if isinstance(options.get("to"), str) else None)
            except RnnConvertError:
                suffixes = " ".join(x for f in formats.FORMATS.values() if f.writes for x in f.suffixes)
                problems.append(f"{loc}: unknown output suffix '{os.path.splitext(d)[1] or 'none'}' "
                                f"(rnnconvert writes {suffixes})")
                continue
            torch_dsts += fmt.name in ("torch", "safetensors")
            onnx_dsts += fmt.name == "onnx"
            takers = {key: n + (fmt.name in ONLY_FOR[key]) for key, n in takers.items()}
            if src_path and os.path.abspath(dst_path) == os.path.abspath(src_path):
                problems.append(f"{loc}: '{d}' is the job's source")
            elif dst_path in written:
                problems.append(f"{loc}: '{d}' is also written by {written[dst_path]}")
            written[dst_path] = loc
            tasks.append(Task(i, loc, src if isinstance(src, str) else "", d, src_path or "", dst_path,
                              _resolve(options, base, fmt.name, len(dsts) > 1, d)))
        if "emit_module" in job and torch_dsts != 1:
            problems.append(f"{where}.emit_module: goes with exactly one PyTorch destination "
                            f"(.pt, .pth, .safetensors), the job has {torch_dsts}")
        if job.get("external_data") and not onnx_dsts:
            problems.append(f"{where}.external_data: goes with an ONNX destination (.onnx), the job has none")
        for key, n in takers.items():
            if job.get(key) and not n:
                problems.append(f"{where}.{key}: goes with {TAKERS[key]}, the job has none")
    return tasks


def task_outputs(task: Task, base: str) -> list[tuple[str, str, str]]:
    """(location, shown, resolved path) of every file the task writes but its DST's companions; shown: DST
    as the plan writes it, the others relative to the plan's folder `base`."""
    from ..verification.vectors import outputs as vector_files
    where = task.location.split(".")[0]
    out = [(task.location, task.dst, task.dst_path)]
    paths = [("emit_module", task.options["emit_module"])] if task.options.get("emit_module") else []
    if task.options.get("emit_vectors"):
        paths += [("emit_vectors", p) for p in vector_files(task.options["emit_vectors"])]
    return out + [(f"{where}.{key}", os.path.relpath(p, base), p) for key, p in paths]


def plan_inputs(plan: Plan) -> list[tuple[str, str]]:
    """(path, role) of every file the plan's run reads or keeps: the plan, its state, sources and hints."""
    found = [(plan.path, "the plan file"), (plan.state_path, "the plan's state file")]
    for t in plan.tasks:
        where = t.location.split(".")[0]
        found += [(t.src_path, f"the source of {where}")] if t.src_path else []
        found += [(t.options[k], f"the {k} of {where}") for k in ("inputs", "arch") if isinstance(t.options.get(k), str)]
    return found


def plan_outputs(plan: Plan) -> Outputs:
    """The plan's output policy: its inputs registered, every job's outputs claimed (for --report)."""
    policy = Outputs()
    for path, role in plan_inputs(plan):
        policy.add_input(path, role)
    for t in plan.tasks:
        for loc, _, path in task_outputs(t, os.path.dirname(os.path.abspath(plan.path))):
            policy.add_output(path, loc)
    return policy


def _share_paths(plan: Plan) -> None:
    """Give each task the plan's paths its DST's companions could collide with (Task.policy): those in
    DST's folder whose names begin with DST's stem, found by bisection (no scan per task)."""
    base = os.path.dirname(os.path.abspath(plan.path))
    by_folder: dict[str, list] = {}
    for path, role in plan_inputs(plan):
        by_folder.setdefault(_folder(path), []).append((os.path.basename(path), "in", role, path, None))
    for t in plan.tasks:
        for loc, _, path in task_outputs(t, base):
            by_folder.setdefault(_folder(path), []).append((os.path.basename(path), "out", loc, path, id(t)))
    for entries in by_folder.values():
        entries.sort(key=lambda e: e[0])
    for t in plan.tasks:
        entries = by_folder.get(_folder(t.dst_path), [])
        stem = os.path.splitext(os.path.basename(t.dst_path))[0]
        near = entries[bisect.bisect_left(entries, stem, key=lambda e: e[0]):]
        near = [e for e in _prefixed(near, stem) if e[4] != id(t) and e[0][len(stem):len(stem) + 1] in ("", ".", "_")]
        t.inputs_of_plan = tuple((role, path) for _, kind, role, path, _ in near if kind == "in")
        t.outputs_of_others = tuple((loc, path) for _, kind, loc, path, _ in near if kind == "out")


def _folder(path) -> str:
    """The real folder holding the entry `path` (the entry itself is not followed)."""
    return os.path.realpath(os.path.dirname(os.path.abspath(path)))


def _prefixed(entries, stem):
    for e in entries:
        if not e[0].startswith(stem):
            return
        yield e


def _is_dst(location: str) -> bool:
    return location.split(".", 1)[1].startswith("dst")


def _check_outputs(plan: Plan, allow_outside: bool, problems: list) -> None:
    """rnnconvert/files/outputs.py's policy over the whole plan (the module docstring); a DST that is its own job's source
    or another DST was reported already."""
    base = os.path.dirname(os.path.abspath(plan.path))
    inputs, written = Index(), Index()
    for p, role in plan_inputs(plan):
        inputs.add(identity(p), role)
    seen = set()
    for t in plan.tasks:
        for loc, shown, path in task_outputs(t, base):
            if (loc, path) in seen:          # a job's emit_module is listed with each of its tasks
                continue
            seen.add((loc, path))
            ident, is_dst = identity(path), loc == t.location
            if is_dst and t.src_path and same(ident, identity(t.src_path)):
                continue                     # reported as "is the job's source"
            problem = None
            if not allow_outside and not inside(path, base):
                problem = "is outside the plan's folder; write inside it, or set allow_outside: true in the plan"
            elif os.path.lexists(path) and not (os.path.isfile(path) or os.path.islink(path)):
                problem = NOT_REGULAR
            else:
                role, other = inputs.find(ident), written.find(ident)
                if role:
                    problem = f"is {role}"
                elif other and not (is_dst and _is_dst(other)):
                    problem = f"is also written by {other}"
            if problem:
                problems.append(f"{loc}: '{shown}' {problem}")
            written.add(ident, loc)


def _resolve(options: dict, base: str, fmt: str, several: bool, dst: str) -> dict:
    out = {k: v for k, v in options.items() if k in OPTION_KEYS}
    for key in PATH_OPTIONS + ("arch",):
        if isinstance(out.get(key), str):
            out[key] = os.path.normpath(os.path.join(base, out[key]))
    if "emit_vectors" in out and several:
        out["emit_vectors"] = os.path.join(out["emit_vectors"], os.path.basename(dst))
    if fmt != "keras":
        out.pop("keras_version", None)
    if fmt not in ("torch", "safetensors"):
        out.pop("emit_module", None)
    if fmt != "onnx":
        out.pop("external_data", None)
    for key, kinds in ONLY_FOR.items():
        if fmt not in kinds:
            out.pop(key, None)
    return out


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(p) for p in text.split("/"))
        if not 1 <= i <= n:
            raise ValueError
    except ValueError:
        raise InputError(f"--shard expects I/N with 1 <= I <= N, found '{text}'") from None
    return i, n
