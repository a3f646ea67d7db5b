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
                echo(render_report(report), err=True)
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


def _progress(msg: str) -> None:
    if sys.stderr.isatty():
        echo(f"  {msg} ...", err=True)


def _load_inputs(path, keyed: bool = False):
    """--inputs read and checked (`rnnconvert/inputs.py`): one array, or with `keyed` also {name: array}."""
    if path is None:
        return None
    from ..verification.inputs import load, load_one
    return load(path) if keyed else load_one(path)


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


def _echo_assumptions(model) -> None:
    for note in model.source.get("assumptions", []):
        echo(f"rnnconvert: assumed: {note}", err=True, one_line=True)


LAYER_HELP = ("Convert only this recurrent layer (a name `inspect` lists) as a standalone model returning "
              "its whole sequence.")
VAR_HELP = "MATLAB .mat: the variable holding the network, when several do (read option var=)."
MAPPING_HELP = ("MATLAB .mat of bare matrices: YAML mapping variable names to layer properties "
                "(read option mapping=; schemas/matlab.md).")


WINDOWS_HELP = ("Keras .keras: read weights whose group names use Windows path separators (layers\\lstm\\cell), "
                "which Keras itself cannot load (read option accept_windows_paths=).")


def _read_options(arch_path, var=None, mapping=None, accept_windows_paths=False) -> dict:
    options = {"arch": arch_path} if arch_path else {}
    if accept_windows_paths:
        options["accept_windows_paths"] = True
    if var:
        options["var"] = var
    if mapping:
        options["mapping"] = mapping
    return options


def windows_option(f):
    return click.option("--accept-windows-paths", "accept_windows_paths", is_flag=True, help=WINDOWS_HELP)(f)


def matlab_options(f):
    f = click.option("--mapping", "mapping_path", type=click.Path(dir_okay=False), help=MAPPING_HELP)(f)
    f = click.option("--var", "var_name", metavar="NAME", help=VAR_HELP)(f)
    return f


NONFINITE_HELP = "Accept weights holding NaN or Inf (refused by default, naming the layer and tensor)."


def check_options(f):
    f = click.option("--allow-nonfinite", is_flag=True, help=NONFINITE_HELP)(f)
    f = click.option("--rtol", type=Tolerance(), default=None, help="Relative tolerance (default 1e-4).")(f)
    f = click.option("--atol", type=Tolerance(), default=None, help="Absolute tolerance (default 1e-4).")(f)
    f = click.option("--inputs", "inputs_path", type=click.Path(dir_okay=False),
                     help="Your own inputs (.npy, [batch, time, features]) added to the seeded suite.")(f)
    f = click.option("--seed", type=Seed(), default=0, show_default=True, help="Seed of the input suite.")(f)
    f = click.option("--arch", "arch_path", type=click.Path(dir_okay=False), help=ARCH_HELP)(f)
    f = click.option("--report", "report_path", type=click.Path(dir_okay=False),
                     help="Write the verification report as JSON (schemas/report.schema.json).")(f)
    f = click.option("--emit-vectors", "emit_vectors", type=click.Path(file_okay=False),
                     help="Also write golden test vectors (vectors.npz + vectors.json) of the checked file to DIR.")(f)
    return f


