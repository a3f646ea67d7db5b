"""The commands: convert, verify, batch, inspect, predict, formats, each a thin call into `rnnconvert.api`
(or `rnnconvert.batch`) between its options and its output, plus the run's output policy (`_policy`,
`_write_report`).  Heavy modules (numpy, h5py, onnx) are imported inside the commands, never at start-up.
"""
from __future__ import annotations

import json
import os
import sys

import click

from ..errors import RnnConvertError
from .app import cli, echo
from .options import (LAYER_HELP, _read_options, arch_option, check_options, matlab_options, nonfinite_option,
                      report_html_option, windows_option)
from .options import if_option, output_option


def _progress():
    """Progress on stderr (stdout holds the report, or JSON): on a terminal one live line, otherwise one
    line per finished check (`rnnconvert/verification/progress.py`)."""
    from ..verification.progress import Printer
    return Printer(sys.stderr, sys.stderr.isatty())


def _load_inputs(path, keyed: bool = False):
    """--inputs read and checked (`rnnconvert/verification/inputs.py`): one array, or with `keyed` also {name: array}."""
    if path is None:
        return None
    from ..verification.inputs import load, load_one
    return load(path) if keyed else load_one(path)


def _echo_assumptions(source) -> None:
    """A model's assumptions and what its reader picked among the file's contents, on stderr."""
    source = source if isinstance(source, dict) else {}
    for note in source.get("assumptions", []):
        echo(f"rnnconvert: assumed: {note}", err=True, one_line=True)
    for note in source.get("picked", []):
        echo(f"rnnconvert: note: {note}", err=True, one_line=True)


def _policy(inputs=(), report_path=None, report_html=None):
    """The run's output policy (rnnconvert/files/outputs.py): `inputs` ((path, role) pairs; --arch, --mapping
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
    if report_html:
        policy.claim(report_html, "--report-html", replace=True)
    return policy


def _write_report(report, path):
    """The report as JSON, written beside `path` and renamed over it (a failure: one line, exit 2)."""
    if path and report is not None:
        from ..files.atomic import write_files
        data = report if isinstance(report, dict) else report.to_dict()
        write_files([(path, "w", lambda f: json.dump(data, f, indent=1))], replace=True)


def _plain(value):
    """`value` as the JSON report holds it (tuples as lists, keys as strings): what the page renders from."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _write_html(report, path):
    """--report-html: the page rendered from the JSON report (rnnconvert/pictures/report_page.py)."""
    if path and report is not None:
        from ..pictures.output import write_report_page
        write_report_page(_plain(report if isinstance(report, dict) else report.to_dict()), path)


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
              help="With an ONNX or TFLite DST: each recurrent layer's state as extra graph inputs and outputs "
                   "(streaming).")
@click.option("--external-data", is_flag=True,
              help="With an ONNX DST: tensors in a sidecar DST.data (ONNX external data) whatever the size; "
                   "by default only past 1 GB of weights.")
@click.option("--quantize", type=click.Choice(["dynamic"]),
              help="With a TFLite DST: int8 weights, float activations; verification reports the error it costs.")
@click.option("--layer", "layer_name", metavar="NAME", help=LAYER_HELP)
@check_options
@report_html_option
@matlab_options
@windows_option
@output_option
@if_option
@click.option("--in-place", "in_place", is_flag=True,
              help="ONNX SRC and DST: keep the whole graph (what the canonical model cannot hold: a CNN front end, "
                   "several outputs) and rewrite each recurrent node as a native node; with --stateful its states "
                   "become graph inputs and outputs. Verified by onnxruntime on both graphs.")
