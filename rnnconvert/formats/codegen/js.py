"""ES module (`.mjs`): the model as dependency-free JavaScript for Node and browsers; write-only.

The weights are Float32Array literals in canonical gate order (LSTM ifgo, GRU rzn; row j of W is
gate unit j), the arithmetic is JavaScript's float64.  API: `predict(x, T, batchRow)` on a
Float32Array x [T*INPUT_SIZE] (token ids for a model starting with an Embedding: TOKEN_IDS); `init(batchRow)`,
`step(state, x_t)`, `reset(state)` stream one step at a time and throw when a reverse or bidirectional
layer, a Conv1D, pooling or Flatten needs the whole sequence (CAN_STREAM false).  Masks (Embedding
mask_zero, Masking) hold a recurrent layer's states over masked steps, as `reference_layers` says.
"""
from __future__ import annotations

import json
import os
import shutil

import numpy as np

from ...files import interrupt, scratch
from ...errors import InputError
from ...model.states import codegen_notes
from ...errors import RuntimeUnavailable
from . import _cexpr
from ._plan import Plan, from_batch_major, output_steps, plan, to_batch_major
from ..literals import comment, js_str

_ERF = """function erf_(x) { // erfc by Numerical Recipes' Chebyshev fit, fractional error < 1.2e-7
  const s = x < 0 ? -1 : 1; x = Math.abs(x);
  const t = 1 / (1 + 0.5 * x);
  const y = 1 - t * Math.exp(-x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return s * y;
}
"""

