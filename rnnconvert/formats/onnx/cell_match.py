"""Which recurrent cell a step graph computes, and its weights: the body of a `Loop`/`Scan` (or one
unrolled step) evaluated symbolically, then matched against the LSTM, GRU (reset before or after the
recurrent product) and simple-RNN equations.

Every value of the step is a constant, or a polynomial (`Poly`: {tuple of atom keys: coefficient}) over
atoms: `Lin` (x W_x + h W_h + ... + b, an affine map of the step input, the states or a product such as
r*h) and `Act` (an elementwise activation of a polynomial).  Matrix products, bias additions, gate
splits and slices along the feature axis stay affine; Mul/Add/Sub build polynomials, so
`z*h + (1-z)*n`, `n + z*(h-n)` and `(1-z)*n + z*h` are one polynomial.  An op outside that set, or a
polynomial that is not a cell, is refused naming the node (`NoCell`).  The match only proposes the
weights: lift_loop.py accepts them once onnxruntime runs the step and the native node alike.
"""
from __future__ import annotations

import itertools

import numpy as np
from onnx import helper, numpy_helper

ACTS = {"Sigmoid": "Sigmoid", "Tanh": "Tanh", "Relu": "Relu", "Softsign": "Softsign", "Softplus": "Softplus",
        "HardSigmoid": "HardSigmoid", "Elu": "Elu", "LeakyRelu": "LeakyRelu"}
_ids = itertools.count()
# the batch size in a Shape of a step value: an odd number no cell's constants hold; what it reaches is
# confirmed by running the step (lift_loop._confirm), never trusted
BATCH = 1000003


class NoCell(Exception):
    """The step is not a cell rnnconvert knows; `node` names the first op that does not fit."""

    def __init__(self, node, why: str):
        super().__init__(why)
        self.node, self.why = node, why


class Opaque:
    """A run-time value that is not part of the cell (the batch size, a counter)."""


class Lin:
    """sum_k in_k @ M_k + bias over named inputs ('x', 'h', 'c', or a product's key), `cols` wide."""

    def __init__(self, terms: dict, bias: np.ndarray, inputs: dict | None = None):
        self.terms = {k: np.asarray(v, np.float64) for k, v in terms.items()}
        self.bias = np.asarray(bias, np.float64)
        self.inputs = inputs or {}          # key -> Poly for the product inputs
        self.key = f"L{next(_ids)}"

    @property
    def cols(self):
        return self.bias.shape[0]


class Act:
    def __init__(self, op: str, arg: "Poly", alpha=None, beta=None, node=None):
        self.op, self.arg, self.alpha, self.beta = op, arg, alpha, beta
        self.node = node                    # the activation node, for messages
        self.key = f"A{next(_ids)}"


class Poly:
    """{tuple(sorted atom keys): scalar coefficient}; `atoms` maps keys to Lin/Act; `cols` features."""

    def __init__(self, terms: dict, atoms: dict, cols: int):
        self.terms = {k: float(v) for k, v in terms.items() if v != 0}
        self.atoms, self.cols = atoms, cols

    @staticmethod
    def of(atom) -> "Poly":
        cols = atom.cols if isinstance(atom, Lin) else atom.arg.cols
        return Poly({(atom.key,): 1.0}, {atom.key: atom}, cols)

    def single(self):
        """The one atom of `1 * atom`, else None."""
        if len(self.terms) == 1:
            (k, v), = self.terms.items()
            if len(k) == 1 and v == 1.0:
                return self.atoms[k[0]]
        return None

    def same(self, other: "Poly") -> bool:
        return self.terms == other.terms


def var(name: str, cols: int) -> Poly:
    return Poly.of(Lin({name: np.eye(cols)}, np.zeros(cols)))


def is_var(p, name: str) -> bool:
    a = p.single() if isinstance(p, Poly) else p
    return isinstance(a, Lin) and list(a.terms) == [name] and not np.any(a.bias) and \
        a.terms[name].shape[0] == a.terms[name].shape[1] and np.array_equal(a.terms[name], np.eye(a.cols))


# ------------------------------------------------------------------------------ symbolic evaluation

