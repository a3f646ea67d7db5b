"""Verification of a model whose recurrent states are inputs and outputs (a streaming graph).

On each suite input, with random states and with zero states fed to every state input, the reference
pass of the source (output and every state output) is compared with the reference pass of the written
model and with the written file in its own runtime where that runtime takes states (onnxruntime, Keras 3,
TF.js: a Keras or TF.js file takes each row of a port as an input of its own, fed in the ports' order).
Streaming: the sequence fed in chunks, from the random states, each call's state outputs fed back as the
next call's state inputs, must equal one call (`streaming(reference, states)`, `streaming(onnxruntime,
states)`).  A runtime not installed, or failing on a file the user gave, is not run (`Report.not_run`)
from then on, never a check; one failing on the file rnnconvert wrote is one failed check
(`report.runtime_failed`).  The source's passes are shared: streaming compares with the random-state
pass, and the zero-state pass is the suite's expected pass when the caller has it (`zero_states`).  A
written model read back identical to the source (`same`) gets no reference(dst) runner: it would repeat the source's.
"""
from __future__ import annotations

import copy

import numpy as np

from ..model import states
from ..reference import forward_with_feeds
from .checks import _relayout, compare
from .report import runtime_failed
from .suite import chunking, streaming_undefined

STATE_SEED = 7919


STATE_RUNTIMES = {"onnx": "onnxruntime(dst)", "keras": "keras(dst)", "tfjs": "tfjs(dst)"}


def runner_oracles(src_model, dst_model, dst_fmt, same=False) -> list[str]:
    """The oracles `state_checks` runs with states fed: reference(dst) when dst takes src's ports as they are
    (and is not read back identical), then dst's runtime where it takes states.  Budget and progress count these."""
    out = ["reference(dst)"] if dst_model is not None and not same and _same_ports(src_model, dst_model) else []
    return out + ([STATE_RUNTIMES[dst_fmt.name]] if dst_fmt.name in STATE_RUNTIMES else [])


def _runners(src_model, dst_model, dst_fmt, dst_path, same=False):
    """[(oracle, run(x, feeds) -> (y, outs))] of the written model, in dst's layout (`runner_oracles`)."""
    oracles = runner_oracles(src_model, dst_model, dst_fmt, same)
    out = []
    if "reference(dst)" in oracles:
        out.append(("reference(dst)", lambda x, f: forward_with_feeds(dst_model, x, f)))
    if dst_fmt.name == "onnx":
        from ..formats.onnx.runtime import run_states
        out.append(("onnxruntime(dst)", lambda x, f: run_states(dst_path, x, dst_model or src_model, f)))
    if dst_fmt.name == "keras":          # one Keras tensor per row of src's ports, in order (keras_json/state_io.py)
        from ..formats.keras.runtime import run_states as keras_states
        time_major = (dst_model or src_model).input.layout == "time_batch_feature"
        out.append(("keras(dst)", lambda x, f: keras_states(dst_path, x, src_model, f, time_major)))
    if dst_fmt.name == "tfjs":           # likewise, one Node process for every call
        from ..formats.tfjs.runtime import states_runner
        out.append(("tfjs(dst)", states_runner(dst_path, _ports_in(src_model, dst_model or src_model))))
    return out


def _same_ports(src_model, dst_model) -> bool:
    """Do dst's ports take and return src's tensors (names, layouts, directions)?  A Keras file's are one
    per row, [batch, size]: then only its runtime, fed src's rows, is run."""
    def key(m):
        return [(p.name, p.layout, p.direction) for p in m.state_inputs + m.state_outputs]
    return key(src_model) == key(dst_model)