_RUNTIME = r"""
function initial(v, size, row) {
  const out = new Float64Array(size);
  if (v) out.set(v.length > size ? v.subarray(row * size, (row + 1) * size) : v);
  return out;
}

function dot(W, j, n, v) { let a = 0; const o = j * n; for (let k = 0; k < n; ++k) a += W[o + k] * v[k]; return a; }
function clip(L, a) { return L.clip === null ? a : Math.min(Math.max(a, -L.clip), L.clip); }

// One time step of one direction: h (and c) updated in place.  Gate blocks: LSTM i f g o, GRU r z n.
function cell(L, d, x, h, c) {
  const H = L.hidden, F = d.F, S = d.S, [f, g, act_h] = L.acts;
  if (L.kind === 'lstm') {
    const G = new Float64Array(4 * H);
    for (let j = 0; j < 4 * H; ++j) G[j] = clip(L, d.Wb[j] + d.Rb[j] + dot(d.W, j, F, x) + dot(d.R, j, S, h));
    f(G.subarray(0, H)); f(G.subarray(H, 2 * H)); g(G.subarray(2 * H, 3 * H)); f(G.subarray(3 * H));
    const hc = new Float64Array(H);
    for (let j = 0; j < H; ++j) { c[j] = G[H + j] * c[j] + G[j] * G[2 * H + j]; hc[j] = c[j]; }
    act_h(hc);
    for (let j = 0; j < H; ++j) hc[j] *= G[3 * H + j];
    if (d.proj) { for (let j = 0; j < S; ++j) h[j] = dot(d.proj, j, H, hc); } else h.set(hc);
  } else if (L.kind === 'gru') {
    const gx = new Float64Array(3 * H), n = new Float64Array(H);
    for (let j = 0; j < 3 * H; ++j) gx[j] = d.Wb[j] + dot(d.W, j, F, x);
    if (L.reset_after) {
      const gh = new Float64Array(3 * H);
      for (let j = 0; j < 3 * H; ++j) gh[j] = d.Rb[j] + dot(d.R, j, H, h);
      for (let j = 0; j < 2 * H; ++j) gx[j] = clip(L, gx[j] + gh[j]);
      f(gx.subarray(0, H)); f(gx.subarray(H, 2 * H));
      for (let j = 0; j < H; ++j) n[j] = clip(L, gx[2 * H + j] + gx[j] * gh[2 * H + j]);
    } else {
      for (let j = 0; j < 2 * H; ++j) gx[j] = clip(L, gx[j] + d.Rb[j] + dot(d.R, j, H, h));
      f(gx.subarray(0, H)); f(gx.subarray(H, 2 * H));
      const rh = new Float64Array(H);
      for (let j = 0; j < H; ++j) rh[j] = gx[j] * h[j];
      for (let j = 0; j < H; ++j) n[j] = clip(L, gx[2 * H + j] + d.Rb[2 * H + j] + dot(d.R, 2 * H + j, H, rh));
    }
    g(n);
    for (let j = 0; j < H; ++j) h[j] = n[j] + gx[H + j] * (h[j] - n[j]);
  } else {
    const a = new Float64Array(H);
    for (let j = 0; j < H; ++j) a[j] = clip(L, d.Wb[j] + d.Rb[j] + dot(d.W, j, F, x) + dot(d.R, j, H, h));
    f(a); h.set(a);
  }
}

function dense(L, x) {
  const y = new Float64Array(L.units);
  for (let j = 0; j < L.units; ++j) {
    let a = L.bias ? L.bias[j] : 0;
    for (let k = 0; k < L.inputs; ++k) a += x[k] * L.kernel[k * L.units + j];
    y[j] = a;
  }
  L.act(y);
  return y;
}

function checkRow(row) {
  if (!Number.isInteger(row) || row < 0 || (STATE_ROWS > 1 && row >= STATE_ROWS))
    throw new RangeError(`batch row ${row}: this model has initial states for ${STATE_ROWS} row(s)`);
}

function embed(L, id) {
  if (!Number.isInteger(id) || id < 0 || id >= L.vocab)
    throw new RangeError(`layer '${L.name}' (Embedding): token id ${id} is outside the vocabulary [0, ${L.vocab})`);
  return Float64Array.from(L.table.subarray(id * L.dim, (id + 1) * L.dim));
}

function maskOf(L, v) { return v.some(a => Math.fround(a) !== L.mask_value); }

function batchNorm(L, v) { return v.map((a, j) => a * L.a[j] + L.b[j]); }

// Output length and left padding of a Conv1D / pooling window on n steps ('same' as Keras: smaller half left).
function geometry(padding, span, stride, pads, n) {
  if (padding === 'same') { const m = Math.ceil(n / stride); return [m, Math.floor(Math.max((m - 1) * stride + span - n, 0) / 2)]; }
  if (padding === 'causal') return [Math.floor((n - 1) / stride) + 1, span - 1];
  const [pl, pr] = padding === 'explicit' ? pads : [0, 0], r = n + pl + pr - span;
  return [r >= 0 ? Math.floor(r / stride) + 1 : 0, pl];
}

function conv(L, seq) {   // kernel [width][in/groups][filters]
  const n = seq.length, [m, left] = geometry(L.padding, (L.width - 1) * L.dilation + 1, L.strides, L.pads, n);
  if (m < 1) throw new RangeError(`layer '${L.name}' (Conv1D): ${n} steps are too few for its window`);
  const F = L.filters, CG = L.cg, FG = F / L.groups, out = [];
  for (let t = 0; t < m; ++t) {
    const y = new Float64Array(F);
    if (L.bias) y.set(L.bias);
    for (let k = 0; k < L.width; ++k) {
      const ti = t * L.strides + k * L.dilation - left;
      if (ti < 0 || ti >= n) continue;
      for (let g = 0; g < L.groups; ++g) for (let c = 0; c < CG; ++c) {
        const v = seq[ti][g * CG + c], o = (k * CG + c) * F + g * FG;
        for (let j = 0; j < FG; ++j) y[g * FG + j] += L.kernel[o + j] * v;
      }
    }
    L.act(y);
    out.push(y);
  }
  return out;
}

function pool(L, seq, mask) {
  const max = L.mode === 'max';
  if (L.pool_size === null) {   // global: a mask leaves its masked steps out of the average
    const keep = seq.filter((v, t) => max || !mask || mask[t]);
    const y = Float64Array.from(keep[0] || seq[0].map(() => NaN));
    for (const v of keep.slice(1)) v.forEach((a, j) => { y[j] = max ? Math.max(y[j], a) : y[j] + a; });
    if (!max) y.forEach((a, j) => { y[j] = a / keep.length; });
    return [y];
  }
  const n = seq.length, [m, left] = geometry(L.padding, L.pool_size, L.strides, null, n);
  if (m < 1) throw new RangeError(`layer '${L.name}' (pooling): ${n} steps are too few for its window`);
  const out = [];
  for (let t = 0; t < m; ++t) {
    const win = [];
    for (let k = 0; k < L.pool_size; ++k) { const ti = t * L.strides + k - left; if (ti >= 0 && ti < n) win.push(seq[ti]); }
    const y = Float64Array.from(win[0]);
    for (const v of win.slice(1)) v.forEach((a, j) => { y[j] = max ? Math.max(y[j], a) : y[j] + a; });
    if (!max) y.forEach((a, j) => { y[j] = a / win.length; });
    out.push(y);
  }
  return out;
}

// One direction over the sequence; a masked step keeps the states and outputs the last output (or zeros).
function direction(L, d, seq, mask, batchRow) {
  const n = seq.length, h = initial(d.h0, d.S, batchRow), c = initial(d.c0, L.hidden, batchRow), ys = new Array(n);
  let picked = null, out = new Float64Array(d.S);
  for (let s = 0; s < n; ++s) {
    const t = d.reverse ? n - 1 - s : s;
    if (mask) {
      const hs = Float64Array.from(h), cs = Float64Array.from(c);
      cell(L, d, seq[t], h, c);
      if (mask[t]) out = Float64Array.from(h);
      else { h.set(hs); c.set(cs); if (L.masked_output === 'zero') out = new Float64Array(d.S); }
    } else {
      cell(L, d, seq[t], h, c);
      out = Float64Array.from(h);
    }
    ys[L.time_order === 'processing' ? s : t] = out;
    if (s === 0 && d.pick === 'first') picked = out;
  }
  return d.pick === 'all' ? ys : [d.pick === 'first' ? picked : out];
}

/** The whole sequence: x is [T * INPUT_SIZE] (time first; token ids for an Embedding model); returns a
 * Float32Array [steps * OUTPUT_SIZE] (steps: the output sequence's length) or [OUTPUT_SIZE]. */
export function predict(x, T, batchRow = 0) {
  checkRow(batchRow);
  if (!(T >= 1) || x.length < T * INPUT_SIZE) throw new RangeError(`x must hold T * ${INPUT_SIZE} values, T >= 1`);
  if (FIXED_TIME !== null && T !== FIXED_TIME) throw new RangeError(`this model takes exactly ${FIXED_TIME} steps (it has a Flatten)`);
  let seq = [], mask = null;
  for (let t = 0; t < T; ++t) seq.push(TOKEN_IDS ? Number(x[t]) : Float64Array.from(x.subarray ? x.subarray(t * INPUT_SIZE, (t + 1) * INPUT_SIZE) : x.slice(t * INPUT_SIZE, (t + 1) * INPUT_SIZE)));
  for (const L of LAYERS) {
    if (L.kind === 'embedding') { if (L.mask_zero) mask = seq.map(id => id !== 0); seq = seq.map(id => embed(L, id)); }
    else if (L.kind === 'masking') { mask = seq.map(v => maskOf(L, v)); seq = seq.map((v, t) => mask[t] ? v : new Float64Array(v.length)); }
    else if (L.kind === 'dense') seq = seq.map(v => dense(L, v));
    else if (L.kind === 'activation') seq = seq.map(v => { const y = Float64Array.from(v); L.act(y); return y; });
    else if (L.kind === 'batch_norm') seq = seq.map(v => batchNorm(L, v));
    else if (L.kind === 'conv1d') { seq = conv(L, seq); mask = null; }
    else if (L.kind === 'pooling1d') { seq = pool(L, seq, mask); mask = null; }
    else if (L.kind === 'flatten') { const y = new Float64Array(seq.length * seq[0].length); seq.forEach((v, t) => y.set(v, t * v.length)); seq = [y]; mask = null; }
    else if (L.kind !== 'dropout') {
      const outs = L.dirs.map(d => direction(L, d, seq, mask, batchRow));
      if (!L.seq_out) mask = null;
      seq = outs[0].map((a, t) => {
        if (outs.length === 1) return a;
        const b = outs[1][t];
        if (L.merge === 'concat') { const y = new Float64Array(a.length + b.length); y.set(a); y.set(b, a.length); return y; }
        return a.map((v, j) => L.merge === 'sum' ? v + b[j] : L.merge === 'mul' ? v * b[j] : (v + b[j]) / 2);
      });
    }
  }
  const y = new Float32Array(seq.length * OUTPUT_SIZE);
  seq.forEach((v, t) => y.set(v, t * OUTPUT_SIZE));
  return y;
}

function needStream() {
  if (!CAN_STREAM) throw new Error(STREAM_REFUSAL);
}

/** A fresh streaming state (initial states of batch row `batchRow`). */
export function init(batchRow = 0) {
  needStream(); checkRow(batchRow);
  const state = { row: batchRow, h: [], c: [], o: [] };
  reset(state);
  return state;
}

/** Back to the initial states. */
export function reset(state) {
  needStream();
  state.h = LAYERS.map(L => L.dirs ? initial(L.dirs[0].h0, L.dirs[0].S, state.row) : null);
  state.c = LAYERS.map(L => L.dirs ? initial(L.dirs[0].c0, L.hidden, state.row) : null);
  state.o = LAYERS.map(L => L.dirs ? new Float64Array(L.dirs[0].S) : null);
}

/** One time step x [INPUT_SIZE] (one token id for an Embedding model); returns what predict returns for
 * the sequence so far (its last step). */
export function step(state, x) {
  needStream();
  let v = TOKEN_IDS ? Number(x[0]) : Float64Array.from(x), m = true;
  LAYERS.forEach((L, k) => {
    if (L.kind === 'embedding') { if (L.mask_zero) m = v !== 0; v = embed(L, v); }
    else if (L.kind === 'masking') { m = maskOf(L, v); if (!m) v = new Float64Array(v.length); }
    else if (L.kind === 'dense') v = dense(L, v);
    else if (L.kind === 'activation') { v = Float64Array.from(v); L.act(v); }
    else if (L.kind === 'batch_norm') v = batchNorm(L, v);
    else if (L.kind !== 'dropout') {
      const h = state.h[k], c = state.c[k], hs = Float64Array.from(h), cs = Float64Array.from(c);
      cell(L, L.dirs[0], v, h, c);
      if (!L.masked || m) state.o[k] = Float64Array.from(h);
      else { h.set(hs); c.set(cs); if (L.masked_output === 'zero') state.o[k] = new Float64Array(h.length); }
      v = Float64Array.from(state.o[k]);
    }
  });
  return Float32Array.from(v);
}
"""


