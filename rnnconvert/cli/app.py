"""The `rnnconvert` click group, its errors and its entry point.

Errors are translated in exactly one place (`RnnConvertGroup.invoke`): an `RnnConvertError`
becomes one line on stderr and its own exit code (2 bad input, 1 not equivalent); anything
unexpected becomes one line and exit 3, with the traceback only under RNNCONVERT_DEBUG=1.
`echo` prints every line the CLI prints; `main` is the console script.
"""
from __future__ import annotations

import os
import sys

import click

from ..version import __version__
from ..errors import RnnConvertError

EXIT_INTERNAL = 3


def echo(text: str, err: bool = False, one_line: bool = False) -> None:
    """Every line the CLI prints: text from a file (names) never acts on the terminal, and a message
    meant as one line (`one_line`) stays one line (`errors.printable`)."""
    from ..errors import printable
    click.echo(printable(text, keep_newlines=not one_line), err=err)


class CliError(click.ClickException):
    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None):
        echo(f"rnnconvert: error: {self.format_message()}", err=True, one_line=True)


def usage_error(exc: click.UsageError) -> CliError:
    """click's usage error (a missing argument, a directory where a file is expected, ...) as one line
    and exit 2, like every other refusal, pointing to the command's help instead of printing it."""
    command = exc.ctx.command_path if exc.ctx is not None else "rnnconvert"
    return CliError(f"{exc.format_message()} (see '{command} --help')", exc.exit_code)


class RnnConvertGroup(click.Group):
    """A group whose default command is `convert`, so that `rnnconvert SRC DST` works."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise usage_error(exc) from None

    def parse_args(self, ctx, args):
        for k, arg in enumerate(args, 1):
            if "\0" in arg:    # no file name can hold one (os.stat would raise ValueError)
                shown = arg.replace("\0", "\\0")
                raise CliError(f"argument {k} '{shown}' holds a NUL byte, which no path or name can hold", 2)
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["convert", *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        from ..files.interrupt import raise_hidden      # a signal that surfaced as another error ends the run as the signal
        try:
            return super().invoke(ctx)
        except RnnConvertError as exc:
            raise_hidden(exc)
            report = getattr(exc, "report", None)
            if report is not None and not ctx.meta.get("report_shown"):
                from .render import render_report
                echo(render_report(report, compared=ctx.invoked_subcommand == "verify"), err=True)
            raise CliError(exc.format(), exc.exit_code) from None
        except click.UsageError as exc:
            raise usage_error(exc) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug: one line, not a traceback
            raise_hidden(exc)
            if os.environ.get("RNNCONVERT_DEBUG"):
                raise
            raise CliError(f"internal error ({type(exc).__name__}: {exc}); this is a bug in rnnconvert, "
                           "please report it with RNNCONVERT_DEBUG=1 output", EXIT_INTERNAL) from None


@click.group(cls=RnnConvertGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rnnconvert")
def cli():
    """Convert trained LSTM, GRU and simple RNN models between frameworks, verified.

    \b
      rnnconvert model.h5 model.onnx      convert (the default command), verified
      rnnconvert verify a.h5 b.onnx       prove two files compute the same
      rnnconvert batch plan.yaml          a YAML plan of conversions, in parallel
      rnnconvert inspect model.h5         layers, tensors and gate slices
      rnnconvert formats                  what reads and writes what
    """


def main():
    from ..files.interrupt import Interrupted, check, ignore_from_now, install, message, quiet_warnings
    install()
    quiet_warnings()
    try:
        try:
            check()                  # a Ctrl-C during `python -m rnnconvert`'s imports stops the run here
            cli(prog_name="rnnconvert")
        except Interrupted as exc:   # every finally has run: temporaries removed, children and workers ended
            echo(message(exc), err=True, one_line=True)
            sys.exit(exc.exit_code)
    finally:
        ignore_from_now()            # the run is over: a signal during the interpreter's teardown changes nothing
