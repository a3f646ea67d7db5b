"""The weight layout of every framework, as one literal table; the README's layout table is rendered from it.

Each entry of `LAYOUTS` lists, for one framework, cell and (GRU) reset variant, the tensors a file holds:
their name pattern, shape formula, the axis that holds the gate blocks, and the canonical fields they hold
(`model.DirectionWeights`: W, R, Wb, Rb, proj; canonical is [G*H, input], gate blocks along rows).
Gate orders are not repeated here: they are `gates.ORDERS[framework][cell]` (`gates.CANONICAL` for canonical).

Shape symbols: `input` input features, `H` hidden units, `D` directions (1 or 2), `P` proj_size.
"""
from __future__ import annotations

from typing import NamedTuple

from . import gates


class Tensor(NamedTuple):
    name: str                    # pattern; {k} = layer index in a stacked PyTorch module
    shape: str                   # formula over input, H, D, P
    gate_axis: int | None        # axis of the full tensor holding the gate blocks (None: no gates)
    canonical: tuple[str, ...]   # canonical fields it holds
    combine: str | None = None   # several fields: 'concat' along the gate axis, 'stack' on the axis before it, 'sum'
    transposed: bool = False     # [input, G*H] where canonical is [G*H, input]


# Per framework: how directions are told apart, index syntax, activation symbols in ONNX's f, g, h roles,
# and what the framework calls the GRU reset variant.
FRAMEWORKS = {
    "canonical": {
        "directions": "prefix", "index": "python",
        "direction_names": {"forward": ("forward.",), "reverse": ("reverse.",),
                            "bidirectional": ("forward.", "reverse.")},
        "activations": {"lstm": ("f", "g", "h"), "gru": ("f", "g"), "rnn": ("f",)},
        "activation_attr": "activations [f, g, h]",
        "reset": "reset_after: True (after the recurrent matmul) / False (before)",
        "direction_attr": "direction: forward / reverse / bidirectional",
    },
    "keras": {
        "directions": "prefix", "index": "python",
        "direction_names": {"forward": ("",), "reverse": ("",),
                            "bidirectional": ("forward_layer/", "backward_layer/")},
        "activations": {"lstm": ("recurrent_activation", "activation", "activation"),
                        "gru": ("recurrent_activation", "activation"), "rnn": ("activation",)},
        "activation_attr": "recurrent_activation (gates), activation",
        "reset": "reset_after=True / reset_after=False",
        "direction_attr": "go_backwards; Bidirectional(forward_layer, backward_layer)",
    },
    "onnx": {
        "directions": "axis0", "index": "python",
        "activations": {"lstm": ("f", "g", "h"), "gru": ("f", "g"), "rnn": ("f",)},
        "activation_attr": "activations (f, g, h per direction), activation_alpha, activation_beta",
        "reset": "linear_before_reset=1 / linear_before_reset=0",
        "direction_attr": "direction: forward / reverse / bidirectional (axis 0 of W, R, B)",
    },
    "torch": {
        "directions": "suffix", "index": "python",
        "direction_names": {"forward": ("",), "reverse": ("",), "bidirectional": ("", "_reverse")},
        "activations": {"lstm": ("sigmoid", "tanh", "tanh"), "gru": ("sigmoid", "tanh"),
                        "rnn": ("nonlinearity",)},
        "activation_attr": "fixed sigmoid/tanh; RNN nonlinearity ('tanh' or 'relu')",
        "reset": "always after the recurrent matmul (no reset-before variant)",
        "direction_attr": "bidirectional=True: '_reverse' suffix",
    },
    "matlab": {
        "directions": "rows", "index": "matlab",
        "activations": {"lstm": ("GateActivationFunction", "StateActivationFunction", "StateActivationFunction"),
                        "gru": ("GateActivationFunction", "StateActivationFunction"), "rnn": ()},
        "activation_attr": "GateActivationFunction, StateActivationFunction",
        "reset": "ResetGateMode: 'after-multiplication' / 'before-multiplication' / "
                 "'recurrent-bias-after-multiplication'",
        "direction_attr": "bilstmLayer: forward rows over backward rows",
    },
}

T = Tensor
_ONNX_GRU = (T("W", "(D, 3*H, input)", 1, ("W",)), T("R", "(D, 3*H, H)", 1, ("R",)),
             T("B", "(D, 6*H)", 1, ("Wb", "Rb"), "concat"))
