"""The tree shows the design, and stays that way: the import contracts in pyproject.toml hold (packages import
only the packages below them, formats never import each other, no import cycle between the modules of any
package), each contract fails when an import that breaks it is added, every package says what it owns and
may import, no module grows past 400 lines, and the README's picture of the packages is the contract's order.

import-linter reads every import statement, those inside functions included, so a lazy import cannot hide
an upward arrow."""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rnnconvert"
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.argv = ['lint-imports', *sys.argv[1:]]; lint_imports_command()", "--no-cache", "--no-logo"]
MAX_LINES = 400


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def lint(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the package under `root`, with the contracts of this checkout's pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([*LINT, str(ROOT / "pyproject.toml")], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_import_contracts_hold():
    res = lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    names = [c["name"] for c in contracts()]
    for name in names:
        assert f"{name} KEPT" in res.stdout
    assert f"Contracts: {len(names)} kept, 0 broken." in res.stdout


# Each line added to a copy of the package, and the contract it must break.  The imports sit inside a
# function where the real code keeps its lazy imports.
BREAKS = {
    "model imports verification (upward)": (
        "model/core.py", "\n\ndef _upward():\n    from ..verification import suite\n    return suite\n",
        "Packages import only the ones below them BROKEN", "rnnconvert.model.core -> rnnconvert.verification.suite"),
    "a format imports the CLI (upward)": (
        "formats/onnx/reader.py", "\n\ndef _upward():\n    from ...cli import render\n    return render\n",
        "Packages import only the ones below them BROKEN", "rnnconvert.formats.onnx.reader -> rnnconvert.cli.render"),
    "the reference pass imports a format (upward)": (
        "reference/cells.py", "\n\ndef _upward():\n    from ..formats import onnx\n    return onnx\n",
        "Packages import only the ones below them BROKEN", "rnnconvert.reference.cells -> rnnconvert.formats.onnx"),
    "one format imports another": (
        "formats/keras/writer.py", "\n\ndef _across():\n    from ..onnx import writer\n    return writer\n",
        "Formats never import each other BROKEN",
        "rnnconvert.formats.keras.writer -> rnnconvert.formats.onnx.writer"),
    "the shared Keras layer JSON imports a format": (
        "formats/keras_json/plan.py", "\n\ndef _down():\n    from ..tfjs import writer\n    return writer\n",
        "Keras's shared layer JSON imports no format package BROKEN",
        "rnnconvert.formats.keras_json.plan -> rnnconvert.formats.tfjs.writer"),
    "two modules of one package import each other": (
        "model/gates.py", "\n\ndef _cycle():\n    from . import layouts\n    return layouts\n",
        "No import cycles between the modules of any package BROKEN", "No cycles are allowed in rnnconvert.model."),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_an_import_against_the_design_breaks_its_contract(tmp_path, case):
    module, added, broken, named = BREAKS[case]
    shutil.copytree(PACKAGE, tmp_path / "rnnconvert", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "rnnconvert" / module, "a") as f:
        f.write(added)
    res = lint(tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert broken in res.stdout
    assert named in res.stdout


def packages() -> list[Path]:
    return sorted(p.parent for p in PACKAGE.rglob("__init__.py"))


@pytest.mark.parametrize("package", packages(), ids=lambda p: ".".join(p.relative_to(ROOT).parts))
def test_every_package_says_what_it_owns_and_may_import(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    assert doc, f"{package.relative_to(ROOT)}/__init__.py has no docstring"
    if package.parent == PACKAGE or package == PACKAGE:
        assert package == PACKAGE or ("Owns" in doc and "May import" in doc), doc


def test_no_module_is_longer_than_400_lines():
    long = {p.relative_to(ROOT).as_posix(): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_readme_picture_is_the_layers_contract():
    """README "How it is built" draws the packages top down in the order the layers contract checks."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## How it is built", 1)[1].split("\n## ", 1)[0]
    picture = section.split("```", 2)[1]
    drawn = [m.group(1) for m in re.finditer(r"^\s*(?:rnnconvert\.)?([a-z_]+)\s{2,}", picture, re.M)]
    layers = next(c for c in contracts() if c["type"] == "layers")["layers"]
    assert drawn == layers


@pytest.mark.parametrize("args", [["--help"], ["formats"], ["convert", "--help"]], ids=" ".join)
def test_the_light_commands_import_no_numpy(args):
    """`--help` and `formats` stay fast: nothing they import pulls in numpy, h5py or onnx (the packages keep
    their heavy imports inside the functions that need them)."""
    code = ("import sys\nfrom rnnconvert.cli import main\nsys.argv = ['rnnconvert', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numpy', 'h5py', 'onnx') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "[]"
