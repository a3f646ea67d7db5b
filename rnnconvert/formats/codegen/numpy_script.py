"""A standalone NumPy script (`.py`) with the weights beside it (`.npz`, same stem); write-only.

The script is the forward pass people write by hand: one function per cell with the gate slices
named (LSTM i f g o, GRU r z n, canonical row blocks), then `predict(x)` calling them layer by
layer with the model's settings spelled out.  It imports only numpy (and math for gelu's erf).
"""
from __future__ import annotations

import os

import numpy as np

from ...files import interrupt, scratch
from ...errors import InputError
from ...model.states import codegen_notes
from ._plan import plan
from ..literals import comment, py_str

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
# x [batch, time, in]; returns the outputs [batch, time, state], the output at t following input t.
# W [gates*H, in], R [gates*H, state], Wb, Rb [gates*H]: gate blocks along rows.
# mask [batch, time] (True: a real step): a masked step keeps the states and outputs the last output
# (zeros before the first), or zeros with zero_masked (Keras zero_output_for_mask).


def hold(mask, t, new, old):
    return new if mask is None else np.where(mask[:, t, None], new, old)

def initial(v, batch, size):
    return np.zeros((batch, size)) if v is None else np.broadcast_to(v, (batch, size)).astype(np.float64)


def steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def lstm(x, W, R, Wb, Rb, h0=None, c0=None, proj=None, reverse=False, f=sigmoid, g=tanh, h_act=tanh,
         clip=None, mask=None, zero_masked=False):
    B, T, _ = x.shape
    H = W.shape[0] // 4
    h, c = initial(h0, B, R.shape[1]), initial(c0, B, H)
    out = np.zeros((B, R.shape[1]))
    ys = np.empty((B, T, R.shape[1]))
    for t in steps(T, reverse):
        z = x[:, t] @ W.T + h @ R.T + Wb + Rb
        if clip is not None:
            z = np.clip(z, -clip, clip)
        input_gate = f(z[:, 0 * H:1 * H])
        forget_gate = f(z[:, 1 * H:2 * H])
        cell_candidate = g(z[:, 2 * H:3 * H])
        output_gate = f(z[:, 3 * H:4 * H])
        c_new = forget_gate * c + input_gate * cell_candidate
        h_new = output_gate * h_act(c_new)
        if proj is not None:
            h_new = h_new @ proj.T
        h, c = hold(mask, t, h_new, h), hold(mask, t, c_new, c)
        out = hold(mask, t, h_new, np.zeros_like(out) if zero_masked else out)
        ys[:, t] = out
    return ys


def gru(x, W, R, Wb, Rb, h0=None, reverse=False, f=sigmoid, g=tanh, reset_after=True, clip=None, mask=None,
        zero_masked=False):
    B, T, _ = x.shape
    H = W.shape[0] // 3
    cl = (lambda v: v) if clip is None else (lambda v: np.clip(v, -clip, clip))
    h = initial(h0, B, H)
    out = np.zeros((B, H))
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
        h_new = (1.0 - update_gate) * candidate + update_gate * h
        h = hold(mask, t, h_new, h)
        out = hold(mask, t, h_new, np.zeros_like(out) if zero_masked else out)
        ys[:, t] = out
    return ys


def rnn(x, W, R, Wb, Rb, h0=None, reverse=False, f=tanh, clip=None, mask=None, zero_masked=False):
    B, T, _ = x.shape
    h = initial(h0, B, W.shape[0])
    out = np.zeros((B, W.shape[0]))
    ys = np.empty((B, T, W.shape[0]))
    for t in steps(T, reverse):
        z = x[:, t] @ W.T + h @ R.T + Wb + Rb
        if clip is not None:
            z = np.clip(z, -clip, clip)
        h_new = f(z)
        h = hold(mask, t, h_new, h)
        out = hold(mask, t, h_new, np.zeros_like(out) if zero_masked else out)
        ys[:, t] = out
    return ys


# ------------------------------------------------------------------ front end
# x [batch, time, features]; token ids [batch, time].

def embedding(ids, table):
    ids = np.asarray(ids)
    if ids.ndim == 3:
        ids = ids[..., 0]
    if np.any(ids != np.round(ids)) or np.any(ids < 0) or np.any(ids >= table.shape[0]):
        raise ValueError(f"token ids must be integers in [0, {table.shape[0]})")
    return table[ids.astype(np.int64)]


def masking(x, mask_value):
    mask = np.any(x.astype(np.float32) != np.float32(mask_value), axis=-1)
    return x * mask[..., None], mask