_CANONICAL = {c: (T("W", f"({g}, input)", 0, ("W",)), T("R", f"({g}, H)", 0, ("R",)),
                  T("Wb", f"({g},)", 0, ("Wb",)), T("Rb", f"({g},)", 0, ("Rb",)))
              for c, g in (("lstm", "4*H"), ("gru", "3*H"), ("rnn", "H"))}

# `when`: conditions on the layer (reset_after, recurrent_bias) choosing among a cell's variants; first match wins.
LAYOUTS = [
    {"framework": "canonical", "cell": "lstm",
     "tensors": _CANONICAL["lstm"] + (T("proj", "(P, H)", None, ("proj",)),),
     "notes": ("with a projection R is (4*H, P)",)},
    {"framework": "canonical", "cell": "gru", "tensors": _CANONICAL["gru"]},
    {"framework": "canonical", "cell": "rnn", "tensors": _CANONICAL["rnn"]},

    {"framework": "keras", "cell": "lstm", "tensors": (
        T("kernel", "(input, 4*H)", 1, ("W",), transposed=True),
        T("recurrent_kernel", "(H, 4*H)", 1, ("R",), transposed=True),
        T("bias", "(4*H,)", 0, ("Wb", "Rb"), "sum"))},
    {"framework": "keras", "cell": "gru", "when": {"reset_after": True}, "variant": "reset_after=True", "tensors": (
        T("kernel", "(input, 3*H)", 1, ("W",), transposed=True),
        T("recurrent_kernel", "(H, 3*H)", 1, ("R",), transposed=True),
        T("bias", "(2, 3*H)", 1, ("Wb", "Rb"), "stack"))},
    {"framework": "keras", "cell": "gru", "when": {"reset_after": False}, "variant": "reset_after=False", "tensors": (
        T("kernel", "(input, 3*H)", 1, ("W",), transposed=True),
        T("recurrent_kernel", "(H, 3*H)", 1, ("R",), transposed=True),
        T("bias", "(3*H,)", 0, ("Wb", "Rb"), "sum"))},
    {"framework": "keras", "cell": "rnn", "tensors": (
        T("kernel", "(input, H)", 1, ("W",), transposed=True),
        T("recurrent_kernel", "(H, H)", 1, ("R",), transposed=True),
        T("bias", "(H,)", 0, ("Wb", "Rb"), "sum"))},

    {"framework": "onnx", "cell": "lstm", "tensors": (
        T("W", "(D, 4*H, input)", 1, ("W",)), T("R", "(D, 4*H, H)", 1, ("R",)),
        T("B", "(D, 8*H)", 1, ("Wb", "Rb"), "concat")),
     "notes": ("peepholes P (D, 3*H), blocks i, o, f, are the canonical P (3, H), rows i, f, o; "
               "input_forget=1 has no canonical form",)},
    {"framework": "onnx", "cell": "gru", "when": {"reset_after": True}, "variant": "linear_before_reset=1",
     "tensors": _ONNX_GRU},
    {"framework": "onnx", "cell": "gru", "when": {"reset_after": False}, "variant": "linear_before_reset=0",
     "tensors": _ONNX_GRU},
    {"framework": "onnx", "cell": "rnn", "tensors": (
        T("W", "(D, H, input)", 1, ("W",)), T("R", "(D, H, H)", 1, ("R",)),
        T("B", "(D, 2*H)", 1, ("Wb", "Rb"), "concat"))},

    {"framework": "torch", "cell": "lstm", "tensors": (
        T("weight_ih_l{k}", "(4*H, input)", 0, ("W",)), T("weight_hh_l{k}", "(4*H, H)", 0, ("R",)),
        T("bias_ih_l{k}", "(4*H,)", 0, ("Wb",)), T("bias_hh_l{k}", "(4*H,)", 0, ("Rb",)),
        T("weight_hr_l{k}", "(P, H)", None, ("proj",))),
     "notes": ("with proj_size, weight_hh_l{k} is (4*H, P)",)},
    {"framework": "torch", "cell": "gru", "when": {"reset_after": True}, "variant": "reset after (always)",
     "tensors": (
        T("weight_ih_l{k}", "(3*H, input)", 0, ("W",)), T("weight_hh_l{k}", "(3*H, H)", 0, ("R",)),
        T("bias_ih_l{k}", "(3*H,)", 0, ("Wb",)), T("bias_hh_l{k}", "(3*H,)", 0, ("Rb",)))},
    {"framework": "torch", "cell": "gru", "when": {"reset_after": False}, "variant": "reset before",
     "unsupported": "PyTorch's GRU always applies the reset gate after the recurrent matmul"},
    {"framework": "torch", "cell": "rnn", "tensors": (
        T("weight_ih_l{k}", "(H, input)", 0, ("W",)), T("weight_hh_l{k}", "(H, H)", 0, ("R",)),
        T("bias_ih_l{k}", "(H,)", 0, ("Wb",)), T("bias_hh_l{k}", "(H,)", 0, ("Rb",)))},

    {"framework": "matlab", "cell": "lstm", "tensors": (
        T("InputWeights", "(D*4*H, input)", 0, ("W",)), T("RecurrentWeights", "(D*4*H, H)", 0, ("R",)),
        T("Bias", "(D*4*H, 1)", 0, ("Wb", "Rb"), "sum")),
     "notes": ("lstmLayer D = 1; bilstmLayer D = 2, forward rows over backward rows",)},
    {"framework": "matlab", "cell": "gru", "when": {"reset_after": True, "recurrent_bias": True},
     "variant": "ResetGateMode='recurrent-bias-after-multiplication'", "bidirectional": False, "tensors": (
        T("InputWeights", "(3*H, input)", 0, ("W",)), T("RecurrentWeights", "(3*H, H)", 0, ("R",)),
        T("Bias", "(6*H, 1)", 0, ("Wb", "Rb"), "concat"))},
    {"framework": "matlab", "cell": "gru", "when": {"reset_after": True, "recurrent_bias": False},
     "variant": "ResetGateMode='after-multiplication'", "bidirectional": False, "tensors": (
        T("InputWeights", "(3*H, input)", 0, ("W",)), T("RecurrentWeights", "(3*H, H)", 0, ("R",)),
        T("Bias", "(3*H, 1)", 0, ("Wb",))),
     "notes": ("read as Rb = 0; a writer may fold Rb of r and z into Bias, Rb of n must be 0",)},
    {"framework": "matlab", "cell": "gru", "when": {"reset_after": False},
     "variant": "ResetGateMode='before-multiplication'", "bidirectional": False, "tensors": (
        T("InputWeights", "(3*H, input)", 0, ("W",)), T("RecurrentWeights", "(3*H, H)", 0, ("R",)),
        T("Bias", "(3*H, 1)", 0, ("Wb", "Rb"), "sum"))},
    {"framework": "matlab", "cell": "rnn", "unsupported": "MATLAB has no built-in simple RNN layer"},
]
del T