def render_report(report) -> str:
    lines = []
    src, dst = report.source, report.destination
    if dst:
        lines.append(f"{src['path']} ({src['format']}) -> {dst['path']} ({dst['format']})")
    elif report.vectors:
        lines.append(f"{src['path']} ({src['format']}) against vectors {report.vectors['path']}")
    conversion = getattr(report, "conversion", None) or {}
    for key, title in (("preserved", "preserved"), ("changed_in_form", "changed in form"), ("refused", "refused")):
        for item in conversion.get(key, []):
            lines.append(f"  {title}: {item}")
    for note in report.notes:
        if note not in conversion.get("changed_in_form", []):
            lines.append(f"  note: {note}")
    if not report.verified:
        lines.append("  not verified (--no-verify)" if not conversion.get("refused") else "  not verified (refused)")
        return "\n".join(lines)
    for state in getattr(report, "initial_states", []):
        lines.append(f"  initial states used: {state}")
    wo = max([20] + [len(c.oracle) for c in report.checks])
    wi = max([22] + [len(c.input) for c in report.checks])
    lines.append(f"  {'check':<{wo}} {'input':<{wi}} {'max abs':>10} {'max rel':>10}  result")
    for c in report.checks:
        lines.append(f"  {c.oracle:<{wo}} {c.input:<{wi}} {c.max_abs:>10.3g} {c.max_rel:>10.3g}  "
                     f"{'ok' if c.passed else 'FAIL'}")
    for u in report.unavailable:
        lines.append(f"  not run: {u}")
    from ..verification.checks import NOISE_FACTOR
    t = report.tolerance
    lines.append(f"  tolerance atol={t['atol']:g} rtol={t['rtol']:g} (|a-b| <= atol + {NOISE_FACTOR:g}*noise + "
                 f"rtol*|b|, {getattr(report, 'dtype', 'float32')}), seed {report.seed}")
    import math
    for i in report.inputs:
        noise = i.get("float32_noise")
        if noise is not None and not math.isfinite(noise):
            lines.append(f"  note: on {i['label']} the float32 reference pass overflows (inf or NaN where float64 "
                         "is finite): no noise allowance, atol and rtol alone")
        elif (noise or 0) > t["atol"]:
            lines.append(f"  note: on {i['label']} this model amplifies rounding: its own float32 reference pass "
                         f"differs from float64 by {noise:.3g} (noise)")
    if getattr(report, "localization", None):
        lines.append(f"  {report.localization['message']}")
    if getattr(report, "vectors", None) and report.vectors.get("role") == "written":
        lines.append(f"  wrote vectors {report.vectors['path']}")
    lines.append("  EQUIVALENT" if report.passed else "  NOT EQUIVALENT")
    return "\n".join(lines)


def _policy(inputs=(), report_path=None):
    """The run's output policy (rnnconvert/outputs.py): `inputs` ((path, role) pairs; --arch, --mapping
    and --inputs must be regular files) registered, and --report claimed (an existing regular file there
    is replaced, as a log is; never an input of the run or another output)."""
    from ..files.outputs import Outputs, check_input
    policy = Outputs()
    for path, role in inputs:
        if path:
            if role in ("the --arch file", "the --mapping file") and os.path.lexists(path):   # missing: read_yaml says which
                check_input(path, f"a YAML file ({role.split()[1]})")
            policy.add_input(path, role)
    if report_path:
        policy.claim(report_path, "--report", replace=True)
    return policy


def _write_report(report, path):
    """The report as JSON, written beside `path` and renamed over it (a failure: one line, exit 2)."""
    if path and report is not None:
        from ..files.atomic import write_files
        data = report if isinstance(report, dict) else report.to_dict()
        write_files([(path, "w", lambda f: json.dump(data, f, indent=1))], replace=True)


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
@click.option("--emit-test", is_flag=True,
              help="With a C DST: also write <stem>_test.c, golden vectors that exit non-zero on drift.")
@click.option("--stateful", is_flag=True,
              help="With an ONNX DST: each recurrent layer's state as extra graph inputs and outputs (streaming).")
@click.option("--external-data", is_flag=True,
              help="With an ONNX DST: tensors in a sidecar DST.data (ONNX external data) whatever the size; "
                   "by default only past 1 GB of weights.")
@click.option("--layer", "layer_name", metavar="NAME", help=LAYER_HELP)
@check_options
@matlab_options
@windows_option
@click.pass_context
def convert(ctx, src, dst, force, no_verify, keep_failed, src_format, dst_format, emit_module, keras_version,
            emit_test, stateful, external_data, layer_name, rtol, atol, inputs_path, seed, report_path, arch_path, emit_vectors,
            allow_nonfinite, var_name, mapping_path, accept_windows_paths):
    """Convert SRC to DST and prove they compute the same (exit 1 if not; DST is then not written)."""
    from ..verification.convert import convert as run
    write_options = {k: v for k, v in (("keras_version", keras_version and int(keras_version)),
                                       ("emit_test", emit_test), ("stateful", stateful),
                                       ("external_data", external_data)) if v}
    policy = _policy([(src, "the source file"), (inputs_path, "the --inputs file"), (arch_path, "the --arch file"),
                      (mapping_path, "the --mapping file")], report_path)
    try:
        report = run(src, dst, verify=not no_verify, atol=atol, rtol=rtol, inputs=_load_inputs(inputs_path),
                     force=force, keep_failed=keep_failed, src_format=src_format, dst_format=dst_format,
                     seed=seed, read_options=_read_options(arch_path, var_name, mapping_path, accept_windows_paths),
                     emit_module=emit_module,
                     write_options=write_options or None,
                     emit_vectors=emit_vectors, progress=_progress, layer=layer_name,
                     allow_nonfinite=allow_nonfinite, outputs=policy)
    except RnnConvertError as exc:
        _write_report(getattr(exc, "report", None) or getattr(exc, "report_so_far", None), report_path)
        raise
    _write_report(report, report_path)
    echo(render_report(report))


