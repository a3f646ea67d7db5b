"""The options more than one command takes, each defined once: `check_options` (verification's),
`matlab_options`, `windows_option`, `arch_option`, `nonfinite_option`, `strict_option`; the checked types `Tolerance`
and `Seed` (a bad value: one line, exit 2); and `_read_options`, which turns them into a reader's options.
"""
from __future__ import annotations

import click

from .app import CliError

class Tolerance(click.ParamType):
    """--atol/--rtol: a finite number >= 0, else one line and exit 2."""
    name = "float"

    def convert(self, value, param, ctx):
        from ..errors import InputError
        from ..verification.checks import check_tolerance
        try:
            return check_tolerance(param.opts[0], value)
        except InputError:
            raise CliError(f"{param.opts[0]} {value}: a tolerance must be a finite number >= 0", 2) from None


class Seed(click.ParamType):
    """--seed: an integer the input suite accepts (0 to suite.SEED_MAX), else one line and exit 2."""
    name = "integer"

    def convert(self, value, param, ctx):
        from ..errors import InputError
        from ..verification.suite import check_seed
        from ..verification.suite import SEED_MAX
        try:
            return check_seed(value if isinstance(value, int) else int(str(value).strip()))
        except (ValueError, InputError):
            raise CliError(f"--seed {value}: expected an integer from 0 to {SEED_MAX}", 2) from None


ARCH_HELP = ("YAML architecture hints for files that store only weights (PyTorch state dicts, Keras "
             "weights-only files).")
LAYER_HELP = ("Convert only this recurrent layer (a name `inspect` lists) as a standalone model returning "
              "its whole sequence.")
VAR_HELP = "MATLAB .mat: the variable holding the network, when several do (read option var=)."
MAPPING_HELP = ("MATLAB .mat of bare matrices: YAML mapping variable names to layer properties "
                "(read option mapping=; schemas/matlab.md).")
WINDOWS_HELP = ("Keras .keras: read weights whose group names use Windows path separators (layers\\lstm\\cell), "
                "which Keras itself cannot load (read option accept_windows_paths=).")
NONFINITE_HELP = "Accept weights holding NaN or Inf (refused by default, naming the layer and tensor)."
STRICT_HELP = ("Refuse (exit 2) a file read under any assumption (an architecture, order, activation, layout, head "
               "or default the file does not store), naming each and the --arch line or option that settles it.")


def _read_options(arch_path, var=None, mapping=None, accept_windows_paths=False, output=None, branches=()) -> dict:
    options = {"arch": arch_path} if arch_path else {}
    if branches:
        options["branches"] = dict(branches)
    if output:
        options["output"] = output
    if accept_windows_paths:
        options["accept_windows_paths"] = True
    if var:
        options["var"] = var
    if mapping:
        options["mapping"] = mapping
    return options


OUTPUT_HELP = ("ONNX: the graph output to read when the graph has several that are not recurrent states "
               "(read option output=; batch key output).")


IF_HELP = ("ONNX: take this branch of the If node NAME (or of the If whose condition tensor is NAME): "
           "NAME=then or NAME=else; repeatable (read option branches=; batch key if).")


class Branch(click.ParamType):
    """NAME=then|else (a bad value: one line, exit 2)."""
    name = "NAME=then|else"

    def convert(self, value, param, ctx):
        name, _, branch = str(value).rpartition("=")
        if not name or branch not in ("then", "else"):
            self.fail(f"expected NAME=then or NAME=else, found '{value}'", param, ctx)
        return name, branch


def if_option(f):
    return click.option("--if", "branches", type=Branch(), multiple=True, help=IF_HELP)(f)


def output_option(f):
    return click.option("--output", "output_name", metavar="NAME", help=OUTPUT_HELP)(f)


def arch_option(f):
    return click.option("--arch", "arch_path", type=click.Path(dir_okay=False), help=ARCH_HELP)(f)


def nonfinite_option(f):
    return click.option("--allow-nonfinite", is_flag=True, help=NONFINITE_HELP)(f)


def windows_option(f):
    return click.option("--accept-windows-paths", "accept_windows_paths", is_flag=True, help=WINDOWS_HELP)(f)


def matlab_options(f):
    f = click.option("--mapping", "mapping_path", type=click.Path(dir_okay=False), help=MAPPING_HELP)(f)
    f = click.option("--var", "var_name", metavar="NAME", help=VAR_HELP)(f)
    return f


def strict_option(f):
    return click.option("--strict", is_flag=True, help=STRICT_HELP)(f)


def check_options(f):
    f = strict_option(f)
    f = nonfinite_option(f)
    f = click.option("--rtol", type=Tolerance(), default=None, help="Relative tolerance (default 1e-4).")(f)
    f = click.option("--atol", type=Tolerance(), default=None, help="Absolute tolerance (default 1e-4).")(f)
    f = click.option("--inputs", "inputs_path", type=click.Path(dir_okay=False),
                     help="Your own inputs (.npy, [batch, time, features]) added to the seeded suite.")(f)
    f = click.option("--seed", type=Seed(), default=0, show_default=True, help="Seed of the input suite.")(f)
    f = arch_option(f)
    f = click.option("--full-suite", is_flag=True,
                     help="Run the whole seeded suite whatever it costs (by default verification keeps within 10x "
                          "the read + write time or 30 s, shortening the longest seeded inputs; the report says which).")(f)
    f = click.option("--report", "report_path", type=click.Path(dir_okay=False),
                     help="Write the verification report as JSON (schemas/report.schema.json).")(f)
    f = click.option("--emit-vectors", "emit_vectors", type=click.Path(file_okay=False),
                     help="Also write golden test vectors (vectors.npz + vectors.json) of the checked file to DIR.")(f)
    return f


REPORT_HTML_HELP = ("Also write the report as one self-contained HTML page (verdict, files, checks, error plots; "
                    "opens without network access).")


def report_html_option(f):
    return click.option("--report-html", "report_html", type=click.Path(dir_okay=False), help=REPORT_HTML_HELP)(f)