def sniff(path) -> bool:
    return False


def _f32(a) -> str:
    if a is None:
        return "null"
    vals = np.asarray(a, np.float32).ravel().tolist()
    body = ",".join(f"{v:.9g}" for v in vals)
    return f"new Float32Array([{body}])"


def _act(act, cache: dict) -> str:
    key = str(act)
    if key not in cache:
        name = f"act{len(cache)}"
        if act.name == "softmax":
            code = (f"function {name}(v) {{ // {act}\n  const m = Math.max(...v); let s = 0;\n"
                    "  for (let j = 0; j < v.length; ++j) { v[j] = Math.exp(v[j] - m); s += v[j]; }\n"
                    "  for (let j = 0; j < v.length; ++j) v[j] /= s;\n}\n")
        elif act.name == "log_softmax":
            code = (f"function {name}(v) {{ // {act}\n  const m = Math.max(...v); let s = 0;\n"
                    "  for (let j = 0; j < v.length; ++j) s += Math.exp(v[j] - m);\n  s = Math.log(s);\n"
                    "  for (let j = 0; j < v.length; ++j) v[j] = v[j] - m - s;\n}\n")
        else:
            code = (f"function {name}(v) {{ // {act}\n"
                    f"  for (let j = 0; j < v.length; ++j) {{ const t = v[j]; v[j] = {_cexpr.expr(act, 't', 'js')}; }}\n}}\n")
        cache[key] = (name, code)
    return cache[key][0]


