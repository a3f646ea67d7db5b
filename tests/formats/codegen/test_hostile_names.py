"""Names that are code never run: every code generator and every writer that stores names, fed the
hostile-names files of tests/hostile_names.py through the CLI with verification (so gcc, node, python,
torch, onnxruntime, Keras or Octave run what was written), ends with exit 0, the oracle in the report,
no marker file anywhere and the names kept (or mapped as documented); plus the escaping helpers of
codegen/literals.py checked by each language's own parser, the scratch folder and environment that
generated code runs in, and a scan of the generators for names interpolated without a helper.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hostile_names as hn
from conftest import ROOT
from rnnconvert import api
from rnnconvert.files import scratch
from rnnconvert.cli.commands import cli
from rnnconvert.formats import literals
from rnnconvert.formats.literals import comment, identifier, js_str, matlab_str, py_str
from progress_lines import without_progress

ORACLE = {".py": "python(dst)", ".mjs": "node(dst)", ".c": "gcc(dst)", ".pt": "torch(dst)",
          ".safetensors": "torch(dst)", ".onnx": "onnxruntime(dst)", ".h5": "keras(dst)", ".keras": "keras(dst)",
          ".mat": "octave(dst)", ".rnnc": "reference(dst)"}
EMIT = {"c_test": ("c", ["--emit-test"]), "pt_module": ("pt", ["--emit-module", "module.py"]),
        "safetensors_module": ("safetensors", ["--emit-module", "module.py"])}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("names")
    return folder, hn.write_all(folder)


def _no_marker(*folders):
    found = [str(p) for f in folders for p in Path(f).rglob(hn.MARK_NAME)]
    assert found == [], f"a payload ran: {found}"


def _convert(runner, src, dst, *extra):
    res = runner.invoke(cli, [str(src), str(dst), *map(str, extra)])
    return res.exit_code, res.output, without_progress(res.stderr)


def _checked(out: str, dst: str) -> None:
    """The report shows the destination's own runtime ran every input, and the verdict."""
    oracle = ORACLE[os.path.splitext(dst)[1]]
    rows = [line for line in out.splitlines() if line.strip().startswith(oracle)]
    assert len(rows) >= 4 and all(row.rstrip().endswith("ok") for row in rows), out
    assert out.rstrip().endswith("EQUIVALENT") and "NOT EQUIVALENT" not in out


# ------------------------------------------------------------------ payloads aimed at one language

ADDRESS_SPACE = 8 << 30     # as tests/fuzzing.py: a runaway allocation fails instead of swapping