@click.pass_context
def convert(ctx, src, dst, force, no_verify, keep_failed, src_format, dst_format, emit_module, keras_version,
            emit_test, stateful, external_data, quantize, layer_name, rtol, atol, inputs_path, seed, report_path,
            full_suite, arch_path, emit_vectors, allow_nonfinite, strict, var_name, mapping_path,
            accept_windows_paths, output_name, branches, in_place, report_html=None):
    """Convert SRC to DST and prove they compute the same (exit 1 if not; DST is then not written)."""
    from ..api import convert as run
    write_options = {k: v for k, v in (("keras_version", keras_version and int(keras_version)),
                                       ("emit_test", emit_test), ("stateful", stateful),
                                       ("external_data", external_data), ("quantize", quantize)) if v}
    policy = _policy([(src, "the source file"), (inputs_path, "the --inputs file"), (arch_path, "the --arch file"),
                      (mapping_path, "the --mapping file")], report_path, report_html)
    try:
        with _progress() as progress:
            report = run(src, dst, verify=not no_verify, atol=atol, rtol=rtol,
                         inputs=_load_inputs(inputs_path, keyed=in_place),
                         force=force, keep_failed=keep_failed, src_format=src_format, dst_format=dst_format,
                         seed=seed, read_options=_read_options(arch_path, var_name, mapping_path, accept_windows_paths,
                                                    output_name, branches),
                         emit_module=emit_module, write_options=write_options or None,
                         emit_vectors=emit_vectors, progress=progress, layer=layer_name,
                         allow_nonfinite=allow_nonfinite, outputs=policy,
                         time_budget=float("inf") if full_suite else None, strict=strict, in_place=in_place)
    except RnnConvertError as exc:
        _write_report(getattr(exc, "report", None) or getattr(exc, "report_so_far", None), report_path)
        _write_html(getattr(exc, "report", None) or getattr(exc, "report_so_far", None), report_html)
        raise
    _write_report(report, report_path)
    _write_html(report, report_html)
    from .render import render_report
    echo(render_report(report))


@cli.command()
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False), required=False)
@click.option("--vectors", "vectors_path", type=click.Path(),
              help="Check the one file A against golden vectors (a DIR written by --emit-vectors, or its vectors.json).")
@click.option("--force", is_flag=True, help="Overwrite vectors already in the --emit-vectors DIR.")
@check_options
@report_html_option
@windows_option
def verify(a, b, vectors_path, force, rtol, atol, inputs_path, seed, report_path, full_suite, arch_path, emit_vectors,
           allow_nonfinite, strict, accept_windows_paths, report_html=None):
    """Prove that model files A and B compute the same (exit 0), or not (exit 1); 2 on bad input.

    \b
      rnnconvert verify model.h5 model.onnx --report r.json
      rnnconvert verify model.onnx --vectors vectors/
    """
    from ..errors import InputError, VerificationError
    from ..api import verify as run
    if vectors_path is not None and (inputs_path or emit_vectors):
        raise InputError("--vectors checks the stored vectors only; it takes no --inputs or --emit-vectors")
    from ..verification.vectors import outputs as vector_files
    given = [(a, "file A"), (b, "file B"), (inputs_path, "the --inputs file"), (arch_path, "the --arch file")]
    if vectors_path is not None:
        folder = vectors_path if os.path.isdir(vectors_path) else os.path.dirname(os.path.abspath(vectors_path))
        given += [(vectors_path, "the --vectors file")] + [(p, "a --vectors file") for p in vector_files(folder)]
    policy = _policy(given, report_path, report_html)
    try:
        with _progress() as progress:
            report = run(a, b, atol=atol, rtol=rtol, inputs=_load_inputs(inputs_path), seed=seed,
                         read_options=_read_options(arch_path, accept_windows_paths=accept_windows_paths),
                         vectors_path=vectors_path, emit_vectors=emit_vectors, allow_nonfinite=allow_nonfinite,
                         force=force, outputs=policy, progress=progress,
                         time_budget=float("inf") if full_suite else None, strict=strict)
    except VerificationError as exc:
        _write_report(exc.report, report_path)
        _write_html(exc.report, report_html)
        raise
    _write_report(report, report_path)
    _write_html(report, report_html)
    from .render import render_report
    echo(render_report(report, compared=True))


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
@click.option("--report-html", "report_html", type=click.Path(dir_okay=False),
              help="Also write one HTML page for the plan, a row per conversion linking to its own page "
                   "(in <stem>_pages/ beside it).")
