"""C source for the layers around the recurrent ones: Dense, Activation, Embedding, Masking, Conv1D,
Pooling1D, BatchNorm (Flatten and Dropout move no data).  A mask (Embedding mask_zero, Masking) is one
float per step in `mask`, 1 real, 0 masked, as `rnnconvert/reference/layers.py` defines it.

`function(s, P, acts, arrays)` emits layer s's static function (weights appended to `arrays`);
`predict_lines(s, P, rows, ids)` the statements `<P>_predict_row` runs for it on `cur` (n rows) into
`out`.  A layer that changes the number of time steps returns the new count (0: the sequence is too
short), computed as `_plan.conv_geometry` / `pool_geometry` do: Keras 'same' pads max((ceil(n/s)-1)*s
+ span - n, 0) steps, the smaller half on the left; average pooling divides by the steps inside the
sequence; Conv1D kernels are Keras's [width][in/groups][filters].
"""
from __future__ import annotations

import numpy as np

from .c_cells import Acts, array, axpy
from ..literals import comment

C_INT = {"int32": "int32_t", "int64": "int64_t"}


def function(s, P: str, acts: Acts, arrays: list[str], input_dtype: str = "float32") -> str:
    L, A = s.layer, f"{P}_l{s.index}"
    if s.kind == "dense":
        arrays.append(array(f"{A}_kernel", L.kernel, f"layer '{comment(s.name)}' (Dense): kernel [{s.width_in}][{s.width_out}]"))
        if L.bias is not None:
            arrays.append(array(f"{A}_bias", L.bias, f"layer '{comment(s.name)}' (Dense): bias"))
        init = f"{A}_bias[j]" if L.bias is not None else "0.0f"
        return "\n".join([
            f"/* layer {s.index} '{comment(s.name)}' (Dense {L.activation}): y = act(x kernel + bias) */",
            f"static void {A}_dense(const float *x, float *y)", "{", "    int j, k;",
            f"    for (j = 0; j < {s.width_out}; ++j) y[j] = {init};",
            f"    {axpy('y', f'{A}_kernel', s.width_out, 0, s.width_out, s.width_in, 'x')}",
            f"    {acts.fn(L.activation)}(y, {s.width_out});", "}", ""])
    if s.kind == "activation":
        return "\n".join([
            f"/* layer {s.index} '{comment(s.name)}' (Activation {L.activation}) */",
            f"static void {A}_act(const float *x, float *y)", "{",
            f"    memcpy(y, x, {s.width_in} * sizeof(float));",
            f"    {acts.fn(L.activation)}(y, {s.width_in});", "}", ""])
    if s.kind == "embedding":
        V, D = L.table.shape
        arrays.append(array(f"{A}_table", L.table, f"layer '{comment(s.name)}' (Embedding): table [{V}][{D}]"))
        return "\n".join([
            f"/* layer {s.index} '{comment(s.name)}' (Embedding): row ids[t] of the table; -1 for an id outside [0, {V}) */",
            f"static int {A}_embed(const {C_INT[input_dtype]} *ids, int n, float *y)", "{", "    int t;",
            "    for (t = 0; t < n; ++t) {",
            f"        if (ids[t] < 0 || ids[t] >= {V}) return -1;",
            f"        memcpy(y + (long)t * {D}, {A}_table + (long)ids[t] * {D}, {D} * sizeof(float));", "    }",
            "    return 0;", "}", ""])
    if s.kind == "conv1d":
        return _conv(s, P, acts, arrays)
    if s.kind == "pooling1d":
        return _pool(s, P) if L.pool_size is not None else _global_pool(s, P)
    if s.kind == "masking":
        F, mv = s.width_in, f"{float(np.float32(L.mask_value)):.9e}f"
        return "\n".join([
            f"/* layer {s.index} '{comment(s.name)}' (Masking): a step whose features all equal {L.mask_value:g} is masked "
            "(mask 0) and zeroed */",
            f"static void {A}_mask(const float *x, int n, float *y, float *mask)", "{", "    int t, j;",
            "    for (t = 0; t < n; ++t) {", "        float m = 0.0f;",
            f"        for (j = 0; j < {F}; ++j) if (x[(long)t * {F} + j] != {mv}) m = 1.0f;",
            "        mask[t] = m;",
            f"        for (j = 0; j < {F}; ++j) y[(long)t * {F} + j] = m != 0.0f ? x[(long)t * {F} + j] : 0.0f;",
            "    }", "}", ""])
    if s.kind == "batch_norm":
        a = 1.0 / np.sqrt(np.asarray(L.variance, np.float64) + float(L.epsilon))
        if L.scale is not None:
            a = a * np.asarray(L.scale, np.float64)
        b = -np.asarray(L.mean, np.float64) * a
        if L.offset is not None:
            b = b + np.asarray(L.offset, np.float64)
        arrays.append(array(f"{A}_a", a, f"layer '{comment(s.name)}' (BatchNorm): scale / sqrt(variance + {L.epsilon:g})"))
        arrays.append(array(f"{A}_b", b, f"layer '{comment(s.name)}' (BatchNorm): offset - mean * a"))
        return "\n".join([
            f"/* layer {s.index} '{comment(s.name)}' (BatchNorm, inference): y = x * a + b */",
            f"static void {A}_bn(const float *x, float *y)", "{", "    int j;",
            f"    for (j = 0; j < {s.width_in}; ++j) y[j] = x[j] * {A}_a[j] + {A}_b[j];", "}", ""])
    return ""