def state_checks(report, src_model, dst_model, dst_fmt, dst_path, suite, tol, zero_states=None,
                 same=False, written=False) -> None:
    """`zero_states(x)`: the source's (output, state outputs) from zero states when already computed, else
    None; `same`: `dst_model` reads back identical to the source (no reference(dst) runner); `written`:
    rnnconvert wrote dst, so its runtime failing on it with states is a failed check
    (`report.runtime_failed`), not a check not run."""
    runners = _runners(src_model, dst_model, dst_fmt, dst_path, same)
    if not runners:
        if not same:
            report.not_run("state inputs/outputs", f"{dst_fmt.name} files do not take them (only the initial "
                           "states were checked)")
        return
    batch_axis = 1 if src_model.input.layout == "time_batch_feature" else 0
    rng = np.random.default_rng(STATE_SEED + report.seed)
    dst = dst_model or src_model
    planned = {oracle: planned_per_runner(src_model, suite) for oracle, _ in runners}
    for label, x in suite:
        batch = x.shape[batch_axis]
        random = states.random_feeds(src_model, batch, rng)
        for kind, feeds in (("random states", random), ("zero states", states.zero_feeds(src_model, batch))):
            known = zero_states(x) if kind == "zero states" and zero_states is not None else None
            y, outs = known or forward_with_feeds(src_model, x, feeds)
            if kind == "random states":
                from_random = y
            for oracle, run in list(runners):
                try:
                    got, got_outs = run(_relayout(x, src_model, dst), feeds)
                except Exception as exc:  # noqa: BLE001 - not installed, or failing on the file: not run
                    _drop(report, runners, oracle, exc, f"{label} + {kind}", planned, written)
                    continue
                report.checks.append(compare(_relayout(got, dst, src_model), y, tol, oracle, f"{label} + {kind}"))
                for name, v in outs.items():
                    report.checks.append(compare(got_outs.get(name, np.full(1, np.nan)), v, tol, oracle,
                                                 f"{label} + {kind}: {name}"))
        _streaming(report, src_model, dst, runners, x, label, random, from_random, tol, planned, written)


def planned_per_runner(model, suite) -> int:
    """The state checks one runner makes on `suite` (random and zero states, each output, streaming)."""
    time_axis = 0 if model.input.layout == "time_batch_feature" else 1
    long = sum(x.shape[time_axis] > 1 for _, x in suite) if streaming_undefined(model) is None else 0
    return len(suite) * 2 * (1 + len(model.state_outputs)) + long


def _drop(report, runners, oracle, exc, where, planned, written=False) -> None:
    """`oracle` failed (first on `where`): not run from now on, with the reason, or, for a runtime failing
    on the file rnnconvert wrote, one failed check (`report.runtime_failed`); the checks it was to make
    taken off the progress total."""
    made = sum(c.oracle in (oracle, _streaming_name(oracle)) and "states" in c.input for c in report.checks)
    runtime = oracle != "reference(dst)"
    runtime_failed(report, oracle, written and runtime, exc, where, not made, planned[oracle] - made)
    runners[:] = [r for r in runners if r[0] != oracle]


def _ports_in(src_model, dst):
    """src's state ports with dst's input (its layout): the runners take and return src's ports."""
    view = copy.copy(src_model)
    view.input = dst.input
    return view


def _streaming_name(oracle: str) -> str:
    return "streaming " + oracle.replace("(dst)", "(dst), states carried")


def _not_carried(model, pairs) -> str:
    """Which state of which recurrent layer no state input/output pair carries ('' when all are)."""
    have = {(name, o.state) for o, _ in pairs for name in o.layers}
    for layer in model.recurrent_layers:
        for state in ("h", "c") if layer.cell == "lstm" else ("h",):
            if (layer.name, state) not in have:
                return f"layer '{layer.name}' has no state input and output carrying its {state} state"
    return ""


def _streaming(report, src_model, dst, runners, x, label, feeds, y, tol, planned, written=False) -> None:
    """Chunks of `x` from the state inputs `feeds`, against `y`: the source's one call from them."""
    time_axis = 0 if src_model.input.layout == "time_batch_feature" else 1
    pairs = states.carried(src_model)
    if x.shape[time_axis] < 2 or streaming_undefined(src_model) or len(pairs) != len(src_model.state_inputs):
        return
    lost = _not_carried(src_model, pairs)
    if lost:          # a layer restarting from its initial state at every call: chunks never equal one call
        report.not_run("streaming with states", f"not defined ({lost})")
        return
    chunks = chunking(x.shape[time_axis])
    for oracle, run in list(runners):
        what = f"{label} + random states chunks {'+'.join(map(str, chunks))}"
        try:         # src's ports (what the runners take and return) in dst's layout
            got, last = states.stream(run, _ports_in(src_model, dst), _relayout(x, src_model, dst), feeds, chunks)
        except Exception as exc:  # noqa: BLE001 - not installed, or failing on the file: not run
            _drop(report, runners, oracle, exc, what, planned, written)
            continue
        report.checks.append(compare(_relayout(got, dst, src_model), y, tol, _streaming_name(oracle), what))
