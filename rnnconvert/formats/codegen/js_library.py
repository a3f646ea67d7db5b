"""The JavaScript every generated `.mjs` carries after its weights: the cells (LSTM i f g o, GRU r z n,
simple RNN), the front-end layers (Dense, Embedding, masks, BatchNorm, Conv1D, pooling), one direction
over a sequence, and the exported API (`predict`, `init`, `reset`, `step`), as `_RUNTIME`; and `erf_`
(`_ERF`), added only when an activation needs it.  Plain text: `js.py` writes it out unchanged.
"""
from __future__ import annotations

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

/** Steps seq[start:stop] as Python indexes them (single: [seq[start]]); none kept is an error. */
function timeWindow(L, seq) {
  const T = seq.length, at = (i) => (i < 0 ? Math.max(T + i, 0) : Math.min(i, T));
  const lo = L.single ? (L.start < 0 ? T + L.start : L.start) : at(L.start);
  const hi = L.single ? lo + 1 : (L.stop === null ? T : at(L.stop));
  if (lo < 0 || hi > T || hi <= lo) throw new RangeError(`layer ${L.name}: the window keeps none of ${T} steps`);
  return seq.slice(lo, hi);
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
    else if (L.kind === 'time_window') { seq = timeWindow(L, seq); mask = null; }
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