def evaluate(nodes, env: dict, fold, misfits: list | None = None) -> dict:
    """Run `nodes` (in order) over `env` {name: np.ndarray | Poly | Opaque}; `fold(node, arrays)` computes a
    node whose inputs are all constants.  Nodes whose inputs are unknown are skipped (not on the cell's way).
    With `misfits`, a node that does not fit gives Opaque outputs and its NoCell is appended there (an
    unrolled step's neighbours: the stacking of its outputs, a head) instead of raising."""
    for node in nodes:
        ins = [env.get(i) if i else None for i in node.input]
        if any(i and v is None for i, v in zip(node.input, ins)):
            continue
        try:
            if all(isinstance(v, np.ndarray) or v is None for v in ins):
                outs = fold(node, ins)
            elif any(isinstance(v, Opaque) for v in ins):
                outs = [Opaque() for _ in node.output]
            else:
                outs = _symbolic(node, ins)
        except NoCell as exc:
            if misfits is None:
                raise
            misfits.append(exc)
            outs = [Opaque() for _ in node.output]
        for name, value in zip(node.output, outs):
            env[name] = value
    return env


def _attr(node, name, default=None):
    a = next((a for a in node.attribute if a.name == name), None)
    return default if a is None else helper.get_attribute_value(a)


def _symbolic(node, ins):
    op = node.op_type
    if op == "Identity":
        return [ins[0]]
    if op == "Shape" and not any(a.name in ("start", "end") for a in node.attribute):
        return [np.array([BATCH, ins[0].cols], np.int64)]     # torch's chunk sizes come from it
    if op in ("MatMul", "Gemm"):
        return [_matmul(node, ins)]
    if op in ("Add", "Sub"):
        a, b = ins[:2]
        return [_add(node, a, b, -1.0 if op == "Sub" else 1.0)]
    if op == "Mul":
        return [_mul(node, ins[0], ins[1])]
    if op == "Neg":
        return [_scale(node, ins[0], -1.0)]
    if op in ACTS:
        p = _as_poly(node, ins[0])
        alpha, beta = _attr(node, "alpha"), _attr(node, "beta")
        return [Poly.of(Act(op, p, alpha, beta, node))]
    if op in ("Max", "Min", "Clip"):
        return [_clip(node, ins)]
    if op == "Split":
        return _split(node, ins)
    if op == "Slice":
        return [_slice(node, ins)]
    raise NoCell(node, f"{op} on a value of the cell")


def _as_poly(node, v):
    if isinstance(v, Poly):
        return v
    raise NoCell(node, f"{node.op_type} on constants where the cell expects a value of the step")


def _const_cols(node, v, cols):
    """A constant broadcast over [batch, cols] -> its row vector, or raise."""
    a = np.asarray(v, np.float64)
    if a.ndim == 0 or a.size == 1:
        return np.full(cols, float(a.reshape(-1)[0]))
    a = a.reshape(-1) if a.ndim == 1 or (a.ndim == 2 and a.shape[0] == 1) else None
    if a is None or a.shape[0] != cols:
        raise NoCell(node, f"{node.op_type} with a constant of shape {np.shape(v)} over {cols} features")
    return a


def _add(node, a, b, sign):
    if isinstance(a, np.ndarray) and isinstance(b, Poly):      # c + s*p
        return _add_const(node, _scale(node, b, sign), a, 1.0)
    if isinstance(b, np.ndarray):                               # p + s*c
        return _add_const(node, a, b, sign)
    if a.cols != b.cols:
        raise NoCell(node, f"{node.op_type} of {a.cols} and {b.cols} features")
    la, lb = a.single(), b.single()
    if isinstance(la, Lin) and isinstance(lb, Lin):       # two affine maps: one, over both inputs
        terms = dict(la.terms)
        for k, m in lb.terms.items():
            terms[k] = terms.get(k, 0) + sign * m
        return Poly.of(Lin(terms, la.bias + sign * lb.bias, {**la.inputs, **lb.inputs}))
    terms = dict(a.terms)
    for k, v in b.terms.items():
        terms[k] = terms.get(k, 0.0) + sign * v
    return Poly(terms, {**a.atoms, **b.atoms}, a.cols)