def _limits():
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _snapshot(folder: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("lang,dst,extra", [("py", "out.py", []), ("js", "out.mjs", []), ("c", "out.c", []),
                                            ("torch", "out.pt", ["--emit-module", "out_module.py"])])
def test_payload_aimed_at_its_language_never_runs(sources, tmp_path, lang, dst, extra):
    """In a real process (cwd and TMPDIR the test's folders, 5 minutes and 8 GiB of address space at
    most): before names were escaped, each of these exited 0 with the marker created (the generated
    docstring or comment was closed by the name).  The sources are unchanged and no temporary is left."""
    folder, paths = sources
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    before = _snapshot(folder)
    res = subprocess.run([sys.executable, "-m", "rnnconvert", paths[f"names_{lang}.rnnc"], str(work / dst), *extra],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, preexec_fn=_limits,
                         env=os.environ | {"PYTHONPATH": str(ROOT), "TMPDIR": str(tmp)})
    assert res.returncode == 0, res.stderr
    _checked(res.stdout, dst)
    _no_marker(folder, tmp_path)
    assert _snapshot(folder) == before and list(tmp.iterdir()) == []
    for f in work.iterdir():
        if f.suffix in (".py", ".mjs", ".c", ".h"):
            f.read_text(encoding="ascii")       # every generated text is ASCII: no name's bytes in it


# ------------------------------------------------------------------ every reader into every generator

@pytest.mark.parametrize("src", hn.SOURCES)
@pytest.mark.parametrize("gen", ["py", "mjs", "c", "c_test", "pt_module", "safetensors_module"])
def test_generated_code_from_every_reader(runner, sources, tmp_path, src, gen):
    folder, paths = sources
    suffix, extra = EMIT.get(gen, (gen, []))
    dst = tmp_path / f"out.{suffix}"
    extra = [str(tmp_path / e) if e.endswith(".py") else e for e in extra]
    code, out, err = _convert(runner, paths[src], dst, *extra)
    assert (code, err) == (0, ""), err
    _checked(out, str(dst))
    if gen == "c_test":       # the golden-vector program, compiled and run as a user would
        exe = tmp_path / "out_test"
        build = scratch.run([shutil.which("gcc"), "-std=c99", "-Wall", "-Werror", str(dst), str(tmp_path / "out_test.c"),
                             "-o", str(exe), "-lm"])
        assert build.returncode == 0, build.stderr
        ran = scratch.run([str(exe)])
        assert (ran.returncode, ran.stdout) == (0, "ok\n")
    if gen.endswith("module"):  # the emitted module, imported and run in a process of its own
        probe = ("import sys, numpy as np, torch; sys.path.insert(0, sys.argv[1]); import module; "
                 "m = module.load(sys.argv[2]); print(m(torch.zeros(1, 3, 2)).shape)")
        ran = scratch.run([sys.executable, "-c", probe, str(tmp_path), str(dst)])
        assert (ran.returncode, ran.stdout) == (0, "torch.Size([1, 3, 2])\n"), ran.stderr
    _no_marker(folder, tmp_path, Path.cwd())


# ------------------------------------------------------------------ writers that store names

def _keras_name(name: str, used: set) -> str:
    """The rule the Keras writer states in its note: letters, digits, '_', '-', a letter first, unique."""
    base = re.sub(r"[^A-Za-z0-9_\-]", "_", name).strip("_") or "layer"
    base = base if base[0].isalpha() else "layer_" + base
    out, k = base, 1
    while out in used:
        out, k = f"{base}_{k}", k + 1
    used.add(out)
    return out


def _expected_names(m, suffix: str) -> dict:
    names = hn.names_of(m)
    if suffix in (".h5", ".keras"):
        used: set = set()
        inp = _keras_name(names["input"], used)
        model = re.sub(r"[^A-Za-z0-9_\-]", "_", names["model"]).strip("_")
        return {"model": model if model[:1].isalpha() else "sequential", "input": inp, "output": "output",
                "layers": [_keras_name(n, used) for n in names["layers"]]}
    if suffix == ".mat":      # a MATLAB layer array names its layers only
        return names | {"model": "layers", "input": "input", "output": "output"}
    return names


@pytest.mark.parametrize("suffix", [".onnx", ".h5", ".keras", ".mat", ".rnnc", ".safetensors", ".pt"])
def test_writer_keeps_or_maps_names_and_its_reader_passes_them_on_safely(runner, sources, tmp_path, suffix):
    folder, paths = sources
    dst = tmp_path / f"stored{suffix}"
    code, out, err = _convert(runner, paths["names.rnnc"], dst)
    assert (code, err) == (0, ""), err
    _checked(out, str(dst))
    assert hn.names_of(api.read(dst)) == _expected_names(hn.model(os.path.join(folder, hn.MARK_NAME)), suffix)
    code, out, err = _convert(runner, dst, tmp_path / "again.py")     # the names read back, into code
    assert (code, err) == (0, ""), err
    _checked(out, "again.py")
    _no_marker(folder, tmp_path)


@pytest.mark.parametrize("suffix", [".py", ".pt", ".mat"])
def test_destination_file_name_is_text_in_generated_code(runner, sources, tmp_path, monkeypatch, suffix):
    """The file's own name in the script's docstring, the emitted module's docstring (run in this
    process by the torch oracle) and Octave's command line: exit 0, the oracle ran, no marker in the
    working directory (where each payload would create it)."""
    folder, paths = sources
    monkeypatch.chdir(tmp_path)
    dst = tmp_path / hn.destination_names()[suffix]
    extra = ["--emit-module", tmp_path / "module.py"] if suffix == ".pt" else []
    code, out, err = _convert(runner, paths["names_py.rnnc"], dst, *extra)
    assert (code, err) == (0, ""), err
    _checked(out, str(dst))
    assert dst.exists()
    _no_marker(folder, tmp_path)


def test_c_header_name_that_include_cannot_hold_is_refused(runner, sources, tmp_path):
    folder, paths = sources
    code, out, err = _convert(runner, paths["names.rnnc"], tmp_path / 'a"b.c')
    assert code == 2
    assert err == ("rnnconvert: error: the header's name 'a\"b.h' goes into #include \"...\", which cannot hold a "
                   "quote, a backslash, '?' or a control character; choose another file name\n")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ the helpers, by each language's parser

TEXTS = [*hn.payloads("/tmp/x'y\"z").values(), "", "\\", "a\\", "*/", "/*", "//", '"""', "'''", "??/", "??=",
         "</script>", "<!--", "\u2028\u2029\u0085\r\n\v\f\x00\x1b[31m", "\ud800", "é模😀", "%{\n%}", "`${x}`"]


@pytest.mark.parametrize("text", TEXTS)
def test_comment_text_is_inert_in_every_language(text):
    c = comment(text)
    assert c.isascii() and c.isprintable() and len(c.splitlines()) <= 1
    for bad in ("*/", "/*", "//", '"', "??", "</", "`"):
        assert bad not in c
    assert not c.endswith("\\")
    assert ast.literal_eval(f'"""{c}"""') == text            # a docstring shows the name itself
    compile(f"# {c}\nx = 1\n", "<comment>", "exec")


@pytest.mark.parametrize("text", TEXTS)
def test_python_string_literal_round_trips(text):
    assert ast.literal_eval(py_str(text)) == text and py_str(text).isascii()


def test_js_and_matlab_literals_round_trip_in_node_and_octave(tmp_path):
    texts = [t for t in TEXTS if "\ud800" not in t]
    js = "const s = [" + ",\n".join(js_str(t) for t in texts) + "];\n// " + "\n// ".join(comment(t) for t in texts) + \
        "\nprocess.stdout.write(JSON.stringify(s));\n"
    (tmp_path / "t.mjs").write_text(js, encoding="ascii")
    ran = scratch.run([shutil.which("node"), str(tmp_path / "t.mjs")])
    assert ran.returncode == 0 and json.loads(ran.stdout) == texts, ran.stderr
    assert all("</" not in js_str(t) and "\u2028" not in js_str(t) for t in texts)
    octave = shutil.which("octave-cli") or shutil.which("octave")
    assert octave, "Octave is needed to check matlab_str"
    lines = [f"fprintf('%s\\n', sprintf('%d ', double({matlab_str(t)})));" for t in texts]
    ran = scratch.run([octave, "--no-gui", "--quiet", "--norc", "--eval", "\n".join(lines)], timeout=120)
    assert ran.returncode == 0, ran.stderr
    got = [bytes(int(v) for v in line.split()) for line in ran.stdout.splitlines()]
    assert got == [t.encode("utf-8") for t in texts]


def test_identifiers_are_safe_unique_and_deterministic():
    taken: set = set()
    names = [*TEXTS, "int", "class", "function", "end", "9lives", "a" * 300, "a" * 299 + "b", "x", "x", "x_2"]
    ids = [identifier(n, taken) for n in names]
    assert len(set(ids)) == len(ids) == len(taken)
    for i in ids:
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", i) and i not in literals.RESERVED, i
    assert ids == [identifier(n, t) for t in [set()] for n in names]
    assert (identifier("int"), identifier("9lives"), identifier("my-model")) == ("int_", "m_9lives", "my_model")


# ------------------------------------------------------------------ where generated code runs

def test_generated_code_runs_in_a_scratch_folder_with_a_scrubbed_environment(tmp_path, monkeypatch):
    for var, value in (("PYTHONSTARTUP", str(tmp_path / "s.py")), ("NODE_OPTIONS", "--require /x"),
                       ("LD_PRELOAD", "/x.so"), ("PYTHONPATH", str(tmp_path)), ("SECRET_TOKEN", "x")):
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)
    probe = "import json, os; print(json.dumps([os.getcwd(), dict(os.environ)]))"
    ran = scratch.run([*scratch.python(), "-c", probe])
    cwd, env = json.loads(ran.stdout)
    assert sorted(env) == ["HOME", "LANG", "LC_ALL", "PATH", "TEMP", "TMP", "TMPDIR"]
    assert env["HOME"] == env["TMPDIR"] == cwd != str(tmp_path) and not os.path.exists(cwd)
    assert env["LANG"] == env["LC_ALL"] == "C"