def write(model, path, **options) -> list[str]:
    if options:
        raise InputError(f"the JavaScript writer takes no options, not {', '.join(sorted(options))}")
    p = plan(model, path)
    cache: dict = {}
    layers = []
    for s in p.steps:
        if s.directions:
            L = s.layer
            acts = ", ".join(_act(a, cache) for a in s.activations)
            dirs = []
            for d in s.directions:
                dirs.append(f"    {{ name: '{d.name}', reverse: {json.dumps(d.reverse)}, pick: '{d.pick}', "
                            f"F: {d.W.shape[1]}, S: {d.R.shape[1]},\n"
                            f"      W: {_f32(d.W)},\n      R: {_f32(d.R)},\n      Wb: {_f32(d.Wb)},\n"
                            f"      Rb: {_f32(d.Rb)},\n      h0: {_f32(d.h0)}, c0: {_f32(d.c0)}, "
                            f"proj: {_f32(d.proj)} }}")
            layers.append(f"  {{ kind: '{s.kind}', name: {js_str(s.name)}, hidden: {L.hidden}, "
                          f"reset_after: {json.dumps(bool(L.reset_after))}, clip: {json.dumps(L.clip)},\n"
                          f"    seq_out: {json.dumps(s.seq_out)}, masked: {json.dumps(s.masked)}, "
                          f"masked_output: '{L.masked_output}',\n"
                          f"    merge: '{L.merge}', time_order: '{L.time_order}', acts: [{acts}], "
                          f"// gates {L.gate_order}\n    dirs: [\n" + ",\n".join(dirs) + "] }")
        elif s.kind == "dense":
            L = s.layer
            layers.append(f"  {{ kind: 'dense', name: {js_str(s.name)}, inputs: {s.width_in}, "
                          f"units: {s.width_out}, act: {_act(L.activation, cache)},\n"
                          f"    kernel: {_f32(L.kernel)}, // [inputs][units]\n    bias: {_f32(L.bias)} }}")
        elif s.kind == "activation":
            layers.append(f"  {{ kind: 'activation', name: {js_str(s.name)}, "
                          f"act: {_act(s.layer.activation, cache)} }}")
        else:
            layers.append(_front_end(s, cache))
    acts = [c for _, c in cache.values()]
    need = _cexpr.helpers_needed([a for a in _all_acts(p)])
    helpers = []
    if "sigmoid" in need:
        helpers.append("function sigmoid_(x) { return 1 / (1 + Math.exp(-Math.max(x, -80))); }\n")
    if "clamp01" in need:
        helpers.append("function clamp01_(x) { return Math.min(Math.max(x, 0), 1); }\n")
    if "erf" in need:
        helpers.append(_ERF)
    text = "\n".join([
        f"// Generated by rnnconvert from model '{comment(p.model.name)}': an ES module with no dependencies.",
        "// predict(x, T, batchRow) runs a whole sequence; init/step/reset stream one step at a time.",
        f"export const INPUT_SIZE = {p.input_size};", f"export const OUTPUT_SIZE = {p.output_size};",
        f"export const OUTPUT_IS_SEQUENCE = {json.dumps(p.output_is_sequence)};",
        f"export const CAN_STREAM = {json.dumps(p.streamable)};", f"export const STATE_ROWS = {p.state_rows};",
        f"export const TOKEN_IDS = {json.dumps(p.input_dtype != 'float32')};",
        f"export const FIXED_TIME = {json.dumps(p.fixed_time)};",
        f"const STREAM_REFUSAL = {js_str(_refusal(p))};", "",
        *helpers, *acts, "const LAYERS = [", ",\n".join(layers), "];", _RUNTIME])
    with open(path, "w") as f:
        f.write(text)
    notes = [f"wrote an ES module (no dependencies) for Node and browsers"]
    if not p.streamable:
        notes.append(f"step() throws for this model: {p.stream_blocker}")
    return notes + codegen_notes(model)


