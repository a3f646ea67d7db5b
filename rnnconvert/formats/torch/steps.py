"""The front-end modules of a state dict (nn.Embedding, nn.Conv1d, nn.BatchNorm1d) and the
parameter-free steps (pooling, flatten, time windows: `WindowSpec`): what their keys cannot say comes from `--arch modules:`
or PyTorch's defaults, each default applied said as an assumption; rnnconvert's own files carry
them as metadata steps (`step_of` / `spec_from_step`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import InputError
from ...model.assumptions import Assumption
from .statedict import BatchNormSpec, ConvSpec, EmbeddingSpec, FlattenSpec, LinearSpec, PoolSpec


@dataclass
class WindowSpec:
    """Time steps out[:, start:stop] (single: out[:, start]), done in the forward (model.TimeWindow)."""
    start: int = 0
    stop: int | None = None
    single: bool = False
    name: str = ""
    kind = "time_window"


def takes(spec, features) -> bool:
    """Can `spec` follow a module giving `features` (None: it comes first)?"""
    if features is None or not hasattr(spec, "units_out"):
        return True
    if isinstance(spec, EmbeddingSpec):
        return False
    if isinstance(spec, ConvSpec):
        per_group = int(spec.weight.shape[1])
        return features % per_group == 0 and spec.units_out % (features // per_group) == 0
    return spec.input_size == features


def resolve_embeddings(modules: dict, hints, assume, path) -> None:
    """Bias-free 2-D weights named like an embedding (or so hinted) become nn.Embedding specs."""
    unknown = sorted(set(hints.modules) - set(modules))
    if unknown:
        raise InputError(f"--arch modules names {', '.join(unknown)}, not modules of this state dict "
                         f"(modules: {', '.join(modules)})", path=path)
    for name, spec in list(modules.items()):
        kind = hints.modules.get(name, {}).get("type")
        plain = isinstance(spec, LinearSpec) and spec.bias is None
        if kind == "embedding" and not plain:
            raise InputError(f"--arch modules.{name}.type embedding, but '{name}' is not one 2-D weight without "
                             "a bias (nn.Embedding keeps weight [vocabulary, dim] only)", path=path)
        if plain and (kind == "embedding" or (kind is None and "emb" in name.lower())):
            modules[name] = EmbeddingSpec(path=name, weight=spec.weight)
            if kind is None:
                V, D = spec.weight.shape
                assume(Assumption(f"'{name}.weight' [{V}, {D}] without a bias read as nn.Embedding({V}, {D}) (its "
                                  f"name says so; give --arch modules: {{{name}: {{type: linear}}}} if it is a "
                                  "bias-free nn.Linear)", "architecture", f"'{name}' is an nn.Embedding",
                                  f"--arch modules: {{{name}: {{type: embedding}}}} (or linear)"))


def _padding(value):
    if value in ("same", "valid", "causal"):
        return value, (0, 0)
    if isinstance(value, list):
        return "explicit", (int(value[0]), int(value[1]))
    return "explicit", (int(value), int(value))


def settle_modules(specs: list, hints, assume, note, path) -> None:
    """Conv padding/stride/dilation/groups and BatchNorm eps, from hints or PyTorch's defaults (each one
    taken an assumption; groups follow from the sizes, a note)."""
    features = None
    for spec in specs:
        given = hints.modules.get(getattr(spec, "path", None), {})
        if isinstance(spec, ConvSpec):
            per_group = int(spec.weight.shape[1])
            defaults = []
            spec.stride = given.get("stride", 1)
            spec.dilation = given.get("dilation", 1)
            spec.padding, spec.pads = _padding(given.get("padding", 0))
            for k, v in (("padding", 0), ("stride", 1), ("dilation", 1)):
                if k not in given:
                    defaults.append(f"{k} {v}")
            if "groups" in given:
                spec.groups = given["groups"]
            elif features is not None and features % per_group == 0:
                spec.groups = features // per_group
                if spec.groups != 1:
                    note(f"nn.Conv1d '{spec.path}' takes {per_group} inputs per group and follows {features} "
                        f"features: groups {spec.groups}")
            else:
                spec.groups = 1
            if defaults:
                given_line = ", ".join(d.replace(" ", ": ") for d in defaults)
                assume(Assumption(f"nn.Conv1d '{spec.path}' {', '.join(d.split()[0] for d in defaults)} not stored in "
                                  f"a state dict: assumed {', '.join(defaults)} (PyTorch's defaults; give --arch "
                                  f"modules: {{{spec.path}: {{padding: ..., stride: ..., dilation: ...}}}} otherwise)",
                                  "default", f"nn.Conv1d '{spec.path}' {', '.join(defaults)}",
                                  f"--arch modules: {{{spec.path}: {{{given_line}}}}}"))
            note(f"nn.Conv1d '{spec.path}' assumed to run over time: forward transposes [batch, time, features] "
                "to [batch, channels, time] and back")
        elif isinstance(spec, BatchNormSpec):
            if "eps" in given:
                spec.eps = float(given["eps"])
            else:
                assume(Assumption(f"nn.BatchNorm1d '{spec.path}' eps not stored in a state dict: assumed 1e-05 "
                                  f"(PyTorch's default; give --arch modules: {{{spec.path}: {{eps: ...}}}} otherwise)",
                                  "default", f"nn.BatchNorm1d '{spec.path}' eps 1e-05",
                                  f"--arch modules: {{{spec.path}: {{eps: 1.0e-5}}}}"))
        if hasattr(spec, "units_out") and not isinstance(spec, PoolSpec):
            features = spec.units_out
        allowed = {"type"} | ({"padding", "stride", "dilation", "groups"} if isinstance(spec, ConvSpec) else
                              {"eps"} if isinstance(spec, BatchNormSpec) else set())
        wrong = set(given) - allowed
        if wrong:
            raise InputError(f"--arch modules.{spec.path}: {', '.join(sorted(wrong))} do not apply to "
                             f"'{spec.path}' ({type(spec).__name__.replace('Spec', '')})", path=path)


# ------------------------------------------------------------------------ metadata steps

def step_of(spec) -> dict | None:
    """rnnconvert's metadata step for a front-end spec (None: not one)."""
    if isinstance(spec, EmbeddingSpec):
        return {"kind": "embedding", "module": spec.path, "name": spec.name}
    if isinstance(spec, ConvSpec):
        return {"kind": "conv1d", "module": spec.path, "name": spec.name, "stride": spec.stride,
                "dilation": spec.dilation, "groups": spec.groups, "padding": spec.padding, "pads": list(spec.pads),
                "activation": spec.activation.to_dict() if spec.activation else None}
    if isinstance(spec, BatchNormSpec):
        return {"kind": "batch_norm", "module": spec.path, "name": spec.name, "eps": spec.eps,
                "affine": spec.weight is not None}
    if isinstance(spec, PoolSpec):
        return {"kind": "pooling1d", "name": spec.name, "mode": spec.mode, "pool_size": spec.pool_size,
                "strides": spec.strides, "padding": spec.padding}
    if isinstance(spec, FlattenSpec):
        return {"kind": "flatten", "name": spec.name}
    if isinstance(spec, WindowSpec):
        return {"kind": "time_window", "name": spec.name, "start": spec.start, "stop": spec.stop, "single": spec.single}
    return None


