"""The forward order of a state dict's modules, which the file does not store: `--arch order:`, else the
order a .pt lists them in (the order `__init__` registered them) when it chains sizes, else the one
permutation that chains.  When several orders chain, the file is refused with each of them written as the
`--arch` line that picks it: rnnconvert never picks one.  A safetensors file sorts its keys, so there only
the permutations count.  `check_chain` checks the stack read (sizes, sequence vs one step, embedding first).
"""
from __future__ import annotations

import itertools

from ...errors import InputError
from ...model.assumptions import Assumption
from .statedict import EmbeddingSpec, RNNSpec
from .steps import takes

MAX_ORDER_SEARCH = 7         # 7! = 5040 permutations tried at most
MAX_SHOWN = 10               # orders listed in a refusal


def arch_line(names) -> str:
    return f"order: [{', '.join(names)}]"


def forward_order(modules: dict, hints, fmt: str, assume, path) -> list[str]:
    names = list(modules)
    if hints.order is not None:
        missing, extra = set(names) - set(hints.order), set(hints.order) - set(names)
        if missing or extra or len(hints.order) != len(set(hints.order)):
            raise InputError(f"--arch order {hints.order} must list each module once; modules: "
                             f"{', '.join(names)}", path=path)
        return list(hints.order)
    if len(names) == 1:
        return names
    listed_chains = chains([modules[n] for n in names])
    if listed_chains and (fmt != "safetensors" or len(names) > MAX_ORDER_SEARCH):
        text = (f"safetensors files do not keep module order; {', '.join(names)} (the order of its keys) chains "
                "and was taken as the forward order" if fmt == "safetensors" else
                f"modules assumed to run in the order the state dict lists them: {', '.join(names)}")
        assume(Assumption(f"{text} (give --arch order: [...] otherwise)", "order",
                          f"modules run in state-dict order {', '.join(names)}", f"--arch {arch_line(names)}"))
        return names
    if len(names) > MAX_ORDER_SEARCH:
        raise InputError(f"the modules do not chain in state-dict order ({', '.join(names)}); give --arch "
                         "order: [...]", path=path)
    found = [list(p) for p in itertools.permutations(names) if chains([modules[n] for n in p])]
    if not found:
        sizes = ", ".join(f"{n} ({modules[n].input_size} -> {modules[n].units_out})" for n in names)
        raise InputError(f"the modules chain in no order: {sizes}; rnnconvert reads sequential stacks only",
                         path=path)
    why = "safetensors files do not keep module order" if fmt == "safetensors" else \
        "the state-dict order does not chain"
    if len(found) > 1:
        more = f" (and {len(found) - MAX_SHOWN} more)" if len(found) > MAX_SHOWN else ""
        raise InputError(f"{why}, and {len(found)} orders chain the sizes, so the file does not say which one "
                         f"forward runs: {' | '.join(arch_line(o) for o in found[:MAX_SHOWN])}{more}; rnnconvert "
                         "does not pick one: give the right one as a line of --arch", path=path)
    assume(Assumption(f"{why}; the only order that chains sizes was taken: {', '.join(found[0])}", "order",
                      f"modules run in order {', '.join(found[0])} (the only one that chains sizes)",
                      f"--arch {arch_line(found[0])}"))
    return found[0]


def chains(specs) -> bool:
    features = None
    rnn_indices = [k for k, s in enumerate(specs) if isinstance(s, RNNSpec)]
    for k, spec in enumerate(specs):
        if (k and isinstance(spec, EmbeddingSpec)) or not takes(spec, features):
            if not (isinstance(specs[k - 1], RNNSpec) and k - 1 == rnn_indices[-1]
                    and specs[k - 1].bidirectional and spec.input_size == specs[k - 1].state_size):
                return False
        features = spec.units_out
    return True


def check_chain(specs, path):
    features, seq, prev = None, True, None
    for spec in specs:
        if isinstance(spec, RNNSpec):
            if not seq:
                raise InputError(f"'{spec.path}' needs a sequence, but '{prev.path}' before it returns one step "
                                 "(check --arch order and head)", path=path)
            seq = spec.output == "sequence"
        if hasattr(spec, "units_out"):
            if isinstance(spec, EmbeddingSpec) and prev is not None:
                raise InputError(f"nn.Embedding '{spec.path}' takes token ids, so it must come first, but "
                                 f"'{prev.path}' comes before it (check --arch order)", path=path)
            if features is not None and spec.input_size != features:
                raise InputError(f"module '{spec.path}' takes {spec.input_size} inputs, but '{prev.path}' "
                                 f"before it gives {features} (check --arch order and head)", path=path)
            features, prev = spec.units_out, spec