def _refusal(p: Plan) -> str:
    if p.streamable:
        return ""
    if p.stream_blocker.startswith("a reverse"):
        return "step: this model has a reverse or bidirectional layer, which needs the whole sequence; use predict"
    return f"step: {p.stream_blocker}, which needs the whole sequence; use predict"


def _front_end(s, cache: dict) -> str:
    """The LAYERS record of a non-recurrent layer other than Dense and Activation."""
    L, name = s.layer, js_str(s.name)
    if s.kind == "embedding":
        V, D = L.table.shape
        return (f"  {{ kind: 'embedding', name: {name}, vocab: {V}, dim: {D}, mask_zero: {json.dumps(L.mask_zero)},\n"
                f"    table: {_f32(L.table)} }}")
    if s.kind == "masking":
        return f"  {{ kind: 'masking', name: {name}, mask_value: Math.fround({float(L.mask_value)!r}) }}"
    if s.kind == "conv1d":
        W, CG, F = L.kernel.shape
        return (f"  {{ kind: 'conv1d', name: {name}, width: {W}, cg: {CG}, filters: {F}, groups: {int(L.groups)}, "
                f"strides: {int(L.strides)}, dilation: {int(L.dilation)}, padding: '{L.padding}', "
                f"pads: {json.dumps([int(v) for v in L.pads])}, act: {_act(L.activation, cache)},\n"
                f"    kernel: {_f32(L.kernel)}, // [width][in/groups][filters]\n    bias: {_f32(L.bias)} }}")
    if s.kind == "pooling1d":
        size = "null" if L.pool_size is None else int(L.pool_size)
        stride = "null" if L.pool_size is None else int(L.strides or L.pool_size)
        return (f"  {{ kind: 'pooling1d', name: {name}, mode: '{L.mode}', pool_size: {size}, strides: {stride}, "
                f"padding: '{L.padding}' }}")
    if s.kind == "batch_norm":
        a = 1.0 / np.sqrt(np.asarray(L.variance, np.float64) + float(L.epsilon))
        a = a * (1.0 if L.scale is None else np.asarray(L.scale, np.float64))
        b = -np.asarray(L.mean, np.float64) * a + (0.0 if L.offset is None else np.asarray(L.offset, np.float64))
        return (f"  {{ kind: 'batch_norm', name: {name}, // y = x * a + b, a = scale / sqrt(variance + eps)\n"
                f"    a: new Float64Array({json.dumps(a.tolist())}),\n    b: new Float64Array({json.dumps(b.tolist())}) }}")
    return f"  {{ kind: '{s.kind}', name: {name} }}"    # dropout, flatten: no parameters