def _length(kind: str, padding: str, span: int, stride: int, pads=(0, 0)) -> list[str]:
    """C statements setting m (output steps) and left (left padding) from n input steps."""
    if padding == "same":
        return [f"    m = (n + {stride - 1}) / {stride};", f"    left = (m - 1) * {stride} + {span} - n;",
                "    left = left > 0 ? left / 2 : 0;"]
    if padding == "causal":
        return [f"    left = {span - 1};", f"    m = (n - 1) / {stride} + 1;"]
    pl, pr = pads if padding == "explicit" else (0, 0)
    return [f"    left = {pl};", f"    m = n + {pl + pr - span} >= 0 ? (n + {pl + pr - span}) / {stride} + 1 : 0;"]


def _conv(s, P: str, acts: Acts, arrays: list[str]) -> str:
    L, A = s.layer, f"{P}_l{s.index}"
    W, CG, F = L.kernel.shape
    G, D, S = int(L.groups), int(L.dilation), int(L.strides)
    FG, CIN = F // G, CG * G
    arrays.append(array(f"{A}_kernel", L.kernel, f"layer '{comment(s.name)}' (Conv1D): kernel [{W}][{CG}][{F}]"))
    if L.bias is not None:
        arrays.append(array(f"{A}_bias", L.bias, f"layer '{comment(s.name)}' (Conv1D): bias"))
    init = f"{A}_bias[j]" if L.bias is not None else "0.0f"
    return "\n".join([
        f"/* layer {s.index} '{comment(s.name)}' (Conv1D, width {W}, stride {S}, dilation {D}, groups {G}, padding "
        f"{L.padding}, {L.activation}): returns the output steps */",
        f"static int {A}_conv(const float *x, int n, float *y)", "{",
        "    int t, k, g, c, j, m, left, ti;",
        *_length("conv", L.padding, (W - 1) * D + 1, S, tuple(L.pads)),
        "    for (t = 0; t < m; ++t) {", f"        float *yt = y + (long)t * {F};",
        f"        for (j = 0; j < {F}; ++j) yt[j] = {init};",
        f"        for (k = 0; k < {W}; ++k) {{",
        f"            ti = t * {S} + k * {D} - left;", "            if (ti < 0 || ti >= n) continue;",
        f"            for (g = 0; g < {G}; ++g) for (c = 0; c < {CG}; ++c) {{",
        f"                const float v_ = x[(long)ti * {CIN} + g * {CG} + c];",
        f"                const float *w_ = {A}_kernel + (k * {CG} + c) * {F} + g * {FG};",
        f"                for (j = 0; j < {FG}; ++j) yt[g * {FG} + j] += w_[j] * v_;", "            }", "        }",
        f"        {acts.fn(L.activation)}(yt, {F});", "    }", "    return m;", "}", ""])


