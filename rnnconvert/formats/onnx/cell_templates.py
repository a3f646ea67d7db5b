"""The LSTM, GRU and simple-RNN equations, matched against the polynomials `cell_match` makes of a step's
new states; a match gives the native node's weights in ONNX order (W/R [gates*H, in] iofc / zrh, B =
[Wb, Rb]), its activations and, for a GRU, linear_before_reset.

  LSTM  c' = f*c + i*g, h' = o*act_h(c')            (i, f, o gates over x and h; no peepholes)
  GRU   h' = z*h + (1-z)*n  (or h' = (1-u)*h + u*n, u = 1-z for a sigmoid)
        n = act(x W_n + b + (r*h) R_n)               reset before (Keras reset_after=False)
        n = act(x W_n + b_x + r*(h R_n + b_h))       reset after (torch, Keras reset_after=True)
  RNN   h' = act(x W + h R + b)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cell_match import ACTS, Act, Lin, NoCell, Poly, is_var

_GATES = ("Sigmoid", "HardSigmoid")        # what gates use; a Tanh among them is the odd one
_DEFAULT = {"HardSigmoid": (0.2, 0.5), "Elu": (1.0, None), "LeakyRelu": (0.01, None)}


@dataclass
class Cell:
    kind: str                     # lstm | gru | rnn
    hidden: int
    W: np.ndarray                 # [gates*H, F], ONNX gate order
    R: np.ndarray                 # [gates*H, H]
    B: np.ndarray                 # [2*gates*H]
    acts: list                    # ONNX activation names
    alphas: list = field(default_factory=list)
    betas: list = field(default_factory=list)
    linear_before_reset: int = 0

    def attributes(self) -> dict:
        a = {"hidden_size": self.hidden, "activations": self.acts}
        if self.alphas:
            a["activation_alpha"] = self.alphas
        if self.betas:
            a["activation_beta"] = self.betas
        if self.kind == "gru":
            a["linear_before_reset"] = self.linear_before_reset
        return a


def _gate(node, atom, H, F, allowed=("x", "h")):
    """(W_x [F, H], W_h [H, H], bias [H]) of an affine gate pre-activation over x and h."""
    if not isinstance(atom, Lin) or atom.cols != H or set(atom.terms) - set(allowed):
        raise NoCell(node, "a gate whose pre-activation is not x W + h R + b")
    wx = atom.terms.get("x", np.zeros((F, H)))
    wh = atom.terms.get("h", np.zeros((H, H)))
    return wx, wh, atom.bias


def _act_of(node, p, what):
    a = p if isinstance(p, Act) else (p.single() if isinstance(p, Poly) else None)
    if not isinstance(a, Act):
        raise NoCell(node, f"the {what} is not an activation of the step's values")
    return a


def _acts(atoms) -> tuple[list, list, list]:
    names, alphas, betas = [], [], []
    for a in atoms:
        if a.op not in ACTS:
            raise NoCell(a.node, f"{a.op} where a cell has an activation")
        names.append(a.op)
        d = _DEFAULT.get(a.op)
        if d:
            alphas.append(float(a.alpha if a.alpha is not None else d[0]))
            if d[1] is not None:
                betas.append(float(a.beta if a.beta is not None else d[1]))
    return names, alphas, betas


def _slin(p: Poly):
    return p.single() if isinstance(p, Poly) else None


def match(nodes: dict, states: dict, F: int) -> Cell:
    """`states`: {'h': new h Poly} or {'h': ..., 'c': ...} over vars x, h (, c); `nodes` {same keys: the node
    computing it}, named by a refusal that has no closer node to name."""
    node = nodes["h"]
    if "c" in states:
        return _lstm(nodes, states["h"], states["c"], F)
    h = states["h"]
    one = _slin(h)
    if isinstance(one, Act):
        return _rnn(node, one, h.cols, F)
    return _gru(node, h, F)


def _rnn(node, a: Act, H, F) -> Cell:
    wx, wh, b = _gate(node, _slin(a.arg), H, F)
    names, al, be = _acts([a])
    return Cell("rnn", H, wx.T, wh.T, np.concatenate([b, np.zeros(H)]), names, al, be)


def _lstm(nodes, h: Poly, c: Poly, F) -> Cell:
    H, node = c.cols, nodes["c"]
    hk = [k for k, a in c.atoms.items() if is_var(Poly.of(a), "c")]
    if len(c.terms) != 2 or not all(v == 1.0 for v in c.terms.values()):
        raise NoCell(node, "the new cell state is not f*c + i*g")
    fc = next((t for t in c.terms if len(t) == 2 and any(k in hk for k in t)), None)
    ig = next((t for t in c.terms if t != fc and len(t) == 2), None)
    if fc is None or ig is None:
        raise NoCell(node, "the new cell state is not f*c + i*g")
    f = c.atoms[fc[0] if fc[1] in hk else fc[1]]
    i, g = (c.atoms[k] for k in ig)
    if not isinstance(i, Act) or not isinstance(g, Act) or not isinstance(f, Act):
        raise NoCell(node, "the new cell state is not f*c + i*g of activations")
    if g.op == f.op and i.op != f.op:
        i, g = g, i
    node = nodes["h"]
    if len(h.terms) != 1 or list(h.terms.values()) != [1.0] or len(next(iter(h.terms))) != 2:
        raise NoCell(node, "the new hidden state is not o*act(c)")
    o, A = (h.atoms[k] for k in next(iter(h.terms)))
    if isinstance(o, Act) and isinstance(A, Act) and o.arg.same(c):
        o, A = A, o
    if not (isinstance(A, Act) and isinstance(o, Act) and A.arg.same(c)):
        raise NoCell(node, "the new hidden state is not o*act(c) of the new cell state")
    if len({i.op, f.op, o.op}) != 1:
        odd = next(a for a in (i, f, o) if [b.op for b in (i, f, o)].count(a.op) == 1)
        raise NoCell(odd.node or node, f"the input, forget and output gates use different activations "
                                       f"({i.op}, {f.op}, {o.op})")
    gi, gf, gg, go = (_gate(node, _slin(a.arg), H, F) for a in (i, f, g, o))
    order = (gi, go, gf, gg)                                  # ONNX iofc
    W = np.concatenate([t[0].T for t in order])
    R = np.concatenate([t[1].T for t in order])
    B = np.concatenate([np.concatenate([t[2] for t in order]), np.zeros(4 * H)])
    names, al, be = _acts([f, g, A])
    return Cell("lstm", H, W, R, B, names, al, be)


def _gru(node, h: Poly, F) -> Cell:
    H = h.cols
    hkeys = [k for k, a in h.atoms.items() if isinstance(a, Lin) and is_var(Poly.of(a), "h")]
    acts = [k for k, a in h.atoms.items() if isinstance(a, Act)]
    for hk in hkeys:
        for zk in acts:
            for nk in acts:
                if zk == nk:
                    continue
                key = lambda *ks: tuple(sorted(ks))      # noqa: E731
                if h.terms == {key(zk, hk): 1.0, key(nk): 1.0, key(zk, nk): -1.0}:
                    return _gru_cell(node, h.atoms[zk], h.atoms[nk], H, F, negate=False)
                if h.terms == {key(hk): 1.0, key(zk, hk): -1.0, key(zk, nk): 1.0}:
                    if h.atoms[zk].op != "Sigmoid":
                        raise NoCell(node, "h' = (1-u)*h + u*n with a non-sigmoid u has no canonical form")
                    return _gru_cell(node, h.atoms[zk], h.atoms[nk], H, F, negate=True)
    raise NoCell(node, "the new hidden state is none of LSTM h' = o*act(c), GRU h' = z*h + (1-z)*n, "
                       "RNN h' = act(x W + h R + b)")


def _gru_cell(node, z: Act, n: Act, H, F, negate: bool) -> Cell:
    wz, rz, bz = _gate(node, _slin(z.arg), H, F)
    if negate:
        wz, rz, bz = -wz, -rz, -bz
    arg = n.arg
    lin = _slin(arg)
    r = None
    if isinstance(lin, Lin):                                  # reset before: x W_n + (r*h) R_n + b
        prods = [k for k in lin.terms if k not in ("x", "h")]
        if len(prods) != 1 or "h" in lin.terms:
            raise NoCell(node, "the candidate's pre-activation is neither x W + (r*h) R + b nor x W + r*(h R + b)")
        rh = lin.inputs[prods[0]]
        if len(rh.terms) != 1 or list(rh.terms.values()) != [1.0] or len(next(iter(rh.terms))) != 2:
            raise NoCell(node, "the candidate's recurrent product is not r*h")
        a, b = (rh.atoms[k] for k in next(iter(rh.terms)))
        r = a if isinstance(a, Act) else b
        hv = b if r is a else a
        if not isinstance(r, Act) or not is_var(Poly.of(hv), "h"):
            raise NoCell(node, "the candidate's recurrent product is not r*h")
        wn, rn, bn, rbn = lin.terms.get("x", np.zeros((F, H))), lin.terms[prods[0]], lin.bias, np.zeros(H)
        lbr = 0
    else:                                                     # reset after: x W_n + b_x + r*(h R_n + b_h)
        lx = next((arg.atoms[t[0]] for t, v in arg.terms.items() if len(t) == 1 and v == 1.0), None)
        pair = next((t for t, v in arg.terms.items() if len(t) == 2 and v == 1.0), None)
        if lx is None or pair is None or len(arg.terms) != 2:
            raise NoCell(node, "the candidate's pre-activation is neither x W + (r*h) R + b nor x W + r*(h R + b)")
        a, b = (arg.atoms[k] for k in pair)
        r, lh = (a, b) if isinstance(a, Act) else (b, a)
        if not isinstance(r, Act) or not isinstance(lh, Lin) or set(lh.terms) != {"h"}:
            raise NoCell(node, "the candidate's recurrent part is not r*(h R + b)")
        wn, _, bn = _gate(node, lx, H, F, allowed=("x",))
        rn, rbn = lh.terms["h"], lh.bias
        lbr = 1
    if r.op != z.op:
        odd = r if z.op in _GATES and r.op not in _GATES else z
        raise NoCell(odd.node or node, f"the update gate's activation is {z.op}, the reset gate's {r.op}")
    if n.op in _GATES and z.op not in _GATES:
        raise NoCell(z.node or node, f"the gates' activation is {z.op} and the candidate's {n.op} (swapped?)")
    wr, rr, br = _gate(node, _slin(r.arg), H, F)
    W = np.concatenate([wz.T, wr.T, wn.T])                    # ONNX zrh
    R = np.concatenate([rz.T, rr.T, rn.T])
    B = np.concatenate([bz, br, bn, np.zeros(H), np.zeros(H), rbn])
    names, al, be = _acts([z, n])
    return Cell("gru", H, W, R, B, names, al, be, lbr)
