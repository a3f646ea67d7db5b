"""C source for one recurrent layer's time step, and the helpers every C emitter shares.

`cell(...)` emits, for direction d (f/r) of layer k, `<P>_l<k><d>_proj(x, n, gin)` (the input projection
x W^T + biases of n steps at once: one `gemm_`, which predict runs over the whole sequence before the
recurrence), `_step(gin, h[, c])` (one step from those pre-activations: g = gin + R h by `gemv_`, then
every gate and the state update in one loop over the units, which vectorizes; a softmax gate falls back to
one pass per gate block) and, for streaming, `_cell(x, h[, c])` (both); h (and c) are updated in place.
Weights are `static const float`, transposed (W^T [F][G*H]: gate unit j's weights for the inputs k) and
stored in panels of 64 columns (`c_kernels.panels`: unit stride along j, read in order), gate blocks in
canonical order (LSTM ifgo, GRU rzn; GRU reset_before keeps R's n block apart); `_bx` holds Wb + Rb (GRU
reset_after: Wb only for n, whose Rb is `_bhn`).  `<P>_l<k><d>_init` sets the initial states of one
batch row.  The products and tanh_/sigmoid_ are `c_kernels`'.
"""
from __future__ import annotations

import numpy as np

from . import _cexpr
from .c_kernels import layout, panels
from ._plan import ELEMENTWISE, Plan, Step
from ..literals import comment


def array(name: str, a: np.ndarray, comment: str) -> str:
    flat = np.asarray(a, dtype=np.float32).ravel()
    vals = [f"{v:.9e}f" for v in flat.tolist()]
    rows = [", ".join(vals[i:i + 6]) for i in range(0, len(vals), 6)]
    return f"/* {comment} */\nstatic const float {name}[{flat.size}] = {{\n    " + ",\n    ".join(rows) + "\n};\n"


class Acts:
    """One static function per distinct activation."""

    def __init__(self):
        self.names: dict[str, str] = {}
        self.code: list[str] = []
        self.acts = []
        self.inline = []    # activations written inline as expressions (their helpers are still needed)

    def expr(self, act, v: str) -> str:
        """The activation of the simple variable `v` as a C expression."""
        self.inline.append(act)
        return _cexpr.expr(act, v, "c")

    def fn(self, act) -> str:
        key = str(act)
        if key not in self.names:
            name = f"act{len(self.names)}_"
            self.names[key] = name
            self.acts.append(act)
            self.code.append(act_function(name, act))
        return self.names[key]


def act_function(name: str, act) -> str:
    head = f"/* {act} */\nstatic void {name}(float *v, int n)\n{{\n    int j;\n"
    if act.name == "softmax":
        body = ("    float m = v[0], s = 0.0f;\n    for (j = 1; j < n; ++j) if (v[j] > m) m = v[j];\n"
                "    for (j = 0; j < n; ++j) { v[j] = expf(v[j] - m); s += v[j]; }\n"
                "    for (j = 0; j < n; ++j) v[j] /= s;\n")
    elif act.name == "log_softmax":
        body = ("    float m = v[0], s = 0.0f;\n    for (j = 1; j < n; ++j) if (v[j] > m) m = v[j];\n"
                "    for (j = 0; j < n; ++j) s += expf(v[j] - m);\n    s = logf(s);\n"
                "    for (j = 0; j < n; ++j) v[j] = v[j] - m - s;\n")
    elif act.name == "linear":
        body = "    (void)v;\n    (void)n;\n    (void)j;\n"
    else:
        body = f"    for (j = 0; j < n; ++j) {{\n        float t = v[j];\n        v[j] = {_cexpr.expr(act, 't', 'c')};\n    }}\n"
    return head + body + "}\n"


def axpy(acc: str, WT: str, stride: int, col0: int, ncols: int, n: int, vec: str) -> str:
    """acc[j] += sum_k WT[k][col0 + j] * vec[k], k in order: the inner loop over j vectorizes."""
    off = f" + {col0}" if col0 else ""
    return (f"for (k = 0; k < {n}; ++k) {{ const float v_ = {vec}[k]; const float *w_ = {WT} + k * {stride}{off}; "
            f"for (j = 0; j < {ncols}; ++j) {acc}[j] += w_[j] * v_; }}")