def test_a_numpy_module_beside_the_script_is_not_imported(sources, tmp_path):
    """python runs the script isolated: a `numpy.py` planted beside the destination is not imported."""
    folder, paths = sources
    mark = tmp_path / hn.MARK_NAME
    (tmp_path / "numpy.py").write_text(f"import pathlib\npathlib.Path({str(mark)!r}).touch()\n")
    m = api.read(paths["names.rnnc"])
    m.name, m.layers[0].name, m.layers[1].name, m.layers[2].name = "plain", "lstm", "dense", "act"
    api.write(m, tmp_path / "s.py")
    from rnnconvert.formats.codegen import numpy_script
    x = np.zeros((1, 3, 2), np.float32)
    np.testing.assert_allclose(numpy_script.run(tmp_path / "s.py", x, m), api.predict(m, x), rtol=1e-5, atol=1e-6)
    assert not mark.exists()


# ------------------------------------------------------------------ no name reaches code unescaped

GENERATORS = ["formats/codegen/numpy_script.py", "formats/codegen/js.py", "formats/codegen/c.py",
              "formats/codegen/c_cells.py", "formats/codegen/c_layers.py", "formats/codegen/c_golden.py",
              "formats/torch/module_code.py", "formats/torch/module_front.py", "formats/matlab/runtime.py"]