@cli.command()
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False), required=False)
@click.option("--vectors", "vectors_path", type=click.Path(),
              help="Check the one file A against golden vectors (a DIR written by --emit-vectors, or its vectors.json).")
@click.option("--force", is_flag=True, help="Overwrite vectors already in the --emit-vectors DIR.")
@check_options
@windows_option
def verify(a, b, vectors_path, force, rtol, atol, inputs_path, seed, report_path, arch_path, emit_vectors,
           allow_nonfinite, accept_windows_paths):
    """Prove that model files A and B compute the same (exit 0), or not (exit 1); 2 on bad input.

    \b
      rnnconvert verify model.h5 model.onnx --report r.json
      rnnconvert verify model.onnx --vectors vectors/
    """
    from ..errors import InputError, VerificationError
    from ..verification.verify import verify as run
    if vectors_path is not None and (inputs_path or emit_vectors):
        raise InputError("--vectors checks the stored vectors only; it takes no --inputs or --emit-vectors")
    from ..verification.vectors import outputs as vector_files
    given = [(a, "file A"), (b, "file B"), (inputs_path, "the --inputs file"), (arch_path, "the --arch file")]
    if vectors_path is not None:
        folder = vectors_path if os.path.isdir(vectors_path) else os.path.dirname(os.path.abspath(vectors_path))
        given += [(vectors_path, "the --vectors file")] + [(p, "a --vectors file") for p in vector_files(folder)]
    policy = _policy(given, report_path)
    try:
        report = run(a, b, atol=atol, rtol=rtol, inputs=_load_inputs(inputs_path), seed=seed,
                     read_options=_read_options(arch_path, accept_windows_paths=accept_windows_paths),
                     vectors_path=vectors_path, emit_vectors=emit_vectors, allow_nonfinite=allow_nonfinite,
                     force=force, outputs=policy)
    except VerificationError as exc:
        _write_report(exc.report, report_path)
        raise
    _write_report(report, report_path)
    echo(render_report(report))


@cli.command()
@click.argument("plan", type=click.Path(dir_okay=False))
@click.option("--jobs", "-j", "n_jobs", type=click.IntRange(min=1), default=None,
              help="Conversions run in parallel (processes; default: the number of cores).")
@click.option("--fail-fast", is_flag=True, help="Stop starting jobs after the first failure.")
@click.option("--force", is_flag=True, help="Run every job, even those unchanged since the last run.")
@click.option("--shard", default=None, metavar="I/N", help="Run only the I-th of N disjoint slices of the jobs (1-based).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Write one JSON report for the whole plan (schemas/report.schema.json).")
@click.option("--check", "check_only", is_flag=True, help="Validate the plan and exit.")
def batch(plan, n_jobs, fail_fast, force, shard, report_path, check_only):
    """Run a YAML plan of conversions in parallel; exit 0 all passed, 1 any not equivalent, 2 any bad input.

    \b
      rnnconvert batch plan.yaml --jobs 8 --report plan-report.json
    """
    from ..batch import run as batch_module
    plan_obj = batch_module.load_plan(plan)
    if check_only:
        echo(f"{plan}: valid, {len(plan_obj.tasks)} conversions in {len(plan_obj.jobs)} jobs")
        return
    if report_path:
        batch_module.plan_outputs(plan_obj).claim(report_path, "--report", replace=True)
    tty = sys.stdout.isatty()
    with batch_module.plan_lock(plan_obj):
        result = batch_module.run_plan(plan_obj, jobs=n_jobs, fail_fast=fail_fast, force=force,
                                       shard=batch_module.parse_shard(shard), progress=batch_module.Progress(tty))
    _write_report(result.to_dict() if report_path else None, report_path)
    echo(result.summary())
    for line in result.problems():
        echo(f"rnnconvert: {line}", err=True, one_line=True)
    if result.exit_code:
        raise click.exceptions.Exit(result.exit_code)


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option("--arch", "arch_path", type=click.Path(dir_okay=False), help=ARCH_HELP)
@click.option("--layer", "layer_name", metavar="NAME", help="Describe only this recurrent layer, as --layer converts it.")
@matlab_options
@windows_option
def inspect(path, as_json, arch_path, layer_name, var_name, mapping_path, accept_windows_paths):
    """Show layers, tensor shapes, gate slices, activations and equations of PATH."""
    from .render import render
    from ..api import inspect as inspect_file
    from .render import render_extra
    desc = inspect_file(path, layer=layer_name,
                        **_read_options(arch_path, var_name, mapping_path, accept_windows_paths))
    for note in desc["source"].get("assumptions", []) if isinstance(desc["source"], dict) else []:
        echo(f"rnnconvert: assumed: {note}", err=True, one_line=True)
    echo(json.dumps(desc, indent=1) if as_json else render(desc) + render_extra(desc))


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--inputs", "inputs_path", required=True, type=click.Path(dir_okay=False),
              help="Inputs as .npy, [batch, time, features] (time-major if the model is); integer "
                   "token ids [batch, time] for a model that starts with an Embedding; for a model with state "
                   "inputs an .npz keyed by input name (states [rows, batch, size]; unfed states start at zero).")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write the predictions (.npy; .npz: every output keyed by name, state outputs included).")