def gate_order(framework: str, cell: str) -> str:
    return gates.CANONICAL[cell] if framework == "canonical" else gates.ORDERS[framework][cell]


def select(framework: str, cell: str, reset_after: bool = True, recurrent_bias: bool = True) -> dict:
    """The layout entry for one layer; an entry with `unsupported` says why the framework cannot hold it."""
    have = {"reset_after": reset_after, "recurrent_bias": recurrent_bias}
    for entry in LAYOUTS:
        if entry["framework"] == framework and entry["cell"] == cell and all(
                have[k] == v for k, v in entry.get("when", {}).items()):
            return entry
    raise KeyError(f"no layout for {framework} {cell}")


def dims(shape: str) -> list[str]:
    """'(D, 4*H, input)' -> ['D', '4*H', 'input']."""
    return [d.strip() for d in shape.strip("()").split(",") if d.strip()]


def evaluate(shape: str, **symbols: int) -> tuple[int, ...]:
    """Evaluate a shape formula: each dimension is a product of integers and symbols."""
    out = []
    for d in dims(shape):
        n = 1
        for factor in d.split("*"):
            n *= int(factor) if factor.isdigit() else symbols[factor]
        out.append(n)
    return tuple(out)


def tensor_name(framework: str, tensor: Tensor, direction: str, d: int, k: int = 0) -> str:
    """The file's name for `tensor` of direction index `d` of a layer whose direction is `direction`."""
    fw = FRAMEWORKS[framework]
    name = tensor.name.format(k=k)
    if fw["directions"] == "prefix":
        return fw["direction_names"][direction][d] + name
    if fw["directions"] == "suffix":
        return name + fw["direction_names"][direction][d]
    return name