HELPERS = {"comment", "py_str", "js_str", "matlab_str", "identifier"}
TEXTY = re.compile(r"\b(name|names|model\.name|layer_names|variant|stream_blocker|_refusal|basename|path|src|xin|yout|"
                   r"SCRIPTS|weights_name|head_name)\b")
# Values that mention a name but are code by construction, and why:
SAFE = {
    "a.name", "act.name", "d.name", "d.name[0]",   # activation names (validated), direction names (fixed)
    "name", "n", "act", "len(self.names)",         # generated identifiers (act0, act1_) and counts
    "_access(spec.path)", "access(spec.path)",     # `self.<identifier>` or get_submodule(<py_str>)
    "head_name",          # the header's file name, checked against c._UNINCLUDABLE before it is written
    "names",              # module_code: layer names already through comment()
    "src",                # c_layers: the C expression a layer reads (`cur`, `buf0`)
}
MESSAGE_FUNCTIONS = {"_refusal"}    # text for errors and notes; what reaches code goes through js_str


def _unescaped(path: Path) -> list[str]:
    """f-string values that mention a name or path and are not passed through a literals helper;
    f-strings raised as errors or kept as notes (appended, assigned to `notes`, returned by write) are
    messages, not code, and are left out."""
    tree = ast.parse(path.read_text())
    messages = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) or (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "append"
                                           and getattr(node.func.value, "id", "") in ("notes", "problems")) \
                or (isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "notes") \
                or (isinstance(node, ast.FunctionDef) and node.name in MESSAGE_FUNCTIONS):
            messages |= {id(n) for n in ast.walk(node)}
        if isinstance(node, ast.FunctionDef) and node.name == "write":    # write() returns its notes
            messages |= {id(n) for r in ast.walk(node) if isinstance(r, ast.Return) for n in ast.walk(r)}
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FormattedValue) and id(node) not in messages:
            v = node.value
            if isinstance(v, ast.Call) and getattr(v.func, "id", None) in HELPERS:
                continue
            src = ast.unparse(v)
            if TEXTY.search(src) and src not in SAFE:
                bad.append(f"{path.name}:{node.lineno}: {{{src}}}")
    return bad


def test_generators_interpolate_names_only_through_the_helpers():
    bad = [b for g in GENERATORS for b in _unescaped(ROOT / "rnnconvert" / g)]
    assert bad == []


def test_names_in_error_lines_cannot_split_them_or_act_on_the_terminal(tmp_path):
    """A path or name holding a newline, ESC or U+2028 is printed escaped: one line, no control sequence."""
    from click.testing import CliRunner

    from rnnconvert.cli.commands import cli
    from rnnconvert.errors import printable
    res = CliRunner().invoke(cli, [str(tmp_path / "x\n\x1b[2Jy\u2028.onnx"), str(tmp_path / "out.onnx")])
    assert res.exit_code == 2
    assert res.stderr == f"rnnconvert: error: {tmp_path}/x\\x0a\\x1b[2Jy\\u2028.onnx: no such file\n"
    assert printable("a\nb\x9bc\u202ed", keep_newlines=True) == "a\nb\\x9bc\\u202ed"