def batch(plan, n_jobs, fail_fast, force, shard, report_path, check_only, report_html=None):
    """Run a YAML plan of conversions in parallel; exit 0 all passed, 1 any not equivalent, 2 any bad input.

    \b
      rnnconvert batch plan.yaml --jobs 8 --report plan-report.json
    """
    from ..batch import run as batch_module
    plan_obj = batch_module.load_plan(plan)
    if check_only:
        echo(f"{plan}: valid, {len(plan_obj.tasks)} conversions in {len(plan_obj.jobs)} jobs")
        return
    policy = batch_module.plan_outputs(plan_obj)
    if report_path:
        policy.claim(report_path, "--report", replace=True)
    if report_html:
        policy.claim(report_html, "--report-html", replace=True)
    with batch_module.plan_lock(plan_obj):      # progress on stderr, as convert's and verify's
        result = batch_module.run_plan(plan_obj, jobs=n_jobs, fail_fast=fail_fast, force=force,
                                       shard=batch_module.parse_shard(shard),
                                       progress=batch_module.Progress(sys.stderr.isatty(), sys.stderr))
    _write_report(result.to_dict() if report_path else None, report_path)
    if report_html:
        from ..pictures.output import write_plan_pages
        write_plan_pages(_plain(result.to_dict()), report_html,
                         lambda p: policy.claim(p, "a --report-html page", replace=True))
    echo(result.summary())
    for line in result.problems():
        echo(f"rnnconvert: {line}", err=True, one_line=True)
    if result.exit_code:
        raise click.exceptions.Exit(result.exit_code)


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@arch_option
@click.option("--layer", "layer_name", metavar="NAME", help="Describe only this recurrent layer, as --layer converts it.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Also draw every recurrent layer's weight layout to scale (.svg, .html; .png needs rnnconvert[plot]).")
@matlab_options
@windows_option
@output_option
def inspect(path, as_json, arch_path, layer_name, plot_path, var_name, mapping_path, accept_windows_paths,
            output_name):
    """Show layers, tensor shapes, gate slices, activations and equations of PATH."""
    if plot_path:
        _plot(path, plot_path, layer_name, _read_options(arch_path, var_name, mapping_path, accept_windows_paths))
    from .render import render
    from ..api import inspect as inspect_file
    from .render import render_extra
    desc = inspect_file(path, layer=layer_name,
                        **_read_options(arch_path, var_name, mapping_path, accept_windows_paths, output_name))
    _echo_assumptions(desc["source"])
    echo(json.dumps(desc, indent=1) if as_json else render(desc) + render_extra(desc))


def _plot(path, plot_path, layer_name, read_options) -> None:
    """inspect --plot: the layout picture, claimed like any output (never the model file itself)."""
    from ..api import plot_layout
    policy = _policy([(path, "the model file")])
    policy.claim(plot_path, "--plot", replace=True)
    n = plot_layout(path, plot_path, layer=layer_name, **read_options)
    echo(f"wrote {plot_path}: the weight layout of {n} recurrent layer{'s' if n != 1 else ''}", err=True)


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--inputs", "inputs_path", required=True, type=click.Path(dir_okay=False),
              help="Inputs as .npy, [batch, time, features] (time-major if the model is); integer "
                   "token ids [batch, time] for a model that starts with an Embedding; for a model with state "
                   "inputs an .npz keyed by input name (states [rows, batch, size]; unfed states start at zero).")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write the predictions (.npy; .npz: every output keyed by name, state outputs included).")
@click.option("--float32", "use_float32", is_flag=True, help="Compute in float32 (default float64).")
@click.option("--layer", "layer_name", metavar="NAME",
              help="Run only this recurrent layer (a name `inspect` lists) on its own, as --layer converts it: "
                   "inputs [batch, time, its input features], output its whole sequence.")
@arch_option
@nonfinite_option
@matlab_options
@windows_option
def predict(path, inputs_path, output_path, use_float32, layer_name, arch_path, allow_nonfinite, var_name,
            mapping_path, accept_windows_paths):
    """Run the reference forward pass on PATH, shaped like the framework's own predict."""
    import numpy as np

    from .. import api
    from ..files.atomic import write_files
    from ..errors import InputError
    policy = _policy([(path, "the model file"), (inputs_path, "the --inputs file"), (arch_path, "the --arch file"),
                      (mapping_path, "the --mapping file")])
    policy.claim(output_path, "--output", replace=True)
    model = api.read_source(path, layer=layer_name,
                            **_read_options(arch_path, var_name, mapping_path, accept_windows_paths))
    _echo_assumptions(model.source)
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
    from .render import formats_table
    echo(formats_table(FORMATS, markdown))