def _clip(layer, var: str) -> str:
    if layer.clip is None:
        return ""
    c = f"{float(layer.clip):.9e}f"
    return f"if ({var} > {c}) {var} = {c}; else if ({var} < -{c}) {var} = -{c};"


def _act(acts: Acts, act, v: str) -> str:
    return acts.expr(act, v)


def _bias_x(s: Step, d) -> np.ndarray:
    """The biases added with the input projection: Wb + Rb, except GRU reset_after's n block (Rb_n goes
    inside r * (R_n h + Rb_n))."""
    Wb, Rb = np.asarray(d.Wb, np.float32), np.asarray(d.Rb, np.float32)
    b = Wb + Rb
    if s.kind == "gru" and s.layer.reset_after:
        H = s.layer.hidden
        b[2 * H:] = Wb[2 * H:]
    return b


def cell(p: Plan, s: Step, d, P: str, acts: Acts, arrays: list[str]) -> str:
    L = s.layer
    tag = f"l{s.index}{d.name[0]}"
    H, F, S = L.hidden, d.W.shape[1], d.R.shape[1]
    A = f"{P}_{tag}"
    GH = d.W.shape[0]
    name = comment(s.name)
    rb = s.kind == "gru" and not L.reset_after    # r * h comes before R's n block: two matrices
    arrays.append(array(f"{A}_WP", panels(d.W.T), f"layer '{name}' {d.name}: W transposed {layout(F, GH)}, gate "
                                                  f"blocks {L.gate_order} along each row"))
    RT = d.R.T
    arrays.append(array(f"{A}_RP", panels(RT[:, :2 * H] if rb else RT),
                        f"layer '{name}' {d.name}: R transposed {layout(S, 2 * H if rb else GH)}, gate blocks "
                        f"{L.gate_order[:2] if rb else L.gate_order} along each row"))
    if rb:
        arrays.append(array(f"{A}_RPn", panels(RT[:, 2 * H:]), f"layer '{name}' {d.name}: R of n transposed "
                                                              f"{layout(S, H)}"))
    reset_after = s.kind == "gru" and L.reset_after
    arrays.append(array(f"{A}_bx", _bias_x(s, d), f"layer '{name}' {d.name}: Wb + Rb" +
                        (" (n block: Wb only)" if reset_after else "")))
    if reset_after:
        arrays.append(array(f"{A}_bhn", np.asarray(d.Rb, np.float32)[2 * H:], f"layer '{name}' {d.name}: Rb of n"))
    c_arg, c_call = (", float *c", ", c") if s.kind == "lstm" else ("", "")
    out = [f"/* layer {s.index} '{name}' ({s.kind.upper()}, {d.name}) */",
           f"/* gin[t][{GH}] = x[t] W^T + biases for t < n: every step's input projection at once */",
           f"static void {A}_proj(const float *x, int n, float *gin)", "{", "    int t;",
           f"    for (t = 0; t < n; ++t) memcpy(gin + (long)t * {GH}, {A}_bx, sizeof {A}_bx);",
           f"    gemm_(gin, {GH}, x, {F}, n, {A}_WP, {F}, {GH});", "}", "",
           "/* one time step from its input projection gin: h (and c) updated in place */",
           f"static void {A}_step(const float *gin, float *h{c_arg})", "{",
           *_step_body(s, d, A, acts, H, S, GH), "}", ""]
    if p.streamable:
        out += [f"static void {A}_cell(const float *x, float *h{c_arg})", "{", f"    float g_[{GH}];",
                f"    memcpy(g_, {A}_bx, sizeof g_);", f"    gemv_(g_, {A}_WP, {F}, {GH}, x);",
                f"    {A}_step(g_, h{c_call});", "}", ""]
    if s.kind == "lstm" and d.proj is not None:
        arrays.append(array(f"{A}_PP", panels(d.proj.T), f"layer '{name}' {d.name}: projection P transposed "
                                                        f"{layout(H, S)}"))
    # initial states
    lines = [f"static void {A}_init(float *h, float *c, int row)", "{"]
    for key, v, size in (("h0", d.h0, S), ("c0", d.c0, H)):
        var = "h" if key == "h0" else "c"
        if key == "c0" and s.kind != "lstm":
            lines.append("    (void)c;")
            continue
        if v is None:
            lines.append(f"    memset({var}, 0, {size} * sizeof(float));")
        else:
            arrays.append(array(f"{A}_{key}", v, f"layer '{name}' {d.name}: {key} [{v.shape[0]}][{size}]"))
            row = "row" if v.shape[0] > 1 else "0"
            lines.append(f"    memcpy({var}, {A}_{key} + {row} * {size}, {size} * sizeof(float));")
    if not any(v is not None and v.shape[0] > 1 for v in (d.h0, d.c0)):
        lines.append("    (void)row;")
    lines += ["}", ""]
    return "\n".join(out + lines)


