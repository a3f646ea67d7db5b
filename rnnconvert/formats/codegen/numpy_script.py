"""A standalone NumPy script (`.py`) with the weights beside it (`.npz`, same stem); write-only.

The script is the forward pass people write by hand: one function per cell with the gate slices
named (LSTM i f g o, GRU r z n, canonical row blocks), then `predict(x)` calling them layer by
layer with the model's settings spelled out.  It imports only numpy (and math for gelu's erf).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np

from ...errors import InputError
from ...states import codegen_notes
from ._plan import plan

_LIBRARY = '''
# ------------------------------------------------------------------ activations (as rnnconvert's reference)
def linear(v): return v
def sigmoid(v): return 1.0 / (1.0 + np.exp(-np.maximum(v, -80.0)))
def tanh(v): return np.tanh(v)
def relu(v): return np.maximum(v, 0.0)
def softsign(v): return v / (1.0 + np.abs(v))
def softplus(v): return np.logaddexp(0.0, v)
def exponential(v): return np.exp(v)
def swish(v): return v * sigmoid(v)
def gelu(v): return 0.5 * v * (1.0 + np.vectorize(math.erf)(v / math.sqrt(2.0)))
def relu6(v): return np.clip(v, 0.0, 6.0)
def hard_sigmoid(v, alpha, beta): return np.clip(alpha * v + beta, 0.0, 1.0)
def elu(v, alpha): return np.where(v < 0, alpha * np.expm1(np.minimum(v, 0.0)), v)
def selu(v, alpha, beta): return beta * elu(v, alpha)
def leaky_relu(v, alpha): return np.where(v < 0, alpha * v, v)
def thresholded_relu(v, alpha): return np.where(v > alpha, v, 0.0)
def affine(v, alpha, beta): return alpha * v + beta
def scaled_tanh(v, alpha, beta): return alpha * np.tanh(beta * v)


def softmax(v):
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(v):
    s = v - v.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


# ------------------------------------------------------------------ cells
# x [batch, time, in]; returns the states [batch, time, state], the state at t following input t.
# W [gates*H, in], R [gates*H, state], Wb, Rb [gates*H]: gate blocks along rows.

def initial(v, batch, size):
    return np.zeros((batch, size)) if v is None else np.broadcast_to(v, (batch, size)).astype(np.float64)


def steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def lstm(x, W, R, Wb, Rb, h0=None, c0=None, proj=None, reverse=False, f=sigmoid, g=tanh, h_act=tanh,
         clip=None):
    B, T, _ = x.shape
    H = W.shape[0] // 4
    h, c = initial(h0, B, R.shape[1]), initial(c0, B, H)
    ys = np.empty((B, T, R.shape[1]))
    for t in steps(T, reverse):
        z = x[:, t] @ W.T + h @ R.T + Wb + Rb
        if clip is not None:
            z = np.clip(z, -clip, clip)
        input_gate = f(z[:, 0 * H:1 * H])
        forget_gate = f(z[:, 1 * H:2 * H])
        cell_candidate = g(z[:, 2 * H:3 * H])
        output_gate = f(z[:, 3 * H:4 * H])
        c = forget_gate * c + input_gate * cell_candidate
        h = output_gate * h_act(c)
        if proj is not None:
            h = h @ proj.T
        ys[:, t] = h
    return ys


def gru(x, W, R, Wb, Rb, h0=None, reverse=False, f=sigmoid, g=tanh, reset_after=True, clip=None):
    B, T, _ = x.shape
    H = W.shape[0] // 3
    cl = (lambda v: v) if clip is None else (lambda v: np.clip(v, -clip, clip))
    h = initial(h0, B, H)
    ys = np.empty((B, T, H))
    for t in steps(T, reverse):
        zx = x[:, t] @ W.T + Wb
        zh = h @ R[:2 * H].T + Rb[:2 * H]
        reset_gate = f(cl(zx[:, 0 * H:1 * H] + zh[:, 0 * H:1 * H]))
        update_gate = f(cl(zx[:, 1 * H:2 * H] + zh[:, 1 * H:2 * H]))
        if reset_after:    # r * (R_n h + Rb_n)
            candidate = g(cl(zx[:, 2 * H:] + reset_gate * (h @ R[2 * H:].T + Rb[2 * H:])))
        else:              # R_n (r * h) + Rb_n
            candidate = g(cl(zx[:, 2 * H:] + (reset_gate * h) @ R[2 * H:].T + Rb[2 * H:]))
        h = (1.0 - update_gate) * candidate + update_gate * h
        ys[:, t] = h
    return ys


def rnn(x, W, R, Wb, Rb, h0=None, reverse=False, f=tanh, clip=None):
    B, T, _ = x.shape
    h = initial(h0, B, W.shape[0])
    ys = np.empty((B, T, W.shape[0]))
    for t in steps(T, reverse):
        z = x[:, t] @ W.T + h @ R.T + Wb + Rb
        if clip is not None:
            z = np.clip(z, -clip, clip)
        h = f(z)
        ys[:, t] = h
    return ys
'''


def sniff(path) -> bool:
    return False


def weights_path(path) -> str:
    return os.path.splitext(str(path))[0] + ".npz"


def _act(a) -> str:
    if a.alpha is None and a.beta is None:
        return a.name
    params = ", ".join(f"{k}={float(getattr(a, k))!r}" for k in ("alpha", "beta") if getattr(a, k) is not None)
    return f"lambda v: {a.name}(v, {params})"


def _apply(a, arg: str) -> str:
    if a.name == "linear":
        return arg
    if a.alpha is None and a.beta is None:
        return f"{a.name}({arg})"
    params = ", ".join(f"{k}={float(getattr(a, k))!r}" for k in ("alpha", "beta") if getattr(a, k) is not None)
    return f"{a.name}({arg}, {params})"


def write(model, path, **options) -> list[str]:
    if options:
        raise InputError(f"the NumPy script writer takes no options, not {', '.join(sorted(options))}")
    p = plan(model)
    arrays: dict[str, np.ndarray] = {}
    body = []
    time_major = model.input.layout == "time_batch_feature"
    for s in p.steps:
        L = s.layer
        if s.directions:
            body.append(f"    # layer {s.index} '{s.name}': {s.kind.upper()}, hidden {L.hidden}, {L.direction}, "
                        f"output {L.output}" + (f", merge {L.merge}" if L.direction == "bidirectional" else "")
                        + (f", time_order {L.time_order}" if L.time_order != "input" else ""))
            picks = []
            for d in s.directions:
                key = f"l{s.index}.{d.name}"
                args = []
                for a in ("W", "R", "Wb", "Rb"):
                    arrays[f"{key}.{a}"] = getattr(d, a)
                    args.append(f"w['{key}.{a}']")
                kw = []
                for a in ("h0", "c0", "proj"):
                    v = getattr(d, a)
                    if v is not None:
                        arrays[f"{key}.{a}"] = v
                        kw.append(f"{a}=w['{key}.{a}']")
                names = {"lstm": ("f", "g", "h_act"), "gru": ("f", "g"), "rnn": ("f",)}[s.kind]
                kw += [f"{n}={_act(a)}" for n, a in zip(names, s.activations)]
                if d.reverse:
                    kw.append("reverse=True")
                if s.kind == "gru":
                    kw.append(f"reset_after={bool(L.reset_after)}")
                if L.clip is not None:
                    kw.append(f"clip={float(L.clip)!r}")
                var = "fwd" if d.name == "forward" else "bwd"
                body.append(f"    {var} = {s.kind}(x, {', '.join(args)},\n        {', '.join(kw)})")
                if d.pick == "all":
                    picks.append(f"{var}[:, ::-1]" if L.time_order == "processing" else var)
                elif d.pick == "last":
                    picks.append(f"{var}[:, 0]" if d.reverse else f"{var}[:, -1]")
                else:
                    picks.append(f"{var}[:, -1]")
            if len(picks) == 1:
                body.append(f"    x = {picks[0]}")
            else:
                a, b = picks
                body.append("    x = " + {"concat": f"np.concatenate([{a}, {b}], axis=-1)", "sum": f"{a} + {b}",
                                           "mul": f"{a} * {b}", "ave": f"({a} + {b}) / 2"}[L.merge])
        elif s.kind == "dense":
            arrays[f"l{s.index}.kernel"] = np.asarray(L.kernel, np.float32)
            bias = ""
            if L.bias is not None:
                arrays[f"l{s.index}.bias"] = np.asarray(L.bias, np.float32)
                bias = f" + w['l{s.index}.bias']"
            body.append(f"    # layer {s.index} '{s.name}': Dense {s.width_in} -> {s.width_out}, {L.activation}")
            body.append(f"    x = {_apply(L.activation, f'x @ w[{chr(39)}l{s.index}.kernel{chr(39)}]{bias}')}")
        elif s.kind == "activation":
            body.append(f"    # layer {s.index} '{s.name}': Activation {L.activation}")
            body.append(f"    x = {_apply(L.activation, 'x')}")
        else:
            body.append(f"    # layer {s.index} '{s.name}': Dropout, the identity at inference")
    npz = weights_path(path)
    np.savez(npz, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
    layout = "[time, batch, features]" if time_major else "[batch, time, features]"
    head = [f'"""{os.path.basename(str(path))}: model \'{model.name}\' as plain NumPy, generated by rnnconvert.',
            "",
            f"    predict(x): x {layout} with {p.input_size} features -> what the source framework's predict returns.",
            f"The weights are in {os.path.basename(npz)} beside this file (gate blocks along rows: LSTM ifgo, GRU rzn).",
            '"""', "import math", "import os", "", "import numpy as np", "",
            "WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "
            f"{os.path.basename(npz)!r})", _LIBRARY, "",
            "def predict(x, weights=WEIGHTS):", "    w = {k: v.astype(np.float64) for k, v in np.load(weights).items()}",
            "    x = np.asarray(x, dtype=np.float64)"]
    if time_major:
        head.append("    x = x.transpose(1, 0, 2)       # the model is time-major; computed batch-major")
    tail = []
    if time_major and p.output_is_sequence:
        tail.append("    x = x.transpose(1, 0, 2)")
    tail += ["    return x.astype(np.float32)", "", "",
             'if __name__ == "__main__":', "    import sys",
             "    np.save(sys.argv[2], predict(np.load(sys.argv[1])))", ""]
    with open(path, "w") as f:
        f.write("\n".join(head + body + tail))
    return [f"wrote {os.path.basename(npz)} beside {os.path.basename(str(path))}: the weights the script loads"] + \
        codegen_notes(model)


def run(path, x, model) -> np.ndarray:
    """Run the script in a separate python process (this interpreter) on `x`."""
    with tempfile.TemporaryDirectory(prefix="rnnconvert-np-") as d:
        fin, fout = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
        np.save(fin, np.asarray(x, np.float32))
        res = subprocess.run([sys.executable, str(path), fin, fout], capture_output=True, text=True)
        if res.returncode != 0:
            raise InputError(f"the generated script failed: {res.stderr.strip()[-1500:]}")
        return np.load(fout)