def _pool(s, P: str) -> str:
    L, A, C = s.layer, f"{P}_l{s.index}", s.width_in
    p = int(L.pool_size)
    st = int(L.strides or p)
    mx = L.mode == "max"
    v = f"x[(long)ti * {C} + j]"
    acc = f"if ({v} > yt[j]) yt[j] = {v};" if mx else f"yt[j] += {v};"
    return "\n".join([
        f"/* layer {s.index} '{comment(s.name)}' ({L.mode} pooling, window {p}, stride {st}, padding {L.padding}): "
        "returns the output steps */",
        f"static int {A}_pool(const float *x, int n, float *y)", "{",
        "    int t, k, j, m, left, ti, cnt;",
        *_length("pool", L.padding, p, st),
        "    for (t = 0; t < m; ++t) {", f"        float *yt = y + (long)t * {C};", "        cnt = 0;",
        f"        for (k = 0; k < {p}; ++k) {{",
        f"            ti = t * {st} + k - left;", "            if (ti < 0 || ti >= n) continue;",
        f"            if (cnt == 0) memcpy(yt, x + (long)ti * {C}, {C} * sizeof(float));",
        f"            else for (j = 0; j < {C}; ++j) {acc}", "            ++cnt;", "        }",
        *([] if mx else [f"        for (j = 0; j < {C}; ++j) yt[j] /= (float)cnt;"]),
        *(["        (void)j;"] if mx else []),
        "    }", "    return m;", "}", ""])


def _global_pool(s, P: str) -> str:
    L, A, C = s.layer, f"{P}_l{s.index}", s.width_in
    if s.masked and L.mode == "average":
        return "\n".join([
            f"/* layer {s.index} '{comment(s.name)}' (global average pooling over the unmasked steps) */",
            f"static void {A}_gpool(const float *x, int n, float *y, const float *mask)", "{", "    int t, j;",
            "    float count = 0.0f;", f"    for (j = 0; j < {C}; ++j) y[j] = 0.0f;",
            "    for (t = 0; t < n; ++t) {", "        if (mask[t] == 0.0f) continue;", "        count += 1.0f;",
            f"        for (j = 0; j < {C}; ++j) y[j] += x[(long)t * {C} + j];", "    }",
            f"    for (j = 0; j < {C}; ++j) y[j] /= count;", "}", ""])
    v = f"x[(long)t * {C} + j]"
    step = f"if ({v} > y[j]) y[j] = {v};" if L.mode == "max" else f"y[j] += {v};"
    return "\n".join([
        f"/* layer {s.index} '{comment(s.name)}' (global {L.mode} pooling over time) */",
        f"static void {A}_gpool(const float *x, int n, float *y)", "{", "    int t, j;",
        f"    memcpy(y, x, {C} * sizeof(float));",
        f"    for (t = 1; t < n; ++t) for (j = 0; j < {C}; ++j) {step}",
        *([] if L.mode == "max" else [f"    for (j = 0; j < {C}; ++j) y[j] /= (float)n;"]), "}", ""])


def predict_lines(s, P: str, rows: str) -> list[str]:
    """`<P>_predict_row` statements for a non-recurrent layer from cur (`rows` rows) into out."""
    A = f"{P}_l{s.index}"
    if s.kind == "embedding":
        zero = ["    for (t = 0; t < n; ++t) mask[t] = x[t] != 0 ? 1.0f : 0.0f;"] if s.layer.mask_zero else []
        return [f"    if ({A}_embed(x, n, out) != 0) return -1;", *zero]
    if s.kind == "masking":
        return [f"    {A}_mask(cur, n, out, mask);"]
    if s.kind == "conv1d":
        return [f"    n = {A}_conv(cur, n, out);", "    if (n < 1) return -1;"]
    if s.kind == "pooling1d" and s.layer.pool_size is not None:
        return [f"    n = {A}_pool(cur, n, out);", "    if (n < 1) return -1;"]
    if s.kind == "pooling1d":
        m = ", mask" if s.masked and s.layer.mode == "average" else ""
        return [f"    {A}_gpool(cur, n, out{m});"]
    fn = {"dense": "dense", "activation": "act", "batch_norm": "bn"}[s.kind]
    return [f"    for (t = 0; t < {rows}; ++t) {A}_{fn}(cur + (long)t * {s.width_in}, out + (long)t * {s.width_out});"]


def step_lines(s, P: str, src: str, dst: str) -> list[str]:
    """`<P>_step` statements for a per-step layer (Dense, Activation, BatchNorm, Embedding, Masking) from src
    into dst; a mask sets `m` (0: this step is masked)."""
    A = f"{P}_l{s.index}"
    if s.kind == "embedding":
        zero = ["    m = x[0] != 0;"] if s.layer.mask_zero else []
        return [f"    if ({A}_embed(x, 1, {dst}) != 0) return -1;", *zero]
    if s.kind == "masking":
        return [f"    {A}_mask({src}, 1, {dst}, &mf);", "    m = mf != 0.0f;"]
    fn = {"dense": "dense", "activation": "act", "batch_norm": "bn"}[s.kind]
    return [f"    {A}_{fn}({src}, {dst});"]