def _pre(L, var: str) -> str:
    """Clip a pre-activation in place (nothing when the layer has no clip)."""
    c = _clip(L, var)
    return f" {c}" if c else ""


def _step_body(s: Step, d, A: str, acts: Acts, H: int, S: int, GH: int) -> list[str]:
    """g = gin + R h, then every gate and the state update in one loop over the units (it vectorizes)."""
    L, fs = s.layer, s.activations
    if any(a.name not in ELEMENTWISE for a in fs):
        return _step_blocks(s, d, A, acts, H, S, GH)
    if s.kind == "lstm":
        f, g, hh = fs
        body = [f"    float g[{GH}], hc[{H}];", "    int j;", "    memcpy(g, gin, sizeof g);",
                f"    gemv_(g, {A}_RP, {S}, {GH}, h);",
                f"    for (j = 0; j < {H}; ++j) {{",
                f"        float i_ = g[j], f_ = g[{H} + j], c_ = g[{2 * H} + j], o_ = g[{3 * H} + j], t_;",
                *(f"       {_pre(L, v)}" for v in ("i_", "f_", "c_", "o_") if L.clip is not None),
                f"        i_ = {_act(acts, f, 'i_')};", f"        f_ = {_act(acts, f, 'f_')};",
                f"        c_ = {_act(acts, g, 'c_')};", f"        o_ = {_act(acts, f, 'o_')};",
                "        t_ = f_ * c[j] + i_ * c_;", "        c[j] = t_;",
                f"        hc[j] = o_ * {_act(acts, hh, 't_')};", "    }"]
        if d.proj is not None:
            return body + [f"    memset(h, 0, {S} * sizeof(float));", f"    gemv_(h, {A}_PP, {H}, {S}, hc);"]
        return body + ["    memcpy(h, hc, sizeof hc);"]
    if s.kind == "gru":
        f, g = fs
        body = [f"    float g[{GH}]{'' if L.reset_after else f', n_[{H}]'};", "    int j;", "    memcpy(g, gin, sizeof g);"]
        if L.reset_after:
            body += [f"    memcpy(g + {2 * H}, {A}_bhn, sizeof {A}_bhn);",
                     f"    gemv_(g, {A}_RP, {H}, {GH}, h);",
                     f"    for (j = 0; j < {H}; ++j) {{",
                     f"        float r_ = g[j], z_ = g[{H} + j], a_;",
                     *(f"       {_pre(L, v)}" for v in ("r_", "z_") if L.clip is not None),
                     f"        r_ = {_act(acts, f, 'r_')};", f"        z_ = {_act(acts, f, 'z_')};",
                     f"        a_ = gin[{2 * H} + j] + r_ * g[{2 * H} + j];{_pre(L, 'a_')}",
                     f"        a_ = {_act(acts, g, 'a_')};",
                     "        h[j] = a_ + z_ * (h[j] - a_);", "    }"]
            return body
        body += [f"    gemv_(g, {A}_RP, {H}, {2 * H}, h);",
                 f"    for (j = 0; j < {2 * H}; ++j) {{ float a_ = g[j];{_pre(L, 'a_')} g[j] = {_act(acts, f, 'a_')}; }}",
                 f"    for (j = 0; j < {H}; ++j) n_[j] = g[j] * h[j];   /* r * h */",
                 f"    gemv_(g + {2 * H}, {A}_RPn, {H}, {H}, n_);",
                 f"    for (j = 0; j < {H}; ++j) {{",
                 f"        float a_ = g[{2 * H} + j];{_pre(L, 'a_')}", f"        a_ = {_act(acts, g, 'a_')};",
                 f"        h[j] = a_ + g[{H} + j] * (h[j] - a_);", "    }"]
        return body
    (f,) = fs
    return [f"    float g[{GH}];", "    int j;", "    memcpy(g, gin, sizeof g);",
            f"    gemv_(g, {A}_RP, {H}, {GH}, h);",
            f"    for (j = 0; j < {H}; ++j) {{ float a_ = g[j];{_pre(L, 'a_')} h[j] = {_act(acts, f, 'a_')}; }}"]


