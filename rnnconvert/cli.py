"""The command line: a thin layer over `rnnconvert.read/write/convert/verify`.

Errors are translated in exactly one place (`RnnConvertGroup.invoke`): an `RnnConvertError`
becomes one line on stderr and its own exit code (2 bad input, 1 not equivalent); anything
unexpected becomes one line and exit 3, with the traceback only under RNNCONVERT_DEBUG=1.
Heavy modules (numpy, h5py, onnx) are imported inside the commands, never at start-up.
"""
from __future__ import annotations

import json
import os
import sys

import click

from . import __version__
from .errors import RnnConvertError

EXIT_INTERNAL = 3


class CliError(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None):
        click.echo(f"rnnconvert: error: {self.format_message()}", err=True)


class RnnConvertGroup(click.Group):
    """A group whose default command is `convert`, so that `rnnconvert SRC DST` works."""

    def parse_args(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["convert", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RnnConvertError as exc:
            report = getattr(exc, "report", None)
            if report is not None and not ctx.meta.get("report_shown"):
                click.echo(render_report(report), err=True)
            raise CliError(exc.format(), exc.exit_code) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug: one line, not a traceback
            if os.environ.get("RNNCONVERT_DEBUG"):
                raise
            raise CliError(f"internal error ({type(exc).__name__}: {exc}); this is a bug in rnnconvert, "
                           "please report it with RNNCONVERT_DEBUG=1 output", EXIT_INTERNAL) from None


def _progress(msg: str) -> None:
    if sys.stderr.isatty():
        click.echo(f"  {msg} ...", err=True)


def _load_inputs(path):
    if path is None:
        return None
    import numpy as np
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CliError(f"{path}: cannot read inputs as a .npy array ({exc})", 2) from None


ARCH_HELP = "YAML architecture hints for files that store only weights (PyTorch state dicts)."


def _echo_assumptions(model) -> None:
    for note in model.source.get("assumptions", []):
        click.echo(f"rnnconvert: assumed: {note}", err=True)


def _read_options(arch_path) -> dict:
    return {"arch": arch_path} if arch_path else {}


def check_options(f):
    f = click.option("--rtol", type=float, default=None, help="Relative tolerance (default 1e-4).")(f)
    f = click.option("--atol", type=float, default=None, help="Absolute tolerance (default 1e-4).")(f)
    f = click.option("--inputs", "inputs_path", type=click.Path(dir_okay=False),
                     help="Your own inputs (.npy, [batch, time, features]) added to the seeded suite.")(f)
    f = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the input suite.")(f)
    f = click.option("--arch", "arch_path", type=click.Path(dir_okay=False), help=ARCH_HELP)(f)
    f = click.option("--report", "report_path", type=click.Path(dir_okay=False),
                     help="Write the verification report as JSON.")(f)
    return f


def render_report(report) -> str:
    lines = []
    src, dst = report.source, report.destination
    if dst:
        lines.append(f"{src['path']} ({src['format']}) -> {dst['path']} ({dst['format']})")
    for note in report.notes:
        lines.append(f"  note: {note}")
    if not report.verified:
        lines.append("  not verified (--no-verify)")
        return "\n".join(lines)
    lines.append(f"  {'check':<20} {'input':<22} {'max abs':>10} {'max rel':>10}  result")
    for c in report.checks:
        lines.append(f"  {c.oracle:<20} {c.input:<22} {c.max_abs:>10.3g} {c.max_rel:>10.3g}  "
                     f"{'ok' if c.passed else 'FAIL'}")
    for u in report.unavailable:
        lines.append(f"  not run: {u}")
    t = report.tolerance
    lines.append(f"  tolerance atol={t['atol']:g} rtol={t['rtol']:g} (|a-b| <= atol + rtol*|b|), seed {report.seed}")
    lines.append("  EQUIVALENT" if report.passed else "  NOT EQUIVALENT")
    return "\n".join(lines)


def _write_report(report, path):
    if path:
        with open(path, "w") as f:
            json.dump(report.to_dict(), f, indent=1)


@click.group(cls=RnnConvertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnnconvert")
def cli():
    """Convert trained LSTM, GRU and simple RNN models between frameworks, verified.

    \b
      rnnconvert model.h5 model.onnx      convert (the default command), verified
      rnnconvert inspect model.h5         layers, tensors and gate slices
      rnnconvert formats                  what reads and writes what
    """


@cli.command()
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite DST if it exists.")
@click.option("--no-verify", is_flag=True, help="Skip the numeric verification.")
@click.option("--keep-failed", is_flag=True, help="Write DST even when verification fails.")
@click.option("--from", "src_format", help="Format of SRC when its suffix does not say.")
@click.option("--to", "dst_format", help="Format of DST when its suffix does not say.")
@click.option("--emit-module", type=click.Path(dir_okay=False),
              help="With a PyTorch DST: also write a standalone module file (imports only torch) that loads it.")
@click.option("--keras-version", type=click.Choice(["2", "3"]), default=None,
              help="With a Keras .h5 DST: 3 (default) writes what Keras 3 writes; 2 what tf.keras 2.x writes.")
@check_options
@click.pass_context
def convert(ctx, src, dst, force, no_verify, keep_failed, src_format, dst_format, emit_module, keras_version,
            rtol, atol, inputs_path, seed, report_path, arch_path):
    """Convert SRC to DST and prove they compute the same (exit 1 if not; DST is then not written)."""
    from .errors import VerificationError
    from .verification import convert as run
    try:
        report = run(src, dst, verify=not no_verify, atol=atol, rtol=rtol, inputs=_load_inputs(inputs_path),
                     force=force, keep_failed=keep_failed, src_format=src_format, dst_format=dst_format,
                     seed=seed, read_options=_read_options(arch_path), emit_module=emit_module,
                     write_options={"keras_version": int(keras_version)} if keras_version else None,
                     progress=_progress)
    except VerificationError as exc:
        _write_report(exc.report, report_path)
        raise
    _write_report(report, report_path)
    click.echo(render_report(report))


@cli.command()
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
@check_options
def verify(a, b, rtol, atol, inputs_path, seed, report_path, arch_path):
    """Prove that model files A and B compute the same (exit 0), or not (exit 1)."""
    from .errors import VerificationError
    from .verification import verify as run
    try:
        report = run(a, b, atol=atol, rtol=rtol, inputs=_load_inputs(inputs_path), seed=seed,
                     read_options=_read_options(arch_path))
    except VerificationError as exc:
        _write_report(exc.report, report_path)
        raise
    _write_report(report, report_path)
    click.echo(render_report(report))


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--arch", "arch_path", type=click.Path(dir_okay=False), help=ARCH_HELP)
def inspect(path, as_json, arch_path):
    """Show layers, tensor shapes, gate slices, activations and equations of PATH."""
    from . import api
    from .inspect import describe, render
    model = api.read(path, **_read_options(arch_path))
    _echo_assumptions(model)
    desc = describe(model, path=path)
    click.echo(json.dumps(desc, indent=1) if as_json else render(desc))


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--inputs", "inputs_path", required=True, type=click.Path(dir_okay=False),
              help="Inputs as .npy, [batch, time, features] (time-major if the model is).")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write the predictions (.npy).")
@click.option("--float32", "use_float32", is_flag=True, help="Compute in float32 (default float64).")
@click.option("--arch", "arch_path", type=click.Path(dir_okay=False), help=ARCH_HELP)
def predict(path, inputs_path, output_path, use_float32, arch_path):
    """Run the reference forward pass on PATH, shaped like the framework's own predict."""
    import numpy as np

    from . import api
    from .errors import InputError
    model = api.read(path, **_read_options(arch_path))
    _echo_assumptions(model)
    x = _load_inputs(inputs_path)
    if x.ndim != 3:
        raise InputError(f"inputs have shape {list(x.shape)}, expected 3 axes [batch, time, features]",
                         path=inputs_path)
    y = api.predict(model, x, dtype=np.float32 if use_float32 else np.float64)
    np.save(output_path, y.astype(np.float32))
    click.echo(f"wrote {output_path}: shape {list(y.shape)}")


@cli.command()
@click.option("--markdown", is_flag=True, help="Print the table as Markdown (the README's table).")
def formats(markdown):
    """List the formats rnnconvert reads and writes."""
    from .formats import FORMATS
    click.echo(formats_table(FORMATS, markdown))


def formats_table(table, markdown: bool = False) -> str:
    rows = [(f.name, " ".join(f.suffixes), "yes" if f.reads else "no", "yes" if f.writes else "no",
             f.runtime or "-", f.description) for f in table.values()]
    head = ("format", "suffixes", "read", "write", "verified with", "what")
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(str(r[i])) for r in (head, *rows)) for i in range(len(head) - 1)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    return "\n".join(fmt.format(*r) for r in (head, *rows))


def main():
    cli(prog_name="rnnconvert")