def _add_const(node, p, c, sign):
    c = _const_cols(node, c, p.cols) * sign
    lin = p.single()
    if isinstance(lin, Lin):
        return Poly.of(Lin(lin.terms, lin.bias + c, lin.inputs))
    if not np.all(c == c[0]):
        raise NoCell(node, f"{node.op_type} of a per-feature constant to a product of gates")
    terms = dict(p.terms)
    terms[()] = terms.get((), 0.0) + c[0]
    return Poly(terms, p.atoms, p.cols)


def _scale(node, p, s):
    lin = p.single()
    if isinstance(lin, Lin):
        return Poly.of(Lin({k: m * s for k, m in lin.terms.items()}, lin.bias * s, lin.inputs))
    return Poly({k: v * s for k, v in p.terms.items()}, p.atoms, p.cols)


def _mul(node, a, b):
    if isinstance(a, np.ndarray):
        a, b = b, a
    if isinstance(b, np.ndarray):
        c = _const_cols(node, b, a.cols)
        lin = a.single()
        if isinstance(lin, Lin):
            return Poly.of(Lin({k: m * c for k, m in lin.terms.items()}, lin.bias * c, lin.inputs))
        if not np.all(c == c[0]):
            raise NoCell(node, "Mul of a per-feature constant and a product of gates")
        return _scale(node, a, c[0])
    if a.cols != b.cols:
        raise NoCell(node, f"Mul of {a.cols} and {b.cols} features")
    terms: dict = {}
    for (ka, va), (kb, vb) in itertools.product(a.terms.items(), b.terms.items()):
        k = tuple(sorted(ka + kb))
        terms[k] = terms.get(k, 0.0) + va * vb
    return Poly(terms, {**a.atoms, **b.atoms}, a.cols)


def _matmul(node, ins):
    p, W = ins[0], ins[1]
    if not isinstance(p, Poly) or not isinstance(W, np.ndarray) or W.ndim != 2:
        raise NoCell(node, f"{node.op_type} of a step value by something other than a constant matrix")
    if node.op_type == "Gemm":
        if _attr(node, "transA", 0):
            raise NoCell(node, "Gemm with transA=1")
        W = W.T if _attr(node, "transB", 0) else W
        W = W * float(_attr(node, "alpha", 1.0))
    if W.shape[0] != p.cols:
        raise NoCell(node, f"{node.op_type} of {p.cols} features by a {W.shape} matrix")
    lin = p.single()
    if not isinstance(lin, Lin):            # r*h @ R: the product is an input of its own
        lin = Lin({f"P{next(_ids)}": np.eye(p.cols)}, np.zeros(p.cols))
        lin.inputs = {next(iter(lin.terms)): p}
    out = Lin({k: m @ W for k, m in lin.terms.items()}, lin.bias @ W, lin.inputs)
    if node.op_type == "Gemm" and len(ins) > 2 and ins[2] is not None:
        beta = float(_attr(node, "beta", 1.0))
        if isinstance(ins[2], Poly):          # torch's mm(x, W) + b + mm(h, R): C is the first product
            return _add(node, Poly.of(out), _scale(node, ins[2], beta), 1.0)
        out.bias = out.bias + _const_cols(node, ins[2], out.cols) * beta
    return Poly.of(out)