def _step_blocks(s: Step, d, A: str, acts: Acts, H: int, S: int, GH: int) -> list[str]:
    """_step_body for a layer with a softmax among its activations: one pass per gate block."""
    L = s.layer
    fs = [acts.fn(a) for a in s.activations]
    nclip = {"lstm": GH, "gru": 2 * H, "rnn": GH}[s.kind]
    clip = [f"    for (j = 0; j < {nclip}; ++j) {{ float a_ = g[j]; {_clip(L, 'a_')} g[j] = a_; }}"] \
        if L.clip is not None else []
    if s.kind == "lstm":
        f, g, hh = fs
        out = [f"    float g[{GH}], hc[{H}];", "    int j;", "    memcpy(g, gin, sizeof g);",
               f"    gemv_(g, {A}_RP, {S}, {GH}, h);", *clip,
               f"    {f}(g, {H});", f"    {f}(g + {H}, {H});", f"    {g}(g + {2 * H}, {H});", f"    {f}(g + {3 * H}, {H});",
               f"    for (j = 0; j < {H}; ++j) {{ c[j] = g[{H} + j] * c[j] + g[j] * g[{2 * H} + j]; hc[j] = c[j]; }}",
               f"    {hh}(hc, {H});", f"    for (j = 0; j < {H}; ++j) hc[j] *= g[{3 * H} + j];"]
        if d.proj is not None:
            return out + [f"    memset(h, 0, {S} * sizeof(float));", f"    gemv_(h, {A}_PP, {H}, {S}, hc);"]
        return out + ["    memcpy(h, hc, sizeof hc);"]
    if s.kind == "gru":
        f, g = fs
        out = [f"    float g[{GH}], n_[{H}];", "    int j;", "    memcpy(g, gin, sizeof g);"]
        if L.reset_after:
            out += [f"    memcpy(g + {2 * H}, {A}_bhn, sizeof {A}_bhn);", f"    gemv_(g, {A}_RP, {H}, {GH}, h);",
                    *clip, f"    {f}(g, {H});", f"    {f}(g + {H}, {H});",
                    f"    for (j = 0; j < {H}; ++j) {{ float a_ = gin[{2 * H} + j] + g[j] * g[{2 * H} + j]; "
                    f"{_clip(L, 'a_')} n_[j] = a_; }}"]
        else:
            out += [f"    gemv_(g, {A}_RP, {H}, {2 * H}, h);", *clip, f"    {f}(g, {H});", f"    {f}(g + {H}, {H});",
                    f"    for (j = 0; j < {H}; ++j) n_[j] = g[j] * h[j];   /* r * h */",
                    f"    gemv_(g + {2 * H}, {A}_RPn, {H}, {H}, n_);",
                    f"    for (j = 0; j < {H}; ++j) {{ float a_ = g[{2 * H} + j]; {_clip(L, 'a_')} n_[j] = a_; }}"]
        return out + [f"    {g}(n_, {H});", f"    for (j = 0; j < {H}; ++j) h[j] = n_[j] + g[{H} + j] * (h[j] - n_[j]);"]
    (f,) = fs
    return [f"    float g[{GH}];", "    int j;", "    memcpy(g, gin, sizeof g);",
            f"    gemv_(g, {A}_RP, {H}, {GH}, h);", *clip, f"    {f}(g, {H});", "    memcpy(h, g, sizeof g);",
            "    (void)j;"]


def call(s: Step, d, P: str, inp: str, c: str = "c", fn: str = "cell") -> str:
    A = f"{P}_l{s.index}{d.name[0]}"
    return f"{A}_{fn}({inp}, h, {c});" if s.kind == "lstm" else f"{A}_{fn}({inp}, h);"