def _all_acts(p: Plan):
    for s in p.steps:
        yield from s.activations


_RUNNER = r"""
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const [modPath, inPath, outPath] = process.argv.slice(2);
const m = await import(pathToFileURL(modPath).href);
const buf = readFileSync(inPath);
const dims = new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + 12));
const [B, T, F] = dims;
const raw = buf.buffer.slice(buf.byteOffset + 12, buf.byteOffset + 12 + 4 * B * T * F);
const xs = m.TOKEN_IDS ? new Int32Array(raw) : new Float32Array(raw);
const parts = [];
for (let b = 0; b < B; ++b) parts.push(m.predict(xs.subarray(b * T * F, (b + 1) * T * F), T, b));
const n = parts[0].length, y = new Float32Array(B * n);
parts.forEach((p, b) => y.set(p, b * n));
writeFileSync(outPath, Buffer.from(y.buffer));
"""


def run(path, x, model) -> np.ndarray:
    """Run the module under node on `x` (one predict call per batch row)."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeUnavailable("node is not on PATH")
    p = plan(model)
    xb = to_batch_major(x, model, "int32" if p.input_dtype != "float32" else "float32")
    B, T = xb.shape[:2]
    F = xb.shape[2] if xb.ndim == 3 else 1
    n = output_steps(p, T)
    with interrupt.temporary_directory("rnnconvert-js-") as d:
        runner, fin, fout = (os.path.join(d, n) for n in ("run.mjs", "x.bin", "y.bin"))
        with open(runner, "w") as f:
            f.write(_RUNNER)
        with open(fin, "wb") as f:
            f.write(np.array([B, T, F], np.int32).tobytes() + xb.tobytes())
        res = scratch.run([node, runner, os.path.abspath(str(path)), fin, fout])
        if res.returncode != 0:
            raise InputError(f"node failed on the generated module: {res.stderr.strip()[-1500:]}")
        y = np.fromfile(fout, dtype=np.float32)
    y = y.reshape((B, n, p.output_size) if p.output_is_sequence else (B, p.output_size))
    return from_batch_major(y, model)