def spec_from_step(step: dict, modules: dict, where: str, path):
    from ...model import Activation
    kind = step["kind"]
    if kind == "pooling1d":
        return PoolSpec(step["mode"], step["pool_size"], step["strides"], step["padding"], name=step["name"])
    if kind == "flatten":
        return FlattenSpec(name=step["name"])
    if kind == "time_window":
        return WindowSpec(step["start"], step["stop"], step["single"], name=step["name"])   # checked by validate
    spec = modules.get(step["module"])
    if kind == "embedding" and isinstance(spec, LinearSpec) and spec.bias is None:
        spec = modules[step["module"]] = EmbeddingSpec(path=spec.path, weight=spec.weight)
    want = {"embedding": EmbeddingSpec, "conv1d": ConvSpec, "batch_norm": BatchNormSpec}[kind]
    if not isinstance(spec, want):
        raise InputError(f"{where}: module '{step['module']}' ({kind}) is not in the state dict", path=path)
    spec.name = step["name"]
    if kind == "conv1d":
        spec.stride, spec.dilation, spec.groups = step["stride"], step["dilation"], step["groups"]
        spec.padding, spec.pads = step["padding"], tuple(step["pads"])
        spec.activation = Activation(**step["activation"]) if step.get("activation") else None
    elif kind == "batch_norm":
        spec.eps = float(step["eps"])
    return spec