def place(framework: str, tensor: Tensor, field: str, d: int, n_dirs: int, cell: str):
    """Where one direction's canonical `field` sits in the file tensor.

    Returns (fixed, base): `fixed` has one item per axis, an int for an index fixed by the direction
    or the bias row, None for a whole axis; `base` is the first gate block (in units of H) on the gate axis.
    """
    fixed: list[int | None] = [None] * len(dims(tensor.shape))
    style, G = FRAMEWORKS[framework]["directions"], gates.GATE_COUNT[cell]
    part = tensor.canonical.index(field)
    if style == "axis0":
        fixed[0] = d
    base = 0
    if tensor.combine == "stack":
        fixed[tensor.gate_axis - 1] = part
    elif tensor.combine == "concat":
        base += part * G
    if style == "rows" and n_dirs == 2 and tensor.gate_axis is not None:
        base += d * G * (len(tensor.canonical) if tensor.combine == "concat" else 1)
    return fixed, base


def index_string(framework: str, name: str, fixed, gate_axis, span) -> str:
    """`name[...]` (or MATLAB `name(...)`), 0-based half-open `span` (start, stop) given as ints or strings."""
    matlab = FRAMEWORKS[framework]["index"] == "matlab"
    parts = []
    for axis, f in enumerate(fixed):
        if axis == gate_axis and span is not None:
            a, b = span
            parts.append(f"{_plus1(a)}:{b}" if matlab else f"{a}:{b}")
        elif f is not None:
            parts.append(str(f + 1 if matlab else f))
        else:
            parts.append(":")
    while span is None and parts and parts[-1] == ":":
        parts.pop()                       # W[0] rather than W[0, :, :]
    if not parts:
        return name
    return f"{name}({', '.join(parts)})" if matlab else f"{name}[{', '.join(parts)}]"


def _plus1(a) -> str:
    if isinstance(a, int):
        return str(a + 1)
    return "1" if a == "0" else f"{a}+1"


def blocks(n: int, H: int | None = None) -> str | int:
    """n gate blocks as a number (H given) or symbolically: 0, H, 2*H."""
    if H is not None:
        return n * H
    return "0" if n == 0 else "H" if n == 1 else f"{n}*H"


def canonical_text(tensor: Tensor) -> str:
    fields = tensor.canonical
    text = {None: fields[0], "sum": " + ".join(fields), "concat": f"concat({', '.join(fields)})",
            "stack": f"stack({', '.join(fields)})"}[tensor.combine]
    return text + (" (transposed)" if tensor.transposed else "")


def markdown_table() -> str:
    """The README's weight-layout table, then the activation and reset naming of each framework."""
    rows = ["| framework | cell | tensor | shape | gate axis | gate order | canonical |",
            "|---|---|---|---|---|---|---|"]
    notes = []
    for e in LAYOUTS:
        fw, cell = e["framework"], e["cell"]
        label = cell.upper() + (f" {e['variant']}" if e.get("variant") else "")
        order = gate_order(fw, cell)
        if e.get("unsupported"):
            rows.append(f"| {fw} | {label} | - | - | - | - | not available: {e['unsupported']} |")
            continue
        for t in e["tensors"]:
            axis = "-" if t.gate_axis is None else str(t.gate_axis)
            rows.append(f"| {fw} | {label} | `{t.name}` | {t.shape} | {axis} | "
                        f"{order if t.gate_axis is not None else '-'} | {canonical_text(t)} |")
        notes += [f"- {fw} {label}: {n}" for n in e.get("notes", ())]
        if e.get("bidirectional") is False and f"- {fw} {cell.upper()}: no bidirectional layer" not in notes:
            notes.append(f"- {fw} {cell.upper()}: no bidirectional layer")
    rows += ["", "Shapes: `input` features, `H` hidden units, `D` directions, `P` proj_size. "
             "Canonical: W (G*H, input), R (G*H, H), Wb and Rb (G*H,).", ""] + notes
    rows += ["", "| framework | activations | GRU reset variant | directions |", "|---|---|---|---|"]
    for fw, f in FRAMEWORKS.items():
        rows.append(f"| {fw} | {f['activation_attr']} | {f['reset']} | {f['direction_attr']} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