@click.option("--float32", "use_float32", is_flag=True, help="Compute in float32 (default float64).")
@click.option("--arch", "arch_path", type=click.Path(dir_okay=False), help=ARCH_HELP)
@click.option("--allow-nonfinite", is_flag=True, help=NONFINITE_HELP)
@matlab_options
@windows_option
def predict(path, inputs_path, output_path, use_float32, arch_path, allow_nonfinite, var_name, mapping_path,
            accept_windows_paths):
    """Run the reference forward pass on PATH, shaped like the framework's own predict."""
    import numpy as np

    from .. import api
    from ..files.atomic import write_files
    from ..errors import InputError
    policy = _policy([(path, "the model file"), (inputs_path, "the --inputs file"), (arch_path, "the --arch file"),
                      (mapping_path, "the --mapping file")])
    policy.claim(output_path, "--output", replace=True)
    model = api.read(path, **_read_options(arch_path, var_name, mapping_path, accept_windows_paths))
    _echo_assumptions(model)
    if not allow_nonfinite:
        from ..model.validate import check_finite
        check_finite(model, path)
    x, feeds = _predict_inputs(model, inputs_path)
    tokens = model.input.dtype.startswith("int")
    if x.ndim != (2 if tokens else 3):
        expected = "2 axes [batch, time] of token ids" if tokens else "3 axes [batch, time, features]"
        raise InputError(f"inputs have shape {list(x.shape)}, expected {expected}", path=inputs_path)
    from ..verification.inputs import check
    check(model, x, inputs_path, finite=False)      # dtype, batch and time >= 1, features, token ids
    y, outs = api.predict(model, x, dtype=np.float32 if use_float32 else np.float64, states=feeds,
                          return_states=True)
    if output_path.endswith(".npz"):
        arrays = {model.output_name: y.astype(np.float32), **{k: v.astype(np.float32) for k, v in outs.items()}}
        write_files([(output_path, "wb", lambda f: np.savez(f, **arrays))])
        shapes = ", ".join(f"{k} {list(v.shape)}" for k, v in [(model.output_name, y), *outs.items()])
        echo(f"wrote {output_path}: {shapes}")
        return
    write_files([(output_path, "wb", lambda f: np.save(f, y.astype(np.float32)))])
    echo(f"wrote {output_path}: shape {list(y.shape)}")


def _predict_inputs(model, path):
    """(x, state feeds) from an .npy (the input alone) or an .npz keyed by input name."""
    from ..errors import InputError
    arrays = _load_inputs(path, keyed=True)
    if not isinstance(arrays, dict):
        return arrays, None
    known = [model.input.name] + [p.name for p in model.state_inputs]
    unknown = sorted(set(arrays) - set(known))
    if model.input.name not in arrays or unknown:
        raise InputError(f"the .npz holds {', '.join(sorted(arrays)) or 'nothing'}; expected the input "
                         f"'{model.input.name}' and optionally the state inputs "
                         f"{', '.join(known[1:]) or '(none: the model has no state inputs)'}", path=path)
    return arrays.pop(model.input.name), arrays


@cli.command()
@click.option("--markdown", is_flag=True, help="Print the table as Markdown (the README's table).")
def formats(markdown):
    """List the formats rnnconvert reads and writes."""
    from ..formats import FORMATS
    echo(formats_table(FORMATS, markdown))


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