def same_padding(T, span, stride):
    """Keras 'same': max((ceil(T/s)-1)*s + span - T, 0) steps, the smaller half on the left."""
    total = max((-(-T // stride) - 1) * stride + span - T, 0)
    return total // 2, total - total // 2


def conv1d(x, kernel, bias, strides, dilation, pads, groups, act):
    """kernel [width, in/groups, filters]; pads (left, right) zero steps."""
    width, per_group, filters = kernel.shape
    xp = np.pad(x, ((0, 0), pads, (0, 0)))
    span = (width - 1) * dilation + 1
    T_out = (xp.shape[1] - span) // strides + 1
    if T_out < 1:
        raise ValueError(f"{x.shape[1]} steps are too few for a convolution reaching {span} steps")
    y = np.zeros((x.shape[0], T_out, filters))
    fo = filters // groups
    for k in range(width):
        xk = xp[:, k * dilation:k * dilation + (T_out - 1) * strides + 1:strides]
        for g in range(groups):
            y[..., g * fo:(g + 1) * fo] += xk[..., g * per_group:(g + 1) * per_group] @ kernel[k, :, g * fo:(g + 1) * fo]
    if bias is not None:
        y += bias
    return act(y)


def pool1d(x, size, strides, left, T_out, reduce):
    """Windows t*strides - left .. + size - 1; padded steps take no part (as Keras)."""
    T = x.shape[1]
    if T_out < 1:
        raise ValueError(f"{T} steps are too few for a pooling window of {size}")
    return np.stack([reduce(x[:, max(t * strides - left, 0):min(t * strides - left + size, T)], axis=1)
                     for t in range(T_out)], axis=1)


def masked_mean(x, mask):
    return (x * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)


def pool_window(T, size, strides, same):
    """(left padding, output steps) of a pooling window on T steps."""
    if same:
        return same_padding(T, size, strides)[0], -(-T // strides)
    return 0, (T - size) // strides + 1


def batch_norm(x, mean, variance, epsilon, scale=None, offset=None):
    y = (x - mean) / np.sqrt(variance + epsilon)
    if scale is not None:
        y = y * scale
    if offset is not None:
        y = y + offset
    return y
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
    p = plan(model, path)
    arrays: dict[str, np.ndarray] = {}
    body = []
    time_major = model.input.layout == "time_batch_feature"
    ids = p.input_dtype != "float32"
    for s in p.steps:
        L = s.layer
        if s.directions:
            body.append(f"    # layer {s.index} '{comment(s.name)}': {s.kind.upper()}, hidden {L.hidden}, {L.direction}, "
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
                if s.masked:
                    kw.append("mask=mask" + (", zero_masked=True" if L.masked_output == "zero" else ""))
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
            body.append(f"    # layer {s.index} '{comment(s.name)}': Dense {s.width_in} -> {s.width_out}, {L.activation}")
            body.append(f"    x = {_apply(L.activation, f'x @ w[{chr(39)}l{s.index}.kernel{chr(39)}]{bias}')}")
        elif s.kind == "activation":
            body.append(f"    # layer {s.index} '{comment(s.name)}': Activation {L.activation}")
            body.append(f"    x = {_apply(L.activation, 'x')}")
        elif s.kind == "dropout":
            body.append(f"    # layer {s.index} '{comment(s.name)}': Dropout, the identity at inference")
        else:
            body += _front_end(s, arrays)
    npz = weights_path(path)
    np.savez(npz, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
    layout = "[time, batch, features]" if time_major else "[batch, time, features]"
    head = [f'"""{comment(os.path.basename(str(path)))}: model \'{comment(model.name)}\' as plain NumPy, generated by rnnconvert.',
            "",
            f"    predict(x): x {layout} with {p.input_size} features -> what the source framework's predict returns.",
            f"The weights are in {comment(os.path.basename(npz))} beside this file (gate blocks along rows: LSTM ifgo, GRU rzn).",
            '"""', "import math", "import os", "", "import numpy as np", "",
            "WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "
            f"{py_str(os.path.basename(npz))})", _LIBRARY, "",
            "def predict(x, weights=WEIGHTS):", "    w = {k: v.astype(np.float64) for k, v in np.load(weights).items()}",
            *(["    x = np.asarray(x)", "    x = x[..., 0] if x.ndim == 3 else x   # token ids"]
              if ids else ["    x = np.asarray(x, dtype=np.float64)"])]
    if time_major:
        head.append(f"    x = x.transpose({'1, 0' if ids else '1, 0, 2'})       # the model is time-major; "
                    "computed batch-major")
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


def _front_end(s, arrays: dict) -> list[str]:
    """The predict lines of Embedding, Masking, Conv1D, Pooling1D, Flatten and BatchNorm."""
    L, key = s.layer, f"l{s.index}"
    w = lambda name: f"w['{key}.{name}']"  # noqa: E731
    head = f"    # layer {s.index} '{comment(s.name)}': "
    if s.kind == "embedding":
        arrays[f"{key}.table"] = L.table
        lines = [head + f"Embedding {L.table.shape[0]} x {L.table.shape[1]}" + (", mask_zero" if L.mask_zero else "")]
        if L.mask_zero:
            lines.append("    mask = x != 0")
        return lines + [f"    x = embedding(x, {w('table')})"]
    if s.kind == "masking":
        return [head + f"Masking {float(L.mask_value)!r}: steps all equal to it are masked and zeroed",
                f"    x, mask = masking(x, {float(L.mask_value)!r})"]
    if s.kind == "conv1d":
        arrays[f"{key}.kernel"] = L.kernel
        bias = "None"
        if L.bias is not None:
            arrays[f"{key}.bias"] = L.bias
            bias = w("bias")
        span = (int(L.kernel.shape[0]) - 1) * int(L.dilation) + 1
        pads = {"valid": "(0, 0)", "causal": f"({span - 1}, 0)", "explicit": str(tuple(int(v) for v in L.pads)),
                "same": f"same_padding(x.shape[1], {span}, {int(L.strides)})"}[L.padding]
        return [head + f"Conv1D {L.kernel.shape[2]} filters, width {L.kernel.shape[0]}, padding {L.padding}",
                f"    x = conv1d(x, {w('kernel')}, {bias}, strides={int(L.strides)}, dilation={int(L.dilation)}, pads={pads}, "
                f"groups={int(L.groups)}, act=lambda v: {_apply(L.activation, 'v')})"]
    if s.kind == "pooling1d":
        reduce = "np.max" if L.mode == "max" else "np.mean"
        if L.pool_size is None:
            if s.masked and L.mode == "average":
                return [head + "global average pooling over the unmasked steps", "    x = masked_mean(x, mask)"]
            return [head + f"global {L.mode} pooling", f"    x = {reduce}(x, axis=1)"]
        size, st = int(L.pool_size), int(L.strides or L.pool_size)
        return [head + f"{L.mode} pooling, window {size}, stride {st}, padding {L.padding}",
                f"    x = pool1d(x, {size}, {st}, *pool_window(x.shape[1], {size}, {st}, "
                f"{L.padding == 'same'}), {reduce})"]
    if s.kind == "flatten":
        return [head + f"Flatten (the model takes exactly {s.time_in} steps)",
                f"    if x.shape[1] != {s.time_in}:",
                f"        raise ValueError(f'{{x.shape[1]}} steps reach the Flatten, it takes {s.time_in}')",
                "    x = x.reshape(x.shape[0], -1)"]
    if s.kind == "time_window":
        at = f"{L.start}" if L.single else f"{L.start}:{'' if L.stop is None else L.stop}"
        kept = f"-x.shape[1] <= {L.start} < x.shape[1]" if L.single else f"len(range(x.shape[1])[{at}])"
        return [head + f"time window x[:, {at}]", f"    if not {kept}:",
                f"        raise ValueError(f'the window [{at}] keeps none of {{x.shape[1]}} steps')", f"    x = x[:, {at}]"]
    if s.kind == "batch_norm":
        kw = []
        for a in ("mean", "variance", "scale", "offset"):
            if getattr(L, a) is not None:
                arrays[f"{key}.{a}"] = getattr(L, a)
        kw = [f"{a}={w(a)}" for a in ("scale", "offset") if getattr(L, a) is not None]
        return [head + "BatchNorm (inference)",
                f"    x = batch_norm(x, {w('mean')}, {w('variance')}, {float(L.epsilon)!r}" + "".join(", " + k for k in kw) + ")"]
    raise InputError(f"layer '{s.name}': the NumPy script writer has no code for '{s.kind}'")


def run(path, x, model) -> np.ndarray:
    """Run the script in a separate python process (this interpreter, isolated, in a scratch folder) on `x`."""
    with interrupt.temporary_directory("rnnconvert-np-") as d:
        fin, fout = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
        np.save(fin, np.asarray(x, np.float32))
        res = scratch.run([*scratch.python(), os.path.abspath(str(path)), fin, fout])
        if res.returncode != 0:
            raise InputError(f"the generated script failed: {res.stderr.strip()[-1500:]}")
        return np.load(fout)
