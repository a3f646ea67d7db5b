"""C source for one recurrent layer's time step, and the helpers every C emitter shares.

`cell(...)` emits `<P>_l<k><d>_cell(x, h[, c])`: one time step of direction d (f/r) of layer k, h
(and c) updated in place, split into `_proj` (the input projection W x + biases, which predict runs for
every step before the recurrence) and `_step` (the recurrent part from those pre-activations); weights `static const float` stored transposed (`WT[k*G*H + j]` is gate unit
j's weight for input k) so that the inner loop over j vectorizes; `<P>_l<k><d>_init` sets the
initial states of one batch row.  Gate blocks in canonical order (LSTM ifgo, GRU rzn).
"""
from __future__ import annotations

import numpy as np

from . import _cexpr
from ._plan import Plan, Step
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


def cell(p: Plan, s: Step, d, P: str, acts: Acts, arrays: list[str]) -> str:
    L = s.layer
    tag = f"l{s.index}{d.name[0]}"
    H, F, S = L.hidden, d.W.shape[1], d.R.shape[1]
    A = f"{P}_{tag}"
    GH = d.W.shape[0]
    arrays.append(array(f"{A}_WT", d.W.T, f"layer '{comment(s.name)}' {d.name}: W transposed [{F}][{GH}], gate blocks "
                                           f"{L.gate_order} along each row"))
    arrays.append(array(f"{A}_RT", d.R.T, f"layer '{comment(s.name)}' {d.name}: R transposed [{S}][{GH}], gate blocks "
                                           f"{L.gate_order} along each row"))
    arrays.append(array(f"{A}_Wb", d.Wb, f"layer '{comment(s.name)}' {d.name}: Wb"))
    arrays.append(array(f"{A}_Rb", d.Rb, f"layer '{comment(s.name)}' {d.name}: Rb"))
    fs = [acts.fn(a) for a in s.activations]
    out = [f"/* layer {s.index} '{comment(s.name)}' ({s.kind.upper()}, {d.name}): one time step, h (and c) updated in place */"]
    if s.kind == "lstm":
        if d.proj is not None:
            arrays.append(array(f"{A}_PT", d.proj.T, f"layer '{comment(s.name)}' {d.name}: projection P transposed [{H}][{S}]"))
        f, g, h = fs
        out += [f"static void {A}_cell(const float *x, float *h, float *c)", "{",
                f"    float g[{4 * H}], hc[{H}];", "    int j, k;",
                f"    for (j = 0; j < {4 * H}; ++j) g[j] = {A}_Wb[j] + {A}_Rb[j];",
                f"    {axpy('g', f'{A}_WT', 4 * H, 0, 4 * H, F, 'x')}",
                f"    {axpy('g', f'{A}_RT', 4 * H, 0, 4 * H, S, 'h')}",
                *([f"    for (j = 0; j < {4 * H}; ++j) {{ float a = g[j]; {_clip(L, 'a')} g[j] = a; }}"]
                  if L.clip is not None else []),
                f"    {f}(g, {H});             /* i */",
                f"    {f}(g + {H}, {H});       /* f */",
                f"    {g}(g + {2 * H}, {H});   /* g (cell candidate) */",
                f"    {f}(g + {3 * H}, {H});   /* o */",
                f"    for (j = 0; j < {H}; ++j) {{ c[j] = g[{H} + j] * c[j] + g[j] * g[{2 * H} + j]; hc[j] = c[j]; }}",
                f"    {h}(hc, {H});",
                f"    for (j = 0; j < {H}; ++j) hc[j] *= g[{3 * H} + j];"]
        if d.proj is not None:
            out += [f"    for (j = 0; j < {S}; ++j) h[j] = 0.0f;", f"    {axpy('h', f'{A}_PT', S, 0, S, H, 'hc')}"]
        else:
            out += [f"    memcpy(h, hc, sizeof hc);"]
        out += ["}", ""]
    elif s.kind == "gru":
        f, g = fs
        out += [f"static void {A}_cell(const float *x, float *h)", "{",
                f"    float gx[{3 * H}], gh[{3 * H}], n[{H}];", "    int j, k;",
                f"    for (j = 0; j < {3 * H}; ++j) gx[j] = {A}_Wb[j];",
                f"    {axpy('gx', f'{A}_WT', 3 * H, 0, 3 * H, F, 'x')}"]
        if L.reset_after:
            out += [f"    for (j = 0; j < {3 * H}; ++j) gh[j] = {A}_Rb[j];",
                    f"    {axpy('gh', f'{A}_RT', 3 * H, 0, 3 * H, H, 'h')}",
                    f"    for (j = 0; j < {2 * H}; ++j) {{ float a = gx[j] + gh[j]; {_clip(L, 'a')} gx[j] = a; }}",
                    f"    {f}(gx, {H});          /* r */", f"    {f}(gx + {H}, {H});    /* z */",
                    f"    for (j = 0; j < {H}; ++j) {{ float a = gx[{2 * H} + j] + gx[j] * gh[{2 * H} + j]; "
                    f"{_clip(L, 'a')} n[j] = a; }}"]
        else:
            out += [f"    for (j = 0; j < {2 * H}; ++j) gx[j] += {A}_Rb[j];",
                    f"    {axpy('gx', f'{A}_RT', 3 * H, 0, 2 * H, H, 'h')}",
                    *([f"    for (j = 0; j < {2 * H}; ++j) {{ float a = gx[j]; {_clip(L, 'a')} gx[j] = a; }}"]
                      if L.clip is not None else []),
                    f"    {f}(gx, {H});          /* r */", f"    {f}(gx + {H}, {H});    /* z */",
                    f"    for (j = 0; j < {H}; ++j) gh[j] = gx[j] * h[j];   /* r * h */",
                    f"    for (j = 0; j < {H}; ++j) n[j] = gx[{2 * H} + j] + {A}_Rb[{2 * H} + j];",
                    f"    {axpy('n', f'{A}_RT', 3 * H, 2 * H, H, H, 'gh')}",
                    *([f"    for (j = 0; j < {H}; ++j) {{ float a = n[j]; {_clip(L, 'a')} n[j] = a; }}"]
                      if L.clip is not None else [])]
        out += [f"    {g}(n, {H});           /* n (candidate) */",
                f"    for (j = 0; j < {H}; ++j) h[j] = n[j] + gx[{H} + j] * (h[j] - n[j]);", "}", ""]
    else:
        (f,) = fs
        out += [f"static void {A}_cell(const float *x, float *h)", "{", f"    float a[{H}];", "    int j, k;",
                f"    for (j = 0; j < {H}; ++j) a[j] = {A}_Wb[j] + {A}_Rb[j];",
                f"    {axpy('a', f'{A}_WT', H, 0, H, F, 'x')}", f"    {axpy('a', f'{A}_RT', H, 0, H, H, 'h')}",
                *([f"    for (j = 0; j < {H}; ++j) {{ float s = a[j]; {_clip(L, 's')} a[j] = s; }}"]
                  if L.clip is not None else []),
                f"    {f}(a, {H});",
                "    memcpy(h, a, sizeof a);", "}", ""]
    out = [out[0]] + _split(out[1:], A, {"lstm": "g", "gru": "gx", "rnn": "a"}[s.kind], GH, s.kind == "lstm",
                            p.streamable)
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
            arrays.append(array(f"{A}_{key}", v, f"layer '{comment(s.name)}' {d.name}: {key} [{v.shape[0]}][{size}]"))
            row = "row" if v.shape[0] > 1 else "0"
            lines.append(f"    memcpy({var}, {A}_{key} + {row} * {size}, {size} * sizeof(float));")
    if not any(v is not None and v.shape[0] > 1 for v in (d.h0, d.c0)):
        lines.append("    (void)row;")
    lines += ["}", ""]
    return "\n".join(out + lines)