def _clip(node, ins):
    """Max(q, 0) is Relu(q); Min(Max(q, 0), 1), Max(Min(q, 1), 0) and Clip(q, 0, 1) of an affine q are
    HardSigmoid(0.2, 0.5) of (q - 0.5) / 0.2 (how tf2onnx writes Keras 2's hard_sigmoid: clip(0.2 z + 0.5))."""
    op = node.op_type
    p = ins[0]
    if not isinstance(p, Poly) or len(ins) < 2 or len(ins) > 3 or any(isinstance(v, Poly) for v in ins[1:]):
        raise NoCell(node, f"{op} of values of the cell")
    if op == "Clip":
        lo, hi = (None if v is None else float(np.asarray(v).reshape(-1)[0]) for v in (ins + [None])[1:3])
    else:
        c = np.asarray(ins[1])
        if c.size != 1:
            raise NoCell(node, f"{op} with a constant of shape {c.shape}")
        lo, hi = (float(c.reshape(-1)[0]), None) if op == "Max" else (None, float(c.reshape(-1)[0]))
    one = p.single()
    inner = one.op if isinstance(one, Act) else None
    if lo == 0.0 and hi is None and isinstance(one, Lin):
        return Poly.of(Act("Relu", p, node=node))
    if lo is None and hi == 1.0 and isinstance(one, Lin):
        return Poly.of(Act("Min", p, node=node))          # half of a clip: the Max follows
    if (lo == 0.0 and hi is None and inner == "Min") or (lo is None and hi == 1.0 and inner == "Relu"):
        q = one.arg.single()
    elif lo == 0.0 and hi == 1.0 and isinstance(one, Lin):
        q = one
    else:
        raise NoCell(node, f"{op} to [{lo}, {hi}] of a value of the cell")
    if not isinstance(q, Lin):
        raise NoCell(node, f"{op} of a value that is not affine")
    z = Lin({k: m / 0.2 for k, m in q.terms.items()}, (q.bias - 0.5) / 0.2, q.inputs)
    return Poly.of(Act("HardSigmoid", Poly.of(z), 0.2, 0.5, node))


def _cols_slice(p: Poly, start: int, end: int) -> Poly:
    atoms = {}
    new = {}
    for key, atom in p.atoms.items():
        if isinstance(atom, Lin):
            a = Lin({k: m[:, start:end] for k, m in atom.terms.items()}, atom.bias[start:end], atom.inputs)
        else:
            a = Act(atom.op, _cols_slice(atom.arg, start, end), atom.alpha, atom.beta, atom.node)
        atoms[a.key] = a
        new[key] = a.key
    return Poly({tuple(sorted(new[k] for k in t)): v for t, v in p.terms.items()}, atoms, end - start)


def _feature_axis(node, axis, rank=2):
    if axis not in (rank - 1, -1):
        raise NoCell(node, f"{node.op_type} along axis {axis}, not the feature axis")


def _split(node, ins):
    p = _as_poly(node, ins[0])
    _feature_axis(node, _attr(node, "axis", 0))
    sizes = ins[1] if len(ins) > 1 and ins[1] is not None else _attr(node, "split")
    n = len(node.output)
    sizes = [int(s) for s in sizes] if sizes is not None else [p.cols // n] * n
    if sum(sizes) != p.cols:
        raise NoCell(node, f"Split of {p.cols} features into {sizes}")
    bounds = np.cumsum([0] + sizes)
    return [_cols_slice(p, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _slice(node, ins):
    p = _as_poly(node, ins[0])
    if any(isinstance(v, (Opaque, Poly)) for v in ins[1:]):
        raise NoCell(node, "Slice with bounds computed at run time")
    starts, ends = (np.asarray(v).reshape(-1) for v in ins[1:3])
    axes = np.asarray(ins[3]).reshape(-1) if len(ins) > 3 and ins[3] is not None else np.arange(len(starts))
    steps = np.asarray(ins[4]).reshape(-1) if len(ins) > 4 and ins[4] is not None else np.ones(len(starts))
    out = p
    for s, e, ax, st in zip(starts, ends, axes, steps):
        s, e = int(s), int(e)
        if int(ax) in (0, -2) and s <= 0 and e >= 2 ** 31 - 1 and int(st) == 1:
            continue                        # the whole batch axis
        _feature_axis(node, int(ax))
        if int(st) != 1:
            raise NoCell(node, f"Slice with step {int(st)}")
        s, e = slice(s, e).indices(out.cols)[:2]
        out = _cols_slice(out, s, e)
    return out


def fold_with(folder):
    """fold(node, arrays) for `evaluate`: Constant nodes and constant arithmetic through `folder`."""
    def fold(node, arrays):
        if node.op_type == "Constant":
            t = next(a for a in node.attribute if a.name == "value")
            return [numpy_helper.to_array(t.t)]
        try:
            return [np.asarray(v) for v in folder.fold(node, arrays)]
        except Exception as exc:  # noqa: BLE001 - a constant op the folder does not compute
            raise NoCell(node, f"{node.op_type} on constants ({type(exc).__name__})") from None
    return fold