def _split(fn: list[str], A: str, var: str, GH: int, lstm: bool, streamable: bool) -> list[str]:
    """One cell function -> `_proj` (x -> gate pre-activations with the biases, independent of the state, so
    that predict projects every step before the recurrence), `_step` (the rest, from them) and, for the
    streaming step, `_cell` (both)."""
    sig, brace, decl, ints, init, w_axpy, *rest = fn
    c_arg, c_call = (", float *c", ", c") if lstm else ("", "")
    return [f"static void {A}_proj(const float *x, float *{var})", "{", ints, init, w_axpy, "}", "",
            f"static void {A}_step(const float *gin, float *h{c_arg})", "{", decl, ints,
            f"    memcpy({var}, gin, {GH} * sizeof(float));", *rest,
            *([f"static void {A}_cell(const float *x, float *h{c_arg})", "{", f"    float g_[{GH}];",
               f"    {A}_proj(x, g_);", f"    {A}_step(g_, h{c_call});", "}", ""] if streamable else [])]


def call(s: Step, d, P: str, inp: str, c: str = "c", fn: str = "cell") -> str:
    A = f"{P}_l{s.index}{d.name[0]}"
    return f"{A}_{fn}({inp}, h, {c});" if s.kind == "lstm" else f"{A}_{fn}({inp}, h);"

